"""Traffic engineering as a component of the core: the glue between the fabric view and
the traffic engineer (:mod:`controller.core.te.engine`). New-flow copies in (checked by
:mod:`.admission`), pins out (:meth:`FabricTE.pins_of`); the TE topology and loads
derived from the current view (:mod:`.derive`); operator pins, alone or as a cluster
shares them (:mod:`.pins`); restart adoption (:mod:`.restart`); registered training jobs
(``JobBook``); in cluster mode, this instance's part (:class:`.mirroring.ClusterShare`).

It reads the fabric through a narrow interface (:class:`.reader.FabricReader`: the view,
the model, whether a switch is settled and a port faces hosts) and reports through two
sinks (a counter and an event); it keeps its own state (flows, pins, measured loads).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

from controller.core import constants as C
from controller.core.effects import Effects
from controller.core.errors import FailedPrecondition, NotFound
from controller.core.model.job_spec import JobSpec
from controller.core.model.roles import SPINE
from controller.core.snapshot import FlowInfo, JobInfo
from controller.core.southbound.openflow import FlowRule, Match
from controller.core.te.admission import Admission, Admitted
from controller.core.te.cookies import pin_cookie_fields, pin_rule, spine_pin_rule
from controller.core.te.derive import derive_topology, measured_loads
from controller.core.te.engine import TrafficEngineer
from controller.core.te.flows import FlowKey, Move, flow_info, pinned_at
from controller.core.te.job_book import JobBook, pair_of
from controller.core.te.mirroring import ClusterShare
from controller.core.te.pins import SharedPins
from controller.core.te.reader import CoreTeSettings, FabricReader
from controller.core.te.rebalance import RebalancePass, RebalancePlan
from controller.core.te.restart import RecoveredPins
from controller.core.te.topology import Resource, SpinePath, TeTopology

log = logging.getLogger("aifabric.core")


class FabricTE:
    """Traffic engineering's component of the core: its steps and commands, each
    returning the leaves whose pins changed (as Effects)."""

    def __init__(self, settings: CoreTeSettings, engineer: TrafficEngineer,
                 reader: FabricReader, count: Callable[[str], None],
                 event: Callable[..., None]) -> None:
        self.settings = settings
        self.te = engineer
        self.reader = reader
        self.fabric = reader.fabric
        self._count = count
        self._event = event
        self.port_bps: dict[tuple[int, int], float] = {}  # measured tx rates (te_pass)
        self._loads_memo: tuple | None = None  # (topo, view adjacency, port_bps, loads)
        self._te_topo: TeTopology | None = None
        self._change_reasons: list[str] = []  # why the TE topology is to be rebuilt
        self._recovered = RecoveredPins()
        self.admission = Admission(settings, reader, count)
        self._unchecked = False  # the fabric changed since flows were last checked
        self._hosts_moved = False  # hosts came, went or moved since (jobs' members?)
        self.jobs = JobBook(settings.job_limits, event)  # registered training jobs
        self.shared = SharedPins()  # cluster mode: the operator pins the cluster shares
        self.cluster = ClusterShare()  # cluster mode: the leaves written here, TE leader

    @property
    def shared_pins(self) -> dict[FlowKey, int] | None:
        """Cluster mode: the operator pins the cluster shares (None: alone)."""
        return self.shared.wanted

    @property
    def unmet_pins(self) -> dict[FlowKey, str]:
        """Cluster mode: the shared pins not made here yet (their hosts not seen yet),
        with the reason."""
        return self.shared.unmet

    # --- cluster mode -----------------------------------------------------------------------
    def set_cluster_role(self, writes: frozenset[int] | None, leader: bool) -> None:
        """Cluster mode: the leaves this instance masters, and whether it leads TE."""
        if (writes is None) != (self.cluster.writes is None):
            self.invalidate("cluster mode")  # (paths between pods: only alone)
        self.cluster.set_role(writes, leader)

    def take_shared_moves(self) -> dict[int, dict[FlowKey, tuple[int, str]]]:
        """The leader's moves to share since the last call, by leaf."""
        return self.cluster.take()

    def apply_leader_moves(self, leaf: int, moves: Mapping[FlowKey, tuple[int, str]],
                           leader: str, now: float) -> Effects:
        """The TE leader's moves of a leaf this instance masters: each flow still here,
        not pinned by an operator and with a path in service on its spine is moved."""
        writes = self.cluster.writes
        if writes is not None and leaf not in writes:
            return Effects()
        topo = self.te_topology()
        made = [m for key, (spine, reason) in moves.items()
                if (m := self.te.move_to(key, spine, topo, f"{reason} (TE leader {leader})",
                                         now)) is not None and m.new.leaf == leaf]
        return Effects(touched=_switches(made))

    def invalidate(self, reason: str) -> None:
        """The fabric changed: the paths are derived again (and flows checked) when next
        needed; moves made then name every change since."""
        self._te_topo = None
        self._unchecked = True
        if reason not in self._change_reasons:
            self._change_reasons.append(reason)

    def hosts_changed(self) -> None:
        """Hosts came, went or moved: no path changes, but a job's members may have
        appeared or moved (placed by the next :meth:`refresh`)."""
        self._hosts_moved = True

    def refresh(self, now: float) -> set[int]:
        """The explicit step after the fabric changed: derive the paths in service again,
        adopt pins recovered after a restart, re-place every flow whose path is gone and
        the pairs of every job (in the same step, so within the event that changed the
        fabric). Returns the leaves whose pins changed (nothing when nothing changed)."""
        touched: set[int] = set()
        reason = ""
        def settled(dpid: int) -> bool:
            return self.reader.is_settled(dpid, now)

        if self._unchecked or self._recovered.ready(settled):
            self._unchecked = False
            topo = self.te_topology()
            reason = "; ".join(self._change_reasons) or "topology change"
            self._change_reasons = []  # (moves made now say why; later ones say their own)
            for flow in self._recovered.take_flows(self.reader.view(), self.fabric, topo,
                                                   settled, now):
                self.te.adopt(flow)
            moves = self.te.revalidate(topo, self.te_loads(), now, reason,
                                       self.cluster.writes)
            touched = _switches(moves)
        waited = any(self.reader.is_settled(d, now) for d in self.jobs.waiting_on)
        hosts, self._hosts_moved = self._hosts_moved, False
        if reason and len(self.jobs) or self.jobs.dirty or waited:
            touched |= self._place_jobs(reason or "jobs changed", now)
        elif hosts and len(self.jobs) and self.jobs.needs_placing(self._where()):
            touched |= self._place_jobs("a job's hosts appeared or moved", now)
        if self.unmet_pins:  # (a shared pin whose hosts were not known: maybe now)
            touched |= self._reconcile_pins(now)
        return touched

    def _where(self) -> dict[str, tuple[int, int]]:
        """Every learned host address and the (leaf, port) it is attached at."""
        return {h.ip: (h.dpid, h.port) for h in self.fabric.hosts.values() if h.ip}

    def _leaf_of(self) -> dict[str, int]:
        """Every learned host address and its leaf."""
        return {ip: leaf for ip, (leaf, _) in self._where().items()}

    def _place_jobs(self, reason: str, now: float) -> set[int]:
        where = self._where()
        settled = {d for d, _ in set(where.values()) if self.reader.is_settled(d, now)}
        touched = self.jobs.place(self.te_topology(), where, self.te_loads(), reason,
                                  settled, self._classes())
        # TE's own pins under a job's pair entries carry nothing any more: gone
        dropped = self.te.forget([k for k in self.te.flows if self.jobs.covers(k)])
        return touched | {d for f in dropped for d in pinned_at(f)}

    # --- jobs ----------------------------------------------------------------------------------
    def _classes(self) -> dict[str, int] | None:
        qos = self.reader.view().qos
        return None if qos is None else {c.name: c.dscp for c in qos.classes}

    def jobs_with(self, spec: JobSpec) -> list[JobSpec]:
        """The registered jobs with ``spec`` added, to put in force with :meth:`set_jobs`:
        JobError (naming the field), JobExists, ResourceExhausted or JobRefused if it
        cannot be registered now; nothing changes here."""
        self.jobs.check(spec, self._leaf_of(), self._classes())
        return [*self.jobs.registered(), spec]

    def jobs_without(self, job_id: str) -> list[JobSpec]:
        """The registered jobs without ``job_id`` (NotFound if it is not registered)."""
        specs = self.jobs.registered()
        if all(s.job_id != job_id for s in specs):
            raise NotFound(f"no job {job_id!r}")
        return [s for s in specs if s.job_id != job_id]

    def set_jobs(self, specs: list[JobSpec], now: float) -> Effects:
        """Make ``specs`` (in registration order) the registered jobs, as a cluster shares
        them: jobs gone are deleted, new or changed ones registered (a member not known
        here yet leaves a job pending until it is), the rest left as placed."""
        current = {s.job_id: s for s in self.jobs.specs()}
        wanted = {s.job_id: s for s in specs}
        for spec in specs:  # (all checked before anything changes: none or all of them)
            if current.get(spec.job_id) != spec:
                spec.validate(self.jobs.limits)
        changed = False
        for job_id, spec in current.items():
            if wanted.get(job_id) != spec:
                self.jobs.delete(job_id)
                changed = True
        for spec in specs:
            if current.get(spec.job_id) != spec:
                self.jobs.add(spec, now)
                changed = True
        if not changed:
            return Effects()
        touched = self.refresh(now)
        return Effects(touched=touched | self._place_jobs("the cluster's jobs changed", now))

    def restore_jobs(self, specs: list[JobSpec], now: float) -> None:
        """Jobs kept across a restart (placed once the fabric and their hosts are known)."""
        self.jobs.restore(specs, now)

    def job_infos(self) -> tuple[JobInfo, ...]:
        if not len(self.jobs):
            return ()
        topo = self._te_topo or self.te_topology()
        return self.jobs.infos(self._leaf_of(), self.te_loads(), topo)

    def te_topology(self) -> TeTopology:
        """The paths in service for TE, as the current view has them (a getter: flows
        are re-placed by :meth:`refresh`)."""
        if self._te_topo is None:
            # (in a cluster, a spine's master may not be the leaf's: flows between pods
            # are left to the groups there)
            self._te_topo = derive_topology(self.reader.view(), self.reader.port_speed,
                                            self.settings.link_speed_bps,
                                            three_tier=self.cluster.writes is None)
        return self._te_topo

    def te_loads(self) -> dict[Resource, float]:
        """Measured load of every TE resource, from the port rates the app last read
        (computed once per topology, view and reading: every new flow asks; nobody may
        change what it gets)."""
        topo = self._te_topo
        if topo is None:
            return {}
        view = self.reader.view()
        memo = self._loads_memo
        # (a view with other hosts has the same ways through the fabric: its adjacency)
        if memo is None or memo[0] is not topo or memo[1] is not view.adjacency \
                or memo[2] is not self.port_bps:
            memo = self._loads_memo = (topo, view.adjacency, self.port_bps,
                                       measured_loads(topo, view, self.port_bps))
        return memo[3]

    def recover_pins(self, dpid: int, flows: list[FlowRule]) -> None:
        """Keep a switch's pins (read back after a restart) until its leaf is settled;
        they are then adopted, so that flows stay where they were."""
        self.jobs.recover(dpid, [r for r in flows if C.cookie_kind(r.cookie) == C.KIND_JOB
                                 and r.table in (C.TABLE_TE, C.TABLE_FORWARD)])
        if self._recovered.keep(dpid, flows):
            self._te_topo = None

    def flow_seen(self, dpid: int, in_port: int, data: bytes, now: float) -> Effects:
        """A copy of a packet no pin holds yet, from a leaf's TE table: place its flow
        if :class:`.admission.Admission` admits it."""
        new = self.admission.admit(dpid, in_port, data, now, self._known)
        if not isinstance(new, Admitted):
            return new
        refreshed = self.refresh(now)
        topo = self.te_topology()
        flow = self.te.new_flow(new.key, dpid, new.dst_leaf, topo, self.te_loads(), now,
                                new.cls, new.priority)
        if flow is None:
            eff = self.admission.decline(dpid, new.key, "te_declined")
            eff.touched |= refreshed
            return eff
        self.admission.placed(new)
        log.debug("flow %s placed on %s", new.key, flow.path)
        return Effects(touched={*pinned_at(flow)} | refreshed)

    def _known(self, key: FlowKey) -> bool:
        """Whether a pin or a job's pair entry holds ``key`` already."""
        return key in self.te.flows or self.te.covered_by_pin(key) or self.jobs.covers(key)

    def te_pass(self, port_bps: dict[tuple[int, int], float], now: float,
                rebalance: bool = True) -> Effects:
        """One control interval: new rates in; idle flows out; congestion, and (unless
        the caller runs it apart: :meth:`rebalance_job`) rebalancing."""
        self.port_bps = port_bps
        touched = self.refresh(now)
        if len(self.jobs) and self.jobs.needs_placing(self._where()):
            touched |= self._place_jobs("a job's hosts appeared or moved", now)
        topo = self.te_topology()
        loads = self.te_loads()
        touched |= {d for f in self.te.expire(now) for d in pinned_at(f)}
        self.admission.recount(self.te.flows.values(), self._where())
        if not self.cluster.leader:  # (cluster mode: the leader relieves and rebalances)
            return Effects(touched=touched)
        moves = self.te.congestion(topo, loads, now)
        if rebalance:
            moves += self.te.rebalance(topo, loads, now)
        self.cluster.share(moves)
        return Effects(touched=touched | _switches(moves))

    def rebalance_job(self, now: float) -> RebalancePass | None:
        """A rebalancing pass to search apart (``te.search``), or None."""
        self.refresh(now)
        if not self.cluster.leader:
            return None
        return self.te.rebalance_job(self.te_topology(), self.te_loads(), now)

    def rebalanced(self, plan: RebalancePlan, now: float,
                   limit: int | None = None) -> tuple[Effects, RebalancePlan | None]:
        """A searched pass comes back: its moves if they still hold (at most about
        ``limit`` now), and what is left of it to apply next."""
        self.refresh(now)
        moves, rest = self.te.finish_rebalance(plan, self.te_topology(), now, limit)
        self.cluster.share(moves)
        return Effects(touched=_switches(moves)), rest

    def pin_counters(self, dpid: int, counters: list[tuple[Match, int, int]],
                     now: float, all_pins: bool = False) -> None:
        """Byte counts of one leaf's pins and job pair entries (its flow statistics):
        (match, cookie, bytes). With ``all_pins`` (the whole answer to a read of the
        leaf's TE pins), the flows of a leaf another instance writes are tracked as the
        leaf holds them (``TrafficEngineer.mirror``): a partial answer, or one of job
        pair entries, must not make the others look gone."""
        by_key, by_pair = {}, {}
        held: list[tuple[FlowKey, SpinePath, int, bool]] = []
        writes = self.cluster.writes
        mirrored = all_pins and writes is not None and dpid not in writes
        uplink_spines = dict(self.te_topology().uplinks.get(dpid, ())) if mirrored else {}
        for match, cookie, count in counters:
            if C.cookie_kind(cookie) == C.KIND_JOB:
                pair = pair_of(match)
                if pair is not None:
                    by_pair[pair] = count
                continue
            key = FlowKey.from_match(match)
            if key is None:
                continue
            by_key[key] = count
            if mirrored:  # (another instance writes this leaf: the switch says what is)
                port, priority, operator = pin_cookie_fields(C.cookie_low(cookie))
                dst = self.fabric.host_by_ip(key.dst_ip)
                spine = uplink_spines.get(port)
                if not operator and dst is not None and spine is not None:
                    held.append((key, SpinePath(dpid, port, spine), dst.dpid, priority))
        if mirrored:
            self.te.mirror(dpid, held, now)
        if by_key:
            self.te.update_counters(dpid, by_key, now)
        if by_pair:
            self.jobs.update_counters(by_pair, now, self.te.settings.smoothing)

    def _leaves_of(self, key: FlowKey) -> tuple[int, int]:
        src = self.fabric.host_by_ip(key.src_ip)
        dst = self.fabric.host_by_ip(key.dst_ip)
        if src is None or dst is None:
            raise NotFound(f"no host with address {key.src_ip if src is None else key.dst_ip}")
        if src.dpid == dst.dpid:
            raise FailedPrecondition(f"{key.src_ip} and {key.dst_ip} are on the same leaf: "
                                     "their traffic crosses no spine")
        return src.dpid, dst.dpid

    def _pin_leaves(self, key: FlowKey, spine: int) -> tuple[int, int]:
        """The leaves a pin of ``key`` to ``spine`` joins (NotFound: an unknown switch or
        host; FailedPrecondition: both hosts on one leaf)."""
        if spine not in self.fabric.switches:
            raise NotFound(f"no switch with dpid {spine}")
        return self._leaves_of(key)

    def _pin_flow(self, key: FlowKey, spine: int, now: float) -> set[int]:
        """Make an operator's pin (checked: :meth:`pins_with`); the leaves touched."""
        src_leaf, dst_leaf = self._pin_leaves(key, spine)
        refreshed = self.refresh(now)
        old = self.te.flows.get(key)
        before = set(pinned_at(old)) if old is not None else set()
        flow = self.te.pin(key, src_leaf, dst_leaf, spine, self.te_topology(), now)
        assert flow.path is not None
        p = flow.path
        via = (f"super-spine {p.super_spine} (spine {p.spine} port {p.spine_port})"
               if p.super_spine else f"spine {p.spine}")
        self._event("pin", f"{key} pinned to {via} (leaf {src_leaf} port {p.port})",
                    flow=str(key), spine=spine)
        return {*flow.path.switches} | before | refreshed

    def pins_with(self, key: FlowKey, spine: int) -> dict[FlowKey, int]:
        """The operator pins with ``key`` pinned to ``spine``, to put in force with
        :meth:`set_pins`: NotFound (unknown host or switch) or FailedPrecondition (the
        spine cannot carry it) if it cannot be pinned now; nothing changes here."""
        src_leaf, dst_leaf = self._pin_leaves(key, spine)
        if self.te_topology().path_via(src_leaf, dst_leaf, spine) is None:
            raise FailedPrecondition(f"switch {spine} is on no path in service from leaf "
                                     f"{src_leaf} to leaf {dst_leaf}")
        return {**(self.shared.wanted or {}), key: spine}

    def pins_without(self, key: FlowKey) -> dict[FlowKey, int]:
        """The operator pins without ``key`` (NotFound if it is not pinned)."""
        pins = self.shared.wanted or {}
        if key not in pins:
            raise NotFound(f"no operator pin for {key}")
        return {k: v for k, v in pins.items() if k != key}

    def set_pins(self, pins: Mapping[FlowKey, int], now: float) -> Effects:
        """Make ``pins`` (flow -> spine) the operator pins, as a cluster shares them. A
        pin this instance cannot make yet (a host not seen here yet) is made once it can
        (:meth:`refresh` tries again); :attr:`unmet_pins` says which and why."""
        self.shared.wanted = dict(pins)
        return Effects(touched=self._reconcile_pins(now))

    def _reconcile_pins(self, now: float) -> set[int]:
        def operator_pins() -> dict[FlowKey, int]:
            return {k: f.path.spine if f.path else 0 for k, f in self.te.flows.items()
                    if f.operator}

        return self.shared.reconcile(
            operator_pins, lambda key, spine: self._pin_flow(key, spine, now),
            lambda key: self._unpin_flow(key))

    def _unpin_flow(self, key: FlowKey) -> set[int]:
        flow = self.te.unpin(key)
        self._event("unpin", f"{key} unpinned: traffic engineering places it again",
                    flow=str(key))
        return {*pinned_at(flow)}

    def flows(self, now: float) -> tuple[FlowInfo, ...]:
        topo = self._te_topo or self.te_topology()
        return tuple(flow_info(f, self.te.is_large(f, topo), now)
                     for f in sorted(self.te.flows.values(), key=lambda f: f.key.as_tuple))

    def pins_of(self, dpid: int) -> dict[tuple[int, int, Match], FlowRule]:
        """The pin and job pair entries a leaf should hold, or the pins of a spine (the
        flows between pods it sends up), as of the last :meth:`refresh`."""
        pins = {}
        if self.reader.view().roles.get(dpid) == SPINE:  # (the flows it sends up)
            for leaf in self.te_topology().leaves_under.get(dpid, ()):
                for flow in self.te.placed_at(leaf):
                    path = flow.path
                    if path is not None and path.spine == dpid and path.super_spine:
                        rule = spine_pin_rule(flow, C.FF_GROUP_BASE + path.spine_port)
                        pins[rule.key] = rule
            if len(self.jobs):
                pins.update(self.jobs.rules_of(dpid))
            return pins
        for flow in self.te.placed_at(dpid):
            assert flow.path is not None
            rule = pin_rule(flow, C.FF_GROUP_BASE + flow.path.port)
            pins[rule.key] = rule
        if len(self.jobs):
            pins.update(self.jobs.rules_of(dpid))
        return pins


def _switches(moves: list[Move]) -> set[int]:
    """The switches whose pins ``moves`` change."""
    return {d for m in moves for d in m.switches}
