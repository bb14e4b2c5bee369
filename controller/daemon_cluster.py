"""How ``fabricd`` joins its cluster: the etcd store (after the peer port is open), the
keys made from the cluster's shared secret, and the agent that keeps this instance's
mastership once the fabric app runs."""

from __future__ import annotations

import logging
import sys
import time

from controller.config import FabricdConfig

log = logging.getLogger("aifabric.daemon")


def join_cluster(config: FabricdConfig):
    """Join the cluster's etcd (an EtcdStore), or None after saying why not."""
    from apps.cluster_peers import PeerListener
    from apps.cluster_store import EtcdStore, StoreUnavailable

    c = config.cluster
    assert c.node_id is not None
    peer = ""
    if c.peer_address:
        try:  # (held open for the life of the process: its end is what peers see)
            # (its handshakes use the key of the shared secret, known once joined)
            peer = PeerListener(c.peer_address, cluster_peer_key).address
        except OSError as exc:
            print(f"fabricd: cannot listen for peers on {c.peer_address}: {exc.strerror}",
                  file=sys.stderr)
            return None
    store = EtcdStore(c.etcd, c.name, c.node_id, timeout=c.etcd_timeout, ca_cert=c.etcd_ca,
                      cert=(c.etcd_cert, c.etcd_key) if c.etcd_cert and c.etcd_key else None,
                      peer_address=peer)
    deadline = time.monotonic() + 10.0
    said = False
    while True:
        try:
            store.join(c.lease_ttl)
            log.info("cluster %s: joined as %s (etcd %s, lease %d s, peer port %s)", c.name,
                     c.node_id, ", ".join(c.etcd), c.lease_ttl, peer or "off")
            return store
        except StoreUnavailable as exc:
            if time.monotonic() > deadline:
                print(f"fabricd: cannot join cluster {c.name!r}: {exc}", file=sys.stderr)
                return None
            if not said:
                log.warning("cluster %s: etcd not reachable yet (%s): trying for 10 s",
                            c.name, exc)
                said = True
            time.sleep(0.5)


def cluster_peer_key() -> bytes | None:
    """The peer port's key, from the cluster's shared secret (None until it is known)."""
    from apps import runtime
    from apps.cluster_peers import peer_key

    return peer_key(runtime.secret())


def cluster_file_key(c) -> bytes | None:
    """The cluster's LLDP key derived from ``secret_file`` when the instances are given
    one (then nothing secret is kept in etcd), else None (the one kept in etcd is
    used); RuntimeError saying why the file cannot be used."""
    import hashlib
    import hmac

    from controller.private_files import read_private

    if not c.secret_file:
        return None
    secret = read_private(c.secret_file, "the cluster's secret", 32)
    return hmac.new(secret.encode(), b"aifabric lldp key v1", hashlib.sha256).digest()


def start_cluster_agent(config: FabricdConfig, store, fabric_app) -> None:
    """Once the fabric app runs, start the agent that keeps this instance's mastership."""
    from apps import clock
    from apps.app_events import EventCall
    from apps.cluster_agent import ClusterAgent
    from controller.core.intent.mastership import Mastership

    while (app := fabric_app()) is None:
        time.sleep(0.05)

    def on_app(run, what: str):
        """A callback for the agent's thread that runs ``run(app, arg)`` on the app's
        own thread (one writer); nobody waits for it."""
        def hand(arg) -> None:
            def call(a) -> None:
                try:
                    run(a, arg)
                except Exception:
                    log.exception("cluster: %s failed", what)

            app.submit(EventCall(call, must_run=True))
        return hand

    c = config.cluster
    # (each on the app's thread in the order handed: the shared intent before the role
    # requests of the same step, so that a new master writes what the cluster wants)
    agent = ClusterAgent(store, Mastership(c.node_id, float(c.lease_ttl)),
                         app.cluster.connected,
                         on_app(lambda a, reqs: a.cluster.set_roles(reqs, a.dps),
                                "sending role requests"),
                         interval=max(0.05, c.lease_ttl / 5),
                         apply_intents=on_app(lambda a, i: a.commands.apply_intents(i),
                                              "applying the shared intent"),
                         peer_key=cluster_peer_key if store.peer_address else None,
                         set_leader=on_app(lambda a, lead: a.cluster.set_te_leader(lead),
                                           "changing the TE leadership"),
                         apply_moves=on_app(lambda a, m: a.cluster.apply_leader_moves(
                                                m, clock.now()),
                                            "making the TE leader's moves"))
    app.cluster.agent = agent
    agent.start()
