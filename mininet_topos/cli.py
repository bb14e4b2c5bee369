"""``aifabric-mininet``: bring up a spine-leaf fabric on Mininet against fabricd.

  run   start a fabric against a running controller (--controller tcp:HOST:PORT) or
        start fabricd itself, then open the Mininet CLI or wait for Ctrl-C
  demo  start fabricd and a fabric, show the discovered topology and a reachability
        matrix, and tear everything down (what `make demo` runs)
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

from mininet_topos.controller_proc import FabricdProcess
from mininet_topos.discovery import discovery_seconds, wait_discovered
from mininet_topos.network import (
    cleanup,
    fabric_network,
    is_root,
    reachability,
    wait_qos_provisioned,
)
from mininet_topos.spine_leaf import FabricSpec


def _spec(args) -> FabricSpec:
    try:
        return FabricSpec(args.spines, args.leaves, args.hosts_per_leaf,
                          None if args.bw == 0 else args.bw, args.oversub, args.uplink_bw,
                          tuple(_pair(x) for x in args.extra_link),
                          tuple(_pair(x) for x in args.omit_link), args.pods, args.supers,
                          args.planes)
    except ValueError as exc:
        raise SystemExit(f"aifabric-mininet: error: {exc}") from None


def _pair(text: str) -> tuple[str, str]:
    a, sep, b = text.partition("-")
    if not sep or not a or not b:
        raise SystemExit(f"aifabric-mininet: error: expected NODE-NODE (e.g. l1-l2), got {text!r}")
    return a, b


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--spines", type=int, default=2,
                   help="number of spines (per pod with --pods; default 2)")
    p.add_argument("--leaves", type=int, default=4,
                   help="number of leaves (per pod with --pods; default 4)")
    p.add_argument("--pods", type=int, default=1,
                   help="three tiers: this many pods of --spines x --leaves, under "
                        "--spines spine planes of --supers super-spines (default 1: "
                        "two tiers)")
    p.add_argument("--planes", type=int, default=1,
                   help="this many disconnected fabrics of that shape, as servers with "
                        "a NIC per plane are wired (each plane its own hosts; default 1)")
    p.add_argument("--rails", action="store_true",
                   help="a rail-optimized group: each leaf a rail, host k of every leaf a "
                        "NIC of server k (the fabricd started here is told so; see "
                        "fabricctl servers)")
    p.add_argument("--supers", type=int, default=0,
                   help="three tiers: super-spines per spine plane (needs --pods 2 or "
                        "more; default 0)")
    p.add_argument("--hosts-per-leaf", type=int, default=2, help="hosts per leaf (default 2)")
    p.add_argument("--bw", type=float, default=10.0,
                   help="host link rate in Mbit/s, 0 for unshaped (default 10)")
    p.add_argument("--oversub", type=float, default=1.0,
                   help="oversubscription, host:uplink bandwidth per leaf (default 1)")
    p.add_argument("--uplink-bw", type=float, default=None,
                   help="uplink rate in Mbit/s (default: derived from --bw and --oversub)")
    p.add_argument("--extra-link", action="append", default=[], metavar="A-B",
                   help="miswire on purpose: add a cable, e.g. l1-l2 (repeatable)")
    p.add_argument("--omit-link", action="append", default=[], metavar="A-B",
                   help="miswire on purpose: leave a cable out, e.g. l4-s2 or s1-x2")
    p.add_argument("--log", default=None,
                   help="fabricd log file when started here (default: a temporary file)")


def print_matrix(names: list[str], ok: dict[tuple[str, str], bool],
                 apart: set[tuple[str, str]] = frozenset()) -> None:
    """ok / XX per ordered pair; pairs in ``apart`` (different planes) are expected to
    fail: "." when they do, "!!" when they do not."""
    width = max(len(n) for n in names) + 1
    print(" " * width + " ".join(n.rjust(width) for n in names))
    for a in names:
        cells = ["-" if a == b else ("!!" if ok[(a, b)] else ".") if (a, b) in apart
                 else ("ok" if ok[(a, b)] else "XX") for b in names]
        print(a.ljust(width) + " ".join(c.rjust(width) for c in cells))


def planes_apart(spec: FabricSpec, names: list[str]) -> set[tuple[str, str]]:
    """Pairs of hosts (h1..) in different planes: no path between them, by design."""
    plane = {n: spec.plane_of_leaf(spec.host_leaf(int(n[1:]))) for n in names}
    return {(a, b) for a in names for b in names if plane[a] != plane[b]}


def rails_config(spec: FabricSpec) -> dict:
    """fabricd's configuration for a rail-optimized group: every leaf a rail, and host
    k of every leaf a NIC of server k (hosts are numbered leaf by leaf, 10.0.0.1 on)."""
    if spec.n_leaves > 64:
        raise SystemExit(f"aifabric-mininet: error: --rails makes a rail of each leaf: "
                         f"{spec.n_leaves} leaves is over 64 rails")
    if spec.hosts_per_leaf < 1:
        raise SystemExit("aifabric-mininet: error: --rails needs --hosts-per-leaf 1 or more")
    return {"server_rule": {"servers": spec.hosts_per_leaf, "rails": spec.n_leaves,
                            "first": "10.0.0.1", "name": "server{n}"}}


def _start_fabricd(stack: ExitStack, args, extra: list[str]) -> FabricdProcess:
    # not in /tmp: Mininet's clean-up (mn -c) deletes /tmp/*.log
    log = args.log or tempfile.mktemp(prefix="aifabric-fabricd-", suffix=".log", dir="/var/tmp")
    if args.rails:
        cfg = Path(log).with_suffix(".rails.yaml")
        cfg.write_text(json.dumps(rails_config(_spec(args))))
        extra = [*extra, "--config", str(cfg)]
        print(f"servers: host k of every leaf is a NIC of server k, rail = its leaf ({cfg})")
    ctl = FabricdProcess(log, extra_args=extra)
    print(f"starting fabricd (OpenFlow :{ctl.of_port}, API {ctl.grpc_addr}, log {log})")
    ctl.start()
    stack.callback(ctl.stop)
    return ctl


def cmd_demo(args) -> int:
    spec = _spec(args)
    cleanup()
    with ExitStack() as stack:
        ctl = _start_fabricd(stack, args, ["--link-speed", str(spec.bw or 10000)])
        print(f"starting a {spec.shape()} fabric with {spec.n_hosts} hosts on Mininet "
              "(userspace Open vSwitch)")
        net = stack.enter_context(fabric_network(spec, ctl.controller))
        with ctl.client() as client:
            topo = wait_discovered(client, spec, timeout=60)
            if client.status().qos_enabled:
                wait_qos_provisioned(net)
        print(f"discovered {len(topo['switches'])} switches and {len(topo['links'])} link "
              f"directions in {discovery_seconds(topo):.2f} s\n")
        t0 = time.monotonic()
        ok = reachability(net, count=1, timeout=2)
        elapsed = time.monotonic() - t0
        for command in (["topology"], ["qos", "show"], *([["servers"]] if args.rails else [])):
            subprocess.run([sys.executable, "-m", "controller.cli.fabricctl", "--server",
                            ctl.grpc_addr, *command], check=False)
            print()
        names = [h.name for h in net.hosts]
        apart = planes_apart(spec, names)
        print(f"\nReachability ({len(ok)} ordered pairs, one ping each, {elapsed:.1f} s"
              + (", pairs in different planes marked ." if apart else "") + "):")
        print_matrix(names, ok, apart)
        failed = [pair for pair, good in ok.items() if good == (pair in apart)]
        within = [pair for pair in ok if pair not in apart]
        print(f"\n{sum(ok[p] for p in within)}/{len(within)} pairs reachable"
              + ("" if not failed else f"; wrong: {failed[:10]}"))
        if not failed:
            demo_traffic(net, ctl, spec, args.traffic_seconds)
        print("tearing down")
    return 0 if not failed else 1


def demo_traffic(net, ctl, spec: FabricSpec, seconds: float) -> None:
    """Long TCP flows from every host to a host one leaf further, placed by TE: the
    flows and their spines, and the aggregate against the non-blocking rate."""
    if seconds <= 0 or not spec.bw or spec.leaves < 2:
        return
    from mininet_topos import patterns
    from mininet_topos import traffic as T

    hosts = net.hosts
    pairs = patterns.stride(len(hosts), spec.hosts_per_leaf)
    print(f"\nTraffic engineering: {len(pairs)} TCP flows, every host to a host one leaf "
          f"further, {seconds:g} s measured ...")
    for _, d in pairs:
        T.start_servers(hosts[d], [5201])
    procs = [T.tcp_flow(hosts[a], hosts[b].IP(), 5201, seconds, omit=3) for a, b in pairs]
    time.sleep(3 + seconds / 2)
    subprocess.run([sys.executable, "-m", "controller.cli.fabricctl", "--server", ctl.grpc_addr,
                    "flows", "--large"], check=False)
    results = [T.result(p, timeout=seconds + 60) for p in procs]
    total = sum(r.received_mbps for r in results)
    ideal = patterns.receiver_limited_rate(pairs, spec.bw)
    print(f"aggregate {total:.1f} Mbit/s of {ideal:g} Mbit/s non-blocking ({total / ideal:.0%}); "
          "`make bench` compares with hash ECMP (docs/bench-te.md)")


def cmd_run(args) -> int:
    spec = _spec(args)
    with ExitStack() as stack:
        controller = args.controller
        if controller is not None and args.rails:
            print("aifabric-mininet: --rails describes the servers to a fabricd started "
                  "here; give yours servers: in its configuration", file=sys.stderr)
        if controller is None:
            extra = ["--link-speed", str(spec.bw)] if spec.bw else []
            controller = _start_fabricd(stack, args, extra).controller
        net = stack.enter_context(fabric_network(spec, controller, quiet=False))
        print(f"fabric up against {controller}; hosts: "
              + " ".join(f"{h.name}={h.IP()}" for h in net.hosts))
        if args.cli:
            from mininet.cli import CLI

            CLI(net)
        else:
            print("press Ctrl-C to stop")
            try:
                while True:
                    time.sleep(3600)
            except KeyboardInterrupt:
                pass
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="aifabric-mininet", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="bring a fabric up and keep it up")
    _common(run)
    run.add_argument("--controller", default=None, metavar="tcp:HOST:PORT",
                     help="use a running controller (default: start fabricd here)")
    run.add_argument("--cli", action="store_true", help="open the Mininet CLI")
    run.set_defaults(func=cmd_run)
    demo = sub.add_parser("demo", help="discovery + reachability demo, then tear down")
    _common(demo)
    demo.add_argument("--traffic-seconds", type=float, default=8.0,
                      help="TCP flows placed by traffic engineering after the "
                           "reachability check (0: none; default 8)")
    demo.set_defaults(func=cmd_demo)
    args = p.parse_args(argv)
    if not is_root():
        print("aifabric-mininet: must run as root (Mininet needs it)", file=sys.stderr)
        return 1
    Path("/tmp").mkdir(exist_ok=True)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
