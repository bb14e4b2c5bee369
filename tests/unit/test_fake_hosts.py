"""The fake hosts behind a fleet's host ports (tests/fakes/hosts.py), and writes to a
fake switch from its own command line (``FakeSwitch.local_write``): no controller."""

from __future__ import annotations

import pytest
from os_ken.ofproto import ofproto_v1_3 as ofp
from os_ken.ofproto import ofproto_v1_3_parser as p

from tests.fakes.fields import OFError
from tests.fakes.fleet import Fleet
from tests.fakes.hosts import HostNet, ipv4, parse, udp
from tests.fakes.layout import spine_leaf
from tests.unit.test_fake_oftables import DP, apply, flow, switch, wire


def test_a_local_write_changes_the_tables_outside_any_session():
    sw = switch()
    sw.local_write(wire(flow(prio=5, match=p.OFPMatch(in_port=1),
                             ins=apply(p.OFPActionOutput(2)))))
    assert [(f["priority"], f["match"]) for f in sw.flows()] == [(5, {"in_port": 1})]
    with pytest.raises(OFError):  # (ipv4_src without eth_type: a bad prerequisite)
        sw.local_write(wire(flow(match=p.OFPMatch(ipv4_src="10.0.0.1"))))
    with pytest.raises(ValueError):
        sw.local_write(wire(p.OFPBarrierRequest(DP)))
    sw.local_write(wire(flow(prio=5, match=p.OFPMatch(in_port=1),
                             cmd=ofp.OFPFC_DELETE_STRICT)))
    assert sw.flows() == []


def test_hosts_answer_arp_and_pings_and_capture_what_arrives():
    lay = spine_leaf(1, 1, hosts_per_leaf=3)  # leaf 2001: hosts on ports 2, 3, 4
    hosts = HostNet(lay)
    assert [(h.name, h.ip, h.mac, h.port) for h in hosts] == [
        (f"h{n}", f"10.0.0.{n}", f"00:00:00:00:00:0{n}", n + 1) for n in (1, 2, 3)]
    fleet = Fleet(1, lay)  # (never connected: the tables are written locally)
    hosts.attach(fleet)
    try:
        leaf = fleet.switch(2001)
        for a, b in ((2, 3), (3, 2)):
            leaf.local_write(wire(flow(match=p.OFPMatch(in_port=a),
                                       ins=apply(p.OFPActionOutput(b)))))
        h1, h2, h3 = hosts["h1"], hosts["h2"], hosts["h3"]
        assert hosts.resolve(h1, h2.ip) == h2.mac
        assert hosts.ping(h1, h2, count=3) == 3
        assert hosts.ping(h1, h3, timeout=0.3) == 0  # (no entry reaches port 4)
        hosts.udp(h1, h2, 5, 4791, size=10, count=2, dscp=26)
        assert hosts.wait(lambda: len(h2.captured(
            lambda s: s.dport == 4791 and s.dscp == 26)) == 2, 2.0)
        h2.answers = False
        assert hosts.ping(h1, h2, timeout=0.3) == 0
        assert fleet.failures == []
    finally:
        fleet.close()
    s = parse(ipv4("00:00:00:00:00:01", "00:00:00:00:00:02", "10.0.0.1", "10.0.0.2", 17,
                   udp(1, 2, b"x"), dscp=34))
    assert (s.ip_src, s.ip_dst, s.dscp, s.proto, s.dport) == ("10.0.0.1", "10.0.0.2", 34,
                                                               17, 2)
