"""The greedy of the placement search: each flow in turn on the option whose worst link
ends up least loaded, then (by a hair, ``tie``) the lesser sum of its links, then its
current option, then the first.

Exact, but batched: a flow's choice depends only on the earlier flows that may load one
of its links, so the flows are made into waves, each flow one wave after the latest
earlier flow it shares a key with (something that names the links both may load), and
a wave's choices are made in one array operation (:func:`in_waves`). Over two tiers the
keys are the flows' leaves (:func:`greedy`: on 64 spines and 256 leaves with 20,000
flows, ~150 waves of ~130 flows).

Over three tiers (:func:`greedy_by_plane`), a path between pods is a spine plane (the
ingress leaf's uplink and, with one egress spine, the egress spine's link down to the
leaf) and, within the plane, a super-spine (the ingress spine's uplink and the
super-spine's links down to the egress spine). Choosing both at once would make every
flow between pods wait for every earlier flow from or to either of its pods, since all
of them may take any of the pods' spine uplinks: some 2,500 waves for 20,000 flows over
8 pods. In two steps, the flows of a step share links only through their leaves (the
plane) or through one spine (the super-spine), and each step takes a few hundred waves:

1. every flow, in order, on the option whose leaf links end up least loaded, an option
   through a super-spine weighed also by its spine-tier links as the pass found them
   (this step adds nothing to those): a path within a pod is then final, and between
   pods the plane is;
2. every flow between pods, in order, on the super-spine of its plane whose links end
   up least loaded.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from controller.core.te.option_arrays import OptionArrays

if TYPE_CHECKING:
    from controller.core.te.topology import TeTopology


def greedy(order: list[int], rows: OptionArrays, cur: list[int],
           tie: float) -> tuple[list[int], list[float]]:
    """Two tiers: the choices of the flows of ``order`` (option numbers, -1: none) and
    the load they make."""
    placed = [i for i in order if rows.count[i]]
    keys = {i: (("s", rows.leaves[i][0]), ("d", rows.leaves[i][1])) for i in placed}
    load = rows.base.copy()
    choice = [-1] * len(rows.count)
    for i, j in zip(placed, in_waves(placed, keys, rows.cols, load, rows.cap, rows.dem,
                                     np.array(cur, dtype=np.intp), tie), strict=True):
        choice[i] = j
    return choice, load[:-2].tolist()


def greedy_by_plane(order: list[int], rows: OptionArrays, cur: list[int], topo: TeTopology,
                    tie: float) -> tuple[list[int], list[float]]:
    """Three tiers, in two steps (see the module docstring): the choices and the
    load."""
    n = len(rows.count)
    load, cap, dem = rows.base.copy(), rows.cap, rows.dem
    cur_a = np.array(cur, dtype=np.intp)
    c0, c1, c2, c3 = rows.cols
    upper, lower, spine_up = topo.resource_ends
    inter = spine_up[c1]  # (flow, option) through a super-spine
    leaf_side = np.where(inter, c3, c1)  # what the option loads below the spines
    with np.errstate(invalid="ignore"):  # (a pad's 1e30 / 1.0 and 0 / inf: no NaN)
        floor = np.where(inter, np.maximum(
            np.round((rows.base[c1] + rows.dem[:, None]) / cap[c1], 9),
            np.round((rows.base[c2] + rows.dem[:, None]) / cap[c2], 9)), 0.0)
    placed = [i for i in order if rows.count[i]]
    keys = {i: (("s", rows.leaves[i][0]), ("d", rows.leaves[i][1])) for i in placed}
    first = in_waves(placed, keys, [c0, leaf_side], load, cap, dem, cur_a, tie,
                      floor=floor)
    choice = [-1] * n
    across = []
    for i, j in zip(placed, first, strict=True):
        choice[i] = j
        if inter[i, j]:
            across.append(i)
    if across:
        at = np.array(across, dtype=np.intp)
        pick = np.array([choice[i] for i in across], dtype=np.intp)
        allowed = np.zeros_like(inter)
        allowed[at] = ((c0[at] == c0[at, pick][:, None]) & (c3[at] == c3[at, pick][:, None])
                       & inter[at])
        banned = np.where(allowed, 0.0, np.inf)
        ins, outs = upper[c1[at, pick]].tolist(), lower[c2[at, pick]].tolist()
        keys = {i: (("in", a), ("out", b)) if b > 0 else (("in", a),)
                for i, a, b in zip(across, ins, outs, strict=True)}
        second = in_waves(across, keys, [c1, c2], load, cap, dem, cur_a, tie,
                          floor=banned)
        for i, j in zip(across, second, strict=True):
            choice[i] = j
    return choice, load[:-2].tolist()


def in_waves(members: list[int], keys: dict[int, tuple], cols: list[np.ndarray],
             load: np.ndarray, cap: np.ndarray, dem: np.ndarray, cur: np.ndarray,
             tie: float, floor: np.ndarray | None = None) -> list[int]:
    """Each flow of ``members`` in turn on the option whose worst resource of ``cols``
    (or ``floor``, where given and higher: infinite for an option not allowed) ends up
    least loaded; ``load`` is updated. Flows that share no key share no resource of
    ``cols``: a flow waits only for the latest earlier flow with one of its keys, and a
    wave's choices are one array operation. Returns the choices, in the order of
    ``members``."""
    waves: list[list[int]] = []
    last: dict = {}
    for i in members:
        ks = keys[i]
        wave = max(last.get(x, -1) for x in ks) + 1
        for x in ks:
            last[x] = wave
        if wave == len(waves):
            waves.append([])
        waves[wave].append(i)
    flat = np.fromiter((i for w in waves for i in w), np.intp, len(members))
    k = len(cols)
    width = cols[0].shape[1]
    # (everything a wave reads, gathered once in wave order: a wave is then slices)
    res_all = np.concatenate([c[flat] for c in cols], axis=1)  # (flow, hop * option)
    cap_all, d_all = cap[res_all], dem[flat]
    d_hops = np.repeat(d_all, k)
    here_all = cur[flat]
    has_all = here_all >= 0
    here_all = np.maximum(here_all, 0)
    floor_all = None if floor is None else floor[flat]
    line = np.arange(max(map(len, waves), default=0))
    best_all = np.empty(len(flat), dtype=np.intp)
    start = 0
    for wave in waves:
        end = start + len(wave)
        m = end - start
        at = line[:m]
        res = res_all[start:end]
        util = np.round((load[res] + d_all[start:end, None]) / cap_all[start:end],
                        9).reshape(m, k, width)
        worst = util.max(axis=1)
        if floor_all is not None:
            np.maximum(worst, floor_all[start:end], out=worst)
        key = 2 * worst + tie * util.sum(axis=1)
        best = key.argmin(axis=1)
        here = here_all[start:end]
        best = np.where(has_all[start:end] & (key[at, here] == key[at, best]), here, best)
        picked = res.reshape(m, k, width)[at, :, best]  # (flow, hop)
        load[picked.ravel()] += d_hops[start * k:end * k]  # (no two flows share one)
        load[-1] = 0.0  # ("nothing" stays empty)
        best_all[start:end] = best
        start = end
    got = dict(zip(flat.tolist(), best_all.tolist(), strict=True))
    return [got[i] for i in members]
