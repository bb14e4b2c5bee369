from controller.core.fabric.forwarding import lldp_rule
from controller.core.southbound.openflow import (
    Bucket,
    FlowRule,
    GroupRule,
    SwitchDesired,
    SwitchMirror,
    apply_actions,
    make_match,
)


def rule(mac, port, cookie=1, prio=100):
    return FlowRule(1, prio, make_match(eth_dst=mac), apply_actions(("output", port)), cookie)


def group(gid, *ports):
    return GroupRule(gid, "select", tuple(Bucket((("output", p),), 1, p) for p in ports))


def test_identical_state_needs_nothing():
    desired = SwitchDesired.build([rule("a", 1), rule("b", 2)], [group(7, 1, 2)])
    mirror = SwitchMirror(dict(desired.flows), dict(desired.groups))
    assert len(mirror.plan(desired)) == 0


def test_entries_read_back_equal_to_what_is_wanted_are_held_as_the_wanted_objects():
    """A switch's entries read back (equal values, other objects) need nothing, and the
    mirror then holds the wanted objects (later plans skip comparing them); an entry
    with the wanted match but another cookie is re-added, and one nobody wants is still
    found for deletion when every wanted entry is held too."""
    desired = SwitchDesired.build([rule("a", 1), rule("b", 2, cookie=5)], [group(7, 1, 2)])
    mirror = SwitchMirror({r.key: r for r in [rule("a", 1), rule("b", 2), rule("x", 3)]},
                          {7: group(7, 1, 2)})
    plan = mirror.plan(desired)
    assert [r.match for r in plan.flow_adds] == [make_match(eth_dst="b")]
    assert [r.match for r in plan.flow_dels] == [make_match(eth_dst="x")]
    assert plan.group_adds == plan.group_mods == plan.group_dels == []
    key_a = rule("a", 1).key
    assert mirror.flows[key_a] is desired.flows[key_a]
    assert mirror.groups[7] is desired.groups[7]
    mirror.apply(plan)
    assert len(mirror.plan(desired)) == 0


def test_diff_adds_modifies_and_deletes_only_what_differs():
    mirror = SwitchMirror(
        {r.key: r for r in [rule("a", 1), rule("b", 2), rule("gone", 3)]},
        {7: group(7, 1, 2), 8: group(8, 1)},
    )
    desired = SwitchDesired.build(
        [rule("a", 1), rule("b", 4), rule("new", 5)], [group(7, 1), group(9, 2)]
    )
    plan = mirror.plan(desired)
    assert [r.match for r in plan.flow_adds] == [make_match(eth_dst="new")]
    assert [r.match for r in plan.flow_mods] == [make_match(eth_dst="b")]
    assert [r.match for r in plan.flow_dels] == [make_match(eth_dst="gone")]
    assert [g.group_id for g in plan.group_adds] == [9]
    assert [g.group_id for g in plan.group_mods] == [7]
    assert plan.group_dels == [8]
    mirror.apply(plan)
    assert len(mirror.plan(desired)) == 0


def test_cookie_change_is_an_add_not_a_modify():
    # OpenFlow MODIFY keeps the old cookie; the host's IP lives in it, so re-add.
    mirror = SwitchMirror({rule("a", 1, cookie=1).key: rule("a", 1, cookie=1)}, {})
    plan = mirror.plan(SwitchDesired.build([rule("a", 1, cookie=2)], []))
    assert len(plan.flow_adds) == 1 and not plan.flow_mods


def test_additive_plan_never_removes():
    mirror = SwitchMirror({rule("a", 1).key: rule("a", 1)}, {7: group(7, 1)})
    plan = mirror.plan(SwitchDesired.build([lldp_rule()], []), additive=True)
    assert plan.flow_adds == [lldp_rule()]
    assert not plan.flow_dels and not plan.group_dels


def test_conflicting_desired_rules_are_refused():
    import pytest

    with pytest.raises(ValueError):
        SwitchDesired.build([rule("a", 1), rule("a", 2)], [])


def test_os_ken_messages_round_trip_the_te_instructions():
    """What a switch reports back must equal what was sent, or every sync rewrites it."""
    from os_ken.ofproto import ofproto_v1_3 as ofp
    from os_ken.ofproto import ofproto_v1_3_parser as parser

    from apps import ofmsg
    from controller.core import constants as C
    from controller.core.southbound.openflow import FlowRule

    rules = [
        FlowRule(C.TABLE_FORWARD, C.PRIO_HOST, make_match(eth_dst="00:00:00:00:00:03"),
                 (("write", (("group", 2002),)), ("goto", C.TABLE_TE)), C.make_cookie(2, 3)),
        FlowRule(C.TABLE_TE, C.PRIO_PIN,
                 make_match(eth_type=0x800, ipv4_src="10.0.0.1", ipv4_dst="10.0.0.3",
                            ip_proto=17, udp_src=5, udp_dst=4791),
                 (("apply", (("group", C.FF_GROUP_BASE + 1),)), ("clear",)),
                 C.make_cookie(C.KIND_PIN)),
    ]
    for rule in rules:
        mod = ofmsg.flow_mod(None, rule, ofp.OFPFC_ADD)
        stat = parser.OFPFlowStats(table_id=mod.table_id, priority=mod.priority,
                                   cookie=mod.cookie, match=mod.match,
                                   instructions=mod.instructions)
        assert ofmsg.flow_from_stats(stat) == rule


def test_meters_are_planned_before_flows_and_removed_after():
    from controller.core.southbound.openflow import MeterRule

    mirror = SwitchMirror({}, {}, {1: MeterRule(1, 1000, 1000), 9: MeterRule(9, 5, 5),
                                   0x103: MeterRule(0x103, 50, 50)})
    desired = SwitchDesired.build([lldp_rule()], [], [MeterRule(1, 1000, 1000),
                                                      MeterRule(0x103, 100, 200),
                                                      MeterRule(0x104, 100, 200)])
    plan = mirror.plan(desired)
    assert [m.meter_id for m in plan.meter_adds] == [0x104]
    assert [m.meter_id for m in plan.meter_mods] == [0x103]
    assert plan.meter_dels == [9]
    assert mirror.plan(desired, additive=True).meter_dels == []
    mirror.apply(plan)
    assert len(mirror.plan(desired)) == 0


def test_metered_controller_action_round_trips_through_bytes():
    """OVS's controller(max_len, meter_id): os-ken lacks the meter_id property, which
    apps.ofmsg registers; sent and read back it must compare equal."""
    from os_ken.ofproto import ofproto_v1_3 as ofp
    from os_ken.ofproto import ofproto_v1_3_parser as parser

    from apps import ofmsg
    from controller.core import constants as C
    from controller.core.fabric.forwarding import to_controller
    from controller.core.southbound.openflow import MeterRule

    action = to_controller(C.te_meter(3), C.TRACK_MAX_LEN)
    buf = bytearray()
    ofmsg._action(action).serialize(buf, 0)
    assert ofmsg._parse_action(parser.OFPAction.parser(buf, 0)) == action
    rule = lldp_rule()
    mod = ofmsg.flow_mod(None, rule, ofp.OFPFC_ADD)
    stat = parser.OFPFlowStats(table_id=mod.table_id, priority=mod.priority,
                               cookie=mod.cookie, match=mod.match,
                               instructions=mod.instructions)
    assert ofmsg.flow_from_stats(stat) == rule
    meter = ofmsg.meter_mod(None, MeterRule(
        C.host_meter(4), 100, 200), ofp.OFPMC_ADD)
    conf = parser.OFPMeterConfigStats(flags=meter.flags, meter_id=meter.meter_id,
                                      bands=meter.bands)
    assert ofmsg.meter_from_config(conf) == MeterRule(C.host_meter(4), 100, 200)


class _Connection:
    """What apps.ofmsg.numbered needs of an os-ken Datapath, numbering as os-ken does."""

    def __init__(self) -> None:
        from os_ken.ofproto import ofproto_v1_3 as ofp
        from os_ken.ofproto import ofproto_v1_3_parser as parser
        self.ofproto, self.ofproto_parser, self.xid, self.sent = ofp, parser, 0, []

    def set_xid(self, msg) -> None:
        self.xid = (self.xid + 1) & self.ofproto.MAX_XID
        msg.set_xid(self.xid)

    def send_msg(self, msg) -> None:
        if msg.xid is None:
            self.set_xid(msg)
        msg.serialize()
        self.send(bytes(msg.buf))

    def send(self, buf: bytes) -> None:
        self.sent.append(buf)


def test_a_plan_sent_as_prebuilt_bytes_is_what_os_ken_would_send():
    """Flow- and group-mods are made into bytes once per entry (apps.ofmsg): byte for
    byte what os-ken's objects serialize to, numbered with the connection's next xid."""
    from os_ken.ofproto import ofproto_v1_3 as ofp
    from os_ken.ofproto import ofproto_v1_3_parser as parser

    from apps import ofmsg
    from controller.core import constants as C
    from controller.core.fabric.forwarding import to_controller
    from controller.core.southbound.openflow import (
        Bucket,
        GroupRule,
        MeterRule,
        SyncPlan,
        apply_actions,
    )

    flows = [
        lldp_rule(),
        FlowRule(C.TABLE_FORWARD, C.PRIO_HOST, make_match(eth_dst="00:00:00:00:00:03"),
                 (("write", (("group", 2002),)), ("goto", C.TABLE_TE)), C.make_cookie(2, 3)),
        FlowRule(C.TABLE_TE, C.PRIO_PIN,
                 make_match(eth_type=0x800, ipv4_src="10.0.0.1", ipv4_dst="10.0.0.3",
                            ip_proto=17, udp_src=5, udp_dst=4791),
                 (("apply", (("group", C.FF_GROUP_BASE + 1),)), ("clear",)), 7),
        FlowRule(1, 300, make_match(in_port=3, eth_type=0x800, ip_dscp=26),
                 (("apply", (("set_field", "ip_dscp", 34), ("set_queue", 2))),
                  ("goto", 2)), 9),
        FlowRule(C.TABLE_TE, 10, make_match(in_port=4),
                 apply_actions(to_controller(C.te_meter(4), C.TRACK_MAX_LEN)), 11),
    ]
    groups = [GroupRule(2002, "select", (Bucket((("output", 1),), 1, 1),
                                         Bucket((("output", 2),), 1, 2))),
              GroupRule(C.FF_GROUP_BASE + 1, "ff", (Bucket((("output", 1),), 1, 1),)),
              GroupRule(5, "all", (Bucket((("output", 3),)), Bucket((("output", 4),))))]
    plan = SyncPlan(meter_adds=[MeterRule(1, 100, 200)], group_adds=groups[:2],
                    group_mods=groups[2:], flow_adds=flows[:3], flow_mods=flows[3:],
                    flow_dels=flows[1:2], group_dels=[9], meter_dels=[4])
    fast, slow = _Connection(), _Connection()
    slow.xid = fast.xid = ofp.MAX_XID - 3  # (numbers wrap as os-ken's do)
    for msg in ofmsg.plan_messages(fast, plan):
        fast.send(ofmsg.numbered(fast, msg))
    for msg in ofmsg.plan_messages(fast, plan):  # (again, from the cache)
        fast.send(ofmsg.numbered(fast, msg))
    for _ in range(2):  # (os-ken's objects for the same plan, as they were sent before)
        for msg in [
            ofmsg.meter_mod(slow, plan.meter_adds[0], ofp.OFPMC_ADD),
            *(ofmsg.group_mod(slow, g, ofp.OFPGC_ADD) for g in plan.group_adds),
            *(ofmsg.group_mod(slow, g, ofp.OFPGC_MODIFY) for g in plan.group_mods),
            parser.OFPBarrierRequest(slow),
            *(ofmsg.flow_mod(slow, r, ofp.OFPFC_ADD) for r in plan.flow_adds),
            *(ofmsg.flow_mod(slow, r, ofp.OFPFC_MODIFY_STRICT) for r in plan.flow_mods),
            *(ofmsg.flow_mod(slow, r, ofp.OFPFC_DELETE_STRICT) for r in plan.flow_dels),
            parser.OFPBarrierRequest(slow),
            parser.OFPGroupMod(slow, ofp.OFPGC_DELETE, ofp.OFPGT_SELECT, 9, []),
            parser.OFPBarrierRequest(slow),
            parser.OFPMeterMod(slow, ofp.OFPMC_DELETE, 0, 4, []),
            parser.OFPBarrierRequest(slow),
        ]:
            slow.send_msg(msg)
    assert any(isinstance(m, bytes) for m in ofmsg.plan_messages(fast, plan))
    assert fast.sent == slow.sent and len(fast.sent) == 2 * 16
