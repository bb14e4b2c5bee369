import pytest

from controller.core.fabric.frames import (
    ARP_REQUEST,
    Arp,
    FrameError,
    build_arp_frame,
    build_lldp,
    ipv4_source,
    parse_arp,
    parse_ethernet,
    parse_lldp,
)

SECRET = b"s" * 32


def test_lldp_round_trip():
    frame = build_lldp(0x2001, 7, SECRET, now=50.0)
    eth = parse_ethernet(frame)
    assert eth.ethertype == 0x88CC
    probe = parse_lldp(eth.payload, SECRET, now=50.2, max_age=2.0)
    assert (probe.dpid, probe.port) == (0x2001, 7)


def test_lldp_with_wrong_secret_is_rejected():
    payload = parse_ethernet(build_lldp(1, 1, SECRET, 50.0)).payload
    with pytest.raises(FrameError, match="signature"):
        parse_lldp(payload, b"x" * 32, 50.0, 2.0)


def test_lldp_forged_port_is_rejected():
    payload = bytearray(parse_ethernet(build_lldp(1, 1, SECRET, 50.0)).payload)
    # the signed port number sits right after the OUI+subtype of the org TLV
    idx = payload.index(b"\x02\xaf\x00\x01") + 4
    payload[idx + 3] ^= 0x02
    with pytest.raises(FrameError, match="signature"):
        parse_lldp(bytes(payload), SECRET, 50.0, 2.0)


def test_lldp_replayed_late_is_rejected():
    payload = parse_ethernet(build_lldp(1, 1, SECRET, 50.0)).payload
    with pytest.raises(FrameError, match="stale"):
        parse_lldp(payload, SECRET, 55.0, 2.0)


@pytest.mark.parametrize("payload", [b"", b"\x02", b"\x02\x07\x07dpid", b"\xff\xff" + b"a" * 10])
def test_lldp_garbage_is_rejected(payload):
    with pytest.raises(FrameError):
        parse_lldp(payload, SECRET, 0.0, 2.0)


def test_foreign_lldp_without_our_tlv_is_rejected():
    # chassis + port + ttl + end, as any LLDP speaker would send
    payload = b"\x02\x07\x04" + b"\x00\x11\x22\x33\x44\x55" + b"\x04\x02\x07" + b"1"
    payload += b"\x06\x02\x00\x78" + b"\x00\x00"
    with pytest.raises(FrameError, match="not an aifabric probe"):
        parse_lldp(payload, SECRET, 0.0, 2.0)


def test_arp_round_trip():
    arp = Arp(ARP_REQUEST, "00:00:00:00:00:01", "10.0.0.1", "00:00:00:00:00:00", "10.0.0.2")
    eth = parse_ethernet(build_arp_frame("ff:ff:ff:ff:ff:ff", arp.sender_mac, arp))
    assert eth.dst == "ff:ff:ff:ff:ff:ff"
    assert parse_arp(eth.payload) == arp


@pytest.mark.parametrize("payload", [b"", b"\x00" * 27, b"\x00\x06" + b"\x00" * 26])
def test_bad_arp_is_rejected(payload):
    with pytest.raises(FrameError):
        parse_arp(payload)


def test_short_ethernet_is_rejected():
    with pytest.raises(FrameError):
        parse_ethernet(b"\x00" * 13)


def test_vlan_tag_is_skipped():
    frame = b"\xff" * 6 + b"\x00\x00\x00\x00\x00\x01" + b"\x81\x00\x00\x05\x08\x06" + b"x"
    assert parse_ethernet(frame).ethertype == 0x0806


def test_ipv4_source():
    header = bytes([0x45]) + b"\x00" * 11 + bytes([10, 0, 0, 9]) + bytes([10, 0, 0, 1])
    assert ipv4_source(header) == "10.0.0.9"
    assert ipv4_source(b"\x60" + b"\x00" * 40) is None
    assert ipv4_source(b"\x45") is None
