"""The flows traffic engineering tracks: their keys (IPv4 5-tuples), their records
(where each goes, its smoothed rate), and the table that holds them with the record of
what was done to them (moves and their events, counters). Every decision of the other
modules reads and moves flows through :class:`FlowTable`.

A flow is *large* once its measured rate reaches ``large_flow_fraction`` of the link
rate; a flow's counters are smoothed (EWMA) and an idle flow is forgotten.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import NamedTuple

from controller.core import constants as C
from controller.core.events import FabricEvent
from controller.core.indexed_dict import IndexedDict
from controller.core.snapshot import FlowInfo
from controller.core.southbound.openflow import Match, make_match
from controller.core.te.settings import TeSettings
from controller.core.te.topology import SpinePath, TeTopology, path_text

TCP, UDP = 6, 17
PROTO_NAMES = {TCP: "tcp", UDP: "udp"}
PROTO_NUMBERS = {v: k for k, v in PROTO_NAMES.items()}


@lru_cache(maxsize=4096)
def _check_ipv4(ip: str) -> None:
    """ValueError unless ``ip`` is an IPv4 address (a key is made per new-flow copy, from
    a few hosts' addresses: each is checked once, not at every copy)."""
    ipaddress.IPv4Address(ip)


@dataclass(frozen=True, order=True)
class FlowKey:
    """A transport flow: IPv4 5-tuple. A port of 0 means any (operator pins only)."""

    src_ip: str
    dst_ip: str
    proto: int
    src_port: int = 0
    dst_port: int = 0

    def __post_init__(self) -> None:
        for ip in (self.src_ip, self.dst_ip):
            _check_ipv4(ip)  # ValueError with the address named
        if self.proto not in PROTO_NAMES:
            raise ValueError(f"protocol must be tcp or udp, not {self.proto}")
        for port in (self.src_port, self.dst_port):
            if not 0 <= port <= 0xFFFF:
                raise ValueError(f"port {port} is out of range 0-65535")
        # keys are hashed a great deal in a rebalancing pass (hash once), and thousands
        # sorted for the API (by this tuple: the dataclass's comparison is many times
        # slower, in the same order)
        fields = (self.src_ip, self.dst_ip, self.proto, self.src_port, self.dst_port)
        object.__setattr__(self, "as_tuple", fields)
        object.__setattr__(self, "_hash", hash(fields))

    def __hash__(self) -> int:
        return self._hash  # type: ignore[attr-defined]

    @property
    def exact(self) -> bool:
        return bool(self.src_port and self.dst_port)

    def match(self) -> Match:
        cached = self.__dict__.get("_match")  # (built once: every sync of a leaf asks)
        if cached is not None:
            return cached
        l4 = PROTO_NAMES[self.proto]
        m = make_match(
            eth_type=C.ETH_TYPE_IP, ipv4_src=self.src_ip, ipv4_dst=self.dst_ip,
            ip_proto=self.proto,
            **{f"{l4}_src": self.src_port or None, f"{l4}_dst": self.dst_port or None},
        )
        object.__setattr__(self, "_match", m)
        return m

    @staticmethod
    def from_match(match: Match) -> FlowKey | None:
        m = dict(match)
        proto = m.get("ip_proto")
        if proto not in PROTO_NAMES or "ipv4_src" not in m or "ipv4_dst" not in m:
            return None
        l4 = PROTO_NAMES[proto]
        try:
            return FlowKey(str(m["ipv4_src"]), str(m["ipv4_dst"]), proto,
                           int(m.get(f"{l4}_src", 0)), int(m.get(f"{l4}_dst", 0)))
        except (TypeError, ValueError):
            return None

    def covers(self, other: FlowKey) -> bool:
        """True when this (possibly wildcard) key matches the exact flow ``other``."""
        return (self.src_ip, self.dst_ip, self.proto) == (
            other.src_ip, other.dst_ip, other.proto
        ) and self.src_port in (0, other.src_port) and self.dst_port in (0, other.dst_port)

    def reverse(self) -> FlowKey:
        """The other direction of the same connection."""
        cached = self.__dict__.get("_reverse")
        if cached is None:
            cached = FlowKey(self.dst_ip, self.src_ip, self.proto, self.dst_port,
                             self.src_port)
            object.__setattr__(self, "_reverse", cached)
        return cached

    def __str__(self) -> str:
        def end(ip: str, port: int) -> str:
            return f"{ip}:{port}" if port else f"{ip}:*"
        return (f"{PROTO_NAMES[self.proto]} {end(self.src_ip, self.src_port)} -> "
                f"{end(self.dst_ip, self.dst_port)}")

@dataclass
class Flow:
    key: FlowKey
    src_leaf: int
    dst_leaf: int
    cls: str = "best-effort"
    priority: bool = False
    path: SpinePath | None = None
    operator: bool = False  # pinned through the API: TE never moves it
    first_seen: float = 0.0
    last_active: float = 0.0
    moved_at: float = -1e18
    bytes: int = 0
    bytes_at: float = 0.0
    rate_bps: float = 0.0  # smoothed
    peak_bps: float = 0.0  # the highest smoothed rate yet
    last_bps: float | None = None  # the latest reading alone: 0 once the flow stopped
    samples: int = 0
    demand_bps: float = 0.0
    moves: int = 0


@dataclass(frozen=True)
class Move:
    key: FlowKey
    old: SpinePath | None
    new: SpinePath
    reason: str

    @property
    def switches(self) -> set[int]:
        """The switches whose pins it changes (the ingress leaf; between pods, the
        ingress spines it leaves and takes)."""
        return {*self.new.switches, *(self.old.switches if self.old else ())}


def pinned_at(flow: Flow) -> tuple[int, ...]:
    """The switches that hold a flow's pins (its ingress leaf without a path)."""
    return flow.path.switches if flow.path is not None else (flow.src_leaf,)


class FlowSnapshot(NamedTuple):
    """What a rebalancing search reads of a flow (cheap to take: a tuple)."""

    key: FlowKey
    src_leaf: int
    dst_leaf: int
    priority: bool
    rate_bps: float
    path: SpinePath | None


def _src_leaf(flow: Flow) -> int:
    return flow.src_leaf


class FlowTable:
    """The tracked flows, and the record of what was done to them: the moves (their
    number tells a rebalancing pass searched before a move that it is stale), the
    events for the caller, the counters."""

    def __init__(self, settings: TeSettings) -> None:
        self.settings = settings
        # counters are read this many times less often than te.poll_interval (a large
        # fabric within te.poll_budget): a placement counts as load as much longer
        self.poll_stretch = 1.0
        # (grouped by ingress leaf, which a flow keeps: a leaf's pins are asked for at
        # every sync of it, and a pass over every flow each time capped new-flow setup)
        self.flows: IndexedDict[FlowKey, Flow] = IndexedDict(_src_leaf)
        self.events: list[FabricEvent] = []  # drained by the caller
        self.stats: dict[str, int] = {}
        self.moves = 0  # flows moved so far (by any decision)

    def count(self, name: str, n: int = 1) -> None:
        self.stats[name] = self.stats.get(name, 0) + n

    def move(self, flow: Flow, new: SpinePath, reason: str, now: float,
             announce: bool = True) -> Move:
        """Put ``flow`` on ``new`` (and say so, unless ``announce`` is false)."""
        old = flow.path
        move = Move(flow.key, old, new, reason)
        flow.path, flow.moved_at = new, now
        flow.moves += 1
        self.moves += 1
        self.count("reroutes")
        if announce:
            self.events.append(FabricEvent(
                "reroute",
                f"{flow.key} moved from {path_text(old, flow.dst_leaf)} to "
                f"{path_text(new, flow.dst_leaf)}: {reason}",
                (("flow", str(flow.key)), ("from", path_text(old, flow.dst_leaf)),
                 ("to", path_text(new, flow.dst_leaf)), ("reason", reason)),
            ))
        return move

    def placed_at(self, leaf: int) -> list[Flow]:
        """The flows with a path that enter the fabric at ``leaf`` (its pins hold them)."""
        return [f for f in self.flows.group(leaf).values() if f.path is not None]

    def forget(self, keys: list[FlowKey]) -> list[Flow]:
        """Stop tracking flows that something else now holds (a job's pair entries);
        their pins go. Operator pins are kept."""
        gone = []
        for key in keys:
            f = self.flows.get(key)
            if f is not None and not f.operator:
                gone.append(self.flows.pop(key))
        return gone

    # --- counters -----------------------------------------------------------------------------
    def update_counters(self, leaf: int, counters: Mapping[FlowKey, int], now: float) -> None:
        """Byte counters of the pins read from one leaf."""
        a = self.settings.smoothing
        for key, count in counters.items():
            flow = self.flows.get(key)
            if flow is None or flow.src_leaf != leaf:
                continue
            if count < flow.bytes or now <= flow.bytes_at:
                flow.bytes, flow.bytes_at = count, now  # the entry was re-made
                continue
            if count > flow.bytes:
                flow.last_active = now
            sample = (count - flow.bytes) * 8 / (now - flow.bytes_at)
            flow.rate_bps = sample if flow.samples == 0 else a * sample + (1 - a) * flow.rate_bps
            flow.peak_bps = max(flow.peak_bps, flow.rate_bps)
            flow.last_bps = sample
            flow.samples += 1
            flow.bytes, flow.bytes_at = count, now

    def expire(self, now: float) -> list[Flow]:
        """Forget flows idle for longer than the timeout (operator pins stay)."""
        limit = self.settings.flow_idle_timeout
        gone = [f for f in self.flows.values()
                if not f.operator and now - f.last_active > limit]
        for f in gone:
            del self.flows[f.key]
        if gone:
            self.count("flows_expired", len(gone))
        return gone

    def is_large(self, flow: Flow, topo: TeTopology) -> bool:
        return flow.rate_bps >= self.settings.large_flow_fraction * topo.link_rate > 0


def flow_info(f: Flow, large: bool, now: float) -> FlowInfo:
    """A tracked flow as the API shows it. (Tens of thousands are published at once:
    made without the frozen dataclass's field-by-field ``__init__``, five times the
    cost; ``tests/unit/test_core_te.py`` checks it equals one made by it.)"""
    k, path = f.key, f.path
    info = _new_info(FlowInfo)
    info.__dict__.update(
        src_ip=k.src_ip, dst_ip=k.dst_ip, protocol=PROTO_NAMES[k.proto],
        src_port=k.src_port, dst_port=k.dst_port, src_leaf=f.src_leaf,
        dst_leaf=f.dst_leaf, spine=path.spine if path else 0,
        uplink_port=path.port if path else 0, rate_bps=f.rate_bps, demand_bps=f.demand_bps,
        traffic_class=f.cls, priority=f.priority, large=large,
        pinned_by="operator" if f.operator else "te", age_seconds=now - f.first_seen,
        moves=f.moves, super_spine=path.super_spine if path else 0,
        spine_uplink_port=path.spine_port if path else 0)
    return info


_new_info = object.__new__
