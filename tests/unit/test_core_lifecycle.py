"""The decision core driven through a simulated fabric, over time: restarts, drains,
settling while links are found, switches forgotten."""

from controller.core import constants as C
from controller.core.effects import Effects
from controller.core.errors import FailedPrecondition, NotFound
from controller.core.fabric.discovery import HOLD_SETTLES
from controller.core.fabric.ecmp import group_towards
from controller.core.model.fabric_model import LinkEnd, Port
from controller.core.settings import CoreSettings
from controller.core.southbound.openflow import SwitchMirror
from tests.unit.core_checks import H1, H3, bucket_ports, discovered, towards_other_leaves
from tests.unit.fakefabric import (
    FakeFabric,
    learn,
)


def _hosts_on_every_leaf() -> dict:
    return {leaf: (f"00:00:00:00:00:0{2 * i + 1}", f"10.0.0.{2 * i + 1}")
            for i, leaf in enumerate(range(2001, 2005))}


def _running_with_hosts(hosts: dict):
    """A discovered fabric with one host on port 3 of each leaf in ``hosts``, and what
    every switch then holds (as mirrors the app would load when reading it back)."""

    fab = discovered()
    for leaf, host in hosts.items():
        learn(fab, leaf, 3, host)
    fab.advance(0.1)
    mirrors = {}
    for d in fab.spines + fab.leaves:
        desired, _ = fab.core.desired(d, fab.now)
        mirrors[d] = SwitchMirror(dict(desired.flows), dict(desired.groups),
                                  dict(desired.meters))
    return fab, mirrors


def _restart(fab, present, mirrors):
    """A fresh core to which the switches in ``present`` reconnect and are read back."""
    again = FakeFabric()
    again.now = fab.now + 10
    for dpid in present:
        again.deliver(again.core.switch_connected(dpid, again.ports(dpid), again.now))
        _read_back(again, dpid, mirrors[dpid])
    return again


def _read_back(again, dpid, mirror):
    flows = list(mirror.flows.values())
    again.core.traffic.recover_pins(dpid, flows)
    again.core.recover_layout(dpid, flows, list(mirror.groups.values()))
    again.deliver(again.core.edge.recover_hosts(dpid, flows, again.now))
    again.deliver(again.core.discovery.probe(dpid, again.now))


def _sync(again, mirrors, present):
    """What the app would send each connected switch now; applied to its mirror."""
    plans = {}
    for dpid in present:
        desired, complete = again.core.desired(dpid, again.now)
        keep = again.core.grace.kept_groups(dpid, mirrors[dpid], again.now)
        plans[dpid] = mirrors[dpid].plan(desired, additive=not complete, keep_groups=keep)
        mirrors[dpid].apply(plans[dpid])
    return plans


def test_restart_with_a_late_spine_changes_no_group_meanwhile():
    fab, mirrors = _running_with_hosts(_hosts_on_every_leaf())
    held = {d: (dict(m.flows), dict(m.groups)) for d, m in mirrors.items()}
    early = [1001] + fab.leaves
    again = _restart(fab, early, mirrors)
    for _ in range(6):  # spine 1002 stays away for 3 s
        again.advance(0.5)
        for plan in _sync(again, mirrors, early).values():
            assert plan.group_mods == [] and plan.group_dels == [] and plan.flow_dels == []
        # the leaves' ports towards the missing spine are not taken for host ports
        assert 2 not in again.core.host_ports(2001, again.now)
    again.deliver(again.core.switch_connected(1002, again.ports(1002), again.now))
    _read_back(again, 1002, mirrors[1002])
    again.advance(1.1)
    _sync(again, mirrors, early + [1002])
    assert {d: (dict(m.flows), dict(m.groups)) for d, m in mirrors.items()} == held


def test_restart_with_a_late_leaf_keeps_what_leads_to_it():
    fab, mirrors = _running_with_hosts(_hosts_on_every_leaf())
    held = {d: dict(m.flows) for d, m in mirrors.items()}
    early = fab.spines + fab.leaves[:3]
    again = _restart(fab, early, mirrors)
    for _ in range(8):  # leaf 2004 stays away for 4 s: nothing towards it is touched
        again.advance(0.5)
        for plan in _sync(again, mirrors, early).values():
            assert plan.flow_dels == [] and plan.group_dels == [] and plan.group_mods == []
    assert again.core.grace.frozen_groups(again.now) == {again.core.view().group_ids.get(
        2004, 2004)}
    # it is back: read back, settled, and every switch holds what it held before
    again.deliver(again.core.switch_connected(2004, again.ports(2004), again.now))
    _read_back(again, 2004, mirrors[2004])
    again.advance(1.1)
    _sync(again, mirrors, early + [2004])
    assert again.core.grace.frozen_groups(again.now) == frozenset()
    assert {d: dict(m.flows) for d, m in mirrors.items()} == held
    assert all(len(p) == 0 for p in _sync(again, mirrors, early + [2004]).values())


def test_a_leaf_that_never_comes_back_is_removed_after_the_grace_period():
    fab, mirrors = _running_with_hosts({2004: ("00:00:00:00:00:07", "10.0.0.7")})
    early = fab.spines + fab.leaves[:3]
    again = _restart(fab, early, mirrors)
    again.advance(1.1)
    _sync(again, mirrors, early)
    assert any(C.cookie_kind(r.cookie) == C.KIND_HOST and dict(r.match)["eth_dst"] ==
               "00:00:00:00:00:07" for r in mirrors[2001].flows.values())
    again.advance(again.core.settings.absent_timeout)
    plans = _sync(again, mirrors, early)
    # l1 forgets the host and its route towards l4; the spines their groups towards l4
    rid = again.core.view().group_ids.get(2004, 2004)
    assert {dict(r.match).get("eth_dst", dict(r.match).get("metadata"))
            for r in plans[2001].flow_dels} == {"00:00:00:00:00:07", rid}
    assert plans[1001].group_dels == [rid]


def test_drain_spine_and_link_then_undrain():
    import pytest

    fab = discovered()
    fab.maintain("drain_switch", 1001)
    for leaf in fab.leaves:
        desired, _ = fab.core.desired(leaf, fab.now)
        assert bucket_ports(desired) == towards_other_leaves(fab, leaf, [2]), leaf
    # with spine 1 drained, taking leaf 2001's other uplink would cut it off
    with pytest.raises(FailedPrecondition, match="without a path"):
        fab.maintain("drain_link", 2001, 2)
    with pytest.raises(FailedPrecondition, match="is a leaf"):
        fab.maintain("drain_switch", 2001)
    fab.maintain("undrain", 1001)
    fab.maintain("drain_link", 2001, 1)
    desired, _ = fab.core.desired(2001, fab.now)
    assert bucket_ports(desired) == towards_other_leaves(fab, 2001, [2])
    other, _ = fab.core.desired(2003, fab.now)
    assert bucket_ports(other)[fab.core.view().group_ids[2001]] == [2]
    snap = fab.core.snapshot(fab.now)
    assert {(lk.src_dpid, lk.dst_dpid) for lk in snap.links if lk.drained} == {
        (2001, 1001), (1001, 2001)}
    assert len(snap.links) == 16  # drained links are still links
    fab.maintain("undrain", 2001, 1)
    desired, _ = fab.core.desired(2001, fab.now)
    assert bucket_ports(desired) == towards_other_leaves(fab, 2001, [1, 2])


def test_a_drain_is_of_a_cable_and_undrain_at_a_recabled_port_says_what_it_did():
    fab = discovered()
    eff, message = fab.maintain("drain_link", 2001, 1)
    assert eff.changed and message == "link 1001:1 <-> 2001:1 drained"
    assert {(e.dpid, e.port) for e in fab.core.maintenance.drained_ends()} == {(1001, 1), (2001, 1)}
    # leaf 1's first uplink moves to spine 1's port that led to leaf 2: the drained cable
    # is gone, the new one is in service (a drain is not inherited by what is cabled next)
    fab.unwire((2001, 1))
    fab.unwire((2002, 1))
    fab.wire((2001, 1), (1001, 2))
    for _ in range(5):
        fab.advance(1.0)

    assert fab.core.fabric.links[LinkEnd(2001, 1)].dst == LinkEnd(1001, 2)
    assert fab.core.maintenance.drained_ends() == frozenset()
    desired, _ = fab.core.desired(2001, fab.now)
    towards_3 = group_towards(desired, fab.core.view().group_ids[2003])
    assert sorted(b.actions[0][1] for b in towards_3.buckets) == [1, 2]
    # undrain at the port clears the old record, and says which link it was
    eff, message = fab.maintain("undrain", 2001, 1)
    assert message == "link 1001:1 <-> 2001:1 back in service"
    assert fab.core.maintenance.cables == set()
    _, message = fab.maintain("undrain", 2001, 1)
    assert message == "link 1001:2 <-> 2001:1 is not drained"
    _, message = fab.maintain("undrain", 1001, 0)
    assert message == "switch 1001 is not drained"


def test_maintain_refuses_unknown_switches_and_ports():
    import pytest

    fab = discovered()
    with pytest.raises(NotFound, match="no switch"):
        fab.maintain("drain_switch", 42)
    with pytest.raises(NotFound, match="no link at 2001:3"):
        fab.maintain("drain_link", 2001, 3)
    with pytest.raises(NotFound, match="no link at 2001:3"):
        fab.maintain("undrain", 2001, 3)


def test_drained_spine_still_forwards_what_reaches_it():
    fab = discovered()
    fab.maintain("drain_switch", 1001)
    spine, _ = fab.core.desired(1001, fab.now)
    # in-flight traffic: a group towards every leaf, out of the port that leads to it
    gids = fab.core.view().group_ids
    assert bucket_ports(spine) == {gids[leaf]: [fab.wires[(leaf, 1)][1]] for leaf in fab.leaves}


def test_what_switches_hold_besides_hosts_is_kept_while_only_hosts_change():
    """A host learned, readdressed or aged out rebuilds the host entries of every switch
    and keeps the rest (groups, meters, control and guard entries); a link change drops
    both. Either way the result is what a rebuild from scratch gives."""
    from controller.core.fabric.forwarding import desired_state

    fab = FakeFabric(settings=CoreSettings(source_guard=True))
    fab.connect_all()
    fab.deliver(learn(fab, 2001, 3, H1))
    fab.advance(0.1)
    switches = fab.spines + fab.leaves

    def check() -> None:
        fab.core.prepare(fab.now)
        for d in switches:
            assert fab.core.desired(d, fab.now)[0] == desired_state(fab.core.view(), d), d

    check()
    base = dict(fab.core._base)
    assert set(base) == set(switches)
    fab.deliver(learn(fab, 2002, 3, H3))  # a new host
    fab.deliver(learn(fab, 2001, 3, (H1[0], "10.0.0.11")))  # h1 readdressed
    check()
    assert all(fab.core._base[d] is base[d] for d in switches)  # kept, not rebuilt
    held = fab.core.desired(2002, fab.now)[0].flows
    assert any(dict(r.match).get("ipv4_src") == H3[1] for r in held.values())  # its pass
    fab.deliver(fab.core.port_status(2001, Port(1, "p1", up=False), False, fab.now))
    # (a link went: everything is derived again)
    check()
    assert all(fab.core._base[d] is not base[d] for d in switches)
    # a change nobody announced (here: a spine drained behind the core's back) is found
    # when the view is derived again for a host, and taken in
    base = dict(fab.core._base)
    fab.core.maintenance.switches.add(1002)
    fab.deliver(learn(fab, 2003, 3, ("00:00:00:00:00:05", "10.0.0.5")))
    check()
    assert fab.core._base[2002] is not base[2002]


def test_a_group_towards_a_leaf_is_built_once_while_its_links_are_found():
    """A leaf that comes up while the others run has no role, so no group towards it,
    until its links have been found; then the others' groups towards it are built once,
    as they stay (no bucket added per link found)."""
    fab = FakeFabric()
    late = fab.leaves[-1]
    for dpid in fab.spines + fab.leaves[:-1]:
        fab.deliver(fab.core.switch_connected(dpid, fab.ports(dpid), fab.now))
        fab.deliver(fab.core.discovery.probe(dpid, fab.now))
    fab.advance(fab.core.settings.settle_time + 0.1)
    seen = []

    def towards_late():
        fab.deliver(fab.core.judge(fab.now))  # (the app's step at each tick)
        desired, _ = fab.core.desired(2001, fab.now)
        gid = fab.core.view().group_ids.get(late)
        return None if gid is None else bucket_ports(desired)[gid]

    fab.deliver(fab.core.switch_connected(late, fab.ports(late), fab.now))
    seen.append(towards_late())
    fab.deliver(fab.core.discovery.probe(late, fab.now))  # its links found
    seen.append(towards_late())
    for _ in range(8):
        fab.advance(0.25)
        seen.append(towards_late())
    assert fab.core.is_settled(late, fab.now)
    assert seen[:2] == [None, None] and seen[-1] == [1, 2]
    assert {tuple(s) for s in seen if s is not None} == {(1, 2)}


def test_a_leaf_settles_once_its_spines_links_are_found_or_after_a_while():
    """A leaf settles when its own links and those of the spines it is cabled to have
    been found (the wiring around it is known); a spine whose session keeps failing
    before that holds it back only for a while."""
    fab = FakeFabric()
    for dpid in fab.spines + fab.leaves:
        fab.deliver(fab.core.switch_connected(dpid, fab.ports(dpid), fab.now))
        fab.deliver(fab.core.discovery.probe(dpid, fab.now))
    settle, settled_at = fab.core.settings.settle_time, None
    for step in range(1, 40):
        fab.deliver(fab.core.discovery.switch_disconnected(1002))  # flaps every 0.25 s
        fab.deliver(fab.core.switch_connected(1002, fab.ports(1002), fab.now))
        fab.deliver(fab.core.discovery.probe(1002, fab.now))
        fab.advance(0.25)
        if settled_at is None and fab.core.is_settled(2001, fab.now):
            settled_at = step * 0.25
    assert 1002 not in fab.core.discovery.judged and 1001 in fab.core.discovery.judged
    assert 2 * settle < settled_at <= HOLD_SETTLES * settle + 0.5
    assert not fab.core.is_settled(1002, fab.now)


def test_a_spine_that_does_not_reach_a_leaf_is_not_used_towards_it():
    fab = FakeFabric()
    fab.unwire((1002, 4))  # spine 2 has no cable to leaf 4
    fab.connect_all()
    desired, _ = fab.core.desired(2001, fab.now)
    gids = fab.core.view().group_ids
    assert bucket_ports(desired)[gids[2004]] == [1]
    assert bucket_ports(desired)[gids[2002]] == [1, 2]


def test_switches_back_together_settle_on_links_found_again_not_on_expired_ones():
    """Every switch reconnects at once (Open vSwitch restarted): their first probes are
    lost (no peer holds its LLDP entry yet) just as the links kept from before would
    expire. Nothing got through their channels: the links are kept, confirmed by the
    next round of probes, and the switches settle with every spine in their groups."""
    fab = discovered()
    dpids = fab.spines + fab.leaves
    disc, settle = fab.core.discovery, fab.core.settings.settle_time
    for d in dpids:
        disc.switch_disconnected(d)
    fab.now += disc.pacer.link_max_age(disc.link_timeout) - settle  # (frozen meanwhile)
    for d in dpids:  # back, probed, and the probes lost
        fab.core.switch_connected(d, fab.ports(d), fab.now)
        disc.probe(d, fab.now)
    back, seen, sent, kept = fab.now, [], Effects(), True
    for _ in range(80):
        fab.now += 0.05
        if fab.now - back > settle:  # the probes of the step before come back (until
            fab.deliver(sent)  # the links kept from before would have expired: lost)
        sent = fab.core.tick(fab.now)
        kept = kept and len(fab.core.fabric.cables()) == 8
        fab.deliver(fab.core.judge(fab.now))
        if fab.core.is_settled(2001, fab.now):
            desired, _ = fab.core.desired(2001, fab.now)
            seen.append(bucket_ports(desired))
    assert kept and seen
    assert all(groups == towards_other_leaves(fab, 2001, [1, 2]) for groups in seen), seen


def test_a_switch_that_left_without_a_link_is_forgotten_one_with_links_is_kept():
    """Anyone who reaches the OpenFlow port could register made-up dpids: a switch
    disconnected for FORGET_UNLINKED_AFTER without a link is forgotten (its state, hence
    its metric series); a fabric switch that left keeps its frozen links and its place."""
    from controller.core.fabric.discovery import FORGET_UNLINKED_AFTER

    fab = discovered()
    for dpid in range(9001, 9021):  # twenty switches nothing is cabled to
        fab.deliver(fab.core.switch_connected(dpid, [Port(1, "p1")], fab.now))
    fab.advance(1.0)
    for dpid in list(range(9001, 9021)) + [1002]:
        fab.deliver(fab.core.discovery.switch_disconnected(dpid))
    fab.advance(1.0)
    assert len(fab.core.fabric.switches) == 6 + 20
    fab.advance(FORGET_UNLINKED_AFTER)
    assert sorted(fab.core.fabric.switches) == sorted(fab.switches)  # 1002 is kept
    assert not fab.core.fabric.is_connected(1002) and fab.core.fabric.link_ports(1002)
    assert {s.dpid for s in fab.core.snapshot(fab.now).switches} == set(fab.switches)
    # a forgotten dpid that connects again is a new switch, as on its first day
    fab.deliver(fab.core.switch_connected(9001, [Port(1, "p1")], fab.now))
    assert fab.core.fabric.is_connected(9001)
