"""OpenFlow 1.3 match fields for the fake switch: the OXM wire codec, a normalised
:class:`Match` with OpenFlow's three relations (a packet matches it; it lies within
another, as non-strict modify/delete/stats select; two overlap at one priority), and the
header fields of a frame (:class:`Packet`), with the ``set_field`` rewrites a switch
makes on it.

Only the OpenFlow basic class (0x8000) is known. Values and masks are kept as integers;
a full mask is an exact match and a zero mask no match at all (as Open vSwitch keeps
them), and a value with bits outside its mask is refused, as OpenFlow 1.3 says.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass

from os_ken.ofproto import ofproto_v1_3 as ofp

OXM_CLASS_BASIC = 0x8000
ETH_IP, ETH_ARP, ETH_VLAN, ETH_IPV6 = 0x0800, 0x0806, 0x8100, 0x86DD
OFPVID_PRESENT = 0x1000

BAD_MATCH = ofp.OFPET_BAD_MATCH
BMC_BAD_LEN, BMC_BAD_FIELD, BMC_BAD_WILDCARDS = ofp.OFPBMC_BAD_LEN, ofp.OFPBMC_BAD_FIELD, \
    ofp.OFPBMC_BAD_WILDCARDS
BMC_BAD_MASK, BMC_BAD_PREREQ, BMC_DUP_FIELD = ofp.OFPBMC_BAD_MASK, ofp.OFPBMC_BAD_PREREQ, \
    ofp.OFPBMC_DUP_FIELD


class OFError(Exception):
    """A request the switch refuses: becomes an OFPT_ERROR with this type and code."""

    def __init__(self, err_type: int, code: int, why: str = "") -> None:
        super().__init__(f"OpenFlow error type={err_type} code={code}: {why}")
        self.type, self.code, self.why = err_type, code, why


@dataclass(frozen=True)
class Field:
    name: str
    oxm: int  # field number in class 0x8000
    size: int  # bytes on the wire
    maskable: bool
    kind: str = "int"  # int | mac | ipv4 | ipv6

    @property
    def full(self) -> int:
        return (1 << (8 * self.size)) - 1 if self.name != "vlan_vid" else 0x1FFF


_FIELDS = [
    Field("in_port", 0, 4, False), Field("in_phy_port", 1, 4, False),
    Field("metadata", 2, 8, True), Field("eth_dst", 3, 6, True, "mac"),
    Field("eth_src", 4, 6, True, "mac"), Field("eth_type", 5, 2, False),
    Field("vlan_vid", 6, 2, True), Field("vlan_pcp", 7, 1, False),
    Field("ip_dscp", 8, 1, False), Field("ip_ecn", 9, 1, False),
    Field("ip_proto", 10, 1, False), Field("ipv4_src", 11, 4, True, "ipv4"),
    Field("ipv4_dst", 12, 4, True, "ipv4"),
    # (Open vSwitch accepts masks on transport ports, beyond OpenFlow 1.3's table)
    Field("tcp_src", 13, 2, True), Field("tcp_dst", 14, 2, True),
    Field("udp_src", 15, 2, True), Field("udp_dst", 16, 2, True),
    Field("sctp_src", 17, 2, True), Field("sctp_dst", 18, 2, True),
    Field("icmpv4_type", 19, 1, False), Field("icmpv4_code", 20, 1, False),
    Field("arp_op", 21, 2, False), Field("arp_spa", 22, 4, True, "ipv4"),
    Field("arp_tpa", 23, 4, True, "ipv4"), Field("arp_sha", 24, 6, True, "mac"),
    Field("arp_tha", 25, 6, True, "mac"), Field("ipv6_src", 26, 16, True, "ipv6"),
    Field("ipv6_dst", 27, 16, True, "ipv6"),
]
FIELDS = {f.name: f for f in _FIELDS}
_BY_OXM = {f.oxm: f for f in _FIELDS}
_IP = ("eth_type", (ETH_IP, ETH_IPV6))
# field -> what must be matched exactly for it to be matched (OpenFlow 1.3, table 11)
PREREQS: dict[str, tuple[tuple[str, tuple[int, ...]], ...]] = {
    "ip_dscp": (_IP,), "ip_ecn": (_IP,), "ip_proto": (_IP,),
    "ipv4_src": (("eth_type", (ETH_IP,)),), "ipv4_dst": (("eth_type", (ETH_IP,)),),
    "ipv6_src": (("eth_type", (ETH_IPV6,)),), "ipv6_dst": (("eth_type", (ETH_IPV6,)),),
    "tcp_src": (_IP, ("ip_proto", (6,))), "tcp_dst": (_IP, ("ip_proto", (6,))),
    "udp_src": (_IP, ("ip_proto", (17,))), "udp_dst": (_IP, ("ip_proto", (17,))),
    "sctp_src": (_IP, ("ip_proto", (132,))), "sctp_dst": (_IP, ("ip_proto", (132,))),
    "icmpv4_type": (("eth_type", (ETH_IP,)), ("ip_proto", (1,))),
    "icmpv4_code": (("eth_type", (ETH_IP,)), ("ip_proto", (1,))),
    "arp_op": (("eth_type", (ETH_ARP,)),), "arp_spa": (("eth_type", (ETH_ARP,)),),
    "arp_tpa": (("eth_type", (ETH_ARP,)),), "arp_sha": (("eth_type", (ETH_ARP,)),),
    "arp_tha": (("eth_type", (ETH_ARP,)),),
}


def to_int(name: str, value: object) -> int:
    """A field's value as os-ken gives it (text for addresses) as an integer."""
    kind = FIELDS[name].kind
    if isinstance(value, int):
        return value
    if kind == "mac":
        return int(str(value).replace(":", ""), 16)
    if kind in ("ipv4", "ipv6"):
        return int(ipaddress.ip_address(str(value)))
    return int(str(value), 0)


def to_text(name: str, value: int) -> object:
    """The inverse of :func:`to_int` (os-ken's user form)."""
    kind = FIELDS[name].kind
    if kind == "mac":
        return ":".join(f"{b:02x}" for b in value.to_bytes(6, "big"))
    if kind == "ipv4":
        return str(ipaddress.IPv4Address(value))
    if kind == "ipv6":
        return str(ipaddress.IPv6Address(value))
    return value


class Match:
    """A normalised match: field -> (value, mask), the mask full for an exact match."""

    __slots__ = ("fields", "_key")

    def __init__(self, fields: dict[str, tuple[int, int]] | None = None) -> None:
        self.fields: dict[str, tuple[int, int]] = {}
        for name, (value, mask) in (fields or {}).items():
            spec = FIELDS.get(name)
            if spec is None:
                raise OFError(BAD_MATCH, BMC_BAD_FIELD, f"unknown field {name}")
            mask &= spec.full
            if mask != spec.full and not spec.maskable:
                raise OFError(BAD_MATCH, BMC_BAD_MASK, f"{name} cannot be masked")
            if value & ~mask:
                raise OFError(BAD_MATCH, BMC_BAD_WILDCARDS, f"{name} has bits outside its mask")
            if mask:
                self.fields[name] = (value, mask)
        self._key = tuple(sorted(self.fields.items()))

    @staticmethod
    def of(**kw: object) -> Match:
        """From keywords in os-ken's form: ``eth_dst="01:00:..."`` or ``(value, mask)``."""
        out = {}
        for name, v in kw.items():
            if name not in FIELDS:
                raise OFError(BAD_MATCH, BMC_BAD_FIELD, f"unknown field {name}")
            if isinstance(v, tuple):
                out[name] = (to_int(name, v[0]), to_int(name, v[1]))
            else:
                out[name] = (to_int(name, v), FIELDS[name].full)
        return Match(out)

    def key(self) -> tuple:
        return self._key

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Match) and self._key == other._key

    def __hash__(self) -> int:
        return hash(self._key)

    def __repr__(self) -> str:
        return f"Match({self.as_dict()})"

    def as_dict(self) -> dict[str, object]:
        """os-ken's user form: exact values, or (value, mask) pairs."""
        out: dict[str, object] = {}
        for name, (v, m) in sorted(self.fields.items()):
            full = FIELDS[name].full
            out[name] = to_text(name, v) if m == full else (to_text(name, v), to_text(name, m))
        return out

    def exact(self, name: str) -> int | None:
        vm = self.fields.get(name)
        return vm[0] if vm is not None and vm[1] == FIELDS[name].full else None

    def check_prereqs(self) -> None:
        """OFPBMC_BAD_PREREQ unless every field's prerequisites are matched exactly."""
        for name in self.fields:
            for need, values in PREREQS.get(name, ()):
                if self.exact(need) not in values:
                    raise OFError(BAD_MATCH, BMC_BAD_PREREQ, f"{name} needs {need} in {values}")
        if "vlan_pcp" in self.fields:
            vid = self.fields.get("vlan_vid")
            if vid is None or not vid[0] & vid[1] & OFPVID_PRESENT:
                raise OFError(BAD_MATCH, BMC_BAD_PREREQ, "vlan_pcp needs a VLAN tag")

    def matches(self, pkt: dict[str, int]) -> bool:
        for name, (v, m) in self.fields.items():
            got = pkt.get(name)
            if got is None or got & m != v:
                return False
        return True

    def within(self, req: Match) -> bool:
        """True if every packet this matches also matches ``req`` (this is at least as
        specific): what non-strict modify, delete and statistics select."""
        for name, (rv, rm) in req.fields.items():
            mine = self.fields.get(name)
            if mine is None or mine[1] & rm != rm or mine[0] & rm != rv:
                return False
        return True

    def overlaps(self, other: Match) -> bool:
        """True if one packet could match both."""
        for name, (v, m) in self.fields.items():
            o = other.fields.get(name)
            if o is not None and (v ^ o[0]) & m & o[1]:
                return False
        return True

    # --- wire ------------------------------------------------------------------------------
    @staticmethod
    def decode(buf: bytes, offset: int) -> tuple[Match, int]:
        """An ofp_match at ``offset`` (type OXM): the match and its padded length."""
        if len(buf) < offset + 4:
            raise OFError(BAD_MATCH, BMC_BAD_LEN, "truncated match")
        mtype, length = struct.unpack_from("!HH", buf, offset)
        if mtype != 1 or length < 4 or offset + length > len(buf):
            raise OFError(BAD_MATCH, ofp.OFPBMC_BAD_TYPE if mtype != 1 else BMC_BAD_LEN,
                          "bad ofp_match")
        fields: dict[str, tuple[int, int]] = {}
        pos, end = offset + 4, offset + length
        while pos < end:
            if pos + 4 > end:
                raise OFError(BAD_MATCH, BMC_BAD_LEN, "truncated OXM header")
            (header,) = struct.unpack_from("!I", buf, pos)
            cls, num, hasmask, size = header >> 16, (header >> 9) & 0x7F, header >> 8 & 1, \
                header & 0xFF
            spec = _BY_OXM.get(num) if cls == OXM_CLASS_BASIC else None
            if spec is None:
                raise OFError(BAD_MATCH, BMC_BAD_FIELD, f"OXM class {cls:#x} field {num}")
            if size != spec.size * (2 if hasmask else 1) or pos + 4 + size > end:
                raise OFError(BAD_MATCH, BMC_BAD_LEN, f"{spec.name} has length {size}")
            raw = buf[pos + 4:pos + 4 + size]
            value = int.from_bytes(raw[:spec.size], "big")
            mask = int.from_bytes(raw[spec.size:], "big") if hasmask else spec.full
            if spec.name in fields:
                raise OFError(BAD_MATCH, BMC_DUP_FIELD, spec.name)
            fields[spec.name] = (value, mask)
            pos += 4 + size
        return Match(fields), (length + 7) // 8 * 8

    def encode(self) -> bytes:
        """As an ofp_match (type OXM), padded to 8 bytes."""
        body = b""
        for name, (v, m) in sorted(self.fields.items(), key=lambda kv: FIELDS[kv[0]].oxm):
            spec = FIELDS[name]
            masked = m != spec.full
            size = spec.size * (2 if masked else 1)
            body += struct.pack("!I", OXM_CLASS_BASIC << 16 | spec.oxm << 9 | masked << 8 | size)
            body += v.to_bytes(spec.size, "big")
            if masked:
                body += m.to_bytes(spec.size, "big")
        length = 4 + len(body)
        return struct.pack("!HH", 1, length) + body + b"\0" * ((length + 7) // 8 * 8 - length)
