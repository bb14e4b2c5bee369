"""The demand of the large flows: which flows a pass gives a demand
(:func:`select_demand_flows`, one rule for the rebalancing and the congestion pass), and
what each would carry if its path let it (:func:`demand_list`, Hedera's estimation: TCP
flows grow to a fair share of their hosts' NICs, UDP flows keep their rate).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from functools import partial
from itertools import repeat
from operator import attrgetter, is_

import numpy as np

from controller.core.te.flows import TCP, Flow, FlowKey, FlowSnapshot
from controller.core.te.settings import TeSettings

# a flow read once, as a row: the fields of a FlowSnapshot first, then what selects it
FLOW_ROW = attrgetter("key", "src_leaf", "dst_leaf", "priority", "rate_bps", "path",
                      "last_bps", "operator", "moved_at", "peak_bps", "last_active",
                      "bytes_at")
snapshot_of_row = partial(tuple.__new__, FlowSnapshot)  # (from a row's first six fields)


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
    rows = list(map(FLOW_ROW, candidates))  # (in C)
    (_, _, _, prio, rate, path, last, _, _, peak, active, read_at) = zip(*rows, strict=True)
    rate_a = np.array(rate, dtype=float)
    last_a = np.array(last, dtype=float)  # (None: nan, never below anything)
    no_path = np.fromiter(map(is_, path, repeat(None)), bool, len(rows))
    busy = np.array(prio, dtype=bool) & (np.array(peak, dtype=float) >= large_rate) & (
        np.minimum(now, np.array(read_at, dtype=float))
        - np.array(active, dtype=float) <= s.active_window)
    keep = ~no_path & (((rate_a >= large_rate) & ~(last_a < 0.5 * large_rate)) | busy)
    return rows, np.nonzero(keep)[0]


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


def own_load(flow: Flow | FlowSnapshot, demand: float) -> float:
    """What a flow is taken to put on the measured load of its links: its rate, and a
    priority-class flow at least its demand. The port counters and the flow's own are
    read at other moments; for a collective's flow, which comes in bursts, the port
    often shows more of it than its own counter did, and that excess, left in the links'
    other load with the flow's demand added on top, is an overload nowhere but in the
    model (passes then moved whole rings for it)."""
    return max(flow.rate_bps, demand) if flow.priority else flow.rate_bps
