"""apps.flowmod_bytes writes flow-mods byte for byte as os-ken does: every entry of a fabric's
desired state (TE, QoS and the source guard on, hosts, pins, drains), in each command."""

from __future__ import annotations

from os_ken.ofproto import ofproto_v1_3 as ofp

from apps import flowmod_bytes, ofmsg
from controller.core.settings import CoreSettings
from controller.core.southbound.openflow import FlowRule, make_match
from controller.core.te import TeSettings
from tests.unit.fakefabric import FakeFabric, ip_frame, learn

HOSTS = {n: (f"00:00:00:00:00:{n:02x}", f"10.0.0.{n}") for n in range(1, 9)}
COMMANDS = (ofp.OFPFC_ADD, ofp.OFPFC_MODIFY_STRICT, ofp.OFPFC_DELETE_STRICT)


def every_entry() -> list[FlowRule]:
    fab = FakeFabric(settings=CoreSettings(te=TeSettings(), link_speed_bps=5e6))
    fab.connect_all()
    for n, h in HOSTS.items():
        learn(fab, 2001 + (n - 1) // 2, 3 + (n - 1) % 2, h)
    fab.advance(1.5)
    for sport in range(40000, 40004):  # pins, TCP and UDP
        fab.core.traffic.flow_seen(2001, 3, ip_frame(HOSTS[1], HOSTS[3], sport, 5201,
                                                     6 if sport % 2 else 17, 0), fab.now)
    fab.maintain("drain_link", 2002, 2)
    fab.core.prepare(fab.now)
    rules = {}
    for dpid in fab.spines + fab.leaves:
        desired, _ = fab.core.desired(dpid, fab.now)
        rules.update({(dpid, k): r for k, r in desired.flows.items()})
    return list(rules.values())


def test_every_entry_is_written_as_os_ken_writes_it():
    rules = every_entry() + [
        FlowRule(0, 7, make_match(metadata=(0x12345, 0xFF)), (("goto", 3),), 1),  # (value
        # bits outside the mask: os-ken leaves them out)
        FlowRule(0, 7, make_match(in_port=1, metadata=(5, 0xFFFF), eth_src="02:00:00:00:00:01",
                                  ip_dscp=46, tcp_src=1, tcp_dst=2, udp_src=3),
                 (("apply", (("controller", 128), ("output", 2))),), 0x1234),
    ]
    written = 0
    for rule in rules:
        for command in COMMANDS:
            fast = flowmod_bytes.flow_mod(rule, command)
            if fast is None:
                continue
            written += 1
            assert fast == ofmsg.encode(ofmsg.flow_mod(ofmsg._NO_DP, rule, command)), rule
    tables = {r.table for r in rules if flowmod_bytes.flow_mod(r, ofp.OFPFC_ADD) is not None}
    assert written > 100 and len(tables) >= 4  # (most entries, of every table, are)
    # what is not written here is left to os-ken
    odd = [FlowRule(0, 1, make_match(vlan_vid=5), (), 0),
           FlowRule(0, 1, (), (("apply", (("set_queue", 2),)),), 0),
           FlowRule(0, 1, make_match(eth_dst="aa-bb-cc-dd-ee-ff"), (), 0),  # (forms os-ken
           FlowRule(0, 1, make_match(eth_type=0x800, ipv4_dst="10.0.0.0/24"), (), 0)]  # reads)
    assert [flowmod_bytes.flow_mod(r, ofp.OFPFC_ADD) for r in odd] == [None] * 4


def test_packet_outs_are_written_as_os_ken_writes_them():
    from os_ken.ofproto import ofproto_v1_3_parser as parser

    from controller.core.fabric.frames import build_lldp

    frame = build_lldp(2001, 3, b"k" * 32, 100.0)
    for ports in ((3,), (1, 2, 4), (0xFFFFFF00,)):
        msg = parser.OFPPacketOut(ofmsg._NO_DP, ofp.OFP_NO_BUFFER, ofp.OFPP_CONTROLLER,
                                  [parser.OFPActionOutput(p, 0) for p in ports], frame)
        assert ofmsg.packet_out_bytes(ports, frame) == ofmsg.encode(msg), ports
