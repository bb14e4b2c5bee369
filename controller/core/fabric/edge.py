"""The leaf edge: frames from host ports, and the hosts rebuilt after a restart.

A component of :class:`~controller.core.fabric_core.FabricCore`. Every frame from a host
port is hostile input: its sender is bound to the port only if the identity rules allow
(:mod:`controller.core.fabric.hosts`), ARP requests for known hosts are answered here, frames to
known hosts are delivered straight to their port, and the rest is flooded to the other
host ports at a bounded rate per port (a flooded frame that comes back in is dropped:
that port faces the fabric). After a controller restart the hosts are read back from the
leaves' own host entries.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from controller.core import constants as C
from controller.core.effects import Effects, PacketOut, TokenBucket
from controller.core.events import FabricEvent
from controller.core.fabric.frames import (
    ARP_REPLY,
    ARP_REQUEST,
    Arp,
    Ethernet,
    FrameError,
    build_arp_frame,
    ipv4_source,
    is_multicast_mac,
    parse_arp,
)
from controller.core.fabric.hosts import PROBE_MAC, HostGuard, Outcome, Probe
from controller.core.fabric.ratelog import RateLimitedLog
from controller.core.model.fabric_model import Fabric
from controller.core.southbound.openflow import FlowRule

log = logging.getLogger("aifabric.core")

FLOOD_ECHO_WINDOW = 0.5  # seconds during which a flooded frame coming back is dropped
# A frame inside the fabric to a host this instance does not know yet (in a cluster,
# another instance wrote the entries that brought it here, and the frame that tells this
# one of the host is a moment behind on another switch's connection): kept this long,
# at most this many, and delivered when the host is learnt.
TRANSIT_WAIT = 1.0
TRANSIT_WAIT_MAX = 64
TRANSIT_WAIT_PORT = 8  # of them from one switch port


class Edge:
    def __init__(self, fabric: Fabric, host_guard: HostGuard, *, flood_rate: float,
                 flood_burst: float, host_ports: Callable[[int, float], list[int]],
                 leaves: Callable[[], list[int]], count: Callable[..., None],
                 emit: Callable[[FabricEvent], None],
                 hosts_changed: Callable[[], Effects],
                 rlog: RateLimitedLog) -> None:
        self.fabric = fabric
        self.host_guard = host_guard
        self.flood_rate = flood_rate
        self.flood_burst = flood_burst
        self._host_ports = host_ports
        self._leaves = leaves
        self._count = count
        self._emit = emit
        self._changed = hosts_changed  # (hosts only: the rest of the view is kept)
        self._rlog = rlog
        self._buckets: dict[tuple[int, int], TokenBucket] = {}
        self._recent_floods: dict[int, float] = {}  # frame hash -> until when echoes drop
        # (until, dst MAC, frame, (switch, port) it came in on)
        self._transit_waiting: list[tuple[float, str, bytes, tuple[int, int]]] = []

    def expire(self, now: float) -> Effects:
        """Forget old flood echoes and transit frames nobody claimed; resolve host probes
        whose time is up."""
        self._recent_floods = {h: t for h, t in self._recent_floods.items() if t > now}
        self._expire_waiting(now)
        return self.host_outcome(self.host_guard.expire(now), now)

    def host_frame(self, dpid: int, in_port: int, eth: Ethernet, data: bytes,
                   now: float) -> Effects:
        """A frame from a host port: its sender bound (or refused), ARP answered for
        known hosts, a frame to a known host delivered, the rest flooded."""
        log.debug("frame %s -> %s type %#x from host port %d:%d",
                  eth.src, eth.dst, eth.ethertype, dpid, in_port)
        if is_multicast_mac(eth.src):
            self._count("bad_frames")
            return Effects()
        if self._recent_floods.get(hash(data), 0.0) > now:
            # A frame we flooded came back in: a port we took for a host port faces the
            # fabric. Dropping it here breaks any loop through the controller.
            self._count("flood_echo_dropped")
            log.debug("dropped an echo of a flooded frame on %d:%d", dpid, in_port)
            return Effects()
        if eth.ethertype == C.ETH_TYPE_ARP:
            return self._arp_in(dpid, in_port, eth.src, data, eth.payload, now)
        ip = ipv4_source(eth.payload) if eth.ethertype == C.ETH_TYPE_IP else None
        if ip == "0.0.0.0":  # DHCP and the like: nobody to bind yet
            eff = Effects()
        else:
            eff, accepted = self._learn(eth.src, ip, dpid, in_port, now)
            if not accepted:
                return eff  # refused: dropped here, not flooded (a probe may go out)
        if not is_multicast_mac(eth.dst):
            dst = self.fabric.hosts.get(eth.dst)
            if dst is not None:  # entries are on their way; deliver this one directly
                eff.packet_outs.append(PacketOut(dst.dpid, (dst.port,), data))
                return eff
        return eff.merge(self._flood(dpid, in_port, data, now))


    def unbound_source(self, dpid: int, in_port: int, eth: Ethernet, data: bytes,
                       now: float) -> Effects:
        """An IPv4 frame the source guard sent up from a host port. From a MAC bound
        there with another address: a forged source, dropped (a host renumbers through
        ARP, which rebinds it, not by sending from a new address). Anything else is a
        frame from a host port like any other: a new host is learnt from it, a claim on
        someone else's MAC or address refused, and one whose entry is on its way
        delivered."""
        if eth.ethertype == C.ETH_TYPE_IP:
            host = self.fabric.hosts.get(eth.src)
            ip = ipv4_source(eth.payload)
            if (host is not None and (host.dpid, host.port) == (dpid, in_port)
                    and host.ip is not None and ip != host.ip):
                self._count("source_guard_dropped")
                self._rlog.log(logging.WARNING, f"source_guard:{dpid}:{in_port}", now,
                               "source guard: dropped IPv4 from %s at %d:%d claiming %s "
                               "(bound: %s)", eth.src, dpid, in_port, ip, host.ip)
                return Effects()
        return self.host_frame(dpid, in_port, eth, data, now)

    def transit_miss(self, dpid: int, in_port: int, dst_mac: str, ethertype: int,
                     data: bytes, now: float) -> Effects:
        """A frame inside the fabric found no entry (entries for a new host are still on
        their way to this switch): hand it straight to the destination host's port. To
        a unicast MAC not known yet, it waits for the host to be learnt (bounded:
        :data:`TRANSIT_WAIT_MAX` frames, :data:`TRANSIT_WAIT_PORT` from one port,
        :data:`TRANSIT_WAIT` seconds; beyond, dropped and counted)."""
        if is_multicast_mac(dst_mac) or ethertype == C.ETH_TYPE_ARP:
            return self._ignored(dpid, in_port, dst_mac, ethertype)
        dst = self.fabric.hosts.get(dst_mac)
        if dst is None:
            self._expire_waiting(now)
            came = (dpid, in_port)
            if len(self._transit_waiting) >= TRANSIT_WAIT_MAX or sum(
                    w[3] == came for w in self._transit_waiting) >= TRANSIT_WAIT_PORT:
                self._count("transit_miss_dropped")
                return Effects()
            self._transit_waiting.append((now + TRANSIT_WAIT, dst_mac, data, came))
            self._count("transit_miss_waiting")
            return Effects()
        self._count("transit_miss_delivered")
        return Effects(packet_outs=[PacketOut(dst.dpid, (dst.port,), data)])

    def _ignored(self, dpid: int, in_port: int, dst_mac: str, ethertype: int) -> Effects:
        self._count("ignored_non_edge")
        log.debug("ignored frame to %s type %#x on non-host port %d:%d",
                  dst_mac, ethertype, dpid, in_port)
        return Effects()

    def _expire_waiting(self, now: float) -> None:
        if not self._transit_waiting or self._transit_waiting[0][0] > now:
            return  # (in the order they came: the first expires first)
        kept = [w for w in self._transit_waiting if w[0] > now]
        self._count("transit_miss_expired", len(self._transit_waiting) - len(kept))
        self._transit_waiting = kept

    def _deliver_waiting(self, now: float) -> list[PacketOut]:
        """The transit frames waiting for a host that is known now, to its port (each
        instance of a cluster counts what it hands on; only the master of the host's
        leaf can send it)."""
        self._expire_waiting(now)
        outs, kept = [], []
        for item in self._transit_waiting:
            dst = self.fabric.hosts.get(item[1])
            if dst is None:
                kept.append(item)
            else:
                outs.append(PacketOut(dst.dpid, (dst.port,), item[2]))
        if outs:
            self._transit_waiting = kept
            self._count("transit_miss_delivered", len(outs))
        return outs

    def _arp_in(
        self, dpid: int, in_port: int, eth_src: str, frame: bytes, payload: bytes, now: float
    ) -> Effects:
        try:
            arp = parse_arp(payload)
        except FrameError as exc:
            self._count("bad_frames")
            log.debug("bad ARP from %d:%d: %s", dpid, in_port, exc)
            return Effects()
        if arp.sender_mac != eth_src:
            self._count("bad_frames")
            log.debug("ARP sender %s differs from frame source %s", arp.sender_mac, eth_src)
            return Effects()
        if arp.sender_ip == "0.0.0.0":  # an ARP probe (RFC 5227): nobody to bind yet
            sender_ip = None
            eff = Effects()
        else:
            sender_ip = arp.sender_ip
            eff, accepted = self._learn(arp.sender_mac, sender_ip, dpid, in_port, now)
            if not accepted:
                return eff  # refused: dropped here, neither answered nor flooded
        if arp.target_mac == PROBE_MAC:
            return eff  # the answer to one of our probes: it has done its work
        if arp.opcode == ARP_REQUEST and sender_ip and arp.target_ip != sender_ip:
            target = self.fabric.host_by_ip(arp.target_ip)
            if target is not None:
                reply = Arp(ARP_REPLY, target.mac, arp.target_ip, arp.sender_mac, sender_ip)
                data = build_arp_frame(arp.sender_mac, target.mac, reply)
                eff.packet_outs.append(PacketOut(dpid, (in_port,), data))
                self._count("arp_proxied")
                return eff
        elif arp.opcode == ARP_REPLY:
            requester = self.fabric.hosts.get(arp.target_mac)
            if requester is not None:
                eff.packet_outs.append(PacketOut(requester.dpid, (requester.port,), frame))
                return eff
        return eff.merge(self._flood(dpid, in_port, frame, now))

    def _learn(self, mac: str, ip: str | None, dpid: int, port: int,
               now: float) -> tuple[Effects, bool]:
        """Apply the binding rules (:mod:`controller.core.fabric.hosts`) to a sighting;
        False when the frame is refused and must be dropped (the effects then hold only
        probes)."""
        out = self.host_guard.sighting(mac, ip, dpid, port, now)
        return self.host_outcome(out, now), out.accepted

    def host_outcome(self, out: Outcome, now: float) -> Effects:
        for name in out.counters:
            self._count(name)
        for e in out.events:
            level = logging.INFO if e.kind == "host_learned" else logging.WARNING
            self._rlog.log(level, f"{e.kind}:{dict(e.fields).get('at', '')}", now,
                           "%s: %s", e.kind, e.message)
        for e in out.events:
            self._emit(e)
        eff = self._changed() if out.changed else Effects()
        if out.changed and self._transit_waiting:
            eff.packet_outs += self._deliver_waiting(now)
        eff.packet_outs += [self._probe_host(p) for p in out.probes]
        self._count("host_probes", len(out.probes))
        return eff

    @staticmethod
    def _probe_host(p: Probe) -> PacketOut:
        """An ARP request for ``p.ip`` to the bound host alone (unicast to its MAC), in
        probe form (sender 0.0.0.0): its answer says it is still there."""
        arp = Arp(ARP_REQUEST, PROBE_MAC, "0.0.0.0", "00:00:00:00:00:00", p.ip)
        return PacketOut(p.dpid, (p.port,), build_arp_frame(p.mac, PROBE_MAC, arp))

    def _flood(self, dpid: int, in_port: int, data: bytes, now: float) -> Effects:
        """Send a frame out of every host port of every leaf except where it came in."""
        bucket = self._buckets.get((dpid, in_port))
        if bucket is None:
            bucket = self._buckets[(dpid, in_port)] = TokenBucket(
                self.flood_rate, self.flood_burst, now
            )
        if not bucket.take(now):
            self._count("flood_rate_limited")
            return Effects()
        self._recent_floods[hash(data)] = now + FLOOD_ECHO_WINDOW
        eff = Effects()
        for leaf in self._leaves():
            ports = tuple(p for p in self._host_ports(leaf, now)
                          if (leaf, p) != (dpid, in_port))
            if ports:
                eff.packet_outs.append(PacketOut(leaf, ports, data))
        self._count("floods")
        return eff

    # --- host recovery after a controller restart -------------------------------------------
    def recover_hosts(self, dpid: int, flows: list[FlowRule], now: float) -> Effects:
        """Rebuild host entries from a leaf's own host rules (output to a port).

        Host rules carry the host's IPv4 address in their cookie; a restarted controller
        thus knows every host again before it computes what the switches should hold,
        and keeps their entries instead of wiping them.
        """
        eff = Effects()
        linked = self.fabric.link_ports(dpid)
        for rule in flows:
            if C.cookie_kind(rule.cookie) != C.KIND_HOST or rule.table != C.TABLE_FORWARD:
                continue
            mac = dict(rule.match).get("eth_dst")
            outputs = [a[1] for ins in rule.instructions if ins[0] == "apply" for a in ins[1]
                       if a[0] == "output"]
            if not isinstance(mac, str) or len(outputs) != 1 or outputs[0] in linked:
                continue
            if mac in self.fabric.hosts:
                continue
            ip = C.ip_from_cookie_low(C.cookie_low(rule.cookie))
            self.fabric.learn_host(mac, ip, dpid, outputs[0], now, recovered=True)
            log.info("host %s (%s) recovered from %d:%d", mac, ip, dpid, outputs[0])
            eff.merge(self._changed())
        if self._transit_waiting:
            eff.packet_outs += self._deliver_waiting(now)
        return eff

