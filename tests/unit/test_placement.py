"""The placement search's fast paths give the answers of the plain algorithms they
replace: the greedy made in waves of flows that share no leaf equals the greedy made
one flow at a time; the array form of the demand estimation equals the loop form."""

from __future__ import annotations

import random
from collections import defaultdict

import numpy as np
import pytest

from controller.core.te import (
    TCP,
    UDP,
    FlowKey,
    FlowSnapshot,
    SpinePath,
    TeTopology,
    down,
    estimate_demands,
    up,
)
from controller.core.te.greedy import greedy
from controller.core.te.option_arrays import TIE, OptionArrays


def random_fabric(rnd: random.Random) -> TeTopology:
    """Leaves with uneven uplinks (some doubled, some missing), spines that reach only
    some leaves, links of different rates."""
    spines = [1000 + i for i in range(rnd.randint(2, 6))]
    leaves = [2000 + j for j in range(rnd.randint(3, 9))]
    uplinks, cap = {}, {}
    for leaf in leaves:
        ups, port = [], 1
        for spine in spines:
            for _ in range(rnd.choice((0, 1, 1, 1, 2))):
                ups.append((port, spine))
                cap[up(leaf, port)] = rnd.choice((1e9, 1e10, 1e10))
                port += 1
        uplinks[leaf] = tuple(ups)
    reach = {}
    for spine in spines:
        reach[spine] = frozenset(leaf for leaf in leaves if rnd.random() < 0.85)
        for leaf in reach[spine]:
            cap[down(spine, leaf)] = rnd.choice((1e9, 1e10, 1e10))
    return TeTopology(uplinks, reach, cap, host_rate=1e10)


def one_at_a_time(order: list[int], rows: OptionArrays, cur: list[int]) -> list[int]:
    """The greedy as its definition reads: each flow in turn, on the loads so far."""
    load = rows.base.copy()
    choice = [-1] * len(rows.count)
    for i in order:
        if not rows.count[i]:
            continue
        ups, downs, d = rows.ups[i], rows.downs[i], rows.dem[i]
        a = np.round((load[ups] + d) / rows.cap[ups], 9)
        b = np.round((load[downs] + d) / rows.cap[downs], 9)
        key = np.abs(a - b) + (a + b) * (1 + TIE)
        j = int(key.argmin())
        if cur[i] >= 0 and key[cur[i]] == key[j]:
            j = cur[i]
        choice[i] = j
        load[ups[j]] += d
        load[downs[j]] += d
    return choice


@pytest.mark.parametrize("seed", range(40))
def test_the_greedy_in_waves_chooses_as_one_flow_at_a_time(seed):
    rnd = random.Random(seed)
    topo = random_fabric(rnd)
    leaves = list(topo.uplinks)
    flows = []
    for n in range(rnd.randint(1, 120)):
        a, b = rnd.sample(leaves, 2) if rnd.random() < 0.95 else (leaves[0], leaves[0])
        flows.append(FlowSnapshot(FlowKey("10.0.0.1", "10.0.0.2", TCP, n + 1, 80), a, b,
                                  rnd.random() < 0.2, 0.0, None))
    # demands of a few sizes, so that loads often tie
    dem = [rnd.choice((1e8, 2.5e8, 5e8, 1e9, 3e9)) for _ in flows]
    base = [rnd.choice((0.0, 0.0, 1e8, 7e8)) for _ in topo.caps]
    rows = OptionArrays(flows, topo, dem, base)
    cur = [rnd.randrange(-1, c) if c else -1 for c in rows.count]
    order = sorted(range(len(flows)), key=lambda i: (not flows[i].priority, -dem[i]))
    got, load = greedy(order, rows, cur, TIE)
    assert got == one_at_a_time(order, rows, cur)
    assert load == pytest.approx(rows.load_of(got), rel=1e-12)
    assert all(j >= 0 for i, j in enumerate(got) if rows.count[i])


def demands_by_loops(flows: list[FlowSnapshot], host_rate: float) -> dict:
    """The demand estimation written as plain loops (what the array form must match)."""
    udp = [f for f in flows if f.key.proto != TCP]
    elastic = [f for f in flows if f.key.proto == TCP]
    demand = {f.key: min(f.rate_bps, host_rate) for f in udp}
    fixed_out: defaultdict[str, float] = defaultdict(float)
    fixed_in: defaultdict[str, float] = defaultdict(float)
    for f in udp:
        fixed_out[f.key.src_ip] += demand[f.key]
        fixed_in[f.key.dst_ip] += demand[f.key]
    by_src: dict = {}
    by_dst: dict = {}
    for i, f in enumerate(elastic):
        by_src.setdefault(f.key.src_ip, []).append(i)
        by_dst.setdefault(f.key.dst_ip, []).append(i)
    est, limited, tol = [0.0] * len(elastic), [False] * len(elastic), host_rate * 1e-6
    for _ in range(20):
        changed = False
        for src, idx in by_src.items():
            free = [i for i in idx if not limited[i]]
            if not free:
                continue
            conv = sum(est[i] for i in idx if limited[i])
            share = max(0.0, host_rate - fixed_out.get(src, 0.0) - conv) / len(free)
            for i in free:
                if abs(est[i] - share) > tol:
                    est[i], changed = share, True
        for dst, idx in by_dst.items():
            room = max(0.0, host_rate - fixed_in.get(dst, 0.0))
            if sum(est[i] for i in idx) <= room + tol:
                continue
            queue, left = sorted(idx, key=lambda i: est[i]), room
            while queue:  # lowest first: below the fair share keeps, above is cut to it
                i = queue.pop(0)
                fair = left / (len(queue) + 1)
                keep = est[i] <= fair and not limited[i]
                if not keep and (not limited[i] or abs(est[i] - fair) > tol):
                    est[i], limited[i], changed = fair, True, True
                left -= est[i] if keep else fair
        if not changed:
            break
    for i, f in enumerate(elastic):
        demand[f.key] = max(est[i], f.rate_bps)
    return demand


@pytest.mark.parametrize("seed", range(30))
def test_the_demand_estimate_in_arrays_equals_the_loops(seed):
    rnd = random.Random(seed)
    hosts = [f"10.0.{h // 200}.{h % 200 + 1}" for h in range(rnd.randint(2, 40))]
    flows = []
    for n in range(rnd.randint(1, 150)):
        a, b = rnd.sample(hosts, 2)
        proto = TCP if rnd.random() < 0.8 else UDP
        flows.append(FlowSnapshot(FlowKey(a, b, proto, n + 1, 80), 2001, 2002, False,
                                  rnd.uniform(0.0, 1.2e10), SpinePath(2001, 1, 1001)))
    got = estimate_demands(flows, 1e10)
    want = demands_by_loops(flows, 1e10)
    assert got.keys() == want.keys()
    for k, v in want.items():
        assert got[k] == pytest.approx(v, rel=1e-9, abs=1e-3), k


def test_a_flows_current_option_is_found_by_its_uplink_and_only_while_it_is_cabled_so():
    uplinks = {2001: ((1, 1001), (2, 1002), (3, 1002)), 2002: ((1, 1001), (2, 1002))}
    reach = {1001: frozenset({2001, 2002}), 1002: frozenset({2002})}
    cap = {r: 1e9 for leaf, ups in uplinks.items() for p, _ in ups for r in [up(leaf, p)]}
    cap.update({down(s, leaf): 1e9 for s, leaves in reach.items() for leaf in leaves})
    topo = TeTopology(uplinks, reach, cap, host_rate=1e9)
    flows = [FlowSnapshot(FlowKey("10.0.0.1", "10.0.0.2", TCP, n + 1, 80), src, dst,
                          False, 0.0, None) for n, (src, dst) in enumerate(
                              [(2001, 2002)] * 5 + [(2002, 2001)] * 2)]
    rows = OptionArrays(flows, topo, [1.0] * len(flows), [0.0] * len(topo.caps))
    got = rows.positions([
        SpinePath(2001, 1, 1001),  # the first option
        SpinePath(2001, 3, 1002),  # the second uplink to 1002: the third option
        SpinePath(2001, 2, 1001),  # port 2 leads to 1002 now (re-cabled): not in service
        SpinePath(2001, 9, 1001),  # no such uplink
        None,  # nowhere yet
        SpinePath(2002, 1, 1001),  # 1001 reaches 2001: the only option
        SpinePath(2002, 2, 1002),  # 1002 does not reach 2001
    ], topo)
    assert got == [0, 2, -1, -1, -1, 0, -1]
    assert rows.count == [3, 3, 3, 3, 3, 1, 1]


def test_a_pass_reads_only_large_active_flows_and_moves_only_settled_unpinned_ones():
    from controller.core.te import RebalancePass, TeSettings, TrafficEngineer

    uplinks = {leaf: ((1, 1001), (2, 1002)) for leaf in (2001, 2002)}
    reach = {1001: frozenset({2001, 2002}), 1002: frozenset({2001, 2002})}
    cap = {up(leaf, p): 1e9 for leaf in uplinks for p in (1, 2)}
    cap.update({down(s, leaf): 1e9 for s in reach for leaf in uplinks})
    topo = TeTopology(uplinks, reach, cap, host_rate=1e9)
    te = TrafficEngineer(TeSettings(large_flow_fraction=0.1, min_move_interval=5.0))
    flows = {}
    for name, rate, last, pinned, moved_at, path in [
            ("big", 5e8, 5e8, False, 0.0, SpinePath(2001, 1, 1001)),
            ("small", 5e7, 5e7, False, 0.0, SpinePath(2001, 1, 1001)),
            ("paused", 5e8, 1e6, False, 0.0, SpinePath(2001, 1, 1001)),  # stopped sending
            ("fresh", 5e8, None, False, 0.0, SpinePath(2001, 2, 1002)),  # one reading so far
            ("pinned", 5e8, 5e8, True, 0.0, SpinePath(2001, 1, 1001)),
            ("just-moved", 5e8, 5e8, False, 8.0, SpinePath(2001, 2, 1002)),
            ("unplaced", 5e8, 5e8, False, 0.0, None)]:
        f = te.new_flow(FlowKey("10.0.0.1", "10.0.0.2", TCP, len(flows) + 1, 80),
                        2001, 2002, topo, {}, 0.0)
        f.rate_bps, f.last_bps, f.operator, f.moved_at, f.path = (
            rate, last, pinned, moved_at, path)
        flows[f.key] = name
    job = RebalancePass(tuple(te.flows.values()), te.settings, {}, topo, 10.0)
    assert [flows[f.key] for f in job.large] == ["big", "fresh", "pinned", "just-moved"]
    assert [flows[f.key] for f in job.flows] == ["big", "fresh"]
    assert [flows[f.key] for f in job.large_flows] == [flows[f.key] for f in job.large]
    assert all(live.key == f.key and live is te.flows[f.key]
               for live, f in zip(job.large_flows, job.large, strict=True))
