"""The decision core driven through a simulated fabric: discovery, hosts, ARP, failures."""

from controller.core import constants as C
from controller.core.effects import Effects
from controller.core.errors import FailedPrecondition, NotFound
from controller.core.fabric.discovery import HOLD_SETTLES
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
from controller.core.southbound.openflow import Bucket, SwitchMirror, uses_groups
from tests.ecmp import ecmp_towards
from tests.unit.fakefabric import (
    SECRET,
    FakeFabric,
    arp_reply,
    arp_request,
    ip_frame,
    learn,
)

H1 = ("00:00:00:00:00:01", "10.0.0.1")
H3 = ("00:00:00:00:00:03", "10.0.0.3")


def discovered():
    fab = FakeFabric()
    fab.connect_all()
    return fab


def bucket_ports(desired) -> dict[int, list[int]]:
    """Where a switch's ECMP sends towards each leaf: route id -> the output ports of the
    buckets of its group (a leaf's by its route entries, a spine's select groups)."""
    routes = [(rid, min(uses_groups(rule), default=None))
              for (table, _, match), rule in desired.flows.items() if table == C.TABLE_ROUTE
              for k, rid in match if k == "metadata"]
    select = {gid: [b.actions[0][1] for b in g.buckets]
              for gid, g in desired.groups.items() if g.group_type == "select"}
    return ecmp_towards(routes, select)


def towards_other_leaves(fab, leaf: int, ports: list[int]) -> dict[int, list[int]]:
    """A leaf's groups as expected: one towards each other leaf, over ``ports``."""
    gids = fab.core.view().group_ids
    return {gids[other]: ports for other in fab.leaves if other != leaf}


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
    assert eff.changed
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
    timed out by the thousand at 232 switches), and refused once older."""
    fab = discovered()
    timeout = CoreSettings().link_timeout
    link = fab.core.fabric.links[LinkEnd(2001, 1)]
    probe = fab.core.discovery.probes(2001, [1], fab.now)[0].data
    seen = link.last_seen
    fab.core.packet_in(1001, 1, probe, fab.now + timeout - 0.5)
    assert link.last_seen == fab.now + timeout - 0.5 > seen
    assert fab.core.counters.get("rejected_lldp", 0) == 0
    fab.core.packet_in(1001, 1, probe, fab.now + timeout + 0.5)
    assert fab.core.counters["rejected_lldp"] == 1 and link.last_seen == fab.now + timeout - 0.5


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
    assert eff.packet_outs == [] and not eff.changed
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
        assert eff.packet_outs == [] and not eff.changed
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
    fab.advance(0.1)
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


def _hosts_on_every_leaf() -> dict:
    return {leaf: (f"00:00:00:00:00:0{2 * i + 1}", f"10.0.0.{2 * i + 1}")
            for i, leaf in enumerate(range(2001, 2005))}


def _running_with_hosts(hosts: dict):
    """A discovered fabric with one host on port 3 of each leaf in ``hosts``, and what
    every switch then holds (as mirrors the app would load when reading it back)."""
    from controller.core.southbound.openflow import SwitchMirror

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
    from controller.core.model.fabric_model import LinkEnd

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
