"""The controller's decision core: turns switch events into fabric state, packet-outs
and desired per-switch entries. No os-ken, no sockets, no clock: ``now`` is an argument.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import replace

from controller.core import constants as C
from controller.core.effects import Effects
from controller.core.events import FabricEvent
from controller.core.fabric.dampening import FlapDamper
from controller.core.fabric.discovery import Discovery
from controller.core.fabric.edge import Edge
from controller.core.fabric.fabric_view import FabricView
from controller.core.fabric.forwarding import (
    host_entries,
    host_rules,
    lldp_meters,
    lldp_rule,
    switch_base,
    with_hosts,
)
from controller.core.fabric.frames import (
    Ethernet,
    FrameError,
    parse_ethernet,
)
from controller.core.fabric.host_log import HostLog
from controller.core.fabric.hosts import HostGuard
from controller.core.fabric.maintenance import Maintenance
from controller.core.fabric.qos import QosPolicy
from controller.core.fabric.ratelog import RateLimitedLog
from controller.core.fabric.restart_grace import RestartGrace
from controller.core.fabric.view_derive import derive_view, host_locations
from controller.core.intent.kinds import Drains
from controller.core.model.fabric_model import Fabric, Port
from controller.core.model.roles import LEAF, SPINE
from controller.core.model.servers import ServerBook, resolve_member
from controller.core.settings import CoreSettings
from controller.core.snapshot import TopologySnapshot
from controller.core.snapshot_maker import SnapshotMaker
from controller.core.southbound.openflow import FlowRule, GroupRule, Match, SwitchDesired
from controller.core.te import (
    TrafficEngineer,
)
from controller.core.te.fabric import FabricTE
from controller.core.te.off import TeOff

log = logging.getLogger("aifabric.core")

GUARD_RECHECK = 0.25  # s: host ports settle with time alone; looked at again this often


def _same_but_hosts(a: FabricView, b: FabricView) -> bool:
    return replace(a, hosts=()) == replace(b, hosts=())


class FabricCore:
    """Events in (switches, ports, frames, counters, operator commands, the time),
    desired switch state and effects out. Discovery (``discovery``: LLDP, links, flap
    dampening), the leaf edge (``edge``: frames from hosts, flooding, hosts read back
    after a restart), host identity (``host_guard``), maintenance (``maintenance``), the
    restart grace period (``grace``) and traffic engineering (``traffic``: FabricTE, or
    TeOff with --no-te) are components it owns; callers reach them directly for what
    the core adds nothing to. It keeps the roles, the QoS policy and the derived views
    (``view``, ``desired``)."""

    def __init__(self, settings: CoreSettings, secret: bytes) -> None:
        self.settings = settings
        self.fabric = Fabric()
        self.qos: QosPolicy | None = settings.qos
        self.maintenance = Maintenance(self.fabric)  # drained links and spines
        # memos, dropped together (_drop_view) by every step that changes their inputs
        self._view: FabricView | None = None
        self._warnings: tuple[str, ...] = ()  # of the view
        self._desired: dict[int, SwitchDesired] = {}  # per switch, for the current view
        # per switch, its state but for host entries: kept while only hosts change (the
        # view then takes them in: _take_hosts)
        self._base: dict[int, SwitchDesired] = {}
        self._last_view: FabricView | None = None  # the last view made (host_log's)
        self._hosts_stale = False  # hosts changed since the view was made
        self._recheck = False  # a leaf got its first host or lost its last (prepare)
        self.host_log = HostLog()  # which hosts each view changed
        self.derived = 0  # views derived (not counting those with other hosts alone)
        self._snapshots = SnapshotMaker()
        self._roles: dict[int, str] = {}  # role of every switch seen, as of the last view
        self._guard_ports: dict[int, tuple[int, ...]] = {}  # leaf -> settled host ports
        self._guard_checked: tuple[int, float] = (-1, 0.0)  # (view derived, when)
        self._timed: tuple = (frozenset(), frozenset(), frozenset())  # (time_passed)
        self.counters: dict[str, int] = {}
        self.events: list[FabricEvent] = []  # taken by the app with take_events()
        self.host_guard = HostGuard(self.fabric, settings.hosts)
        self.damper = FlapDamper(settings.damping)
        self.host_guard.install_static(0.0)
        self._rlog = RateLimitedLog(log)
        self.discovery = Discovery(
            self.fabric, secret, self.damper, self.host_guard,
            lldp_interval=settings.lldp_interval, link_timeout=settings.link_timeout,
            settle_time=settings.settle_time, probe_budget=settings.probe_budget,
            count=self._count, event=self._event,
            changed=self._changed, rlog=self._rlog)
        self.servers = ServerBook(settings.servers)  # (the rail check's, jobs' SERVER:RAIL)
        self.grace = RestartGrace(self.fabric, settings.absent_timeout,
                                  lambda: self.view().group_ids, self.discovery.is_settled)
        self.edge = Edge(
            self.fabric, self.host_guard, flood_rate=settings.flood_rate,
            flood_burst=settings.flood_burst, host_ports=self.host_ports,
            leaves=lambda: sorted(d for d, r in self.roles().items() if r == LEAF),
            count=self._count, emit=lambda e: self.events.append(e),
            hosts_changed=self._hosts_changed, rlog=self._rlog)
        self.traffic: FabricTE | TeOff = (  # traffic engineering
            FabricTE(settings, TrafficEngineer(settings.te), self, self._count, self._event)
            if settings.te is not None else TeOff())

    # --- the step before desired state is computed -----------------------------------------
    def prepare(self, now: float) -> Effects:
        """The step between a change and computing desired state: flows whose path is
        gone are re-placed (and pins recovered after a restart adopted). ``desired`` is
        a getter and does none of that; a sync calls this first."""
        judged = self._judge(now)  # (roles first: what TE re-places follows them)
        self.view()  # (hosts taken in: a leaf's first or last may change more)
        unannounced = self._rederive() if self._recheck else False
        eff = Effects(touched=self.traffic.refresh(now))
        if judged | self._settle_guard(now) | unannounced:
            eff.changed = True
        return eff

    # --- bookkeeping ------------------------------------------------------------------------
    def _count(self, name: str, n: int = 1) -> None:
        self.counters[name] = self.counters.get(name, 0) + n

    def _changed(self, reason: str | None = None) -> Effects:
        self._drop_view()
        self.traffic.invalidate(reason or "topology change")
        return Effects(changed=True)

    def _hosts_changed(self) -> Effects:
        """Hosts came, went or changed address: the view takes them in when next asked
        (:meth:`_take_hosts`), what switches hold besides host entries (``_base``) is
        kept, and switches are sent the entries of those hosts alone (:meth:`host_delta`)."""
        self._hosts_stale = True
        self._desired.clear()
        self.traffic.hosts_changed()
        return Effects(hosts=True)

    def host_delta(self, dpid: int, gen: int) -> tuple[dict, list] | None:
        """Switch ``dpid``'s entries towards the hosts changed since generation ``gen`` of
        :attr:`host_log`, and the keys of all of them (:func:`host_entries`); None when
        it is to be planned whole: its own hosts changed (the source guard's passes
        too), or ``gen`` is further back than the log."""
        view = self.view()  # (its hosts are the log's last generation)
        changes = self.host_log.since(gen)
        if changes is None or dpid in changes[1]:
            return None
        return host_entries(view, dpid, changes[0])

    def _drop_view(self) -> None:
        """Forget the derived view and what was computed from it; the roles it found
        are remembered (a switch keeps its role while it is away)."""
        if self._view is not None:
            self._roles.update(self._view.roles)
        self._view = None
        self._desired.clear()
        self._base = {}

    def _event(self, kind: str, message: str, **fields: object) -> None:
        self.events.append(FabricEvent(kind, message,
                                       tuple((k, str(v)) for k, v in fields.items())))

    def take_events(self) -> list[FabricEvent]:
        """Events since the last call (TE's included), oldest first."""
        te = self.traffic.te
        if te is not None and te.events:
            self.events += te.events
            te.events = []
        out, self.events = self.events, []
        return out

    # --- switch events ----------------------------------------------------------------------
    def switch_connected(self, dpid: int, ports: list[Port], now: float) -> Effects:
        """A switch (re)connected. Probe it (``discovery.probe``) once its LLDP entry
        is in."""
        self.grace.switch_connected(now)
        return self.discovery.switch_connected(dpid, ports, now)

    def port_status(self, dpid: int, port: Port, deleted: bool, now: float) -> Effects:
        return self.discovery.port_status(dpid, port, deleted, now)

    def tick(self, now: float, horizon: float | None = None, probe: bool = True) -> Effects:
        """Periodic work: probe every up port, expire links that stopped answering,
        hosts that did not answer a probe, and the restart grace period.

        ``horizon`` is the time up to which every frame that arrived has been handled
        (the app's queue position): links are judged by it, not by ``now``, so a loop
        that lags does not expire links whose probes are merely waiting in its queue;
        how far it lags paces the probes. ``probe=False``: the caller probes apart
        (:meth:`probe`, more often)."""
        eff = self.probe(now, horizon) if probe else Effects()
        eff.merge(self.edge.expire(now))
        if self.grace.end(now):
            eff.merge(self._changed("grace period after the restart ended"))
        if self._judge(now) | self._settle_guard(now):  # (roles first)
            eff.changed = True
        return eff.merge(self.discovery.expire(now, now if horizon is None
                                               else min(horizon, now)))

    def probe(self, now: float, horizon: float | None = None) -> Effects:
        """The probes the budget allows now (the app asks at every one of its ticks,
        between those of :meth:`tick`: they go out as the budget refills, not a whole
        interval's worth at once; ``horizon`` as for :meth:`tick`)."""
        return self.discovery.probe_all(now, 0.0 if horizon is None
                                        else max(0.0, now - horizon))

    def is_settled(self, dpid: int, now: float) -> bool:
        """A switch is settled once discovery had time to find its links (what TE's
        FabricReader asks)."""
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
            return self.edge.transit_miss(dpid, in_port, eth.dst, eth.ethertype, data,
                                          now)
        return self.edge.host_frame(dpid, in_port, eth, data, now)

    def unbound_source(self, dpid: int, in_port: int, data: bytes, now: float) -> Effects:
        """An IPv4 frame the source guard sent up: its MAC and address are not bound at
        its port (yet)."""
        eth = self._frame(dpid, in_port, data)
        if eth is None:
            return Effects()
        if not self.is_host_port(dpid, in_port, now):  # (no longer: the entry is going)
            return self.edge.transit_miss(dpid, in_port, eth.dst, eth.ethertype, data,
                                          now)
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

    # --- after a controller restart (the grace period: ``grace``) ---------------------------
    def recover_layout(self, dpid: int, flows: list[FlowRule],
                       groups: list[GroupRule]) -> None:
        """What a switch held when it connected, beyond its hosts: its ECMP groups and
        the ports they send out of (kept through the grace period: :class:`RestartGrace`),
        and its role (a spine drops multicast in table 2, a leaf punts it), so that a
        switch whose links are not known yet keeps its role."""
        expected = len(self.fabric.expected)
        self.grace.recover(dpid, flows, groups)
        if len(self.fabric.expected) != expected:  # (ports that face switches: not edge
            self._drop_view()  # ports, which the view has)
        if dpid in self._roles or (self._view is not None and dpid in self._view.roles):
            return
        for rule in flows:
            if (rule.table, rule.priority, C.cookie_kind(rule.cookie)) == (
                    C.TABLE_FORWARD, C.PRIO_MULTICAST, C.KIND_CONTROL):
                self._drop_view()
                self._roles[dpid] = LEAF if rule.instructions else SPINE
                return

    def set_qos_policy(self, policy: QosPolicy | None) -> Effects:
        """Replace the marking policy (validated already); entries follow on the next sync."""
        self.qos = policy
        if policy is not None:
            self._event("qos_policy", "QoS policy replaced: "
                        + ", ".join(c.name for c in policy.classes))
        return self._changed()

    # --- maintenance: drain and undrain (the state and its rules: ``maintenance``) ----------
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

    def maintenance_change(self, action: str, dpid: int, port: int = 0) -> tuple[Drains, str]:
        """The drain sets an operator's drain or undrain would make, and what it does,
        in words (:meth:`Maintenance.change`); nothing changes here."""
        return self.maintenance.change(self.roles, action, dpid, port)

    # --- derived state ----------------------------------------------------------------------
    def roles(self) -> dict[int, str]:
        """The role of every connected switch."""
        known = {**self._roles, **self.view().roles}
        return {d: r for d, r in known.items() if self.fabric.is_connected(d)}

    def role(self, dpid: int, derive: bool = True) -> str | None:
        """:meth:`roles` of one switch (asked per packet: without building them all);
        ``derive=False``: as last derived, not deriving the view again after a change
        (periodic work that can wait: at 1,000 switches a view takes 100 ms)."""
        if not self.fabric.is_connected(dpid):
            return None
        view = self.view() if derive or self._view is not None else None
        role = view.roles.get(dpid) if view is not None else None
        return role if role is not None else self._roles.get(dpid)

    def view(self) -> FabricView:
        """The fabric as forwarding sees it, derived from the state the steps left (a
        memo: it writes nothing else); after hosts alone changed, the same view with
        the hosts taken again."""
        if self._view is not None:
            if self._hosts_stale:
                self._take_hosts()
            return self._view
        self._hosts_stale = self._recheck = False
        before = self._last_view
        self.derived += 1
        self._view, warnings = derive_view(
            self.fabric, self.settings, self.discovery.judged, self._roles, self.maintenance,
            self.qos, self._guard_ports, self.traffic.te is not None)
        self._warnings = warnings
        if before is not None:
            self.host_log.record(before.hosts, self._view.hosts)
        self._last_view = self._view
        return self._view

    def _take_hosts(self) -> None:
        """Hosts came, went or moved: the view with its hosts taken again. When a leaf
        got its first host or lost its last (with hosts, a switch is a leaf, which may
        change roles), :meth:`prepare` derives it again (once for all such changes
        before a sync: every leaf's first host was a derivation, 60 ms at 320
        switches, while a fabric's hosts were first learned)."""
        self._hosts_stale = False
        old = self._view
        assert old is not None
        hosts = host_locations(self.fabric)
        if {h.dpid for h in hosts} != {h.dpid for h in old.hosts}:
            self._recheck = True
        self._view = self._last_view = old.with_hosts(hosts)
        self.host_log.record(old.hosts, hosts)

    def _rederive(self) -> bool:
        """The view derived again (see :meth:`_take_hosts`); True when more than its
        hosts differ (a change nobody announced)."""
        self._recheck = False
        old, base, derived = self.view(), self._base, self.derived
        self._drop_view()
        if _same_but_hosts(old, self.view()):  # (the old view stands: what was made
            self._view = self._last_view = old  # from it too, e.g. the snapshot's links)
            self._base, self.derived = base, derived
            return False
        self.traffic.invalidate("topology change")
        return True

    def judge(self, now: float) -> Effects:
        """A step (each tick, and before a sync): switches whose links have been found
        for the first time get a role (:meth:`Discovery.judge`), and may then settle."""
        return Effects(changed=self._judge(now))

    def time_passed(self, dpids: Iterable[int], now: float) -> Effects:
        """A step at each tick: what time alone changes (roles judged, connected switches
        settled, the restart grace's frozen groups): a sync when any did."""
        judged, dpids = self.judge(now), list(dpids)
        timed = (frozenset(d for d in dpids if self.is_settled(d, now)),
                 self.grace.frozen_groups(now),
                 frozenset(d for d in dpids if self.grace.waiting(d, now)))
        newly, self._timed = timed != self._timed, timed
        return judged.merge(Effects(changed=newly))

    def _judge(self, now: float) -> bool:
        """True, and the views dropped, when switches were judged."""
        if not self.discovery.judge(now):
            return False
        self._changed("switches judged")
        return True

    def _settle_guard(self, now: float) -> bool:
        """A step: the host ports the source guard holds, as of ``now`` (leaf -> its
        settled host ports: a port that just came up may face a switch whose LLDP has
        not arrived yet, and guarding it would send transit traffic to the controller).
        True, and the view dropped, when they changed. The guard's entries only: TE is
        not concerned."""
        if not self.settings.source_guard:
            return False
        view = self.view()
        # (asked before every sync, a new flow's too: at 320 switches, every leaf's
        # ports were 4 of a new flow's 5 ms. Only time or a change of the fabric, which
        # derives a view, changes them: again after GUARD_RECHECK, or a new view)
        checked_view, checked_at = self._guard_checked
        if checked_view == self.derived and 0 <= now - checked_at < GUARD_RECHECK:
            return False
        self._guard_checked = (self.derived, now)
        leaves = [d for d, r in view.roles.items() if r == LEAF]
        ports = {d: tuple(self._settled_edge_ports(d, now)) for d in leaves}
        ports = {d: p for d, p in ports.items() if p}
        if ports == self._guard_ports:
            return False
        self._guard_ports = ports
        self._drop_view()
        return True

    def desired(self, dpid: int, now: float) -> tuple[SwitchDesired, bool]:
        """What switch ``dpid`` should hold, and whether that is the complete state.

        Until a switch is settled it only gets its LLDP entry, added beside whatever it
        already holds: its links are not known yet, and nothing is removed on a guess.
        Settling is per switch: once settled, its state is complete, whatever other
        switches do (one that flaps its session must not hold the fabric back). What it
        holds towards leaves that are not back yet is kept by ``grace.frozen_groups``.

        A getter: as of the last :meth:`prepare` (which a sync makes first), writing only
        its memo.
        """
        if not self.is_settled(dpid, now):
            return SwitchDesired.build([lldp_rule()], [],
                                       lldp_meters(self.settings.punt)), False
        desired = self._desired.get(dpid)
        if desired is None:
            view = self.view()
            base = self._base.get(dpid)
            if base is None:
                base = self._base[dpid] = switch_base(view, dpid)
            desired = self._desired[dpid] = with_hosts(base, host_rules(view, dpid))
        pins = self.pins(dpid, now)
        if not pins:  # (a spine between no pods, a leaf with no flows: nothing to add)
            return desired, True
        return SwitchDesired({**desired.flows, **pins}, desired.groups, desired.meters), True

    def pins(self, dpid: int, now: float) -> dict[tuple[int, int, Match], FlowRule] | None:
        """TE's entries (pins, jobs' pair entries: cookie kinds ``PIN_KINDS``) that a
        settled leaf or spine (with three tiers) should hold, part of :meth:`desired`;
        None for a switch that holds none (a super-spine, TE off) or is not settled
        (its whole state is planned)."""
        role = self.role(dpid)
        if (self.traffic.te is None or role not in (LEAF, SPINE)
                or not self.is_settled(dpid, now)):
            return None
        return self.traffic.pins_of(dpid)

    def warnings(self) -> tuple[str, ...]:
        """What makes the wiring not a clean Clos, as of the view."""
        self.view()
        return self._warnings

    def last_role(self, dpid: int) -> str | None:
        """The role a switch had as of the last view it was in (kept while it is away)."""
        return self._roles.get(dpid)

    def snapshot(self, now: float) -> TopologySnapshot:
        """The topology as the API shows it (switches and links made again only after
        a change of the fabric: hosts alone change far more often)."""
        return self._snapshots.make(self, now)

    def job_members(self, members: Iterable[str]) -> tuple[str, ...]:
        """A job's members as given (IPv4 addresses, or ``server:rail``), as addresses
        (InvalidArgument or FailedPrecondition naming the member that is not)."""
        servers = self.servers.by_name()
        ip_of_mac = {h.mac: h.ip for h in self.fabric.hosts.values() if h.ip}
        return tuple(resolve_member(m, servers, ip_of_mac, i) for i, m in enumerate(members))
