"""Host identity at the edge, driven through the core: hijacks refused, genuine moves
accepted after a probe, per-port limits, aging, static bindings."""

from controller.core.fabric.frames import (
    ARP_REPLY,
    ARP_REQUEST,
    Arp,
    build_arp_frame,
    build_ethernet,
    parse_arp,
    parse_ethernet,
)
from controller.core.fabric.hosts import PROBE_MAC, HostSettings, StaticHost
from controller.core.model.fabric_model import Port
from controller.core.settings import CoreSettings
from tests.unit.fakefabric import FakeFabric

H1 = ("00:00:00:00:00:01", "10.0.0.1")  # leaf 2001 port 3
H2 = ("00:00:00:00:00:02", "10.0.0.2")  # leaf 2001 port 4
H3 = ("00:00:00:00:00:03", "10.0.0.3")  # leaf 2002 port 3 (the attacker in most tests)


def arp(op, src_mac, src_ip, target_ip, eth_dst="ff:ff:ff:ff:ff:ff", target_mac=None):
    body = Arp(op, src_mac, src_ip, target_mac or "00:00:00:00:00:00", target_ip)
    return build_arp_frame(eth_dst, src_mac, body)


def fabric(**host_settings) -> FakeFabric:
    fab = FakeFabric(settings=CoreSettings(hosts=HostSettings(**host_settings)))
    fab.connect_all()
    for leaf, port, host in ((2001, 3, H1), (2001, 4, H2), (2002, 3, H3)):
        fab.core.packet_in(leaf, port, arp(ARP_REQUEST, host[0], host[1], "10.0.0.250"),
                           fab.now)
    fab.core.take_events()
    return fab


def bound(fab, mac):
    h = fab.core.fabric.hosts.get(mac)
    return None if h is None else (h.ip, h.dpid, h.port)


def probes_in(eff):
    """(dpid, port, eth_dst, target_ip) of the ARP probes among the packet-outs."""
    out = []
    for po in eff.packet_outs:
        eth = parse_ethernet(po.data)
        if eth.src == PROBE_MAC:
            a = parse_arp(eth.payload)
            assert (a.opcode, a.sender_ip) == (ARP_REQUEST, "0.0.0.0")
            out.append((po.dpid, po.ports, eth.dst, a.target_ip))
    return out


def resolve(fab, ip):
    """What the controller answers when H2 asks for ``ip``."""
    eff = fab.core.packet_in(2001, 4, arp(ARP_REQUEST, H2[0], H2[1], ip), fab.now)
    answers = [parse_arp(parse_ethernet(po.data).payload) for po in eff.packet_outs
               if po.dpid == 2001 and po.ports == (4,)]
    return [a.sender_mac for a in answers if a.opcode == ARP_REPLY]


def test_gratuitous_arp_hijack_is_refused_in_both_forms():
    for op in (ARP_REQUEST, ARP_REPLY):
        fab = fabric()
        garp = arp(op, H3[0], H1[1], H1[1])  # H3 claims H1's address
        eff = fab.core.packet_in(2002, 3, garp, fab.now)
        assert not (eff.changed or eff.hosts)
        assert [p for p in eff.packet_outs if parse_ethernet(p.data).src != PROBE_MAC] == []
        assert probes_in(eff) == [(2001, (3,), H1[0], H1[1])]  # the owner is asked
        assert bound(fab, H1[0]) == (H1[1], 2001, 3)
        assert bound(fab, H3[0]) == (H3[1], 2002, 3)
        events = fab.core.take_events()
        assert [e.kind for e in events] == ["host_conflict"]
        assert dict(events[0].fields)["bound_mac"] == H1[0]
        assert resolve(fab, H1[1]) == [H1[0]]
        # the owner answers the probe: after the timeout the binding still stands
        answer = arp(ARP_REPLY, H1[0], H1[1], "0.0.0.0", eth_dst=PROBE_MAC,
                     target_mac=PROBE_MAC)
        eff = fab.core.packet_in(2001, 3, answer, fab.now)
        assert eff.packet_outs == []  # the answer is not forwarded or flooded
        fab.advance(2.0)
        assert bound(fab, H1[0]) == (H1[1], 2001, 3)
        assert resolve(fab, H1[1]) == [H1[0]]
        assert fab.core.counters["host_conflicts"] == 1


def test_repeated_claims_cost_one_probe_and_one_event():
    fab = fabric()
    total = []
    for _ in range(50):
        eff = fab.core.packet_in(2002, 3, arp(ARP_REQUEST, H3[0], H1[1], H1[1]), fab.now)
        total += probes_in(eff)
    assert len(total) == 1
    assert [e.kind for e in fab.core.take_events()] == ["host_conflict"]


def test_silent_owner_releases_its_address_to_the_claim():
    fab = fabric()
    fab.core.packet_in(2002, 3, arp(ARP_REQUEST, H3[0], H1[1], H1[1]), fab.now)
    fab.advance(0.5)
    assert bound(fab, H1[0]) == (H1[1], 2001, 3)
    fab.advance(1.0)  # past the probe timeout, no answer
    assert bound(fab, H1[0]) is None
    assert bound(fab, H3[0]) == (H1[1], 2002, 3)
    kinds = [e.kind for e in fab.core.take_events()]
    assert "host_moved" in kinds


def test_mac_claimed_on_another_port_is_refused_until_the_old_port_goes_down():
    fab = fabric()
    frame = arp(ARP_REQUEST, H1[0], H1[1], "10.0.0.251")
    eff = fab.core.packet_in(2003, 3, frame, fab.now)
    assert not eff.hosts and probes_in(eff) == [(2001, (3,), H1[0], H1[1])]
    assert bound(fab, H1[0]) == (H1[1], 2001, 3)
    # the host is re-cabled: its old port goes down, then it speaks on the new one
    fab.core.port_status(2001, Port(3, "p3", up=False), False, fab.now)
    eff = fab.core.packet_in(2003, 3, frame, fab.now)
    assert eff.hosts
    assert bound(fab, H1[0]) == (H1[1], 2003, 3)


def test_gratuitous_arp_from_the_owner_is_accepted():
    fab = fabric()
    eff = fab.core.packet_in(2001, 3, arp(ARP_REQUEST, H1[0], H1[1], H1[1]), fab.now)
    assert probes_in(eff) == []
    assert bound(fab, H1[0]) == (H1[1], 2001, 3)
    assert fab.core.take_events() == []


def test_hosts_per_port_are_bounded_and_reported_once():
    fab = fabric(max_per_port=8)
    for i in range(40):
        mac = f"02:00:00:00:{i // 256:02x}:{i % 256:02x}"
        fab.core.packet_in(2003, 4, arp(ARP_REQUEST, mac, f"10.1.0.{i + 1}", "10.0.0.1"),
                           fab.now)
    on_port = [h for h in fab.core.fabric.hosts.values() if (h.dpid, h.port) == (2003, 4)]
    assert len(on_port) == 8
    refused = [e for e in fab.core.take_events() if e.kind == "host_refused"]
    assert len(refused) == 1
    assert fab.core.counters["hosts_refused"] == 32
    # other ports are not affected
    fab.core.packet_in(2003, 3, arp(ARP_REQUEST, "02:00:00:00:99:99", "10.2.0.1",
                                    "10.0.0.1"), fab.now)
    assert bound(fab, "02:00:00:00:99:99") == ("10.2.0.1", 2003, 3)


def test_unspecified_and_group_sources_are_never_learned():
    fab = fabric()
    before = dict(fab.core.fabric.hosts)
    # an ARP probe (RFC 5227) and a DHCP-like IPv4 packet from 0.0.0.0
    fab.core.packet_in(2003, 3, arp(ARP_REQUEST, "02:00:00:00:00:07", "0.0.0.0",
                                    "10.0.0.7"), fab.now)
    ip0 = bytes([0x45, 0, 0, 28, 0, 0, 0, 0, 64, 17, 0, 0]) + bytes(4) + bytes([255] * 4)
    fab.core.packet_in(2003, 3, build_ethernet("ff:ff:ff:ff:ff:ff", "02:00:00:00:00:08",
                                               0x0800, ip0 + bytes(8)), fab.now)
    # a multicast source MAC and a multicast sender address
    fab.core.packet_in(2003, 3, arp(ARP_REQUEST, "02:00:00:00:00:09", "224.0.0.1",
                                    "10.0.0.7"), fab.now)
    assert set(fab.core.fabric.hosts) - set(before) == {"02:00:00:00:00:09"}
    assert bound(fab, "02:00:00:00:00:09") == (None, 2003, 3)  # the MAC, not the address
    fab.core.packet_in(2003, 3, build_ethernet("ff:ff:ff:ff:ff:ff", "03:00:00:00:00:01",
                                               0x0800, ip0), fab.now)
    assert "03:00:00:00:00:01" not in fab.core.fabric.hosts


def test_idle_hosts_are_probed_then_forgotten_unless_they_answer():
    fab = fabric(idle_timeout=60.0)
    fab.advance(30.0)
    fab.core.packet_in(2001, 4, arp(ARP_REQUEST, H2[0], H2[1], "10.0.0.250"), fab.now)
    fab.now += 31.0
    eff = fab.core.tick(fab.now)
    targets = {p[2] for p in probes_in(eff)}
    assert targets == {H1[0], H3[0]}  # H2 spoke 31 s ago
    # H1 answers its probe; H3 does not
    fab.core.packet_in(2001, 3, arp(ARP_REPLY, H1[0], H1[1], "0.0.0.0", eth_dst=PROBE_MAC,
                                    target_mac=PROBE_MAC), fab.now)
    fab.advance(1.5)
    assert bound(fab, H1[0]) == (H1[1], 2001, 3)
    assert bound(fab, H3[0]) is None
    assert [e.kind for e in fab.core.take_events()].count("host_aged_out") == 1


def test_static_binding_cannot_be_claimed_moved_or_aged():
    static = (StaticHost(H1[0], H1[1], 2001, 3),)
    fab = FakeFabric(settings=CoreSettings(hosts=HostSettings(static=static,
                                                              idle_timeout=10.0)))
    fab.connect_all()
    assert bound(fab, H1[0]) == (H1[1], 2001, 3)  # before it ever spoke
    eff = fab.core.packet_in(2002, 3, arp(ARP_REPLY, H3[0], H1[1], H1[1]), fab.now)
    assert probes_in(eff) == []  # nothing to verify: the operator said so
    eff = fab.core.packet_in(2002, 4, arp(ARP_REQUEST, H1[0], "10.0.0.99", "10.0.0.2"),
                             fab.now)
    assert not (eff.changed or eff.hosts)
    fab.core.port_status(2001, Port(3, "p3", up=False), False, fab.now)
    fab.advance(30.0)
    assert bound(fab, H1[0]) == (H1[1], 2001, 3)
    assert bound(fab, H3[0]) is None
