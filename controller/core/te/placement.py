"""First-packet placement: a new flow is placed once, when its first packet is copied to
the controller, on the path with the most headroom, counting the measured load plus a
nominal demand for every flow placed there since the last measurement (so that flows
starting together spread out). A priority-class flow is placed by the hosts that send
and receive priority traffic on each link instead (:class:`PriorityUse`).
"""

from __future__ import annotations

import zlib
from collections import Counter, deque
from collections.abc import Mapping

from controller.core.te.flows import Flow, FlowKey, FlowTable
from controller.core.te.topology import Resource, SpinePath, TeTopology, resources


def tie(key: FlowKey, p: SpinePath) -> int:
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
       fewest new receivers on links;
    4. the rates of the flows TE tracks on the path's links, in tenths of the link's
       rate: where the bounds tie (a host that sends on both uplinks weighs on both
       alike), the lighter path; then the flow's hash. (Not the links' counters: they
       lag a move by a reading, and TE moves flows apart, e.g. a host's stream off its
       other flows' spine.)"""

    def __init__(self, host_rate: float) -> None:
        self.host_rate = host_rate
        self.senders: dict[Resource, set[str]] = {}
        self.receivers: dict[Resource, set[str]] = {}
        self.rates: dict[Resource, float] = {}  # of every tracked flow, bit/s

    def add_rate(self, flow: Flow) -> None:
        assert flow.path is not None
        for r in resources(flow.path, flow.dst_leaf):
            self.rates[r] = self.rates.get(r, 0.0) + flow.rate_bps

    def add(self, flow: Flow) -> None:
        assert flow.path is not None
        for r in resources(flow.path, flow.dst_leaf):
            self.senders.setdefault(r, set()).add(flow.key.src_ip)
            self.receivers.setdefault(r, set()).add(flow.key.dst_ip)

    def score(self, p: SpinePath, dst_leaf: int, key: FlowKey, topo: TeTopology,
              loads: Mapping[Resource, float], fresh: Mapping[Resource, float]
              ) -> tuple[float, int, float, int, int, float, int]:
        """The order of the paths for a new priority flow (smaller is better)."""
        util = []
        away = new_receivers = uplink_senders = 0
        tracked = 0.0
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
            tracked = max(tracked, round(min(self.rates.get(r, 0.0) / topo.cap(r), 1.0), 1))
            if not util:
                uplink_senders = len(senders) + new_s
                if self.host_rate <= topo.cap(r):
                    away = new_s  # (a host faster than its uplink gains by spreading)
            util.append(round(load / topo.cap(r), 3))
        return (util[0], away, max(util), uplink_senders, new_receivers, tracked,
                tie(key, p))


class FirstPlacement:
    """Places new flows into the table, and keeps what that needs between two: the
    placements too recent to show in the counters, and the links' priority use."""

    def __init__(self, table: FlowTable) -> None:
        self.table = table
        # placements too recent to show in the counters: (when, the path's resources,
        # bit/s, the flow's key, priority class), and their load per resource: the sum
        # of the other flows; for priority flows, as many host rates as the fewer of
        # their senders and receivers there (a host sends no faster than its NIC,
        # however many flows it opens: a flood of them weighs as one host)
        self._fresh: deque[tuple[float, tuple[Resource, ...], float, FlowKey, bool]] = deque()
        self._fresh_count: dict[Resource, float] = {}
        self._fresh_priority: dict[Resource, float] = {}
        self._fresh_ends: dict[Resource, tuple[Counter[str], Counter[str]]] = {}
        # (when, the table's moves then, the active flows' use)
        self._busy: tuple[float, int, PriorityUse] | None = None

    def place(self, key: FlowKey, src_leaf: int, dst_leaf: int, topo: TeTopology,
              loads: Mapping[Resource, float], now: float, cls: str = "best-effort",
              priority: bool = False) -> Flow | None:
        """Track a flow first seen at its ingress leaf and place it; None when it is
        already tracked, has no path between leaves, or the table is full.

        First fit counts, on every link, its measured load plus the flows placed too
        recently to show: priority flows as many host rates as the fewer of their
        senders and receivers there, any other at the large-flow share, and the reverse
        direction of a tracked connection at nothing (its ACKs). A priority-class flow
        is placed on the links' priority use instead (see ``PriorityUse``), with this
        flow on them: collectives are bursty, between two steps they measure as
        nothing."""
        table = self.table
        if key in table.flows:
            return None
        if len(table.flows) >= table.settings.max_flows:
            table.count("flows_over_limit")
            return None
        paths = topo.paths(src_leaf, dst_leaf)
        if not paths:
            return None
        fresh, fresh_priority = self.fresh_load(now)
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
        table.flows[key] = flow
        if key.reverse() in table.flows:
            weight = 0.0  # the reply direction of a connection placed already
            table.count("reverse_flows_placed")
        elif priority:
            weight = topo.host_rate or topo.link_rate
        else:
            weight = table.settings.large_flow_fraction * topo.link_rate
        if weight:
            rs = resources(best, dst_leaf)
            self._fresh.append((now, rs, weight, key, priority))
            for r in rs:
                if priority:
                    self._count_priority(r, key, weight, 1)
                else:
                    fresh[r] = fresh.get(r, 0.0) + weight
        if priority and self._busy is not None:
            self._busy[2].add(flow)  # (it counts from now on)
        table.count("flows_placed")
        return flow

    def fresh_load(self, now: float
                   ) -> tuple[dict[Resource, float], dict[Resource, float]]:
        """Load (bit/s) per resource of placements too recent to show in the counters:
        of flows of other classes, and of priority-class flows."""
        window = self.table.settings.fresh_window * self.table.poll_stretch
        while self._fresh and now - self._fresh[0][0] >= window:
            _, rs, w, key, priority = self._fresh.popleft()
            for r in rs:
                if priority:
                    self._count_priority(r, key, w, -1)
                    continue
                self._fresh_count[r] -= w
                if self._fresh_count[r] <= 1e-6:
                    del self._fresh_count[r]
        return self._fresh_count, self._fresh_priority

    def recent_senders(self, now: float) -> dict[Resource, frozenset[str]]:
        """Who placed flows on each resource too recently to show in the counters."""
        self.fresh_load(now)
        out: dict[Resource, set[str]] = {}
        for _, rs, _, key, _ in self._fresh:
            for r in rs:
                out.setdefault(r, set()).add(key.src_ip)
        return {r: frozenset(s) for r, s in out.items()}

    def _count_priority(self, r: Resource, key: FlowKey, host_rate: float, n: int) -> None:
        """A fresh priority placement on ``r`` counted (n=1) or expired (n=-1)."""
        senders, receivers = self._fresh_ends.setdefault(r, (Counter(), Counter()))
        senders[key.src_ip] += n
        receivers[key.dst_ip] += n
        if n < 0:
            for ends, ip in ((senders, key.src_ip), (receivers, key.dst_ip)):
                if ends[ip] <= 0:
                    del ends[ip]
        bound = min(len(senders), len(receivers)) * host_rate
        if bound > 0:
            self._fresh_priority[r] = bound
        else:
            self._fresh_priority.pop(r, None)
            del self._fresh_ends[r]

    def recent_load(self, now: float) -> dict[Resource, float]:
        """Load (bit/s) per resource of every placement too recent to show in the
        counters, of whatever class."""
        fresh, fresh_priority = self.fresh_load(now)
        recent = dict(fresh)
        for r, w in fresh_priority.items():
            recent[r] = recent.get(r, 0.0) + w
        return recent

    def _priority_use(self, topo: TeTopology, now: float) -> PriorityUse:
        """Who sends and receives priority-class traffic on each link (recomputed at
        most every half second, and after any move; new priority flows are added as
        they come). A flow is busy if it sent within the active window of its latest
        counter reading: when a busy controller reads a leaf late, its flows keep the
        state the last reading showed (expiry still goes by the clock)."""
        cached = self._busy
        if cached is not None and now - cached[0] < 0.5 and cached[1] == self.table.moves:
            return cached[2]
        window = self.table.settings.active_window
        use = PriorityUse(topo.host_rate or topo.link_rate)
        for f in self.table.flows.values():
            if f.path is None:
                continue
            use.add_rate(f)
            if f.priority and min(now, f.bytes_at) - f.last_active <= window:
                use.add(f)
        self._busy = (now, self.table.moves, use)
        return use

    def _first_fit_score(self, p: SpinePath, dst_leaf: int, topo: TeTopology,
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
        return (round(worst, 3), n, tie(key, p))
