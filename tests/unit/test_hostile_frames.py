"""Property tests: whatever bytes a host sends, the parsers raise only FrameError and
the core neither raises nor lets the frame change the fabric's links."""

from __future__ import annotations

import struct

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from controller.core import constants as C
from controller.core.fabric.frames import (
    Arp,
    FrameError,
    build_arp_frame,
    build_ethernet,
    build_lldp,
    ipv4_source,
    parse_arp,
    parse_ethernet,
    parse_lldp,
    parse_transport,
)
from controller.core.settings import CoreSettings
from controller.core.te import TeSettings
from tests.unit.fakefabric import SECRET, FakeFabric

NOW = 1000.0
FAST = settings(max_examples=300, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])


def _parse_all(data: bytes) -> None:
    for fn in (parse_ethernet, parse_arp, parse_transport):
        try:
            fn(data)
        except FrameError:
            pass
    try:
        parse_lldp(data, SECRET, NOW, 2.0)
    except FrameError:
        pass
    ipv4_source(data)


@FAST
@given(st.binary(max_size=1600))
def test_parsers_raise_only_frame_error_on_random_bytes(data):
    _parse_all(data)


def _tlv(t: int, v: bytes) -> bytes:
    return struct.pack("!H", (t << 9) | len(v)) + v


def lldp_with_chassis(chassis: bytes, port: int = 3, dpid_for_mac: int = 1001) -> bytes:
    """An LLDP payload carrying aifabric's TLV and an arbitrary chassis ID."""
    genuine = parse_ethernet(build_lldp(dpid_for_mac, port, SECRET, NOW)).payload
    org_start = genuine.index(b"\x02\xaf\x00") - 2
    return _tlv(1, chassis) + genuine[org_start:]


def test_chassis_ids_outside_the_dpid_range_are_frame_errors():
    for text in (b"dpid:-1", b"dpid:+1", b"dpid: 1", b"dpid:1_0", b"dpid:" + b"f" * 17,
                 b"dpid:", b"dpid:0x1", b"dpid:\xff\xfe", b"dpid:1\x00"):
        payload = lldp_with_chassis(b"\x07" + text)
        try:
            parse_lldp(payload, SECRET, NOW, 2.0)
        except FrameError:
            continue
        raise AssertionError(f"chassis {text!r} was accepted")


def test_signed_port_out_of_range_is_a_frame_error():
    for port in (0, 0xFFFFFFFD, 0xFFFFFFFF):
        frame = build_lldp(1001, port, SECRET, NOW)
        try:
            parse_lldp(parse_ethernet(frame).payload, SECRET, NOW, 2.0)
        except FrameError:
            continue
        raise AssertionError(f"port {port:#x} was accepted")


@FAST
@given(st.data())
def test_mutated_lldp_probes_are_rejected_or_genuine(data):
    frame = bytearray(build_lldp(1001, 3, SECRET, NOW))
    for _ in range(data.draw(st.integers(1, 8))):
        i = data.draw(st.integers(0, len(frame) - 1))
        frame[i] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(frame)))
    frame = bytes(frame[:cut])
    try:
        probe = parse_lldp(parse_ethernet(frame).payload, SECRET, NOW, 2.0)
    except FrameError:
        return
    # only bytes the signature does not cover may have changed
    assert (probe.dpid, probe.port) == (1001, 3)


def _fabric() -> FakeFabric:
    fab = FakeFabric(settings=CoreSettings(te=TeSettings()))
    fab.connect_all()
    return fab


FABRIC = _fabric()
LINKS = {k: (v.src, v.dst) for k, v in FABRIC.core.fabric.links.items()}


def _frames():
    mac = st.sampled_from(["00:00:00:00:00:01", "00:00:00:00:00:03", "ff:ff:ff:ff:ff:ff",
                           "01:80:c2:00:00:0e", "02:00:00:00:00:09", "00:00:00:00:00:00"])
    ip = st.sampled_from(["10.0.0.1", "10.0.0.3", "0.0.0.0", "255.255.255.255",
                          "224.0.0.1", "127.0.0.1", "10.9.9.9"])
    arp = st.builds(lambda op, sm, si, tm, ti, dst: build_arp_frame(
        dst, sm, Arp(op, sm, si, tm, ti)), st.sampled_from([1, 2]), mac, ip, mac, ip, mac)
    ethertype = st.sampled_from([C.ETH_TYPE_IP, C.ETH_TYPE_ARP, C.ETH_TYPE_LLDP,
                                 C.ETH_TYPE_VLAN, 0x86DD, 0x1234])
    raw = st.builds(build_ethernet, mac, mac, ethertype, st.binary(max_size=200))
    lldp = st.builds(lambda c: build_ethernet("01:80:c2:00:00:0e", "02:00:00:00:00:01",
                                              C.ETH_TYPE_LLDP, lldp_with_chassis(c)),
                     st.binary(max_size=40))
    replayed = st.builds(lambda d, p: build_lldp(d, p, SECRET, NOW),
                         st.sampled_from([1001, 1002, 2001, 2002, 0, 2**64 - 1]),
                         st.integers(1, 8))
    return st.one_of(arp, raw, lldp, replayed, st.binary(max_size=100))


@FAST
@given(frames=st.lists(_frames(), min_size=1, max_size=10), data=st.data())
def test_core_survives_any_frame_from_a_host_and_keeps_its_links(frames, data):
    core = FABRIC.core
    for frame in frames:
        port = data.draw(st.sampled_from([3, 4]))  # host ports of leaf 2001
        core.packet_in(2001, port, frame, FABRIC.now)
        core.traffic.flow_seen(2001, port, frame, FABRIC.now)
    now = {k: (v.src, v.dst) for k, v in core.fabric.links.items()}
    assert now == LINKS
    for h in core.fabric.hosts.values():
        assert (h.dpid, h.port) in {(2001, 3), (2001, 4)}
        assert not int(h.mac[:2], 16) & 1 and h.mac != "00:00:00:00:00:00"
        assert h.ip not in ("0.0.0.0", "255.255.255.255", "224.0.0.1", "127.0.0.1")
