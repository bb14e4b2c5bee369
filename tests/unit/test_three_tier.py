"""Three-tier Clos fabrics (pods of leaves and spines under spine planes of
super-spines) through the core and a fake data plane: roles and places inferred,
every pair reached up-down only, ECMP at every tier, a dead link skipped by the
switches, drains at every tier, a restart that re-installs nothing."""

from __future__ import annotations

import time

import pytest

from controller.core.errors import FailedPrecondition
from controller.core.model.fabric_model import Port
from controller.core.model.roles import LEAF, SPINE, SUPER_SPINE, Place
from controller.core.settings import CoreSettings
from controller.core.te import TeSettings
from tests.unit.dataplane import host, with_hosts
from tests.unit.fakefabric import ip_frame, planes, three_tier


def fabric(pods=2, leaves=2, spines=2, supers=2, per_leaf=2, te=False, settings=None):
    """A discovered three-tier fabric with ``per_leaf`` hosts per leaf, synced into fake
    switches; host n -> (mac, ip, leaf, port)."""
    fab = three_tier(pods, leaves, spines, supers, per_leaf,
                     settings or CoreSettings(te=TeSettings() if te else None))
    dp, hosts = with_hosts(fab, per_leaf)
    return fab, dp, hosts


def tiers(fab, trace) -> list[str]:
    """The roles of the switches a packet crossed, in order."""
    role = {**dict.fromkeys(fab.leaves, LEAF), **dict.fromkeys(fab.spines, SPINE),
            **dict.fromkeys(fab.supers, SUPER_SPINE)}
    return [role[h.dpid] for h in trace.hops if h.out_port != "controller"]


def test_roles_pods_and_spine_planes_are_inferred_without_warnings():
    fab, _, _ = fabric()
    roles = fab.core.roles()
    assert {d for d, r in roles.items() if r == SUPER_SPINE} == set(fab.supers)
    assert {d for d, r in roles.items() if r == SPINE} == set(fab.spines)
    assert {d for d, r in roles.items() if r == LEAF} == set(fab.leaves)
    snap = fab.core.snapshot(fab.now)
    assert snap.warnings == ()
    places = {s.dpid: (s.plane, s.pod, s.spine_plane) for s in snap.switches}
    assert places[2001] == (1, 1, 0) and places[2003] == (1, 2, 0)
    assert places[1001] == (1, 1, 1) and places[1004] == (1, 2, 2)
    assert places[3001] == (1, 0, 1) and places[3003] == (1, 0, 2)
    assert fab.core.view().places[1003] == Place(1, 2, 1)


def test_every_pair_is_reached_up_and_down_only():
    fab, dp, hosts = fabric()
    for a, b, t in dp.every_pair(hosts):
        assert t.to_controller == [], (a, b, t.hops)
        pod_a, pod_b = (fab.leaves.index(hosts[n][2]) // 2 for n in (a, b))
        if hosts[a][2] == hosts[b][2]:
            assert tiers(fab, t) == [LEAF]
        elif pod_a == pod_b:
            assert tiers(fab, t) == [LEAF, SPINE, LEAF], t.hops
        else:
            assert tiers(fab, t) == [LEAF, SPINE, SUPER_SPINE, SPINE, LEAF], t.hops


def test_inter_pod_traffic_spreads_over_every_spine_and_super_spine():
    fab, dp, hosts = fabric(supers=3)
    crossed = set()
    for sport in range(200):
        t = dp.send(hosts, 1, 8, sport=20000 + sport, proto=17)
        assert t.delivered == [hosts[8][2:]]
        crossed.update(h.dpid for h in t.hops)
    assert crossed >= set(fab.spines) | set(fab.supers)


def test_a_dead_spine_to_super_spine_link_is_skipped_before_the_controller_knows():
    fab, dp, hosts = fabric()
    flows = [dict(sport=30000 + i, proto=17) for i in range(64)]
    dp.link_down((1001, 3))  # pod 1's spine 1 to super-spine 3001
    for kw in flows:  # the switches' own liveness: no controller involved yet
        t = dp.send(hosts, 1, 8, **kw)
        assert t.delivered == [hosts[8][2:]], t.hops
    # the controller hears of it and re-plans: still delivered, never over that link
    for dpid, port in ((1001, 3), (3001, 1)):
        fab.deliver(fab.core.port_status(dpid, Port(port, f"p{port}", up=False), False,
                                         fab.now))
    fab.advance(0.1)
    dp.sync()
    for kw in flows:
        t = dp.send(hosts, 1, 8, **kw)
        assert t.delivered == [hosts[8][2:]]
        assert (1001, 3) not in {(h.dpid, h.out_port) for h in t.hops}


def test_drains_at_every_tier_and_the_cut_pair_refusal():
    fab, dp, hosts = fabric(supers=2)
    flows = [dict(sport=31000 + i, proto=17) for i in range(48)]
    fab.maintain("drain_switch", 3001)
    fab.advance(0.1)
    dp.sync()
    for kw in flows:
        t = dp.send(hosts, 1, 8, **kw)
        assert t.delivered == [hosts[8][2:]]
        assert 3001 not in {h.dpid for h in t.hops}, t.hops
    fab.maintain("drain_switch", 1003)  # pod 2's spine of plane 1: leaves and supers
    fab.advance(0.1)
    dp.sync()
    for a, b in ((1, 8), (8, 1), (5, 7)):
        for kw in flows:
            t = dp.send(hosts, a, b, **kw)
            assert t.delivered == [hosts[b][2:]]
            assert not {1003, 3001} & {h.dpid for h in t.hops}, t.hops
    # plane 2 alone joins the pods now: its super-spines cannot both go
    fab.maintain("drain_switch", 3003)
    with pytest.raises(FailedPrecondition, match="without a path"):
        fab.maintain("drain_switch", 3004)
    with pytest.raises(FailedPrecondition, match="without a path"):
        fab.maintain("drain_link", 1002, 4)  # pod 1's spine 2 to 3004


def test_a_restarted_controller_re_installs_nothing():
    fab, dp, hosts = fabric()
    dp.restart_changes_nothing(three_tier(settings=fab.core.settings), hosts)


def test_te_on_three_tiers_still_delivers_every_pair():
    fab, dp, hosts = fabric(te=True)
    for a, b in ((1, 3), (1, 8), (6, 2)):
        src = hosts[a]
        fab.core.traffic.flow_seen(src[2], src[3], ip_frame(host(a), host(b), 40000, 5201),
                                   fab.now)
    fab.advance(0.1)
    dp.sync()
    assert len(list(dp.every_pair(hosts))) == len(hosts) * (len(hosts) - 1)


def test_a_large_three_tier_fabric_reaches_every_leaf():
    """4 pods x 16 leaves with 8 spines each, under 8 spine planes of 2 super-spines
    (112 switches): sampled pairs reach their host, inter-pod ones over five tiers."""
    t0 = time.monotonic()
    fab, dp, hosts = fabric(pods=4, leaves=16, spines=8, supers=2, per_leaf=1)
    built = time.monotonic() - t0
    crossed = set()
    for a in range(1, len(hosts) + 1, 5):
        for b in range(3, len(hosts) + 1, 7):
            if a != b:
                t = dp.send(hosts, a, b, sport=a * 100 + b)
                assert t.delivered == [hosts[b][2:]], (a, b)
                crossed.update(h.dpid for h in t.hops)
    assert crossed >= set(fab.supers)
    assert fab.core.snapshot(fab.now).warnings == ()
    assert built < 60, built


def test_planes_are_each_a_fabric_of_their_own():
    """Two disconnected 2x2 fabrics under one controller: no warning, each its own
    plane; every pair in a plane reached, none across; a drain judged in its plane."""
    fab = planes(2, spines=2, leaves=2, hosts_per_leaf=2)
    dp, hosts = with_hosts(fab, 2)
    snap = fab.core.snapshot(fab.now)
    assert snap.warnings == ()
    assert {s.dpid: s.plane for s in snap.switches} == {
        1001: 1, 1002: 1, 2001: 1, 2002: 1, 1003: 2, 1004: 2, 2003: 2, 2004: 2}
    plane_of = {n: 1 if h[2] in (2001, 2002) else 2 for n, h in hosts.items()}
    for a in hosts:
        for b in hosts:
            if a != b:
                t = dp.send(hosts, a, b)
                assert bool(t.delivered) == (plane_of[a] == plane_of[b]), (a, b, t.hops)
    fab.maintain("drain_switch", 1001)  # plane 1 keeps 1002
    with pytest.raises(FailedPrecondition, match="leaf 2001 without a path to leaf 2002"):
        fab.maintain("drain_switch", 1002)
    fab.maintain("drain_switch", 1003)  # plane 2 keeps 1004, whatever plane 1 has left


def test_spines_do_not_follow_the_leaves_choice_under_open_vswitch_hashing():
    """Open vSwitch hashes alike at every switch: a spine's choice of super-spine would
    repeat the leaf's choice of spine (each spine using one super-spine of its plane)
    but for the spines' repeated up-buckets (config spine_uplink_repeats: auto)."""
    def supers_crossed(repeats: bool) -> set[int]:
        fab = three_tier(2, 2, 2, 2, 1, CoreSettings(te=None, spine_uplink_repeats=repeats))
        dp, hosts = with_hosts(fab, 1)
        dp.hashing = "ovs"
        crossed = set()
        for sport in range(64):
            t = dp.send(hosts, 1, 4, sport=40000 + sport)
            assert t.delivered == [hosts[4][2:]]
            crossed |= {h.dpid for h in t.hops} & set(fab.supers)
        return crossed

    assert supers_crossed(True) == {3001, 3002, 3003, 3004}
    assert len(supers_crossed(False)) == 2  # (polarized: the check above can fail)
