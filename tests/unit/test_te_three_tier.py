"""Traffic engineering over three tiers: a flow between pods is placed on a path of
(uplink, spine, spine uplink, super-spine), held there by a pin at its ingress leaf and
one at its ingress spine, moved off a dead link, pinned by an operator to a
super-spine; the array-based search weighs the four links of such a path."""

from __future__ import annotations

import random

import numpy as np
import pytest

from controller.core.model.fabric_model import Port
from controller.core.settings import CoreSettings
from controller.core.te import TCP, FlowKey, FlowSnapshot, TeSettings, TeTopology, down, up
from controller.core.te.greedy import greedy_by_plane
from controller.core.te.option_arrays import TIE, OptionArrays
from controller.core.te.topology import resources
from tests.unit.dataplane import host, with_hosts
from tests.unit.fakefabric import ip_frame, three_tier


def fabric(pods=2, leaves=2, spines=2, supers=2, per_leaf=2):
    fab = three_tier(pods, leaves, spines, supers, per_leaf,
                     CoreSettings(te=TeSettings(), link_speed_bps=1e9))
    dp, hosts = with_hosts(fab, per_leaf)
    return fab, dp, hosts


def start(fab, hosts, a: int, b: int, sport: int = 40000):
    """Host ``a`` opens a flow to host ``b``: its first packet reaches the controller."""
    src = hosts[a]
    fab.deliver(fab.core.traffic.flow_seen(src[2], src[3],
                                           ip_frame(host(a), host(b), sport, 5201), fab.now))
    return fab.core.traffic.te.flows[FlowKey(host(a)[1], host(b)[1], TCP, sport, 5201)]


def crossed(trace) -> list[int]:
    return [h.dpid for h in trace.hops if h.out_port != "controller"]


def test_a_flow_between_pods_is_placed_on_a_super_spine_and_its_packets_follow():
    fab, dp, hosts = fabric()
    seen = set()
    for n in range(8):
        flow = start(fab, hosts, 1, 7, sport=40000 + n)  # leaf 2001 (pod 1) -> 2004 (pod 2)
        p = flow.path
        assert p is not None and p.super_spine in fab.supers, p
        assert p.egress in (1003, 1004) and p.spine in (1001, 1002)
        dp.sync()
        t = dp.send(hosts, 1, 7, sport=40000 + n, dport=5201)
        assert t.delivered == [hosts[7][2:]]
        assert crossed(t) == [2001, p.spine, p.super_spine, p.egress, 2004], t.hops
        seen.add(p.super_spine)
    assert seen == set(fab.supers)  # (new flows spread over the four)
    # a flow within a pod takes no super-spine, and its spine holds no pin for it
    flow = start(fab, hosts, 1, 3)
    assert flow.path.super_spine == 0 and flow.path.switches == (2001,)
    dp.sync()
    assert crossed(dp.send(hosts, 1, 3, sport=40000, dport=5201)) == [2001, flow.path.spine,
                                                                        2002]


def test_an_operator_pins_a_flow_between_pods_to_each_super_spine_in_turn():
    fab, dp, hosts = fabric()
    key = FlowKey(host(2)[1], host(5)[1], TCP, 41000, 5201)
    for ss in fab.supers:
        fab.deliver(fab.core.traffic.set_pins(fab.core.traffic.pins_with(key, ss), fab.now))
        dp.sync()
        said = [e.message for e in fab.core.take_events() if e.kind == "pin"]
        assert f"pinned to super-spine {ss} (spine " in said[-1], said
        t = dp.send(hosts, 2, 5, sport=41000, dport=5201)
        assert t.delivered == [hosts[5][2:]]
        assert ss in crossed(t) and not set(fab.supers) - {ss} & set(crossed(t)), t.hops
    # unpinned: the pins at the leaf and at the spine both go
    fab.deliver(fab.core.traffic.set_pins(fab.core.traffic.pins_without(key), fab.now))
    dp.sync()
    assert key not in fab.core.traffic.te.flows
    for dpid in (2001, *fab.spines):
        assert not [r for r in dp.switches[dpid].flows.values()
                    if r.match == key.match()], dpid


def test_a_dead_spine_uplink_is_skipped_then_the_flow_moves_off_it():
    fab, dp, hosts = fabric()
    flow = start(fab, hosts, 1, 7)
    p = flow.path
    dp.sync()
    ss_port = next(b[1] for a, b in fab.wires.items() if a == (p.spine, p.spine_port))
    dp.link_down((p.spine, p.spine_port))
    t = dp.send(hosts, 1, 7, sport=40000, dport=5201)  # the spine's fast failover
    assert t.delivered == [hosts[7][2:]] and p.super_spine not in crossed(t), t.hops
    for dpid, port in ((p.spine, p.spine_port), (p.super_spine, ss_port)):
        fab.deliver(fab.core.port_status(dpid, Port(port, f"p{port}", up=False), False,
                                         fab.now))
    fab.advance(0.1)
    dp.sync()  # (the core re-places flows whose path is gone before it plans)
    new = fab.core.traffic.te.flows[flow.key].path
    assert new != p and (new.spine, new.spine_port) != (p.spine, p.spine_port)
    t = dp.send(hosts, 1, 7, sport=40000, dport=5201)
    assert t.delivered == [hosts[7][2:]]
    assert crossed(t) == [2001, new.spine, new.super_spine, new.egress, 2004]
    # a move to another spine takes the old spine's pin away
    if new.spine != p.spine:
        assert not [r for r in dp.switches[p.spine].flows.values()
                    if r.match == flow.key.match()]


def test_a_restart_keeps_every_pin_of_a_three_tier_fabric():
    fab, dp, hosts = fabric()
    for n in range(6):
        start(fab, hosts, 1 + n % 4, 5 + n % 4, sport=42000 + n)
    dp.sync()
    assert any(r.table == 2 and r.priority == 200 for d in fab.spines
               for r in dp.switches[d].flows.values())
    again = three_tier(settings=fab.core.settings)
    dp.restart_changes_nothing(again, hosts)
    assert {k: f.path for k, f in again.core.traffic.te.flows.items()} == {
        k: f.path for k, f in fab.core.traffic.te.flows.items()}


def three_tier_topo(pods=2, leaves=2, spines=2, supers=2, rate=1e9) -> TeTopology:
    """Pods of ``leaves`` leaves (2000+) and ``spines`` spines (1000+), spine plane i of
    ``supers`` super-spines (3000+) over the i-th spine of each pod; every link ``rate``."""
    uplinks, reach, cap, spine_ups, descent = {}, {}, {}, {}, {}
    for pod in range(pods):
        ls = [2001 + pod * leaves + j for j in range(leaves)]
        ss = [1001 + pod * spines + i for i in range(spines)]
        for leaf in ls:
            uplinks[leaf] = tuple((i + 1, s) for i, s in enumerate(ss))
            for i, s in enumerate(ss):
                cap[up(leaf, i + 1)] = cap[down(s, leaf)] = rate
        for i, s in enumerate(ss):
            reach[s] = frozenset(ls)
            tops = [3001 + i * supers + k for k in range(supers)]
            spine_ups[s] = tuple((leaves + 1 + k, x) for k, x in enumerate(tops))
            for k, x in enumerate(tops):
                cap[up(s, leaves + 1 + k)] = cap[down(x, s)] = rate
                for leaf in ls:
                    descent.setdefault(x, {})[leaf] = (s,)
    return TeTopology(uplinks, reach, cap, rate, spine_ups, descent)


def test_paths_between_pods_go_up_and_down_only():
    topo = three_tier_topo()
    within = topo.paths(2001, 2002)
    assert [(p.spine, p.super_spine) for p in within] == [(1001, 0), (1002, 0)]
    across = topo.paths(2001, 2004)
    assert len(across) == 4 == topo.width
    for p in across:
        assert p.egress == 1003 + (p.spine - 1001)  # the same spine plane in pod 2
        assert resources(p, 2004) == (up(2001, p.port), up(p.spine, p.spine_port),
                                      down(p.super_spine, p.egress), down(p.egress, 2004))
    assert topo.leaves_under == {1001: (2001, 2002), 1002: (2001, 2002),
                                 1003: (2003, 2004), 1004: (2003, 2004)}
    assert topo.path_via(2001, 2004, 3003).spine == 1002


def two_steps_one_at_a_time(order: list[int], rows: OptionArrays, cur: list[int],
                            topo) -> list[int]:
    """The three-tier greedy as its definition reads (controller/core/te/greedy.py),
    one flow at a time: first every flow on the option whose leaf links end up least
    loaded (a path through a super-spine weighed also by its spine-tier links as they
    were), then every flow between pods on the super-spine of that plane whose links
    end up least loaded."""
    load, base, cap = rows.base.copy(), rows.base.copy(), rows.cap
    c0, c1, c2, c3 = rows.cols
    inter = topo.resource_ends[2][c1]
    choice = [-1] * len(rows.count)

    def util(r: int, d: float) -> float:
        return float(np.round((load[r] + d) / cap[r], 9))

    def pick(i: int, keys: list[float]) -> int:
        j = int(np.argmin(keys))
        return cur[i] if cur[i] >= 0 and keys[cur[i]] == keys[j] else j

    for i in order:
        if not rows.count[i]:
            continue
        d, keys = rows.dem[i], []
        for j in range(rows.width):
            hops = (c0[i, j], c3[i, j] if inter[i, j] else c1[i, j])
            u = [util(r, d) for r in hops]
            floor = max(float(np.round((base[r] + d) / cap[r], 9))
                        for r in (c1[i, j], c2[i, j])) if inter[i, j] else 0.0
            keys.append(2 * max(*u, floor) + TIE * sum(u))
        j = choice[i] = pick(i, keys)
        for r in (c0[i, j], c3[i, j] if inter[i, j] else c1[i, j]):
            load[r] += d
        load[-1] = 0.0
    for i in order:
        j1 = choice[i]
        if j1 < 0 or not inter[i, j1]:
            continue
        d, keys = rows.dem[i], []
        for j in range(rows.width):
            if inter[i, j] and c0[i, j] == c0[i, j1] and c3[i, j] == c3[i, j1]:
                u = [util(r, d) for r in (c1[i, j], c2[i, j])]
                keys.append(2 * max(u) + TIE * sum(u))
            else:
                keys.append(float("inf"))
        j = choice[i] = pick(i, keys)
        for r in (c1[i, j], c2[i, j]):
            load[r] += d
        load[-1] = 0.0
    return choice


@pytest.mark.parametrize("seed", range(20))
def test_the_greedy_in_waves_chooses_as_one_flow_at_a_time_over_three_tiers(seed):
    rnd = random.Random(seed)
    topo = three_tier_topo(pods=rnd.randint(2, 4), leaves=rnd.randint(1, 4),
                           spines=rnd.randint(1, 3), supers=rnd.randint(1, 3))
    leaves = list(topo.uplinks)
    flows = [FlowSnapshot(FlowKey("10.0.0.1", "10.0.0.2", TCP, n + 1, 80), *rnd.sample(
        leaves, 2), False, 0.0, None) for n in range(rnd.randint(1, 100))]
    dem = [rnd.choice((1e8, 2.5e8, 5e8)) for _ in flows]
    base = [rnd.choice((0.0, 0.0, 1e8, 7e8)) for _ in topo.caps]
    rows = OptionArrays(flows, topo, dem, base)
    cur = [rnd.randrange(-1, c) if c else -1 for c in rows.count]
    order = list(range(len(flows)))
    got, load = greedy_by_plane(order, rows, cur, topo, TIE)
    assert got == two_steps_one_at_a_time(order, rows, cur, topo)
    assert load == pytest.approx(rows.load_of(got), rel=1e-12)
    assert all(j >= 0 for i, j in enumerate(got) if rows.count[i])


def test_a_search_spreads_flows_between_pods_over_the_super_spines():
    from controller.core.te import Flow, SpinePath, place

    topo = three_tier_topo(supers=2, rate=1e9)
    stacked = SpinePath(2001, 1, 1001, 3, 3001, 1003)
    flows = [Flow(FlowKey("10.0.0.1", f"10.0.1.{n}", TCP, 1, 80), a, b,
                  path=SpinePath(a, 1, 1001, 3, 3001, 1003))
             for n, (a, b) in enumerate([(2001, 2003), (2001, 2004), (2002, 2003),
                                         (2002, 2004)])]
    plan, before, after = place(flows, [4e8] * 4, {}, topo)
    assert before[1] == pytest.approx(1.6)  # four flows of 40% up one spine link
    assert after == (0.0, pytest.approx(0.4))  # one flow on every link
    assert {p.super_spine for p in plan.values()} == {3001, 3002, 3003, 3004}
    # where each flow is now is found by its whole path, not its uplink alone
    rows = OptionArrays(flows, topo, [1.0] * 4, [0.0] * len(topo.caps))
    assert rows.positions([stacked, SpinePath(2001, 1, 1001, 4, 3002, 1003), None,
                           SpinePath(2001, 1, 1001, 9, 3002, 1003)], topo) == [0, 1, -1, -1]


def test_a_job_across_pods_holds_each_pair_on_its_super_spine_and_keeps_it_at_restart():
    from controller.core.model.job_spec import JobSpec

    fab, dp, hosts = fabric(per_leaf=1)  # hosts 1, 2 in pod 1; 3, 4 in pod 2
    spec = JobSpec("a2a", tuple(host(n)[1] for n in (1, 3, 2, 4)), "all_to_all")
    fab.deliver(fab.core.traffic.set_jobs(fab.core.traffic.jobs_with(spec), fab.now))
    dp.sync()
    paths = fab.core.traffic.jobs.placements["a2a"].paths
    by_ip = {h[1]: n for n, h in hosts.items()}
    across = {pair: p for pair, p in paths.items() if p.super_spine}
    assert len(across) == 8  # (each of the 2 x 2 x 2 directed pairs between pods)
    for (a, b), p in paths.items():
        for sport in (1000, 2000, 3000):  # every connection of the pair, whatever its hash
            t = dp.send(hosts, by_ip[a], by_ip[b], sport=sport)
            assert t.delivered == [hosts[by_ip[b]][2:]]
            want = [p.leaf, p.spine, p.super_spine, p.egress] if p.super_spine else [
                p.leaf, p.spine]
            assert crossed(t)[:-1] == want, (a, b, t.hops)
    assert len({p.super_spine for p in across.values()}) == 4
    again = three_tier(2, 2, 2, 2, 1, fab.core.settings)
    again.core.traffic.restore_jobs([spec], again.now)
    dp.restart_changes_nothing(again, hosts)
    assert again.core.traffic.jobs.placements["a2a"].paths == paths
    # each pair was found where its two entries hold it, not moved back to it
    assert [e for e in again.core.take_events() if e.kind == "job_reroute"] == []


def test_fabricctl_shows_the_super_spine_of_flows_between_pods():
    from apps.api.messages import flow_message
    from controller.cli.client import flow_dict
    from controller.cli.flows_cmd import show_flows

    fab, _, hosts = fabric()
    start(fab, hosts, 1, 7)  # between pods
    start(fab, hosts, 1, 3)  # within pod 1
    rows = [flow_dict(flow_message(f)) for f in fab.core.traffic.flows(fab.now)]
    text = show_flows(rows).splitlines()
    assert "SUPER-SPINE" in text[0]
    across = fab.core.traffic.te.flows[FlowKey(host(1)[1], host(7)[1], TCP, 40000, 5201)]
    p = across.path
    assert any(f"{p.super_spine} (port {p.spine_port})" in line and "10.0.0.7" in line
               for line in text[1:]), text
    assert any("10.0.0.3" in line and " - " in line for line in text[1:]), text
    # within one tier of spines, no such column
    assert "SUPER-SPINE" not in show_flows([r for r in rows if not r["super_spine"]])


def test_in_a_cluster_flows_between_pods_go_back_to_ecmp():
    """A spine's master may not be its leaves': between pods, a cluster leaves flows to
    the groups (within a pod, TE places them as alone)."""
    fab, dp, hosts = fabric()
    flow = start(fab, hosts, 1, 7)
    assert flow.path.super_spine
    fab.core.traffic.set_cluster_role(frozenset(fab.switches), True)
    dp.sync()  # (re-placed: no path in service between pods any more)
    assert fab.core.traffic.te_topology().paths(2001, 2004) == []
    assert not [r for d in fab.spines for r in dp.switches[d].flows.values()
                if r.table == 2 and r.priority == 200]
    t = dp.send(hosts, 1, 7, sport=40000, dport=5201)
    assert t.delivered == [hosts[7][2:]]
    assert start(fab, hosts, 1, 3, sport=40001).path is not None  # (within pod 1)


def degraded_topology(rnd: random.Random) -> TeTopology:
    """A three-tier fabric with cables missing anywhere: leaves on some spines, spines
    reaching some leaves and some super-spines, super-spines reaching a leaf through one
    spine or several (pairs with paths of both kinds, egress spines 0), mixed rates."""
    leaves = [2001 + i for i in range(rnd.randint(2, 6))]
    spines = [1001 + i for i in range(rnd.randint(2, 4))]
    supers = [3001 + i for i in range(rnd.randint(1, 4))]
    uplinks, reach, cap, ups, descent = {}, {}, {}, {}, {}

    def rate() -> float:
        return rnd.choice((1e9, 1e9, 4e8, 2e9))

    for leaf in leaves:
        on = rnd.sample(spines, rnd.randint(1, len(spines)))
        uplinks[leaf] = tuple((k + 1, s) for k, s in enumerate(on))
        for k in range(len(on)):
            cap[up(leaf, k + 1)] = rate()
    for s in spines:
        reach[s] = frozenset(leaf for leaf in leaves if rnd.random() < 0.5)
        for leaf in reach[s]:
            cap[down(s, leaf)] = rate()
        tops = rnd.sample(supers, rnd.randint(1, len(supers)))
        ups[s] = tuple((100 + k, x) for k, x in enumerate(tops))
        for k in range(len(tops)):
            cap[up(s, 100 + k)] = rate()
    for x in supers:
        below = [s for s in spines if any(t == x for _, t in ups[s])]
        descent[x] = {}
        for leaf in leaves:
            via = tuple(s for s in below if leaf in reach[s] and rnd.random() < 0.8)
            if via:
                descent[x][leaf] = via
                if len(via) == 1:
                    cap[down(x, via[0])] = rate()
    return TeTopology(uplinks, reach, cap, 1e9, ups, descent)


@pytest.mark.parametrize("seed", range(30))
def test_the_greedy_in_waves_chooses_as_one_flow_at_a_time_on_degraded_fabrics(seed):
    rnd = random.Random(seed)
    topo = degraded_topology(rnd)
    leaves = list(topo.uplinks)
    flows = [FlowSnapshot(FlowKey("10.0.0.1", "10.0.0.2", TCP, n + 1, 80), *rnd.sample(
        leaves, 2), False, 0.0, None) for n in range(rnd.randint(1, 80))]
    dem = [rnd.choice((1e8, 2.5e8, 5e8)) for _ in flows]
    rows = OptionArrays(flows, topo, dem, [rnd.choice((0.0, 1e8, 7e8)) for _ in topo.caps])
    cur = [rnd.randrange(-1, c) if c else -1 for c in rows.count]
    order = list(range(len(flows)))
    rnd.shuffle(order)
    got, load = greedy_by_plane(order, rows, cur, topo, TIE)
    assert got == two_steps_one_at_a_time(order, rows, cur, topo)
    assert load == pytest.approx(rows.load_of(got), rel=1e-12)
