"""The fake OpenFlow 1.3 switch (tests/fakes): table semantics, groups, meters, the
pipeline, the wire, and a small fleet over real TCP to a scripted controller."""

from __future__ import annotations

import socket
import struct
import time
from types import SimpleNamespace

import pytest
from os_ken.ofproto import ofproto_parser
from os_ken.ofproto import ofproto_v1_3 as ofp
from os_ken.ofproto import ofproto_v1_3_parser as p

from tests.fakes.fields import Match, OFError
from tests.fakes.fleet import Fleet
from tests.fakes.layout import Layout, spine_leaf
from tests.fakes.oftables import Port
from tests.fakes.switch import FakeSwitch

DP = SimpleNamespace(ofproto=ofp, ofproto_parser=p, id=1)
OURS = 0xAF << 56
KIND = 0xFF << 48


def cookie(kind: int, low: int = 0) -> int:
    return OURS | kind << 48 | low


def wire(msg) -> bytes:
    msg.set_xid(7)
    msg.serialize()
    return bytes(msg.buf)


def parse(data: bytes):
    version, mtype, length, xid = struct.unpack_from("!BBHI", data)
    return ofproto_parser.msg(DP, version, mtype, length, xid, data)


def switch(nports: int = 4, limit: int = 0xFFFF) -> FakeSwitch:
    ports = [Port(i, f"fk1-p{i}", f"02:00:00:00:00:{i:02x}") for i in range(1, nports + 1)]
    sw = FakeSwitch(1, ports, reply_limit=limit)
    sw.session_started()
    return sw


def send(sw: FakeSwitch, msg) -> list:
    replies, _ = sw.handle(wire(msg), time.monotonic())
    return [parse(r) for r in replies]


def ok(sw: FakeSwitch, msg) -> None:
    got = send(sw, msg)
    assert got == [], got


def refused(sw: FakeSwitch, msg) -> tuple[int, int]:
    (err,) = send(sw, msg)
    assert isinstance(err, p.OFPErrorMsg)
    return err.type, err.code


def apply(*actions):
    return [p.OFPInstructionActions(ofp.OFPIT_APPLY_ACTIONS, list(actions))]


def flow(table=0, prio=10, match=None, ins=(), ck=0, cmd=ofp.OFPFC_ADD, mask=0, **kw):
    kw = {"out_port": ofp.OFPP_ANY, "out_group": ofp.OFPG_ANY, **kw}
    return p.OFPFlowMod(DP, cookie=ck, cookie_mask=mask, table_id=table, command=cmd,
                        priority=prio, match=match or p.OFPMatch(), instructions=list(ins),
                        **kw)


def frame(dst="00:00:00:00:00:02", src="00:00:00:00:00:01", ip=None, proto=17, sport=1000,
          dport=2000, dscp=0, etype=0x0800) -> bytes:
    eth = bytes.fromhex(dst.replace(":", "")) + bytes.fromhex(src.replace(":", ""))
    if ip is None:
        return eth + struct.pack("!H", etype) + bytes(46)
    s, d = (bytes(int(x) for x in a.split(".")) for a in ip)
    iph = struct.pack("!BBHHHBBH4s4s", 0x45, dscp << 2, 28, 0, 0, 64, proto, 0, s, d)
    return eth + b"\x08\x00" + iph + struct.pack("!HHHH", sport, dport, 8, 0) + bytes(18)


def outs(sw: FakeSwitch, port: int, data: bytes) -> list[int]:
    return [f.port for f in sw.pipeline.receive(port, data, time.monotonic())
            if hasattr(f, "port")]


# --- tables ----------------------------------------------------------------------------------
def test_highest_priority_match_wins_and_masks_apply():
    sw = switch()
    ok(sw, flow(prio=5, ins=apply(p.OFPActionOutput(1))))
    ok(sw, flow(prio=20, match=p.OFPMatch(eth_dst=("01:00:00:00:00:00", "01:00:00:00:00:00")),
                ins=apply(p.OFPActionOutput(2))))
    ok(sw, flow(prio=30, match=p.OFPMatch(eth_type=0x0800, ipv4_dst=("10.1.0.0", "255.255.0.0")),
                ins=apply(p.OFPActionOutput(3))))
    ok(sw, flow(prio=40, match=p.OFPMatch(eth_type=0x0800, ip_proto=17,
                                          udp_dst=(4790, 0xFFFE)), ins=apply(p.OFPActionOutput(4))))
    assert outs(sw, 1, frame()) == []  # (back out of its own in_port: dropped)
    assert outs(sw, 2, frame()) == [1]
    assert outs(sw, 1, frame(dst="ff:ff:ff:ff:ff:ff")) == [2]
    assert outs(sw, 1, frame(ip=("10.0.0.1", "10.1.2.3"), dport=53)) == [3]
    assert outs(sw, 1, frame(ip=("10.0.0.1", "10.2.2.3"), dport=4791)) == [4]
    assert outs(sw, 1, frame(ip=("10.0.0.1", "10.2.2.3"), dport=4792)) == []


def test_add_replaces_same_match_and_priority_and_modify_keeps_cookie():
    sw = switch()
    m = p.OFPMatch(eth_type=0x0806)
    ok(sw, flow(match=m, ck=1, ins=apply(p.OFPActionOutput(1))))
    outs(sw, 2, frame(etype=0x0806))
    assert sw.flows()[0]["packets"] == 1
    ok(sw, flow(match=m, ck=2, ins=apply(p.OFPActionOutput(3))))
    (e,) = sw.flows()
    assert (e["cookie"], e["packets"], e["instructions"]) == (2, 0, (("apply", (("output", 3),)),))
    outs(sw, 2, frame(etype=0x0806))
    ok(sw, flow(match=m, ck=99, cmd=ofp.OFPFC_MODIFY_STRICT, ins=apply(p.OFPActionOutput(4))))
    (e,) = sw.flows()  # OpenFlow 1.3: modify changes instructions, not cookie or counters
    assert (e["cookie"], e["packets"], e["instructions"][0][1]) == (2, 1, (("output", 4),))
    ok(sw, flow(match=p.OFPMatch(eth_type=0x0800), prio=3, cmd=ofp.OFPFC_MODIFY,
                ins=apply(p.OFPActionOutput(1))))
    assert len(sw.flows()) == 1  # (modify never adds)


def test_delete_strict_versus_delete_with_cookie_mask():
    sw = switch()
    ok(sw, flow(prio=10, match=p.OFPMatch(eth_type=0x0806), ck=cookie(1)))
    ok(sw, flow(prio=20, match=p.OFPMatch(eth_type=0x0806), ck=cookie(2, 5)))
    ok(sw, flow(prio=20, match=p.OFPMatch(eth_type=0x0806, arp_op=1), ck=cookie(2, 6)))
    ok(sw, flow(table=2, prio=20, match=p.OFPMatch(in_port=1), ck=cookie(2, 7),
                ins=apply(p.OFPActionOutput(3))))
    # strict: exact match and priority only (cookie mask still filters)
    ok(sw, flow(prio=20, match=p.OFPMatch(eth_type=0x0806), cmd=ofp.OFPFC_DELETE_STRICT,
                ck=cookie(1), mask=OURS | KIND))
    assert len(sw.flows()) == 4
    ok(sw, flow(prio=20, match=p.OFPMatch(eth_type=0x0806), cmd=ofp.OFPFC_DELETE_STRICT))
    assert {f["cookie"] for f in sw.flows()} == {cookie(1), cookie(2, 6), cookie(2, 7)}
    # non-strict: every entry at least as specific, any priority, in every table
    ok(sw, flow(table=ofp.OFPTT_ALL, cmd=ofp.OFPFC_DELETE, ck=cookie(2), mask=OURS | KIND))
    assert {f["cookie"] for f in sw.flows()} == {cookie(1)}


def test_delete_with_out_port_and_the_table_miss():
    sw = switch()
    ok(sw, flow(prio=1, match=p.OFPMatch(in_port=1), ins=apply(p.OFPActionOutput(2))))
    ok(sw, flow(prio=1, match=p.OFPMatch(in_port=2), ins=apply(p.OFPActionOutput(3))))
    ok(sw, flow(cmd=ofp.OFPFC_DELETE, table=ofp.OFPTT_ALL, out_port=3))
    assert [f["match"] for f in sw.flows()] == [{"in_port": 1}]
    assert outs(sw, 4, frame()) == []  # no table-miss entry: dropped


def test_requests_a_switch_refuses_change_nothing():
    sw = switch()
    E = ofp
    assert refused(sw, flow(match=p.OFPMatch(tcp_dst=80))) == (E.OFPET_BAD_MATCH,
                                                               E.OFPBMC_BAD_PREREQ)
    assert refused(sw, flow(table=2, ins=[p.OFPInstructionGotoTable(1)])) == (
        E.OFPET_BAD_INSTRUCTION, E.OFPBIC_BAD_TABLE_ID)
    assert refused(sw, flow(ins=apply(p.OFPActionGroup(9)))) == (E.OFPET_BAD_ACTION,
                                                                 E.OFPBAC_BAD_OUT_GROUP)
    assert refused(sw, flow(ins=[p.OFPInstructionMeter(3)])) == (E.OFPET_METER_MOD_FAILED,
                                                                 E.OFPMMFC_UNKNOWN_METER)
    assert refused(sw, flow(ins=apply(p.OFPActionSetField(ip_dscp=8)))) == (
        E.OFPET_BAD_ACTION, E.OFPBAC_MATCH_INCONSISTENT)
    with pytest.raises(OFError) as bits:  # (os-ken masks values itself: built here)
        Match({"eth_dst": (0x010000000001, 0x010000000000)})
    assert (bits.value.type, bits.value.code) == (E.OFPET_BAD_MATCH, E.OFPBMC_BAD_WILDCARDS)
    assert refused(sw, flow(match=p.OFPMatch(in_port=(1, 1)))) == (E.OFPET_BAD_MATCH,
                                                                   E.OFPBMC_BAD_MASK)
    ok(sw, p.OFPGroupMod(DP, ofp.OFPGC_ADD, ofp.OFPGT_INDIRECT, 1,
                         [p.OFPBucket(actions=[p.OFPActionOutput(1)])]))
    assert refused(sw, p.OFPGroupMod(DP, ofp.OFPGC_ADD, ofp.OFPGT_INDIRECT, 1,
                                     [p.OFPBucket(actions=[p.OFPActionOutput(1)])])) == (
        E.OFPET_GROUP_MOD_FAILED, E.OFPGMFC_GROUP_EXISTS)
    assert refused(sw, p.OFPGroupMod(DP, ofp.OFPGC_MODIFY, ofp.OFPGT_ALL, 2, [])) == (
        E.OFPET_GROUP_MOD_FAILED, E.OFPGMFC_UNKNOWN_GROUP)
    assert refused(sw, p.OFPMeterMod(DP, ofp.OFPMC_MODIFY, ofp.OFPMF_PKTPS, 5,
                                     [p.OFPMeterBandDrop(10, 10)])) == (
        E.OFPET_METER_MOD_FAILED, E.OFPMMFC_UNKNOWN_METER)
    assert sw.flows() == [] and list(sw.groups()) == [1] and sw.meters() == {}


def test_overlap_check_and_match_relations():
    sw = switch()
    ok(sw, flow(match=p.OFPMatch(in_port=1)))
    assert refused(sw, flow(match=p.OFPMatch(eth_type=0x0806),
                            flags=ofp.OFPFF_CHECK_OVERLAP)) == (ofp.OFPET_FLOW_MOD_FAILED,
                                                                ofp.OFPFMFC_OVERLAP)
    ok(sw, flow(prio=11, match=p.OFPMatch(eth_type=0x0806), flags=ofp.OFPFF_CHECK_OVERLAP))
    wide = Match.of(eth_type=0x0800, ipv4_dst=("10.0.0.0", "255.0.0.0"))
    narrow = Match.of(eth_type=0x0800, ipv4_dst="10.1.1.1", ip_proto=6)
    assert narrow.within(wide) and not wide.within(narrow) and wide.overlaps(narrow)
    assert Match.decode(narrow.encode(), 0)[0] == narrow


# --- groups ----------------------------------------------------------------------------------
def ff_and_select(sw: FakeSwitch) -> None:
    ok(sw, p.OFPGroupMod(DP, ofp.OFPGC_ADD, ofp.OFPGT_FF, 7, [
        p.OFPBucket(0, port, ofp.OFPG_ANY, [p.OFPActionOutput(port)]) for port in (2, 3)]))
    ok(sw, p.OFPGroupMod(DP, ofp.OFPGC_ADD, ofp.OFPGT_SELECT, 8, [
        p.OFPBucket(1, port, ofp.OFPG_ANY, [p.OFPActionOutput(port)]) for port in (2, 3, 4)]
        + [p.OFPBucket(0, 1, ofp.OFPG_ANY, [p.OFPActionOutput(1)])]))


def test_fast_failover_takes_the_first_live_bucket():
    sw = switch()
    ff_and_select(sw)
    ok(sw, flow(match=p.OFPMatch(in_port=1), ins=apply(p.OFPActionGroup(7))))
    assert outs(sw, 1, frame()) == [2]
    sw.set_port(2, up=False)
    assert outs(sw, 1, frame()) == [3]
    assert [b["live"] for b in sw.groups()[7]["buckets"]] == [False, True]
    sw.set_port(3, up=False)
    assert outs(sw, 1, frame()) == []
    sw.set_port(2, up=True)
    assert outs(sw, 1, frame()) == [2]


def test_select_group_spreads_flows_keeps_each_on_one_bucket_and_avoids_dead_ones():
    sw = switch(6)
    ff_and_select(sw)
    ok(sw, flow(match=p.OFPMatch(in_port=5), ins=apply(p.OFPActionGroup(8))))
    flows = [frame(ip=("10.0.0.1", "10.0.0.2"), sport=s) for s in range(1000, 1060)]
    first = [outs(sw, 5, f) for f in flows]
    assert all(len(o) == 1 for o in first)
    assert {o[0] for o in first} == {2, 3, 4}  # (weight 0: port 1 never)
    assert [outs(sw, 5, f) for f in flows] == first
    sw.set_port(3, up=False)
    again = [outs(sw, 5, f)[0] for f in flows]
    assert 3 not in again and set(again) == {2, 4}


def test_deleting_a_group_or_meter_removes_the_entries_using_it():
    sw = switch()
    ff_and_select(sw)
    ok(sw, p.OFPMeterMod(DP, ofp.OFPMC_ADD, ofp.OFPMF_PKTPS, 4, [p.OFPMeterBandDrop(5, 5)]))
    ok(sw, flow(prio=1, ins=apply(p.OFPActionGroup(7))))
    ok(sw, flow(prio=2, ins=[p.OFPInstructionMeter(4)]))
    ok(sw, flow(prio=3, ins=apply(p.OFPActionOutput(1))))
    ok(sw, p.OFPGroupMod(DP, ofp.OFPGC_DELETE, ofp.OFPGT_SELECT, 7, []))
    ok(sw, p.OFPMeterMod(DP, ofp.OFPMC_DELETE, 0, 4, []))
    assert [f["priority"] for f in sw.flows()] == [3] and list(sw.groups()) == [8]


# --- meters and the controller ---------------------------------------------------------------
def test_lldp_punt_through_a_meter_comes_as_a_packet_in_with_the_entry_cookie():
    sw = switch()
    ok(sw, p.OFPMeterMod(DP, ofp.OFPMC_ADD, ofp.OFPMF_PKTPS | ofp.OFPMF_BURST, 1,
                         [p.OFPMeterBandDrop(rate=1, burst_size=3)]))
    ok(sw, flow(prio=1000, match=p.OFPMatch(eth_type=0x88CC), ck=cookie(1),
                ins=apply(p.NXActionController2(max_len=0xFFFF, meter_id=1))))
    ok(sw, flow(table=0, prio=0, ck=cookie(1), ins=[p.OFPInstructionGotoTable(2)]))
    ok(sw, flow(table=2, prio=0, ck=cookie(1, 9), ins=apply(p.OFPActionOutput(
        ofp.OFPP_CONTROLLER, 20))))
    lldp = frame(dst="01:80:c2:00:00:0e", etype=0x88CC)
    got = [parse(m) for _ in range(10) for m in sw.inject(3, lldp)[0]]
    assert len(got) == 3  # the burst, then the rate (1/s) drops the rest
    pin = got[0]
    assert (pin.cookie, pin.table_id, pin.reason, pin.match["in_port"], pin.data) == (
        cookie(1), 0, ofp.OFPR_ACTION, 3, lldp)
    assert sw.meters()[1]["dropped"] == 7
    (miss,) = [parse(m) for m in sw.inject(2, frame())[0]]  # table-miss entry: NO_MATCH
    assert (miss.cookie, miss.table_id, miss.reason, miss.total_len, len(miss.data)) == (
        cookie(1, 9), 2, ofp.OFPR_NO_MATCH, 60, 20)
    (stats,) = send(sw, p.OFPMeterStatsRequest(DP, 0, ofp.OFPM_ALL))
    (m,) = stats.body
    assert (m.flow_count, m.packet_in_count, m.band_stats[0].packet_band_count) == (1, 10, 7)


def test_write_actions_and_set_field_run_at_the_end_of_the_pipeline():
    sw = switch()
    ff_and_select(sw)
    ok(sw, flow(table=0, prio=1, ins=[p.OFPInstructionGotoTable(1)]))
    ok(sw, flow(table=1, prio=5, match=p.OFPMatch(eth_type=0x0800),
                ins=apply(p.OFPActionSetField(ip_dscp=26), p.OFPActionSetQueue(3))
                + [p.OFPInstructionGotoTable(2)]))
    ok(sw, flow(table=2, prio=5, ins=[p.OFPInstructionActions(
        ofp.OFPIT_WRITE_ACTIONS, [p.OFPActionGroup(7)]), p.OFPInstructionGotoTable(3)]))
    ok(sw, flow(table=3, prio=0))
    (out,) = sw.pipeline.receive(1, frame(ip=("10.0.0.1", "10.0.0.2")), time.monotonic())
    assert (out.port, out.queue_id, out.data[15] >> 2) == (2, 3, 26)


# --- the wire --------------------------------------------------------------------------------
def test_flow_stats_come_back_as_sent_split_over_several_replies():
    sw = switch(limit=1024)
    ins = apply(p.OFPActionOutput(2), p.NXActionController2(max_len=128, meter_id=0x20003))
    for i in range(40):
        ok(sw, flow(table=3, prio=200, ck=cookie(3, i), ins=ins, match=p.OFPMatch(
            in_port=1, eth_type=0x0800, ip_proto=6, ipv4_src="10.0.0.1", tcp_dst=i + 1)))
    replies = send(sw, p.OFPFlowStatsRequest(DP, 0, ofp.OFPTT_ALL, ofp.OFPP_ANY,
                                             ofp.OFPG_ANY, cookie(3), OURS | KIND))
    assert len(replies) > 3
    assert [r.flags for r in replies] == [ofp.OFPMPF_REPLY_MORE] * (len(replies) - 1) + [0]
    body = [s for r in replies for s in r.body]
    assert sorted(s.match["tcp_dst"] for s in body) == list(range(1, 41))
    s = body[0]
    assert (s.table_id, s.priority) == (3, 200)
    (a, c) = s.instructions[0].actions
    assert (a.port, c.max_len, c.meter_id) == (2, 128, 0x20003)


def test_roles_and_errors_on_the_wire():
    sw = switch()
    (r,) = send(sw, p.OFPRoleRequest(DP, ofp.OFPCR_ROLE_MASTER, 5))
    assert (r.role, r.generation_id) == (ofp.OFPCR_ROLE_MASTER, 5)
    (err,) = send(sw, p.OFPRoleRequest(DP, ofp.OFPCR_ROLE_SLAVE, 4))
    assert (err.type, err.code) == (ofp.OFPET_ROLE_REQUEST_FAILED, ofp.OFPRRFC_STALE)
    send(sw, p.OFPRoleRequest(DP, ofp.OFPCR_ROLE_SLAVE, 6))
    assert refused(sw, flow()) == (ofp.OFPET_BAD_REQUEST, ofp.OFPBRC_IS_SLAVE)
    assert sw.inject(1, frame()) == ([], [])


# --- a fleet over TCP ------------------------------------------------------------------------
class Controller:
    """Just enough of a controller: accepts sessions, reads whole messages."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.server.settimeout(5)

    def accept(self) -> tuple[socket.socket, int]:
        conn, _ = self.server.accept()
        conn.settimeout(5)
        assert isinstance(self.read(conn), p.OFPHello)
        conn.sendall(wire(p.OFPHello(DP)) + wire(p.OFPFeaturesRequest(DP)))
        return conn, self.read(conn).datapath_id

    def read(self, conn: socket.socket):
        head = b""
        while len(head) < 8:
            head += conn.recv(8 - len(head))
        (length,) = struct.unpack_from("!H", head, 2)
        body = b""
        while len(body) < length - 8:
            body += conn.recv(length - 8 - len(body))
        return parse(head + body)


def test_a_fleet_carries_frames_between_cabled_switches_and_reports_ports():
    ctl = Controller()
    lay = spine_leaf(1, 2, hosts_per_leaf=1)
    assert lay.directed_links() == {(2001, 1, 1001, 1), (1001, 1, 2001, 1),
                                    (2002, 1, 1001, 2), (1001, 2, 2002, 1)}
    fleet = Fleet(ctl.port, lay)
    try:
        fleet.connect_all()
        conns = dict(ctl.accept()[::-1] for _ in range(3))
        assert set(conns) == {1001, 2001, 2002}
        spine = conns[1001]
        lldp_entry = flow(prio=1000, match=p.OFPMatch(eth_type=0x88CC), ck=cookie(1),
                          ins=apply(p.OFPActionOutput(ofp.OFPP_CONTROLLER, 0xFFFF)))
        spine.sendall(wire(lldp_entry) + wire(p.OFPBarrierRequest(DP)))
        assert isinstance(ctl.read(spine), p.OFPBarrierReply)
        probe = frame(dst="01:80:c2:00:00:0e", etype=0x88CC)
        out = p.OFPPacketOut(DP, ofp.OFP_NO_BUFFER, ofp.OFPP_CONTROLLER,
                             [p.OFPActionOutput(1), p.OFPActionOutput(2)], probe)
        conns[2002].sendall(wire(out))  # port 1: to the spine's port 2; port 2: a host
        pin = ctl.read(spine)
        assert (pin.match["in_port"], pin.cookie, pin.data) == (2, cookie(1), probe)
        deadline = time.monotonic() + 5
        while fleet.host_frames[(2002, 2)] != 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert fleet.host_frames[(2002, 2)] == 1
        fleet.link_down((1001, 1))
        status = ctl.read(spine)
        assert (status.desc.port_no, status.desc.state & ofp.OFPPS_LINK_DOWN) == (1, 1)
        assert fleet.switch(2001).ports()[1]["up"] is False
        conns[2001].close()
        deadline = time.monotonic() + 5
        while 2001 not in fleet.closed_by_peer() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert fleet.closed_by_peer() == {2001} and fleet.connected() == {1001, 2002}
        assert fleet.failures == []
    finally:
        fleet.close()
        ctl.server.close()


def test_layout_refuses_a_port_cabled_twice():
    lay = Layout()
    lay.add_switch(1, "a", [1, 2])
    lay.add_switch(2, "b", [1])
    lay.cable((1, 1), (2, 1))
    with pytest.raises(ValueError):
        lay.cable((1, 2), (2, 1))
