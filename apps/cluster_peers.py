"""Fast failure detection between a cluster's instances.

Each instance listens on a TCP port (announced in its member key) and holds one
connection to every other member's port, on which nothing is ever sent. When a process
ends, however it ends (SIGKILL included), the kernel closes its sockets: its peers see
their connection close at once, and revoke its lease in etcd, so its switches get a new
master in a fraction of the lease TTL. A process that hangs, a machine that dies or a
network partition closes nothing: the lease TTL covers those, as before.

Revoking a live member's lease (a connection closed by something else than its end) is
safe: that member finds its lease gone at its next keepalive, steps down and joins
again; the switches refuse whatever it sends with its old generation meanwhile.
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable, Mapping

from controller.config_daemon import parse_host_port

log = logging.getLogger("aifabric.cluster")

MAX_HELD = 256  # connections a listener keeps open (one per peer; more are refused)


def _open(conn: socket.socket) -> bool:
    """False once the other end closed ``conn`` (or it failed)."""
    try:
        return conn.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) != b""
    except BlockingIOError:
        return True  # (open, nothing sent)
    except OSError:
        return False


class PeerListener:
    """The port other instances connect to (and hold) to see this process end."""

    def __init__(self, address: str) -> None:
        host, port = parse_host_port(address, any_port=True)
        self._sock = socket.create_server((host, port), backlog=16)
        self.address = f"{host}:{self._sock.getsockname()[1]}"
        self._held: list[socket.socket] = []
        threading.Thread(target=self._accept, name="aifabric-peer-listener",
                         daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return  # (closed)
            if len(self._held) >= MAX_HELD:
                self._held = [c for c in self._held if _open(c)]
            if len(self._held) >= MAX_HELD:
                # refused, not the oldest closed: a flood of connections must not close
                # a peer's (the peer would take it for this process's end)
                conn.close()
                continue
            self._held.append(conn)  # kept open for as long as this process lives

    def close(self) -> None:
        self._sock.close()
        for conn in self._held:
            conn.close()
        self._held.clear()


class PeerWatch:
    """One thread per other member, blocked on its connection; ``on_gone(node, lease)``
    when the connection closes (the member's process ended). A member that could not be
    reached is tried again on the next :meth:`update`."""

    def __init__(self, on_gone: Callable[[str, int], None], timeout: float = 1.0) -> None:
        self._on_gone = on_gone
        self._timeout = timeout
        self._watched: dict[str, tuple[str, int]] = {}  # node -> (address, lease)
        self._lock = threading.Lock()

    def update(self, peers: Mapping[str, tuple[str, int]]) -> None:
        """Watch these members (node -> (address, lease)); stop caring about others."""
        with self._lock:
            for node in list(self._watched):
                if peers.get(node) != self._watched[node]:
                    del self._watched[node]  # (its thread ends unheard when it closes)
            for node, (address, lease) in peers.items():
                if node not in self._watched:
                    self._watched[node] = (address, lease)
                    threading.Thread(target=self._watch, args=(node, address, lease),
                                     name=f"aifabric-peer-{node}", daemon=True).start()

    def watching(self) -> dict[str, tuple[str, int]]:
        with self._lock:
            return dict(self._watched)

    def _still(self, node: str, address: str, lease: int) -> bool:
        with self._lock:
            return self._watched.get(node) == (address, lease)

    def _forget(self, node: str, address: str, lease: int) -> None:
        with self._lock:
            if self._watched.get(node) == (address, lease):
                del self._watched[node]

    def _watch(self, node: str, address: str, lease: int) -> None:
        try:
            host, port = parse_host_port(address, any_port=True)
            conn = socket.create_connection((host, port), timeout=self._timeout)
        except (OSError, ValueError) as exc:
            log.debug("cluster: cannot reach %s's peer port %s: %s", node, address, exc)
            self._forget(node, address, lease)  # (tried again on the next update)
            return
        try:
            conn.settimeout(None)
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
            while conn.recv(4096):  # (a peer never sends: data would be ignored)
                pass
        except OSError:
            pass
        finally:
            conn.close()
        if self._still(node, address, lease):
            self._forget(node, address, lease)
            log.warning("cluster: %s's process ended (its peer connection closed)", node)
            self._on_gone(node, lease)
