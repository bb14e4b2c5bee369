"""Immutable views of controller state, published for readers on other threads (gRPC).

The owning app replaces the published snapshot as a whole (one attribute assignment),
so a reader always sees one consistent instant and never a structure being mutated.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from controller.core.fabric.qos import QosPolicy


@dataclass(frozen=True)
class SwitchInfo:
    dpid: int
    role: str
    connected: bool
    connected_since: float
    ports: int
    drained: bool = False
    plane: int = 0  # the connected fabric it is in (0: not judged yet)
    pod: int = 0  # three tiers: its pod (leaves and spines; 0 otherwise)
    spine_plane: int = 0  # three tiers: its spine plane (spines and super-spines)


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
class NicInfo:
    """A server's NIC on one rail, where it is (``servers``: the rail check)."""

    server: str
    rail: int
    nic: str  # as the configuration names it: an IPv4 address or a MAC
    mac: str  # where seen ("" and 0: not seen)
    ip: str
    dpid: int
    port: int
    state: str  # ok | off-rail (on a leaf of another rail) | unseen


@dataclass(frozen=True)
class TopologySnapshot:
    switches: tuple[SwitchInfo, ...]
    links: tuple[LinkInfo, ...]
    hosts: tuple[HostInfo, ...]
    warnings: tuple[str, ...]
    generated_at: float
    server_nics: tuple[NicInfo, ...] = ()

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
    age_seconds: float
    moves: int
    super_spine: int = 0  # between pods of a three-tier fabric (0: none)
    spine_uplink_port: int = 0


@dataclass(frozen=True)
class JobPairInfo:
    """One directed host pair of a job: where it goes and what it carried."""

    src_rank: int
    dst_rank: int
    src_ip: str
    dst_ip: str
    src_leaf: int
    dst_leaf: int
    spine: int  # 0: not placed (see state)
    uplink_port: int
    step: int  # the step of the schedule it belongs to (0-based)
    state: str  # "placed" | "local" (one leaf) | "shared:<job>" | "no path" | "pending"
    bytes: int
    rate_bps: float
    super_spine: int = 0  # between pods of a three-tier fabric (0: none)


@dataclass(frozen=True)
class JobInfo:
    """A registered job as the API shows it."""

    job_id: str
    members: tuple[str, ...]
    pattern: str
    transport: str
    traffic_class: str
    priority: int
    registered_at: float
    state: str  # "placed" | "pending: ..." | "partly placed: ..."
    pairs: tuple[JobPairInfo, ...]
    worst_link: str  # the link carrying most of its concurrent pairs ("" if none)
    worst_link_pairs: int
    worst_link_utilization: float  # measured, of the link rate
    rank_pairs: tuple[tuple[int, int], ...] = ()  # (for pattern "pairs")


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


@dataclass(frozen=True)
class LinkStat:
    """One link direction's measured load (the source port's counters, smoothed)."""

    src_dpid: int
    src_port: int
    dst_dpid: int
    dst_port: int
    rate_bps: float
    utilization: float
    drops_per_second: float
    errors_per_second: float


@dataclass(frozen=True)
class QueueStat:
    dpid: int
    port: int
    port_name: str
    queue: int
    tx_bytes: int
    tx_packets: int
    tx_errors: int


@dataclass(frozen=True)
class MeterStat:
    """Packets one of our meters dropped on their way to the controller."""

    dpid: int
    meter_id: int
    kind: str  # lldp | shared | host | te_copy
    port: int  # 0: the whole switch
    dropped: int


@dataclass(frozen=True)
class Published:
    """Everything readers on other threads see of the controller, as one value: the app
    replaces it whole (``dataclasses.replace`` then one assignment), a reader takes it
    once, so a timestamp is always read with the data it belongs to."""

    topology: TopologySnapshot
    links: tuple[LinkStat, ...] = ()
    links_at: float = 0.0
    queues: tuple[QueueStat, ...] = ()
    queues_at: float = 0.0
    meters: tuple[MeterStat, ...] = ()
    flows: tuple[FlowInfo, ...] = ()
    flows_at: float = 0.0
    counters: Mapping[str, int] = field(default_factory=dict)
    jobs: tuple[JobInfo, ...] = ()
    jobs_at: float = 0.0
    qos_policy: QosPolicy | None = None  # the policy in force (None with --no-qos)
    masters: frozenset[int] | None = None  # cluster mode: the switches this one masters
