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
from controller.core.discovery import Discovery
from controller.core.edge import Edge
from controller.core.effects import Effects
from controller.core.errors import FailedPrecondition, NotFound
from controller.core.events import FabricEvent
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
    Ethernet,
    FrameError,
    parse_ethernet,
)
from controller.core.hosts import HostGuard, HostSettings
from controller.core.jobs import JobLimits, JobSpec
from controller.core.maintenance import Maintenance, cable_text
from controller.core.model import Cable, Fabric, LinkEnd, Port
from controller.core.openflow import FlowRule, GroupRule, Match, SwitchDesired
from controller.core.qos import QosPolicy
from controller.core.ratelog import RateLimitedLog
from controller.core.roles import LEAF, SPINE, infer_roles
from controller.core.shared import Drains
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
    RebalancePass,
    RebalancePlan,
    TeSettings,
    TeTopology,
    TrafficEngineer,
)
from controller.core.te.fabric import FabricTE

log = logging.getLogger("aifabric.core")



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
    source_guard: bool = True  # IPv4 from a host port only from what is bound there


class FabricCore:
    """Events in (switches, ports, frames, counters, operator commands, the time),
    desired switch state and effects out. Discovery (``discovery``: LLDP, links, flap
    dampening), the leaf edge (``edge``: frames from hosts, flooding, hosts read back
    after a restart), host identity (``host_guard``), maintenance (``maintenance``) and
    traffic engineering (``traffic``) are components it owns; it keeps the roles, the
    restart grace period, the QoS policy and the derived views (``view``, ``desired``)."""

    def __init__(self, settings: CoreSettings, secret: bytes) -> None:
        self.settings = settings
        self.fabric = Fabric()
        self.qos: QosPolicy | None = settings.qos
        self.maintenance = Maintenance(self.fabric)  # drained links and spines
        self._view: FabricView | None = None
        self._desired: dict[int, SwitchDesired] = {}  # per switch, for the current view
        self._warnings: tuple[str, ...] = ()
        self._roles: dict[int, str] = {}  # last known role of every switch ever seen
        self.counters: dict[str, int] = {}
        self.events: list[FabricEvent] = []  # taken by the app with take_events()
        self._now = 0.0  # time of the latest event, for decisions made while syncing
        self._guard_checked = -1.0  # when the source guard's ports were last checked
        self._expected_groups: set[int] = set()  # ECMP groups the switches held at start
        self._grace_until: float | None = None  # end of the restart grace period
        self.host_guard = HostGuard(self.fabric, settings.hosts)
        self.damper = FlapDamper(settings.damping)
        self.host_guard.install_static(0.0)
        self._rlog = RateLimitedLog(log)
        self.discovery = Discovery(
            self.fabric, secret, self.damper, self.host_guard,
            lldp_interval=settings.lldp_interval, link_timeout=settings.link_timeout,
            settle_time=settings.settle_time, count=self._count, event=self._event,
            changed=self._changed, rlog=self._rlog)
        self.edge = Edge(
            self.fabric, self.host_guard, flood_rate=settings.flood_rate,
            flood_burst=settings.flood_burst, host_ports=self.host_ports,
            leaves=lambda: sorted(d for d, r in self.roles().items() if r == LEAF),
            count=self._count, emit=lambda e: self.events.append(e), changed=self._changed,
            rlog=self._rlog)
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

    def rebalance_job(self, now: float) -> RebalancePass | None:
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
                     now: float, all_pins: bool = False) -> None:
        """A leaf's TE pins and job pair entries: (match, cookie, bytes); ``all_pins``
        when ``counters`` are every TE pin the leaf holds (FabricTE.pin_counters)."""
        if self.traffic is not None:
            self.traffic.pin_counters(dpid, counters, now, all_pins)

    # --- training jobs (TE's JobBook) ---------------------------------------------------------
    def _traffic(self) -> FabricTE:
        if self.traffic is None:
            raise FailedPrecondition("traffic engineering is off (--no-te): jobs cannot be "
                                     "placed")
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

    def registered_jobs(self) -> list[JobSpec]:
        """The registered jobs in registration order ([] with TE off)."""
        return self.traffic.jobs.registered() if self.traffic is not None else []

    def set_jobs(self, specs: list[JobSpec], now: float) -> Effects:
        """The registered jobs as a cluster shares them (FabricTE.set_jobs)."""
        self._now = now
        return self._traffic().set_jobs(specs, now)

    def restore_jobs(self, specs: list[JobSpec], now: float) -> None:
        self._traffic().restore_jobs(specs, now)

    def job_specs(self) -> list[JobSpec]:
        """The registered jobs, in placement order (what the state file keeps)."""
        return self.traffic.jobs.specs() if self.traffic is not None else []

    def job_infos(self) -> tuple[JobInfo, ...]:
        return self.traffic.job_infos() if self.traffic is not None else ()

    def pin_flow(self, key: FlowKey, spine: int, now: float) -> tuple[Flow, Effects]:
        if self.traffic is None:
            raise FailedPrecondition("traffic engineering is off (--no-te)")
        return self.traffic.pin_flow(key, spine, now)

    def check_pin(self, key: FlowKey, spine: int) -> None:
        """NotFound or FailedPrecondition unless ``key`` can be pinned to ``spine`` now."""
        self._traffic().check_pin(key, spine)

    def shared_pins(self) -> dict[FlowKey, int]:
        """The operator pins a cluster shares, as last set here ({} alone or TE off)."""
        pins = self.traffic.shared_pins if self.traffic is not None else None
        return dict(pins or {})

    def set_pins(self, pins: dict[FlowKey, int], now: float) -> Effects:
        """The operator pins as a cluster shares them (FabricTE.set_pins)."""
        self._now = now
        return self._traffic().set_pins(pins, now)

    def set_cluster_role(self, writes: frozenset[int], leader: bool) -> None:
        """Cluster mode: the switches this instance masters, and whether it is the TE
        leader (FabricTE.set_cluster_role)."""
        if self.traffic is not None:
            self.traffic.set_cluster_role(writes, leader)

    def take_shared_moves(self) -> dict[int, dict[FlowKey, tuple[int, str]]]:
        """The TE leader's moves on leaves other instances write, since the last call."""
        return self.traffic.take_shared_moves() if self.traffic is not None else {}

    def apply_leader_moves(self, leaf: int, moves: dict[FlowKey, tuple[int, str]],
                           leader: str, now: float) -> Effects:
        """The TE leader's moves of a leaf this instance writes."""
        self._now = now
        if self.traffic is None:
            return Effects()
        return self.traffic.apply_leader_moves(leaf, moves, leader, now)

    def unpin_flow(self, key: FlowKey, now: float) -> Effects:
        if self.traffic is None:
            raise FailedPrecondition("traffic engineering is off (--no-te)")
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
    def _count(self, name: str, n: int = 1) -> None:
        self.counters[name] = self.counters.get(name, 0) + n

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

    # --- switch events ----------------------------------------------------------------------
    def switch_connected(self, dpid: int, ports: list[Port], now: float) -> Effects:
        """A switch (re)connected. Probe it with :meth:`probe` once its LLDP entry is in."""
        if self._grace_until is None:
            self._grace_until = now + self.settings.absent_timeout
        return self.discovery.switch_connected(dpid, ports, now)

    def probe(self, dpid: int, now: float) -> Effects:
        """LLDP probes out of every up port of one switch."""
        return self.discovery.probe(dpid, now)

    def switch_disconnected(self, dpid: int, now: float) -> Effects:
        return self.discovery.switch_disconnected(dpid)

    def port_status(self, dpid: int, port: Port, deleted: bool, now: float) -> Effects:
        self._now = now
        return self.discovery.port_status(dpid, port, deleted, now)

    def tick(self, now: float, horizon: float | None = None) -> Effects:
        """Periodic work: probe every up port, expire links that stopped answering,
        hosts that did not answer a probe, and the restart grace period.

        ``horizon`` is the time up to which every frame that arrived has been handled
        (the app's queue position): links are judged by it, not by ``now``, so a loop
        that lags does not expire links whose probes are merely waiting in its queue."""
        self._now = now
        eff = self.discovery.probe_all(now)
        eff.merge(self.edge.expire(now))
        eff.merge(self._end_grace(now))
        if self._settle_guard(now):
            eff.changed = True
        return eff.merge(self.discovery.expire(now, now if horizon is None
                                               else min(horizon, now)))

    def is_settled(self, dpid: int, now: float) -> bool:
        """A switch is settled once discovery had time to find its links."""
        return self.discovery.is_settled(dpid, now)

    # --- packet-in ----------------------------------------------------------------------------
    def _frame(self, dpid: int, in_port: int, data: bytes) -> Ethernet | None:
        """A packet-in's frame, or None (counted) when it cannot be taken."""
        if not self.fabric.is_connected(dpid):
            return None
        try:
            return parse_ethernet(data)
        except FrameError as exc:
            self._count("bad_frames")
            log.debug("dropping frame from %d:%d: %s", dpid, in_port, exc)
            return None

    def packet_in(self, dpid: int, in_port: int, data: bytes, now: float) -> Effects:
        eth = self._frame(dpid, in_port, data)
        if eth is None:
            return Effects()
        if eth.ethertype == C.ETH_TYPE_LLDP:
            return self.discovery.lldp_in(dpid, in_port, eth.payload, now)
        if not self.is_host_port(dpid, in_port, now):
            return self.edge.transit_miss(dpid, in_port, eth.dst, eth.ethertype, data)
        return self.edge.host_frame(dpid, in_port, eth, data, now)

    def unbound_source(self, dpid: int, in_port: int, data: bytes, now: float) -> Effects:
        """An IPv4 frame the source guard sent up: its MAC and address are not bound at
        its port (yet)."""
        eth = self._frame(dpid, in_port, data)
        if eth is None:
            return Effects()
        if not self.is_host_port(dpid, in_port, now):  # (no longer: the entry is going)
            return self.edge.transit_miss(dpid, in_port, eth.dst, eth.ethertype, data)
        return self.edge.unbound_source(dpid, in_port, eth, data, now)

    def host_ports(self, dpid: int, now: float) -> list[int]:
        """Ports of a settled leaf where hosts are: up long enough, and no LLDP seen."""
        ports = self._settled_edge_ports(dpid, now)
        return ports if ports and self.role(dpid) == LEAF else []

    def _settled_edge_ports(self, dpid: int, now: float) -> list[int]:
        """Edge ports of a settled switch that have been up for the settle time (none
        while the switch itself is settling)."""
        if not self.is_settled(dpid, now):
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

    # --- after a controller restart ------------------------------------------------------
    def recover_hosts(self, dpid: int, flows: list[FlowRule], now: float) -> Effects:
        """Hosts read back from a leaf's own host entries (see :class:`Edge`)."""
        return self.edge.recover_hosts(dpid, flows, now)

    def recover_layout(self, dpid: int, flows: list[FlowRule],
                       groups: list[GroupRule]) -> None:
        """What a switch held when it connected, beyond its hosts: its ECMP groups (each
        leads to a leaf: until that leaf is back, or the grace period ends, they and the
        entries using them stay), the ports its groups send out of (they face switches:
        until each is judged, by a link found over it or the port going down, the
        switch's groups are kept as they are, and the port is not taken for a host
        port), and its role (a spine drops multicast in table 2, a leaf punts it), so
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

    @property
    def drains(self) -> Drains:
        """The cables and switches out of service now."""
        return Drains(frozenset(self.maintenance.cables), frozenset(self.maintenance.switches))

    def set_drains(self, drains: Drains) -> Effects:
        """Make ``drains`` the cables and switches out of service: an operator's change
        checked already (:meth:`maintenance_change`), or the set a cluster shares. An
        event for each drain and each return to service."""
        drained, back = self.maintenance.set(drains)
        for what in drained:
            log.warning("drained: %s", what)
            self._event("drain", f"{what} drained", what=what)
        for what in back:
            log.warning("back in service: %s", what)
            self._event("undrain", f"{what} back in service", what=what)
        if not drained and not back:
            return Effects()
        return self._changed("; ".join([*(f"drain of {w}" for w in drained),
                                        *(f"{w} back in service" for w in back)]))

    def drain(self, cable: Cable | None = None, switch: int | None = None) -> Effects:
        """Take a link or a spine out of service; FailedPrecondition (with the reason) if that
        would leave two leaves without a path, or if a leaf is asked for."""
        return self.set_drains(self.maintenance.with_drain(self.roles(), cable, switch))

    def undrain(self, cable: Cable | None = None, switch: int | None = None) -> Effects:
        d = self.drains
        return self.set_drains(Drains(d.cables - {cable}, d.switches - {switch}))

    def maintain(self, action: str, dpid: int, port: int = 0) -> tuple[Effects, str]:
        """An operator's drain or undrain, applied (:meth:`maintenance_change`)."""
        drains, message = self.maintenance_change(action, dpid, port)
        return self.set_drains(drains), message

    def maintenance_change(self, action: str, dpid: int, port: int = 0) -> tuple[Drains, str]:
        """The drain sets an operator's drain or undrain would make (``drain_link``,
        ``drain_switch``, ``undrain`` with a port for a link, without for a switch), and
        what it does, in words; nothing changes here. NotFound for an unknown switch or
        link; FailedPrecondition when the fabric's state forbids it."""
        if dpid not in self.fabric.switches:
            raise NotFound(f"no switch with dpid {dpid}")
        current = self.drains
        if action == "drain_switch":
            return self.maintenance.with_drain(self.roles(), switch=dpid), \
                f"switch {dpid} drained"
        if action == "undrain" and not port:
            if dpid not in current.switches:
                return current, f"switch {dpid} is not drained"
            return (Drains(current.cables, current.switches - {dpid}),
                    f"switch {dpid} back in service")
        if action == "undrain":
            drained = self.maintenance.drained_at(dpid, port)
            if not drained:
                cable = self.cable_at(dpid, port)
                if cable is None:
                    raise NotFound(f"no link at {dpid}:{port}")
                return current, f"{cable_text(cable)} is not drained"
            # (with one before re-cabling: whatever was drained there)
            return (Drains(current.cables - set(drained), current.switches),
                    " and ".join(f"{cable_text(c)} back in service" for c in drained))
        if action != "drain_link":
            raise ValueError(f"unknown maintenance action {action!r}")
        cable = self.cable_at(dpid, port)
        if cable is None:
            raise NotFound(f"no link at {dpid}:{port}")
        return self.maintenance.with_drain(self.roles(), cable=cable), \
            f"{cable_text(cable)} drained"

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
            guarded=self._guarded(leaves),
        )
        return self._view

    def _guarded(self, leaves: Iterable[int]) -> dict[int, tuple[int, ...]]:
        """Leaf -> the host ports the source guard holds: settled ones only (a port that
        just came up may face a switch whose LLDP has not arrived yet: guarding it would
        send transit traffic to the controller)."""
        if not self.settings.source_guard:
            return {}
        out = {d: tuple(self._settled_edge_ports(d, self._now)) for d in leaves}
        return {d: ports for d, ports in out.items() if ports}

    def _settle_guard(self, now: float) -> bool:
        """Drop the view if a host port settled (or stopped being one) since it was made:
        the guard's ports depend on the time (once per instant: a sync asks for every
        switch at one). The guard's entries only: TE is not concerned."""
        view = self._view
        if view is None or not self.settings.source_guard or now == self._guard_checked:
            return False
        self._guard_checked = now
        leaves = [d for d, r in view.roles.items() if r == LEAF]
        if self._guarded(leaves) == dict(view.guarded):
            return False
        self._view = None
        self._desired.clear()
        return True

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
        self._settle_guard(now)
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
