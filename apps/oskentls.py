"""The OpenFlow channel over TLS on os-ken's native threads (``openflow.tls``).

os-ken gives each switch a receive thread and a send thread on one socket. Over TLS
that is one OpenSSL connection, which must not be used by two threads at once (a read
and a write at the same moment can crash or corrupt the session). :class:`SerialTls`
serializes them: the socket is non-blocking, every read and write is one short call
under a lock, and a thread that must wait for the network waits outside it.

It also turns what os-ken's receive loop would misread into what it understands: the
loop retries on any ``ssl.SSLError`` (eventlet's read timeout), so a broken TLS session
would spin; here a TLS error ends the session (``ConnectionAbortedError``) and the
peer's close_notify is an end of stream.
"""

from __future__ import annotations

import select
import socket
import ssl
import threading
import time

WAIT_SLICE = 1.0  # seconds a reader waits at once (then tries again: data may be buffered)


class SerialTls:
    """An ``ssl.SSLSocket`` shared by a reader and a writer thread, one call at a time.
    Other attributes go to the socket."""

    def __init__(self, sock: ssl.SSLSocket) -> None:
        self._sock = sock
        self._lock = threading.Lock()
        self._timeout = sock.gettimeout()
        sock.setblocking(False)

    def __getattr__(self, name: str):
        return getattr(self._sock, name)

    def settimeout(self, value: float | None) -> None:
        self._timeout = value

    def gettimeout(self) -> float | None:
        return self._timeout

    def _deadline(self) -> float | None:
        return None if self._timeout is None else time.monotonic() + self._timeout

    def _wait(self, deadline: float | None, write: bool) -> None:
        left = WAIT_SLICE if deadline is None else min(WAIT_SLICE, deadline - time.monotonic())
        if left <= 0:
            raise TimeoutError("timed out")
        try:
            select.select([] if write else [self._sock], [self._sock] if write else [], [],
                          left)
        except (ValueError, OSError) as exc:  # (closed meanwhile)
            raise ConnectionAbortedError(f"TLS session closed: {exc}") from None

    def recv(self, n: int) -> bytes:
        deadline = self._deadline()
        while True:
            with self._lock:
                try:
                    return self._sock.recv(n)
                except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
                    pass
                except ssl.SSLZeroReturnError:
                    return b""  # (the peer closed the TLS session)
                except ssl.SSLError as exc:
                    raise ConnectionAbortedError(f"TLS error: {exc}") from None
            self._wait(deadline, write=False)

    def sendall(self, data) -> None:
        view = memoryview(data)
        deadline = self._deadline()
        while view:
            with self._lock:
                try:
                    view = view[self._sock.send(view):]
                    deadline = self._deadline()  # (progress: a fresh timeout)
                    continue
                except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
                    pass
                except ssl.SSLError as exc:
                    raise ConnectionAbortedError(f"TLS error: {exc}") from None
            self._wait(deadline, write=True)

    def shutdown(self, how: int) -> None:
        with self._lock:  # (not while a read or a write is in OpenSSL)
            socket.socket.shutdown(self._sock, how)

    def close(self) -> None:
        with self._lock:
            self._sock.close()


def handshake(ctx: ssl.SSLContext, sock: socket.socket, timeout: float) -> SerialTls:
    """The server side of a TLS handshake on ``sock`` within ``timeout`` seconds;
    ``ssl.SSLError`` or ``OSError`` if it fails."""
    sock.settimeout(timeout)
    tls = ctx.wrap_socket(sock, server_side=True)
    return SerialTls(tls)
