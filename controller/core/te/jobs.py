"""Training jobs: what a scheduler registers (the member hosts in rank order and the
communication pattern), the host pairs a pattern implies and which of them run at the
same time (the schedule), and the joint placement of a job's pairs on the spines.

Schedules assumed (see docs/jobs.md):

- ``ring``: rank r sends to r+1 (mod n), all pairs at once (OpenMPI's and NCCL's ring
  all-reduce, in rank order), and r to r-1 as a second step (two-way rings).
- ``all_to_all``: pairwise exchange, step k = 1..n-1 sends rank r to r+k (mod n); the
  n pairs of one step run together, the steps one after the other.
- ``tree``: a binary tree over the ranks (rank r's parent is (r-1)//2): children to
  parents at once, then parents to children.
- ``pairs``: an explicit list of rank pairs, all at once.

Placement assigns each inter-leaf pair a path (ingress uplink and spine) so that, step
by step, the most loaded uplink and downlink carry as few of the job's concurrent pairs
as the fabric allows, on top of the background and of the jobs placed before it. Among
placements as good, a host's pairs leave by the spine its pairs of the earlier steps
leave by (rail alignment): a host sends no faster than its NIC, so its pairs cost
nothing together, and a job whose library does not follow the assumed schedule step
by step (steps that overlap, or all pairs at once) keeps each uplink to one host.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from controller.core.errors import FailedPrecondition, InvalidArgument
from controller.core.te.placement_search import place
from controller.core.te.topology import Resource, SpinePath, TeTopology, resources

PATTERNS = ("ring", "all_to_all", "tree", "pairs")
TRANSPORTS = ("any", "tcp", "udp", "roce")
JOB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
FIELDS = ("id", "members", "pattern", "pairs", "transport", "traffic_class", "priority")

Pair = tuple[str, str]  # (source IP, destination IP): every packet between the two hosts
TIE = 1e-3  # weight of a job's other steps when placing one: a tie-breaker only


SERVER_RAIL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}:\d{1,3}$")


class JobError(InvalidArgument):
    """A malformed job; ``field`` names the offending part."""

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(f"{field_name}: {message}")
        self.field = field_name


class JobRefused(FailedPrecondition):
    """A well-formed job the fabric's state refuses now (a member not known yet, QoS
    off); ``field`` names the part. A retry may succeed once the state changed."""

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(f"{field_name}: {message}")
        self.field = field_name


@dataclass(frozen=True)
class JobLimits:
    max_jobs: int = 64
    max_members: int = 512
    max_pairs: int = 20_000  # directed pairs of one job (all-to-all on n members: n(n-1))


@dataclass(frozen=True)
class JobSpec:
    """A registered job, as the scheduler described it."""

    job_id: str
    members: tuple[str, ...]  # IPv4 addresses, in rank order
    pattern: str
    pairs: tuple[tuple[int, int], ...] = ()  # (source rank, destination rank): "pairs"
    transport: str = "any"  # which of the pair's traffic follows the placement
    traffic_class: str = ""  # QoS class its traffic is marked into at the edge ("": none)
    priority: int = 0  # higher is placed first

    def validate(self, limits: JobLimits, server_rails: bool = False) -> None:
        """JobError naming the field for anything malformed (hosts are checked apart).
        ``server_rails``: members may name a server's NIC as SERVER:RAIL (a request, not
        yet made addresses; a registered job has addresses only)."""
        if not JOB_ID.match(self.job_id):
            raise JobError("id", f"{self.job_id!r} must be 1-64 letters, digits, '.', '_' "
                           "or '-', starting with a letter or digit")
        n = len(self.members)
        if n < 2:
            raise JobError("members", f"a job needs at least 2 members, got {n}")
        if n > limits.max_members:
            raise JobError("members", f"{n} members is over the limit of "
                           f"{limits.max_members}")
        seen: dict[str, int] = {}
        for i, ip in enumerate(self.members):
            if server_rails and SERVER_RAIL.match(ip):  # (made an address when registered)
                if ip in seen:
                    raise JobError(f"members[{i}]", f"{ip} is already rank {seen[ip]}")
                seen[ip] = i
                continue
            try:
                addr = ipaddress.IPv4Address(ip)
            except ValueError:
                raise JobError(f"members[{i}]", f"{ip!r} is not an IPv4 address"
                               + (" nor SERVER:RAIL" if server_rails else "")) from None
            if addr.is_multicast or addr.is_unspecified or ip == "255.255.255.255":
                raise JobError(f"members[{i}]", f"{ip} is not a host address")
            if ip in seen:
                raise JobError(f"members[{i}]", f"{ip} is already rank {seen[ip]}")
            seen[ip] = i
        if self.pattern not in PATTERNS:
            raise JobError("pattern", f"{self.pattern!r} is not one of "
                           f"{', '.join(PATTERNS)}")
        if self.pattern == "pairs":
            if not self.pairs:
                raise JobError("pairs", "the pairs pattern needs at least one pair")
            for i, (a, b) in enumerate(self.pairs):
                for r in (a, b):
                    if not 0 <= r < n:
                        raise JobError(f"pairs[{i}]", f"rank {r} is not in 0..{n - 1}")
                if a == b:
                    raise JobError(f"pairs[{i}]", f"rank {a} paired with itself")
        elif self.pairs:
            raise JobError("pairs", f"only the pairs pattern takes pairs, not {self.pattern}")
        count = n * (n - 1) if self.pattern == "all_to_all" else len(self.rank_pairs())
        if count > limits.max_pairs:
            raise JobError("members", f"{self.pattern} on {n} members is {count} pairs, "
                           f"over the limit of {limits.max_pairs}")
        if self.transport not in TRANSPORTS:
            raise JobError("transport", f"{self.transport!r} is not one of "
                           f"{', '.join(TRANSPORTS)}")
        if not -1000 <= self.priority <= 1000:
            raise JobError("priority", f"{self.priority} is not in -1000..1000")

    def steps(self) -> tuple[tuple[tuple[int, int], ...], ...]:
        """The directed rank pairs of each step of the schedule (pairs in one step run
        at the same time). A ring's two directions are two steps, and so are a tree's
        (up, then down): a one-way ring (OpenMPI's all-reduce) then gets links of its
        own for every pair, and a two-way one (NCCL's) as few shared as the fabric
        allows, since each step is placed away from the job's other steps when there is
        room."""
        n = len(self.members)
        if self.pattern == "all_to_all":
            return tuple(tuple((r, (r + k) % n) for r in range(n)) for k in range(1, n))
        if self.pattern == "ring":
            fwd = tuple(dict.fromkeys((r, (r + 1) % n) for r in range(n)))
            back = tuple(dict.fromkeys((b, a) for a, b in fwd if (b, a) not in fwd))
            return (fwd, back) if back else (fwd,)
        if self.pattern == "tree":
            up = tuple((r, (r - 1) // 2) for r in range(1, n))
            return (up, tuple((b, a) for a, b in up))
        return (self.rank_pairs(),)

    def rank_pairs(self) -> tuple[tuple[int, int], ...]:
        """Every directed rank pair the pattern implies, each once."""
        if self.pattern == "pairs":
            return tuple(dict.fromkeys(self.pairs))
        return tuple(sorted({p for step in self.steps() for p in step}))

    def host_pair(self, ranks: tuple[int, int]) -> Pair:
        return self.members[ranks[0]], self.members[ranks[1]]

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.job_id, "members": list(self.members),
                               "pattern": self.pattern}
        if self.pairs:
            out["pairs"] = [list(p) for p in self.pairs]
        if self.transport != "any":
            out["transport"] = self.transport
        if self.traffic_class:
            out["traffic_class"] = self.traffic_class
        if self.priority:
            out["priority"] = self.priority
        return out

    @staticmethod
    def from_dict(d: Any) -> JobSpec:
        """From a scheduler's file or the state file (JobError for a malformed one)."""
        if not isinstance(d, Mapping):
            raise JobError("job", f"expected a mapping, got {type(d).__name__}")
        unknown = sorted(set(d) - set(FIELDS))
        if unknown:
            raise JobError(str(unknown[0]), f"unknown field (known: {', '.join(FIELDS)})")

        def text(name: str, default: str | None = None) -> str:
            v = d.get(name, default)
            if not isinstance(v, str):
                raise JobError(name, "required" if v is None else
                               f"expected a string, got {type(v).__name__}")
            return v

        members = d.get("members")
        if not isinstance(members, list) or not all(isinstance(m, str) for m in members):
            raise JobError("members", "expected a list of IPv4 addresses in rank order")
        pairs = d.get("pairs", [])
        if not isinstance(pairs, list) or not all(
                isinstance(p, (list, tuple)) and len(p) == 2
                and all(isinstance(r, int) and not isinstance(r, bool) for r in p)
                for p in pairs):
            raise JobError("pairs", "expected a list of [source rank, destination rank]")
        priority = d.get("priority", 0)
        if not isinstance(priority, int) or isinstance(priority, bool):
            raise JobError("priority", f"expected an integer, got {priority!r}")
        return JobSpec(text("id"), tuple(members), text("pattern"),
                       tuple((int(a), int(b)) for a, b in pairs),
                       text("transport", "any"), text("traffic_class", ""), priority)


class PairItem(NamedTuple):
    """One inter-leaf pair as the placement search sees it."""

    key: Pair
    src_leaf: int
    dst_leaf: int
    priority: bool = True


@dataclass
class JobPlacement:
    """Where one job's pairs go."""

    paths: dict[Pair, SpinePath] = field(default_factory=dict)  # inter-leaf pairs placed
    local: tuple[Pair, ...] = ()  # both ends on one leaf: no spine to choose
    unplaced: tuple[Pair, ...] = ()  # no path in service between the leaves
    shared: dict[Pair, str] = field(default_factory=dict)  # placed by an earlier job
    pending: tuple[str, ...] = ()  # members not known as hosts yet
    waiting: tuple[int, ...] = ()  # leaves of members not settled yet (not placed)
    worst: tuple[Resource | None, int] = (None, 0)  # the link with most concurrent pairs
    steps: tuple[tuple[Pair, ...], ...] = ()  # the host pairs of each step


def _step_counts(steps: tuple[tuple[Pair, ...], ...], paths: Mapping[Pair, SpinePath],
                 leaf_of: Mapping[str, int]) -> tuple[Resource | None, int]:
    """The resource that carries most pairs of one step, and how many."""
    worst: tuple[Resource | None, int] = (None, 0)
    for step in steps:
        count: dict[Resource, int] = {}
        for pair in step:
            p = paths.get(pair)
            if p is None:
                continue
            for r in resources(p, leaf_of[pair[1]]):
                count[r] = count.get(r, 0) + 1
        for r, c in count.items():
            if c > worst[1] or (c == worst[1] and worst[0] is not None and r < worst[0]):
                worst = (r, c)
    return worst


def _home_path(topo: TeTopology, item: PairItem, spine: int | None) -> SpinePath | None:
    """The path of ``item`` through ``spine`` (None: no spine, or none there)."""
    return None if spine is None else topo.path_via(item.src_leaf, item.dst_leaf, spine)


def place_jobs(jobs: list[JobSpec], topo: TeTopology, leaf_of: Mapping[str, int],
               background: Mapping[Resource, float],
               current: Mapping[Pair, SpinePath]) -> dict[str, JobPlacement]:
    """Place ``jobs`` in the order given (priority order, then registration order), each
    on top of the ``background`` load and of the jobs before it. An earlier job with as
    many steps counts step by step (two rings: forward against forward, backward against
    backward, as they run), any other with its busiest step on every link; all of them
    also as a tie-breaker, so that jobs take links of their own when there are enough.
    ``current`` paths are kept where they are as good as any (a re-placement moves only
    the pairs that buy something). A pair two jobs share follows the earlier job's
    path."""
    rate = topo.host_rate or 1.0
    placed: list[tuple[list[dict[Resource, float]], dict[Resource, float]]] = []
    everything: dict[Resource, float] = {}  # every earlier step of every job, summed
    owner: dict[Pair, str] = {}
    taken: dict[Pair, SpinePath] = {}
    out: dict[str, JobPlacement] = {}
    for spec in jobs:
        pending = tuple(ip for ip in spec.members if ip not in leaf_of)
        steps = tuple(tuple(spec.host_pair(rp) for rp in step) for step in spec.steps())
        result = JobPlacement(pending=pending, steps=steps)
        out[spec.job_id] = result
        if pending:
            continue
        local, unplaced = [], []
        home: dict[str, int] = {}  # host -> the spine its first placed pair leaves by
        profile: dict[Resource, float] = {}  # this job's busiest step, per resource
        step_loads: list[dict[Resource, float]] = []
        for k, step in enumerate(steps):
            outdeg: dict[str, int] = {}
            indeg: dict[str, int] = {}
            for a, b in step:
                outdeg[a] = outdeg.get(a, 0) + 1
                indeg[b] = indeg.get(b, 0) + 1
            items, demand = [], {}
            step_load: dict[Resource, float] = {}
            for pair in step:
                a, b = pair
                la, lb = leaf_of[a], leaf_of[b]
                d = rate / max(outdeg[a], indeg[b])  # its share of the busier NIC
                if la == lb:
                    local.append(pair)
                    continue
                if pair in owner and owner[pair] != spec.job_id:
                    result.shared[pair] = owner[pair]
                    continue
                if pair in result.paths:  # (a pair in two steps: placed once)
                    path = result.paths[pair]
                    for r in resources(path, lb):
                        step_load[r] = step_load.get(r, 0.0) + d
                    continue
                if not topo.paths(la, lb):
                    unplaced.append(pair)
                    continue
                items.append(PairItem(pair, la, lb))
                demand[pair] = d
            if items:
                base = dict(background)
                for loads, busiest in placed:  # the jobs before, as they run beside it
                    for r, v in (loads[k] if len(loads) == len(steps) else busiest).items():
                        base[r] = base.get(r, 0.0) + v
                for r, v in step_load.items():
                    base[r] = base.get(r, 0.0) + v
                for r, v in everything.items():  # (away from the other steps and jobs
                    base[r] = base.get(r, 0.0) + TIE * v  # when that costs nothing)
                # where each pair is now, or else its source's spine in this job so far
                # (kept where that is as good as any: the search keeps flows in place)
                start = {i.key: current[i.key] if i.key in current else
                         _home_path(topo, i, home.get(i.key[0])) for i in items}
                plan, _, _ = place(items, demand, base, topo,  # type: ignore[arg-type]
                                   {k: p for k, p in start.items() if p is not None})
                for item in items:
                    path = plan[item.key]
                    home.setdefault(item.key[0], path.spine)
                    result.paths[item.key] = path
                    taken[item.key] = path
                    owner[item.key] = spec.job_id
                    for r in resources(path, item.dst_leaf):
                        step_load[r] = step_load.get(r, 0.0) + demand[item.key]
            for r, v in step_load.items():
                profile[r] = max(profile.get(r, 0.0), v)
                everything[r] = everything.get(r, 0.0) + v
            step_loads.append(step_load)
        placed.append((step_loads, profile))
        result.local = tuple(dict.fromkeys(local))
        result.unplaced = tuple(dict.fromkeys(unplaced))
        all_paths = {**{p: taken[p] for p in result.shared if p in taken}, **result.paths}
        result.worst = _step_counts(steps, all_paths, leaf_of)
    return out


def job_order(jobs: Collection[tuple[int, JobSpec]]) -> list[JobSpec]:
    """Placement order: priority first (higher first), then registration order."""
    return [spec for _, spec in sorted(jobs, key=lambda t: (-t[1].priority, t[0]))]
