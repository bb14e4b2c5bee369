"""Fixes for os-ken 4.x on its native-thread hub.

1. Notice a switch leaving at once. When a switch closes its connection, os-ken's
   ``Datapath.serve`` joins its send thread before it declares the datapath dead; on
   native threads that thread sleeps in ``send_q.get()`` forever, so the switch is only
   declared dead when echo requests time out (seconds later), or never. Here the
   receive loop, once it ends, declares the datapath dead and wakes the send thread so
   that it exits too.
2. A switch that stops reading must not stall the controller. ``Datapath.send`` waits
   for room in a 16-message queue for as long as the socket's timeout; the fabric app
   sends from its only thread, so one stuck switch stopped every other. Here each switch
   gets a queue of ``SEND_QUEUE`` writes (a message, or a chunk of the Southbound's
   messages up to its barrier), and its send thread's progress is tracked:
   a send finds room at once (a healthy switch drains its queue far faster than the
   controller fills it), waits only while the switch is still reading, and a switch
   whose queue is full while it has read nothing for ``SEND_WAIT`` seconds is dropped
   at once (its socket shut down) and reconciled when it reconnects. A stuck switch
   that is sent little is dropped by the echo requests it never answers, long before
   its queue is full: the others do not wait for it. What a stuck switch can make the
   controller hold is bounded: ``SEND_QUEUE`` writes and ``SEND_BUFFER`` bytes of
   kernel buffer (left alone, Linux grows a session's buffer up to 16 MiB). A burst
   larger than both to a switch that stops reading in the middle of it costs the
   others at most ``SEND_WAIT`` once (it cannot be told from a slow switch sooner).
3. Say why the OpenFlow listener stopped: os-ken's native hub drops a thread's
   exception without a word (``listener_error`` keeps it for the daemon's last line).
4. Over TLS, a handshake that fails or stalls ends its connection with a line and a
   count (``tls_failures``); os-ken's waited without a timeout and failed silently.
"""

from __future__ import annotations

import functools
import logging
import queue
import socket
import ssl
import struct
import threading
import time

from os_ken.base import app_manager  # noqa: F401  (os-ken's own import order needs it first)
from os_ken.controller import controller, ofp_event
from os_ken.controller.handler import DEAD_DISPATCHER
from os_ken.lib import hub

from apps import oskentls
from controller.core.fabric.ratelog import RateLimitedLog

log = logging.getLogger("aifabric.oskenfix")
_MARK = "_aifabric_patched"
SEND_WAIT = 1.0  # seconds without progress after which a switch with a full queue is stuck
SEND_QUEUE = 4096  # writes (messages, or chunks of them) waiting for a switch's send thread
SEND_BUFFER = 1 << 20  # bytes of kernel send buffer per session (no autotuning to 16 MiB)
# connections waiting to be accepted (a fabric's every switch at once, after a controller
# restart or a network blip; the kernel caps it at net.core.somaxconn): with os-ken's 50,
# a busy controller's queue overflowed, and switches whose handshake was dropped gave up
LISTEN_BACKLOG = 4096


HANDSHAKE_TIMEOUT = 5.0  # seconds a TLS handshake may take
tls_failures = 0  # TLS handshakes that failed (read by the fabric app for its counters)
_TLS_LOG = RateLimitedLog(log)
_TLS_LOCK = threading.Lock()  # (handshakes fail on their own threads)

# Why os-ken's OpenFlow listener thread ended (os-ken's native hub drops a thread's
# exception without a word; its app manager then fails on a missing ``kill``).
listener_error: BaseException | None = None
# Set once os-ken's OpenFlow listener has bound its port: switches can connect from then
# on (the API reports SERVING only then; before, a switch connecting at once was refused).
listening = threading.Event()


def configure(send_queue: int, send_buffer: int) -> None:
    """Per-switch bounds on what the controller holds for a switch that does not read."""
    global SEND_QUEUE, SEND_BUFFER
    SEND_QUEUE, SEND_BUFFER = send_queue, send_buffer


SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)  # (Linux; also SCM_TIMESTAMPNS)


class StampedSocket:
    """A switch's socket whose reads note when the kernel received the bytes read
    (``arrived``, wall clock: SO_TIMESTAMPNS), so that a message's age does not include
    the time its receive thread waited for the interpreter lock (a busy controller took
    its own LLDP probes for stale). Everything else goes to the socket itself."""

    def __init__(self, sock: socket.socket) -> None:
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        self._sock = sock
        self.arrived: float | None = None

    def recv(self, n: int) -> bytes:
        data, ancillary, _, _ = self._sock.recvmsg(n, socket.CMSG_SPACE(16))
        # (of this read only: the kernel stamps nothing until its timestamping is on,
        # which it turns on a moment after the first socket asks; then None, and the
        # message is dated when read, not by an older read's stamp)
        self.arrived = None
        for level, kind, raw in ancillary:
            if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(raw) >= 16:
                sec, nsec = struct.unpack("qq", raw[:16])
                self.arrived = sec + nsec / 1e9
        return data

    def __getattr__(self, name: str):
        return getattr(self._sock, name)


class ProgressQueue(queue.Queue):
    """A switch's send queue that remembers when its send thread last took a message."""

    def __init__(self, maxsize: int) -> None:
        super().__init__(maxsize)
        self.taken_at = time.monotonic()

    def get(self, block: bool = True, timeout: float | None = None):
        item = super().get(block, timeout)
        self.taken_at = time.monotonic()
        return item


def apply() -> None:
    """Patch ``Datapath`` (idempotent): its receive loop, its send queue, its send."""
    original = controller.Datapath._recv_loop
    if getattr(original, _MARK, False):
        return

    @functools.wraps(original)
    def recv_loop(self) -> None:
        try:
            original(self)
        finally:
            self.set_state(DEAD_DISPATCHER)
            q = self.send_q
            if q is not None and self._send_q_sem.acquire(blocking=False):
                q.put((b"", True))  # the send loop exits after this (closing) item

    init = controller.Datapath.__init__

    @functools.wraps(init)
    def datapath_init(self, *args, **kwargs) -> None:
        init(self, *args, **kwargs)
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER)
        if type(self.socket) is socket.socket:  # (not TLS: its reads are its own)
            try:
                self.socket = StampedSocket(self.socket)
            except OSError as exc:  # (no kernel timestamps: messages stamped when read)
                log.debug("no receive timestamps on %s: %s", self.address, exc)
        self.send_q = ProgressQueue(SEND_QUEUE)
        self._send_q_sem = threading.BoundedSemaphore(SEND_QUEUE)

    serve = controller.OpenFlowController.server_loop

    @functools.wraps(serve)
    def server_loop(self, *args, **kwargs) -> None:
        global listener_error
        try:
            serve(self, *args, **kwargs)
        except BaseException as exc:
            listener_error = exc
            log.error("the OpenFlow listener stopped: %s", exc)
            raise

    class ListeningServer(controller.StreamServer):
        """os-ken's StreamServer, which binds in its constructor: says when it has, and
        takes a storm of connections (os-ken listens with a backlog of 50). Over TLS,
        a handshake that fails or does not finish in ``HANDSHAKE_TIMEOUT`` ends its
        connection with a line (per peer address, at most one per 10 s) and a count;
        os-ken's own waited forever and failed without a word."""

        def __init__(self, listen_info, handle=None, *args, **kwargs) -> None:
            # (os-ken's server handshakes without a timeout and then shares one TLS
            # connection between two threads: here both are done by oskentls)
            self.tls_ctx = kwargs.get("ssl_ctx")
            super().__init__(listen_info, handle, *args, **kwargs)
            self.serve = handle
            self.server.listen(LISTEN_BACKLOG)  # (listening again sets the backlog)
            listening.set()

        def serve_forever(self) -> None:
            while True:
                sock, addr = self.server.accept()
                if self.tls_ctx is None:
                    hub.spawn(self.serve, sock, addr)
                else:
                    hub.spawn(self._serve_tls, sock, addr)

        def _serve_tls(self, sock: socket.socket, addr) -> None:
            try:
                tls = oskentls.handshake(self.tls_ctx, sock, HANDSHAKE_TIMEOUT)
            except (ssl.SSLError, OSError) as exc:
                global tls_failures
                with _TLS_LOCK:
                    tls_failures += 1
                    _TLS_LOG.log(logging.WARNING, str(addr[0]), time.monotonic(),
                                 "OpenFlow connection from %s refused: TLS handshake "
                                 "failed (%s)", addr[0], exc)
                sock.close()
                return
            self.serve(tls, addr)

    msg_init = ofp_event.EventOFPMsgBase.__init__

    @functools.wraps(msg_init)
    def event_init(self, msg) -> None:
        msg_init(self, msg)
        arrived = getattr(getattr(msg.datapath, "socket", None), "arrived", None)
        if arrived is not None and arrived < self.timestamp:
            self.timestamp = arrived  # (when the kernel had it: see StampedSocket)

    ofp_event.EventOFPMsgBase.__init__ = event_init
    setattr(recv_loop, _MARK, True)
    controller.StreamServer = ListeningServer
    controller.Datapath._recv_loop = recv_loop
    controller.OpenFlowController.server_loop = server_loop
    controller.Datapath.__init__ = datapath_init
    controller.Datapath.send = bounded_send


def bounded_send(self, buf, close_socket=False) -> bool:
    """``Datapath.send`` that waits for a switch only while the switch is reading."""
    if getattr(self, "_aifabric_stuck", False):
        return False
    sem = self._send_q_sem
    if not sem.acquire(blocking=False):  # full: is the switch still reading?
        while True:
            taken_at = getattr(self.send_q, "taken_at", None)
            idle = 0.0 if taken_at is None else time.monotonic() - taken_at
            if idle >= SEND_WAIT:
                _drop(self, idle)
                return False
            if sem.acquire(timeout=SEND_WAIT - idle):
                break
            if taken_at is None:  # a plain queue: no progress to judge, the wait is all
                _drop(self, SEND_WAIT)
                return False
    q = self.send_q
    if q is None:  # terminating
        sem.release()
        return False
    q.put((buf, close_socket))
    return True


def _drop(dp, idle: float) -> None:
    log.error("switch %s (%s) has not read its OpenFlow session for %.1f s and its send "
              "queue is full: its connection is dropped; it is reconciled when it "
              "reconnects", dp.id, dp.address, idle)
    end_session(dp)


def end_session(dp) -> None:
    """End a switch's session from any thread (its receive loop then declares it dead,
    and the switch is reconciled when it reconnects)."""
    dp._aifabric_stuck = True
    try:
        dp.socket.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
