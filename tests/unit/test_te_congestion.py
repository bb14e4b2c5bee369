"""Traffic engineering on synthetic fabrics (no I/O): congestion, what moves off a hot
link and what stays."""

import pytest

from controller.core.te import (
    UDP,
    SpinePath,
    TeSettings,
    TrafficEngineer,
    down,
    up,
)
from tests.unit.tetopo import RATE, key, leaf_of, loads_of, topo


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


def test_congestion_does_not_move_a_flow_onto_a_flow_placed_a_moment_ago():
    # (tests/e2e/test_hostile_hosts.py: h7's stream is hot on its spine's downlink; h8's
    # collective flow has just started on h7's other uplink, too recently to show in
    # the counters: moving the stream there would put both on one uplink)
    for newcomer in (False, True):
        t = topo()
        te = TrafficEngineer(TeSettings(congestion_intervals=1, rebalance=False))
        stream = te.new_flow(key(7, 3, proto=UDP), 2004, 2002, t, {}, 0.0, "collective",
                             True)
        stream.path, stream.rate_bps = SpinePath(2004, 1, 1001), 3.8e6
        other = te.pin(key(5, 3, proto=UDP), 2003, 2002, 1001, t, 0.0)
        other.rate_bps = 1.0e6
        hot = {up(2004, 1): 3.8e6, down(1001, 2002): 4.8e6, up(2003, 1): 1.0e6}
        if newcomer:
            new = te.new_flow(key(8, 1), 2004, 2001, t, hot, 9.5, "collective", True)
            assert new.path.spine == 1002
        moves = te.congestion(t, hot, 10.0)
        if newcomer:
            assert moves == [] and te.stats["congestion_unrelieved"] == 1
        else:
            assert [(m.key, m.new.spine) for m in moves] == [(stream.key, 1002)]


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
