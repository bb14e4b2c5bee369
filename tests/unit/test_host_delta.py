"""Hosts that come, go, move or change address are sent to the switches as the entries
of those hosts alone (FabricCore.host_delta, HostLog), and the switches then hold
exactly what a plan of their whole state would give them."""

from __future__ import annotations

from controller.core import constants as C
from controller.core.fabric import host_log
from controller.core.fabric.forwarding import desired_state
from controller.core.fabric.hosts import HostSettings
from controller.core.model.fabric_model import Port
from controller.core.model.job_spec import JobSpec
from controller.core.settings import CoreSettings
from controller.core.southbound.openflow import make_match, uses_groups
from controller.core.te import TeSettings
from tests.unit.dataplane import DataPlane, ip_packet
from tests.unit.fakefabric import FakeFabric, arp_request, learn

H1 = ("00:00:00:00:00:01", "10.0.0.1")
H2 = ("00:00:00:00:00:02", "10.0.0.2")
H3 = ("00:00:00:00:00:03", "10.0.0.3")
H5 = ("00:00:00:00:00:05", "10.0.0.5")


def synced(te: bool = False, **hosts) -> tuple[FakeFabric, DataPlane]:
    """A 2x4 fabric with the source guard, H1 and H2 on leaf 2001, H3 on 2002, every
    switch synced whole."""
    fab = FakeFabric(settings=CoreSettings(source_guard=True, hosts=HostSettings(**hosts),
                                           te=TeSettings() if te else None))
    fab.connect_all()
    for leaf, port, host in ((2001, 3, H1), (2001, 4, H2), (2002, 3, H3)):
        fab.deliver(learn(fab, leaf, port, host))
    fab.advance(0.1)
    dp = DataPlane(fab)
    dp.sync()
    return fab, dp


def hosts_sync(fab: FakeFabric, dp: DataPlane, whole: bool = False) -> dict:
    """A sync after hosts alone changed, as the fabric app makes it (``whole``: it
    finds more changed, and plans every switch whole)."""
    plans = dict(dp.sync_engine.plans(fab.now, only=set(), hosts=True))
    assert dp.sync_engine.widened == whole
    for dpid, plan in plans.items():
        dp.switches[dpid].apply(plan)
    return plans


def host_key(mac: str) -> tuple:
    return (C.TABLE_FORWARD, C.PRIO_HOST, make_match(eth_dst=mac))


def holds_what_is_wanted(fab: FakeFabric, dp: DataPlane) -> None:
    """Every switch holds its whole desired state, and a plan of every switch whole
    finds nothing to send."""
    view = fab.core.view()
    for dpid, sw in dp.switches.items():
        want = {**desired_state(view, dpid).flows, **(fab.core.pins(dpid, fab.now) or {})}
        assert dict(sw.flows.items()) == want, dpid
    assert dp.sync() == {}


def test_a_host_learned_is_one_entry_on_every_switch_and_its_leaf_planned_whole():
    fab, dp = synced()
    gen = fab.core.host_log.gen
    eff = learn(fab, 2003, 3, H5)
    assert eff.hosts and not eff.changed
    plans = hosts_sync(fab, dp)
    assert fab.core.host_log.gen == gen + 1
    # every switch but its own leaf: the one entry towards it, nothing else
    for dpid in [*fab.spines, 2001, 2002, 2004]:
        plan = plans[dpid]
        assert [r.key for r in plan.flow_adds] == [host_key(H5[0])], dpid
        assert not (plan.flow_mods or plan.flow_dels or plan.group_adds or plan.group_mods)
    # its leaf: its entry out of the port, and the source guard's pass for it
    assert any(dict(r.match).get("ipv4_src") == H5[1] for r in plans[2003].flow_adds)
    holds_what_is_wanted(fab, dp)


def test_moved_readdressed_and_aged_out_hosts_leave_every_switch_as_a_whole_plan_would():
    fab, dp = synced(idle_timeout=60.0)
    # h1 readdressed on its port: its entry everywhere carries the new address (cookie)
    fab.deliver(learn(fab, 2001, 3, (H1[0], "10.0.0.11")))
    plans = hosts_sync(fab, dp)
    assert [r.key for r in plans[fab.spines[0]].flow_adds] == [host_key(H1[0])]
    holds_what_is_wanted(fab, dp)
    # h3 re-cabled to leaf 2004: gone with its port (a change of the fabric: synced
    # whole), then learned there (hosts alone)
    fab.deliver(fab.core.port_status(2002, Port(3, "p3", up=False), False, fab.now))
    dp.sync()
    eff = fab.core.packet_in(2004, 3, arp_request(H3, "10.0.0.251"), fab.now)
    assert eff.hosts and fab.core.fabric.hosts[H3[0]].dpid == 2004
    plans = hosts_sync(fab, dp)
    assert [r.key for r in plans[fab.spines[0]].flow_adds] == [host_key(H3[0])]
    holds_what_is_wanted(fab, dp)
    # h2 speaks, the others do not and age out: their entries go everywhere
    fab.advance(30.0)
    fab.deliver(learn(fab, 2001, 4, H2))
    fab.now += 31.0
    fab.deliver(fab.core.tick(fab.now))
    fab.advance(1.5)
    assert set(fab.core.fabric.hosts) == {H2[0]}
    plans = hosts_sync(fab, dp)
    assert {r.key for r in plans[fab.spines[1]].flow_dels} == {host_key(H1[0]),
                                                              host_key(H3[0])}
    holds_what_is_wanted(fab, dp)


def test_a_switch_planned_further_back_than_the_log_is_planned_whole(monkeypatch):
    monkeypatch.setattr(host_log, "KEPT", 2)
    fab, dp = synced()
    fab.core.host_log = host_log.HostLog()  # (with the short log)
    fab.core.host_log.gen = 10
    for dpid in dp.switches:
        dp.sync_engine.sessions[dpid].host_gen = 10
    sessions = dp.sync_engine.sessions
    sessions[2004].host_gen = 7  # (as if it missed syncs: not in the log any more)
    for i, leaf in enumerate((2003, 2003, 2004)):
        fab.deliver(learn(fab, leaf, 3 + (i == 1), (f"00:00:00:00:01:0{i}", f"10.0.1.{i}")))
        fab.core.view()
    assert fab.core.host_log.gen == 13 and fab.core.host_log.since(10) is None
    plans = hosts_sync(fab, dp)
    assert set(plans) == set(dp.switches)  # the three hosts everywhere, whole or not
    holds_what_is_wanted(fab, dp)
    assert all(s.host_gen == 13 for s in sessions.values())


def test_a_change_nobody_announced_is_found_with_a_leafs_first_host_and_synced_whole():
    fab, dp = synced()
    fab.core.maintenance.switches.add(fab.spines[1])  # (behind the core's back)
    learn(fab, 2003, 3, H5)  # (leaf 2003's first host: the view is derived again)
    hosts_sync(fab, dp, whole=True)
    holds_what_is_wanted(fab, dp)


def test_a_jobs_member_learned_places_the_job_with_the_paths_kept():
    """A host learned changes no path: TE keeps its topology and places a job that
    waited for it (its pair entries sent in the same sync)."""
    fab, dp = synced(te=True)
    te = fab.core.traffic
    job = JobSpec("j", (H1[1], H5[1]), "ring")  # (h5 not known yet)
    fab.deliver(te.set_jobs([job], fab.now))
    dp.sync()
    assert {p.state for p in te.job_infos()[0].pairs} == {"pending"}
    topo = te.te_topology()
    learn(fab, 2003, 3, H5)
    hosts_sync(fab, dp)
    assert te.te_topology() is topo  # (not derived again)
    (info,) = te.job_infos()
    assert {p.state for p in info.pairs} == {"placed"}
    for p in info.pairs:
        src, dst = (H1, H5) if p.src_ip == H1[1] else (H5, H1)
        leaf, port = (2001, 3) if src == H1 else (2003, 3)
        t = dp.trace(leaf, port, ip_packet(src, dst, proto=6, sport=40000, dport=80))
        assert t.spines == [p.spine], p
    holds_what_is_wanted(fab, dp)


def test_the_topology_snapshot_keeps_its_switches_and_links_while_hosts_alone_change():
    fab, dp = synced()
    before = fab.core.snapshot(fab.now)
    learn(fab, 2002, 4, H5)  # (leaf 2002 has a host already: hosts alone change)
    after = fab.core.snapshot(fab.now)
    assert after.links is before.links and after.switches is before.switches
    assert {h.mac for h in after.hosts} == {h.mac for h in before.hosts} | {H5[0]}
    # a leaf's first host: the view is derived again (before the next sync), finds
    # nothing else, and stands
    learn(fab, 2003, 3, ("00:00:00:00:00:06", "10.0.0.6"))
    derived = fab.core.derived
    assert fab.core._recheck and not fab.core.prepare(fab.now).changed
    assert not fab.core._recheck
    first = fab.core.snapshot(fab.now)
    assert fab.core.derived == derived
    assert first.links is before.links and len(first.hosts) == len(after.hosts) + 1
    fab.deliver(fab.core.port_status(2001, Port(1, "p1", up=False), False, fab.now))
    cut = fab.core.snapshot(fab.now)
    assert len(cut.links) == len(before.links) - 2  # (both directions of the cable)
    assert {(lk.src_dpid, lk.src_port) for lk in before.links} - {
        (lk.src_dpid, lk.src_port) for lk in cut.links} == {(2001, 1), (1001, 1)}


def groups_exist(dp: DataPlane) -> None:
    """Every entry of every switch sends only to groups the switch holds (a switch
    refuses one that does not: OFPBAC_BAD_OUT_GROUP)."""
    for dpid, sw in dp.switches.items():
        for rule in sw.flows.values():
            assert uses_groups(rule) <= set(sw.groups), (dpid, rule)


def test_hosts_changed_while_a_sync_of_every_switch_is_under_way_are_sent_whole():
    """A sync of every switch goes in slices; a host learned meanwhile is sent to the
    switches the sync has not reached yet with the rest of their new state (its entry
    sends to a group they would not hold yet)."""
    fab = FakeFabric(2, 5, settings=CoreSettings(source_guard=True))
    late = fab.leaves[-1]  # (a leaf that joins later: the spines get a group towards it)
    for dpid in fab.switches:
        if dpid != late:
            fab.deliver(fab.core.switch_connected(dpid, fab.ports(dpid), fab.now))
            fab.deliver(fab.core.discovery.probe(dpid, fab.now))
    for leaf, port, host in ((2001, 3, H1), (2002, 3, H3)):
        fab.deliver(learn(fab, leaf, port, host))
    for _ in range(3):
        fab.advance(1.0)
    dp = DataPlane(fab)
    dp.sync()
    fab.deliver(fab.core.switch_connected(late, fab.ports(late), fab.now))
    dp.read_back(late)
    for _ in range(3):
        fab.advance(1.0)
    first = dp.sync_engine.plans(fab.now, enough=lambda: True)  # (one switch, then stop)
    assert [d for d, _ in first] == [fab.spines[0]] and dp.sync_engine.left
    for dpid, plan in first:
        dp.switches[dpid].apply(plan)
    learn(fab, late, 3, H5)
    hosts_sync(fab, dp)
    groups_exist(dp)
    holds_what_is_wanted(fab, dp)


def test_reading_a_switchs_plan_does_not_count_as_sending_it():
    """What the API shows of a switch's pending plan (plan_for) is not taken as sent:
    the next sync still sends it a host learned before."""
    fab, dp = synced()
    learn(fab, 2003, 3, H5)
    spine = fab.spines[0]
    session = dp.sync_engine.sessions[spine]
    assert dp.sync_engine.plan_for(session, fab.now).flow_adds  # (read, not sent)
    plans = hosts_sync(fab, dp)
    assert [r.key for r in plans[spine].flow_adds] == [host_key(H5[0])]
    holds_what_is_wanted(fab, dp)
