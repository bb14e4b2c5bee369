"""The settings of traffic engineering (``te:`` in the fabricd config), one frozen value
handed to every part of it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TeSettings:
    large_flow_fraction: float = 0.10  # of the link rate
    congestion_threshold: float = 0.80  # utilization
    congestion_intervals: int = 2  # readings in a row above the threshold
    hysteresis: float = 0.05  # of the link rate: the least improvement worth a move
    min_move_interval: float = 5.0  # seconds a moved flow stays put (failures excepted)
    flow_idle_timeout: float = 10.0  # seconds without a byte before a flow is forgotten
    fresh_window: float = 2.0  # seconds a new placement counts as nominal load
    # port counters read per second at most: a larger fabric's statistics are read less
    # often (the fabric app stretches its polls; FlowTable.poll_stretch says how much)
    poll_budget: float = 10_000.0
    active_window: float = 3.0  # seconds since its last byte a priority flow counts as busy
    max_flows: int = 100_000  # flows tracked at once; beyond that, new flows stay on ECMP
    smoothing: float = 0.5  # EWMA weight of the newest rate sample
    rebalance: bool = True  # periodic rebalancing (congestion and failures act regardless)
    rebalance_floor: float = 0.5  # no overload: move only if the worst link is this busy
    reroute_events: int = 16  # a pass reports this many moves one by one, the rest in sum
    rebalance_cooldown: float = 5.0  # seconds after a pass that moved flows before the next
