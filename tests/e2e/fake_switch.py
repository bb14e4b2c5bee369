"""A minimal OpenFlow 1.3 switch over TCP, for faults a real Open vSwitch will not show on
demand: it answers the controller (hello, features, port descriptions, empty statistics,
echo, barrier) and can stop reading its session at any moment, as a wedged switch agent
does, while keeping the connection open."""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections import Counter

OFP_VERSION = 4
HELLO, ECHO_REQUEST, ECHO_REPLY = 0, 2, 3
FEATURES_REQUEST, FEATURES_REPLY = 5, 6
GET_CONFIG_REQUEST, GET_CONFIG_REPLY = 7, 8
MULTIPART_REQUEST, MULTIPART_REPLY = 18, 19
BARRIER_REQUEST, BARRIER_REPLY = 20, 21
ROLE_REQUEST, ROLE_REPLY = 24, 25
MP_PORT_DESC = 13
MP_DESC = 0
NAMES = {13: "packet_out", 14: "flow_mod", 15: "group_mod", 29: "meter_mod"}


def _msg(kind: int, xid: int, body: bytes = b"") -> bytes:
    return struct.pack("!BBHI", OFP_VERSION, kind, 8 + len(body), xid) + body


def _port(no: int, dpid: int) -> bytes:
    mac = struct.pack("!HI", 0x0200 | (dpid & 0xFF), no)
    name = f"fk{dpid:x}-eth{no}".encode()[:15]
    # port_no, pad, hw_addr, pad, name, config, state, curr, advertised, supported,
    # peer, curr_speed (kbps), max_speed
    return struct.pack("!I4x6s2x16sIIIIIIII", no, mac, name, 0, 0, 0x820, 0, 0, 0,
                       10_000_000, 10_000_000)


class FakeSwitch:
    """One session to a controller at ``127.0.0.1:port`` (see :meth:`connect`)."""

    def __init__(self, port: int, dpid: int, ports: int, recv_buffer: int = 4096) -> None:
        self.addr = ("127.0.0.1", port)
        self.dpid, self.nports, self.recv_buffer = dpid, ports, recv_buffer
        self.received: Counter[str] = Counter()
        self.reading = threading.Event()
        self.sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self.closed_by_peer = threading.Event()
        self.wedge_at: tuple[str, int] | None = None  # stop reading once this much came

    def wedge_after(self, kind: str, count: int) -> None:
        """Stop reading (see :meth:`stop_reading`) once ``count`` messages of ``kind``
        (e.g. "flow_mod") have arrived in the next session."""
        self.wedge_at = (kind, count)

    def connect(self) -> None:
        """Open a session and serve it until :meth:`stop_reading` or :meth:`close`."""
        s = socket.socket()
        # a small receive window: what the controller sends piles up on its side
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.recv_buffer)
        s.connect(self.addr)
        self.sock = s
        self.received.clear()
        self.closed_by_peer.clear()
        self.reading.set()
        s.sendall(_msg(HELLO, 1))
        self._thread = threading.Thread(target=self._serve, args=(s,), daemon=True)
        self._thread.start()

    def stop_reading(self) -> None:
        """Keep the session open, read nothing more (a wedged switch)."""
        self.reading.clear()

    def close(self) -> None:
        self.reading.set()
        if self.sock is not None:
            try:
                self.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self.sock.close()
        if self._thread is not None:
            self._thread.join(5)

    def peer_closed(self) -> bool:
        """True once the controller has ended the session (seen by reading again)."""
        return self.closed_by_peer.is_set()

    def _serve(self, s: socket.socket) -> None:
        buf = b""
        try:
            while True:
                if not self.reading.is_set():
                    # wedged: read nothing, only look whether the controller hung up
                    time.sleep(0.05)
                    continue
                chunk = s.recv(65536)
                if not chunk:
                    self.closed_by_peer.set()
                    return
                buf += chunk
                while len(buf) >= 8:
                    _, kind, length, xid = struct.unpack_from("!BBHI", buf)
                    if len(buf) < length:
                        break
                    body, buf = buf[8:length], buf[length:]
                    self.received[NAMES.get(kind, str(kind))] += 1
                    reply = self._answer(kind, xid, body)
                    if reply:
                        s.sendall(reply)
                    if self.wedge_at and self.received[self.wedge_at[0]] >= self.wedge_at[1]:
                        self.wedge_at = None
                        self.reading.clear()
                        break
        except OSError:
            self.closed_by_peer.set()

    def _answer(self, kind: int, xid: int, body: bytes) -> bytes:
        if kind == ECHO_REQUEST:
            return _msg(ECHO_REPLY, xid, body)
        if kind == FEATURES_REQUEST:
            return _msg(FEATURES_REPLY, xid, struct.pack("!QIBB2xII", self.dpid, 0, 254, 0,
                                                         0x4F, 0))
        if kind == GET_CONFIG_REQUEST:
            return _msg(GET_CONFIG_REPLY, xid, struct.pack("!HH", 0, 0xFFFF))
        if kind == BARRIER_REQUEST:
            return _msg(BARRIER_REPLY, xid)
        if kind == ROLE_REQUEST:
            return _msg(ROLE_REPLY, xid, body)
        if kind == MULTIPART_REQUEST:
            mp_type = struct.unpack_from("!H", body)[0]
            if mp_type == MP_PORT_DESC:
                out = b""
                ports = [_port(n, self.dpid) for n in range(1, self.nports + 1)]
                per = 900  # 64-byte ports, one message under 64 KiB
                for i in range(0, len(ports), per):
                    more = 1 if i + per < len(ports) else 0
                    out += _msg(MULTIPART_REPLY, xid, struct.pack("!HH4x", mp_type, more)
                                + b"".join(ports[i:i + per]))
                return out
            if mp_type == MP_DESC:
                desc = (b"aifabric".ljust(256, b"\0") + b"fake".ljust(256, b"\0")
                        + b"0".ljust(256, b"\0") + b"0".ljust(32, b"\0")
                        + b"fake switch".ljust(256, b"\0"))
                return _msg(MULTIPART_REPLY, xid, struct.pack("!HH4x", mp_type, 0) + desc)
            return _msg(MULTIPART_REPLY, xid, struct.pack("!HH4x", mp_type, 0))  # empty
        return b""
