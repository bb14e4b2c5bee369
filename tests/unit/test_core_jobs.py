"""Registered jobs through the core and the fake data plane: pair entries hold every
connection of a pair on its spine, mark its class, follow failures, survive restarts."""

from __future__ import annotations

from collections import Counter

import pytest

from controller.core import constants as C
from controller.core.errors import FailedPrecondition, NotFound
from controller.core.fabric.qos import default_policy
from controller.core.model.fabric_model import Port
from controller.core.model.job_spec import JobError, JobRefused, JobSpec
from controller.core.settings import CoreSettings
from controller.core.te import TeSettings
from controller.core.te.job_book import JobExists
from tests.unit.dataplane import DataPlane, Switch, ip_packet
from tests.unit.fakefabric import FakeFabric, arp_request, ip_frame, learn

RATE = 5e6


def host(n: int) -> tuple[str, str]:
    return (f"00:00:00:00:00:{n:02x}", f"10.0.0.{n}")


def fabric(spines: int = 4, leaves: int = 4, per_leaf: int = 2, te: bool = True,
           spare_ports: int = 0):
    fab = FakeFabric(spines, leaves, per_leaf + spare_ports, settings=CoreSettings(
        te=TeSettings() if te else None, qos=default_policy(), link_speed_bps=RATE))
    fab.connect_all()
    hosts = {}
    for i, leaf in enumerate(fab.leaves):
        for j in range(per_leaf):
            n = i * per_leaf + j + 1
            learn(fab, leaf, spines + j + 1, host(n))
            hosts[n] = (*host(n), leaf, spines + j + 1)
    fab.advance(0.1)
    dp = DataPlane(fab)
    dp.sync()
    return fab, dp, hosts


def ring_members(hosts, leaves: int = 4) -> list[str]:
    """Rank r on leaf r mod 4, as the lab runs MPI: hosts 1,3,5,7,2,4,6,8."""
    order = sorted(hosts, key=lambda n: ((n - 1) % 2, (n - 1) // 2))
    return [hosts[n][1] for n in order]


def send(dp, hosts, a: int, b: int, **kw):
    src, dst = hosts[a], hosts[b]
    return dp.trace(src[2], src[3], ip_packet(src[:2], dst[:2], **kw))


def by_ip(hosts) -> dict[str, int]:
    return {h[1]: n for n, h in hosts.items()}


def register(fab, dp, spec: JobSpec) -> None:
    fab.deliver(fab.core.traffic.set_jobs(fab.core.traffic.jobs_with(spec), fab.now))
    dp.sync()


def test_a_ring_job_holds_every_connection_of_a_pair_on_its_spine():
    fab, dp, hosts = fabric()
    spec = JobSpec("ring1", tuple(ring_members(hosts)), "ring")
    register(fab, dp, spec)
    (info,) = fab.core.traffic.job_infos()
    assert info.state == "placed" and info.worst_link_pairs == 1  # 4 spines: disjoint
    num = by_ip(hosts)
    uplinks = Counter()
    for p in info.pairs:
        assert p.state == "placed" and p.spine in fab.spines
        a, b = num[p.src_ip], num[p.dst_ip]
        for proto, sport, dport in ((6, 40000, 5201), (6, 51000, 33000), (17, 4000, 4791)):
            t = send(dp, hosts, a, b, proto=proto, sport=sport, dport=dport)
            assert t.delivered == [hosts[b][2:]] and t.spines == [p.spine], (p, t.hops)
            assert t.to_controller == []  # no TE copy: the job decides
        uplinks[(p.src_leaf, p.uplink_port)] += 1
    assert max(uplinks.values()) == 1
    assert fab.core.traffic.flows(fab.now) == ()


def test_a_jobs_class_is_marked_at_the_edge():
    fab, dp, hosts = fabric()
    members = ring_members(hosts)[:4]
    register(fab, dp, JobSpec("c1", tuple(members), "ring", traffic_class="collective"))
    num = by_ip(hosts)
    t = send(dp, hosts, num[members[0]], num[members[1]])
    assert {h.dscp for h in t.hops} == {34}  # the collective class DSCP, from the edge on
    # a pair outside the job keeps its best-effort marking
    assert {h.dscp for h in send(dp, hosts, 2, 4).hops} == {0}


def test_a_neighbour_forging_a_members_address_gets_neither_class_nor_path():
    fab, dp, hosts = fabric()
    members = ring_members(hosts)[:4]  # hosts 1, 3, 5, 7: one per leaf
    register(fab, dp, JobSpec("c1", tuple(members), "ring", traffic_class="collective"))
    num = by_ip(hosts)
    a, b = num[members[0]], num[members[1]]
    real = send(dp, hosts, a, b, sport=45000)
    assert {h.dscp for h in real.hops} == {34} and real.to_controller == []
    # host 2 shares host 1's leaf and sends as host 1 (its address, its own MAC)
    liar = hosts[a + 1]
    assert liar[2] == hosts[a][2] and num.get(liar[1]) == a + 1
    forged = dp.trace(liar[2], liar[3], ip_packet((liar[0], hosts[a][1]), hosts[b][:2],
                                                  sport=45000))
    # the source guard sends it up at the liar's port, unmarked and unforwarded ...
    assert forged.delivered == [] and forged.to_controller == [liar[2]]
    assert {h.dscp for h in forged.hops} == {0}
    # ... where it is dropped: the liar's MAC is bound there with its own address
    frame = ip_frame((liar[0], hosts[a][1]), hosts[b][:2], 45000, 5201)
    eff = fab.core.unbound_source(liar[2], liar[3], frame, fab.now)
    assert eff.packet_outs == [] and not (eff.changed or eff.hosts)
    assert fab.core.counters.get("source_guard_dropped") == 1


def test_a_member_re_cabled_on_its_leaf_takes_its_pair_entries_along():
    fab, dp, hosts = fabric(spare_ports=1)
    members = ring_members(hosts)[:4]
    register(fab, dp, JobSpec("c1", tuple(members), "ring", traffic_class="collective"))
    num = by_ip(hosts)
    a, b = num[members[0]], num[members[1]]
    mac, ip, leaf, old = hosts[a]
    new = old + 2  # the spare port
    fab.deliver(fab.core.port_status(leaf, Port(old, f"p{old}", up=False), False, fab.now))
    # (a new ARP request: the same frame again would be taken for an echo of our flood)
    fab.deliver(fab.core.packet_in(leaf, new, arp_request((mac, ip), "10.0.0.251"), fab.now))
    hosts[a] = (mac, ip, leaf, new)
    fab.deliver(fab.core.traffic.te_pass({}, fab.now))
    dp.sync()
    t = send(dp, hosts, a, b, sport=45000)
    assert t.delivered == [hosts[b][2:]] and {h.dscp for h in t.hops} == {34}
    assert t.to_controller == []
    # the member's pair entries match on its new port only (none left on the old one)
    ports = {dict(r.match)["in_port"] for r in dp.switches[leaf].flows.values()
             if r.priority == C.PRIO_JOB and dict(r.match).get("ipv4_src") == ip}
    assert ports == {new}, ports


def test_a_cut_link_re_places_the_jobs_pairs_in_the_same_event():
    fab, dp, hosts = fabric()
    register(fab, dp, JobSpec("ring1", tuple(ring_members(hosts)), "ring"))
    leaf = fab.leaves[0]
    (info,) = fab.core.traffic.job_infos()
    port = next(p.uplink_port for p in info.pairs if p.src_leaf == leaf)
    dp.link_down((leaf, port))
    spine, sport = fab.wires[(leaf, port)]
    fab.core.port_status(leaf, Port(port, f"p{port}", up=False), False, fab.now)
    fab.core.port_status(spine, Port(sport, f"p{sport}", up=False), False, fab.now)
    dp.sync()  # (no tick, no TE pass: the same event)
    (info,) = fab.core.traffic.job_infos()
    num = by_ip(hosts)
    assert len(info.pairs) == 16  # a ring of 8, both directions
    for p in info.pairs:
        assert (p.src_leaf, p.uplink_port) != (leaf, port)
        assert not (p.spine == spine and p.dst_leaf == leaf)
        t = send(dp, hosts, num[p.src_ip], num[p.dst_ip], sport=45000)
        assert t.delivered == [hosts[num[p.dst_ip]][2:]] and t.spines == [p.spine]
    assert any(e.kind == "job_reroute" for e in fab.core.take_events())


def test_bad_jobs_are_refused_and_nothing_changes():
    fab, dp, hosts = fabric()
    members = tuple(ring_members(hosts))
    register(fab, dp, JobSpec("ring1", members, "ring"))
    before = {d: dict(s.flows) for d, s in dp.switches.items()}
    with pytest.raises(JobExists):
        fab.core.traffic.jobs_with(JobSpec("ring1", members[:2], "ring"))
    with pytest.raises(JobRefused) as err:
        fab.core.traffic.jobs_with(JobSpec("j2", (*members[:2], "10.0.0.99"), "ring"))
    assert err.value.field == "members[2]" and "10.0.0.99" in str(err.value)
    with pytest.raises(JobError) as err:
        fab.core.traffic.jobs_with(JobSpec("j3", members, "ring", traffic_class="gold"))
    assert err.value.field == "traffic_class" and "collective" in str(err.value)
    with pytest.raises(NotFound):
        fab.core.traffic.jobs_without("nope")
    assert [j.job_id for j in fab.core.traffic.job_infos()] == ["ring1"]
    assert dp.sync() == {}  # no switch has anything to be sent
    assert {d: dict(s.flows) for d, s in dp.switches.items()} == before


def test_jobs_need_traffic_engineering():
    fab, dp, hosts = fabric(te=False)
    with pytest.raises(FailedPrecondition, match="--no-te"):
        fab.core.traffic.jobs_with(JobSpec("r", tuple(ring_members(hosts)), "ring"))


def test_deleting_a_job_hands_its_pairs_back_to_ecmp_and_te():
    fab, dp, hosts = fabric()
    register(fab, dp, JobSpec("ring1", tuple(ring_members(hosts)), "ring"))
    eff = fab.core.traffic.set_jobs(fab.core.traffic.jobs_without("ring1"), fab.now)
    assert eff.touched == set(fab.leaves)  # every leaf held some of its pairs: synced
    fab.deliver(eff)
    dp.sync()
    assert fab.core.traffic.job_infos() == ()
    t = send(dp, hosts, 1, 3)
    assert t.to_controller == [hosts[1][2]]  # copied to TE again


def restarted(pattern: str, present_but: int | None = None):
    """A job registered and synced, then a fresh controller restoring it from the state
    file; the switches (all, or all but leaf index ``present_but``) reconnect and are
    synced three times, adding and deleting nothing. Returns what the test needs."""
    fab, dp, hosts = fabric()
    spec = JobSpec("ring1", tuple(ring_members(hosts)), pattern)
    register(fab, dp, spec)
    (info,) = fab.core.traffic.job_infos()
    before = {d: dict(s.flows) for d, s in dp.switches.items()}
    late = None if present_but is None else fab.leaves[present_but]
    again = FakeFabric(4, 4, 2, settings=fab.core.settings)
    again.now = fab.now + 10
    again.core.traffic.restore_jobs([spec], again.now)  # (from the state file)
    dp.controller_restarted(again, present=[d for d in dp.switches if d != late])
    for _ in range(3):
        again.advance(0.5)
        for plan in dp.sync().values():
            assert plan.flow_dels == [] and plan.flow_adds == [], plan
    # (those syncs were of the complete state, which may delete, not merely additive)
    assert all_complete(again, [d for d in dp.switches if d != late])
    return again, dp, info, before, late


def all_complete(fab, dpids) -> bool:
    """Whether every one of ``dpids`` (at least one) is settled, so has its complete
    desired state: a sync of it deletes what it should not hold (before, one only adds)."""
    return bool(dpids) and all(fab.core.is_settled(d, fab.now) for d in dpids)


def same_paths(a, b) -> bool:
    return [(p.src_ip, p.dst_ip, p.spine) for p in a.pairs] == \
        [(p.src_ip, p.dst_ip, p.spine) for p in b.pairs]


def test_a_restarted_controller_keeps_the_jobs_paths_and_changes_nothing():
    again, dp, info, before, _ = restarted("all_to_all")
    assert {d: dict(s.flows) for d, s in dp.switches.items()} == before
    (after,) = again.core.traffic.job_infos()
    assert same_paths(after, info)


def test_fewer_spines_than_pairs_per_leaf_shares_links_evenly():
    fab, dp, hosts = fabric(spines=2)
    register(fab, dp, JobSpec("ring1", tuple(ring_members(hosts)), "ring"))
    (info,) = fab.core.traffic.job_infos()
    uplinks = Counter((p.src_leaf, p.uplink_port) for p in info.pairs)
    forward = Counter((p.src_leaf, p.uplink_port) for p in info.pairs if p.step == 0)
    # each direction of the ring has an uplink per pair; both ways share them evenly
    assert info.worst_link_pairs == 1 and set(forward.values()) == {1}
    assert set(uplinks.values()) == {2}


def test_after_a_restart_a_job_waits_for_a_late_leaf_and_keeps_its_entries():
    again, dp, info, before, late = restarted("ring", present_but=3)
    (waiting,) = again.core.traffic.job_infos()
    # (the late leaf's hosts are not known yet: nothing read them back)
    assert waiting.state == "pending: 10.0.0.7, 10.0.0.8 not known as hosts yet"
    # the late leaf is back: the job is placed where the switches hold it
    again.deliver(again.core.switch_connected(late, again.ports(late), again.now))
    dp.read_back(late)
    again.deliver(again.core.discovery.probe(late, again.now))
    for _ in range(4):
        again.advance(0.5)
        dp.sync()
    assert {d: dict(s.flows) for d, s in dp.switches.items()} == before
    (after,) = again.core.traffic.job_infos()
    assert after.state == "placed" and same_paths(after, info)


def test_a_roce_job_holds_only_its_transport_and_te_places_the_rest():
    fab, dp, hosts = fabric()
    members = ring_members(hosts)[:4]
    register(fab, dp, JobSpec("r", tuple(members), "ring", transport="roce"))
    num = by_ip(hosts)
    a, b = num[members[0]], num[members[1]]
    leaf, port = hosts[a][2], hosts[a][3]
    # RoCE between members follows the job's entry: not copied, not tracked by TE
    assert send(dp, hosts, a, b, proto=17, sport=5000, dport=4791).to_controller == []
    fab.core.traffic.flow_seen(leaf, port, ip_frame(host(a), host(b), 5000, 4791, proto=17),
                               fab.now)
    assert fab.core.traffic.flows(fab.now) == ()
    # TCP between the same members is not the job's: TE places it
    assert send(dp, hosts, a, b, sport=40000, dport=5201).to_controller == [leaf]
    fab.deliver(fab.core.traffic.flow_seen(leaf, port, ip_frame(host(a), host(b), 40000, 5201),
                                   fab.now))
    assert [(f.protocol, f.dst_port) for f in fab.core.traffic.flows(fab.now)] == [("tcp", 5201)]


def test_a_shared_job_list_is_applied_whole_and_pending_until_members_are_known():
    from controller.core.intent.kinds import decode_jobs, encode_jobs

    fab, dp, hosts = fabric()
    ring = JobSpec("ring", tuple(ring_members(hosts)), "ring")
    later = JobSpec("later", ("10.0.0.1", "10.0.0.99"), "ring")  # .99 not seen yet
    shared = decode_jobs(encode_jobs([ring, later]))
    assert shared == [ring, later]
    fab.deliver(fab.core.traffic.set_jobs(shared, fab.now))
    dp.sync()
    assert [s.job_id for s in fab.core.traffic.jobs.specs()] == ["ring", "later"]
    assert fab.core.traffic.jobs.registered() == [ring, later]  # (what this instance writes next)
    infos = {j.job_id: j for j in fab.core.traffic.job_infos()}
    assert infos["ring"].pairs and {p.state for p in infos["ring"].pairs} == {"placed"}
    assert {p.state for p in infos["later"].pairs} == {"pending"}  # .99 is unknown here
    # every ring pair's traffic takes its assigned spine through the data plane
    ip = by_ip(hosts)
    for p in infos["ring"].pairs:
        t = send(dp, hosts, ip[p.src_ip], ip[p.dst_ip], proto=6, sport=40000, dport=80)
        assert t.spines == [p.spine], (p, t.hops)
    assert not fab.core.traffic.set_jobs(shared, fab.now).touched  # the same list: no change
    fab.deliver(fab.core.traffic.set_jobs([ring], fab.now))  # "later" deleted elsewhere
    assert [s.job_id for s in fab.core.traffic.jobs.specs()] == ["ring"]
    fab.deliver(fab.core.traffic.set_jobs([], fab.now))
    dp.sync()
    assert fab.core.traffic.jobs.specs() == []


def test_shared_pins_are_made_here_once_their_hosts_are_known():
    from controller.core.intent.kinds import decode_pins, encode_pins
    from controller.core.te import TCP, FlowKey

    fab, dp, hosts = fabric(per_leaf=2, spare_ports=1)
    known = FlowKey(hosts[1][1], hosts[3][1], TCP)  # leaf 1 -> leaf 2, any ports
    later = FlowKey(hosts[1][1], "10.0.0.99", TCP)  # .99 has not spoken yet
    pins = decode_pins(encode_pins({known: 1003, later: 1002}))
    assert pins == {known: 1003, later: 1002}
    fab.deliver(fab.core.traffic.set_pins(pins, fab.now))
    dp.sync()
    assert set(fab.core.traffic.unmet_pins) == {later}
    assert fab.core.traffic.shared_pins == pins  # unmet ones included: they are the cluster's
    t = send(dp, hosts, 1, 3, proto=TCP, sport=41000, dport=22)
    assert t.spines == [1003] and t.delivered == [hosts[3][2:]]
    # .99 appears on leaf 4's spare port: the pin is made at the next step
    leaf4 = fab.leaves[3]
    fab.deliver(learn(fab, leaf4, 4 + 2 + 1, ("00:00:00:00:00:63", "10.0.0.99")))
    fab.advance(0.1)
    dp.sync()
    assert fab.core.traffic.unmet_pins == {}
    got = {f.dst_ip: f.spine for f in fab.core.traffic.flows(fab.now) if f.pinned_by == "operator"}
    assert got == {hosts[3][1]: 1003, "10.0.0.99": 1002}
    # another instance unpinned one: gone here too
    fab.deliver(fab.core.traffic.set_pins({later: 1002}, fab.now))
    dp.sync()
    got = {f.dst_ip for f in fab.core.traffic.flows(fab.now) if f.pinned_by == "operator"}
    assert got == {"10.0.0.99"}
    with pytest.raises(ValueError, match="no path"):
        fab.core.traffic.pins_with(known, leaf4)  # (a leaf is no spine)


@pytest.mark.parametrize("spines_first", [False, True])
def test_switches_wiped_and_back_get_the_jobs_pairs_where_they_were(spines_first):
    """Open vSwitch restarted under a running controller: every table is gone, every
    switch reconnects and is probed again. The job waits for its leaves to settle and is
    then put back on the paths it had, not placed anew (which could move pairs that were
    fine: here it was placed with a link down, so anew would use that link again). Also
    when the spines' sessions were seen to end first, and the job was left with no path
    at all for a moment (its entries gone: CI saw the spines go 3 ms before the leaves)."""
    fab, dp, hosts = fabric()
    leaf, port = fab.leaves[0], 1
    spine, sport = fab.wires[(leaf, port)]
    for dpid, p, up in ((leaf, port, False), (spine, sport, False)):
        fab.deliver(fab.core.port_status(dpid, Port(p, f"p{p}", up=up), False, fab.now))
    dp.link_down((leaf, port))
    register(fab, dp, JobSpec("ring1", tuple(ring_members(hosts)), "ring"))
    for dpid, p in ((leaf, port), (spine, sport)):
        dp.switches[dpid].down.discard(p)
        fab.deliver(fab.core.port_status(dpid, Port(p, f"p{p}"), False, fab.now))
    fab.deliver(fab.core.discovery.probe(leaf, fab.now))
    for _ in range(4):
        fab.advance(0.5)
        dp.sync()
    (info,) = fab.core.traffic.job_infos()
    assert info.state == "placed" and all(p.spine != spine or p.src_leaf != leaf
                                          for p in info.pairs)
    before = {d: dict(s.flows) for d, s in dp.switches.items()}
    fab.core.take_events()
    if spines_first:
        for dpid in fab.spines:
            fab.deliver(fab.core.discovery.switch_disconnected(dpid))
        dp.sync()
        (gone,) = fab.core.traffic.job_infos()
        assert {p.state for p in gone.pairs} == {"no path"}, gone
    for dpid in fab.switches:
        fab.deliver(fab.core.discovery.switch_disconnected(dpid))
    fab.advance(0.5)
    waited = False
    for dpid in fab.switches:
        dp.switches[dpid] = Switch(dpid=dpid)
        fab.deliver(fab.core.switch_connected(dpid, fab.ports(dpid), fab.now))
        dp.read_back(dpid)
    for _ in range(8):
        (now,) = fab.core.traffic.job_infos()
        waited = waited or now.state.startswith("pending")
        fab.advance(0.5)
        dp.sync()
    (after,) = fab.core.traffic.job_infos()
    assert waited and after.state == "placed" and same_paths(after, info)
    assert {d: dict(s.flows) for d, s in dp.switches.items()} == before
    assert not [e for e in fab.core.take_events() if e.kind == "job_reroute"]
