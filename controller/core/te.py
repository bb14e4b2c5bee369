"""Traffic engineering: which spine each tracked flow between two leaves crosses, and
when it moves. Pure: the caller passes the topology, the measured link loads and the
time; the answers are placements, moves and events.

Vocabulary:

* a *path* leaves the ingress leaf by one uplink port to one spine; the spine then
  delivers to the destination leaf (over its own ECMP group when it has several links);
* a *resource* is what a path loads: the uplink ``("up", leaf, port)`` and the spine's
  bundle towards the destination leaf ``("down", spine, leaf)``; each has a capacity
  (bit/s) and a measured load;
* a flow is *large* once its measured rate reaches ``large_flow_fraction`` of the link
  rate. Only large flows are rebalanced; every flow is placed once, when it is first seen.

How flows are placed and moved (see docs/traffic-engineering.md for why):

1. First entry: a new flow is placed on the path with the most headroom, counting the
   measured load plus a nominal demand for every flow placed there since the last
   measurement (so that flows starting together spread out).
2. Rebalancing: every interval, the large flows are re-placed from their estimated
   demands (priority classes first, then the largest); the result is taken only if it
   lowers the overload (or the worst link) by at least the hysteresis margin, and a
   flow that moved stays put for ``min_move_interval`` unless its path fails.
3. Congestion: a link above ``congestion_threshold`` for ``congestion_intervals``
   readings in a row has large flows moved off it to paths with headroom.
4. Failure and drain: a flow whose path is no longer in service is re-placed at once.
"""

from __future__ import annotations

import ipaddress
import itertools
import zlib
from collections import deque
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property, partial
from itertools import repeat
from operator import attrgetter, is_
from typing import NamedTuple

import numpy as np

from controller.core import constants as C
from controller.core.events import FabricEvent
from controller.core.openflow import FlowRule, Match, make_match
from controller.core.placement import place

TCP, UDP = 6, 17
PROTO_NAMES = {TCP: "tcp", UDP: "udp"}
PROTO_NUMBERS = {v: k for k, v in PROTO_NAMES.items()}

Resource = tuple[str, int, int]  # ("up", leaf, port) | ("down", spine, leaf)


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
            ipaddress.IPv4Address(ip)  # ValueError with the address named
        if self.proto not in PROTO_NAMES:
            raise ValueError(f"protocol must be tcp or udp, not {self.proto}")
        for port in (self.src_port, self.dst_port):
            if not 0 <= port <= 0xFFFF:
                raise ValueError(f"port {port} is out of range 0-65535")
        # keys are hashed a great deal in a rebalancing pass: hash once
        object.__setattr__(self, "_hash", hash((self.src_ip, self.dst_ip, self.proto,
                                                self.src_port, self.dst_port)))

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


class Path(NamedTuple):
    """Where a flow leaves its ingress leaf (a tuple: hashed and compared in C, as the
    placement search does a great deal)."""

    leaf: int  # ingress leaf
    port: int  # its uplink port
    spine: int

    def __str__(self) -> str:
        return f"{self.leaf}:{self.port} -> spine {self.spine}"


def up(leaf: int, port: int) -> Resource:
    return ("up", leaf, port)


def down(spine: int, leaf: int) -> Resource:
    return ("down", spine, leaf)


def resource_text(r: Resource) -> str:
    kind, a, b = r
    return f"{a}:{b} (uplink)" if kind == "up" else f"spine {a} -> leaf {b}"


@dataclass(frozen=True)
class TeTopology:
    """The paths in service and what each resource can carry."""

    uplinks: Mapping[int, tuple[tuple[int, int], ...]]  # leaf -> ((port, spine), ...)
    reach: Mapping[int, frozenset[int]]  # spine -> leaves it delivers to
    capacity: Mapping[Resource, float]  # bit/s
    host_rate: float = 0.0  # a host NIC's rate, bit/s (0: unknown)

    def paths(self, src_leaf: int, dst_leaf: int) -> list[Path]:
        key = (src_leaf, dst_leaf)
        found = self._paths.get(key)
        if found is None:
            found = self._paths[key] = [] if src_leaf == dst_leaf else [
                Path(src_leaf, port, spine) for port, spine in self.uplinks.get(src_leaf, ())
                if dst_leaf in self.reach.get(spine, frozenset())]
        return found

    def path_via(self, src_leaf: int, dst_leaf: int, spine: int) -> Path | None:
        """The path in service between two leaves through ``spine`` (None: none)."""
        return next((p for p in self.paths(src_leaf, dst_leaf) if p.spine == spine), None)

    @cached_property
    def _paths(self) -> dict[tuple[int, int], list[Path]]:
        return {}

    @cached_property
    def order(self) -> tuple[Resource, ...]:
        """Every resource, in the order of their numbers (:attr:`index`)."""
        return tuple(sorted(self.capacity))

    @cached_property
    def index(self) -> dict[Resource, int]:
        """Every resource numbered, for the array-based placement search."""
        return {r: i for i, r in enumerate(self.order)}

    @cached_property
    def caps(self) -> list[float]:
        return [self.cap(r) for r in self.order]

    @cached_property
    def uplink_number(self) -> dict[Path, int]:
        """The resource number of each path's uplink, for the paths in service."""
        idx = self.index
        return {Path(leaf, port, spine): idx[up(leaf, port)]
                for leaf, ups in self.uplinks.items() for port, spine in ups
                if up(leaf, port) in idx}

    def load_list(self, loads: Mapping[Resource, float]) -> list[float]:
        """``loads`` by resource number (0 where not given)."""
        return list(map(loads.get, self.order, repeat(0.0)))

    def options(self, src_leaf: int, dst_leaf: int) -> list[tuple[Path, int, int]]:
        """The paths between two leaves with their resources' numbers (cached)."""
        key = (src_leaf, dst_leaf)
        got = self._options.get(key)
        if got is None:
            idx = self.index
            got = self._options[key] = [(p, idx[up(p.leaf, p.port)],
                                         idx[down(p.spine, dst_leaf)])
                                        for p in self.paths(src_leaf, dst_leaf)]
        return got

    @cached_property
    def _options(self) -> dict:
        return {}

    @cached_property
    def width(self) -> int:
        """The most paths two leaves can have (the width of :meth:`option_table`)."""
        return max((len(u) for u in self.uplinks.values()), default=0)

    def option_table(self, pairs: list[tuple[int, int]]) -> tuple[np.ndarray, np.ndarray]:
        """The options of each (src leaf, dst leaf) of ``pairs`` as one row of resource
        numbers: :attr:`width` uplinks, then as many spine links, padded with
        ``len(caps)`` (a resource the placement search never picks), and how many each
        pair has. Rows are kept per topology; a table with new rows is built whole and
        published in one assignment, so threads may share it."""
        rows, table, counts = self._table[0]
        new = [p for p in dict.fromkeys(pairs) if p not in rows]
        if new:
            pad, width = len(self.caps), self.width
            add, add_n = [], []
            for p in new:
                opts = self.options(*p)
                filler = [pad] * (width - len(opts))
                add.append([o[1] for o in opts] + filler + [o[2] for o in opts] + filler)
                add_n.append(len(opts))
            rows = dict(rows)
            rows.update((p, k) for k, p in enumerate(new, start=len(rows)))
            added = np.array(add, dtype=np.int32).reshape((len(new), 2 * width))
            table = np.concatenate([table, added])
            counts = np.concatenate([counts, np.array(add_n, dtype=np.int32)])
            self._table[0] = (rows, table, counts)
        ids = np.fromiter(map(rows.__getitem__, pairs), np.intp, len(pairs))
        return table[ids], counts[ids]

    @cached_property
    def _table(self) -> list:
        return [({}, np.zeros((0, 2 * self.width), dtype=np.int32),
                 np.zeros(0, dtype=np.int32))]

    def cap(self, r: Resource) -> float:
        return self.capacity.get(r, 0.0) or 1.0

    @cached_property
    def link_rate(self) -> float:
        ups = [c for r, c in self.capacity.items() if r[0] == "up" and c > 0]
        return min(ups) if ups else 0.0


def resources(path: Path, dst_leaf: int) -> tuple[Resource, Resource]:
    return up(path.leaf, path.port), down(path.spine, dst_leaf)


@dataclass(frozen=True)
class TeSettings:
    large_flow_fraction: float = 0.10  # of the link rate
    congestion_threshold: float = 0.80  # utilization
    congestion_intervals: int = 2  # readings in a row above the threshold
    hysteresis: float = 0.05  # of the link rate: the least improvement worth a move
    min_move_interval: float = 5.0  # seconds a moved flow stays put (failures excepted)
    flow_idle_timeout: float = 10.0  # seconds without a byte before a flow is forgotten
    fresh_window: float = 2.0  # seconds a new placement counts as nominal load
    active_window: float = 3.0  # seconds since its last byte a priority flow counts as busy
    max_flows: int = 100_000  # flows tracked at once; beyond that, new flows stay on ECMP
    smoothing: float = 0.5  # EWMA weight of the newest rate sample
    rebalance: bool = True  # periodic rebalancing (congestion and failures act regardless)
    rebalance_floor: float = 0.5  # no overload: move only if the worst link is this busy
    reroute_events: int = 16  # a pass reports this many moves one by one, the rest in sum
    rebalance_cooldown: float = 5.0  # seconds after a pass that moved flows before the next


@dataclass
class Flow:
    key: FlowKey
    src_leaf: int
    dst_leaf: int
    cls: str = "best-effort"
    priority: bool = False
    path: Path | None = None
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
    old: Path | None
    new: Path
    reason: str


class FlowSnapshot(NamedTuple):
    """What a rebalancing search reads of a flow (cheap to take: a tuple)."""

    key: FlowKey
    src_leaf: int
    dst_leaf: int
    priority: bool
    rate_bps: float
    path: Path | None


def select_demand_flows(candidates: Sequence[Flow], s: TeSettings, link_rate: float,
                        now: float) -> tuple[list[tuple], np.ndarray]:
    """The flows a rebalancing pass gives a demand, and the one rule for it (the
    congestion pass asks it too): each flow read once into a row (the live flow may
    change meanwhile), and the positions of those that are placed and large and not
    paused (a flow that carried almost nothing in its latest reading has ended or
    paused: its smoothed rate still decays, but it must not be given a demand), or of a
    priority class, large once and active within ``active_window`` of its latest
    reading (a collective's connection pauses between its steps: its hosts' other flows
    must not take its place meanwhile)."""
    if not candidates:
        return [], np.zeros(0, dtype=np.intp)
    large_rate = s.large_flow_fraction * link_rate
    rows = list(map(_SNAPSHOT_FIELDS, candidates))  # (in C)
    (_, _, _, prio, rate, path, last, _, _, peak, active, read_at) = zip(*rows, strict=True)
    rate_a = np.array(rate, dtype=float)
    last_a = np.array(last, dtype=float)  # (None: nan, never below anything)
    no_path = np.fromiter(map(is_, path, repeat(None)), bool, len(rows))
    busy = np.array(prio, dtype=bool) & (np.array(peak, dtype=float) >= large_rate) & (
        np.minimum(now, np.array(read_at, dtype=float))
        - np.array(active, dtype=float) <= s.active_window)
    keep = ~no_path & (((rate_a >= large_rate) & ~(last_a < 0.5 * large_rate)) | busy)
    return rows, np.nonzero(keep)[0]


@dataclass(frozen=True)
class RebalanceJob:
    """A rebalancing pass's input, taken in well under a millisecond on the controller's
    thread: the tracked flows as they are (a tuple of references), the measured loads,
    the topology. The search (:func:`search`, on a worker) first copies what it needs of
    the flows into tuples (:attr:`large`); a flow the controller moves meanwhile is left
    alone when the result comes back (:meth:`TrafficEngineer.finish_rebalance`)."""

    candidates: tuple[Flow, ...]
    settings: TeSettings
    loads: Mapping[Resource, float]
    topo: TeTopology
    started: float
    moves_before: int = 0  # how many moves the engineer had made when this was taken

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
        large = tuple(_new_snapshot(rows[i][:6]) for i in at)
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
    def current(self) -> dict[FlowKey, Path | None]:
        return {f.key: f.path for f in self.flows}


_SNAPSHOT_FIELDS = attrgetter("key", "src_leaf", "dst_leaf", "priority", "rate_bps", "path",
                              "last_bps", "operator", "moved_at", "peak_bps", "last_active",
                              "bytes_at")
_new_snapshot = partial(tuple.__new__, FlowSnapshot)  # (from a row in that order)


@dataclass(frozen=True)
class RebalancePlan:
    """A searched pass: the placement, and the moves it implies grouped by ingress leaf
    (``changes``), applied from ``start`` on in slices that end at a leaf boundary."""

    job: RebalanceJob
    placement: Mapping[FlowKey, Path]  # the new path of each flow that moves
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


def estimate_demands(flows: Sequence[Flow | FlowSnapshot],
                     host_rate: float) -> dict[FlowKey, float]:
    """Natural demand of each large flow, by key (:func:`demand_list`)."""
    return dict(zip((f.key for f in flows), demand_list(flows, host_rate), strict=True))


def demand_list(flows: Sequence[Flow | FlowSnapshot], host_rate: float) -> list[float]:
    """Natural demand of each large flow, in their order (Hedera's estimation): TCP
    flows grow to a fair share of their sender's and receiver's NIC (and no less than
    their measured rate, except in a priority class); UDP flows keep their rate."""
    demand = [f.rate_bps for f in flows]
    if host_rate <= 0:
        return demand
    keys = [f.key for f in flows]
    fixed_out: dict[str, float] = {}
    fixed_in: dict[str, float] = {}
    elastic: list[int] = []
    for i, k in enumerate(keys):
        if k.proto == TCP:
            elastic.append(i)
            continue
        d = demand[i] = min(demand[i], host_rate)
        fixed_out[k.src_ip] = fixed_out.get(k.src_ip, 0.0) + d
        fixed_in[k.dst_ip] = fixed_in.get(k.dst_ip, 0.0) + d
    if not elastic:
        return demand
    n = len(elastic)
    # arrays: the senders' room after the fixed flows, each flow's sender and receiver
    src_ips = [keys[i].src_ip for i in elastic]
    dst_ips = [keys[i].dst_ip for i in elastic]
    srcs = dict(zip(dict.fromkeys(src_ips), itertools.count()))
    dsts = dict(zip(dict.fromkeys(dst_ips), itertools.count()))
    src_of = np.fromiter(map(srcs.__getitem__, src_ips), np.intp, n)
    dst_of = np.fromiter(map(dsts.__getitem__, dst_ips), np.intp, n)
    into_order = np.argsort(dst_of, kind="stable")  # (flows by receiver, in their order)
    bounds = np.searchsorted(dst_of[into_order], np.arange(len(dsts) + 1)).tolist()
    src_room = np.array([host_rate - fixed_out.get(ip, 0.0) for ip in srcs])
    dst_room = np.maximum(0.0, np.array([host_rate - fixed_in.get(ip, 0.0) for ip in dsts]))
    est = np.zeros(n)
    limited = np.zeros(n, dtype=bool)  # receiver-limited: converged
    tol = host_rate * 1e-6
    n_src = len(srcs)
    for _ in range(20):
        changed = False
        # each sender's room, less its receiver-limited flows, shared by the others
        free = ~limited
        senders = np.bincount(src_of[free], minlength=n_src)
        conv = np.bincount(src_of[limited], weights=est[limited], minlength=n_src)
        share = (np.maximum(0.0, src_room - conv) / np.maximum(senders, 1))[src_of]
        update = free & (np.abs(est - share) > tol)
        if update.any():
            est[update] = share[update]
            changed = True
        # a receiver asked for more than its room: an equal share among the flows into
        # it; flows below the share keep theirs
        into = np.bincount(dst_of, weights=est, minlength=len(dsts))
        over = np.nonzero(into > dst_room + tol)[0].tolist()
        if over:  # (element by element: lists are faster than arrays)
            val, lim, rooms = est.tolist(), limited.tolist(), dst_room.tolist()
            for dst in over:
                idx = into_order[bounds[dst]:bounds[dst + 1]].tolist()
                m, left = len(idx), rooms[dst]
                for k, i in enumerate(sorted(idx, key=val.__getitem__)):
                    fair = left / (m - k)
                    if val[i] <= fair and not lim[i]:
                        left -= val[i]
                        continue
                    if not lim[i] or abs(val[i] - fair) > tol:
                        val[i], lim[i], changed = fair, True, True
                    left -= fair
            est, limited = np.array(val), np.array(lim, dtype=bool)
        if not changed:
            break
    # (a TCP flow of a priority class is asked for its fair share alone: a collective's
    # connections run in lockstep, so between its steps a reading shows more than that
    # (a neighbour paused) or less (itself paused); by its readings it would move at
    # every pass, as the steps go)
    rates = np.array([0.0 if flows[i].priority else demand[i] for i in elastic])
    for i, d in zip(elastic, np.maximum(est, rates).tolist(), strict=True):
        demand[i] = d
    return demand


def search(job: RebalanceJob) -> RebalancePlan:
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
    changes = sorted((f for f in movable if f.key in placement),
                     key=lambda f: (f.src_leaf, f.key))
    moved = sum(w for f, w in zip(movable, wanted, strict=True) if f.key in placement)
    return RebalancePlan(job, placement, before, after, tuple(demands), tuple(changes),
                         moved)


def own_load(flow: Flow | FlowSnapshot, demand: float) -> float:
    """What a flow is taken to put on the measured load of its links: its rate, and a
    priority-class flow at least its demand. The port counters and the flow's own are
    read at other moments; for a collective's flow, which comes in bursts, the port
    often shows more of it than its own counter did, and that excess, left in the links'
    other load with the flow's demand added on top, is an overload nowhere but in the
    model (passes then moved whole rings for it)."""
    return max(flow.rate_bps, demand) if flow.priority else flow.rate_bps


def _tie(key: FlowKey, p: Path) -> int:
    """Spreads ties deterministically by the flow's own hash."""
    return zlib.crc32(f"{key}{p.spine}{p.port}".encode())


class PriorityUse:
    """The active priority-class flows on each link, as the hosts that send and that
    receive over it: both directions of a connection (a collective library sends both
    ways over one; OpenMPI's all-to-all sends r+k -> r over the connection rank r opened
    to r+k, n-2k steps later).

    A host sends and receives no faster than its NIC, so a link that carries the
    priority flows of s senders to d receivers is asked for at most min(s, d) host
    rates, however many flows they are and whenever each runs: the bound a collective's
    flows are placed on, with this order of concerns:

    1. the uplink's bound (with its measured load): hosts of a leaf leave by different
       spines where the fabric has enough;
    2. a host's flows stay on the spine its other priority flows leave by: its own NIC
       limits them together (when it is no faster than the uplink), and the other
       hosts' flows are kept off its links whatever the order of the collective's
       steps (the rail alignment of AI fabrics, learnt from the traffic);
    3. the worse of the uplink's and the downlink's bound, then the fewest senders on
       the uplink (two hosts sending to one receiver cost no more together than apart,
       but their next flows would find each other on the spine they share: a job's
       first flows, e.g. every daemon to the launcher, would set the rails), then the
       fewest new receivers on links, then the flow's hash."""

    def __init__(self, host_rate: float) -> None:
        self.host_rate = host_rate
        self.senders: dict[Resource, set[str]] = {}
        self.receivers: dict[Resource, set[str]] = {}

    def add(self, flow: Flow) -> None:
        assert flow.path is not None
        for r in resources(flow.path, flow.dst_leaf):
            self.senders.setdefault(r, set()).add(flow.key.src_ip)
            self.receivers.setdefault(r, set()).add(flow.key.dst_ip)

    def score(self, p: Path, dst_leaf: int, key: FlowKey, topo: TeTopology,
              loads: Mapping[Resource, float], fresh: Mapping[Resource, float]
              ) -> tuple[float, int, float, int, int, int]:
        """The order of the paths for a new priority flow (smaller is better)."""
        util = []
        away = new_receivers = uplink_senders = 0
        empty: set[str] = set()
        for r in resources(p, dst_leaf):  # (the uplink, then the downlink)
            senders = self.senders.get(r, empty)
            receivers = self.receivers.get(r, empty)
            new_s, new_r = key.src_ip not in senders, key.dst_ip not in receivers
            new_receivers += new_r
            bound = min(len(senders) + new_s, len(receivers) + new_r) * self.host_rate
            # (a reading over the link's rate is noise of the counters' timing: left in,
            # a host's own stream would push its next flow off its spine)
            load = max(min(loads.get(r, 0.0), topo.cap(r)), bound) + fresh.get(r, 0.0)
            if not util:
                uplink_senders = len(senders) + new_s
                if self.host_rate <= topo.cap(r):
                    away = new_s  # (a host faster than its uplink gains by spreading)
            util.append(round(load / topo.cap(r), 3))
        return (util[0], away, max(util), uplink_senders, new_receivers, _tie(key, p))


@dataclass
class TrafficEngineer:
    """Flow table and placement decisions of the whole fabric."""

    settings: TeSettings = field(default_factory=TeSettings)
    flows: dict[FlowKey, Flow] = field(default_factory=dict)
    events: list[FabricEvent] = field(default_factory=list)  # drained by the caller
    _hot: dict[Resource, int] = field(default_factory=dict)  # readings above threshold
    _congested: set[Resource] = field(default_factory=set)
    # placements too recent to show in the counters: (when, uplink, downlink, bit/s,
    # priority class), and their sum per resource, one dict per kind of flow
    _fresh: deque[tuple[float, Resource, Resource, float, bool]] = field(default_factory=deque)
    _fresh_count: dict[Resource, float] = field(default_factory=dict)
    _fresh_priority: dict[Resource, float] = field(default_factory=dict)
    _busy: tuple[float, PriorityUse] | None = None  # (when, active priority flows' use)
    _wildcards: set[FlowKey] = field(default_factory=set)  # operator pins with any-ports
    _last_rebalance: float = -1e18  # when a rebalancing pass last moved flows
    _moves: int = 0  # flows moved so far (by any decision): a pass searched before is stale
    stats: dict[str, int] = field(default_factory=dict)

    # --- flows in and out -------------------------------------------------------------------
    def _count(self, name: str, n: int = 1) -> None:
        self.stats[name] = self.stats.get(name, 0) + n

    def new_flow(self, key: FlowKey, src_leaf: int, dst_leaf: int, topo: TeTopology,
                 loads: Mapping[Resource, float], now: float, cls: str = "best-effort",
                 priority: bool = False) -> Flow | None:
        """Track a flow first seen at its ingress leaf and place it; None when it is
        already tracked, has no path between leaves, or the table is full.

        First fit counts, on every link, its measured load plus the flows placed too
        recently to show: a priority flow at the full host rate, any other at the
        large-flow share, and the reverse direction of a tracked connection at nothing
        (its ACKs). A priority-class flow is placed on the links' priority use instead
        (see ``PriorityUse``), with this flow on them: collectives are bursty, between
        two steps they measure as nothing."""
        if key in self.flows:
            return None
        if len(self.flows) >= self.settings.max_flows:
            self._count("flows_over_limit")
            return None
        paths = topo.paths(src_leaf, dst_leaf)
        if not paths:
            return None
        fresh, fresh_priority = self._fresh_load(now)
        # (a best-effort flow goes by what the counters show: holding links free for
        # collectives that pause is for the collectives themselves, not a reason to stack
        # bulk flows together)
        if priority:
            use = self._priority_use(topo, now)
            best = min(paths, key=lambda p: use.score(p, dst_leaf, key, topo, loads, fresh))
        else:
            best = min(paths, key=lambda p: self._first_fit_score(
                p, dst_leaf, topo, loads, (fresh, fresh_priority), key))
        flow = Flow(key, src_leaf, dst_leaf, cls, priority, best, first_seen=now,
                    last_active=now, bytes_at=now)
        self.flows[key] = flow
        if key.reverse() in self.flows:
            weight = 0.0  # the reply direction of a connection placed already
            self._count("reverse_flows_placed")
        elif priority:
            weight = topo.host_rate or topo.link_rate
        else:
            weight = self.settings.large_flow_fraction * topo.link_rate
        if weight:
            u, d = resources(best, dst_leaf)
            self._fresh.append((now, u, d, weight, priority))
            count = fresh_priority if priority else fresh
            for r in (u, d):
                count[r] = count.get(r, 0.0) + weight
        if priority and self._busy is not None:
            self._busy[1].add(flow)  # (it counts from now on)
        self._count("flows_placed")
        return flow

    def _fresh_load(self, now: float
                    ) -> tuple[dict[Resource, float], dict[Resource, float]]:
        """Load (bit/s) per resource of placements too recent to show in the counters:
        of flows of other classes, and of priority-class flows."""
        while self._fresh and now - self._fresh[0][0] >= self.settings.fresh_window:
            _, u, d, w, priority = self._fresh.popleft()
            count = self._fresh_priority if priority else self._fresh_count
            for r in (u, d):
                count[r] -= w
                if count[r] <= 1e-6:
                    del count[r]
        return self._fresh_count, self._fresh_priority

    def _priority_use(self, topo: TeTopology, now: float) -> PriorityUse:
        """Who sends and receives priority-class traffic on each link (recomputed at
        most every half second; new priority flows are added as they come). A flow is
        busy if it sent within the active window of its latest counter reading: when a
        busy controller reads a leaf late, its flows keep the state the last reading
        showed (expiry still goes by the clock)."""
        cached = self._busy
        if cached is not None and now - cached[0] < 0.5:
            return cached[1]
        window = self.settings.active_window
        use = PriorityUse(topo.host_rate or topo.link_rate)
        for f in self.flows.values():
            if f.priority and f.path is not None and \
                    min(now, f.bytes_at) - f.last_active <= window:
                use.add(f)
        self._busy = (now, use)
        return use

    def _first_fit_score(self, p: Path, dst_leaf: int, topo: TeTopology,
                         loads: Mapping[Resource, float],
                         fresh: tuple[dict[Resource, float], ...], key: FlowKey
                         ) -> tuple[float, int, int]:
        worst = 0.0
        n = 0
        for r in resources(p, dst_leaf):
            load = loads.get(r, 0.0)
            for count in fresh:
                if r in count:
                    load += count[r]
                    n += 1
            worst = max(worst, load / topo.cap(r))
        return (round(worst, 3), n, _tie(key, p))

    def pin(self, key: FlowKey, src_leaf: int, dst_leaf: int, spine: int,
            topo: TeTopology, now: float) -> Flow:
        """An operator's placement (``ValueError`` when the spine offers no path)."""
        path = topo.path_via(src_leaf, dst_leaf, spine)
        if path is None:
            raise ValueError(f"spine {spine} has no path in service from leaf {src_leaf} "
                             f"to leaf {dst_leaf}")
        old = self.flows.get(key)
        flow = Flow(key, src_leaf, dst_leaf, old.cls if old else "best-effort",
                    old.priority if old else False, path, operator=True,
                    first_seen=old.first_seen if old else now, last_active=now,
                    bytes_at=now, moved_at=now)
        self.flows[key] = flow
        # exact flows the pin now covers follow it
        if not key.exact:
            self._wildcards.add(key)
            for k in [k for k, f in self.flows.items() if k != key and key.covers(k)
                      and not f.operator]:
                del self.flows[k]
        return flow

    def unpin(self, key: FlowKey) -> Flow:
        flow = self.flows.get(key)
        if flow is None or not flow.operator:
            raise LookupError(f"no operator pin for {key}")
        del self.flows[key]
        self._wildcards.discard(key)
        return flow

    def covered_by_pin(self, key: FlowKey) -> bool:
        return any(k.covers(key) for k in self._wildcards)

    def forget(self, keys: list[FlowKey]) -> list[Flow]:
        """Stop tracking flows that something else now holds (a job's pair entries);
        their pins go. Operator pins are kept."""
        gone = []
        for key in keys:
            f = self.flows.get(key)
            if f is not None and not f.operator:
                gone.append(self.flows.pop(key))
        return gone

    def adopt(self, flow: Flow) -> None:
        """A flow recovered from a switch's entries after a controller restart."""
        self.flows.setdefault(flow.key, flow)
        if flow.operator and not flow.key.exact:
            self._wildcards.add(flow.key)

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
            self._count("flows_expired", len(gone))
        return gone

    def is_large(self, flow: Flow, topo: TeTopology) -> bool:
        return flow.rate_bps >= self.settings.large_flow_fraction * topo.link_rate > 0

    # --- failure and drain ----------------------------------------------------------------------
    def revalidate(self, topo: TeTopology, loads: Mapping[Resource, float], now: float,
                   reason: str, leaves: Collection[int] | None = None) -> list[Move]:
        """Re-place at once every flow whose path is no longer in service (of the
        ``leaves`` given: the ones this instance writes in a cluster; None: all)."""
        moves: list[Move] = []
        planned = dict(loads)
        for flow in sorted(self.flows.values(), key=lambda f: (not f.priority, -f.rate_bps,
                                                               f.key)):
            if leaves is not None and flow.src_leaf not in leaves:
                continue  # (its master re-places it; the switch then says where)
            valid = topo.paths(flow.src_leaf, flow.dst_leaf)
            if flow.path in valid:
                continue
            if not valid:
                continue  # nothing to move to: the data plane falls back on its groups
            if flow.operator:
                same = [p for p in valid if flow.path and p.spine == flow.path.spine]
                if same:
                    moves.append(self._move(flow, same[0], f"{reason}: uplink changed", now))
                continue
            new = min(valid, key=lambda p: _path_util(p, flow.dst_leaf, topo, planned,
                                                      flow.rate_bps))
            for r in resources(new, flow.dst_leaf):
                planned[r] = planned.get(r, 0.0) + flow.rate_bps
            moves.append(self._move(flow, new, reason, now))
        return moves

    def _move(self, flow: Flow, new: Path, reason: str, now: float,
              announce: bool = True) -> Move:
        old = flow.path
        move = Move(flow.key, old, new, reason)
        flow.path, flow.moved_at = new, now
        flow.moves += 1
        self._moves += 1
        self._count("reroutes")
        if announce:
            self.events.append(FabricEvent(
                "reroute",
                f"{flow.key} moved from {_path_text(old, flow.dst_leaf)} to "
                f"{_path_text(new, flow.dst_leaf)}: {reason}",
                (("flow", str(flow.key)), ("from", _path_text(old, flow.dst_leaf)),
                 ("to", _path_text(new, flow.dst_leaf)), ("reason", reason)),
            ))
        return move

    # --- congestion -------------------------------------------------------------------------
    def congestion(self, topo: TeTopology, loads: Mapping[Resource, float],
                   now: float) -> list[Move]:
        """Count readings above the threshold; move large flows off a link that stayed
        hot for ``congestion_intervals`` readings."""
        s = self.settings
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
                    self.events.append(FabricEvent(
                        "congestion_cleared", f"link {resource_text(r)} back to {util:.0%}",
                        (("link", resource_text(r)), ("utilization", f"{util:.3f}"))))
                continue
            self._hot[r] = self._hot.get(r, 0) + 1
            if self._hot[r] < s.congestion_intervals:
                continue
            if r not in self._congested:
                self._congested.add(r)
                self._count("congestions")
                self.events.append(FabricEvent(
                    "congestion",
                    f"link {resource_text(r)} at {util:.0%} for {self._hot[r]} readings",
                    (("link", resource_text(r)), ("utilization", f"{util:.3f}"))))
            moved = self._relieve(r, topo, planned, now)
            moves += moved
            if moved:
                self._hot[r] = 0  # give the move time to show in the counters
        return moves

    def _relieve(self, hot: Resource, topo: TeTopology, planned: dict[Resource, float],
                 now: float) -> list[Move]:
        """Move large flows off ``hot`` until it is below the threshold; ``planned`` (the
        loads with the moves made so far) follows each move.

        A flow moves only to a path that stays under the threshold as measured and that
        its demand does not overload as the rebalancer estimates demands
        (:func:`demand_list`): a link is often full because the hosts behind it are (two
        flows into one receiver), and a move then only takes the place another host's
        flow needs, which the next rebalancing pass undoes, and so on."""
        s = self.settings
        cap = topo.cap(hot)
        target = s.congestion_threshold * cap
        large = self._demand_candidates(topo, now)
        # (and a flow large by its smoothed rate whose latest reading is low: a TCP flow
        # squeezed by a UDP stream reads as nearly paused, and is the one to move)
        known = {f.key for f in large}
        large += [f for f in self.flows.values() if f.key not in known
                  and f.path is not None and self.is_large(f, topo)]
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
                util = max((planned.get(r, 0.0) + flow.rate_bps) / topo.cap(r) for r in rs)
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
            moves.append(self._move(flow, best, f"congestion on {resource_text(hot)}", now))
        if not moves:
            self._count("congestion_unrelieved")
        return moves

    def _demand_candidates(self, topo: TeTopology, now: float) -> list[Flow]:
        """The flows a rebalancing pass gives a demand (:func:`select_demand_flows`)."""
        flows = tuple(self.flows.values())
        _, chosen = select_demand_flows(flows, self.settings, topo.link_rate, now)
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

    # --- rebalancing ------------------------------------------------------------------------
    def estimate_demands(self, flows: list[Flow], host_rate: float) -> dict[FlowKey, float]:
        return estimate_demands(flows, host_rate)

    def rebalance(self, topo: TeTopology, loads: Mapping[Resource, float],
                  now: float) -> list[Move]:
        """Re-place the large flows when that lowers the overload by the hysteresis (the
        three steps below, on this thread)."""
        job = self.rebalance_job(topo, loads, now)
        return [] if job is None else self.finish_rebalance(search(job), topo, now)[0]

    def rebalance_job(self, topo: TeTopology, loads: Mapping[Resource, float],
                      now: float) -> RebalanceJob | None:
        """The input of a rebalancing pass, copied so that the search (:func:`search`)
        can run on another thread; None when there is nothing to rebalance now."""
        s = self.settings
        if not s.rebalance or now - self._last_rebalance < s.rebalance_cooldown:
            return None  # (the last moves must show in the counters before the next)
        if s.large_flow_fraction * topo.link_rate <= 0 or not self.flows:
            return None
        return RebalanceJob(tuple(self.flows.values()), s, dict(loads), topo, now,
                            self._moves)

    def finish_rebalance(self, plan: RebalancePlan, topo: TeTopology, now: float,
                         limit: int | None = None) -> tuple[list[Move], RebalancePlan | None]:
        """Apply a searched placement if it is worth it and still holds: nothing if the
        fabric changed meanwhile (``topo`` is not the one searched on) or another decision
        moved a flow meanwhile (a congestion move: the placement was searched around
        where that flow was, and applied now it would put flows where the move just
        went); a flow that ended or was pinned meanwhile stays as it is. With a
        ``limit``, at most about that many moves (whole ingress leaves) now, and the rest
        of the plan to apply next (so that a pass moving thousands of flows never holds
        the caller for long)."""
        job, s = plan.job, self.settings
        if job.topo is not topo or self._moves != job.moves_before + plan.applied:
            self.stats["rebalance_stale"] = self.stats.get("rebalance_stale", 0) + 1
            return [], None
        if plan.start == 0:
            if plan.demands:  # (none when nothing could move)
                for live, d in zip(job.large_flows, plan.demands, strict=True):
                    live.demand_bps = d  # (shown with the flows)
            if not plan.changes or not self._worth_it(plan):
                return [], None
        before, after = plan.before, plan.after
        reason = (f"rebalance: overload {before[0]:.2f} -> {after[0]:.2f}, "
                  f"worst link {before[1]:.0%} -> {after[1]:.0%}")
        if plan.start == 0 and len(plan.changes) > s.reroute_events:
            self.events.append(FabricEvent(
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
            f = self.flows.get(searched.key)
            if f is None or f.operator or f.path != searched.path:
                continue  # ended, pinned or moved while the search ran
            moves.append(self._move(f, plan.placement[f.key], reason, now,
                                    announce=n < s.reroute_events))
        if moves:
            self._last_rebalance = now
        rest = (replace(plan, start=end, applied=plan.applied + len(moves))
                if end < len(plan.changes) else None)
        return moves, rest

    def _worth_it(self, plan: RebalancePlan) -> bool:
        """True if the placement lowers the overload by at least the hysteresis, and by
        that share of the traffic it moves (in link rates: a move costs the moved flow a
        hiccup; eight flows moved for the gain of one were the noise of bursty flows'
        readings, undone by the next pass), or, with no overload, lowers a busy worst
        link by the hysteresis."""
        s = self.settings
        before, after = plan.before, plan.after
        margin = s.hysteresis
        rate = plan.job.topo.link_rate
        moved = plan.moved_bps / rate if rate > 0 else 0.0
        less_overload = before[0] - after[0] >= margin * max(1.0, moved)
        # without overload, only a busy worst link is worth moving flows for: below the
        # floor every link has room, and a move only costs the flows a hiccup
        cooler = (abs(before[0] - after[0]) < 1e-9 and before[1] >= s.rebalance_floor
                  and before[1] - after[1] >= margin)
        return less_overload or cooler

    # --- entries ------------------------------------------------------------------------------
    def pins_of(self, leaf: int) -> list[Flow]:
        return [f for f in self.flows.values() if f.src_leaf == leaf and f.path is not None]

    # --- cluster mode: leaves another instance writes -----------------------------------------
    def mirror(self, leaf: int, held: Sequence[tuple[FlowKey, Path, int, bool]],
               now: float) -> None:
        """The TE entries of a leaf another instance masters, as read from the switch
        ((flow, path, destination leaf, priority class) each): its flows are tracked as
        the switch holds them, so that the TE leader decides on the whole fabric. A flow
        moved here within ``min_move_interval`` keeps the path it was moved to (the
        leaf's master has yet to write it); operator pins are the cluster's shared
        intent, not read from switches."""
        pending = self.settings.min_move_interval
        seen = set()
        for key, path, dst_leaf, priority in held:
            seen.add(key)
            f = self.flows.get(key)
            if f is None:
                if len(self.flows) >= self.settings.max_flows:
                    self._count("flows_over_limit")
                    continue
                self.flows[key] = Flow(key, leaf, dst_leaf,
                                       "priority" if priority else "best-effort", priority,
                                       path, first_seen=now, last_active=now, bytes_at=now)
            elif not f.operator and f.path != path and now - f.moved_at >= pending:
                f.path = path  # (moved by its master: a failure, or a new placement)
        gone = [k for k, f in self.flows.items()
                if f.src_leaf == leaf and k not in seen and not f.operator
                and now - f.moved_at >= pending and now - f.first_seen >= pending]
        for k in gone:
            del self.flows[k]

    def move_to(self, key: FlowKey, spine: int, topo: TeTopology, reason: str,
                now: float) -> Move | None:
        """Move a tracked flow to ``spine`` (another instance's decision); None when the
        flow is not tracked here, is pinned by an operator, is there already, or the
        spine has no path in service for it."""
        f = self.flows.get(key)
        if f is None or f.operator or f.path is None or f.path.spine == spine:
            return None
        path = topo.path_via(f.src_leaf, f.dst_leaf, spine)
        return None if path is None else self._move(f, path, reason, now)


def _path_text(p: Path | None, dst_leaf: int) -> str:
    if p is None:
        return "ECMP"
    return f"leaf {p.leaf} port {p.port} -> spine {p.spine} -> leaf {dst_leaf}"


def _path_util(p: Path, dst_leaf: int, topo: TeTopology, loads: Mapping[Resource, float],
               extra: float) -> float:
    return max((loads.get(r, 0.0) + extra) / topo.cap(r) for r in resources(p, dst_leaf))


def pin_cookie_low(port: int, priority: bool, operator: bool) -> int:
    """A TE entry's cookie (low bits): its uplink, whether its flow is of a priority
    class, whether an operator pinned it: what another instance reading the switch
    needs to know of it."""
    return port << 2 | int(priority) << 1 | int(operator)


def pin_cookie_fields(low: int) -> tuple[int, bool, bool]:
    """The inverse of :func:`pin_cookie_low`: (uplink port, priority, operator)."""
    return low >> 2, bool(low & 2), bool(low & 1)


def pin_rule(flow: Flow, group_id: int) -> FlowRule:
    """The ingress-leaf entry that holds a flow on its path: output through the uplink's
    fast-failover group (the uplink, or another if it goes down before we react)."""
    prio = C.PRIO_PIN_OPERATOR if flow.operator else C.PRIO_PIN
    return FlowRule(
        C.TABLE_TE, prio, flow.key.match(),
        (("apply", (("group", group_id),)), ("clear",)),
        # the uplink is in the cookie: a move changes it, so the switch gets a fresh
        # entry (add) rather than a modified one
        C.make_cookie(C.KIND_PIN, pin_cookie_low(group_id - C.FF_GROUP_BASE, flow.priority,
                                                 flow.operator)),
    )
