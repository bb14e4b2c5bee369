"""Traffic-engineering decisions on synthetic fabrics and loads (no I/O)."""

import random

import pytest

from controller.core import constants as C
from controller.core.errors import FailedPrecondition, NotFound
from controller.core.te import (
    TCP,
    UDP,
    FlowKey,
    FlowSnapshot,
    RebalancePlan,
    SpinePath,
    TeSettings,
    TeTopology,
    TrafficEngineer,
    down,
    place,
    resources,
    search,
    up,
)
from tests.unit.tetopo import RATE, topo


def host(n: int) -> str:
    return f"10.0.0.{n}"


def leaf_of(n: int) -> int:
    return 2001 + (n - 1) // 2  # two hosts per leaf


def key(a: int, b: int, sport: int = 40000, proto: int = TCP, dport: int = 5201) -> FlowKey:
    return FlowKey(host(a), host(b), proto, sport, dport)


def loads_of(te: TrafficEngineer) -> dict:
    out: dict = {}
    for f in te.flows.values():
        for r in resources(f.path, f.dst_leaf):
            out[r] = out.get(r, 0.0) + f.rate_bps
    return out


def per_resource(te: TrafficEngineer) -> dict:
    out: dict = {}
    for f in te.flows.values():
        for r in resources(f.path, f.dst_leaf):
            out[r] = out.get(r, 0) + 1
    return out


# --- flow keys ------------------------------------------------------------------------------
def test_flow_key_match_round_trip_and_wildcards():
    k = key(1, 3, 1234, UDP, 4791)
    assert FlowKey.from_match(k.match()) == k
    assert ("udp_src", 1234) in k.match() and ("ip_proto", 17) in k.match()
    wild = FlowKey(host(1), host(3), UDP, 0, 4791)
    assert "udp_src" not in dict(wild.match())
    assert wild.covers(k) and not k.covers(wild) and not wild.covers(key(1, 3, 1234))
    assert str(wild) == "udp 10.0.0.1:* -> 10.0.0.3:4791"


@pytest.mark.parametrize("bad", [("10.0.0.1", "nope", TCP, 1, 2), ("10.0.0.1", "10.0.0.2", 1, 1, 2),
                                 ("10.0.0.1", "10.0.0.2", TCP, 70000, 2)])
def test_flow_key_rejects_bad_fields(bad):
    with pytest.raises(ValueError):
        FlowKey(*bad)


def test_from_match_ignores_entries_that_are_not_flows():
    assert FlowKey.from_match((("eth_type", 0x800), ("ip_proto", 1))) is None
    assert FlowKey.from_match((("eth_dst", "00:00:00:00:00:01"),)) is None


# --- first placement ------------------------------------------------------------------------
def test_flows_starting_together_spread_over_the_spines():
    t, te = topo(), TrafficEngineer()
    for sport in range(4):
        te.new_flow(key(1, 3, 40000 + sport), 2001, 2002, t, {}, 0.0)
    spines = sorted(f.path.spine for f in te.flows.values())
    assert spines == [1001, 1001, 1002, 1002]


def test_new_flow_avoids_the_measured_hot_path():
    t, te = topo(), TrafficEngineer()
    hot = {up(2001, 1): 4.5e6}
    for sport in range(3):
        f = te.new_flow(key(1, 3, 40000 + sport), 2001, 2002, t, hot, 100.0 + 10 * sport)
        assert f.path.spine == 1002


def test_new_flow_is_not_placed_twice_nor_without_a_path_nor_beyond_the_limit():
    t = topo()
    te = TrafficEngineer(TeSettings(max_flows=2))
    assert te.new_flow(key(1, 3), 2001, 2002, t, {}, 0.0) is not None
    assert te.new_flow(key(1, 3), 2001, 2002, t, {}, 0.0) is None
    assert te.new_flow(key(1, 2), 2001, 2001, t, {}, 0.0) is None  # same leaf
    assert te.new_flow(key(1, 5), 2001, 2003, t, {}, 0.0) is not None
    assert te.new_flow(key(1, 7), 2001, 2004, t, {}, 0.0) is None
    assert te.stats["flows_over_limit"] == 1


# --- demand estimation ----------------------------------------------------------------------
def test_demand_estimation_gives_tcp_its_fair_share_of_the_nics():
    te = TrafficEngineer()
    flows = [te.new_flow(key(1, 3, s), 2001, 2002, topo(), {}, 0.0) for s in (1, 2)]
    flows.append(te.new_flow(key(5, 3), 2003, 2002, topo(), {}, 0.0))  # same receiver
    flows.append(te.new_flow(key(7, 8, proto=UDP), 2004, 2004, topo(), {}, 0.0) or
                 te.new_flow(key(7, 1, proto=UDP), 2004, 2001, topo(), {}, 0.0))
    for f in flows:
        f.rate_bps = 1e6
    d = te.estimate_demands(flows, RATE)
    # host 3 receives three TCP flows: a third of its NIC each
    assert [round(d[f.key] / 1e6, 2) for f in flows[:3]] == [1.67, 1.67, 1.67]
    assert d[flows[3].key] == 1e6  # UDP keeps its measured rate


def test_demand_is_never_below_the_measured_rate():
    te = TrafficEngineer()
    f = te.new_flow(key(1, 3), 2001, 2002, topo(), {}, 0.0)
    f.rate_bps = 4.9e6
    assert te.estimate_demands([f], 4e6)[f.key] == 4.9e6


# --- rebalancing ----------------------------------------------------------------------------
def permutation(rnd: random.Random) -> list[tuple[int, int]]:
    hosts = list(range(1, 9))
    while True:
        perm = hosts[:]
        rnd.shuffle(perm)
        if all(leaf_of(a) != leaf_of(b) for a, b in zip(hosts, perm, strict=True)):
            return list(zip(hosts, perm, strict=True))


def collide(te: TrafficEngineer, spine: int) -> None:
    """Every flow on one spine, rates as TCP would share the links."""
    for f in te.flows.values():
        f.path = SpinePath(f.src_leaf, spine - 1000, spine)
    counts = per_resource(te)
    for f in te.flows.values():
        f.rate_bps = RATE / max(counts[r] for r in resources(f.path, f.dst_leaf))


def test_rebalancing_finds_a_non_blocking_placement_of_permutations():
    rnd = random.Random(7)
    t = topo()
    perfect = 0
    for _ in range(50):
        te = TrafficEngineer()
        for a, b in permutation(rnd):
            te.new_flow(key(a, b, rnd.randint(1024, 65535)), leaf_of(a), leaf_of(b), t, {}, 0.0)
        collide(te, 1001)
        moves = te.rebalance(t, loads_of(te), 10.0)
        assert moves and all(m.reason.startswith("rebalance") for m in moves)
        perfect += max(per_resource(te).values()) == 1
    assert perfect >= 48


def test_no_move_without_enough_gain_hysteresis():
    t = topo()
    te = TrafficEngineer(TeSettings(hysteresis=0.5))
    # UDP: the demand is the measured rate
    a = te.new_flow(key(1, 3, proto=UDP), 2001, 2002, t, {}, 0.0)
    b = te.new_flow(key(2, 4, proto=UDP), 2001, 2002, t, {}, 0.0)
    a.path, b.path = SpinePath(2001, 1, 1001), SpinePath(2001, 2, 1002)
    a.rate_bps = b.rate_bps = 2e6  # apart already: nothing to gain
    assert te.rebalance(t, loads_of(te), 10.0) == []
    b.path = SpinePath(2001, 1, 1001)
    a.rate_bps = b.rate_bps = 0.6e6  # worst link 24% -> 12%: under a 50% margin
    assert te.rebalance(t, loads_of(te), 10.0) == []
    a.rate_bps = b.rate_bps = 4e6  # 160% -> 80%, the overload gone: worth it
    assert len(te.rebalance(t, loads_of(te), 10.0)) == 1
    assert te.rebalance(t, loads_of(te), 20.0) == []  # and no flapping back


def test_a_pass_must_gain_the_hysteresis_of_the_traffic_it_moves():
    # seen in bench.collectives job+bulk: passes moving all eight flows of a ring (2.4
    # link rates of traffic) for 0.07 link rates less overload (the noise of bursty
    # readings), every cooldown
    t = topo()
    te = TrafficEngineer(TeSettings(hysteresis=0.05))
    ring = [(1, 3), (3, 5), (5, 7), (7, 2), (2, 4), (4, 6), (6, 8), (8, 1)]
    flows = [te.new_flow(key(a, b), leaf_of(a), leaf_of(b), t, {}, 0.0) for a, b in ring]
    for f in flows:
        f.rate_bps = f.last_bps = 1.5e6

    def plan(before, after, moved, now=100.0):
        job = te.rebalance_job(t, loads_of(te), now)
        changes = tuple(sorted((FlowSnapshot(f.key, f.src_leaf, f.dst_leaf, f.priority,
                                             f.rate_bps, f.path) for f in moved),
                               key=lambda f: (f.src_leaf, f.key)))
        other = {f.key: t.path_via(f.src_leaf, f.dst_leaf, 2003 - f.path.spine)
                 for f in moved}
        return RebalancePlan(job, other, before, after, (), changes,
                             sum(f.rate_bps for f in moved))

    where = [f.path for f in flows]
    assert te.finish_rebalance(plan((1.35, 1.25), (1.28, 1.30), flows), t, 100.0) == \
        ([], None)
    assert [f.path for f in flows] == where
    # the same gain for one move is worth it, and a large one for eight
    moves, _ = te.finish_rebalance(plan((1.35, 1.25), (1.28, 1.30), flows[:1]), t, 100.0)
    assert [m.key for m in moves] == [flows[0].key]
    moves, _ = te.finish_rebalance(plan((1.35, 1.25), (0.5, 1.0), flows[1:], 110.0), t,
                                   110.0)
    assert len(moves) == 7


def test_a_ring_alone_on_its_links_is_no_overload_whatever_the_ports_show():
    # each step of the ring on links of its own; the ports read 2.5 Mbit/s where the
    # flows' own counters, read at another moment of their bursts, said 1.2
    t = topo()
    te = TrafficEngineer()
    ring = [(1, 3), (3, 5), (5, 7), (7, 1)]
    loads: dict = {}
    for a, b in ring:
        f = te.new_flow(key(a, b), leaf_of(a), leaf_of(b), t, {}, 0.0, cls="collective",
                        priority=True)
        f.path = t.path_via(leaf_of(a), leaf_of(b), 1001)
        f.rate_bps = f.last_bps = f.peak_bps = 1.2e6
        f.last_active = f.bytes_at = 99.0
        for r in resources(f.path, f.dst_leaf):
            loads[r] = loads.get(r, 0.0) + 2.5e6
    plan = search(te.rebalance_job(t, loads, 100.0))
    assert plan.before[0] == pytest.approx(0.0) and not plan.placement


def test_no_churn_for_a_cooler_link_when_every_link_has_room():
    t = topo()
    te = TrafficEngineer(TeSettings(hysteresis=0.05, rebalance_floor=0.5))
    f = te.new_flow(key(1, 3, proto=UDP), 2001, 2002, t, {}, 0.0)
    f.path, f.rate_bps = SpinePath(2001, 1, 1001), 1.35e6  # 27%
    # the port's smoothed rate leads the flow's: 5% more than the flow on its uplink
    lagging = {up(2001, 1): 1.6e6, down(1001, 2002): 1.35e6}
    assert te.rebalance(t, lagging, 10.0) == []  # 32% -> 27% would be a pointless move
    busy = {up(2001, 1): 1.35e6 + 1.5e6, down(1001, 2002): 1.35e6}  # 57% -> 27%
    assert len(te.rebalance(t, busy, 20.0)) == 1


def test_rebalancing_passes_that_move_flows_are_spaced_out():
    t = topo()
    te = TrafficEngineer(TeSettings(rebalance_cooldown=5.0, min_move_interval=0.0))
    a = te.new_flow(key(1, 3, proto=UDP), 2001, 2002, t, {}, 0.0)
    b = te.new_flow(key(2, 4, proto=UDP), 2001, 2002, t, {}, 0.0)
    a.path = b.path = SpinePath(2001, 1, 1001)
    a.rate_bps = b.rate_bps = 4e6
    assert len(te.rebalance(t, loads_of(te), 10.0)) == 1
    a.path = b.path = SpinePath(2001, 1, 1001)  # as if put back together
    assert te.rebalance(t, loads_of(te), 12.0) == []  # within the cooldown
    assert len(te.rebalance(t, loads_of(te), 15.5)) == 1


def test_tcp_flows_are_placed_for_their_natural_demand():
    t = topo()
    te = TrafficEngineer()
    a = te.new_flow(key(1, 3), 2001, 2002, t, {}, 0.0)
    b = te.new_flow(key(2, 4), 2001, 2002, t, {}, 0.0)
    a.path = b.path = SpinePath(2001, 1, 1001)
    a.rate_bps = b.rate_bps = 2.5e6  # two TCP flows halving one link: each could do 5
    moves = te.rebalance(t, loads_of(te), 10.0)
    assert len(moves) == 1 and {a.path.spine, b.path.spine} == {1001, 1002}
    assert a.demand_bps == b.demand_bps == RATE


def test_a_moved_flow_stays_put_for_the_minimum_interval():
    t = topo()
    te = TrafficEngineer(TeSettings(min_move_interval=5.0))
    a = te.new_flow(key(1, 3), 2001, 2002, t, {}, 0.0)
    b = te.new_flow(key(2, 4), 2001, 2002, t, {}, 0.0)
    a.path = b.path = SpinePath(2001, 1, 1001)
    a.rate_bps = b.rate_bps = 2.5e6
    a.moved_at = b.moved_at = 8.0
    assert te.rebalance(t, loads_of(te), 10.0) == []
    assert len(te.rebalance(t, loads_of(te), 13.5)) == 1


def test_a_flow_that_stopped_gets_no_demand():
    t = topo()
    te = TrafficEngineer(TeSettings(smoothing=0.5))
    gone = te.new_flow(key(1, 3, 1), 2001, 2002, t, {}, 0.0)
    new = te.new_flow(key(1, 3, 2), 2001, 2002, t, {}, 0.0)
    gone.path = new.path = SpinePath(2001, 1, 1001)
    te.update_counters(2001, {gone.key: 0, new.key: 0}, 0.0)
    te.update_counters(2001, {gone.key: 600_000, new.key: 0}, 1.0)
    te.update_counters(2001, {gone.key: 600_000, new.key: 600_000}, 2.0)  # gone stopped
    assert gone.rate_bps > 0.5e6 and gone.last_bps == 0  # still "large" when smoothed
    link = {r: new.rate_bps for r in resources(new.path, 2002)}  # what the ports measure
    assert te.rebalance(t, link, 10.0) == []  # alone, the new flow gains nothing by a move
    assert gone.demand_bps == 0.0


def test_small_flows_are_not_rebalanced_and_operator_pins_never():
    t = topo()
    te = TrafficEngineer()
    small = [te.new_flow(key(1, 3, s), 2001, 2002, t, {}, 0.0) for s in range(3)]
    for f in small:
        f.path, f.rate_bps = SpinePath(2001, 1, 1001), 0.3e6  # 6% of the link each
    assert te.rebalance(t, loads_of(te), 10.0) == []
    pinned = te.pin(key(2, 4), 2001, 2002, 1001, t, 0.0)
    pinned.rate_bps = 4e6
    other = te.new_flow(key(1, 4), 2001, 2002, t, {}, 0.0)
    other.path, other.rate_bps = SpinePath(2001, 1, 1001), 3e6
    moves = te.rebalance(t, loads_of(te), 10.0)
    assert [m.key for m in moves] == [other.key] and pinned.path.spine == 1001


def test_priority_classes_are_placed_first():
    t = topo(spines=2)
    te = TrafficEngineer()
    # one uplink of leaf 2001 already carries 3 Mbit/s of background; two large flows
    # need a path: the RoCE flow gets the free one
    bulk = te.new_flow(key(1, 3, 1), 2001, 2002, t, {}, 0.0, cls="best-effort")
    roce = te.new_flow(key(2, 4, 2, UDP, 4791), 2001, 2002, t, {}, 0.0, cls="roce",
                       priority=True)
    for f in (bulk, roce):
        f.rate_bps, f.path = 3e6, SpinePath(2001, 1, 1001)
    base = {up(2001, 1): 0.0, up(2001, 2): 2.5e6, down(1002, 2002): 2.5e6}
    demand = {bulk.key: 3e6, roce.key: 3e6}
    plan, _, _ = place([bulk, roce], demand, base, t, {})
    assert plan[roce.key].spine == 1001


def test_placement_of_the_large_scale_case_is_complete():
    t = topo(spines=8, leaves=16, rate=100e9)
    te = TrafficEngineer()
    rnd = random.Random(3)
    for n in range(600):
        a, b = rnd.sample(range(1, 33), 2)
        if leaf_of(a) == leaf_of(b):
            continue
        f = te.new_flow(FlowKey(host(a), host(b), TCP, 1024 + n, 80), leaf_of(a), leaf_of(b),
                        t, {}, 0.0)
        f.rate_bps = rnd.uniform(11e9, 40e9)
    te.rebalance(t, loads_of(te), 100.0)
    assert all(f.path in t.paths(f.src_leaf, f.dst_leaf) for f in te.flows.values())


# --- congestion -----------------------------------------------------------------------------
def test_congestion_needs_several_readings_then_moves_large_flows_off():
    t = topo()
    te = TrafficEngineer(TeSettings(congestion_intervals=3, rebalance=False))
    big = te.new_flow(key(1, 3), 2001, 2002, t, {}, 0.0)
    big.path, big.rate_bps = SpinePath(2001, 1, 1001), 2e6
    hot = {up(2001, 1): 4.6e6, down(1001, 2002): 2e6}
    assert te.congestion(t, hot, 10.0) == []
    assert te.congestion(t, hot, 11.0) == []
    moves = te.congestion(t, hot, 12.0)
    assert [(m.key, m.new.spine) for m in moves] == [(big.key, 1002)]
    kinds = [e.kind for e in te.events]
    assert kinds == ["congestion", "reroute"]
    assert "congestion on 2001:1 (uplink)" in te.events[1].message
    te.congestion(t, {up(2001, 1): 1e6}, 13.0)
    assert te.events[-1].kind == "congestion_cleared"


def test_two_collided_flows_hot_on_uplink_and_spine_link_move_only_one():
    # both flows of a leaf pair on spine 1: its uplink and its spine link are both hot;
    # moving one relieves both (moving the second as well only swaps the collision)
    t = topo()
    te = TrafficEngineer(TeSettings(congestion_intervals=1, rebalance=False))
    a = te.new_flow(key(1, 3), 2001, 2002, t, {}, 0.0)
    b = te.new_flow(key(2, 4), 2001, 2002, t, {}, 0.0)
    for f in (a, b):
        f.path, f.rate_bps, f.moved_at = SpinePath(2001, 1, 1001), 2.5e6, -100.0
    moves = te.congestion(t, loads_of(te), 10.0)
    assert len(moves) == 1, [(m.key, m.reason) for m in moves]
    assert {a.path.spine, b.path.spine} == {1001, 1002}


def test_a_short_spike_is_not_congestion():
    t = topo()
    te = TrafficEngineer(TeSettings(congestion_intervals=3))
    big = te.new_flow(key(1, 3), 2001, 2002, t, {}, 0.0)
    big.path, big.rate_bps = SpinePath(2001, 1, 1001), 2e6
    for now, load in ((10.0, 4.8e6), (11.0, 4.8e6), (12.0, 1e6), (13.0, 4.8e6), (14.0, 4.8e6)):
        assert te.congestion(t, {up(2001, 1): load}, now) == []
    assert te.events == []


def test_congestion_without_a_better_path_moves_nothing():
    t = topo()
    te = TrafficEngineer(TeSettings(congestion_intervals=1))
    a = te.new_flow(key(1, 3), 2001, 2002, t, {}, 0.0)
    a.path, a.rate_bps = SpinePath(2001, 1, 1001), 2.4e6
    full = {up(2001, 1): 4.8e6, up(2001, 2): 4.8e6}
    assert te.congestion(t, full, 10.0) == []
    assert [e.kind for e in te.events] == ["congestion", "congestion"]


def test_a_link_full_because_its_receiver_is_keeps_its_flows():
    # seen in bench.collectives job+bulk: h6 receives a ring step from h4 and a bulk
    # flow from h2 on spine 1001's link to its leaf, which is full (h6's NIC is); h5
    # receives h3's ring step on spine 1002, bursty, so it measures 1.4 Mbit/s. Moving
    # either flow into h6 there takes what h3 -> h5 needs (the rebalancer, which knows
    # the demands, moved it back, and so on every few seconds)
    t = topo()
    te = TrafficEngineer(TeSettings(congestion_intervals=1))
    flows = {(4, 6): (1001, 2.5e6), (2, 6): (1001, 2.5e6), (2, 4): (1002, 2.5e6),
             (3, 5): (1002, 1.4e6)}
    for (a, b), (spine, rate) in flows.items():
        f = te.new_flow(key(a, b), leaf_of(a), leaf_of(b), t, {}, 0.0)
        f.path = t.path_via(leaf_of(a), leaf_of(b), spine)
        f.rate_bps = f.last_bps = rate
    assert te.congestion(t, loads_of(te), 10.0) == []
    assert te.stats["congestion_unrelieved"] == 1
    # without h3 -> h5, spine 1002's link has room and the same link is relieved
    del te.flows[key(3, 5)]
    moves = te.congestion(t, loads_of(te), 11.0)
    assert [m.new.spine for m in moves] == [1002], moves


def test_a_collective_flow_paused_between_steps_keeps_its_link_against_congestion():
    # the case above with every flow of the collective class and h3 -> h5 between two
    # steps of its ring: it sent 1 s ago, so it is still asked for (the active window)
    t = topo()
    te = TrafficEngineer(TeSettings(congestion_intervals=1, active_window=3.0))
    flows = {(4, 6): (1001, 2.5e6), (2, 6): (1001, 2.5e6), (2, 4): (1002, 2.5e6),
             (3, 5): (1002, 0.1e6)}
    for (a, b), (spine, rate) in flows.items():
        f = te.new_flow(key(a, b), leaf_of(a), leaf_of(b), t, {}, 0.0, cls="collective",
                        priority=True)
        f.path = t.path_via(leaf_of(a), leaf_of(b), spine)
        f.rate_bps, f.last_bps, f.peak_bps = rate, rate, 2.5e6
        f.last_active, f.bytes_at = 9.0, 10.0
    te.flows[key(3, 5)].last_bps = 0.0
    assert te.congestion(t, loads_of(te), 10.0) == []
    # once a reading shows it idle past the window, it has ended: the link is free
    te.flows[key(3, 5)].bytes_at = 13.5
    assert [m.new.spine for m in te.congestion(t, loads_of(te), 13.5)] == [1002]


def test_a_collective_tcp_flow_is_asked_for_its_fair_share_whatever_it_measures():
    # h2 sends a ring step to h4 and a flow to h6, both of the collective class; while
    # the ring pauses the other measures more than its share, and less while it runs
    t = topo()
    te = TrafficEngineer()
    ring = te.new_flow(key(2, 4), 2001, 2002, t, {}, 0.0, cls="collective", priority=True)
    other = te.new_flow(key(2, 6), 2001, 2003, t, {}, 0.0, cls="collective", priority=True)
    bulk = te.new_flow(key(1, 5), 2001, 2003, t, {}, 0.0)
    ring.rate_bps, other.rate_bps, bulk.rate_bps = 1.1e6, 3.6e6, 4.8e6
    d = te.estimate_demands([ring, other, bulk], RATE)
    assert d[ring.key] == pytest.approx(RATE / 2) and d[other.key] == pytest.approx(RATE / 2)
    assert d[bulk.key] == pytest.approx(RATE)  # (alone on both its hosts)
    other.priority = ring.priority = False  # best effort: never less than it measures
    assert te.estimate_demands([ring, other], RATE)[other.key] == 3.6e6


def test_congestion_moves_a_tcp_flow_a_udp_stream_squeezes_to_almost_nothing():
    # (tests/e2e/test_te.py: an operator pins 4.5 Mbit/s of UDP onto the TCP flow's
    # spine; the TCP flow's latest reading is almost nothing, its smoothed rate not yet)
    t = topo()
    te = TrafficEngineer(TeSettings(congestion_intervals=1))
    udp = te.pin(key(2, 4, proto=UDP), 2001, 2002, 1001, t, 0.0)
    udp.rate_bps = udp.last_bps = 4.5e6
    tcp = te.new_flow(key(1, 3), 2001, 2002, t, {}, 0.0)
    tcp.path, tcp.rate_bps, tcp.last_bps = SpinePath(2001, 1, 1001), 1.5e6, 0.1e6
    loads = loads_of(te)
    loads[up(2001, 2)] = loads[down(1002, 2002)] = 2e3  # (ACKs of other flows)
    moves = te.congestion(t, loads, 10.0)
    assert [(m.key, m.new.spine) for m in moves] == [(tcp.key, 1002)]


def test_congestion_on_a_flow_whose_uplink_just_failed_does_not_break_the_pass():
    # the flow's uplink is down (revalidation comes with the port's event), its spine's
    # link to the destination is hot in the same reading
    t = topo(cut=[(2001, 1001)])
    te = TrafficEngineer(TeSettings(congestion_intervals=1))
    f = te.new_flow(key(1, 3), 2001, 2002, t, {}, 0.0)
    f.path, f.rate_bps, f.last_bps = SpinePath(2001, 1, 1001), 2e6, 2e6
    moves = te.congestion(t, {down(1001, 2002): 4.9e6}, 10.0)
    assert [m.new.spine for m in moves] == [1002]


# --- failures and drain ---------------------------------------------------------------------
def test_flows_on_a_failed_link_are_replaced_at_once():
    t = topo()
    te = TrafficEngineer()
    a = te.new_flow(key(1, 3), 2001, 2002, t, {}, 0.0)
    a.path, a.moved_at = SpinePath(2001, 1, 1001), 9.9  # moved just now: failures move it anyway
    b = te.new_flow(key(5, 7), 2003, 2004, t, {}, 0.0)
    b.path = SpinePath(2003, 1, 1001)
    broken = topo(cut={(2002, 1001)})  # spine 1 lost its link to leaf 2002
    moves = te.revalidate(broken, {}, 10.0, "port 1001:2 down")
    assert [(m.key, m.old.spine, m.new.spine) for m in moves] == [(a.key, 1001, 1002)]
    assert b.path.spine == 1001  # untouched
    assert "port 1001:2 down" in te.events[-1].message


def test_operator_pin_keeps_its_spine_or_waits():
    t = topo()
    te = TrafficEngineer()
    p = te.pin(key(1, 3), 2001, 2002, 1001, t, 0.0)
    assert p.operator and p.path == SpinePath(2001, 1, 1001)
    assert te.revalidate(topo(cut={(2002, 1001)}), {}, 1.0, "down") == []
    assert p.path.spine == 1001
    with pytest.raises(FailedPrecondition, match="spine 1001 has no path"):
        te.pin(key(2, 4), 2001, 2002, 1001, topo(cut={(2002, 1001)}), 0.0)
    te.unpin(p.key)
    with pytest.raises(NotFound):
        te.unpin(p.key)


def test_wildcard_pin_takes_over_the_flows_it_covers():
    t = topo()
    te = TrafficEngineer()
    te.new_flow(key(1, 3, 1111, UDP, 4791), 2001, 2002, t, {}, 0.0)
    wild = FlowKey(host(1), host(3), UDP, 0, 4791)
    te.pin(wild, 2001, 2002, 1002, t, 0.0)
    assert list(te.flows) == [wild]
    assert te.covered_by_pin(key(1, 3, 2222, UDP, 4791))
    assert not te.covered_by_pin(key(1, 3, 2222, TCP, 4791))


def test_idle_flows_expire_and_counters_make_rates():
    t = topo()
    te = TrafficEngineer(TeSettings(flow_idle_timeout=10.0, smoothing=1.0))
    f = te.new_flow(key(1, 3), 2001, 2002, t, {}, 0.0)
    te.update_counters(2001, {f.key: 0}, 0.0)
    te.update_counters(2001, {f.key: 500_000}, 1.0)
    assert f.rate_bps == 4e6 and f.last_active == 1.0
    te.update_counters(2002, {f.key: 10**9}, 2.0)  # another leaf's counters: ignored
    assert f.rate_bps == 4e6
    assert te.expire(5.0) == []
    assert [g.key for g in te.expire(11.5)] == [f.key]
    assert not te.flows


def test_pin_rule_outputs_through_the_uplinks_failover_group():
    from controller.core.te import pin_rule

    t = topo()
    te = TrafficEngineer()
    f = te.new_flow(key(1, 3, 5, UDP, 4791), 2001, 2002, t, {}, 0.0)
    rule = pin_rule(f, C.FF_GROUP_BASE + f.path.port)
    assert rule.table == C.TABLE_TE and rule.priority == C.PRIO_PIN
    assert rule.instructions == (("apply", (("group", C.FF_GROUP_BASE + f.path.port),)),
                                 ("clear",))
    assert C.cookie_kind(rule.cookie) == C.KIND_PIN


def _collided_pair():
    t = topo()
    te = TrafficEngineer(TeSettings(min_move_interval=0.0))
    a = te.new_flow(key(1, 3, proto=UDP), 2001, 2002, t, {}, 0.0)
    b = te.new_flow(key(2, 4, proto=UDP), 2001, 2002, t, {}, 0.0)
    a.path = b.path = SpinePath(2001, 1, 1001)
    a.rate_bps = b.rate_bps = 4e6
    return t, te, a, b


def test_a_pass_searched_apart_moves_what_the_pass_on_the_thread_would():
    from controller.core.te import search

    t, te, a, b = _collided_pair()
    job = te.rebalance_job(t, loads_of(te), 10.0)
    assert job is not None and {f.key for f in job.flows} == {a.key, b.key}
    a.rate_bps = 9e9  # the copies the search took do not see later changes of the flows
    assert {f.rate_bps for f in job.flows} == {4e6}
    moves, rest = te.finish_rebalance(search(job), t, 10.0)
    assert rest is None and len(moves) == 1
    assert {a.path, b.path} == {SpinePath(2001, 1, 1001), SpinePath(2001, 2, 1002)}


def test_a_searched_pass_is_dropped_when_the_fabric_changed_meanwhile():
    from controller.core.te import search

    t, te, a, b = _collided_pair()
    plan = search(te.rebalance_job(t, loads_of(te), 10.0))
    rebuilt = TeTopology(t.uplinks, t.reach, t.capacity, t.host_rate)  # a new view
    assert te.finish_rebalance(plan, rebuilt, 10.0) == ([], None)
    assert a.path == b.path == SpinePath(2001, 1, 1001)
    assert te.stats["rebalance_stale"] == 1


def test_a_flow_that_moved_or_ended_while_the_search_ran_is_left_alone():
    from controller.core.te import search

    t, te, a, b = _collided_pair()
    plan = search(te.rebalance_job(t, loads_of(te), 10.0))
    moved = next(f for f in (a, b) if f.key in plan.placement)
    moved.path = SpinePath(2001, 2, 1002)  # moved meanwhile (a failure, an operator)
    assert te.finish_rebalance(plan, t, 10.0) == ([], None)
    del te.flows[moved.key]  # or ended
    assert te.finish_rebalance(plan, t, 10.0) == ([], None)


def test_a_searched_pass_is_dropped_when_another_decision_moved_a_flow_meanwhile():
    """The search placed its flows around where the others were: a congestion move made
    while it ran (seen in the lab: h1->h3 moved to spine 2 for congestion, and 8 ms
    later the pass moved h2->h4 there too, which the next pass undid)."""
    from controller.core.te import search

    t, te, a, b = _collided_pair()
    c = te.new_flow(key(5, 7, proto=UDP), 2003, 2004, t, {}, 0.0)
    plan = search(te.rebalance_job(t, loads_of(te), 10.0))
    assert plan.changes
    assert te.move_to(c.key, 2003 - c.path.spine, t, "congestion", 10.0) is not None
    assert te.finish_rebalance(plan, t, 10.0) == ([], None)
    assert a.path == b.path == SpinePath(2001, 1, 1001)
    assert te.stats["rebalance_stale"] == 1
    # a plan's own slices are not "another decision"
    t2, te2 = _scrambled()
    rest = search(te2.rebalance_job(t2, loads_of(te2), 10.0))
    slices = 0
    while rest is not None:
        moves, rest = te2.finish_rebalance(rest, t2, 10.0, limit=10)
        assert moves
        slices += 1
    assert slices > 2 and "rebalance_stale" not in te2.stats


def _scrambled(seed: int = 7, spines: int = 4, leaves: int = 8, n: int = 120):
    """Many large flows, all first placed on spine 1: a pass moves most of them."""
    t = topo(spines, leaves, rate=100e6)
    te = TrafficEngineer(TeSettings(min_move_interval=0.0))
    rnd = random.Random(seed)
    while len(te.flows) < n:
        a, b = rnd.sample(range(leaves), 2)
        f = te.new_flow(FlowKey(f"10.0.{a}.{rnd.randint(1, 8)}", f"10.0.{b}.{rnd.randint(1, 8)}",
                                TCP, rnd.randint(1024, 65535), 5201), 2001 + a, 2001 + b,
                        t, {}, 0.0)
        if f is not None:
            f.path = SpinePath(2001 + a, 1, 1001)
            f.rate_bps = rnd.uniform(0.11, 0.3) * 100e6
    return t, te


def test_a_large_pass_is_applied_in_slices_of_whole_leaves():
    from controller.core.te import search

    t, te = _scrambled()
    plan = search(te.rebalance_job(t, loads_of(te), 10.0))
    assert len(plan.changes) > 40
    assert [f.src_leaf for f in plan.changes] == sorted(f.src_leaf for f in plan.changes)
    slices, rest = [], plan
    while rest is not None:
        moves, rest = te.finish_rebalance(rest, t, 10.0, limit=10)
        assert moves
        slices.append(moves)
    assert len(slices) > 2
    seen: set = set()
    for moves in slices:  # a leaf's moves never straddle two slices
        leaves = {m.new.leaf for m in moves}
        assert not leaves & seen
        seen |= leaves
    assert sum(len(m) for m in slices) == len(plan.changes)
    assert {f.key: f.path for f in te.flows.values() if f.key in plan.placement} == \
        dict(plan.placement)
    # a big pass is reported in sum and its first moves one by one, not one event each
    kinds = [e.kind for e in te.events]
    assert kinds.count("rebalance") == 1
    assert kinds.count("reroute") == te.settings.reroute_events


def test_a_slice_after_a_topology_change_is_dropped():
    from controller.core.te import search

    t, te = _scrambled()
    plan = search(te.rebalance_job(t, loads_of(te), 10.0))
    first, rest = te.finish_rebalance(plan, t, 10.0, limit=10)
    assert first and rest is not None
    rebuilt = TeTopology(t.uplinks, t.reach, t.capacity, t.host_rate)
    assert te.finish_rebalance(rest, rebuilt, 10.0) == ([], None)


def test_a_pass_moves_only_the_flows_that_buy_its_gain():
    """The search reshuffles; flows whose old path is as good go back to it."""
    from controller.core.te import search

    t, te = _scrambled(n=60)
    for f in list(te.flows.values())[:30]:  # half the flows already spread well
        f.path = SpinePath(f.src_leaf, 1 + hash(f.key) % 4, 1001 + hash(f.key) % 4)
    job = te.rebalance_job(t, loads_of(te), 10.0)
    plan = search(job)
    current, dst = job.current, {f.key: f.dst_leaf for f in job.flows}
    loads: dict = {}
    for k in dst:  # (the placement holds the flows that move; the others stay)
        for r in resources(plan.placement.get(k, current[k]), dst[k]):
            loads[r] = loads.get(r, 0.0) + plan.demand[k]
    assert 0 < len(plan.changes) < len(job.flows)
    assert {f.key for f in plan.changes} == set(plan.placement)
    for f in plan.changes:  # each move: its old path would be over the placement's worst
        d = plan.demand[f.key]  # link (or over capacity), so it buys the gain
        back = [(loads.get(r, 0.0) + d - (d if r in resources(plan.placement[f.key],
                                                              f.dst_leaf) else 0.0)) / t.cap(r)
                for r in resources(current[f.key], f.dst_leaf)]
        assert max(back) > min(plan.after[1], 1.0) + 1e-9


def test_an_active_collective_flow_counts_at_full_rate_between_its_bursts():
    """A priority-class flow placed seconds ago, idle in the last reading (a collective
    between two steps), still holds its spine against the next collective flow."""
    for seed in range(8):  # (whatever the hashes: not luck)
        t = topo()
        te = TrafficEngineer()
        a = te.new_flow(key(1, 3, sport=40000 + seed), 2001, 2002, t, {}, 0.0,
                        "collective", True)
        te.update_counters(2001, {a.key: 0}, 4.0)
        te.update_counters(2001, {a.key: 1000}, 5.0)  # active, at next to no rate
        b = te.new_flow(key(2, 4, sport=41000 + seed), 2001, 2002, t, {}, 5.5,
                        "collective", True)
        assert a.path.spine != b.path.spine, seed


def test_the_reply_direction_of_a_connection_is_not_a_new_demand():
    t = topo()
    te = TrafficEngineer()
    a = te.new_flow(key(1, 3, sport=40000, dport=5201), 2001, 2002, t, {}, 0.0)
    reply = te.new_flow(FlowKey(host(3), host(1), TCP, 5201, 40000), 2002, 2001, t, {}, 0.0)
    assert reply is not None and te.stats["reverse_flows_placed"] == 1
    # only the first direction weighs on the links: the leaf-2 -> leaf-1 links carry
    # no fresh load, so a flow between them sees both spines idle
    fresh, _ = te._fresh_load(0.1)
    assert all(r[1] != 2002 or r[0] != "up" for r in fresh), fresh
    assert sum(1 for r in fresh if r[0] == "up") == 1
    del a


RANKS = [1, 3, 5, 7, 2, 4, 6, 8]  # host numbers in rank order: rank r on leaf r mod 4


def open_connections(te, t, rng, pairs, now):
    """Connections between ranks opened at ``now`` in a random order, each direction
    a collective-class flow placed as its first packet arrives (the reply a moment after
    the first); their (sport, dport) by pair."""
    ports = {}
    for r, s in rng.sample(pairs, len(pairs)):
        a, b = RANKS[r], RANKS[s]
        sport, dport = rng.randrange(32768, 61000), rng.randrange(1024, 65535)
        ports[(r, s)] = (sport, dport)
        te.new_flow(key(a, b, sport, dport=dport), leaf_of(a), leaf_of(b), t, {}, now,
                    "collective", True)
        te.new_flow(key(b, a, dport, dport=sport), leaf_of(b), leaf_of(a), t, {},
                    now + 0.001, "collective", True)
    return ports


def spines_of_step(te, conn, step):
    """The spines the pairs of one step (rank -> rank) cross, by leaf pair."""
    spines: dict = {}
    for r, s in step:
        if (r, s) in conn:
            sport, dport = conn[(r, s)]
        else:  # the reply direction of the connection s opened to r
            dport, sport = conn[(s, r)]
        f = te.flows[key(RANKS[r], RANKS[s], sport, dport=dport)]
        spines.setdefault((f.src_leaf, f.dst_leaf), []).append(f.path.spine)
    return spines


def test_an_unregistered_all_to_all_is_spread_in_both_directions():
    """OpenMPI's pairwise all-to-all (rank r sends to r+k at step k) over TCP: the
    connection rank r opens to r+k at step k carries r+k -> r at step n-k, so its reply
    direction is data too. With 8 ranks, rank r on leaf r mod 4 and two spines, both
    pairs of every step between a leaf pair cross different spines, whatever the ports
    hash to and the order the connections come in."""
    n = len(RANKS)
    rng = random.Random(11)
    for _ in range(30):
        t, te = topo(), TrafficEngineer()
        conn: dict = {}
        for k in range(1, n // 2):  # steps 1..3 open every inter-leaf connection
            conn |= open_connections(te, t, rng, [(r, (r + k) % n) for r in range(n)],
                                     0.4 * k)
        for k in range(1, n):
            if k != n // 2:  # (rank r and r + 4 share a leaf)
                spines = spines_of_step(te, conn, [(r, (r + k) % n) for r in range(n)])
                assert all(len(set(v)) == 2 for v in spines.values()), (k, spines)


@pytest.mark.parametrize("jobs", [[RANKS], [RANKS[:4], RANKS[4:]]], ids=["one", "two"])
def test_unregistered_rings_are_spread(jobs):
    """Rings (one of 8 ranks, or two of 4 at once) whose connections all open at
    once: every step's pairs between a leaf pair cross different spines."""
    rng = random.Random(5)
    index = {h: r for r, h in enumerate(RANKS)}
    for _ in range(30):
        t, te = topo(), TrafficEngineer()
        steps = [[(index[j[i]], index[j[(i + 1) % len(j)]]) for j in jobs
                  for i in range(len(j))]]
        conn = open_connections(te, t, rng, steps[0], 1.0)
        steps.append([(s, r) for r, s in steps[0]])  # (the reverse ring's steps)
        for step in steps:
            spines = spines_of_step(te, conn, step)
            assert all(len(set(v)) == len(v) for v in spines.values()), spines


def test_hosts_whose_first_flows_share_a_receiver_keep_rails_of_their_own():
    """An MPI launch: every daemon first connects to the launcher on host 1, then the
    ranks exchange data. Two hosts of a leaf sending to one receiver cost no more on one
    spine than on two, but they must not end up on one: their next flows would find each
    other there, and one of them would be split over both spines."""
    for seed in range(20):
        rng = random.Random(seed)
        t, te = topo(), TrafficEngineer()
        launch = [n for n in range(3, 9)]
        rng.shuffle(launch)
        for n in launch:  # (each daemon's connection to the launcher, and its reply)
            te.new_flow(key(n, 1, sport=30000 + n), leaf_of(n), leaf_of(1), t, {}, 0.0,
                        "collective", True)
            te.new_flow(key(1, n, 5000, dport=30000 + n), leaf_of(1), leaf_of(n), t, {},
                        0.001, "collective", True)
        pairs = [(a, b) for a in range(1, 9) for b in range(1, 9)
                 if leaf_of(a) != leaf_of(b)]
        rng.shuffle(pairs)
        for a, b in pairs:  # then every data connection, in any order
            te.new_flow(key(a, b, sport=40000 + b, dport=1024), leaf_of(a), leaf_of(b), t,
                        {}, 0.5, "collective", True)
        spines: dict[str, set[int]] = {}
        for f in te.flows.values():
            spines.setdefault(f.key.src_ip, set()).add(f.path.spine)
        assert all(len(s) == 1 for s in spines.values()), (seed, spines)
        for leaf in range(2001, 2005):
            mine = [next(iter(s)) for h, s in spines.items() if leaf_of(int(h[7:])) == leaf]
            assert len(set(mine)) == len(mine) == 2, (seed, leaf, spines)


def test_a_reading_over_the_link_rate_does_not_push_a_host_off_its_spine():
    """Host 1 streams at its full rate on its spine; a counter reading of its uplink
    comes out a little over the link rate (the readings' timing). Its next priority
    flows stay on that spine: its NIC limits them together with the stream."""
    for seed in range(10):
        t, te = topo(), TrafficEngineer()
        stream = te.new_flow(key(1, 3, sport=30000 + seed), 2001, 2002, t, {}, 0.0,
                             "collective", True)
        te.update_counters(2001, {stream.key: 0}, 4.0)
        te.update_counters(2001, {stream.key: int(RATE / 8)}, 5.0)  # (its full rate)
        loads = {resources(stream.path, 2002)[0]: 1.04 * RATE}
        for n, dst in enumerate((5, 7, 4)):
            f = te.new_flow(key(1, dst, sport=31000 + n), 2001, leaf_of(dst), t, loads, 5.0,
                            "collective", True)
            assert f.path.spine == stream.path.spine, (seed, n)


def test_a_flow_busy_at_its_leafs_last_reading_still_counts_when_the_next_is_late():
    """Host 1 streams on its spine; the controller, busy, reads its leaf's counters
    6 s late. Its stream still counts on its links (as of the last reading it was
    sending), so host 2, its leaf neighbour, starts a collective flow on the other
    spine, whatever the flow's hash."""
    for seed in range(10):
        t, te = topo(), TrafficEngineer()
        stream = te.new_flow(key(1, 3, sport=30000 + seed), 2001, 2002, t, {}, 0.0,
                             "collective", True)
        te.update_counters(2001, {stream.key: 0}, 4.0)
        te.update_counters(2001, {stream.key: int(RATE / 8)}, 5.0)
        f = te.new_flow(key(2, 5, sport=45000 + 13 * seed, dport=7000), 2001, 2003, t, {}, 11.0,
                        "collective", True)
        assert f.path.spine != stream.path.spine, seed
