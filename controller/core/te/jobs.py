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

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

from controller.core.model.job_spec import JobSpec, Pair
from controller.core.te.placement_search import place
from controller.core.te.topology import Resource, SpinePath, TeTopology, resources

TIE = 1e-3  # weight of a job's other steps when placing one: a tie-breaker only


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
               current: Mapping[Pair, SpinePath],
               adopt: Mapping[Pair, SpinePath] | None = None) -> dict[str, JobPlacement]:
    """Place ``jobs`` in the order given (priority order, then registration order), each
    on top of the ``background`` load and of the jobs before it. An earlier job with as
    many steps counts step by step (two rings: forward against forward, backward against
    backward, as they run), any other with its busiest step on every link; all of them
    also as a tie-breaker, so that jobs take links of their own when there are enough.
    ``current`` paths are kept where they are as good as any (a re-placement moves only
    the pairs that buy something). A job whose every pair between leaves has a path in
    ``adopt`` still in service takes those paths as they are (read back after a
    restart: what the switches hold is kept, not placed anew, which could swap pairs
    of equal cost). A pair two jobs share follows the earlier job's path."""
    adopt = adopt or {}
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
        kept = _adoptable(spec, steps, topo, leaf_of, adopt, owner)
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
                plan = kept if kept is not None else place(
                    items, demand, base, topo,  # type: ignore[arg-type]
                    {k: p for k, p in start.items() if p is not None})[0]
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


def _adoptable(spec: JobSpec, steps: tuple[tuple[Pair, ...], ...], topo: TeTopology,
               leaf_of: Mapping[str, int], adopt: Mapping[Pair, SpinePath],
               owner: Mapping[Pair, str]) -> Mapping[Pair, SpinePath] | None:
    """``adopt`` when it holds a path in service for every pair of the job between
    leaves that no earlier job holds, else None."""
    if not adopt:
        return None
    for step in steps:
        for a, b in step:
            la, lb = leaf_of[a], leaf_of[b]
            if la == lb or ((a, b) in owner and owner[(a, b)] != spec.job_id):
                continue
            path = adopt.get((a, b))
            if path is None or path not in topo.paths(la, lb):
                return None
    return adopt


def job_order(jobs: Collection[tuple[int, JobSpec]]) -> list[JobSpec]:
    """Placement order: priority first (higher first), then registration order."""
    return [spec for _, spec in sorted(jobs, key=lambda t: (-t[1].priority, t[0]))]
