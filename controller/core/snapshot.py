"""Immutable views of controller state, published for readers on other threads (gRPC).

The owning app replaces the published snapshot as a whole (one attribute assignment),
so a reader always sees one consistent instant and never a structure being mutated.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SwitchInfo:
    dpid: int
    role: str
    connected: bool
    connected_since: float
    ports: int
    drained: bool = False


@dataclass(frozen=True)
class LinkInfo:
    src_dpid: int
    src_port: int
    dst_dpid: int
    dst_port: int
    discovered_at: float
    drained: bool = False


@dataclass(frozen=True)
class HostInfo:
    mac: str
    ip: str
    dpid: int
    port: int
    first_seen: float
    recovered: bool
    state: str = "bound"  # bound | static | recovered | probing
    last_seen: float = 0.0


@dataclass(frozen=True)
class TopologySnapshot:
    switches: tuple[SwitchInfo, ...]
    links: tuple[LinkInfo, ...]
    hosts: tuple[HostInfo, ...]
    warnings: tuple[str, ...]
    generated_at: float

    @staticmethod
    def empty() -> TopologySnapshot:
        return TopologySnapshot((), (), (), (), 0.0)


@dataclass(frozen=True)
class FlowInfo:
    """One tracked flow as the API shows it."""

    src_ip: str
    dst_ip: str
    protocol: str
    src_port: int
    dst_port: int
    src_leaf: int
    dst_leaf: int
    spine: int  # 0: on the ECMP groups
    uplink_port: int
    rate_bps: float
    demand_bps: float
    traffic_class: str
    priority: bool
    large: bool
    pinned_by: str  # "te" | "operator"
    age: float
    moves: int


@dataclass(frozen=True)
class SwitchEntries:
    """What the controller wants one switch to hold, in ovs-ofctl syntax."""

    dpid: int
    complete: bool
    flows: tuple[str, ...]
    groups: tuple[str, ...]
    meters: tuple[str, ...]
    kept_groups: tuple[int, ...]
    pending: int
