"""Fast failure detection between a cluster's instances.

Each instance listens on a TCP port (announced in its member key) and holds one
connection to every other member's port. When a process ends, however it ends (SIGKILL
included), the kernel closes its sockets: its peers see their connection close at once,
and revoke its lease in etcd, so its switches get a new master in a fraction of the
lease TTL. A process that hangs, a machine that dies or a network partition closes
nothing: the lease TTL covers those, as before.

The port is reachable by others, so both ends authenticate first, with an HMAC
challenge under a key every instance derives from the cluster's shared secret
(:func:`peer_key`): the listener sends a nonce, the watcher answers with its own, its
name and a MAC of both, and the listener proves itself in turn. Only the close of a
connection that was authenticated is a death: a connection refused (300 held open by
someone else used to make a live peer's connection close at once, and its lease be
revoked for as long as the flood lasted), closed or failing before the proof is not,
and is tried again. The listener keeps only authenticated connections; a handshake
must end within ``HANDSHAKE_SECONDS``, and at most ``MAX_PENDING`` are under way.

Revoking a live member's lease (an authenticated connection closed by something else
than its end) is safe: that member finds its lease gone at its next keepalive, steps
down and joins again; the switches refuse whatever it sends with its old generation
meanwhile.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Mapping

from controller.config_daemon import parse_host_port
from controller.core.fabric.ratelog import RateLimitedLog

log = logging.getLogger("aifabric.cluster")

MAX_HELD = 256  # authenticated connections a listener keeps open (one per peer)
MAX_PENDING = 32  # handshakes under way at once (more connections are closed at once)
HANDSHAKE_SECONDS = 2.0
MAGIC = b"AFP1"
NONCE = 16
MAC = 32

Key = Callable[[], bytes | None]  # the peer key, once this instance knows the secret


def peer_key(secret: bytes | None) -> bytes | None:
    """The key of the peer port's handshake, from the cluster's shared secret."""
    if not secret:
        return None
    return hmac.new(secret, b"aifabric cluster peer port v1", hashlib.sha256).digest()


def _mac(key: bytes, *parts: bytes) -> bytes:
    return hmac.new(key, b"\0".join(parts), hashlib.sha256).digest()


def _recv_exactly(conn: socket.socket, n: int) -> bytes:
    out = bytearray()
    while len(out) < n:
        chunk = conn.recv(n - len(out))
        if not chunk:
            raise ConnectionError("closed during the handshake")
        out += chunk
    return bytes(out)


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

    def __init__(self, address: str, key: Key) -> None:
        host, port = parse_host_port(address, any_port=True)
        self._key = key
        self._sock = socket.create_server((host, port), backlog=64)
        self.address = f"{host}:{self._sock.getsockname()[1]}"
        self._held: list[socket.socket] = []
        self._lock = threading.Lock()
        self._pending = threading.BoundedSemaphore(MAX_PENDING)
        self._rlog = RateLimitedLog(log)
        self.refused = 0  # connections closed without a valid proof
        threading.Thread(target=self._accept, name="aifabric-peer-listener",
                         daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, addr = self._sock.accept()
            except OSError:
                return  # (closed)
            if not self._pending.acquire(blocking=False):
                self._refuse(conn, addr, "too many handshakes under way")
                continue
            threading.Thread(target=self._handshake, args=(conn, addr),
                             name="aifabric-peer-handshake", daemon=True).start()

    def _handshake(self, conn: socket.socket, addr) -> None:
        try:
            key = self._key()
            if key is None:
                raise ConnectionError("this instance does not know the cluster's key yet")
            conn.settimeout(HANDSHAKE_SECONDS)
            deadline = time.monotonic() + HANDSHAKE_SECONDS
            ours = os.urandom(NONCE)
            conn.sendall(MAGIC + ours)
            head = _recv_exactly(conn, len(MAGIC) + NONCE + 1)
            if head[:len(MAGIC)] != MAGIC:
                raise ConnectionError("not a peer of this cluster")
            theirs, name_len = head[len(MAGIC):-1], head[-1]
            rest = _recv_exactly(conn, name_len + MAC)
            name, proof = rest[:name_len], rest[name_len:]
            if not hmac.compare_digest(proof, _mac(key, b"watch", ours, theirs, name)):
                raise ConnectionError("wrong proof (another cluster's key?)")
            if time.monotonic() > deadline:
                raise ConnectionError("handshake too slow")
            conn.sendall(_mac(key, b"listen", theirs, ours, name))
            conn.settimeout(None)
        except (OSError, ValueError) as exc:
            self._refuse(conn, addr, str(exc))
            return
        finally:
            self._pending.release()
        with self._lock:
            if len(self._held) >= MAX_HELD:
                self._held = [c for c in self._held if _open(c)]
            if len(self._held) >= MAX_HELD:
                self._refuse(conn, addr, f"{MAX_HELD} peer connections held already")
                return
            self._held.append(conn)  # kept open for as long as this process lives

    def _refuse(self, conn: socket.socket, addr, why: str) -> None:
        self.refused += 1
        host = addr[0] if isinstance(addr, tuple) and addr else "?"
        self._rlog.log(logging.WARNING, host, time.monotonic(),
                       "cluster: peer connection from %s refused: %s", host, why)
        conn.close()

    def close(self) -> None:
        self._sock.close()
        with self._lock:
            for conn in self._held:
                conn.close()
            self._held.clear()


class PeerWatch:
    """One thread per other member, blocked on its connection; ``on_gone(node, lease)``
    when an authenticated connection closes (the member's process ended). A member that
    could not be reached or did not prove itself is tried again on the next
    :meth:`update`."""

    def __init__(self, on_gone: Callable[[str, int], None], key: Key, node: str,
                 timeout: float = 1.0) -> None:
        self._on_gone = on_gone
        self._key = key
        self._node = node.encode()[:255]
        self._timeout = timeout
        self._watched: dict[str, tuple[str, int]] = {}  # node -> (address, lease)
        self._lock = threading.Lock()
        self._rlog = RateLimitedLog(log)

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

    def _authenticate(self, conn: socket.socket) -> None:
        """The watcher's side of the handshake; ConnectionError saying why it failed."""
        key = self._key()
        if key is None:
            raise ConnectionError("this instance does not know the cluster's key yet")
        conn.settimeout(HANDSHAKE_SECONDS)
        head = _recv_exactly(conn, len(MAGIC) + NONCE)
        if head[:len(MAGIC)] != MAGIC:
            raise ConnectionError("not a peer port")
        theirs, ours = head[len(MAGIC):], os.urandom(NONCE)
        conn.sendall(MAGIC + ours + bytes([len(self._node)]) + self._node
                     + _mac(key, b"watch", theirs, ours, self._node))
        proof = _recv_exactly(conn, MAC)
        if not hmac.compare_digest(proof, _mac(key, b"listen", ours, theirs, self._node)):
            raise ConnectionError("wrong proof (not a peer of this cluster)")

    def _watch(self, node: str, address: str, lease: int) -> None:
        try:
            host, port = parse_host_port(address, any_port=True)
            conn = socket.create_connection((host, port), timeout=self._timeout)
        except (OSError, ValueError) as exc:
            log.debug("cluster: cannot reach %s's peer port %s: %s", node, address, exc)
            self._forget(node, address, lease)  # (tried again on the next update)
            return
        try:
            self._authenticate(conn)
        except OSError as exc:  # (refused, closed or failed before the proof: no death)
            self._rlog.log(logging.WARNING, node, time.monotonic(),
                           "cluster: %s's peer port %s did not authenticate: %s", node,
                           address, exc)
            conn.close()
            self._forget(node, address, lease)
            return
        try:
            conn.settimeout(None)
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
            while conn.recv(4096):  # (a peer never sends after the handshake)
                pass
        except OSError:
            pass
        finally:
            conn.close()
        if self._still(node, address, lease):
            self._forget(node, address, lease)
            log.warning("cluster: %s's process ended (its peer connection closed)", node)
            self._on_gone(node, lease)
