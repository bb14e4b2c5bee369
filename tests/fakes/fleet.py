"""A fleet of fake OpenFlow 1.3 switches, each on its own TCP session to a controller,
all served by one ``selectors`` I/O thread (so a fleet of a thousand switches is a
thousand sockets, not a thousand threads), and cabled together: a frame a switch sends
out of a cabled port arrives on the peer's port and goes through the peer's pipeline,
as on a real fabric (a controller's LLDP probe comes back as a packet-in only if the
peer holds an entry that punts LLDP). A frame out of an uncabled port (a host port) is
counted and handed to ``on_host_frame`` if given.

Threads: the I/O thread does all socket work and runs every switch while holding
``lock``; the public methods may be called from any thread (they take ``lock``, and
socket work is handed to the I/O thread). ``on_host_frame(fleet, dpid, port, data)``
runs on the I/O thread with the lock held: it must not block (it may call
:meth:`inject`).

A switch keeps its state when its session ends (fail-secure mode); :meth:`reconnect`
with ``wipe=True`` is a rebooted switch. With ``reconnect_interval``, a session the
controller closes (or refuses) is retried after that many seconds, as Open vSwitch
does; else it stays closed until :meth:`connect` (see :meth:`closed_by_peer`).
"""

from __future__ import annotations

import collections
import errno
import math
import selectors
import socket
import struct
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any

from os_ken.ofproto import ofproto_v1_3 as ofp

from tests.fakes.layout import End, Layout
from tests.fakes.oftables import Port
from tests.fakes.pipeline import Output
from tests.fakes.switch import FakeSwitch

MAX_HOPS = 32  # a frame forwarded more often than this is dropped (a loop)
PACKET_IN_BACKLOG = 1 << 20  # bytes queued to a session beyond which packet-ins drop
# Messages a switch handles in one turn of the I/O loop: the rest wait for its next turn,
# after every other switch's and the frames in flight (a spine sent thousands of
# flow-mods must not hold back every other switch's echo replies and probes for seconds)
TURN = 256
READ_AHEAD = 1 << 20  # bytes read ahead of what a switch has handled (then TCP waits)
TICK = 0.25  # seconds between timeout checks
HostCallback = Callable[["Fleet", int, int, bytes], None]


class _Session:
    __slots__ = ("dpid", "sock", "inbuf", "outbuf", "established", "events")

    def __init__(self, dpid: int, sock: socket.socket) -> None:
        self.dpid, self.sock = dpid, sock
        self.inbuf, self.outbuf = bytearray(), bytearray()
        self.established = False
        self.events = selectors.EVENT_WRITE


def port_prefix(dpid: int) -> str:
    """The name of a fake switch's LOCAL port, and its ports' names' start ("fk1001",
    "fk1001-p3"): never a name Mininet gives, since a controller may look its ports up
    by name in this machine's OVSDB (QoS), where a real network may be running."""
    return f"fk{dpid}"


def _mac(dpid: int, port: int) -> str:
    raw = bytes([0x02]) + (dpid & 0xFFFFFF).to_bytes(3, "big") + (port & 0xFFFF).to_bytes(
        2, "big")
    return ":".join(f"{b:02x}" for b in raw)


class Fleet:
    def __init__(self, controller_port: int, layout: Layout, host: str = "127.0.0.1",
                 on_host_frame: HostCallback | None = None,
                 reconnect_interval: float | None = None, reply_limit: int = 0xFFFF,
                 port_speed_kbps: int = 10_000_000) -> None:
        self.addr = (host, controller_port)
        self.layout = layout
        self.on_host_frame = on_host_frame
        self.reconnect_interval = reconnect_interval
        self.lock = threading.RLock()
        self.switches: dict[int, FakeSwitch] = {}
        for dpid in layout.dpids:
            name = port_prefix(dpid)
            ports = [Port(p, f"{name}-p{p}", _mac(dpid, p), curr_speed=port_speed_kbps)
                     for p in layout.ports[dpid]]
            ports.append(Port(ofp.OFPP_LOCAL, name, _mac(dpid, 0), config=ofp.OFPPC_PORT_DOWN,
                              state=ofp.OFPPS_LINK_DOWN, curr_speed=0))
            self.switches[dpid] = FakeSwitch(dpid, ports, self.lock, reply_limit)
        self.peer: dict[End, End] = {}
        for a, b in layout.cables:
            self.peer[a], self.peer[b] = b, a
        self.stats: collections.Counter[str] = collections.Counter()
        self.host_frames: collections.Counter[End] = collections.Counter()
        self.failures: list[str] = []  # tracebacks of the fake's own errors (a bug)
        self._sessions: dict[int, _Session] = {}
        self._wanted: set[int] = set()  # switches that should have a session
        self._retry_at: dict[int, float] = {}
        self._peer_closed: set[int] = set()
        self._frames: collections.deque[tuple[int, int, bytes, int]] = collections.deque()
        self._dirty: set[_Session] = set()
        self._unread: set[_Session] = set()  # sessions with whole messages left to handle
        self._turned: set[_Session] = set()  # sessions that had their turn this loop
        self._calls: collections.deque[tuple[Callable[[], Any], list, threading.Event]] = \
            collections.deque()
        self._sel = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        for end in (self._wake_r, self._wake_w):
            end.setblocking(False)
        self._sel.register(self._wake_r, selectors.EVENT_READ, None)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="fake-fleet-io", daemon=True)
        self._thread.start()

    # --- public: sessions -------------------------------------------------------------------
    def connect_all(self) -> None:
        """Open a session for every switch that has none, all at once."""
        self._call(lambda: [self._open(d) for d in self.switches])

    def connect(self, dpid: int) -> None:
        self._call(lambda: self._open(dpid))

    def disconnect(self, dpid: int) -> None:
        """End the switch's session (it keeps its state, and stays disconnected)."""
        self._call(lambda: self._end(dpid))

    def disconnect_all(self) -> None:
        """End every switch's session at the same moment (they keep their state)."""
        self._call(lambda: [self._end(d) for d in self.switches])

    def reconnect(self, dpid: int, wipe: bool = False) -> None:
        """A new session (``wipe``: the switch lost its state, as after a reboot)."""
        def run() -> None:
            self._close(dpid, by_peer=False)
            if wipe:
                old = self.switches[dpid]
                ports = list(old.tables.ports.values())
                self.switches[dpid] = FakeSwitch(dpid, ports, self.lock, old.reply_limit)
            self._open(dpid)
        self._call(run)

    def connected(self) -> set[int]:
        """Switches whose session is established (TCP connected, HELLO sent)."""
        with self.lock:
            return {d for d, s in self._sessions.items() if s.established}

    def closed_by_peer(self) -> set[int]:
        """Switches whose last session the controller ended (or refused)."""
        with self.lock:
            return set(self._peer_closed)

    def close(self) -> None:
        """End every session and the I/O thread."""
        if self._stop.is_set():
            return
        try:
            self._call(lambda: [self._close(d, by_peer=False) for d in list(self._sessions)])
        finally:
            self._stop.set()
            self._wake()
            self._thread.join(10)
            self._sel.close()
            self._wake_r.close()
            self._wake_w.close()

    def __enter__(self) -> Fleet:
        return self
    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- public: the fabric -----------------------------------------------------------------
    def switch(self, dpid: int) -> FakeSwitch:
        return self.switches[dpid]

    def set_link(self, end: End, up: bool) -> None:
        """Carrier of the cable at ``end`` (both of its ports; port status to both)."""
        with self.lock:
            ends = [end] + ([self.peer[end]] if end in self.peer else [])
            for dpid, port in ends:
                self._to_controller(dpid, self.switches[dpid].set_port(port, up))
        self._wake()

    def link_down(self, end: End) -> None:
        self.set_link(end, False)

    def link_up(self, end: End) -> None:
        self.set_link(end, True)
    def inject(self, dpid: int, port: int, data: bytes) -> None:
        """A frame arrives on a switch's port (as from a host behind it)."""
        self.inject_many([(dpid, port, data)])

    def inject_many(self, frames: list[tuple[int, int, bytes]]) -> None:
        """Frames arrive on switches' ports, in this order ((dpid, port, frame) each):
        one hand-over to the I/O thread, for senders of thousands a second."""
        with self.lock:
            self._frames.extend((dpid, port, bytes(data), 0) for dpid, port, data in frames)
        self._wake()

    # --- I/O thread -------------------------------------------------------------------------
    def _call(self, fn: Callable[[], Any], timeout: float = 30.0) -> Any:
        if threading.current_thread() is self._thread:
            return fn()
        if self._stop.is_set():
            raise RuntimeError("the fleet is closed")
        done, result = threading.Event(), []
        with self.lock:
            self._calls.append((fn, result, done))
        self._wake()
        if not done.wait(timeout):
            raise TimeoutError("the fleet's I/O thread did not run the call")
        if result and isinstance(result[0], BaseException):
            raise result[0]
        return result[0] if result else None

    def _wake(self) -> None:
        try:
            self._wake_w.send(b"x")
        except OSError:
            return  # (already woken, or closed)

    def _loop(self) -> None:
        next_tick = time.monotonic() + TICK
        while not self._stop.is_set():
            wait = (0.0 if self._frames or self._unread
                    else max(0.0, next_tick - time.monotonic()))
            events = self._sel.select(timeout=wait)
            with self.lock:
                now = time.monotonic()
                while self._calls:
                    fn, result, done = self._calls.popleft()
                    try:
                        result.append(fn())
                    except BaseException as exc:  # handed to the caller
                        result.append(exc)
                    done.set()
                self._turned.clear()
                for key, mask in events:
                    if key.data is None:
                        self._drain_wake()
                    elif self._sessions.get(key.data.dpid) is key.data:
                        self._ready(key.data, mask, now)
                for s in list(self._unread - self._turned):  # (their next turn)
                    if self._sessions.get(s.dpid) is s:
                        self._messages(s, now)
                    else:
                        self._unread.discard(s)
                self._run_frames(now)
                if now >= next_tick:
                    next_tick = now + TICK
                    for dpid, sw in self.switches.items():
                        self._to_controller(dpid, sw.tick(now))
                    for dpid, at in list(self._retry_at.items()):
                        if now >= at and dpid in self._wanted:
                            del self._retry_at[dpid]
                            self._open(dpid)
                self._flush()

    def _drain_wake(self) -> None:
        try:
            while self._wake_r.recv(4096):
                continue
        except OSError:  # (BlockingIOError: drained)
            return

    def _open(self, dpid: int) -> None:
        self._wanted.add(dpid)
        if dpid in self._sessions:
            return
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        err = sock.connect_ex(self.addr)
        if err not in (0, errno.EINPROGRESS, errno.EWOULDBLOCK):
            sock.close()
            self._failed(dpid)
            return
        session = self._sessions[dpid] = _Session(dpid, sock)
        self._sel.register(sock, selectors.EVENT_WRITE, session)
        self.stats["connects"] += 1

    def _end(self, dpid: int) -> None:
        """The switch's session ends, and it stays disconnected (I/O thread)."""
        self._wanted.discard(dpid)
        self._retry_at.pop(dpid, None)
        self._close(dpid, by_peer=False)

    def _failed(self, dpid: int) -> None:
        self.stats["connect_failures"] += 1
        self._peer_closed.add(dpid)
        if self.reconnect_interval is not None and dpid in self._wanted:
            self._retry_at[dpid] = time.monotonic() + self.reconnect_interval

    def _close(self, dpid: int, by_peer: bool) -> None:
        session = self._sessions.pop(dpid, None)
        if session is None:
            return
        self._dirty.discard(session)
        self._unread.discard(session)
        try:
            self._sel.unregister(session.sock)
        except (KeyError, ValueError):
            pass
        session.sock.close()
        if by_peer:
            self.stats["closed_by_peer"] += 1
            self._peer_closed.add(dpid)
            if self.reconnect_interval is not None and dpid in self._wanted:
                self._retry_at[dpid] = time.monotonic() + self.reconnect_interval

    def _ready(self, s: _Session, mask: int, now: float) -> None:
        if not s.established:
            if not mask & selectors.EVENT_WRITE:
                return
            err = s.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err:
                self._close(s.dpid, by_peer=False)
                self._failed(s.dpid)
                return
            s.established = True
            self._peer_closed.discard(s.dpid)
            self._send(s, self.switches[s.dpid].session_started())
            return
        if mask & selectors.EVENT_READ and len(s.inbuf) < READ_AHEAD:
            try:
                chunk = s.sock.recv(1 << 18)
            except (BlockingIOError, InterruptedError):
                chunk = None
            except OSError:
                chunk = b""
            if chunk == b"":  # (what the controller sent before it hung up is applied)
                self._messages(s, now, turn=math.inf)
                self._close(s.dpid, by_peer=True)
                return
            if chunk:
                s.inbuf += chunk
                self._messages(s, now)
        if mask & selectors.EVENT_WRITE:
            self._dirty.add(s)

    def _messages(self, s: _Session, now: float, turn: float = TURN) -> None:
        """Handle up to ``turn`` whole messages of the session's input."""
        sw, buf, pos = self.switches[s.dpid], s.inbuf, 0
        self._unread.discard(s)
        self._turned.add(s)
        while len(buf) - pos >= 8:
            if not turn:
                self._unread.add(s)
                break
            turn -= 1
            (length,) = struct.unpack_from("!H", buf, pos + 2)
            if length < 8:  # a broken stream: what a switch does is hang up
                self.stats["protocol_errors"] += 1
                self._close(s.dpid, by_peer=False)
                return
            if len(buf) - pos < length:
                break
            data = bytes(buf[pos:pos + length])
            pos += length
            try:
                replies, frames = sw.handle(data, now)
            except Exception:  # a bug of the fake: kept for the test to fail on
                self.failures.append(f"switch {s.dpid}, message {data[:16].hex()}:\n"
                                     + traceback.format_exc())
                continue
            for r in replies:
                self._send(s, r)
            self._forward(s.dpid, frames, 0)
        del buf[:pos]

    def _send(self, s: _Session, data: bytes) -> None:
        s.outbuf += data
        self._dirty.add(s)

    def _to_controller(self, dpid: int, msgs: list[bytes], async_: bool = False) -> None:
        s = self._sessions.get(dpid)
        for m in msgs:
            if s is None or not s.established:
                self.stats["async_without_session"] += 1
            elif async_ and len(s.outbuf) > PACKET_IN_BACKLOG:
                self.stats["packet_ins_dropped"] += 1  # (Open vSwitch bounds its backlog)
            else:
                self._send(s, m)

    def _forward(self, dpid: int, frames: list[Output], hops: int) -> None:
        for f in frames:
            peer = self.peer.get((dpid, f.port))
            if peer is None:
                self.host_frames[(dpid, f.port)] += 1
                if self.on_host_frame is not None:
                    self.on_host_frame(self, dpid, f.port, f.data)
            elif hops >= MAX_HOPS:
                self.stats["loop_drops"] += 1
            else:
                self._frames.append((peer[0], peer[1], f.data, hops + 1))

    def _run_frames(self, now: float) -> None:
        budget = 100_000  # (a storm must not starve the sessions)
        while self._frames and budget:
            budget -= 1
            dpid, port, data, hops = self._frames.popleft()
            try:
                msgs, frames = self.switches[dpid].receive_frame(port, data, now)
            except Exception:  # a bug of the fake: kept for the test to fail on
                self.failures.append(f"switch {dpid}, frame into port {port}:\n"
                                     + traceback.format_exc())
                continue
            self._to_controller(dpid, msgs, async_=True)
            self._forward(dpid, frames, hops)

    def _flush(self) -> None:
        for s in list(self._dirty):
            if self._sessions.get(s.dpid) is not s:
                continue
            if s.outbuf and s.established:
                try:
                    sent = s.sock.send(s.outbuf)
                    del s.outbuf[:sent]
                except (BlockingIOError, InterruptedError):
                    pass
                except OSError:
                    self._close(s.dpid, by_peer=True)
                    continue
                if len(s.outbuf) > self.stats["backlog_max_bytes"]:  # (the controller
                    self.stats["backlog_max_bytes"] = len(s.outbuf)  # reads slower)
            want = selectors.EVENT_READ | (selectors.EVENT_WRITE if s.outbuf or not
                                           s.established else 0)
            if want != s.events:
                s.events = want
                self._sel.modify(s.sock, want, s)
        self._dirty.clear()
