"""The source guard at a leaf's host ports, traced through the switches' tables: IPv4
goes on only from the MAC and address bound at the port it came in on."""

from __future__ import annotations

from controller.core import constants as C
from controller.core.model.fabric_model import Port
from controller.core.settings import CoreSettings
from tests.unit.dataplane import DataPlane, ip_packet
from tests.unit.fakefabric import FakeFabric, ip_frame, learn

H1 = ("00:00:00:00:00:01", "10.0.0.1")  # leaf 2001 port 3
H2 = ("00:00:00:00:00:02", "10.0.0.2")  # leaf 2001 port 4
H3 = ("00:00:00:00:00:03", "10.0.0.3")  # leaf 2002 port 3
NEW = ("00:00:00:00:00:09", "10.0.0.9")  # not bound anywhere yet


def fabric(source_guard: bool = True) -> tuple[FakeFabric, DataPlane]:
    fab = FakeFabric(settings=CoreSettings(source_guard=source_guard))
    fab.connect_all()
    fab.deliver(learn(fab, 2001, 3, H1))
    fab.deliver(learn(fab, 2001, 4, H2))
    fab.deliver(learn(fab, 2002, 3, H3))
    fab.advance(0.1)
    dp = DataPlane(fab)
    dp.sync()
    return fab, dp


def test_a_bound_host_passes_and_a_neighbour_sending_as_it_does_not():
    fab, dp = fabric()
    assert dp.trace(2001, 3, ip_packet(H1, H3)).delivered == [(2002, 3)]
    # h2 sends as h1 (h1's address, its own MAC): up to the controller, not on
    forged = dp.trace(2001, 4, ip_packet((H2[0], H1[1]), H3))
    assert forged.delivered == [] and forged.to_controller == [2001]
    eff = fab.core.unbound_source(2001, 4, ip_frame((H2[0], H1[1]), H3, 40000, 5201),
                                  fab.now)
    assert eff.packet_outs == [] and not eff.changed  # dropped there, h2 keeps its binding
    assert fab.core.counters["source_guard_dropped"] == 1
    assert fab.core.fabric.hosts[H2[0]].ip == H2[1]
    # h2 with h1's MAC too: the same
    assert dp.trace(2001, 4, ip_packet(H1, H3)).delivered == []
    # h2 itself still passes
    assert dp.trace(2001, 4, ip_packet(H2, H3)).delivered == [(2002, 3)]


def test_a_claim_on_a_bound_address_from_a_new_mac_is_refused_and_its_owner_probed():
    fab, dp = fabric()
    frame = ip_frame((NEW[0], H1[1]), H3, 40000, 5201)
    eff = fab.core.unbound_source(2001, 4, frame, fab.now)
    assert fab.core.counters["host_conflicts"] == 1
    # only the probe of h1 leaves (an ARP request to h1's port), nothing towards h3
    assert [(po.dpid, po.ports) for po in eff.packet_outs] == [(2001, (3,))]
    assert NEW[0] not in fab.core.fabric.hosts


def test_a_host_that_speaks_ip_before_it_arps_is_learnt_and_then_passes():
    fab, dp = fabric()
    assert dp.trace(2002, 4, ip_packet(NEW, H1)).to_controller == [2002]
    eff = fab.core.unbound_source(2002, 4, ip_frame(NEW, H1, 40000, 5201), fab.now)
    assert eff.hosts and fab.core.fabric.hosts[NEW[0]].ip == NEW[1]
    assert [(po.dpid, po.ports) for po in eff.packet_outs] == [(2001, (3,))]  # delivered
    fab.deliver(eff)
    dp.sync()
    assert dp.trace(2002, 4, ip_packet(NEW, H1)).delivered == [(2001, 3)]


def test_dhcp_from_an_unbound_host_is_not_held_by_the_guard():
    fab, dp = fabric()
    dhcp = dict(ip_packet((NEW[0], "0.0.0.0"), ("ff:ff:ff:ff:ff:ff", "255.255.255.255"),
                          proto=17, sport=68, dport=67))
    rule = dp.switches[2002].lookup(C.TABLE_INGRESS, dict(dhcp, in_port=4))
    assert rule is not None and rule.priority == C.PRIO_GUARD_PASS


def test_a_port_that_just_came_up_is_guarded_only_once_it_settled():
    """It may face a switch whose LLDP has not arrived yet: transit traffic must not go
    to the controller meanwhile."""
    fab, dp = fabric()
    fab.deliver(fab.core.port_status(2003, Port(4, "p4", up=False), False, fab.now))
    fab.advance(0.1)
    fab.deliver(fab.core.port_status(2003, Port(4, "p4", up=True), False, fab.now))
    dp.sync()
    assert dp.trace(2003, 4, ip_packet(NEW, H1)).delivered == [(2001, 3)]
    fab.advance(fab.core.settings.settle_time + 0.1)  # the tick sees it settle
    dp.sync()
    assert dp.trace(2003, 4, ip_packet(NEW, H1)).to_controller == [2003]


def test_the_guard_can_be_turned_off():
    fab, dp = fabric(source_guard=False)
    assert dp.trace(2001, 4, ip_packet((H2[0], H1[1]), H3)).delivered == [(2002, 3)]
    assert not any(C.cookie_kind(r.cookie) == C.KIND_GUARD
                   for r in dp.switches[2001].flows.values())


def test_a_restarted_controller_keeps_the_guard_entries():
    """The guard's ports depend on the time (settled ones only): a view made before the
    switches settled (by any event, e.g. a link found) must not be used after, or the
    first sync deletes the guard's entries and the next adds them back."""
    fab, dp = fabric()
    held = {r.key for r in dp.switches[2001].flows.values()
            if C.cookie_kind(r.cookie) == C.KIND_GUARD}
    assert len(held) == 6  # two host ports: their punt, DHCP's pass, the host's pass
    again = FakeFabric(settings=fab.core.settings)
    again.now = fab.now + 10
    dp.controller_restarted(again)
    again.advance(0.5)
    again.core.view()  # (made while nothing has settled)
    again.now += 0.6  # their links found: a sync comes before the next tick
    for i in range(3):
        for plan in dp.sync().values():
            assert plan.flow_dels == [] and plan.flow_adds == [], plan
        # (the first sync's own step judged and settled them: the syncs are of the
        # complete state, which may delete, not additive ones)
        assert {d: again.core.is_settled(d, again.now) for d in dp.switches} == \
            dict.fromkeys(again.spines + again.leaves, True), i
        again.advance(0.4)
    assert {r.key for r in dp.switches[2001].flows.values()
            if C.cookie_kind(r.cookie) == C.KIND_GUARD} == held


def test_reading_the_core_at_a_later_time_changes_nothing_only_a_step_does():
    """Time enters the core through steps: reads (view, roles, desired, snapshot) at a
    later time write nothing that a step would not have, so two cores given the same
    steps want the same entries, however often one of them was read in between."""
    def built() -> FakeFabric:
        fab, _ = fabric()
        fab.deliver(fab.core.port_status(2003, Port(4, "p4", up=False), False, fab.now))
        fab.advance(0.1)
        fab.deliver(fab.core.port_status(2003, Port(4, "p4", up=True), False, fab.now))
        fab.deliver(fab.core.prepare(fab.now))
        return fab

    read, quiet = built(), built()
    later = read.now + read.core.settings.settle_time + 1  # port 2003:4 settled by then
    for when in (read.now, later, later + 100):
        read.core.view()
        read.core.roles()
        read.core.snapshot(when)
        for dpid in read.spines + read.leaves:
            read.core.desired(dpid, when)
            read.core.is_settled(dpid, when)
    guarded = read.core.view().guarded.get(2003, ())
    assert 4 not in guarded  # (no step saw it settle yet)
    for fab in (read, quiet):
        fab.now = later
        fab.deliver(fab.core.prepare(fab.now))
    assert 4 in read.core.view().guarded[2003]  # the step did
    for dpid in read.spines + read.leaves:
        assert read.core.desired(dpid, later) == quiet.core.desired(dpid, later)
