"""The placement search of traffic engineering: given flows, their demands, the load
that is not theirs and the paths in service, which path each flow should take.

Array-based (resources numbered by the topology) because a rebalancing pass of a
32-spine, 64-leaf fabric places thousands of flows within a control interval.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from controller.core.te import Flow, FlowKey, Path, Resource, TeTopology


def place(flows: list[Flow], demand: Mapping[FlowKey, float], base: Mapping[Resource, float],
          topo: TeTopology, current: Mapping[FlowKey, Path | None],
          budget: int = 400_000
          ) -> tuple[dict[FlowKey, Path], tuple[float, float], tuple[float, float]]:
    """A placement of ``flows`` on top of the ``base`` load.

    Greedy (priority classes first, then by demand, each flow on the path whose worse
    link ends up least loaded), then local search that moves single flows while that
    lowers the sum of squared utilizations. While the evaluation ``budget`` allows, the
    search restarts from shuffled orders (priority classes still first) and keeps the
    best result: (overload, worst link, flows moved), so that ties keep flows in place.
    Returns the placement and (total overload in link rates, worst utilization) of the
    current placement and of the new one.
    """
    index, caps = topo.index, topo.caps
    options: list[list[tuple[Path, int, int]]] = []
    cur: list[int] = []
    for f in flows:
        opts, pos = topo.options(f.src_leaf, f.dst_leaf)
        options.append(opts)
        now_on = current.get(f.key)
        cur.append(pos.get(now_on, -1) if now_on is not None else -1)
    base_load = [0.0] * len(caps)
    for r, v in base.items():
        i = index.get(r)
        if i is not None:
            base_load[i] = v
    dem = [demand[f.key] for f in flows]
    first = sorted(range(len(flows)), key=lambda i: (not flows[i].priority, -dem[i],
                                                     flows[i].key))
    work = sum(len(o) for o in options) or 1
    restarts = max(1, min(24, budget // (4 * work)))
    rng = random.Random(len(flows))
    best_choice: list[int] | None = None
    best_score = (float("inf"), float("inf"), 0)
    for attempt in range(restarts):
        order = first
        if attempt:
            prio = [i for i in first if flows[i].priority]
            rest = [i for i in first if not flows[i].priority]
            rng.shuffle(prio)
            rng.shuffle(rest)
            order = prio + rest
        choice, load = _greedy(order, options, dem, cur, caps, list(base_load))
        _local_search(order, options, dem, choice, caps, load)
        over, worst = _score(load, caps)
        moved = sum(1 for a, b in zip(choice, cur, strict=True) if a != b)
        score = (over, worst, moved)
        if score < best_score:
            best_choice, best_score = choice, score
        if over < 1e-9 and attempt:
            break
    assert best_choice is not None
    best_score = _keep_in_place(best_choice, cur, options, dem, caps, base_load, best_score)
    before = _score(_load_of(cur, options, dem, base_load), caps)
    plan = {flows[i].key: options[i][j][0] for i, j in enumerate(best_choice) if j >= 0}
    return plan, before, best_score[:2]


def _load_of(choice: list[int], options: list[list[tuple[Path, int, int]]],
             dem: list[float], base_load: list[float]) -> list[float]:
    """Each resource's load with every flow on its chosen option (-1: none)."""
    load = list(base_load)
    for i, j in enumerate(choice):
        if j >= 0:
            _, u, w = options[i][j]
            load[u] += dem[i]
            load[w] += dem[i]
    return load


def _keep_in_place(choice: list[int], cur: list[int],
                   options: list[list[tuple[Path, int, int]]], dem: list[float],
                   caps: list[float], base_load: list[float],
                   score: tuple[float, float, int]) -> tuple[float, float, int]:
    """Put back on its current path every flow the search moved whose return raises
    neither the worst utilization nor any overload of the placement found (smallest
    flows first, since they fit most often): a pass moves only the flows that buy the
    improvement, not every flow whose place in a reshuffle happened to differ."""
    load = _load_of(choice, options, dem, base_load)
    worst = score[1]
    moved = [i for i, j in enumerate(choice) if j != cur[i] and cur[i] >= 0 and j >= 0]
    moved.sort(key=lambda i: dem[i])
    for i in moved:
        d = dem[i]
        _, u0, w0 = options[i][choice[i]]
        _, u, w = options[i][cur[i]]
        load[u0] -= d
        load[w0] -= d
        # no new overload where it returns (where it leaves, load only falls)
        fits = all(load[r] + d <= min(worst, 1.0) * caps[r] * (1 + 1e-9) for r in {u, w})
        if fits:
            choice[i] = cur[i]
            load[u] += d
            load[w] += d
        else:
            load[u0] += d
            load[w0] += d
    over, worst = _score(load, caps)
    return over, worst, sum(1 for a, b in zip(choice, cur, strict=True) if a != b)


def _score(load: list[float], caps: list[float]) -> tuple[float, float]:
    """(total overload in link rates, worst utilization)."""
    over = sum(max(0.0, v - c) / c for v, c in zip(load, caps, strict=True))
    worst = max((v / c for v, c in zip(load, caps, strict=True)), default=0.0)
    return round(over, 6), round(worst, 6)


def _greedy(order: list[int], options: list[list[tuple[Path, int, int]]], dem: list[float],
            cur: list[int], caps: list[float], load: list[float]) -> tuple[list[int], list[float]]:
    choice = [-1] * len(options)
    for i in order:
        opts = options[i]
        if not opts:
            continue
        d = dem[i]
        best_j, bm, bs, bc = -1, float("inf"), float("inf"), 2
        for j, (_, u, w) in enumerate(opts):
            lu = (load[u] + d) / caps[u]
            lw = (load[w] + d) / caps[w]
            m = lu if lu > lw else lw
            s = lu + lw
            c = 0 if j == cur[i] else 1
            if m < bm - 1e-9 or (m < bm + 1e-9 and (s < bs - 1e-9 or
                                                    (s < bs + 1e-9 and c < bc))):
                best_j, bm, bs, bc = j, m, s, c
        choice[i] = best_j
        _, u, w = opts[best_j]
        load[u] += d
        load[w] += d
    return choice, load


def _local_search(order: list[int], options: list[list[tuple[Path, int, int]]],
                  dem: list[float], choice: list[int], caps: list[float], load: list[float],
                  rounds: int = 4) -> None:
    """Move single flows while that lowers the sum of squared utilizations. Only flows
    on the hottest links are tried: moving anything else cannot lower the worst link."""
    for _ in range(rounds):
        worst = max((v / c for v, c in zip(load, caps, strict=True)), default=0.0)
        hot = 0.8 * worst
        improved = False
        for i in order:
            opts = options[i]
            if len(opts) < 2 or choice[i] < 0:
                continue
            d = dem[i]
            _, u0, w0 = opts[choice[i]]
            cu0, cw0 = caps[u0], caps[w0]
            if load[u0] / cu0 < hot and load[w0] / cw0 < hot:
                continue
            off = ((load[u0] / cu0) ** 2 - ((load[u0] - d) / cu0) ** 2)
            off_w = ((load[w0] / cw0) ** 2 - ((load[w0] - d) / cw0) ** 2)
            for j, (_, u, w) in enumerate(opts):
                if j == choice[i]:
                    continue
                cu, cw = caps[u], caps[w]
                on = ((load[u] + d) / cu) ** 2 - (load[u] / cu) ** 2
                if w == w0:  # same spine, other uplink: the spine side does not change
                    gain = off - on
                else:
                    on += ((load[w] + d) / cw) ** 2 - (load[w] / cw) ** 2
                    gain = off + off_w - on
                if gain > 1e-9:
                    load[u0] -= d
                    load[w0] -= d
                    load[u] += d
                    load[w] += d
                    choice[i] = j
                    improved = True
                    break
        if not improved:
            break
