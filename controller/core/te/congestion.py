"""Congestion: a link above ``congestion_threshold`` for ``congestion_intervals``
readings in a row has large flows moved off it, to paths with headroom that their
estimated demands do not overload. It runs on the controller's thread, between
rebalancing passes.
"""

from __future__ import annotations

from collections.abc import Mapping

from controller.core.events import FabricEvent
from controller.core.te.demand import estimate_demands, own_load, select_demand_flows
from controller.core.te.flows import Flow, FlowKey, FlowTable, Move
from controller.core.te.topology import Resource, TeTopology, resource_text, resources


class CongestionWatch:
    """How many readings in a row each link was hot, and which links are congested (as
    announced: an event when a link becomes congested and when it clears)."""

    def __init__(self, table: FlowTable) -> None:
        self.table = table
        self._hot: dict[Resource, int] = {}  # readings above threshold
        self._congested: set[Resource] = set()

    def check(self, topo: TeTopology, loads: Mapping[Resource, float], now: float,
              recent: Mapping[Resource, float] | None = None) -> list[Move]:
        """Count readings above the threshold; move large flows off a link that stayed
        hot for ``congestion_intervals`` readings. ``recent``: the nominal load (bit/s)
        of flows placed too recently to show in ``loads``."""
        s = self.table.settings
        moves: list[Move] = []
        # the loads with this pass's moves made: a move off one hot link often relieves
        # another (a flow's uplink and its spine link), which must not move a second flow
        planned = dict(loads)
        for r in sorted(topo.capacity):
            util = loads.get(r, 0.0) / topo.cap(r)
            if util < s.congestion_threshold:
                self._hot.pop(r, None)
                if r in self._congested:
                    self._congested.discard(r)
                    self.table.events.append(FabricEvent(
                        "congestion_cleared", f"link {resource_text(r)} back to {util:.0%}",
                        (("link", resource_text(r)), ("utilization", f"{util:.3f}"))))
                continue
            self._hot[r] = self._hot.get(r, 0) + 1
            if self._hot[r] < s.congestion_intervals:
                continue
            if r not in self._congested:
                self._congested.add(r)
                self.table.count("congestions")
                self.table.events.append(FabricEvent(
                    "congestion",
                    f"link {resource_text(r)} at {util:.0%} for {self._hot[r]} readings",
                    (("link", resource_text(r)), ("utilization", f"{util:.3f}"))))
            moved = self._relieve(r, topo, planned, recent or {}, now)
            moves += moved
            if moved:
                self._hot[r] = 0  # give the move time to show in the counters
        return moves

    def _relieve(self, hot: Resource, topo: TeTopology, planned: dict[Resource, float],
                 recent: Mapping[Resource, float], now: float) -> list[Move]:
        """Move large flows off ``hot`` until it is below the threshold; ``planned`` (the
        loads with the moves made so far) follows each move.

        A flow moves only to a path that stays under the threshold as measured (with the
        flows placed there too recently to show: a new flow of another host, still in
        its first second, is not a free link) and that its demand does not overload as
        the rebalancer estimates demands (:func:`demand_list`): a link is often full
        because the hosts behind it are (two flows into one receiver), and a move then
        only takes the place another host's flow needs, which the next rebalancing pass
        undoes, and so on."""
        s = self.table.settings
        cap = topo.cap(hot)
        target = s.congestion_threshold * cap
        large = self._demand_candidates(topo, now)
        # (and a flow large by its smoothed rate whose latest reading is low: a TCP flow
        # squeezed by a UDP stream reads as nearly paused, and is the one to move)
        known = {f.key for f in large}
        large += [f for f in self.table.flows.values() if f.key not in known
                  and f.path is not None and self.table.is_large(f, topo)]
        on_it = [f for f in large if not f.operator and hot in resources(f.path, f.dst_leaf)
                 and now - f.moved_at >= s.min_move_interval]
        if not on_it:
            return []
        demand, asked = self._demands_near(on_it, large, topo, planned)
        # best effort moves first; priority classes keep their paths if possible
        on_it.sort(key=lambda f: (f.priority, -f.rate_bps, f.key))
        moves = []
        for flow in on_it:
            if planned.get(hot, 0.0) <= target:
                break
            assert flow.path is not None
            want = demand[flow.key]
            best, best_util = None, planned.get(hot, 0.0) / cap
            hot_asked = asked.get(hot, 0.0) / cap
            for p in topo.paths(flow.src_leaf, flow.dst_leaf):
                if p == flow.path:
                    continue
                rs = resources(p, flow.dst_leaf)
                util = max((planned.get(r, 0.0) + recent.get(r, 0.0) + flow.rate_bps)
                           / topo.cap(r) for r in rs)
                # (within the hysteresis of full: a TCP flow alone asks for a whole link,
                # and the ACKs of others are there too)
                asks = max((asked.get(r, 0.0) + want) / topo.cap(r) for r in rs)
                if util < best_util - s.hysteresis and util < s.congestion_threshold + 1e-9 \
                        and asks <= 1.0 + s.hysteresis and asks < hot_asked - s.hysteresis:
                    best, best_util = p, util
            if best is None:
                continue
            for r in resources(flow.path, flow.dst_leaf):
                planned[r] = max(0.0, planned.get(r, 0.0) - flow.rate_bps)
                asked[r] = max(0.0, asked.get(r, 0.0) - want)
            for r in resources(best, flow.dst_leaf):
                planned[r] = planned.get(r, 0.0) + flow.rate_bps
                asked[r] = asked.get(r, 0.0) + want
            moves.append(self.table.move(flow, best, f"congestion on {resource_text(hot)}", now))
        if not moves:
            self.table.count("congestion_unrelieved")
        return moves

    def _demand_candidates(self, topo: TeTopology, now: float) -> list[Flow]:
        """The flows a rebalancing pass gives a demand (:func:`select_demand_flows`)."""
        flows = tuple(self.table.flows.values())
        _, chosen = select_demand_flows(flows, self.table.settings, topo.link_rate, now)
        return [flows[i] for i in chosen.tolist()]

    def _demands_near(self, movers: list[Flow], large: list[Flow], topo: TeTopology,
                      planned: Mapping[Resource, float]
                      ) -> tuple[dict[FlowKey, float], dict[Resource, float]]:
        """The demands of ``movers`` and what the links they could take are asked for:
        their measured load with the demand of each large flow there in place of its
        rate. Estimated over the flows of the hosts on those links (a flow's demand
        depends on its hosts' other flows), not the whole fabric: the congestion pass
        runs on the controller's thread."""
        near: set[Resource] = set()
        for f in movers:
            assert f.path is not None
            near.update(resources(f.path, f.dst_leaf))  # (even if out of service now)
            for p in topo.paths(f.src_leaf, f.dst_leaf):
                near.update(resources(p, f.dst_leaf))
        on_near = [f for f in large if not near.isdisjoint(resources(f.path, f.dst_leaf))]
        hosts = {ip for f in on_near for ip in (f.key.src_ip, f.key.dst_ip)}
        group = [f for f in large if f.key.src_ip in hosts or f.key.dst_ip in hosts]
        demand = estimate_demands(group, topo.host_rate)
        own = {r: 0.0 for r in near}
        wanted = dict(own)
        for f in on_near:
            d = demand[f.key]
            for r in resources(f.path, f.dst_leaf):
                if r in own:
                    own[r] += own_load(f, d)
                    wanted[r] += d
        # (as a rebalancing pass sees them: the other load, then the flows' demands)
        asked = {r: max(0.0, planned.get(r, 0.0) - own[r]) + wanted[r] for r in near}
        return demand, asked
