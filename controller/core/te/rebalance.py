"""Rebalancing: every interval, the large flows are re-placed from their estimated
demands (priority classes first, then the largest); the result is taken only if it lowers
the overload (or the worst link) by at least the hysteresis margin, and a flow that moved
stays put for ``min_move_interval`` unless its path fails.

The worker protocol: the controller's thread takes a pass (:meth:`Rebalancer.take`: a
:class:`RebalancePass`, references to the flows and copies of the loads, in well under a
millisecond); a worker searches it (:func:`search`, a pure function); the
:class:`RebalancePlan` comes back to the controller's thread, which applies it
(:meth:`Rebalancer.finish`) only if the fabric did not change meanwhile and each flow is
still where the search found it, in slices of whole ingress leaves.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from functools import cached_property

import numpy as np

from controller.core.events import FabricEvent
from controller.core.te.demand import (
    demand_list,
    own_load,
    select_demand_flows,
    snapshot_of_row,
)
from controller.core.te.flows import Flow, FlowKey, FlowSnapshot, FlowTable, Move
from controller.core.te.placement_search import place
from controller.core.te.settings import TeSettings
from controller.core.te.topology import Resource, SpinePath, TeTopology, resources


@dataclass(frozen=True)
class RebalancePass:
    """A rebalancing pass's input, taken in well under a millisecond on the controller's
    thread: the tracked flows as they are (a tuple of references), the measured loads,
    the topology. The search (:func:`search`, on a worker) first copies what it needs of
    the flows into tuples (:attr:`large`); a flow the controller moves meanwhile is left
    alone when the result comes back (:meth:`Rebalancer.finish`)."""

    candidates: tuple[Flow, ...]
    settings: TeSettings
    loads: Mapping[Resource, float]
    topo: TeTopology
    started: float
    moves_before: int = 0  # how many moves the engineer had made when this was taken
    # who placed flows on each link too recently to show in ``loads``
    newcomers: Mapping[Resource, frozenset[str]] = field(default_factory=dict)

    @cached_property
    def _snapshot(self) -> tuple[tuple[FlowSnapshot, ...], tuple[Flow, ...],
                                 tuple[int, ...]]:
        s, topo = self.settings, self.topo
        rows, chosen = select_demand_flows(self.candidates, s, topo.link_rate, self.started)
        if not rows:
            return (), (), ()
        (_, src, dst, _, _, _, _, pinned, moved_at, _, _, _) = zip(*rows, strict=True)
        settled = ~np.array(pinned, dtype=bool) & (
            np.array(moved_at, dtype=float) <= self.started - s.min_move_interval)
        paths, n_paths = topo.paths, {}
        at = chosen.tolist()
        movable: list[int] = []
        for k in np.nonzero(settled[chosen])[0].tolist():
            i = at[k]
            pair = (src[i], dst[i])
            n = n_paths.get(pair)
            if n is None:
                n = n_paths[pair] = len(paths(*pair))
            if n > 1:
                movable.append(k)
        large = tuple(snapshot_of_row(rows[i][:6]) for i in at)
        live = tuple(self.candidates[i] for i in at)
        return large, live, tuple(movable)

    @property
    def large(self) -> tuple[FlowSnapshot, ...]:
        """Copies of the large flows (taken on first use)."""
        return self._snapshot[0]

    @property
    def large_flows(self) -> tuple[Flow, ...]:
        """The live flows :attr:`large` copies, in the same order."""
        return self._snapshot[1]

    @property
    def movable(self) -> tuple[int, ...]:
        """The positions in :attr:`large` of the flows that may move."""
        return self._snapshot[2]

    @cached_property
    def flows(self) -> tuple[FlowSnapshot, ...]:
        """The flows that may move."""
        large = self.large
        return tuple(large[i] for i in self.movable)

    @property
    def current(self) -> dict[FlowKey, SpinePath | None]:
        return {f.key: f.path for f in self.flows}



@dataclass(frozen=True)
class RebalancePlan:
    """A searched pass: the placement, and the moves it implies grouped by ingress leaf
    (``changes``), applied from ``start`` on in slices that end at a leaf boundary."""

    job: RebalancePass
    placement: Mapping[FlowKey, SpinePath]  # the new path of each flow that moves
    before: tuple[float, float]  # (overload, worst utilization) now
    after: tuple[float, float]  # and with the placement
    demands: tuple[float, ...]  # of every large flow, in the order of ``job.large``
    # (none when no flow may move)
    changes: tuple[FlowSnapshot, ...] = ()  # flows whose placement differs, by src leaf
    moved_bps: float = 0.0  # the demands of ``changes``, summed
    start: int = 0  # how many of ``changes`` earlier slices applied
    applied: int = 0  # how many moves earlier slices made

    @cached_property
    def demand(self) -> dict[FlowKey, float]:
        """The demand of every large flow, by key."""
        if not self.demands:
            return {}
        return dict(zip((f.key for f in self.job.large), self.demands, strict=True))



def search(job: RebalancePass) -> RebalancePlan:
    """The search of a rebalancing pass, meant for another thread while the controller
    goes on: it only reads the job (and, once, the flows it refers to) and changes
    nothing."""
    movable = list(job.flows)
    if not movable:
        return RebalancePlan(job, {}, (0.0, 0.0), (0.0, 0.0), (), ())
    demands = demand_list(job.large, job.topo.host_rate)
    wanted = [demands[i] for i in job.movable]
    # (the measured loads, less what each movable flow puts on its path)
    placement, before, after = place(movable, wanted, job.loads, job.topo, moves_only=True,
                                     own=list(map(own_load, movable, wanted)))
    # (by the key's tuple: the same order, compared in C; the dataclass's comparison
    # took 0.4 s for 20,000 flows)
    changes = sorted((f for f in movable if f.key in placement),
                     key=lambda f: (f.src_leaf, f.key.as_tuple))
    moved = sum(w for f, w in zip(movable, wanted, strict=True) if f.key in placement)
    return RebalancePlan(job, placement, before, after, tuple(demands), tuple(changes),
                         moved)


class Rebalancer:
    """When a pass may run (not within the cooldown after one that moved flows), and
    how a searched pass is applied to the flow table."""

    def __init__(self, table: FlowTable) -> None:
        self.table = table
        self.last_moved = -1e18  # when a pass last moved flows

    def take(self, topo: TeTopology, loads: Mapping[Resource, float], now: float,
             newcomers: Mapping[Resource, frozenset[str]] | None = None
             ) -> RebalancePass | None:
        """The input of a rebalancing pass, copied so that the search (:func:`search`)
        can run on another thread; None when there is nothing to rebalance now.
        ``newcomers``: who placed flows on each link too recently to show in ``loads``."""
        s, flows = self.table.settings, self.table.flows
        if not s.rebalance or now - self.last_moved < s.rebalance_cooldown:
            return None  # (the last moves must show in the counters before the next)
        if s.large_flow_fraction * topo.link_rate <= 0 or not flows:
            return None
        return RebalancePass(tuple(flows.values()), s, dict(loads), topo, now,
                             self.table.moves, dict(newcomers or {}))

    def finish(self, plan: RebalancePlan, topo: TeTopology, now: float,
               limit: int | None = None) -> tuple[list[Move], RebalancePlan | None]:
        """Apply a searched placement if it is worth it and still holds: nothing if the
        fabric changed meanwhile (``topo`` is not the one searched on) or another decision
        moved a flow meanwhile (a congestion move: the placement was searched around
        where that flow was, and applied now it would put flows where the move just
        went); a flow that ended or was pinned meanwhile stays as it is. With a
        ``limit``, at most about that many moves (whole ingress leaves) now, and the rest
        of the plan to apply next (so that a pass moving thousands of flows never holds
        the caller for long)."""
        table = self.table
        job, s = plan.job, table.settings
        if job.topo is not topo or table.moves != job.moves_before + plan.applied:
            table.count("rebalance_stale")
            return [], None
        if plan.start == 0:
            if plan.demands:  # (none when nothing could move)
                for live, d in zip(job.large_flows, plan.demands, strict=True):
                    live.demand_bps = d  # (shown with the flows)
            if not plan.changes or not self.worth_it(plan):
                return [], None
            if self.onto_newcomers(plan):
                table.count("rebalance_deferred")
                return [], None
        before, after = plan.before, plan.after
        reason = (f"rebalance: overload {before[0]:.2f} -> {after[0]:.2f}, "
                  f"worst link {before[1]:.0%} -> {after[1]:.0%}")
        if plan.start == 0 and len(plan.changes) > s.reroute_events:
            table.events.append(FabricEvent(
                "rebalance", f"moving {len(plan.changes)} flows ({reason}); the first "
                f"{s.reroute_events} are reported one by one",
                (("flows", str(len(plan.changes))), ("reason", reason))))
        end = len(plan.changes) if limit is None else min(len(plan.changes),
                                                          plan.start + limit)
        while end < len(plan.changes) and \
                plan.changes[end].src_leaf == plan.changes[end - 1].src_leaf:
            end += 1  # (a leaf's moves together: its entries are rewritten once)
        moves = []
        for n, searched in enumerate(plan.changes[plan.start:end], plan.start):
            f = table.flows.get(searched.key)
            if f is None or f.operator or f.path != searched.path:
                continue  # ended, pinned or moved while the search ran
            moves.append(table.move(f, plan.placement[f.key], reason, now,
                                    announce=n < s.reroute_events))
        if moves:
            self.last_moved = now
        rest = (replace(plan, start=end, applied=plan.applied + len(moves))
                if end < len(plan.changes) else None)
        return moves, rest

    @staticmethod
    def onto_newcomers(plan: RebalancePlan) -> bool:
        """True if the plan moves a flow onto a link where another host placed a flow
        too recently to show in the counters the pass was searched on: to the search
        that link looked idle (a collective flow that just started, the busy uplink's
        flow moved onto it: both on one uplink). Its own host's new flows do not count
        (its NIC bounds them together). The next pass sees the newcomer's load."""
        newcomers = plan.job.newcomers
        if not newcomers:
            return False
        for f in plan.changes:
            old = set(resources(f.path, f.dst_leaf)) if f.path is not None else set()
            for r in resources(plan.placement[f.key], f.dst_leaf):
                if r not in old and newcomers.get(r, frozenset()) - {f.key.src_ip}:
                    return True
        return False

    def worth_it(self, plan: RebalancePlan) -> bool:
        """True if the placement lowers the overload by at least the hysteresis, and by
        that share of the traffic it moves (in link rates: a move costs the moved flow a
        hiccup; eight flows moved for the gain of one were the noise of bursty flows'
        readings, undone by the next pass), or, with no overload, lowers a busy worst
        link by the hysteresis."""
        s = self.table.settings
        before, after = plan.before, plan.after
        margin = s.hysteresis
        rate = plan.job.topo.link_rate
        moved = plan.moved_bps / rate if rate > 0 else 0.0
        less_overload = before[0] - after[0] >= margin * max(1.0, moved)
        # without overload, only a busy worst link is worth moving flows for: below the
        # floor every link has room, and a move only costs the flows a hiccup
        cooler = (before[0] < 1e-9 and after[0] < 1e-9 and before[1] >= s.rebalance_floor
                  and before[1] - after[1] >= margin)
        return less_overload or cooler
