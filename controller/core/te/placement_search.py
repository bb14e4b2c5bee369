"""The placement search of traffic engineering: given flows, their demands, the load
that is not theirs and the paths in service, which path each flow should take (for a
rebalancing pass, :mod:`.rebalance`, and for the pairs of training jobs).

Array-based (resources numbered by the topology) because a rebalancing pass of a
32-spine, 64-leaf fabric places thousands of flows within a control interval.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np

from controller.core.te.greedy import greedy, greedy_by_plane
from controller.core.te.option_arrays import BIG, PADS, TIE, OptionArrays
from controller.core.te.topology import Resource, SpinePath, TeTopology

if TYPE_CHECKING:
    from controller.core.te.flows import Flow, FlowKey


def place(flows: list[Flow], demand: Mapping[FlowKey, float] | Sequence[float],
          base: Mapping[Resource, float], topo: TeTopology,
          current: Mapping[FlowKey, SpinePath | None] | None = None,
          budget: int = 400_000, moves_only: bool = False,
          own: list[float] | None = None
          ) -> tuple[dict[FlowKey, SpinePath], tuple[float, float], tuple[float, float]]:
    """A placement of ``flows`` on top of the ``base`` load.

    Greedy (priority classes first, then by demand, each flow on the path whose worse
    link ends up least loaded), then local search that moves single flows while that
    lowers the sum of squared utilizations. While the evaluation ``budget`` allows, the
    search restarts from shuffled orders (priority classes still first) and keeps the
    best result: (overload, worst link, flows moved), so that ties keep flows in place.
    ``demand`` is by flow key, or a sequence in the order of ``flows``. Where each flow
    is now comes from ``current``, or without it from the flows' own ``path``. With
    ``own`` (each flow's measured rate), ``base`` is the measured load, which still
    holds each flow on its current path: that is taken out first.

    When every flow has a current path and that placement is as good as the one
    found, it is kept: nothing moves for nothing.

    Returns the placement (with ``moves_only``, of the flows whose path changes) and
    (total overload in link rates, worst utilization) of the current placement and of
    the new one.
    """
    caps = topo.caps
    dem = ([demand[f.key] for f in flows] if isinstance(demand, Mapping)
           else list(demand))
    arrays = OptionArrays(flows, topo, dem, topo.load_list(base))
    cur = arrays.positions([f.path for f in flows] if current is None
                           else [current.get(f.key) for f in flows], topo)
    if own is not None:
        arrays.take_out(flows, own, cur, topo.index)
    # priority classes first, then by demand (then as given: the order is the caller's)
    prio = np.array([f.priority for f in flows], dtype=bool)
    first = np.lexsort((-arrays.dem, ~prio)).tolist() if flows else []
    work = sum(arrays.count) or 1
    restarts = max(1, min(24, budget // (4 * work)))
    rng = random.Random(len(flows))
    best_choice: list[int] | None = None
    best_score = (float("inf"), float("inf"), 0)
    for attempt in range(restarts):
        order = first
        if attempt:
            is_prio = prio.tolist()
            top = [i for i in first if is_prio[i]]
            rest = [i for i in first if not is_prio[i]]
            rng.shuffle(top)
            rng.shuffle(rest)
            order = top + rest
        choice, load = (greedy_by_plane(order, arrays, cur, topo, TIE) if topo.columns > 2
                        else greedy(order, arrays, cur, TIE))
        # (three tiers: a quarter of it, ~0.1 s; nearly every flow is hot when the
        # spine tier is oversubscribed, and each weighs 64 paths or more)
        _local_search(order, arrays, dem, choice, caps, load,
                      budget=budget // 4 if topo.columns > 2 else budget)
        over, worst = _score(load, caps)
        moved = sum(1 for a, b in zip(choice, cur, strict=True) if a != b)
        score = (over, worst, moved)
        if score < best_score:
            best_choice, best_score = choice, score
        if over < 1e-9 and attempt:
            break
    assert best_choice is not None
    best_score = _keep_in_place(best_choice, cur, arrays, dem, caps,
                                arrays.load_of(best_choice), best_score)
    before = _score(arrays.load_of(cur), caps)
    if before <= best_score[:2] and all(j >= 0 for j in cur):
        # (where every flow is now is as good: the search, which starts from greedy
        # orders, may have found only another placement of equal or higher cost)
        best_choice, best_score = list(cur), (*before, 0)
    plan = {}
    for i, j in enumerate(best_choice):
        if j >= 0 and not (moves_only and j == cur[i]):
            f = flows[i]
            plan[f.key] = topo.options(f.src_leaf, f.dst_leaf)[j][0]
    return plan, before, best_score[:2]


def _keep_in_place(choice: list[int], cur: list[int], rows: OptionArrays, dem: list[float],
                   caps: list[float], load: list[float],
                   score: tuple[float, float, int]) -> tuple[float, float, int]:
    """Put back on its current path every flow the search moved whose return raises
    neither the worst utilization nor any overload of the placement found (smallest
    flows first, since they fit most often): a pass moves only the flows that buy the
    improvement, not every flow whose place in a reshuffle happened to differ.
    ``load`` is that of ``choice``, and is updated."""
    limit = min(score[1], 1.0) * (1 + 1e-9)
    moved = [i for i, j in enumerate(choice) if j != cur[i] and cur[i] >= 0 and j >= 0]
    moved.sort(key=dem.__getitem__)
    at = np.array(moved, dtype=np.intp)
    to, back = np.array(choice, dtype=np.intp)[at], np.array(cur, dtype=np.intp)[at]
    real = len(caps)
    # (with the pads: "nothing" has no limit, and what it gathers is dropped)
    ext, room = [*load, BIG, 0.0], [limit * c for c in caps] + [0.0, float("inf")]
    gone, home = rows.stack(at, to).tolist(), rows.stack(at, back).tolist()
    for i, old, new in zip(moved, gone, home, strict=True):
        d = dem[i]
        for r in old:
            ext[r] -= d
        # no new overload where it returns (where it leaves, load only falls)
        if all(ext[r] + d <= room[r] for r in new):
            choice[i] = cur[i]
            for r in new:
                ext[r] += d
        else:
            for r in old:
                ext[r] += d
    load[:] = ext[:real]
    over, worst = _score(load, caps)
    return over, worst, sum(1 for a, b in zip(choice, cur, strict=True) if a != b)


def _score(load: list[float], caps: list[float]) -> tuple[float, float]:
    """(total overload in link rates, worst utilization)."""
    if not load:
        return 0.0, 0.0
    util = np.array(load) / np.array(caps)
    over = float(np.maximum(0.0, util - 1.0).sum())
    return round(over, 6), round(float(util.max()), 6)




def _local_search(order: list[int], rows: OptionArrays, dem: list[float], choice: list[int],
                  caps: list[float], load: list[float], rounds: int = 4,
                  budget: int = 1 << 62) -> None:
    """Move single flows while that lowers the sum of squared utilizations (each to the
    first of its options that does). Only flows on the hottest links as a round starts
    are tried: moving anything else cannot lower the worst link. At most ``budget``
    options are weighed in all (an overloaded fabric makes nearly every flow hot)."""
    real = len(caps)
    wide = len(rows.cols) > 2
    ext = np.array([*load, BIG, 0.0]) if wide else load  # (three tiers: with the pads)
    for _ in range(rounds):
        util = np.array(ext[:real]) / rows.cap[:real]
        worst = float(util.max()) if real else 0.0
        hot = 0.8 * worst
        pick = np.array(choice, dtype=np.intp)
        line = np.arange(len(pick))
        hot_at = np.append(util >= hot, [False] * PADS)  # (the padding is never hot)
        on_hot = np.zeros(len(pick), dtype=bool)
        for c in rows.cols:
            on_hot |= hot_at[c[line, pick]]
        is_tried = ((pick >= 0) & (rows.count_a >= 2) & on_hot).tolist()
        improved = False
        for i in order:
            if not is_tried[i]:
                continue
            budget -= rows.count[i]
            if budget < 0:
                break
            move = (_better_wide(rows, i, choice[i], dem[i], ext, hot) if wide else
                    _better_two(rows, i, choice[i], dem[i], caps, ext, hot))
            if move >= 0:
                choice[i] = move
                improved = True
        if not improved or budget < 0:
            break
    if wide:
        load[:] = ext[:real].tolist()


def _better_two(rows: OptionArrays, i: int, now: int, d: float, caps: list[float],
                load: list[float], hot: float) -> int:
    """Two tiers: the first option of flow ``i`` (on option ``now``, demand ``d``) whose
    uplink and spine link gain more than they cost, moved to (``load`` updated), or -1.
    (Plain Python: an option is two links.)"""
    n = rows.count[i]
    ups, downs = rows.ups[i, :n].tolist(), rows.downs[i, :n].tolist()
    u0, w0 = ups[now], downs[now]
    cu0, cw0 = caps[u0], caps[w0]
    if load[u0] / cu0 < hot and load[w0] / cw0 < hot:
        return -1
    off = ((load[u0] / cu0) ** 2 - ((load[u0] - d) / cu0) ** 2)
    off_w = ((load[w0] / cw0) ** 2 - ((load[w0] - d) / cw0) ** 2)
    for j, (u, w) in enumerate(zip(ups, downs, strict=True)):
        if j == now:
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
            return j
    return -1


def _better_wide(rows: OptionArrays, i: int, now: int, d: float, ext: np.ndarray,
                 hot: float) -> int:
    """:func:`_better_two` over up to four links an option (three tiers), every option
    weighed in one array operation; ``ext`` holds the loads and the pads."""
    k, width, cap = len(rows.cols), rows.width, rows.cap
    opts = rows.both[i].reshape(k, width)[:, :rows.count[i]]  # (hop, option)
    old = opts[:, now]
    lo, co = ext[old], cap[old]
    if (lo / co < hot).all():
        return -1
    off = (lo / co) ** 2 - ((lo - d) / co) ** 2  # (what leaving each link gains)
    lr, cr = ext[opts], cap[opts]
    on = ((lr + d) / cr) ** 2 - (lr / cr) ** 2  # (what joining each costs)
    same = opts[:, :, None] == old[None, None, :]  # a link it keeps
    gain = off.sum() - (same * off).sum(axis=(0, 2)) - np.where(
        same.any(axis=2), 0.0, on).sum(axis=0)
    gain[now] = 0.0
    better = np.nonzero(gain > 1e-9)[0]
    if not len(better):
        return -1
    j = int(better[0])
    ext[old] -= d
    ext[opts[:, j]] += d
    ext[-1] = 0.0
    return j
