"""``fabricd``: the aifabric controller daemon.

Parses flags and the YAML config, checks that its ports are usable, starts the gRPC
management API, then runs the os-ken apps on os-ken's native-thread hub.
"""

from __future__ import annotations

import argparse
import faulthandler
import gc
import logging
import os
import signal
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any

from controller import __version__
from controller.cli.args import OneLineParser
from controller.config import ConfigError, FabricdConfig, load_config
from controller.core.constants import DEFAULT_TOKEN_FILE
from controller.daemon_cluster import cluster_file_key, join_cluster, start_cluster_agent
from controller.daemon_reload import reload_config

log = logging.getLogger("aifabric.daemon")

EXIT_CONFIG = 2
EXIT_RUNTIME = 1
EXIT_STALLED = 3  # the watchdog ended a controller whose event loop stalled


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(
        prog="fabricd",
        description="aifabric controller: discovers a spine-leaf OpenFlow 1.3 fabric, forwards "
        "across all spines (ECMP), and serves a gRPC management API.",
        epilog="Flags override the config file; the config file overrides built-in defaults. "
        "Example: fabricd --config config/fabricd.example.yaml --link-speed 10",
    )
    p.add_argument("--config", metavar="FILE", help="YAML config file (see config/)")
    p.add_argument("--of-port", type=int, metavar="PORT",
                   help="OpenFlow listen port (default 6653)")
    p.add_argument("--of-host", metavar="ADDR", help="OpenFlow listen address (default 0.0.0.0)")
    p.add_argument("--grpc-addr", metavar="HOST:PORT",
                   help="management API address (default 127.0.0.1:50051)")
    p.add_argument("--token-file", metavar="FILE",
                   help="admin API token, read or else generated and written there (0600) "
                   f"when the config lists no tokens (default {DEFAULT_TOKEN_FILE})")
    p.add_argument("--audit-log", metavar="FILE",
                   help="append a JSON line per API mutation (default: the daemon log only)")
    p.add_argument("--tls-cert", metavar="PEM", help="serve the API over TLS with this "
                   "certificate chain (with --tls-key)")
    p.add_argument("--tls-key", metavar="PEM", help="private key of --tls-cert")
    p.add_argument("--tls-client-ca", metavar="PEM",
                   help="require client certificates signed by this CA")
    p.add_argument("--insecure-api", action="store_true",
                   help="allow a non-loopback API address without TLS (logs a warning)")
    p.add_argument("--metrics-addr", metavar="HOST:PORT",
                   help="Prometheus metrics address, or 'off' (default 127.0.0.1:9464)")
    p.add_argument("--log-level", choices=["debug", "info", "warning", "error"],
                   help="log verbosity (default info)")
    p.add_argument("--link-speed", type=float, metavar="MBPS",
                   help="fabric-wide link rate in Mbit/s, overriding what switches report "
                   "(Mininet veths report 10 Gbit/s whatever they are shaped to)")
    p.add_argument("--no-qos", action="store_true", help="do not provision QoS (baseline runs)")
    p.add_argument("--no-te", action="store_true",
                   help="no traffic engineering: plain ECMP only (baseline runs)")
    p.add_argument("--state-file", metavar="FILE", help="where the operator intent (QoS "
                   "policy, drains, pins, registered jobs) is kept across restarts when "
                   "alone (default /var/lib/aifabric/state.json; a cluster keeps it in etcd)")
    p.add_argument("--etcd", metavar="URL[,URL...]", help="join a cluster on this etcd "
                   "(http(s)://HOST:PORT, comma-separated); needs --node-id")
    p.add_argument("--node-id", metavar="NAME", help="this instance's name in the cluster")
    p.add_argument("--cluster", metavar="NAME", help="the cluster's name (default: default)")
    p.add_argument("--lease-ttl", type=int, metavar="SECONDS",
                   help="lease of this instance in etcd (default 1)")
    p.add_argument("--peer-address", metavar="HOST:PORT", help="where the other instances "
                   "connect to see this one end, for a takeover well within the lease "
                   "(default 127.0.0.1:0, any free port; '' to rely on the lease alone)")
    p.add_argument("--etcd-ca", metavar="PEM", help="CA of etcd's certificate (https)")
    p.add_argument("--etcd-cert", metavar="PEM", help="this instance's client certificate "
                   "for etcd (with --etcd-key)")
    p.add_argument("--etcd-key", metavar="PEM", help="its private key")
    p.add_argument("--cluster-secret-file", metavar="FILE", help="the secret every "
                   "instance is given (mode 0600): the LLDP and peer keys are derived from "
                   "it, nothing secret is kept in etcd")
    p.add_argument("--insecure-etcd", action="store_true", help="accept etcd over plain "
                   "http://, or https:// without a client certificate: whoever reaches "
                   "etcd then controls the cluster (a test bench only)")
    p.add_argument("--check-config", action="store_true", help="check the configuration "
                   "(the file, these flags, the files they name) and exit: 0 when fabricd "
                   "would start with it, 2 and the reason otherwise; nothing is started")
    p.add_argument("--version", action="version", version=f"fabricd {__version__}")
    return p


def config_from_args(args: argparse.Namespace) -> FabricdConfig:
    overrides: dict[str, Any] = {}
    if args.of_port is not None:
        overrides["openflow.port"] = args.of_port
    if args.of_host is not None:
        overrides["openflow.listen_host"] = args.of_host
    if args.grpc_addr is not None:
        overrides["api.address"] = args.grpc_addr
    if args.token_file is not None:
        overrides["api.token_file"] = args.token_file
    if args.audit_log is not None:
        overrides["api.audit_log"] = args.audit_log
    if args.tls_cert or args.tls_key or args.tls_client_ca:
        overrides["api.tls"] = {"cert": args.tls_cert, "key": args.tls_key,
                                "client_ca": args.tls_client_ca}
    if args.insecure_api:
        overrides["api.allow_insecure"] = True
    if args.metrics_addr is not None:
        if args.metrics_addr == "off":
            overrides["metrics.enabled"] = False
        else:
            overrides["metrics.address"] = args.metrics_addr
    if args.log_level is not None:
        overrides["log_level"] = args.log_level
    if args.link_speed is not None:
        overrides["link_speed_mbps"] = args.link_speed
    if args.no_qos:
        overrides["qos.enabled"] = False
    if args.no_te:
        overrides["te.enabled"] = False
    if args.state_file is not None:
        overrides["state_file"] = args.state_file
    if args.etcd is not None:
        overrides["cluster.etcd"] = [u.strip() for u in args.etcd.split(",") if u.strip()]
    if args.insecure_etcd:
        overrides["cluster.insecure_etcd"] = True
    for flag, key in (("node_id", "node_id"), ("cluster", "name"), ("lease_ttl", "lease_ttl"),
                      ("peer_address", "peer_address"), ("etcd_ca", "etcd_ca"),
                      ("etcd_cert", "etcd_cert"), ("etcd_key", "etcd_key"),
                      ("cluster_secret_file", "secret_file")):
        if getattr(args, flag) is not None:
            overrides[f"cluster.{key}"] = getattr(args, flag)
    return load_config(args.config, overrides)


def setup_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper()),
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if level != "debug":
        logging.getLogger("os_ken").setLevel(logging.WARNING)


def check_port_free(host: str, port: int) -> None:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as exc:
            raise RuntimeError(
                f"cannot listen for OpenFlow on {host}:{port}: {exc.strerror}"
            ) from None


def start_stall_exit(limit: float, fabric_app) -> None:
    """End the process, with a clear last line, once the fabric app's loop is stalled
    for ``limit`` seconds (see apps.guard.StallExit)."""
    from apps.guard import StallExit

    def leave(why: str) -> None:
        log.critical("watchdog: %s; fabricd ends (exit %d) so that a service manager or a "
                     "standby instance takes over", why, EXIT_STALLED)
        logging.shutdown()
        os._exit(EXIT_STALLED)

    def heartbeat():
        app = fabric_app()
        return None if app is None else app.heartbeat

    watchdog = StallExit(heartbeat, limit, leave)
    threading.Thread(target=watchdog.run, name="aifabric-stall-exit", daemon=True).start()


def check_config(config: FabricdConfig) -> int:
    """``--check-config``: what start-up would refuse in the files the config names
    (the state file, the admin token, the cluster's secret), then a summary line."""
    from apps.intent_file import IntentFile, IntentFileError
    from controller.private_files import read_private

    try:
        if not config.cluster.enabled and Path(config.state_file).exists():
            IntentFile(config.state_file).load()
        if not config.api.tokens and Path(config.api.token_file).expanduser().exists():
            read_private(config.api.token_file, "the admin token", 16)
        cluster_file_key(config.cluster)
    except (IntentFileError, RuntimeError) as exc:
        print(f"fabricd: config error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    of, api, c = config.openflow, config.api, config.cluster
    where = (f"cluster {c.name} as {c.node_id} on {', '.join(c.etcd)}" if c.enabled
             else f"standalone, intent in {config.state_file}")
    metrics = config.metrics.address if config.metrics.enabled else "off"
    print(f"fabricd: config OK: OpenFlow{' over TLS' if of.tls else ''} on "
          f"{of.listen_host}:{of.port}, API on {api.address}{' (TLS)' if api.tls else ''}, "
          f"metrics {metrics}, QoS {'on' if config.qos.enabled else 'off'}, "
          f"TE {'on' if config.te.enabled else 'off'}, {where}")
    return 0


def _of_listening() -> bool:
    """Whether os-ken's OpenFlow listener has bound its port (switches can connect)."""
    from apps import oskenfix  # (imported by then: os-ken's import order comes first)

    return oskenfix.listening.is_set()


# The collector's passes, every 700 allocations by default, cost a core-only sync of
# 320 switches 1.2 s of 4.5 (a fifth of fabricd's time, and they hold the GIL): at
# 50,000 the young generation is still collected every few milliseconds of work, the
# middle one every 20th time, the whole heap every 10th of those.
GC_THRESHOLDS = (50_000, 20, 10)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if threading.current_thread() is threading.main_thread():  # (a reload, once it runs)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        config = config_from_args(args)
    except ConfigError as exc:
        print(f"fabricd: config error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    if args.check_config:
        return check_config(config)
    setup_logging(config.log_level)

    # Imported late: os-ken registers its options and picks its hub at import time.
    from os_ken import cfg
    from os_ken.base import app_manager
    from os_ken.controller import controller as _of_controller  # noqa: F401  (registers opts)

    from apps import runtime
    from apps.api.server import ControllerHandle, start_api_server
    from apps.intent_file import IntentFile, IntentFileError

    intent_file = None
    if config.cluster.enabled:  # (a cluster's intent is kept in etcd: the file is not read)
        log.info("cluster mode: the operator intent is kept in etcd, not in %s",
                 config.state_file)
    else:
        intent_file = IntentFile(config.state_file)
        try:
            runtime.set_intents(intent_file.load())
        except IntentFileError as exc:
            print(f"fabricd: {exc}", file=sys.stderr)
            return EXIT_CONFIG

    try:
        check_port_free(config.openflow.listen_host, config.openflow.port)
    except RuntimeError as exc:
        print(f"fabricd: {exc}", file=sys.stderr)
        return EXIT_RUNTIME

    store = None
    if config.cluster.enabled:
        try:
            file_key = cluster_file_key(config.cluster)
        except RuntimeError as exc:
            print(f"fabricd: {exc}", file=sys.stderr)
            return EXIT_CONFIG
        store = join_cluster(config)
        if store is None:
            return EXIT_RUNTIME
        if file_key is None:
            log.warning("cluster %s: the LLDP key is kept in etcd, readable by whoever "
                        "reads etcd (give every instance cluster.secret_file, "
                        "--cluster-secret-file)", config.cluster.name)
        runtime.set_secret(file_key or store.shared_secret(os.urandom(32)))

    def fabric_app():
        return app_manager.lookup_service_brick("FabricApp")

    def published():
        app = fabric_app()
        return None if app is None else app.published

    def call(command, timeout: float = 10.0, must_run: bool = False):
        """Run ``command(commands)`` (the API's FabricCommands) on the fabric app's
        thread; NotAnswered when it did not run. ``must_run`` (a change already stored,
        to be applied): never refused or withdrawn; NotAnswered then says it is still
        to run when ``timeout`` passed."""
        from apps.api.fabric_commands import NotAnswered
        from apps.app_events import EventCall

        app = fabric_app()
        if app is None:
            raise NotAnswered("the controller is still starting")
        ev = EventCall(lambda a: command(a.commands), must_run=must_run)
        if not app.submit(ev):  # run on the fabric app's own thread, unless too many wait
            raise NotAnswered(f"the controller is busy ({app.intake.limits.calls} calls "
                              "wait): not applied")
        if not ev.done.wait(timeout):
            if must_run:
                raise NotAnswered(f"still waiting after {timeout:g} s: it runs when the "
                                  "controller gets to it")
            if ev.cancel():
                raise NotAnswered(f"not started within {timeout:g} s: not applied")
            if not ev.done.wait(60.0):  # it is running: report what it did, not a guess
                from controller.core.errors import Unavailable

                raise Unavailable(f"the command started but had not finished after "
                                  f"{timeout + 60:g} s: its outcome is unknown")
        if ev.error is not None:
            raise ev.error
        return ev.result

    def event_bus():
        app = fabric_app()
        return None if app is None else app.pub.bus

    def stalled():
        app = fabric_app()
        return None if app is None else app.stalled(config.watchdog_seconds)

    def cluster():
        app = fabric_app()
        agent = None if app is None else app.cluster.agent
        return None if agent is None else agent.status

    handle = ControllerHandle(published, call=call, event_bus=event_bus, stalled=stalled,
                              cluster=cluster,
                              write_intent=(intent_file or store).write_intent,
                              listening=_of_listening)
    try:
        server = start_api_server(config, handle)
        if config.metrics.enabled:
            from apps.api.metrics import start_metrics_server

            start_metrics_server(config.metrics.address, published, cluster)
    except RuntimeError as exc:
        print(f"fabricd: {exc}", file=sys.stderr)
        return EXIT_RUNTIME

    def stop(signum, _frame) -> None:
        log.info("received %s, stopping", signal.Signals(signum).name)
        server.stop(grace=0.5).wait(1.0)
        if store is not None:  # hand the switches over now, not when the lease expires
            try:
                store.leave()
            except Exception as exc:  # (stopping anyway)
                log.warning("cluster: could not revoke the lease: %s", exc)
        logging.shutdown()
        # Switches keep their entries (fail-mode secure); os-ken's server threads cannot
        # be joined, so leave at once.
        os._exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    # SIGHUP (a service manager's "reload"): the config is read again; what changed is
    # applied where it can be live and named where it needs a restart (it ended the
    # process before: 132 of 600 pings lost, issue 28)
    current = [config]
    signal.signal(signal.SIGHUP, lambda *_: threading.Thread(
        target=reload_config, args=(lambda: config_from_args(args), current, server),
        name="aifabric-reload", daemon=True).start())
    # every thread's stack to the log on SIGUSR1 (from C: also when no Python code runs)
    faulthandler.register(signal.SIGUSR1, file=sys.stderr, all_threads=True)
    if config.watchdog_exit_seconds:
        start_stall_exit(config.watchdog_exit_seconds, fabric_app)

    runtime.set_config(config)
    of = config.openflow
    cfg.CONF(
        [
            "--ofp-tcp-listen-port", str(of.port),
            "--ofp-listen-host", of.listen_host,
            # (TLS: os-ken serves the SSL port alone once it has a certificate)
            *(["--ofp-ssl-listen-port", str(of.port), "--ctl-privkey", of.tls.key,
               "--ctl-cert", of.tls.cert, "--ca-certs", of.tls.ca] if of.tls else []),
        ],
        project="os_ken",
        version=__version__,
    )
    cfg.CONF.set_override("echo_request_interval", of.echo_interval)
    cfg.CONF.set_override("maximum_unreplied_echo_requests", of.echo_max_unanswered)
    from apps import oskenfix

    oskenfix.configure(send_queue=of.send_queue, send_buffer=of.send_buffer)
    log.info(
        "fabricd %s: OpenFlow%s on %s:%d, API on %s, QoS %s, TE %s, link speed %s",
        __version__, " over TLS" if of.tls else "", of.listen_host, of.port,
        config.api.address,
        "on" if config.qos.enabled else "off", "on" if config.te.enabled else "off",
        f"{config.link_speed_mbps:g} Mbit/s" if config.link_speed_mbps else "as reported",
    )
    # Everything imported so far lives as long as the process: keep it out of the
    # collector's full passes, which hold the GIL (and so every app's event loop) for
    # as long as they take to walk the heap.
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
    if store is not None:
        threading.Thread(target=start_cluster_agent, args=(config, store, fabric_app),
                         name="aifabric-cluster-start", daemon=True).start()
    started = time.monotonic()

    def run_apps() -> None:
        try:
            app_manager.AppManager.run_apps(["apps.fabric_app", "apps.qos_app"])
        except BaseException:  # (on this thread, not the main one: anything ends it)
            if oskenfix.listener_error is not None:  # (os-ken then fails on its cleanup)
                log.error("controller stopped after %.1f s: OpenFlow on %s:%d: %s",
                          time.monotonic() - started, of.listen_host, of.port,
                          oskenfix.listener_error)
            else:
                log.exception("controller failed after %.1f s", time.monotonic() - started)
            os._exit(EXIT_RUNTIME)

    # The apps run on a thread of their own, and the main thread waits for it in steps:
    # a signal the kernel hands to another thread (any thread may take SIGTERM) runs its
    # Python handler only once the main thread runs Python code, which it never did
    # while blocked in os-ken's untimed join (SIGTERM was then ignored until SIGKILL).
    apps = threading.Thread(target=run_apps, name="aifabric-apps", daemon=True)
    apps.start()
    while apps.is_alive():
        apps.join(0.25)
    log.error("controller stopped after %.1f s: the apps returned", time.monotonic() - started)
    return EXIT_RUNTIME


if __name__ == "__main__":
    sys.exit(main())
