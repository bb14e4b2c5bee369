"""Fabric events: what happened, for operators (``WatchEvents``, ``fabricctl events``).

The core appends events as it decides; the owning app stamps them with a sequence
number and a time and publishes them to watchers.
"""

from __future__ import annotations

from dataclasses import dataclass

# The kinds a watcher can filter on.
KINDS = (
    "switch_up", "switch_down", "link_up", "link_down", "host_learned",
    "congestion", "congestion_cleared", "reroute", "drain", "undrain", "pin", "unpin",
    "qos_policy", "host_conflict", "host_moved", "host_refused", "host_aged_out",
    "meter_drops", "handler_error", "watchdog", "link_dampened", "link_undampened",
    "qos_unavailable", "qos_available", "rebalance", "job_registered", "job_deleted",
    "job_reroute", "switch_refused", "switch_takeover",
)


@dataclass(frozen=True)
class FabricEvent:
    kind: str
    message: str
    fields: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class StampedEvent:
    seq: int
    at: float
    event: FabricEvent
