"""The controller's decision core: turns switch events into fabric state, packet-outs
and desired per-switch entries. No os-ken, no sockets, no clock: ``now`` is an argument.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field

from controller.core import constants as C
from controller.core.cabling import cabling_warnings
from controller.core.dampening import DampingSettings, FlapDamper
from controller.core.effects import Effects, PacketOut, TokenBucket
from controller.core.events import FabricEvent
from controller.core.fabric_te import FabricTE
from controller.core.forwarding import (
    FabricView,
    HostLocation,
    PuntLimits,
    assign_group_ids,
    desired_state,
    lldp_meters,
    lldp_rule,
)
from controller.core.frames import (
    ARP_REPLY,
    ARP_REQUEST,
    Arp,
    FrameError,
    build_arp_frame,
    build_lldp,
    ipv4_source,
    is_multicast_mac,
    parse_arp,
    parse_ethernet,
    parse_lldp,
)
from controller.core.hosts import PROBE_MAC, HostGuard, HostSettings, Outcome, Probe
from controller.core.jobs import JobLimits, JobSpec
from controller.core.maintenance import Maintenance, cable_text
from controller.core.model import Cable, Fabric, Link, LinkEnd, Port
from controller.core.openflow import FlowRule, GroupRule, Match, SwitchDesired
from controller.core.qos import QosPolicy
from controller.core.ratelog import RateLimitedLog
from controller.core.roles import LEAF, SPINE, infer_roles
from controller.core.snapshot import (
    FlowInfo,
    HostInfo,
    JobInfo,
    LinkInfo,
    SwitchInfo,
    TopologySnapshot,
)
from controller.core.te import (
    Flow,
    FlowKey,
    RebalanceJob,
    RebalancePlan,
    TeSettings,
    TeTopology,
    TrafficEngineer,
)

log = logging.getLogger("aifabric.core")

FLOOD_ECHO_WINDOW = 0.5  # seconds during which a flooded frame coming back is dropped


@dataclass(frozen=True)
class CoreSettings:
    lldp_interval: float = 1.0  # seconds between probes on every port
    link_timeout: float = 3.5  # a link not re-confirmed for this long is gone
    settle_time: float = 1.0  # after connecting, a switch is left this long to be discovered
    # after a controller restart, entries towards a leaf that has not reconnected are
    # kept (frozen) this long, counted from the first switch back
    absent_timeout: float = 30.0
    damping: DampingSettings = field(default_factory=DampingSettings)  # link flaps
    flood_rate: float = 50.0  # broadcast/unknown frames per second per host port
    flood_burst: float = 100.0
    role_overrides: dict[int, str] = field(default_factory=dict)
    cabling: tuple[Cable, ...] = ()  # the operator's cabling plan, if any
    qos: QosPolicy | None = None  # edge marking policy; None with --no-qos
    te: TeSettings | None = None  # traffic engineering; None with --no-te
    link_speed_bps: float = 0.0  # overrides what switches report (0: trust them)
    new_flow_rate: float = 2000.0  # new flows per second per host port that TE places
    hosts: HostSettings = field(default_factory=HostSettings)  # identity rules at the edge
    punt: PuntLimits = field(default_factory=PuntLimits)  # switch meters towards us
    declined_flow_timeout: int = 10  # seconds a flow TE declined is not copied again
    max_flows_per_port: int = 4096  # TE-tracked flows one host port may hold
    job_limits: JobLimits = field(default_factory=JobLimits)  # registered training jobs


class FabricCore:
    """Events in (switches, ports, frames, counters, operator commands, the time),
    desired switch state and effects out. Traffic engineering (``traffic``), maintenance
    (``maintenance``), host identity (``host_guard``) and flap dampening (``damper``) are
    components it owns."""

    def __init__(self, settings: CoreSettings, secret: bytes) -> None:
        self.settings = settings
        self.secret = secret
        self.fabric = Fabric()
        self.qos: QosPolicy | None = settings.qos
        self.maintenance = Maintenance(self.fabric)  # drained links and spines
        self._view: FabricView | None = None
        self._desired: dict[int, SwitchDesired] = {}  # per switch, for the current view
        self._warnings: tuple[str, ...] = ()
        self._roles: dict[int, str] = {}  # last known role of every switch ever seen
        self._buckets: dict[tuple[int, int], TokenBucket] = {}
        self._recent_floods: dict[int, float] = {}  # frame hash -> until when echoes drop
        self.counters: dict[str, int] = {}
        self.events: list[FabricEvent] = []  # taken by the app with take_events()
        self._now = 0.0  # time of the latest event, for decisions made while syncing
        self._expected_groups: set[int] = set()  # ECMP groups the switches held at start
        self._grace_until: float | None = None  # end of the restart grace period
        self.host_guard = HostGuard(self.fabric, settings.hosts)
        self.damper = FlapDamper(settings.damping)
        self.host_guard.install_static(0.0)
        self._rlog = RateLimitedLog(log)
        self.traffic: FabricTE | None = (  # traffic engineering (None with --no-te)
            FabricTE(settings, TrafficEngineer(settings.te), self, self._count, self._event)
            if settings.te is not None else None)

    @property
    def te(self) -> TrafficEngineer | None:
        """The traffic engineer (its flows, pins, stats), or None with --no-te."""
        return self.traffic.te if self.traffic is not None else None

    # --- traffic engineering: entry points of the component ---------------------------------
    def flow_seen(self, dpid: int, in_port: int, data: bytes, now: float) -> Effects:
        """A copy of a packet no pin holds yet, from a leaf's TE table: place its flow."""
        self._now = now
        return self.traffic.flow_seen(dpid, in_port, data, now) if self.traffic else Effects()

    def te_pass(self, port_bps: dict[tuple[int, int], float], now: float,
                rebalance: bool = True) -> Effects:
        """One control interval: new rates in; idle flows out; congestion, and
        rebalancing unless the caller runs it apart (``rebalance_job``/``rebalanced``)."""
        self._now = now
        return self.traffic.te_pass(port_bps, now, rebalance) if self.traffic else Effects()

    def rebalance_job(self, now: float) -> RebalanceJob | None:
        """The input of a rebalancing pass, for ``te.search`` on another thread."""
        return self.traffic.rebalance_job(now) if self.traffic is not None else None

    def rebalanced(self, plan: RebalancePlan, now: float,
                   limit: int | None = None) -> tuple[Effects, RebalancePlan | None]:
        """A searched rebalancing pass: applied if it still holds, at most about
        ``limit`` moves now; returns the rest of the plan for the next step."""
        self._now = now
        if self.traffic is None:
            return Effects(), None
        return self.traffic.rebalanced(plan, now, limit)

    def pin_counters(self, dpid: int, counters: list[tuple[Match, int, int]],
                     now: float) -> None:
        """A leaf's TE pins and job pair entries: (match, cookie, bytes)."""
        if self.traffic is not None:
            self.traffic.pin_counters(dpid, counters, now)

    # --- training jobs (TE's JobBook) ---------------------------------------------------------
    def _traffic(self) -> FabricTE:
        if self.traffic is None:
            raise RuntimeError("traffic engineering is off (--no-te): jobs cannot be placed")
        return self.traffic

    def check_job(self, spec: JobSpec) -> None:
        """JobError (naming the field) or JobExists unless ``spec`` can be registered."""
        self._traffic().check_job(spec)

    def register_job(self, spec: JobSpec, now: float) -> Effects:
        """Check, register and place a job (JobError naming the field, JobExists)."""
        self._now = now
        return self._traffic().register_job(spec, now)

    def delete_job(self, job_id: str, now: float) -> Effects:
        self._now = now
        return self._traffic().delete_job(job_id, now)

    def restore_jobs(self, specs: list[JobSpec], now: float) -> None:
        self._traffic().restore_jobs(specs, now)

    def job_specs(self) -> list[JobSpec]:
        """The registered jobs, in placement order (what the state file keeps)."""
        return self.traffic.jobs.specs() if self.traffic is not None else []

    def job_infos(self) -> tuple[JobInfo, ...]:
        return self.traffic.job_infos() if self.traffic is not None else ()

    def pin_flow(self, key: FlowKey, spine: int, now: float) -> tuple[Flow, Effects]:
        if self.traffic is None:
            raise RuntimeError("traffic engineering is off (--no-te)")
        return self.traffic.pin_flow(key, spine, now)

    def unpin_flow(self, key: FlowKey, now: float) -> Effects:
        if self.traffic is None:
            raise RuntimeError("traffic engineering is off (--no-te)")
        return self.traffic.unpin_flow(key, now)

    def flows(self, now: float) -> tuple[FlowInfo, ...]:
        return self.traffic.flows(now) if self.traffic is not None else ()

    def recover_pins(self, dpid: int, flows: list[FlowRule]) -> None:
        """Keep a leaf's pins (read back after a restart) for TE to adopt."""
        if self.traffic is not None:
            self.traffic.recover_pins(dpid, flows)

    def te_topology(self) -> TeTopology | None:
        """TE's view of the paths in service (a getter)."""
        return self.traffic.te_topology() if self.traffic is not None else None

    def prepare(self, now: float) -> Effects:
        """The step between a change and computing desired state: flows whose path is
        gone are re-placed (and pins recovered after a restart adopted). ``desired`` is
        a getter and does none of that; a sync calls this first."""
        self._now = now
        if self.traffic is None:
            return Effects()
        return Effects(touched=self.traffic.refresh(now))

    # --- bookkeeping ------------------------------------------------------------------------
    def _count(self, name: str) -> None:
        self.counters[name] = self.counters.get(name, 0) + 1

    def _changed(self, reason: str | None = None) -> Effects:
        self._view = None
        self._desired.clear()
        if self.traffic is not None:
            self.traffic.invalidate(reason or "topology change")
        return Effects(changed=True)

    def _event(self, kind: str, message: str, **fields: object) -> None:
        self.events.append(FabricEvent(kind, message,
                                       tuple((k, str(v)) for k, v in fields.items())))

    def take_events(self) -> list[FabricEvent]:
        """Events since the last call (TE's included), oldest first."""
        if self.te is not None and self.te.events:
            self.events += self.te.events
            self.te.events = []
        out, self.events = self.events, []
        return out

    def _probes(self, dpid: int, ports: list[int], now: float) -> list[PacketOut]:
        # Never out of a port with a learned host: a host gets no genuine probe to replay.
        hosted = self._hosted_ports(dpid)
        return [
            PacketOut(dpid, (p,), build_lldp(dpid, p, self.secret, now))
            for p in ports
            if p not in hosted
        ]

    def _hosted_ports(self, dpid: int) -> set[int]:
        return {h.port for h in self.fabric.hosts.values() if h.dpid == dpid}

    # --- switch events ----------------------------------------------------------------------
    def switch_connected(self, dpid: int, ports: list[Port], now: float) -> Effects:
        """A switch (re)connected. Probe it with :meth:`probe` once its LLDP entry is in."""
        if self._grace_until is None:
            self._grace_until = now + self.settings.absent_timeout
        self.fabric.switch_up(dpid, ports, now)
        log.info("switch %d connected with %d ports", dpid, len(ports))
        self._event("switch_up", f"switch {dpid} connected with {len(ports)} ports", dpid=dpid)
        return self._changed(f"switch {dpid} connected")

    def probe(self, dpid: int, now: float) -> Effects:
        """LLDP probes out of every up port of one switch."""
        sw = self.fabric.switches.get(dpid)
        if sw is None or not sw.connected:
            return Effects()
        return Effects(packet_outs=self._probes(dpid, sw.up_ports(), now))

    def switch_disconnected(self, dpid: int, now: float) -> Effects:
        if not self.fabric.is_connected(dpid):
            return Effects()
        self.fabric.switch_down(dpid)
        log.warning("switch %d disconnected; its links are avoided where possible", dpid)
        self._event("switch_down", f"switch {dpid} disconnected", dpid=dpid)
        return self._changed(f"switch {dpid} down")

    def port_status(self, dpid: int, port: Port, deleted: bool, now: float) -> Effects:
        self._now = now
        if not self.fabric.is_connected(dpid):
            return Effects()
        if deleted:
            gone = self.fabric.port_deleted(dpid, port.port_no)
        else:
            gone = self.fabric.port_update(dpid, port, now)
        end = LinkEnd(dpid, port.port_no)
        if deleted or not port.up:
            self.fabric.expected.discard(end)
            self.host_guard.forget_port(dpid, port.port_no)
            # both ends of the cable earn the penalty (the far end's own down event may
            # come later or, when its switch is not ours, never)
            ends = {e for lk in gone for e in (lk.src, lk.dst)}
            if self.damper.knows(end):
                ends.add(end)
            for e in sorted(ends):
                if self.damper.flap(e, now):
                    self._hold(e, now)
        why = f"port {dpid}:{port.port_no} {'deleted' if deleted else 'down'}"
        self._log_gone(gone, why)
        eff = self._changed(why if gone else None)
        if port.up and not deleted and end not in self.fabric.held:
            eff.packet_outs += self._probes(dpid, [port.port_no], now)
        return eff

    def _hold(self, end: LinkEnd, now: float) -> None:
        self.fabric.held.add(end)
        self._count("links_dampened")
        self._rlog.log(logging.WARNING, f"dampened:{end.dpid}:{end.port}", now,
                       "port %d:%d flaps: its link is held down until it is stable",
                       end.dpid, end.port)
        self._event("link_dampened", f"port {end.dpid}:{end.port} flaps: its link is held "
                    "down until it has been stable for a while", at=f"{end.dpid}:{end.port}")

    def tick(self, now: float, horizon: float | None = None) -> Effects:
        """Periodic work: probe every up port, expire links that stopped answering.

        ``horizon`` is the time up to which every frame that arrived has been handled
        (the app's queue position): links are judged by it, not by ``now``, so a loop
        that lags does not expire links whose probes are merely waiting in its queue."""
        self._now = now
        eff = Effects()
        for sw in self.fabric.switches.values():
            if sw.connected:
                eff.packet_outs += self._probes(sw.dpid, sw.up_ports(), now)
        self._recent_floods = {h: t for h, t in self._recent_floods.items() if t > now}
        eff.merge(self._host_outcome(self.host_guard.expire(now), now))
        eff.merge(self._end_grace(now))
        for end in self.damper.release(now):
            self.fabric.held.discard(end)
            log.info("port %d:%d has been stable: its link may come back", end.dpid, end.port)
            self._event("link_undampened", f"port {end.dpid}:{end.port} has been stable: "
                        "its link may come back", at=f"{end.dpid}:{end.port}")
            if self.fabric.port_is_up(end.dpid, end.port):
                eff.packet_outs += self._probes(end.dpid, [end.port], now)
            eff.merge(self._changed())  # (it may be an edge port again, or a link soon)
        gone = self.fabric.expire_links(now if horizon is None else min(horizon, now),
                                        self.settings.link_timeout)
        if gone:
            self._log_gone(gone, "LLDP timeout")
            eff.merge(self._changed("LLDP timeout"))
        return eff

    def _log_gone(self, gone: list[Link], why: str) -> None:
        for lk in gone:
            log.warning(
                "link %d:%d -> %d:%d removed (%s)",
                lk.src.dpid, lk.src.port, lk.dst.dpid, lk.dst.port, why,
            )
            self._event("link_down", f"link {lk.src.dpid}:{lk.src.port} -> "
                        f"{lk.dst.dpid}:{lk.dst.port} removed ({why})",
                        src=f"{lk.src.dpid}:{lk.src.port}", dst=f"{lk.dst.dpid}:{lk.dst.port}",
                        reason=why)

    def is_settled(self, dpid: int, now: float) -> bool:
        """A switch is settled once discovery had time to find its links."""
        sw = self.fabric.switches.get(dpid)
        if sw is None or not sw.connected:
            return False
        return now - sw.connected_since >= self.settings.settle_time

    # --- packet-in ----------------------------------------------------------------------------
    def packet_in(self, dpid: int, in_port: int, data: bytes, now: float) -> Effects:
        if not self.fabric.is_connected(dpid):
            return Effects()
        try:
            eth = parse_ethernet(data)
        except FrameError as exc:
            self._count("bad_frames")
            log.debug("dropping frame from %d:%d: %s", dpid, in_port, exc)
            return Effects()
        if eth.ethertype == C.ETH_TYPE_LLDP:
            return self._lldp_in(dpid, in_port, eth.payload, now)
        if not self.is_host_port(dpid, in_port, now):
            return self._transit_miss(dpid, in_port, eth.dst, eth.ethertype, data)
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

    def host_ports(self, dpid: int, now: float) -> list[int]:
        """Ports of a settled leaf where hosts are: up long enough, and no LLDP seen."""
        if not self.is_settled(dpid, now) or self.role(dpid) != LEAF:
            return []
        return self.fabric.edge_ports(dpid, now, self.settings.settle_time)

    def port_speed(self, dpid: int, port: int) -> float:
        """A port's rate in bit/s: the configured link speed, else what the switch
        reports (0: unknown)."""
        if self.settings.link_speed_bps:
            return self.settings.link_speed_bps
        sw = self.fabric.switches.get(dpid)
        p = sw.ports.get(port) if sw else None
        return float(p.speed_bps) if p else 0.0

    def is_host_port(self, dpid: int, port: int, now: float) -> bool:
        return port in self.host_ports(dpid, now)

    def _transit_miss(self, dpid: int, in_port: int, dst_mac: str, ethertype: int,
                      data: bytes) -> Effects:
        """A frame inside the fabric found no entry (entries for a new host are still on
        their way to this switch): hand it straight to the destination host's port."""
        dst = None if is_multicast_mac(dst_mac) else self.fabric.hosts.get(dst_mac)
        if dst is None or ethertype == C.ETH_TYPE_ARP:
            self._count("ignored_non_edge")
            log.debug("ignored frame to %s type %#x on non-host port %d:%d",
                      dst_mac, ethertype, dpid, in_port)
            return Effects()
        self._count("transit_miss_delivered")
        return Effects(packet_outs=[PacketOut(dst.dpid, (dst.port,), data)])

    def _lldp_in(self, dpid: int, in_port: int, payload: bytes, now: float) -> Effects:
        try:
            probe = parse_lldp(
                payload, self.secret, now, max_age=max(2.0, 2 * self.settings.lldp_interval)
            )
        except FrameError as exc:
            self._count("rejected_lldp")
            self._rlog.log(logging.WARNING, f"lldp:{dpid}:{in_port}", now,
                           "rejected LLDP frame on %d:%d: %s", dpid, in_port, exc)
            return Effects()
        src, dst = LinkEnd(probe.dpid, probe.port), LinkEnd(dpid, in_port)
        if src in self.fabric.held or dst in self.fabric.held:
            self._count("lldp_dampened")  # a flapping link stays down until it is stable
            return Effects()
        if not self.fabric.is_connected(src.dpid):
            self._count("rejected_lldp")
            return Effects()
        if src.dpid == dst.dpid:
            self._count("rejected_lldp")
            self._rlog.log(logging.WARNING, f"lldp:{dpid}:{in_port}", now,
                           "rejected LLDP on %d:%d: loops back to its own switch", dpid, in_port)
            return Effects()
        if not self.fabric.port_is_up(src.dpid, src.port) or not self.fabric.port_is_up(
            dst.dpid, dst.port
        ):
            self._count("rejected_lldp")
            return Effects()
        for end in (src, dst):
            if end.port in self._hosted_ports(end.dpid):
                self._count("rejected_lldp")
                self._count("rejected_lldp_host_port")
                self._rlog.log(logging.WARNING, f"lldp:{dpid}:{in_port}", now,
                               "rejected LLDP %d:%d -> %d:%d: port %d:%d has a host behind it",
                               src.dpid, src.port, dst.dpid, dst.port, end.dpid, end.port,
                )
                return Effects()
        self.fabric.expected.discard(src)
        self.fabric.expected.discard(dst)
        is_new, displaced = self.fabric.link_seen(src, dst, now)
        if not is_new:
            return Effects()
        self._log_gone(displaced, "re-cabled")
        log.info("link %d:%d -> %d:%d discovered", src.dpid, src.port, dst.dpid, dst.port)
        self._event("link_up", f"link {src.dpid}:{src.port} -> {dst.dpid}:{dst.port} "
                    "discovered", src=f"{src.dpid}:{src.port}", dst=f"{dst.dpid}:{dst.port}")
        eff = self._changed(f"link {src.dpid}:{src.port} -> {dst.dpid}:{dst.port} up")
        if LinkEnd(dst.dpid, dst.port) not in self.fabric.links:
            # answer at once so that the reverse direction is found without waiting a tick
            eff.packet_outs += self._probes(dst.dpid, [dst.port], now)
        return eff

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
        """Apply the binding rules (:mod:`controller.core.hosts`) to a sighting; False when the
        frame is refused and must be dropped (the effects then hold only probes)."""
        out = self.host_guard.sighting(mac, ip, dpid, port, now)
        return self._host_outcome(out, now), out.accepted

    def _host_outcome(self, out: Outcome, now: float) -> Effects:
        for name in out.counters:
            self._count(name)
        for e in out.events:
            level = logging.INFO if e.kind == "host_learned" else logging.WARNING
            self._rlog.log(level, f"{e.kind}:{dict(e.fields).get('at', '')}", now,
                           "%s: %s", e.kind, e.message)
        self.events += out.events
        eff = self._changed() if out.changed else Effects()
        eff.packet_outs += [self._probe_host(p) for p in out.probes]
        self.counters["host_probes"] = self.counters.get("host_probes", 0) + len(out.probes)
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
                self.settings.flood_rate, self.settings.flood_burst, now
            )
        if not bucket.take(now):
            self._count("flood_rate_limited")
            return Effects()
        self._recent_floods[hash(data)] = now + FLOOD_ECHO_WINDOW
        eff = Effects()
        for leaf in sorted(d for d, r in self.roles().items() if r == LEAF):
            ports = tuple(p for p in self.host_ports(leaf, now) if (leaf, p) != (dpid, in_port))
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
        return eff

    def recover_layout(self, dpid: int, flows: list[FlowRule],
                       groups: list[GroupRule]) -> None:
        """What a switch held when it connected, beyond its hosts: its ECMP groups (each
        leads to a leaf: until that leaf is back, or the grace period ends, they and the
        entries using them stay), the ports its groups send out of (they face switches:
        until each is judged, by a link found over it or the port going down, the
        switch's groups are kept as they are, and the port is not taken for a host
        port), and its role (a spine drops multicast in table 1, a leaf punts it), so
        that a switch whose links are not known yet keeps its role."""
        self._expected_groups |= {g.group_id for g in groups
                                  if 0 < g.group_id < C.FF_GROUP_BASE}
        linked = self.fabric.link_ports(dpid)
        self.fabric.expected |= {
            LinkEnd(dpid, a[1]) for g in groups for b in g.buckets for a in b.actions
            if a[0] == "output" and a[1] not in linked
            and self.fabric.port_is_up(dpid, a[1])}
        if dpid in self._roles:
            return
        for rule in flows:
            if (rule.table, rule.priority, C.cookie_kind(rule.cookie)) == (
                    C.TABLE_FORWARD, C.PRIO_MULTICAST, C.KIND_CONTROL):
                self._roles[dpid] = LEAF if rule.instructions else SPINE
                self._view = None
                return

    def waiting(self, dpid: int, now: float) -> bool:
        """True while a port of ``dpid`` that faced a switch before the restart is not
        judged yet (that switch is not back): its groups are then kept as they are."""
        return self._in_grace(now) and any(e.dpid == dpid for e in self.fabric.expected)

    def kept_groups(self, dpid: int, held: Iterable[int], now: float) -> frozenset[int]:
        """The groups (of ``held``, what switch ``dpid`` holds) that a sync must leave as
        they are: those towards leaves not back yet, and all of them while a switch
        ``dpid`` faces is not back (see :meth:`waiting`)."""
        frozen = self.frozen_groups(now)
        return frozen | frozenset(held) if self.waiting(dpid, now) else frozen

    def frozen_groups(self, now: float) -> frozenset[int]:
        """Groups towards leaves that have not come back (yet) since the restart."""
        if not self._expected_groups or not self._in_grace(now):
            return frozenset()
        # a leaf's groups thaw once it is settled (its own entries read back, its hosts
        # recovered, its links found): until then nobody can judge what it reaches
        live = {g for d, g in self.view().group_ids.items() if self.is_settled(d, now)}
        return frozenset(g for g in self._expected_groups if g not in live)

    def _in_grace(self, now: float) -> bool:
        return self._grace_until is not None and now < self._grace_until

    def _end_grace(self, now: float) -> Effects:
        """After the grace period, what did not come back is judged without it."""
        if self._in_grace(now) or not (self._expected_groups or self.fabric.expected):
            return Effects()
        gone = sorted(self._expected_groups - set(self.view().group_ids.values()))
        if gone:
            log.warning("%d ECMP group(s) towards leaves that did not come back within %g s "
                        "are removed: %s", len(gone), self.settings.absent_timeout, gone)
        if self.fabric.expected:
            log.warning("ports facing switches that did not come back within %g s are "
                        "judged without them: %s", self.settings.absent_timeout,
                        sorted((e.dpid, e.port) for e in self.fabric.expected))
        self._expected_groups.clear()
        self.fabric.expected.clear()
        return self._changed("grace period after the restart ended")

    def set_qos_policy(self, policy: QosPolicy | None) -> Effects:
        """Replace the marking policy (validated already); entries follow on the next sync."""
        self.qos = policy
        if policy is not None:
            self._event("qos_policy", "QoS policy replaced: "
                        + ", ".join(c.name for c in policy.classes))
        return self._changed()

    # --- maintenance: drain and undrain (the state and its rules: maintenance.py) ---------
    @property
    def drained_cables(self) -> set[Cable]:
        return self.maintenance.cables

    @property
    def drained_switches(self) -> set[int]:
        return self.maintenance.switches

    def cable_at(self, dpid: int, port: int) -> Cable | None:
        return self.maintenance.cable_at(dpid, port)

    def drained_ends(self) -> frozenset[LinkEnd]:
        return self.maintenance.drained_ends()

    def drain(self, cable: Cable | None = None, switch: int | None = None) -> Effects:
        """Take a link or a spine out of service; ValueError (with the reason) if that
        would leave two leaves without a path, or if a leaf is asked for."""
        what = self.maintenance.drain(self.roles(), cable, switch)
        log.warning("drained: %s", what)
        self._event("drain", f"{what} drained", what=what)
        return self._changed(f"drain of {what}")

    def undrain(self, cable: Cable | None = None, switch: int | None = None) -> Effects:
        what = self.maintenance.undrain(cable, switch)
        log.warning("back in service: %s", what)
        self._event("undrain", f"{what} back in service", what=what)
        return self._changed(f"{what} back in service")

    def maintain(self, action: str, dpid: int, port: int = 0) -> tuple[Effects, str]:
        """An operator's drain or undrain (``drain_link``, ``drain_switch``, ``undrain``
        with a port for a link, without for a switch), and what happened, in words.
        LookupError for an unknown switch or link; ValueError when the fabric's state
        forbids it."""
        if dpid not in self.fabric.switches:
            raise LookupError(f"no switch with dpid {dpid}")
        if action == "drain_switch":
            return self.drain(switch=dpid), f"switch {dpid} drained"
        if action == "undrain" and not port:
            if dpid not in self.drained_switches:
                return Effects(), f"switch {dpid} is not drained"
            return self.undrain(switch=dpid), f"switch {dpid} back in service"
        if action == "undrain":
            drained = self.maintenance.drained_at(dpid, port)
            if not drained:
                cable = self.cable_at(dpid, port)
                if cable is None:
                    raise LookupError(f"no link at {dpid}:{port}")
                return Effects(), f"{cable_text(cable)} is not drained"
            eff = Effects()
            for c in drained:  # (with one before re-cabling: whatever was drained there)
                eff.merge(self.undrain(cable=c))
            return eff, " and ".join(f"{cable_text(c)} back in service" for c in drained)
        if action != "drain_link":
            raise ValueError(f"unknown maintenance action {action!r}")
        cable = self.cable_at(dpid, port)
        if cable is None:
            raise LookupError(f"no link at {dpid}:{port}")
        return self.drain(cable=cable), f"{cable_text(cable)} drained"

    # --- derived state ----------------------------------------------------------------------
    def roles(self) -> dict[int, str]:
        self.view()
        return {d: r for d, r in self._roles.items() if self.fabric.is_connected(d)}

    def role(self, dpid: int) -> str | None:
        return self.roles().get(dpid)

    def view(self) -> FabricView:
        if self._view is not None:
            return self._view
        fab = self.fabric
        cables = fab.cables()
        # Disconnected switches still carrying (frozen) links remain part of the fabric.
        members = sorted(
            {d for d, s in fab.switches.items() if s.connected}
            | {c.a.dpid for c in cables}
            | {c.b.dpid for c in cables}
        )
        result = infer_roles(
            members,
            cables,
            {d: len(fab.edge_ports(d)) for d in members if fab.is_connected(d)},
            self.settings.role_overrides,
            self._roles,
        )
        self._roles.update(result.roles)
        self._warnings = result.warnings + tuple(cabling_warnings(self.settings.cabling, cables))
        adjacency: dict[int, list[tuple[int, int, int]]] = {d: [] for d in members}
        for c in cables:
            adjacency[c.a.dpid].append((c.a.port, c.b.dpid, c.b.port))
            adjacency[c.b.dpid].append((c.b.port, c.a.dpid, c.a.port))
        leaves = [d for d in members if result.roles[d] == LEAF]
        hosts = tuple(
            HostLocation(h.mac, h.ip, h.dpid, h.port)
            for h in sorted(fab.hosts.values(), key=lambda h: h.mac)
        )
        self._view = FabricView(
            roles=result.roles,
            adjacency={d: tuple(sorted(v)) for d, v in adjacency.items()},
            hosts=hosts,
            group_ids=assign_group_ids(leaves),
            connected=frozenset(d for d in members if fab.is_connected(d)),
            edge_ports={d: tuple(fab.edge_ports(d)) for d in leaves},
            qos=self.qos,
            drained_ends=frozenset((e.dpid, e.port) for e in self.drained_ends()),
            drained_switches=frozenset(self.drained_switches),
            te=self.te is not None,
            punt=self.settings.punt,
        )
        return self._view

    def desired(self, dpid: int, now: float) -> tuple[SwitchDesired, bool]:
        """What switch ``dpid`` should hold, and whether that is the complete state.

        Until a switch is settled it only gets its LLDP entry, added beside whatever it
        already holds: its links are not known yet, and nothing is removed on a guess.
        Settling is per switch: once settled, its state is complete, whatever other
        switches do (one that flaps its session must not hold the fabric back). What it
        holds towards leaves that are not back yet is kept by :meth:`frozen_groups`.
        """
        self._now = now
        if not self.is_settled(dpid, now):
            return SwitchDesired.build([lldp_rule()], [],
                                       lldp_meters(self.settings.punt)), False
        desired = self._desired.get(dpid)
        if desired is None:
            desired = self._desired[dpid] = desired_state(self.view(), dpid)
        complete = True
        if self.traffic is None or self.role(dpid) != LEAF:
            return desired, complete
        pins = self.traffic.pins_of(dpid)
        return SwitchDesired({**desired.flows, **pins}, desired.groups,
                             desired.meters), complete

    def snapshot(self, now: float) -> TopologySnapshot:
        view = self.view()
        fab = self.fabric
        switches = tuple(
            SwitchInfo(
                dpid=sw.dpid,
                role=view.roles.get(sw.dpid, self._roles.get(sw.dpid, "unknown")),
                connected=sw.connected,
                connected_since=sw.connected_since,
                ports=len(sw.up_ports()),
                drained=sw.dpid in self.drained_switches,
            )
            for sw in sorted(fab.switches.values(), key=lambda s: s.dpid)
        )
        drained = self.drained_ends()
        links = tuple(
            LinkInfo(lk.src.dpid, lk.src.port, lk.dst.dpid, lk.dst.port, lk.discovered_at,
                     lk.src in drained or bool({lk.src.dpid, lk.dst.dpid}
                                               & self.drained_switches))
            for lk in sorted(fab.links.values(), key=lambda lk: (lk.src, lk.dst))
            if fab.is_connected(lk.src.dpid) and fab.is_connected(lk.dst.dpid)
        )
        probing = self.host_guard.pending
        hosts = tuple(
            HostInfo(h.mac, h.ip or "", h.dpid, h.port, h.first_seen, h.recovered,
                     "static" if h.static else "probing" if h.mac in probing
                     else "recovered" if h.recovered else "bound", h.last_seen)
            for h in sorted(fab.hosts.values(), key=lambda h: (h.dpid, h.port, h.mac))
        )
        return TopologySnapshot(switches, links, hosts, self._warnings, now)
