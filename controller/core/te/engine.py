"""The traffic engineer: which spine each tracked flow between two leaves crosses, and
when it moves. Pure: the caller passes the topology, the measured link loads and the
time; the answers are placements, moves and events.

It owns the flow table (:mod:`.flows`) and the parts that decide on it, each in its own
module (see docs/traffic-engineering.md for why they decide as they do):

1. first entry (:mod:`.placement`): a new flow is placed on the path with the most
   headroom, counting the flows placed too recently to show in the counters;
2. rebalancing (:mod:`.rebalance`): every interval, the large flows are re-placed from
   their estimated demands (:mod:`.demand`) when that is worth the moves;
3. congestion (:mod:`.congestion`): a link hot for several readings in a row has large
   flows moved off it;
4. failure and drain (:mod:`.failover`): a flow whose path is no longer in service is
   re-placed at once;

and operator pins (:mod:`.pins`) and, in cluster mode, the leaves other instances write
(:mod:`.mirroring`). This class only ties them together, under the names the rest of
the core calls.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence

from controller.core.events import FabricEvent
from controller.core.te import failover, mirroring
from controller.core.te.congestion import CongestionWatch
from controller.core.te.demand import estimate_demands
from controller.core.te.flows import Flow, FlowKey, FlowTable, Move
from controller.core.te.pins import OperatorPins
from controller.core.te.placement import FirstPlacement
from controller.core.te.rebalance import RebalancePass, RebalancePlan, Rebalancer, search
from controller.core.te.settings import TeSettings
from controller.core.te.topology import Resource, SpinePath, TeTopology


class TrafficEngineer:
    """Flow table and placement decisions of the whole fabric."""

    def __init__(self, settings: TeSettings | None = None) -> None:
        self.table = FlowTable(settings if settings is not None else TeSettings())
        self.placer = FirstPlacement(self.table)
        self.hot_links = CongestionWatch(self.table)
        self.rebalancer = Rebalancer(self.table)
        self.operator_pins = OperatorPins(self.table)

    @property
    def settings(self) -> TeSettings:
        return self.table.settings

    @property
    def flows(self) -> dict[FlowKey, Flow]:
        return self.table.flows

    @property
    def events(self) -> list[FabricEvent]:
        """Events since the caller last drained them (by assigning a new list)."""
        return self.table.events

    @events.setter
    def events(self, events: list[FabricEvent]) -> None:
        self.table.events = events

    @property
    def stats(self) -> dict[str, int]:
        return self.table.stats

    # --- flows in and out -------------------------------------------------------------------
    def new_flow(self, key: FlowKey, src_leaf: int, dst_leaf: int, topo: TeTopology,
                 loads: Mapping[Resource, float], now: float, cls: str = "best-effort",
                 priority: bool = False) -> Flow | None:
        """Track a flow first seen at its ingress leaf and place it
        (:meth:`FirstPlacement.place`); None when it is already tracked, has no path
        between leaves, or the table is full."""
        return self.placer.place(key, src_leaf, dst_leaf, topo, loads, now, cls, priority)

    def _fresh_load(self, now: float
                    ) -> tuple[dict[Resource, float], dict[Resource, float]]:
        """The load of placements too recent to show in the counters (for tests)."""
        return self.placer.fresh_load(now)

    def pin(self, key: FlowKey, src_leaf: int, dst_leaf: int, spine: int,
            topo: TeTopology, now: float) -> Flow:
        """An operator's placement (``ValueError`` when the spine offers no path)."""
        return self.operator_pins.pin(key, src_leaf, dst_leaf, spine, topo, now)

    def unpin(self, key: FlowKey) -> Flow:
        return self.operator_pins.unpin(key)

    def covered_by_pin(self, key: FlowKey) -> bool:
        return self.operator_pins.covers(key)

    def forget(self, keys: list[FlowKey]) -> list[Flow]:
        """Stop tracking flows that something else now holds (operator pins are kept)."""
        return self.table.forget(keys)

    def adopt(self, flow: Flow) -> None:
        """A flow recovered from a switch's entries after a controller restart."""
        self.operator_pins.adopt(flow)

    # --- counters -----------------------------------------------------------------------------
    def update_counters(self, leaf: int, counters: Mapping[FlowKey, int], now: float) -> None:
        """Byte counters of the pins read from one leaf."""
        self.table.update_counters(leaf, counters, now)

    def expire(self, now: float) -> list[Flow]:
        """Forget flows idle for longer than the timeout (operator pins stay)."""
        return self.table.expire(now)

    def is_large(self, flow: Flow, topo: TeTopology) -> bool:
        return self.table.is_large(flow, topo)

    # --- failure, congestion, rebalancing ---------------------------------------------------
    def revalidate(self, topo: TeTopology, loads: Mapping[Resource, float], now: float,
                   reason: str, leaves: Collection[int] | None = None) -> list[Move]:
        """Re-place at once every flow whose path is no longer in service (of the
        ``leaves`` given: the ones this instance writes in a cluster; None: all)."""
        return failover.revalidate(self.table, topo, loads, now, reason, leaves)

    def congestion(self, topo: TeTopology, loads: Mapping[Resource, float],
                   now: float) -> list[Move]:
        """Count readings above the threshold; move large flows off a link that stayed
        hot for ``congestion_intervals`` readings. Not onto the links of flows placed too
        recently to show in the counters."""
        return self.hot_links.check(topo, loads, now, self.placer.recent_load(now))

    def estimate_demands(self, flows: list[Flow], host_rate: float) -> dict[FlowKey, float]:
        return estimate_demands(flows, host_rate)

    def rebalance(self, topo: TeTopology, loads: Mapping[Resource, float],
                  now: float) -> list[Move]:
        """Re-place the large flows when that lowers the overload by the hysteresis (the
        three steps of a pass, on this thread)."""
        job = self.rebalance_job(topo, loads, now)
        return [] if job is None else self.finish_rebalance(search(job), topo, now)[0]

    def rebalance_job(self, topo: TeTopology, loads: Mapping[Resource, float],
                      now: float) -> RebalancePass | None:
        """The input of a rebalancing pass, copied so that the search (:func:`search`)
        can run on another thread; None when there is nothing to rebalance now. It
        carries who placed flows on each link too recently to show in the counters: a
        plan moving a flow onto another host's new flow is not taken (see
        :meth:`Rebalancer.finish`)."""
        return self.rebalancer.take(topo, loads, now, self.placer.recent_senders(now))

    def finish_rebalance(self, plan: RebalancePlan, topo: TeTopology, now: float,
                         limit: int | None = None
                         ) -> tuple[list[Move], RebalancePlan | None]:
        """Apply a searched placement if it is worth it and still holds, at most about
        ``limit`` moves now (:meth:`Rebalancer.finish`); returns the rest of the plan."""
        return self.rebalancer.finish(plan, topo, now, limit)

    # --- entries ------------------------------------------------------------------------------
    def placed_at(self, leaf: int) -> list[Flow]:
        """The flows with a path that enter the fabric at ``leaf`` (its pins hold them)."""
        return self.table.placed_at(leaf)

    # --- cluster mode: leaves another instance writes -----------------------------------------
    def mirror(self, leaf: int, held: Sequence[tuple[FlowKey, SpinePath, int, bool]],
               now: float) -> None:
        """The TE entries of a leaf another instance masters, as read from the switch
        (:func:`mirroring.mirror`)."""
        mirroring.mirror(self.table, leaf, held, now)

    def move_to(self, key: FlowKey, spine: int, topo: TeTopology, reason: str,
                now: float) -> Move | None:
        """Move a tracked flow to ``spine`` (another instance's decision); None when it
        cannot be (:func:`mirroring.move_to`)."""
        return mirroring.move_to(self.table, key, spine, topo, reason, now)
