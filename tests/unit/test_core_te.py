"""Traffic engineering inside the core: the TE table, pins, failures, restart, events."""


import pytest

from controller.core import constants as C
from controller.core.errors import FailedPrecondition, NotFound
from controller.core.fabric.ecmp import group_towards
from controller.core.model.fabric_model import Port
from controller.core.model.job_spec import JobSpec
from controller.core.settings import CoreSettings
from controller.core.te import TCP, UDP, FlowKey, TeSettings
from tests.unit.fakefabric import FakeFabric, ip_frame, learn

HOSTS = {n: (f"00:00:00:00:00:{n:02x}", f"10.0.0.{n}") for n in range(1, 9)}
RATE = 5e6
DEFAULT_TE = TeSettings()


def te_fabric(te: TeSettings | None = DEFAULT_TE) -> FakeFabric:
    fab = FakeFabric(settings=CoreSettings(te=te, link_speed_bps=RATE))
    fab.connect_all()
    for n, h in HOSTS.items():
        leaf = 2001 + (n - 1) // 2
        learn(fab, leaf, 3 + (n - 1) % 2, h)
    fab.advance(0.1)
    fab.core.take_events()
    return fab


def packet(src: int, dst: int, sport: int, dport: int, proto: int = TCP,
           dscp: int = 0) -> bytes:
    return ip_frame(HOSTS[src], HOSTS[dst], sport, dport, proto, dscp)


def pins(fab: FakeFabric, leaf: int) -> dict:
    """The pins ``leaf`` gets at the next sync (which prepares the core first)."""
    fab.core.prepare(fab.now)
    desired, _ = fab.core.desired(leaf, fab.now)
    return {FlowKey.from_match(r.match): r for r in desired.flows.values()
            if r.table == C.TABLE_TE and C.cookie_kind(r.cookie) == C.KIND_PIN}


def spine_of(rule) -> int:
    gid = rule.instructions[0][1][0][1]
    return 1000 + gid - C.FF_GROUP_BASE  # leaf port i faces spine 1000+i


def test_te_pipeline_on_leaves_and_plain_ecmp_without_te():
    fab = te_fabric()
    desired, _ = fab.core.desired(2001, fab.now)
    remote = [r for r in desired.flows.values()
              if r.table == C.TABLE_FORWARD and r.priority == C.PRIO_HOST
              and dict(r.match)["eth_dst"] == HOSTS[3][0]]
    rid = fab.core.view().group_ids[2002]
    assert remote[0].instructions == (("write_metadata", rid, C.ROUTE_MASK),
                                      ("goto", C.TABLE_ROUTE))
    # the route writes its ECMP group into the action set; a pin in table 4 may replace it
    route = desired.flows[(C.TABLE_ROUTE, C.PRIO_ROUTE, (("metadata", rid),))]
    gid = group_towards(desired, rid).group_id
    assert route.instructions == (("write", (("group", gid),)), ("goto", C.TABLE_TE))
    te_table = {(r.priority, r.match) for r in desired.flows.values() if r.table == C.TABLE_TE}
    # the miss, and TCP and UDP copies from each of the two host ports through its meter
    assert (C.PRIO_TE_MISS, ()) in te_table and len(te_table) == 5
    tracks = [r for r in desired.flows.values() if r.table == C.TABLE_TE and r.priority ==
              C.PRIO_TRACK]
    assert {r.instructions[0][1][0] for r in tracks} == {
        ("meter_controller", C.TRACK_MAX_LEN, C.te_meter(p)) for p in (3, 4)}
    assert {C.te_meter(3), C.te_meter(4), C.host_meter(3), C.host_meter(4),
            C.METER_LLDP, C.METER_CONTROL} == set(desired.meters)
    ff = desired.groups[C.FF_GROUP_BASE + 1]
    assert ff.group_type == "ff" and [b.watch_port for b in ff.buckets] == [1, 2]
    spine, _ = fab.core.desired(1001, fab.now)
    assert spine.flows and not any(r.table == C.TABLE_TE for r in spine.flows.values())

    plain = te_fabric(te=None)
    desired, _ = plain.core.desired(2001, plain.now)
    assert desired.flows and not any(r.table == C.TABLE_TE for r in desired.flows.values())
    # ECMP towards each other leaf, by one shared select group, nothing else
    (shared,) = desired.groups.values()
    assert shared.group_type == "select"
    rids = plain.core.view().group_ids
    assert {r.match: r.instructions for r in desired.flows.values()
            if r.table == C.TABLE_ROUTE} == {
        (("metadata", rids[leaf]),): (("apply", (("group", shared.group_id),)),)
        for leaf in plain.leaves if leaf != 2001}
    seen = plain.core.traffic.flow_seen(2001, 3, packet(1, 3, 1000, 5201), plain.now)
    assert seen.touched == set()


def test_a_new_flow_gets_a_pin_at_its_ingress_leaf_only():
    fab = te_fabric()
    eff = fab.core.traffic.flow_seen(2001, 3, packet(1, 3, 40000, 5201), fab.now)
    assert eff.touched == {2001} and not eff.changed
    got = pins(fab, 2001)
    assert list(got) == [FlowKey("10.0.0.1", "10.0.0.3", TCP, 40000, 5201)]
    assert pins(fab, 2002) == {}
    # more copies of the same flow (the pin is on its way) change nothing
    assert fab.core.traffic.flow_seen(2001, 3, packet(1, 3, 40000, 5201), fab.now).touched == set()
    # flows starting together use both spines
    for sport in range(40001, 40004):
        fab.core.traffic.flow_seen(2001, 3, packet(1, 3, sport, 5201), fab.now)
    assert sorted(spine_of(r) for r in pins(fab, 2001).values()) == [1001, 1001, 1002, 1002]


def test_copies_from_uplinks_or_bad_packets_are_ignored():
    fab = te_fabric()
    assert fab.core.traffic.flow_seen(2001, 1, packet(1, 3, 1, 2), fab.now).touched == set()
    assert fab.core.counters["te_ignored_non_edge"] == 1
    assert fab.core.traffic.flow_seen(2001, 3, packet(1, 3, 1, 2)[:30], fab.now).touched == set()
    icmp = bytearray(packet(1, 3, 1, 2))
    icmp[14 + 9] = 1
    assert fab.core.traffic.flow_seen(2001, 3, bytes(icmp), fab.now).touched == set()
    assert fab.core.counters["bad_frames"] == 2
    assert pins(fab, 2001) == {}


def test_a_flow_from_an_address_its_port_is_not_bound_to_is_left_on_ecmp():
    """A host forging its source (another host's address, one nobody has, or from
    another port) cannot have TE track flows in other hosts' names: they would weigh as
    more hosts in the priority use and escape the port's share of the table."""
    fab = te_fabric()
    forged = [ip_frame(("00:00:00:00:00:01", "10.0.0.2"), HOSTS[3], 1, 80),  # h2's IP
              ip_frame(("00:00:00:00:00:01", "10.9.9.9"), HOSTS[3], 2, 80, dscp=34),
              ip_frame(("02:00:00:00:00:99", "10.0.0.1"), HOSTS[3], 3, 80),  # other MAC
              ip_frame(HOSTS[2], HOSTS[3], 4, 80)]  # h2's own, but from h1's port
    for frame in forged:
        eff = fab.core.traffic.flow_seen(2001, 3, frame, fab.now)
        assert eff.touched == set() and len(eff.ephemeral) == 1  # (its copies stop)
    assert fab.core.counters["te_declined_unbound_source"] == 4
    assert pins(fab, 2001) == {}
    # the same flows from the right port and address are placed
    assert fab.core.traffic.flow_seen(2001, 4, forged[3], fab.now).touched == {2001}
    assert fab.core.traffic.flow_seen(2001, 3, packet(1, 3, 5, 80), fab.now).touched == {2001}


def test_new_flows_per_host_port_are_rate_limited():
    fab = FakeFabric(settings=CoreSettings(te=TeSettings(), link_speed_bps=RATE,
                                           new_flow_rate=5))
    fab.connect_all()
    learn(fab, 2001, 3, HOSTS[1])
    learn(fab, 2002, 3, HOSTS[3])
    fab.advance(0.1)
    effects = [fab.core.traffic.flow_seen(2001, 3, packet(1, 3, s, 80), fab.now)
               for s in range(1, 20)]
    placed = sum(bool(e.touched) for e in effects)
    assert placed == 5 and fab.core.counters["te_new_flows_rate_limited"] == 14
    # each declined flow gets one self-expiring entry that stops its copies at the switch
    declined = [e.ephemeral for e in effects if not e.touched]
    assert [len(x) for x in declined] == [1] * 14
    dpid, rule, timeout = declined[0][0]
    assert (dpid, rule.table, rule.priority, timeout) == (2001, C.TABLE_TE, C.PRIO_NOCOPY, 10)
    assert C.cookie_kind(rule.cookie) == C.KIND_NOCOPY and rule.instructions == ()
    assert FlowKey.from_match(rule.match) == FlowKey(HOSTS[1][1], HOSTS[3][1], TCP, 6, 80)
    # and they stay out of what the switch should hold (the switch expires them)
    desired, _ = fab.core.desired(2001, fab.now)
    assert not any(C.cookie_kind(r.cookie) == C.KIND_NOCOPY for r in desired.flows.values())


def test_one_host_port_cannot_take_the_whole_flow_table():
    fab = FakeFabric(settings=CoreSettings(te=TeSettings(), link_speed_bps=RATE,
                                           max_flows_per_port=10))
    fab.connect_all()
    for n in (1, 2, 3):
        learn(fab, 2001 + (n - 1) // 2, 3 + (n - 1) % 2, HOSTS[n])
    fab.advance(0.1)
    for s in range(1, 30):
        fab.core.traffic.flow_seen(2001, 3, packet(1, 3, s, 80), fab.now)
        fab.now += 0.01
        if s % 5 == 0:
            fab.core.traffic.te_pass({}, fab.now)  # recounts each port's share
    from_h1 = [f for f in fab.core.traffic.te.flows.values() if f.key.src_ip == HOSTS[1][1]]
    assert len(from_h1) == 10
    assert fab.core.counters["te_port_share_full"] == 19
    # another port of the same leaf still gets its flows placed
    assert fab.core.traffic.flow_seen(2001, 4, packet(2, 3, 7, 80), fab.now).touched == {2001}


def test_priority_class_is_taken_from_the_dscp():
    from controller.core.fabric.qos import default_policy

    fab = FakeFabric(settings=CoreSettings(te=TeSettings(), link_speed_bps=RATE,
                                           qos=default_policy()))
    fab.connect_all()
    learn(fab, 2001, 3, HOSTS[1])
    learn(fab, 2002, 3, HOSTS[3])
    fab.advance(0.1)
    fab.core.traffic.flow_seen(2001, 3, packet(1, 3, 9, 4791, UDP, dscp=26), fab.now)
    (info,) = fab.core.traffic.flows(fab.now)
    assert info.priority and info.traffic_class != "best-effort"


def test_flows_leave_a_failed_link_within_the_same_event():
    fab = te_fabric()
    for sport in range(4):
        fab.core.traffic.flow_seen(2001, 3, packet(1, 3, 40000 + sport, 5201), fab.now)
    fab.core.take_events()
    # spine 1001 loses its link to leaf 2002: flows through spine 1001 must move
    eff = fab.core.port_status(1001, Port(2, "p2", up=False), False, fab.now)
    assert eff.changed
    assert {spine_of(r) for r in pins(fab, 2001).values()} == {1002}
    events = fab.core.take_events()
    reroutes = [e for e in events if e.kind == "reroute"]
    assert len(reroutes) == 2 and "port 1001:2 down" in reroutes[0].message
    assert any(e.kind == "link_down" for e in events)


def test_drain_moves_pinned_flows_away():
    fab = te_fabric()
    for sport in range(4):
        fab.core.traffic.flow_seen(2001, 3, packet(1, 3, 40000 + sport, 5201), fab.now)
    fab.maintain("drain_switch", 1001)
    assert {spine_of(r) for r in pins(fab, 2001).values()} == {1002}
    assert [e.kind for e in fab.core.take_events()].count("reroute") == 2


def test_a_reroute_names_the_change_that_caused_it():
    fab = te_fabric()
    for sport in range(4):
        fab.core.traffic.flow_seen(2001, 3, packet(1, 3, 40000 + sport, 5201), fab.now)
    fab.core.take_events()
    # two changes before the paths are next looked at: the one that moves the flows
    # (spine 1001 loses leaf 2002), then another that moves nothing of theirs
    fab.core.port_status(1001, Port(2, "p2", up=False), False, fab.now)
    fab.core.port_status(2004, Port(1, "p1", up=False), False, fab.now)
    fab.core.prepare(fab.now)
    reroutes = [e for e in fab.core.take_events() if e.kind == "reroute"]
    assert reroutes
    assert all("port 1001:2 down" in e.message for e in reroutes), [e.message for e in reroutes]


def test_congestion_pass_moves_a_large_flow_and_records_why():
    fab = te_fabric(TeSettings(congestion_intervals=2, rebalance=False))
    fab.core.traffic.flow_seen(2001, 3, packet(1, 3, 40000, 5201), fab.now)
    (key, rule), = pins(fab, 2001).items()
    first = spine_of(rule)
    port = first - 1000
    fab.core.traffic.pin_counters(2001, [(rule.match, rule.cookie, 0)], fab.now)
    fab.advance(1.0)
    fab.core.traffic.pin_counters(2001, [(rule.match, rule.cookie, 375_000)], fab.now)  # 3 Mbit/s
    hot = {(2001, port): 4.6e6}
    fab.core.traffic.te_pass(hot, fab.now)
    fab.advance(1.0)
    eff = fab.core.traffic.te_pass(hot, fab.now)
    assert eff.touched == {2001}
    assert spine_of(pins(fab, 2001)[key]) != first
    kinds = [e.kind for e in fab.core.take_events()]
    assert kinds == ["congestion", "reroute"]


def test_operator_pins_and_their_errors():
    fab = te_fabric()
    key = FlowKey("10.0.0.1", "10.0.0.3", UDP, 0, 4791)
    traffic = fab.core.traffic
    eff = traffic.set_pins(traffic.pins_with(key, 1002), fab.now)
    assert eff.touched == {2001} and traffic.te.flows[key].path.spine == 1002
    rule = pins(fab, 2001)[key]
    assert rule.priority == C.PRIO_PIN_OPERATOR and spine_of(rule) == 1002
    # a flow the wildcard covers is not placed by TE on its own
    assert fab.core.traffic.flow_seen(2001, 3, packet(1, 3, 7, 4791, UDP), fab.now).touched == set()
    with pytest.raises(NotFound, match="10.0.0.99"):
        traffic.pins_with(FlowKey("10.0.0.1", "10.0.0.99", UDP), 1002)
    with pytest.raises(FailedPrecondition, match="same leaf"):
        traffic.pins_with(FlowKey("10.0.0.1", "10.0.0.2", UDP), 1002)
    with pytest.raises(NotFound, match="4242"):
        traffic.pins_with(key, 4242)
    traffic.set_pins(traffic.pins_without(key), fab.now)
    assert pins(fab, 2001) == {}
    with pytest.raises(NotFound):
        traffic.pins_without(key)
    kinds = [e.kind for e in fab.core.take_events()]
    assert kinds == ["pin", "unpin"]
    off = te_fabric(te=None)
    with pytest.raises(FailedPrecondition, match="--no-te"):
        off.core.traffic.pins_with(key, 1002)


def test_with_te_off_the_core_holds_a_component_that_wants_nothing():
    off = te_fabric(te=None)
    traffic, now = off.core.traffic, off.now
    key = FlowKey("10.0.0.1", "10.0.0.3", TCP, 40000, 5201)
    assert traffic.te is None and traffic.te_topology() is None
    assert traffic.flows(now) == () and traffic.job_infos() == ()
    assert traffic.jobs.registered() == [] and traffic.shared_pins is None
    assert traffic.rebalance_job(now) is None and traffic.take_shared_moves() == {}
    assert not off.core.traffic.flow_seen(2001, 3, packet(1, 3, 40000, 5201), now).touched
    assert not off.core.prepare(now).touched and not off.core.traffic.te_pass({}, now).touched
    job = JobSpec("j", ("10.0.0.1", "10.0.0.3"), "ring")
    refused = [lambda: traffic.pins_with(key, 1001), lambda: traffic.set_pins({key: 1001}, now),
               lambda: traffic.pins_without(key), lambda: traffic.set_jobs([], now),
               lambda: traffic.restore_jobs([], now), lambda: traffic.jobs_with(job),
               lambda: traffic.jobs_without("j")]
    for command in refused:
        with pytest.raises(FailedPrecondition, match="--no-te"):
            command()


def test_pins_are_adopted_after_a_controller_restart():
    fab = te_fabric()
    for sport in range(4):
        fab.core.traffic.flow_seen(2001, 3, packet(1, 3, 40000 + sport, 5201), fab.now)
    traffic = fab.core.traffic
    traffic.set_pins(traffic.pins_with(FlowKey("10.0.0.2", "10.0.0.4", UDP, 0, 4791), 1001),
                     fab.now)
    held, _ = fab.core.desired(2001, fab.now)
    restarted = te_fabric()
    restarted.core.traffic.recover_pins(2001, list(held.flows.values()))
    restarted.core.prepare(restarted.now)  # (what a sync does first: the pins are adopted)
    again, _ = restarted.core.desired(2001, restarted.now)
    assert again.flows == held.flows
    by = {f.pinned_by for f in restarted.core.traffic.flows(restarted.now)}
    assert by == {"te", "operator"}


def test_idle_flows_are_forgotten_and_their_pins_removed():
    fab = te_fabric(TeSettings(flow_idle_timeout=5.0))
    fab.core.traffic.flow_seen(2001, 3, packet(1, 3, 40000, 5201), fab.now)
    fab.advance(6.0)
    eff = fab.core.traffic.te_pass({}, fab.now)
    assert eff.touched == {2001} and pins(fab, 2001) == {}


def test_a_flapping_switch_does_not_hold_back_the_rest_of_the_fabric():
    fab = te_fabric()
    for i in range(10):  # leaf 2004's session flaps every 0.4 s
        fab.core.discovery.switch_disconnected(2004)
        fab.deliver(fab.core.switch_connected(2004, fab.ports(2004), fab.now))
        fab.now += 0.4
        eff = fab.core.traffic.flow_seen(2001, 3, packet(1, 3, 1000 + i, 80), fab.now)
        assert eff.touched == {2001}, i  # placed at once, between other leaves
        _, complete = fab.core.desired(2002, fab.now)
        assert complete
    # a flow towards the flapping leaf waits (its placement would be a guess)
    eff = fab.core.traffic.flow_seen(2001, 3, packet(1, 7, 5, 80), fab.now)
    assert not eff.touched and eff.ephemeral


def test_desired_is_a_getter_and_prepare_is_the_step_that_re_places():
    fab = te_fabric()
    for sport in range(4):
        fab.core.traffic.flow_seen(2001, 3, packet(1, 3, 40000 + sport, 5201), fab.now)
    fab.core.prepare(fab.now)
    fab.core.take_events()
    fab.core.port_status(1001, Port(2, "p2", up=False), False, fab.now)
    fab.core.take_events()
    first, _ = fab.core.desired(2001, fab.now)
    again, _ = fab.core.desired(2001, fab.now)
    assert first == again
    assert not [e for e in fab.core.take_events() if e.kind == "reroute"]  # read, no moves
    eff = fab.core.prepare(fab.now)
    assert eff.touched == {2001}
    assert [e.kind for e in fab.core.take_events()].count("reroute") >= 1
    assert {spine_of(r) for r in pins(fab, 2001).values()} == {1002}


def test_reading_the_paths_after_a_change_does_not_skip_the_re_placement():
    fab = te_fabric()
    for sport in range(4):
        fab.core.traffic.flow_seen(2001, 3, packet(1, 3, 40000 + sport, 5201), fab.now)
    fab.core.prepare(fab.now)
    fab.core.port_status(1001, Port(2, "p2", up=False), False, fab.now)
    fab.core.traffic.flows(fab.now)  # a reader (the published flows) looks at the paths first
    fab.core.traffic.te_topology()
    assert fab.core.prepare(fab.now).touched == {2001}
    assert {spine_of(r) for r in pins(fab, 2001).values()} == {1002}


def placed(fab: FakeFabric) -> dict:
    """Every tracked flow and its spine, as the core shows them."""
    return {FlowKey(f.src_ip, f.dst_ip, TCP if f.protocol == "tcp" else UDP, f.src_port,
                    f.dst_port): f.spine for f in fab.core.traffic.flows(fab.now)}


def test_in_a_cluster_the_te_leader_moves_a_flow_its_leaf_master_placed():
    """Two instances: A masters leaf 2001 and places its flow; B masters the others and
    leads TE. B tracks A's flow as leaf 2001 holds it (its entry read back), relieves
    the congestion with it, and shares the move; A makes it. A, not the leader, moves
    nothing on its own."""
    te = TeSettings(congestion_intervals=2, rebalance=False)
    a, b = te_fabric(te), te_fabric(te)
    a.core.traffic.set_cluster_role(frozenset({2001}), leader=False)
    b.core.traffic.set_cluster_role(frozenset({1001, 1002, 2002, 2003, 2004}), leader=True)
    a.core.traffic.flow_seen(2001, 3, packet(1, 3, 40000, 5201), a.now)
    (key, rule), = pins(a, 2001).items()
    first = spine_of(rule)
    hot = {(2001, first - 1000): 4.6e6}

    def read(count: int) -> None:  # both read leaf 2001's entries (as A wrote them)
        for fab in (a, b):
            fab.core.traffic.pin_counters(2001, [(r.match, r.cookie, count)
                                                 for r in pins(a, 2001).values()], fab.now,
                                          all_pins=True)

    read(0)
    assert placed(b) == {key: first}
    for fab in (a, b):
        fab.advance(1.0)
    read(375_000)  # 3 Mbit/s
    for _ in range(2):
        assert a.core.traffic.te_pass(hot, a.now).touched == set()  # not the leader: no moves
        eff = b.core.traffic.te_pass(hot, b.now)
        for fab in (a, b):
            fab.advance(1.0)
    assert eff.touched == {2001}  # (B writes nothing there: the sync skips it)
    shared = b.core.traffic.take_shared_moves()
    assert list(shared) == [2001] and shared[2001][key][0] != first
    assert b.core.traffic.take_shared_moves() == {}
    assert spine_of(pins(a, 2001)[key]) == first  # not moved until A hears of it
    eff = a.core.traffic.apply_leader_moves(2001, shared[2001], "b", a.now)
    assert eff.touched == {2001} and spine_of(pins(a, 2001)[key]) == shared[2001][key][0]
    reroute = [e for e in a.core.take_events() if e.kind == "reroute"]
    assert "congestion" in reroute[0].message and "TE leader b" in reroute[0].message
    # a leaf A does not master: its moves are not A's to make
    assert a.core.traffic.apply_leader_moves(2002, shared[2001], "b", a.now).touched == set()


def test_a_leaf_another_instance_writes_is_tracked_as_its_switch_holds_it():
    fab = te_fabric()
    fab.core.traffic.set_cluster_role(frozenset({2002}), leader=True)
    from controller.core.fabric.qos import default_policy

    other = FakeFabric(settings=CoreSettings(te=TeSettings(), link_speed_bps=RATE,
                                             qos=default_policy()))
    other.connect_all()  # (the master of 2001, with the collective class)
    for n, h in HOSTS.items():
        learn(other, 2001 + (n - 1) // 2, 3 + (n - 1) % 2, h)
    other.advance(0.1)
    for sport in range(3):
        other.core.traffic.flow_seen(2001, 3, packet(1, 3, 40000 + sport, 4791, UDP, dscp=26),
                             other.now)
    held = pins(other, 2001)
    assert len(held) == 3  # (else what follows compares nothing)
    fab.core.traffic.pin_counters(2001, [(r.match, r.cookie, 0) for r in held.values()],
                                  fab.now, all_pins=True)
    assert placed(fab) == {
        k: spine_of(r) for k, r in held.items()}
    assert all(f.priority for f in fab.core.traffic.flows(fab.now))  # (the cookie says so)
    # the answer to the read of the leaf's job pair entries, or a part of an answer, says
    # nothing of the pins that are not in it
    fab.advance(TeSettings().min_move_interval)
    fab.core.traffic.pin_counters(2001, [], fab.now)
    (k, r), *_ = held.items()
    fab.core.traffic.pin_counters(2001, [(r.match, r.cookie, 5)], fab.now)
    assert placed(fab) == {k: spine_of(r) for k, r in held.items()}
    # later, the master moved one and the others ended: the leaf's entries say so
    other.core.traffic.apply_leader_moves(2001, {k: (2003 - spine_of(r), "test")}, "x", other.now)
    moved = pins(other, 2001)[k]
    fab.core.traffic.pin_counters(2001, [(moved.match, moved.cookie, 10)], fab.now, all_pins=True)
    assert placed(fab) == {k: spine_of(moved)}


def test_a_failure_re_places_only_the_flows_of_leaves_this_instance_writes():
    """A link failure: the flows of another instance's leaf are left to its master (the
    next reading of the leaf says where they went), this instance's own are moved."""
    fab = te_fabric()
    fab.core.traffic.set_cluster_role(frozenset({2002}), leader=True)
    other = te_fabric()
    for sport in range(4):
        other.core.traffic.flow_seen(2001, 3, packet(1, 5, 40000 + sport, 5201), other.now)
        fab.core.traffic.flow_seen(2002, 3, packet(3, 5, 41000 + sport, 5201), fab.now)
    held = [(r.match, r.cookie, 0) for r in pins(other, 2001).values()]
    fab.core.traffic.pin_counters(2001, held, fab.now, all_pins=True)
    fab.core.take_events()
    # spine 1001 loses its link to leaf 2003: flows through spine 1001 must move
    fab.core.port_status(1001, Port(3, "p3", up=False), False, fab.now)
    fab.core.prepare(fab.now)
    moved = [dict(e.fields) for e in fab.core.take_events() if e.kind == "reroute"]
    assert len(moved) == 2 and all(f["flow"].startswith("tcp 10.0.0.3:") for f in moved)
    assert {spine_of(r) for r in pins(fab, 2002).values()} == {1002}


def test_a_flow_is_shown_as_the_api_shows_it():
    """flow_info builds FlowInfo without its __init__: it must be the very value."""
    from dataclasses import fields

    from controller.core.snapshot import FlowInfo
    from controller.core.te.flows import flow_info

    fab = te_fabric()
    fab.core.traffic.flow_seen(2001, 3, packet(1, 3, 40000, 5201), fab.now)
    flow = fab.core.traffic.te.flows[FlowKey("10.0.0.1", "10.0.0.3", TCP, 40000, 5201)]
    got = flow_info(flow, True, flow.first_seen + 2.5)
    want = FlowInfo("10.0.0.1", "10.0.0.3", "tcp", 40000, 5201, 2001, 2002, flow.path.spine,
                    flow.path.port, 0.0, flow.demand_bps, flow.cls, False, True, "te", 2.5, 0)
    assert got == want and hash(got) == hash(want) and repr(got) == repr(want)
    assert [f.name for f in fields(FlowInfo)] == list(vars(got))
