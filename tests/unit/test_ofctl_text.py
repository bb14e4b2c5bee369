"""The core's entries written in ovs-ofctl syntax (the end-to-end drift check loads them
into a real bridge; here, the spelling of each kind of entry)."""

import pytest

from controller.core import constants as C
from controller.core.fabric.qos import default_policy
from controller.core.settings import CoreSettings
from controller.core.southbound.ofctl_text import flow_text, group_text, meter_text
from controller.core.southbound.openflow import (
    Bucket,
    FlowRule,
    GroupRule,
    MeterRule,
    apply_actions,
    make_match,
)
from controller.core.te import TeSettings
from tests.unit.fakefabric import FakeFabric


def test_a_host_entry():
    rule = FlowRule(C.TABLE_FORWARD, 100, make_match(eth_dst="00:00:00:00:00:03"),
                    apply_actions(("group", 2002)), 0xAF0200000A000003)
    assert flow_text(rule) == ("table=2,priority=100,cookie=0xaf0200000a000003,"
                               "eth_dst=00:00:00:00:00:03,actions=group:2002")


def test_masks_metered_punts_marking_and_goto():
    punt = FlowRule(1, 11, make_match(in_port=3, eth_dst=("01:00:00:00:00:00",) * 2),
                    apply_actions(("meter_controller", 65535, 259)), 0xAF01000000000000)
    assert flow_text(punt).endswith(
        "eth_dst=01:00:00:00:00:00/01:00:00:00:00:00,in_port=3,"
        "actions=controller(max_len=65535,meter_id=259)")
    mark = FlowRule(0, 503, make_match(in_port=3, eth_type=0x800, ip_proto=17, udp_dst=4791),
                    (("apply", (("set_field", "ip_dscp", 26), ("set_queue", 3))),
                     ("goto", 1)), 1)
    assert flow_text(mark) == ("table=0,priority=503,cookie=0x1,eth_type=0x800,in_port=3,"
                               "ip_proto=17,udp_dst=4791,"
                               "actions=set_field:26->ip_dscp,set_queue:3,goto_table:1")
    assert flow_text(FlowRule(1, 10, (), (), 1)).endswith("priority=10,cookie=0x1,actions=drop")


def test_groups_and_meters():
    ecmp = GroupRule(2002, "select", (Bucket((("output", 1),), 1, 1),
                                      Bucket((("output", 2),), 1, 2)))
    assert group_text(ecmp) == ("group_id=2002,type=select,"
                                "bucket=weight:1,watch_port:1,actions=output:1,"
                                "bucket=weight:1,watch_port:2,actions=output:2")
    ff = GroupRule(7, "ff", (Bucket((("output", 2),), watch_port=2),))
    assert group_text(ff) == "group_id=7,type=fast_failover,bucket=watch_port:2,actions=output:2"
    assert meter_text(MeterRule(259, 100, 200)) == (
        "meter=259,pktps,burst,stats,bands=type=drop,rate=100,burst_size=200")


def test_what_has_no_spelling_is_refused_not_guessed():
    with pytest.raises(ValueError, match="mpls_label"):
        flow_text(FlowRule(0, 1, make_match(mpls_label=3), (), 1))
    with pytest.raises(ValueError, match="push_vlan"):
        flow_text(FlowRule(0, 1, (), apply_actions(("push_vlan", 0x8100)), 1))


def test_every_entry_a_fabric_wants_has_a_spelling():
    fab = FakeFabric(settings=CoreSettings(qos=default_policy(), te=TeSettings()))
    fab.connect_all()
    spelled = {"flows": 0, "groups": 0, "meters": 0}
    for dpid in fab.spines + fab.leaves:
        desired, complete = fab.core.desired(dpid, fab.now)
        assert complete
        for rule in desired.flows.values():
            assert flow_text(rule).startswith(f"table={rule.table},")
        for group in desired.groups.values():
            assert group_text(group).startswith(f"group_id={group.group_id},")
        for meter in desired.meters.values():
            assert meter_text(meter).startswith(f"meter={meter.meter_id},")
        spelled["flows"] += len(desired.flows)
        spelled["groups"] += len(desired.groups)
        spelled["meters"] += len(desired.meters)
    # (entries of each kind, as many as switches at least: no loop above ran empty)
    assert min(spelled.values()) >= len(fab.spines + fab.leaves), spelled


def test_a_te_pin_uses_ovs_names_for_ipv4_addresses():
    from controller.core.te import FlowKey

    key = FlowKey("10.0.0.1", "10.0.0.3", 6, 40777, 5301)
    pin = FlowRule(C.TABLE_TE, 200, key.match(), (("apply", (("group", 7),)), ("clear",)), 3)
    assert flow_text(pin) == ("table=4,priority=200,cookie=0x3,eth_type=0x800,ip_proto=6,"
                              "ip_dst=10.0.0.3,ip_src=10.0.0.1,tcp_dst=5301,tcp_src=40777,"
                              "actions=group:7,clear_actions")
