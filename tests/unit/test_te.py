"""Traffic engineering on synthetic fabrics (no I/O): flow keys, first placement,
demand, failures, pins and unregistered collectives."""

import random

import pytest

from controller.core import constants as C
from controller.core.errors import FailedPrecondition, NotFound
from controller.core.te import (
    TCP,
    UDP,
    FlowKey,
    SpinePath,
    TeSettings,
    TrafficEngineer,
    down,
    place,
    resources,
    up,
)
from tests.unit.tetopo import RATE, host, key, leaf_of, loads_of, topo


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
    with pytest.raises(FailedPrecondition, match="switch 1001 is on no path"):
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


def test_a_host_on_both_spines_leaves_its_neighbour_the_lighter_one():
    """h7 streams to h3 and sends many small collective flows beside it; TE moved the
    stream to the other spine (its downlink was hot), so h7 now sends on both uplinks
    and bounds them alike. h8's new collective flow goes by the rates TE tracks there:
    the spine of the small flows, not the stream's, though the links' counters, read
    before the move, still show the stream where it was."""
    for seed in range(8):  # (whatever the hashes: not luck)
        t, te = topo(), TrafficEngineer()
        stream = te.new_flow(key(7, 3, 40000 + seed, UDP, 5204), 2004, 2002, t, {}, 0.0,
                             "collective", True)
        small = [te.new_flow(key(7, (2, 3, 5)[i % 3], 41000 + i, UDP, 20000 + seed),
                             2004, leaf_of((2, 3, 5)[i % 3]), t, {}, 0.1 + 0.01 * i,
                             "collective", True) for i in range(30)]
        assert {f.path.spine for f in small} == {stream.path.spine}
        stream.path = next(p for p in t.paths(2004, 2002) if p != stream.path)  # moved
        for now in (1.0, 2.0):  # (bytes: the stream at 0.8 of the link, the rest little)
            te.update_counters(2004, {f.key: int(now * (0.1 if f.key.dst_port == 5204
                                                        else 0.001) * RATE)
                                      for f in (stream, *small)}, now)
        loads = {up(2004, small[0].path.port): 0.8 * RATE,  # (read before the move)
                 down(small[0].path.spine, 2002): 0.8 * RATE,
                 up(2004, stream.path.port): 0.1 * RATE}
        honest = te.new_flow(key(8, 1, 50000 + seed), 2004, 2001, t, loads, 2.5,
                             "collective", True)
        assert honest.path.spine == small[0].path.spine, seed


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
