"""Traffic engineering as a component of the core: the glue between the fabric view and
:mod:`controller.core.te`. New-flow copies in, pins out; the TE topology and loads derived
from the current view; operator pins; restart adoption.

It reads the fabric through a narrow interface (:class:`FabricReader`: the view, the
model, whether a switch is settled and a port faces hosts) and reports through two
sinks (a counter and an event); it keeps its own state (flows, pins, measured loads).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Protocol

from controller.core import constants as C
from controller.core.effects import Effects, TokenBucket
from controller.core.fabric_jobs import JobBook, pair_of
from controller.core.forwarding import FabricView, nocopy_rule, uplinks
from controller.core.frames import FrameError, parse_ethernet, parse_transport
from controller.core.jobs import JobSpec
from controller.core.openflow import FlowRule, Match
from controller.core.roles import LEAF
from controller.core.snapshot import FlowInfo, JobInfo
from controller.core.te import (
    PROTO_NAMES,
    Flow,
    FlowKey,
    Path,
    RebalanceJob,
    RebalancePlan,
    Resource,
    TeTopology,
    down,
    pin_cookie_fields,
    pin_rule,
    up,
)

if TYPE_CHECKING:
    from controller.core.fabric_core import CoreSettings
    from controller.core.model import Fabric
    from controller.core.te import TrafficEngineer

log = logging.getLogger("aifabric.core")


class FabricReader(Protocol):
    """What traffic engineering reads of the rest of the core."""

    fabric: Fabric

    def view(self) -> FabricView: ...

    def is_settled(self, dpid: int, now: float) -> bool: ...

    def is_host_port(self, dpid: int, port: int, now: float) -> bool: ...

    def port_speed(self, dpid: int, port: int) -> float: ...


class FabricTE:
    def __init__(self, settings: CoreSettings, engineer: TrafficEngineer, reader: FabricReader,
                 count: Callable[[str], None], event: Callable[..., None]) -> None:
        self.settings = settings
        self.te = engineer
        self.reader = reader
        self.fabric = reader.fabric
        self._count = count
        self._event = event
        self.port_bps: dict[tuple[int, int], float] = {}  # measured tx rates (te_pass)
        self._te_topo: TeTopology | None = None
        self._change_reasons: list[str] = []  # why the TE topology is to be rebuilt
        self._recovered_pins: dict[int, list[FlowRule]] = {}
        self._flow_buckets: dict[tuple[int, int], TokenBucket] = {}
        self._port_flows: dict[tuple[int, int], int] = {}
        self._now = 0.0  # time of the latest event
        self._unchecked = False  # the fabric changed since flows were last checked
        self.jobs = JobBook(settings.job_limits, event)  # registered training jobs
        # cluster mode: the operator pins the cluster shares (None: alone), and those of
        # them not made here yet (their hosts not seen yet), with the reason
        self.shared_pins: dict[FlowKey, int] | None = None
        self.unmet_pins: dict[FlowKey, str] = {}
        self._reconciling = False
        # cluster mode: the leaves this instance writes (None: alone, every leaf), whether
        # it is the TE leader (the one that rebalances), and the leader's moves on leaves
        # others write, by leaf, for their masters to make: flow -> (spine, reason)
        self.writes: frozenset[int] | None = None
        self.leader = True
        self.shared_moves: dict[int, dict[FlowKey, tuple[int, str]]] = {}

    def set_cluster_role(self, writes: frozenset[int] | None, leader: bool) -> None:
        """Cluster mode: the leaves this instance masters, and whether it leads TE."""
        if leader != self.leader:
            log.info("TE leader: %s", "this instance (it rebalances the fabric)" if leader
                     else "another instance (this one places new flows only)")
        self.writes, self.leader = writes, leader
        if not leader:
            self.shared_moves.clear()

    def _share(self, moves: list) -> None:
        """The leader's moves on leaves another instance writes, for it to make."""
        if self.writes is None:
            return
        for m in moves:
            if m.new.leaf not in self.writes:
                self.shared_moves.setdefault(m.new.leaf, {})[m.key] = (m.new.spine, m.reason)

    def take_shared_moves(self) -> dict[int, dict[FlowKey, tuple[int, str]]]:
        """The leader's moves to share since the last call, by leaf."""
        out, self.shared_moves = self.shared_moves, {}
        return out

    def apply_leader_moves(self, leaf: int, moves: Mapping[FlowKey, tuple[int, str]],
                           leader: str, now: float) -> Effects:
        """The TE leader's moves of a leaf this instance masters: each flow still here,
        not pinned by an operator and with a path in service on its spine is moved."""
        if self.writes is not None and leaf not in self.writes:
            return Effects()
        self._now = now
        topo = self.te_topology()
        made = [m for key, (spine, reason) in moves.items()
                if (m := self.te.move_to(key, spine, topo, f"{reason} (TE leader {leader})",
                                         now)) is not None and m.new.leaf == leaf]
        return Effects(touched={leaf} if made else set())

    def invalidate(self, reason: str) -> None:
        """The fabric changed: the paths are derived again (and flows checked) when next
        needed; moves made then name every change since."""
        self._te_topo = None
        self._unchecked = True
        if reason not in self._change_reasons:
            self._change_reasons.append(reason)

    def _speed(self, dpid: int, port: int) -> float:
        return self.reader.port_speed(dpid, port)

    def refresh(self, now: float) -> set[int]:
        """The explicit step after the fabric changed: derive the paths in service again,
        adopt pins recovered after a restart, re-place every flow whose path is gone and
        the pairs of every job (in the same step, so within the event that changed the
        fabric). Returns the leaves whose pins changed (nothing when nothing changed)."""
        self._now = now
        touched: set[int] = set()
        reason = ""
        if self._unchecked or self._recovered_pins:
            self._unchecked = False
            topo = self.te_topology()
            reason = "; ".join(self._change_reasons) or "topology change"
            self._change_reasons = []  # (moves made now say why; later ones say their own)
            self._adopt_recovered_pins(self.reader.view())
            moves = self.te.revalidate(topo, self.te_loads(), now, reason, self.writes)
            touched = {m.new.leaf for m in moves} | {m.old.leaf for m in moves if m.old}
        waited = any(self.reader.is_settled(d, now) for d in self.jobs.waiting_on)
        if reason and len(self.jobs) or self.jobs.dirty or waited:
            touched |= self._place_jobs(reason or "jobs changed")
        if self.unmet_pins:  # (a shared pin whose hosts were not known: maybe now)
            touched |= self._reconcile_pins(now)
        return touched

    def _where(self) -> dict[str, tuple[int, int]]:
        """Every learned host address and the (leaf, port) it is attached at."""
        return {h.ip: (h.dpid, h.port) for h in self.fabric.hosts.values() if h.ip}

    def _leaf_of(self) -> dict[str, int]:
        """Every learned host address and its leaf."""
        return {ip: leaf for ip, (leaf, _) in self._where().items()}

    def _place_jobs(self, reason: str) -> set[int]:
        where = self._where()
        settled = {d for d, _ in set(where.values()) if self.reader.is_settled(d, self._now)}
        touched = self.jobs.place(self.te_topology(), where, self.te_loads(), reason,
                                  settled, self._classes())
        # TE's own pins under a job's pair entries carry nothing any more: gone
        dropped = self.te.forget([k for k in self.te.flows if self.jobs.covers(k)])
        return touched | {f.src_leaf for f in dropped}

    # --- jobs ----------------------------------------------------------------------------------
    def _classes(self) -> dict[str, int] | None:
        qos = self.reader.view().qos
        return None if qos is None else {c.name: c.dscp for c in qos.classes}

    def check_job(self, spec: JobSpec) -> None:
        self.jobs.check(spec, self._leaf_of(), self._classes())

    def register_job(self, spec: JobSpec, now: float) -> Effects:
        """Check, register and place a job: JobError (naming the field) or JobExists,
        and nothing changed, when it cannot be."""
        self._now = now
        self.check_job(spec)
        touched = self.refresh(now)
        self.jobs.add(spec, now)
        return Effects(touched=touched | self._place_jobs(f"job {spec.job_id} registered"))

    def delete_job(self, job_id: str, now: float) -> Effects:
        self._now = now
        touched = self.refresh(now)
        self.jobs.delete(job_id)
        return Effects(touched=touched | self._place_jobs(f"job {job_id} deleted"))

    def set_jobs(self, specs: list[JobSpec], now: float) -> Effects:
        """Make ``specs`` (in registration order) the registered jobs, as a cluster shares
        them: jobs gone are deleted, new or changed ones registered (a member not known
        here yet leaves a job pending until it is), the rest left as placed."""
        self._now = now
        current = {s.job_id: s for s in self.jobs.specs()}
        wanted = {s.job_id: s for s in specs}
        changed = False
        for job_id, spec in current.items():
            if wanted.get(job_id) != spec:
                self.jobs.delete(job_id)
                changed = True
        for spec in specs:
            if current.get(spec.job_id) != spec:
                spec.validate(self.jobs.limits)
                self.jobs.add(spec, now)
                changed = True
        if not changed:
            return Effects()
        touched = self.refresh(now)
        return Effects(touched=touched | self._place_jobs("the cluster's jobs changed"))

    def restore_jobs(self, specs: list[JobSpec], now: float) -> None:
        """Jobs kept across a restart (placed once the fabric and their hosts are known)."""
        self.jobs.restore(specs, now)

    def job_infos(self) -> tuple[JobInfo, ...]:
        topo = self._te_topo or self.te_topology()
        return self.jobs.infos(self._leaf_of(), self.te_loads(), topo)

    def te_topology(self) -> TeTopology:
        """The paths in service for TE, as the current view has them (a getter: flows
        are re-placed by :meth:`refresh`)."""
        if self._te_topo is not None:
            return self._te_topo
        view = self.reader.view()
        roles = view.roles
        leaves = [d for d, r in roles.items() if r == LEAF and d in view.connected]
        spines = [d for d, r in roles.items() if r != LEAF and d in view.connected
                  and d not in view.drained_switches]
        drained = view.drained_ends
        ups: dict[int, tuple[tuple[int, int], ...]] = {}
        capacity: dict[Resource, float] = {}
        for leaf in leaves:
            usable = tuple((p, s) for p, s in uplinks(view, leaf)
                           if s in spines and (leaf, p) not in drained)
            ups[leaf] = usable
            for p, _ in usable:
                capacity[up(leaf, p)] = self._speed(leaf, p)
        reach: dict[int, frozenset[int]] = {}
        for spine in spines:
            to = set()
            for leaf in leaves:
                ports = [p for p in view.ports_towards(spine, leaf) if (spine, p) not in drained]
                if ports:
                    to.add(leaf)
                    capacity[down(spine, leaf)] = sum(self._speed(spine, p) for p in ports)
            reach[spine] = frozenset(to)
        edge = [self._speed(d, p) for d in leaves for p in view.edge_ports.get(d, ())]
        host_rate = self.settings.link_speed_bps or (min(edge) if edge else 0.0)
        self._te_topo = topo = TeTopology(ups, reach, capacity, host_rate)
        return topo

    def te_loads(self) -> dict[Resource, float]:
        """Measured load of every TE resource, from the port rates the app last read."""
        topo = self._te_topo
        if topo is None:
            return {}
        view = self.reader.view()
        out: dict[Resource, float] = {}
        for r in topo.capacity:
            kind, a, b = r
            if kind == "up":
                out[r] = self.port_bps.get((a, b), 0.0)
            else:
                out[r] = sum(self.port_bps.get((a, p), 0.0) for p in view.ports_towards(a, b))
        return out

    def recover_pins(self, dpid: int, flows: list[FlowRule]) -> None:
        """Keep a leaf's pins (read back after a restart) until the fabric is known; they
        are then adopted, so that flows stay where they were."""
        self.jobs.recover(dpid, [r for r in flows if C.cookie_kind(r.cookie) == C.KIND_JOB
                                 and r.table == C.TABLE_TE])
        pins = [r for r in flows if C.cookie_kind(r.cookie) == C.KIND_PIN
                and r.table == C.TABLE_TE]
        if pins:
            self._recovered_pins[dpid] = pins
            self._te_topo = None

    def _adopt_recovered_pins(self, view: FabricView) -> None:
        for leaf, rules in self._recovered_pins.items():
            for rule in rules:
                key = FlowKey.from_match(rule.match)
                groups = [a[1] for ins in rule.instructions if ins[0] == "apply"
                          for a in ins[1] if a[0] == "group"]
                dst = self.fabric.host_by_ip(key.dst_ip) if key else None
                if key is None or len(groups) != 1 or dst is None:
                    continue
                port = groups[0] - C.FF_GROUP_BASE
                spine = next((pd for lp, pd, _ in view.adjacency.get(leaf, ()) if lp == port),
                             None)
                if spine is None:
                    continue
                _, priority, operator = pin_cookie_fields(C.cookie_low(rule.cookie))
                self.te.adopt(Flow(key, leaf, dst.dpid, "priority" if priority else
                                   "best-effort", priority, Path(leaf, port, spine),
                                   operator=operator, first_seen=self._now,
                                   last_active=self._now, bytes_at=self._now))
                log.info("flow %s recovered on %d:%d", key, leaf, port)
        self._recovered_pins.clear()

    def _class_of(self, dscp: int) -> tuple[str, bool]:
        qos = self.reader.view().qos
        if qos is not None:
            for c in qos.classes:
                if c.dscp == dscp:
                    return c.name, True
        return "best-effort", False

    def flow_seen(self, dpid: int, in_port: int, data: bytes, now: float) -> Effects:
        """A copy of a packet no pin holds yet, from a leaf's TE table: place its flow."""
        self._now = now
        if not self.fabric.is_connected(dpid):
            return Effects()
        if not self.reader.is_host_port(dpid, in_port, now):
            self._count("te_ignored_non_edge")
            return Effects()
        try:
            eth = parse_ethernet(data)
            if eth.ethertype != C.ETH_TYPE_IP:
                raise FrameError("not IPv4")
            t = parse_transport(eth.payload)
        except FrameError as exc:
            self._count("bad_frames")
            log.debug("TE copy from %d:%d not placed: %s", dpid, in_port, exc)
            return Effects()
        key = FlowKey(t.src_ip, t.dst_ip, t.proto, t.src_port, t.dst_port)
        if key in self.te.flows or self.te.covered_by_pin(key) or self.jobs.covers(key):
            self._count("te_copies_after_placement")  # the pin is on its way
            return Effects()
        dst = self.fabric.hosts.get(eth.dst)
        if dst is None or dst.dpid == dpid:
            return Effects()
        src = self.fabric.hosts.get(eth.src)
        if src is None or (src.dpid, src.port) != (dpid, in_port) or src.ip != t.src_ip:
            # (a source the port's host is not bound to: a forged address would weigh as
            # another host in the priority use and escape the port's share of the table)
            return self._decline(dpid, key, "te_declined_unbound_source")
        where = (dpid, in_port)
        if not (self.reader.is_settled(dpid, now) and self.reader.is_settled(dst.dpid, now)):
            return self._decline(dpid, key, "te_declined_unsettled")
        bucket = self._flow_buckets.get(where)
        if bucket is None:
            rate = self.settings.new_flow_rate
            bucket = self._flow_buckets[where] = TokenBucket(rate, rate, now)
        if not bucket.take(now):
            return self._decline(dpid, key, "te_new_flows_rate_limited")
        if self._port_flows.get(where, 0) >= self.settings.max_flows_per_port:
            return self._decline(dpid, key, "te_port_share_full")
        cls, priority = self._class_of(t.dscp)
        refreshed = self.refresh(now)
        topo = self.te_topology()
        flow = self.te.new_flow(key, dpid, dst.dpid, topo, self.te_loads(), now, cls, priority)
        if flow is None:
            eff = self._decline(dpid, key, "te_declined")
            eff.touched |= refreshed
            return eff
        self._port_flows[where] = self._port_flows.get(where, 0) + 1
        log.debug("flow %s placed on %s", key, flow.path)
        return Effects(touched={dpid} | refreshed)

    def _decline(self, dpid: int, key: FlowKey, why: str) -> Effects:
        """The flow stays on ECMP; a short-lived entry stops its packets being copied,
        so a host opening flows faster than TE takes them costs one copy per flow."""
        self._count(why)
        return Effects(ephemeral=[(dpid, nocopy_rule(key.match()),
                                   self.settings.declined_flow_timeout)])

    def _count_port_flows(self) -> None:
        """Tracked flows per ingress host port (the per-port share of the table)."""
        at = self._where()
        counts: dict[tuple[int, int], int] = {}
        for f in self.te.flows.values():
            where = at.get(f.key.src_ip)
            if where is not None and not f.operator:
                counts[where] = counts.get(where, 0) + 1
        self._port_flows = counts

    def te_pass(self, port_bps: dict[tuple[int, int], float], now: float,
                rebalance: bool = True) -> Effects:
        """One control interval: new rates in; idle flows out; congestion, and (unless
        the caller runs it apart: :meth:`rebalance_job`) rebalancing."""
        self._now = now
        self.port_bps = port_bps
        touched = self.refresh(now)
        if len(self.jobs) and self.jobs.needs_placing(self._where()):
            touched |= self._place_jobs("a job's hosts appeared or moved")
        topo = self.te_topology()
        loads = self.te_loads()
        touched |= {f.src_leaf for f in self.te.expire(now)}
        self._count_port_flows()
        if not self.leader:  # (cluster mode: the leader relieves and rebalances)
            return Effects(touched=touched)
        moves = self.te.congestion(topo, loads, now)
        if rebalance:
            moves += self.te.rebalance(topo, loads, now)
        self._share(moves)
        touched |= {m.new.leaf for m in moves}
        return Effects(touched=touched)

    def rebalance_job(self, now: float) -> RebalanceJob | None:
        """A rebalancing pass to search apart (``te.search``), or None."""
        self.refresh(now)
        if not self.leader:
            return None
        return self.te.rebalance_job(self.te_topology(), self.te_loads(), now)

    def rebalanced(self, plan: RebalancePlan, now: float,
                   limit: int | None = None) -> tuple[Effects, RebalancePlan | None]:
        """A searched pass comes back: its moves if they still hold (at most about
        ``limit`` now), and what is left of it to apply next."""
        self._now = now
        self.refresh(now)
        moves, rest = self.te.finish_rebalance(plan, self.te_topology(), now, limit)
        self._share(moves)
        return Effects(touched={m.new.leaf for m in moves}), rest

    def pin_counters(self, dpid: int, counters: list[tuple[Match, int, int]],
                     now: float, all_pins: bool = False) -> None:
        """Byte counts of one leaf's pins and job pair entries (its flow statistics):
        (match, cookie, bytes). With ``all_pins`` (the whole answer to a read of the
        leaf's TE pins), the flows of a leaf another instance writes are tracked as the
        leaf holds them (``TrafficEngineer.mirror``): a partial answer, or one of job
        pair entries, must not make the others look gone."""
        by_key, by_pair = {}, {}
        held: list[tuple[FlowKey, Path, int, bool]] = []
        mirrored = all_pins and self.writes is not None and dpid not in self.writes
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
                    held.append((key, Path(dpid, port, spine), dst.dpid, priority))
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
            raise LookupError(f"no host with address {key.src_ip if src is None else key.dst_ip}")
        if src.dpid == dst.dpid:
            raise ValueError(f"{key.src_ip} and {key.dst_ip} are on the same leaf: "
                             "their traffic crosses no spine")
        return src.dpid, dst.dpid

    def pin_flow(self, key: FlowKey, spine: int, now: float) -> tuple[Flow, Effects]:
        """An operator's pin: LookupError for an unknown host or switch, ValueError when
        the spine cannot carry it."""
        self._now = now
        if spine not in self.fabric.switches:
            raise LookupError(f"no switch with dpid {spine}")
        src_leaf, dst_leaf = self._leaves_of(key)
        refreshed = self.refresh(now)
        flow = self.te.pin(key, src_leaf, dst_leaf, spine, self.te_topology(), now)
        assert flow.path is not None
        self._event("pin", f"{key} pinned to spine {spine} (leaf {src_leaf} port "
                    f"{flow.path.port})", flow=str(key), spine=spine)
        return flow, Effects(touched={src_leaf} | refreshed)

    def check_pin(self, key: FlowKey, spine: int) -> None:
        """LookupError (unknown host or switch) or ValueError (the spine cannot carry
        it) unless ``key`` can be pinned to ``spine`` now; nothing changes."""
        if spine not in self.fabric.switches:
            raise LookupError(f"no switch with dpid {spine}")
        src_leaf, dst_leaf = self._leaves_of(key)
        if self.te_topology().path_via(src_leaf, dst_leaf, spine) is None:
            raise ValueError(f"spine {spine} has no path in service from leaf {src_leaf} "
                             f"to leaf {dst_leaf}")

    def set_pins(self, pins: Mapping[FlowKey, int], now: float) -> Effects:
        """Make ``pins`` (flow -> spine) the operator pins, as a cluster shares them. A
        pin this instance cannot make yet (a host not seen here yet) is made once it can
        (:meth:`refresh` tries again); :attr:`unmet_pins` says which and why."""
        self._now = now
        self.shared_pins = dict(pins)
        return Effects(touched=self._reconcile_pins(now))

    def _reconcile_pins(self, now: float) -> set[int]:
        if self.shared_pins is None or self._reconciling:
            return set()
        self._reconciling = True  # (pin_flow refreshes, which would come back here)
        try:
            touched: set[int] = set()
            current = {k: f.path.spine if f.path else 0 for k, f in self.te.flows.items()
                       if f.operator}
            for key in current.keys() - self.shared_pins.keys():
                touched |= self.unpin_flow(key, now).touched
            unmet: dict[FlowKey, str] = {}
            for key, spine in sorted(self.shared_pins.items()):
                if current.get(key) == spine:
                    continue
                try:
                    _, eff = self.pin_flow(key, spine, now)
                    touched |= eff.touched
                except (LookupError, ValueError) as exc:
                    unmet[key] = str(exc)
                    if key not in self.unmet_pins:
                        log.warning("shared pin of %s to spine %d not made here yet: %s",
                                    key, spine, exc)
            self.unmet_pins = unmet
            return touched
        finally:
            self._reconciling = False

    def unpin_flow(self, key: FlowKey, now: float) -> Effects:
        self._now = now
        flow = self.te.unpin(key)
        self._event("unpin", f"{key} unpinned: traffic engineering places it again",
                    flow=str(key))
        return Effects(touched={flow.src_leaf})

    def flows(self, now: float) -> tuple[FlowInfo, ...]:
        topo = self._te_topo or self.te_topology()
        out = []
        for f in sorted(self.te.flows.values(), key=lambda f: f.key):
            out.append(FlowInfo(
                f.key.src_ip, f.key.dst_ip, PROTO_NAMES[f.key.proto], f.key.src_port,
                f.key.dst_port, f.src_leaf, f.dst_leaf, f.path.spine if f.path else 0,
                f.path.port if f.path else 0, f.rate_bps, f.demand_bps, f.cls, f.priority,
                self.te.is_large(f, topo), "operator" if f.operator else "te",
                now - f.first_seen, f.moves,
            ))
        return tuple(out)


    def pins_of(self, leaf: int) -> dict:
        """The pin and job pair entries ``leaf`` should hold (as of the last
        :meth:`refresh`)."""
        pins = {}
        for flow in self.te.pins_of(leaf):
            assert flow.path is not None
            rule = pin_rule(flow, C.FF_GROUP_BASE + flow.path.port)
            pins[rule.key] = rule
        if len(self.jobs):
            pins.update(self.jobs.rules_of(leaf))
        return pins
