"""The decision core driven through a simulated fabric: discovery, hosts, ARP, failures."""

from controller.core import constants as C
from controller.core.fabric.ecmp import group_towards
from controller.core.fabric.frames import (
    ARP_REPLY,
    build_lldp,
    parse_arp,
    parse_ethernet,
)
from controller.core.model.fabric_model import LinkEnd, Port
from controller.core.model.roles import LEAF, SPINE
from controller.core.settings import CoreSettings
from controller.core.southbound.openflow import Bucket, SwitchMirror
from tests.unit.core_checks import H1, H3, bucket_ports, discovered, towards_other_leaves
from tests.unit.fakefabric import (
    SECRET,
    FakeFabric,
    arp_reply,
    arp_request,
    ip_frame,
    learn,
)


def test_discovery_finds_every_link_and_role():
    fab = discovered()
    snap = fab.core.snapshot(fab.now)
    assert len(snap.links) == 16
    roles = {s.dpid: s.role for s in snap.switches}
    assert all(roles[d] == SPINE for d in fab.spines)
    assert all(roles[d] == LEAF for d in fab.leaves)
    assert snap.warnings == ()


def test_links_found_in_both_directions_at_connect_without_waiting_for_a_tick():
    fab = FakeFabric()
    for dpid in fab.spines + fab.leaves:
        fab.deliver(fab.core.switch_connected(dpid, fab.ports(dpid), fab.now))
        fab.deliver(fab.core.discovery.probe(dpid, fab.now))
    assert len(fab.core.fabric.cables()) == 8


def test_leaf_groups_spread_over_all_spines():
    fab = discovered()
    desired, complete = fab.core.desired(2001, fab.now)
    assert complete
    gid_l2 = fab.core.view().group_ids[2002]
    group = group_towards(desired, gid_l2)
    assert group.group_type == "select"
    assert sorted(b.actions[0][1] for b in group.buckets) == [1, 2]


def test_a_leaf_shares_one_group_between_leaves_and_a_cut_spine_link_moves_one_route():
    """Every other leaf is reached through the same spines: one select group, which the
    route of each leaf uses (not a group per leaf: a thousand leaves would need a
    million). Spine 1's link to l3 fails: at l1 the route towards l3 alone moves to a
    group over spine 2; the shared group stays as it was."""
    fab = discovered()
    before, _ = fab.core.desired(2001, fab.now)
    assert fab.core.desired(1001, fab.now)[1]  # (settled, for the last check)
    rids = fab.core.view().group_ids
    (shared,) = before.groups.values()
    assert shared.group_type == "select" and len(shared.buckets) == 2
    assert {rid: group_towards(before, rid) for leaf, rid in rids.items() if leaf != 2001} \
        == {rid: shared for leaf, rid in rids.items() if leaf != 2001}
    fab.core.port_status(2003, Port(1, "p1", up=False), False, fab.now)
    after, _ = fab.core.desired(2001, fab.now)
    plan = SwitchMirror(dict(before.flows), dict(before.groups)).plan(after)
    assert plan.group_mods == [] and plan.group_dels == [] and plan.flow_dels == []
    assert [g.buckets for g in plan.group_adds] == [(Bucket((("output", 2),), 1, 2),)]
    assert [r.match for r in plan.flow_adds + plan.flow_mods] == [(("metadata", rids[2003]),)]
    assert group_towards(after, rids[2003]) == plan.group_adds[0]
    assert group_towards(after, rids[2002]) == shared
    # (a spine keeps a group per leaf: spine 1 towards l3 has no bucket left)
    spine, _ = fab.core.desired(1001, fab.now)
    assert spine.groups[rids[2003]].buckets == () and len(spine.groups) == 4


def test_host_learned_on_leaf_edge_port_and_forwarded_everywhere():
    fab = discovered()
    eff = learn(fab, 2001, 3, H1)
    assert eff.hosts and not eff.changed  # (host entries alone)
    host = fab.core.fabric.hosts[H1[0]]
    assert (host.ip, host.dpid, host.port) == (H1[1], 2001, 3)
    local, _ = fab.core.desired(2001, fab.now)
    rule = local.flows[(C.TABLE_FORWARD, C.PRIO_HOST, (("eth_dst", H1[0]),))]
    assert rule.instructions == (("apply", (("output", 3),)),)
    remote, _ = fab.core.desired(2003, fab.now)
    rule = remote.flows[(C.TABLE_FORWARD, C.PRIO_HOST, (("eth_dst", H1[0]),))]
    rid = fab.core.view().group_ids[2001]  # (on to the route towards l1, over both spines)
    assert rule.instructions == (("write_metadata", rid, C.ROUTE_MASK),
                                 ("goto", C.TABLE_ROUTE))
    assert bucket_ports(remote)[rid] == [1, 2]
    spine, _ = fab.core.desired(1001, fab.now)
    rule = spine.flows[(C.TABLE_FORWARD, C.PRIO_HOST, (("eth_dst", H1[0]),))]
    assert rule.instructions == (("apply", (("group", rid),)),)


def test_unknown_arp_target_is_flooded_to_host_ports_only():
    fab = discovered()
    eff = learn(fab, 2001, 3, H1)
    targets = {(po.dpid, p) for po in eff.packet_outs for p in po.ports}
    expected = {(leaf, p) for leaf in fab.leaves for p in (3, 4)} - {(2001, 3)}
    assert targets == expected  # never a spine, never an uplink, never the ingress port


def test_known_arp_target_is_answered_by_the_controller():
    fab = discovered()
    learn(fab, 2002, 3, H3)
    eff = fab.core.packet_in(2001, 3, arp_request(H1, H3[1]), fab.now)
    assert len(eff.packet_outs) == 1
    po = eff.packet_outs[0]
    assert (po.dpid, po.ports) == (2001, (3,))
    reply = parse_arp(parse_ethernet(po.data).payload)
    assert (reply.opcode, reply.sender_mac, reply.sender_ip) == (ARP_REPLY, H3[0], H3[1])
    assert (reply.target_mac, reply.target_ip) == H1


def test_arp_reply_goes_to_the_requester():
    fab = discovered()
    learn(fab, 2001, 3, H1)
    eff = fab.core.packet_in(2002, 3, arp_reply(H3, H1), fab.now)
    assert [(po.dpid, po.ports) for po in eff.packet_outs] == [(2001, (3,))]
    assert H3[0] in fab.core.fabric.hosts


def test_no_host_learning_on_uplinks_or_spines_or_before_settling():
    fab = discovered()
    fab.core.packet_in(2001, 1, arp_request(H1, "10.0.0.9"), fab.now)  # uplink
    fab.core.packet_in(1001, 1, arp_request(H1, "10.0.0.9"), fab.now)  # spine
    assert fab.core.fabric.hosts == {}
    fresh = FakeFabric()
    for dpid in fresh.spines + fresh.leaves:
        fresh.deliver(fresh.core.switch_connected(dpid, fresh.ports(dpid), fresh.now))
    fresh.core.packet_in(2001, 3, arp_request(H1, "10.0.0.9"), fresh.now)
    assert fresh.core.fabric.hosts == {}


def test_lldp_forged_by_a_host_creates_no_link():
    fab = discovered()
    links_before = len(fab.core.fabric.links)
    forged = build_lldp(1001, 3, b"guessed-secret".ljust(32, b"0"), fab.now)
    fab.core.packet_in(2001, 3, forged, fab.now)
    # a genuine probe replayed back into the port it came out of: a self-loop
    genuine = build_lldp(2001, 3, SECRET, fab.now)
    fab.core.packet_in(2001, 3, genuine, fab.now)
    assert len(fab.core.fabric.links) == links_before
    assert fab.core.counters["rejected_lldp"] == 2


def test_port_down_removes_the_uplink_from_every_group_at_once():
    fab = discovered()
    learn(fab, 2002, 3, H3)
    gid = fab.core.view().group_ids[2002]
    eff = fab.core.port_status(2001, Port(1, "p1", up=False), False, fab.now)
    assert eff.changed
    desired, _ = fab.core.desired(2001, fab.now)
    assert [b.actions[0][1] for b in group_towards(desired, gid).buckets] == [2]
    # the far end (spine 1001 towards leaf 2001) no longer counts either
    other, _ = fab.core.desired(2003, fab.now)
    assert bucket_ports(other)[fab.core.view().group_ids[2001]] == [2]
    fab.core.port_status(2001, Port(1, "p1", up=True), False, fab.now)
    fab.advance(1.0)
    desired, _ = fab.core.desired(2001, fab.now)
    assert sorted(b.actions[0][1] for b in group_towards(desired, gid).buckets) == [1, 2]


def test_spine_disconnect_removes_it_everywhere_and_it_returns():
    fab = discovered()
    before = {leaf: fab.core.desired(leaf, fab.now)[0] for leaf in fab.leaves}
    fab.core.discovery.switch_disconnected(1001)
    for leaf in fab.leaves:
        desired, _ = fab.core.desired(leaf, fab.now)
        assert bucket_ports(desired) == towards_other_leaves(fab, leaf, [2]), leaf
        # its shared group changes in place: no route moves (a storm of spine sessions
        # lost would otherwise re-point every route of every leaf)
        held = before[leaf]
        plan = SwitchMirror(dict(held.flows), dict(held.groups), dict(held.meters)).plan(desired)
        assert (len(plan.group_mods), len(plan), plan.flow_adds) == (1, 1, []), plan
    fab.deliver(fab.core.switch_connected(1001, fab.ports(1001), fab.now))
    fab.deliver(fab.core.discovery.probe(1001, fab.now))
    desired, _ = fab.core.desired(2001, fab.now)
    assert bucket_ports(desired) == towards_other_leaves(fab, 2001, [1, 2])


def test_silent_link_failure_expires_after_the_timeout():
    fab = discovered()
    fab.unwire((2001, 1))  # no port-down event: the probes just stop arriving
    timeout = CoreSettings().link_timeout
    for _ in range(int(timeout / 0.25)):  # (ticks as the app's, the others' probes pass)
        fab.advance(0.25)
    assert len(fab.core.fabric.cables()) == 8
    for _ in range(int(2 / 0.25)):  # (within a round of probes after the timeout)
        fab.advance(0.25)
    assert len(fab.core.fabric.cables()) == 7


def test_links_are_kept_while_no_probe_gets_through_their_switches():
    """A switch working through a burst of flow-mods answers probes seconds late (and
    they are refused as stale): that is no evidence against its links, which stay until
    later probes get through its channel but not over them, or three timeouts pass."""
    fab = discovered()
    timeout = CoreSettings().link_timeout
    stamp = fab.now
    for _ in range(int(2 * timeout / 0.25)):  # every probe lost (late), none confirms
        fab.now += 0.25
        fab.core.tick(fab.now)
    assert len(fab.core.fabric.cables()) == 8
    fab.unwire((2001, 1))
    while fab.now - stamp < 2 * timeout + 3:  # they get through again, but over (2001, 1)
        fab.advance(0.25)
    assert len(fab.core.fabric.cables()) == 7
    fab.unwire((2002, 1))
    for _ in range(int(3 * timeout / 0.25) + 8):  # nothing gets through at all
        fab.now += 0.25
        fab.core.tick(fab.now)
    assert len(fab.core.fabric.cables()) == 0


def test_a_late_probe_confirms_its_link_while_the_link_would_still_live():
    """A probe is accepted up to the link timeout after it was built (a busy controller's
    probes wait behind its own work and arrive seconds late: refused at 2 s, links
    timed out by the thousand at 232 switches), and refused once older; while probes
    come back late, up to twice the delay seen (switches working through a burst), never
    past the bound a replayed probe is held to."""
    from controller.core.fabric.discovery import MAX_PROBE_AGE

    fab = discovered()
    timeout = CoreSettings().link_timeout
    link = fab.core.fabric.links[LinkEnd(2001, 1)]

    def late(seconds: float) -> float:
        """A probe of 2001:1 arriving ``seconds`` late: when the link last saw one."""
        probe = fab.core.discovery.probes(2001, [1], fab.now)[0].data
        fab.core.packet_in(1001, 1, probe, fab.now + seconds)
        return link.last_seen

    assert late(timeout - 0.5) == fab.now + timeout - 0.5
    assert fab.core.counters.get("rejected_lldp", 0) == 0
    ahead = fab.core.discovery.probes(2001, [1], fab.now + timeout + 0.5)[0].data
    fab.core.packet_in(1001, 1, ahead, fab.now)  # (stamped ahead: as old as it is ahead)
    assert fab.core.counters["rejected_lldp"] == 1
    seen = link.last_seen
    fab.now += 5.0  # (the delay seen a moment ago lets a probe 2 x 3 s late through)
    assert late(2 * (timeout - 0.5) - 0.1) == fab.now + 2 * (timeout - 0.5) - 0.1 > seen
    seen = link.last_seen
    assert late(MAX_PROBE_AGE + 0.5) == seen  # never past the replay bound
    assert fab.core.counters["rejected_lldp"] == 2
    fab.now += 60.0  # once the lateness is past, the link timeout again
    assert late(timeout + 0.5) == seen
    assert fab.core.counters["rejected_lldp"] == 3


def test_hosts_recovered_from_switch_entries_after_restart():
    fab = discovered()
    learn(fab, 2001, 3, H1)
    held, _ = fab.core.desired(2001, fab.now)
    restarted = FakeFabric()
    restarted.connect_all()
    restarted.core.edge.recover_hosts(2001, list(held.flows.values()), restarted.now)
    host = restarted.core.fabric.hosts[H1[0]]
    assert (host.ip, host.dpid, host.port, host.recovered) == (H1[1], 2001, 3, True)
    again, _ = restarted.core.desired(2001, restarted.now)
    assert again.flows == held.flows and again.groups == held.groups


def test_unsettled_switch_only_gets_the_lldp_entry():
    fab = FakeFabric()
    fab.deliver(fab.core.switch_connected(2001, fab.ports(2001), fab.now))
    desired, complete = fab.core.desired(2001, fab.now)
    assert not complete
    assert [r.match for r in desired.flows.values()] == [(("eth_type", C.ETH_TYPE_LLDP),)]


def test_flood_echo_is_dropped():
    fab = discovered()
    frame = arp_request(H1, "10.0.0.250")
    fab.core.packet_in(2001, 3, frame, fab.now)
    eff = fab.core.packet_in(2002, 3, frame, fab.now + 0.01)  # came back in elsewhere
    assert eff.packet_outs == [] and not (eff.changed or eff.hosts)
    assert fab.core.counters["flood_echo_dropped"] == 1


def test_flooding_is_rate_limited_per_port():
    fab = FakeFabric(settings=CoreSettings(flood_rate=1.0, flood_burst=3.0))
    fab.connect_all()
    floods = 0
    for i in range(10):
        eff = fab.core.packet_in(2001, 3, arp_request(H1, f"10.0.1.{i}"), fab.now)
        floods += bool(eff.packet_outs)
    assert floods == 3


def test_malformed_frames_change_nothing():
    fab = discovered()
    for junk in (b"", b"\x00" * 10, b"\xff" * 12 + b"\x08\x06" + b"\x00" * 5,
                 b"\xff" * 12 + b"\x88\xcc" + b"\xff" * 40):
        eff = fab.core.packet_in(2001, 3, junk, fab.now)
        assert eff.packet_outs == [] and not (eff.changed or eff.hosts)
    assert fab.core.fabric.hosts == {}


def test_packet_overtaking_its_entries_in_the_fabric_is_delivered():
    fab = discovered()
    learn(fab, 2002, 3, H3)
    frame = bytes.fromhex("000000000003" "000000000001" "0800") + b"\x45" + b"\x00" * 40
    eff = fab.core.packet_in(1001, 2, frame, fab.now)  # a spine miss
    assert [(po.dpid, po.ports) for po in eff.packet_outs] == [(2002, (3,))]


def test_a_frame_in_transit_to_a_host_not_known_yet_is_delivered_once_it_is():
    """In a cluster, another instance's entries can bring a frame to a spine before the
    frame that tells this instance of its destination (another switch's connection):
    it waits for the host, and goes out of its port when the host is learnt."""
    fab = discovered()
    learn(fab, 2001, 3, H1)
    frame = ip_frame(H1, H3, 1000, 2000)
    assert fab.core.packet_in(1001, 2, frame, fab.now).packet_outs == []  # (not known)
    eff = learn(fab, 2002, 3, H3)
    assert [(po.dpid, po.ports, po.data) for po in eff.packet_outs
            if po.data == frame] == [(2002, (3,), frame)]
    assert fab.core.counters["transit_miss_delivered"] == 1
    # delivered once: learnt again or other frames later, it is not sent again
    assert all(po.data != frame for po in learn(fab, 2002, 3, H3).packet_outs)


def test_transit_frames_wait_a_second_at_most_sixty_four_at_once_eight_a_port():
    from controller.core.fabric.edge import TRANSIT_WAIT, TRANSIT_WAIT_MAX, TRANSIT_WAIT_PORT

    fab = discovered()
    learn(fab, 2001, 3, H1)
    counters = fab.core.counters
    # from one port: eight wait, the rest are dropped
    for k in range(TRANSIT_WAIT_PORT + 2):
        fab.core.packet_in(1001, 2, ip_frame(H1, H3, 1000 + k, 2000), fab.now)
    assert (counters["transit_miss_waiting"], counters["transit_miss_dropped"]) == (
        TRANSIT_WAIT_PORT, 2)
    # from every fabric port: sixty-four in all
    ports = [(s, p) for s in fab.spines for p in range(1, 5)] + [
        (leaf, p) for leaf in fab.leaves for p in (1, 2)]
    for dpid, port in ports:
        for k in range(TRANSIT_WAIT_PORT):
            fab.core.packet_in(dpid, port, ip_frame(H1, H3, 3000 + k, 2000), fab.now)
    assert counters["transit_miss_waiting"] == TRANSIT_WAIT_MAX
    fab.advance(TRANSIT_WAIT + 0.5)  # (ticks expire them)
    assert counters["transit_miss_expired"] == TRANSIT_WAIT_MAX
    eff = learn(fab, 2002, 3, H3)
    assert all(po.ports != (3,) or po.dpid != 2002 for po in eff.packet_outs)
    # room again once they are gone
    h5 = ("00:00:00:00:00:05", "10.0.0.5")
    fab.core.packet_in(1001, 3, ip_frame(H1, h5, 999, 2000), fab.now)
    assert counters["transit_miss_waiting"] == TRANSIT_WAIT_MAX + 1
    assert [po.dpid for po in learn(fab, 2003, 3, h5).packet_outs
            if po.ports == (3,) and po.dpid == 2003] == [2003]


def test_a_transit_frame_past_its_wait_is_not_delivered_even_without_a_tick():
    from controller.core.fabric.edge import TRANSIT_WAIT

    fab = discovered()
    learn(fab, 2001, 3, H1)
    frame = ip_frame(H1, H3, 1000, 2000)
    fab.core.packet_in(1001, 2, frame, fab.now)
    later = fab.now + TRANSIT_WAIT + 4  # (no tick in between)
    eff = fab.core.packet_in(2002, 3, arp_request(H3, "10.0.0.250"), later)
    assert all(po.data != frame for po in eff.packet_outs)
    assert fab.core.counters["transit_miss_expired"] == 1


def test_recabling_replaces_the_old_link():
    fab = discovered()
    fab.unwire((2001, 1))
    fab.unwire((2002, 1))
    fab.wire((2001, 1), (1001, 2))  # leaf 1 now in spine 1's port that led to leaf 2
    fab.advance(1.0)  # (the next round of probes)
    links = fab.core.fabric.links
    from controller.core.model.fabric_model import LinkEnd

    assert links[LinkEnd(1001, 2)].dst == LinkEnd(2001, 1)
    assert LinkEnd(1001, 1) not in links or links[LinkEnd(1001, 1)].dst != LinkEnd(2001, 1)


def test_lldp_into_or_from_a_port_with_a_host_creates_no_link():
    fab = discovered()
    learn(fab, 2001, 3, H1)
    learn(fab, 2003, 3, H3)
    # a genuine, fresh probe of another host port, relayed by a colluding host
    relayed = build_lldp(2003, 3, SECRET, fab.now)
    fab.core.packet_in(2001, 3, relayed, fab.now)
    assert len(fab.core.fabric.links) == 16
    # and no probe is ever sent out of a port with a host to be captured
    eff = fab.core.tick(fab.now + 1)
    assert (2001, (3,)) not in {(po.dpid, po.ports) for po in eff.packet_outs}


def test_port_down_forgets_its_hosts():
    fab = discovered()
    learn(fab, 2001, 3, H1)
    fab.core.port_status(2001, Port(3, "p3", up=False), False, fab.now)
    assert H1[0] not in fab.core.fabric.hosts


def test_leaf_losing_its_controller_session_stays_reachable():
    fab = discovered()
    learn(fab, 2002, 3, H3)
    before, _ = fab.core.desired(2001, fab.now)
    fab.core.discovery.switch_disconnected(2002)
    fab.advance(10.0)  # far past the link timeout: frozen links do not expire
    after, _ = fab.core.desired(2001, fab.now)
    assert after.flows == before.flows and after.groups == before.groups
    assert H3[0] in fab.core.fabric.hosts
    # the API no longer lists links it cannot vouch for (leaf 2002's four), only the rest
    listed = {(lk.src_dpid, lk.dst_dpid) for lk in fab.core.snapshot(fab.now).links}
    assert listed == {(a, b) for leaf in fab.leaves if leaf != 2002 for spine in fab.spines
                      for a, b in ((leaf, spine), (spine, leaf))}
