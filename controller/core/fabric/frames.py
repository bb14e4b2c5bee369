"""Byte-level codecs for the few frames the controller reads and writes itself.

Ethernet (with an optional 802.1Q tag), ARP, the IPv4 source address, and aifabric's
authenticated LLDP probes. Everything that comes from a host is untrusted: parsers
raise :class:`FrameError` with a reason instead of guessing.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import re
import struct
from dataclasses import dataclass

from controller.core.constants import (
    ETH_TYPE_ARP,
    ETH_TYPE_IP,
    ETH_TYPE_LLDP,
    ETH_TYPE_VLAN,
    LLDP_MAC_NEAREST_BRIDGE,
)


class FrameError(ValueError):
    """A frame that cannot be parsed or fails validation. The parsers here raise only
    this, whatever bytes they are given (the property tests hold them to it)."""


MAX_DPID = 2**64 - 1
MAX_PORT = 0xFFFFFF00  # OFPP_MAX: the highest physical port number in OpenFlow 1.3
_DPID_TEXT = re.compile(r"dpid:([0-9a-fA-F]{1,16})")


def mac_to_bytes(mac: str) -> bytes:
    parts = mac.split(":")
    if len(parts) != 6:
        raise FrameError(f"bad MAC address {mac!r}")
    try:
        return bytes(int(p, 16) for p in parts)
    except ValueError as exc:
        raise FrameError(f"bad MAC address {mac!r}") from exc


def bytes_to_mac(raw: bytes) -> str:
    return ":".join(f"{b:02x}" for b in raw)


def is_multicast_mac(mac: str) -> bool:
    """True for broadcast and multicast addresses (group bit set)."""
    return bool(int(mac[:2], 16) & 1)


@dataclass(frozen=True)
class Ethernet:
    dst: str
    src: str
    ethertype: int
    payload: bytes


def parse_ethernet(data: bytes) -> Ethernet:
    if len(data) < 14:
        raise FrameError(f"ethernet frame too short ({len(data)} bytes)")
    dst, src = bytes_to_mac(data[0:6]), bytes_to_mac(data[6:12])
    (ethertype,) = struct.unpack_from("!H", data, 12)
    offset = 14
    if ethertype == ETH_TYPE_VLAN:
        if len(data) < 18:
            raise FrameError("802.1Q frame too short")
        (ethertype,) = struct.unpack_from("!H", data, 16)
        offset = 18
    return Ethernet(dst, src, ethertype, bytes(data[offset:]))


def build_ethernet(dst: str, src: str, ethertype: int, payload: bytes) -> bytes:
    frame = mac_to_bytes(dst) + mac_to_bytes(src) + struct.pack("!H", ethertype) + payload
    return frame.ljust(60, b"\x00")  # minimum frame size without FCS


# --- ARP ----------------------------------------------------------------------------------
ARP_REQUEST = 1
ARP_REPLY = 2


@dataclass(frozen=True)
class Arp:
    opcode: int
    sender_mac: str
    sender_ip: str
    target_mac: str
    target_ip: str


def parse_arp(payload: bytes) -> Arp:
    if len(payload) < 28:
        raise FrameError(f"ARP packet too short ({len(payload)} bytes)")
    htype, ptype, hlen, plen, opcode = struct.unpack_from("!HHBBH", payload, 0)
    if (htype, ptype, hlen, plen) != (1, ETH_TYPE_IP, 6, 4):
        raise FrameError("ARP is not Ethernet/IPv4")
    if opcode not in (ARP_REQUEST, ARP_REPLY):
        raise FrameError(f"unknown ARP opcode {opcode}")
    return Arp(
        opcode=opcode,
        sender_mac=bytes_to_mac(payload[8:14]),
        sender_ip=str(ipaddress.IPv4Address(payload[14:18])),
        target_mac=bytes_to_mac(payload[18:24]),
        target_ip=str(ipaddress.IPv4Address(payload[24:28])),
    )


def build_arp_frame(eth_dst: str, eth_src: str, arp: Arp) -> bytes:
    body = struct.pack("!HHBBH", 1, ETH_TYPE_IP, 6, 4, arp.opcode)
    body += mac_to_bytes(arp.sender_mac) + ipaddress.IPv4Address(arp.sender_ip).packed
    body += mac_to_bytes(arp.target_mac) + ipaddress.IPv4Address(arp.target_ip).packed
    return build_ethernet(eth_dst, eth_src, ETH_TYPE_ARP, body)


def ipv4_source(payload: bytes) -> str | None:
    """Source address of an IPv4 packet, or None when the header is not valid IPv4."""
    if len(payload) < 20 or payload[0] >> 4 != 4 or (payload[0] & 0x0F) < 5:
        return None
    return str(ipaddress.IPv4Address(payload[12:16]))


@dataclass(frozen=True)
class Transport:
    """The 5-tuple and DSCP of a TCP or UDP packet over IPv4."""

    src_ip: str
    dst_ip: str
    proto: int
    src_port: int
    dst_port: int
    dscp: int


def parse_transport(payload: bytes) -> Transport:
    """The 5-tuple of an IPv4 TCP/UDP packet (FrameError for anything else, and for a
    fragment after the first: it carries no ports)."""
    if len(payload) < 20 or payload[0] >> 4 != 4:
        raise FrameError("not an IPv4 packet")
    ihl = (payload[0] & 0x0F) * 4
    if ihl < 20 or len(payload) < ihl + 4:
        raise FrameError("IPv4 header truncated")
    proto = payload[9]
    if proto not in (6, 17):
        raise FrameError(f"IP protocol {proto} is neither TCP nor UDP")
    (frag,) = struct.unpack_from("!H", payload, 6)
    if frag & 0x1FFF:
        raise FrameError("a non-first fragment has no ports")
    sport, dport = struct.unpack_from("!HH", payload, ihl)
    return Transport(str(ipaddress.IPv4Address(payload[12:16])),
                     str(ipaddress.IPv4Address(payload[16:20])), proto, sport, dport,
                     payload[1] >> 2)


# --- LLDP ---------------------------------------------------------------------------------
# aifabric's probes carry an HMAC over (dpid, port, timestamp) keyed with a secret that
# never leaves the controller, so a host cannot forge a link; the timestamp bounds replay.
_TLV_END, _TLV_CHASSIS, _TLV_PORT, _TLV_TTL, _TLV_ORG = 0, 1, 2, 3, 127
_CHASSIS_SUBTYPE_LOCAL = 7
_PORT_SUBTYPE_LOCAL = 7
_AIFABRIC_OUI = b"\x02\xaf\x00"  # locally administered OUI used for aifabric's TLV
_AIFABRIC_SUBTYPE = 1
_MAC_LEN = 16


def _tlv(tlv_type: int, value: bytes) -> bytes:
    if len(value) > 511:
        raise FrameError("TLV too long")
    return struct.pack("!H", (tlv_type << 9) | len(value)) + value


def _lldp_mac(dpid: int, secret: bytes, data: bytes) -> bytes:
    if not 0 <= dpid <= MAX_DPID:
        raise FrameError(f"dpid {dpid} is outside 0..2^64-1")
    return hmac.new(secret, struct.pack("!Q", dpid) + data, hashlib.sha256).digest()[:_MAC_LEN]


def lldp_source_mac(dpid: int) -> str:
    """A locally administered source MAC derived from the dpid (probes are not host traffic)."""
    return bytes_to_mac(b"\x0a" + (dpid & 0xFFFFFFFFFF).to_bytes(5, "big"))


def build_lldp(dpid: int, port: int, secret: bytes, now: float) -> bytes:
    """An authenticated LLDP probe to send out of ``port`` of switch ``dpid``."""
    stamp_ms = int(now * 1000)
    signed = struct.pack("!IQ", port, stamp_ms)
    payload = (
        _tlv(_TLV_CHASSIS, bytes([_CHASSIS_SUBTYPE_LOCAL]) + f"dpid:{dpid:016x}".encode())
        + _tlv(_TLV_PORT, bytes([_PORT_SUBTYPE_LOCAL]) + str(port).encode())
        + _tlv(_TLV_TTL, struct.pack("!H", 120))
        + _tlv(
            _TLV_ORG,
            _AIFABRIC_OUI
            + bytes([_AIFABRIC_SUBTYPE])
            + signed
            + _lldp_mac(dpid, secret, signed),
        )
        + _tlv(_TLV_END, b"")
    )
    return build_ethernet(LLDP_MAC_NEAREST_BRIDGE, lldp_source_mac(dpid), ETH_TYPE_LLDP, payload)


@dataclass(frozen=True)
class LldpProbe:
    dpid: int
    port: int
    sent_at: float


def parse_lldp(payload: bytes, secret: bytes, now: float, max_age: float) -> LldpProbe:
    """Validate an LLDP payload (after the Ethernet header) as one of our fresh probes."""
    tlvs: dict[int, bytes] = {}
    offset = 0
    while offset + 2 <= len(payload):
        (header,) = struct.unpack_from("!H", payload, offset)
        tlv_type, length = header >> 9, header & 0x1FF
        offset += 2
        if offset + length > len(payload):
            raise FrameError("LLDP TLV runs past the end of the frame")
        if tlv_type == _TLV_END:
            break
        value = payload[offset : offset + length]
        offset += length
        if tlv_type == _TLV_ORG and value[:4] != _AIFABRIC_OUI + bytes([_AIFABRIC_SUBTYPE]):
            continue  # somebody else's organisational TLV
        tlvs.setdefault(tlv_type, value)
    chassis = tlvs.get(_TLV_CHASSIS, b"")
    org = tlvs.get(_TLV_ORG)
    if org is None:
        raise FrameError("LLDP frame is not an aifabric probe (no aifabric TLV)")
    if len(chassis) < 2 or chassis[0] != _CHASSIS_SUBTYPE_LOCAL:
        raise FrameError("LLDP chassis ID is not a local dpid")
    # Strictly "dpid:" and 1-16 hex digits: int() alone would take "-1", "+1", " 1_0 ".
    found = _DPID_TEXT.fullmatch(chassis[1:].decode("ascii", errors="replace"))
    if found is None:
        raise FrameError("LLDP chassis ID is not dpid:<1-16 hex digits>")
    dpid = int(found.group(1), 16)  # 0..2^64-1 by construction
    signed, mac = org[4:16], org[16:]
    if len(signed) != 12 or len(mac) != _MAC_LEN:
        raise FrameError("aifabric LLDP TLV has a bad length")
    if not hmac.compare_digest(mac, _lldp_mac(dpid, secret, signed)):
        raise FrameError("LLDP probe signature does not verify (forged or from another controller)")
    port, stamp_ms = struct.unpack("!IQ", signed)
    if not 1 <= port <= MAX_PORT:
        raise FrameError(f"LLDP probe names port {port}, outside 1..{MAX_PORT:#x}")
    sent_at = stamp_ms / 1000.0
    if abs(now - sent_at) > max_age:
        raise FrameError(f"LLDP probe is stale ({now - sent_at:.1f} s old)")
    return LldpProbe(dpid=dpid, port=port, sent_at=sent_at)
