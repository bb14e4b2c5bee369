"""Hosts behind a fake fleet's host ports, at the level of the frames they exchange:
each answers ARP requests (and RFC 5227 probes) for its address and ICMP echo requests,
keeps an ARP cache, and records every frame its port hands it (as a capture on its
interface would). Enough to ping between hosts through the switches' entries, to send
UDP and TCP as a given host (or as someone else), and to read what arrived (DSCP marks,
LLDP probes).

Numbered as Mininet numbers ``FabricSpec`` hosts: ``h1..hK`` leaf by leaf, IP
``10.0.0.K``, MAC ``00:00:00:00:00:K``, on the leaf's host ports in order.

Threads: frames arrive on the fleet's I/O thread (:meth:`HostNet.on_frame`, the fleet's
``on_host_frame``), which must not block; tests call the rest from their own thread and
wait on a condition the I/O thread notifies.
"""

from __future__ import annotations

import collections
import itertools
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from mininet_topos.probe import internet_checksum
from tests.fakes.layout import Layout

if TYPE_CHECKING:
    from tests.fakes.fleet import Fleet

ETH_ARP, ETH_IP, ETH_LLDP = 0x0806, 0x0800, 0x88CC
BROADCAST = "ff:ff:ff:ff:ff:ff"
CAPTURE = 4096  # frames kept per host (the oldest go first)


def mac_bytes(mac: str) -> bytes:
    return bytes.fromhex(mac.replace(":", ""))


def ip_bytes(ip: str) -> bytes:
    return bytes(int(x) for x in ip.split("."))


def _ip_str(raw: bytes) -> str:
    return ".".join(str(b) for b in raw)



# --- frames -----------------------------------------------------------------------------------
def ethernet(dst: str, src: str, ethertype: int, payload: bytes) -> bytes:
    return mac_bytes(dst) + mac_bytes(src) + struct.pack("!H", ethertype) + payload


def arp(op: int, sha: str, spa: str, tha: str, tpa: str, eth_dst: str | None = None) -> bytes:
    """An ARP frame (op 1 request, 2 reply); a request goes to broadcast by default."""
    body = struct.pack("!HHBBH", 1, ETH_IP, 6, 4, op) + mac_bytes(sha) + ip_bytes(spa) + \
        mac_bytes(tha) + ip_bytes(tpa)
    return ethernet(eth_dst or (BROADCAST if op == 1 else tha), sha, ETH_ARP, body)


def ipv4(src_mac: str, dst_mac: str, src: str, dst: str, proto: int, l4: bytes,
         dscp: int = 0) -> bytes:
    head = struct.pack("!BBHHHBBH4s4s", 0x45, dscp << 2, 20 + len(l4), 0, 0x4000, 64, proto,
                       0, ip_bytes(src), ip_bytes(dst))
    head = head[:10] + struct.pack("!H", internet_checksum(head)) + head[12:]
    return ethernet(dst_mac, src_mac, ETH_IP, head + l4)


def icmp_echo(kind: int, ident: int, seq: int, payload: bytes = b"fake-ping") -> bytes:
    """ICMP echo request (kind 8) or reply (kind 0)."""
    body = struct.pack("!BBHHH", kind, 0, 0, ident, seq) + payload
    return body[:2] + struct.pack("!H", internet_checksum(body)) + body[4:]


def udp(sport: int, dport: int, payload: bytes) -> bytes:
    return struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload


def tcp(sport: int, dport: int, flags: int = 0x02, payload: bytes = b"") -> bytes:
    """A TCP segment (SYN by default; checksum left 0: no receiver here checks it)."""
    return struct.pack("!HHIIBBHHH", sport, dport, 1, 0, 5 << 4, flags, 65535, 0, 0) + payload


@dataclass(frozen=True)
class Seen:
    """A frame as a capture shows it: addresses, ethertype, and for IPv4 the rest."""

    eth_src: str
    eth_dst: str
    ethertype: int
    data: bytes
    ip_src: str | None = None
    ip_dst: str | None = None
    dscp: int | None = None
    proto: int | None = None
    dport: int | None = None


def parse(data: bytes) -> Seen:
    def mac(raw: bytes) -> str:
        return ":".join(f"{b:02x}" for b in raw)

    (etype,) = struct.unpack_from("!H", data, 12)
    if etype != ETH_IP or len(data) < 34:
        return Seen(mac(data[6:12]), mac(data[0:6]), etype, data)
    ihl = (data[14] & 0x0F) * 4
    proto = data[23]
    dport = struct.unpack_from("!H", data, 14 + ihl + 2)[0] if proto in (6, 17) and \
        len(data) >= 14 + ihl + 4 else None
    return Seen(mac(data[6:12]), mac(data[0:6]), etype, data, _ip_str(data[26:30]),
                _ip_str(data[30:34]), data[15] >> 2, proto, dport)


# --- hosts ------------------------------------------------------------------------------------
@dataclass
class FakeHost:
    name: str
    mac: str
    ip: str
    dpid: int
    port: int
    arp_cache: dict[str, str] = field(default_factory=dict)  # ip -> mac
    frames: collections.deque[bytes] = field(
        default_factory=lambda: collections.deque(maxlen=CAPTURE))
    echo_replies: set[tuple[str, int, int]] = field(default_factory=set)  # (from, id, seq)
    answers: bool = True  # False: a silent host (answers no ARP, no ping)

    def captured(self, pred: Callable[[Seen], bool] = lambda s: True) -> list[Seen]:
        return [s for s in map(parse, list(self.frames)) if pred(s)]


class HostNet:
    """The hosts of a layout's host ports; :meth:`attach` to the fleet serving it."""

    def __init__(self, layout: Layout) -> None:
        self.hosts: dict[str, FakeHost] = {}
        self.at: dict[tuple[int, int], FakeHost] = {}
        n = 0
        for dpid in layout.leaves:
            for port in layout.host_ports.get(dpid, []):
                n += 1
                h = FakeHost(f"h{n}", f"00:00:00:00:{n // 256:02x}:{n % 256:02x}",
                             f"10.0.{n // 256}.{n % 256}", dpid, port)
                self.hosts[h.name] = h
                self.at[(dpid, port)] = h
        self.fleet: Fleet | None = None
        self.cond = threading.Condition()
        self._ids = itertools.count(1)

    def attach(self, fleet: Fleet) -> None:
        self.fleet = fleet
        fleet.on_host_frame = self.on_frame

    def __getitem__(self, name: str) -> FakeHost:
        return self.hosts[name]

    def __iter__(self):
        return iter(self.hosts.values())

    # --- the I/O thread -----------------------------------------------------------------------
    def on_frame(self, fleet: Fleet, dpid: int, port: int, data: bytes) -> None:
        h = self.at.get((dpid, port))
        if h is None or len(data) < 14:
            return
        with self.cond:
            h.frames.append(data)
            self._react(fleet, h, data)
            self.cond.notify_all()

    def _react(self, fleet: Fleet, h: FakeHost, data: bytes) -> None:
        dst = ":".join(f"{b:02x}" for b in data[0:6])
        if not h.answers or dst not in (h.mac, BROADCAST):
            return
        (etype,) = struct.unpack_from("!H", data, 12)
        if etype == ETH_ARP and len(data) >= 42:
            (op,) = struct.unpack_from("!H", data, 20)
            sha = ":".join(f"{b:02x}" for b in data[22:28])
            spa, tpa = _ip_str(data[28:32]), _ip_str(data[38:42])
            if spa != "0.0.0.0":
                h.arp_cache[spa] = sha
            if op == 1 and tpa == h.ip:
                fleet.inject(h.dpid, h.port, arp(2, h.mac, h.ip, sha, spa))
        elif etype == ETH_IP and len(data) >= 42 and data[23] == 1:
            s = parse(data)
            ihl = (data[14] & 0x0F) * 4
            kind, _, _, ident, seq = struct.unpack_from("!BBHHH", data, 14 + ihl)
            if s.ip_dst != h.ip:
                return
            if kind == 8:
                reply = icmp_echo(0, ident, seq, data[14 + ihl + 8:])
                fleet.inject(h.dpid, h.port, ipv4(h.mac, s.eth_src, h.ip, s.ip_src, 1, reply))
            elif kind == 0:
                h.echo_replies.add((s.ip_src, ident, seq))

    # --- tests' side --------------------------------------------------------------------------
    def wait(self, pred: Callable[[], bool], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self.cond:
            while not pred():
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.cond.wait(min(left, 0.1))
            return True

    def send(self, src: FakeHost, frame: bytes) -> None:
        """A frame out of ``src``'s interface (whatever it claims to be)."""
        assert self.fleet is not None, "attach the hosts to a fleet first"
        self.fleet.inject(src.dpid, src.port, frame)

    def resolve(self, src: FakeHost, ip: str, timeout: float = 2.0) -> str | None:
        """``src`` asks ARP for ``ip`` (once a second, as Linux retries); its MAC or None."""
        deadline = time.monotonic() + timeout
        while True:
            with self.cond:
                if ip in src.arp_cache:
                    return src.arp_cache[ip]
            self.send(src, arp(1, src.mac, src.ip, "00:00:00:00:00:00", ip))
            left = deadline - time.monotonic()
            if left <= 0 or self.wait(lambda: ip in src.arp_cache, min(left, 1.0)):
                with self.cond:
                    return src.arp_cache.get(ip)

    def ping(self, src: FakeHost, dst: FakeHost, count: int = 1, timeout: float = 2.0,
             interval: float = 0.0) -> int:
        """Echo requests from ``src`` to ``dst`` (after ARP); how many were answered
        within ``timeout`` of the last one."""
        mac = self.resolve(src, dst.ip, timeout)
        if mac is None:
            return 0
        ident = next(self._ids) & 0xFFFF
        for seq in range(count):
            self.send(src, ipv4(src.mac, mac, src.ip, dst.ip, 1, icmp_echo(8, ident, seq)))
            if interval:
                time.sleep(interval)

        def answered() -> int:
            return sum((dst.ip, ident, s) in src.echo_replies for s in range(count))

        self.wait(lambda: answered() == count, timeout)
        with self.cond:
            return answered()

    def udp(self, src: FakeHost, dst: FakeHost, sport: int, dport: int, size: int = 100,
            count: int = 1, dscp: int = 0, src_mac: str | None = None,
            src_ip: str | None = None) -> None:
        """UDP datagrams of ``size`` bytes of payload from ``src``'s port to ``dst``
        (``src_mac``/``src_ip``: claimed instead of ``src``'s own)."""
        mac = self.resolve(src, dst.ip) or dst.mac
        frame = ipv4(src_mac or src.mac, mac, src_ip or src.ip, dst.ip, 17,
                     udp(sport, dport, bytes(size)), dscp)
        for _ in range(count):
            self.send(src, frame)

    def received(self, dst: FakeHost, pred: Callable[[Seen], bool]) -> int:
        with self.cond:
            return len(dst.captured(pred))

    def all_pairs(self, count: int = 1, timeout: float = 2.0) -> list[tuple[str, str]]:
        """Every ordered pair pings ``count`` times; the pairs with a reply missing."""
        hosts = list(self.hosts.values())
        return [(a.name, b.name) for a in hosts for b in hosts
                if a is not b and self.ping(a, b, count, timeout) != count]
