"""Fast failure detection (apps/cluster_peers.py) with real processes and a real etcd: a
member killed with SIGKILL is seen gone within milliseconds (its kernel closes its peer
port), a member that is only slow is not, one that cannot be reached yet is tried again;
revoking a member's lease takes its keys at once. The port authenticates: a connection
that did not prove itself is never held, and its close is never a death."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

from apps.cluster_peers import PeerListener, PeerWatch
from apps.cluster_store import EtcdStore
from mininet_topos.controller_proc import free_port
from mininet_topos.etcd_proc import EtcdProcess

# (timing: leases, handshake deadlines; a lane in the idle class may be starved for
# seconds while the Mininet lane is busy: scripts/run_tests.py)
pytestmark = pytest.mark.serial

KEY = b"k" * 32
MEMBER = """
import sys, time
from apps.cluster_peers import PeerListener
print(PeerListener("127.0.0.1:0", lambda: b"k" * 32).address, flush=True)
time.sleep(60)
"""


def key():
    return KEY


def member() -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([sys.executable, "-c", MEMBER], stdout=subprocess.PIPE,
                            text=True, cwd=os.getcwd())
    assert proc.stdout is not None
    return proc, proc.stdout.readline().strip()


def test_a_killed_member_is_seen_gone_at_once_and_a_stopped_one_is_not():
    gone: list[tuple[str, int, float]] = []
    seen = threading.Event()

    def on_gone(node: str, lease: int) -> None:
        gone.append((node, lease, time.monotonic()))
        seen.set()

    watch = PeerWatch(on_gone, key, "w")
    killed, killed_at = member()
    frozen, frozen_at = member()
    try:
        watch.update({"k": (killed_at, 11), "f": (frozen_at, 12)})
        time.sleep(0.3)  # (connected)
        frozen.send_signal(signal.SIGSTOP)  # hung, not dead: its sockets stay open
        t0 = time.monotonic()
        killed.kill()
        assert seen.wait(2.0)
        assert [(n, lease) for n, lease, _ in gone] == [("k", 11)]
        assert gone[0][2] - t0 < 0.5
        time.sleep(0.5)
        assert len(gone) == 1 and "f" in watch.watching()  # the lease covers a hang
    finally:
        frozen.send_signal(signal.SIGCONT)
        frozen.kill()
        killed.kill()
        frozen.wait()
        killed.wait()


def test_an_unreachable_member_is_tried_again_and_a_forgotten_one_is_not_reported():
    gone: list = []
    watch = PeerWatch(lambda node, lease: gone.append(node), key, "w", timeout=0.5)
    port = free_port()
    watch.update({"late": (f"127.0.0.1:{port}", 1)})  # nobody listens yet
    deadline = time.monotonic() + 3
    while "late" in watch.watching():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    listener = PeerListener(f"127.0.0.1:{port}", key)  # it starts
    watch.update({"late": (listener.address, 1)})
    time.sleep(0.3)
    assert "late" in watch.watching()
    watch.update({})  # it left the cluster (a new lease, or gone): no longer ours to report
    listener.close()
    time.sleep(0.3)
    assert gone == []


@pytest.fixture(scope="module")
def etcd(tmp_path_factory):
    with EtcdProcess(tmp_path_factory.mktemp("etcd") / "data") as proc:
        yield proc


def test_a_revoked_lease_takes_its_members_keys_at_once(etcd):
    a = EtcdStore([etcd.url], "p1", "a", peer_address="127.0.0.1:4000")
    b = EtcdStore([etcd.url], "p1", "b")
    a.join(30, connected=[1])
    b.join(30)
    assert a.claim(1) is not None
    view = b.view()
    assert view.peers == {"a": ("127.0.0.1:4000", a.lease_id)}  # (b announces none)
    assert b.revoke(a.lease_id)
    view = b.view()
    assert view.members == {"b"} and view.holders == {}
    assert not b.revoke(a.lease_id)  # gone already
    assert not a.keepalive()  # a finds out at its next keepalive
    b.leave()


def test_a_flood_of_connections_never_closes_a_peers_connection(monkeypatch):
    import apps.cluster_peers as P

    monkeypatch.setattr(P, "MAX_PENDING", 4)
    listener = PeerListener("127.0.0.1:0", key)
    gone: list = []
    watch = PeerWatch(lambda node, lease: gone.append(node), key, "w")
    try:
        watch.update({"peer": (listener.address, 1)})
        assert wait(lambda: len(listener._held) == 1)
        host, port = listener.address.split(":")
        flood = [socket.create_connection((host, int(port))) for _ in range(20)]
        time.sleep(0.3)
        assert gone == [] and "peer" in watch.watching()  # the peer's is kept
        assert len(listener._held) == 1  # (none of the flood: they proved nothing)
        # a peer that connects during the flood is refused, and that is no death
        late = PeerWatch(lambda node, lease: gone.append(node), key, "late")
        late.update({"peer": (listener.address, 2)})
        time.sleep(0.5)
        assert gone == []
        for c in flood:
            c.close()
        late.update({"peer": (listener.address, 2)})  # (tried again: as the agent does)
        assert wait(lambda: len(listener._held) == 2)
        late.update({})
    finally:
        watch.update({})
        listener.close()


def wait(pred, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_only_a_proven_connection_counts_a_close_as_a_death():
    """A listener of another cluster (another key) and a port that is no peer's: the
    watcher never authenticates, so their close is not a member's death; and the
    listener refuses a watcher with a wrong key."""
    other = PeerListener("127.0.0.1:0", lambda: b"x" * 32)
    gone: list = []
    watch = PeerWatch(lambda node, lease: gone.append(node), key, "w")
    plain = socket.create_server(("127.0.0.1", 0))
    silent = f"127.0.0.1:{plain.getsockname()[1]}"
    try:
        watch.update({"other": (other.address, 1), "silent": (silent, 2)})
        conn, _ = plain.accept()
        conn.close()  # a port that closes at once: no proof, no death
        assert wait(lambda: "other" not in watch.watching())  # refused: tried again later
        other.close()
        time.sleep(0.3)
        assert gone == [] and other.refused >= 1 and other._held == []
    finally:
        watch.update({})
        plain.close()
