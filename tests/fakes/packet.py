"""A frame as a fake switch's pipeline sees it: the OpenFlow 1.3 header fields it can
be matched on (Ethernet, one 802.1Q tag, ARP, IPv4, IPv6's fixed header, TCP, UDP,
SCTP, ICMPv4), and the ``set_field`` rewrites, made in the bytes (IPv4 header checksum
kept right; TCP/UDP checksums are left as they were, which no receiver here checks).

Parsing never raises: a truncated or odd frame simply has fewer fields, as a switch
would classify it.
"""

from __future__ import annotations

import struct

from os_ken.ofproto import ofproto_v1_3 as ofp

from mininet_topos.probe import internet_checksum
from tests.fakes.fields import (
    ETH_ARP,
    ETH_IP,
    ETH_IPV6,
    ETH_VLAN,
    FIELDS,
    OFPVID_PRESENT,
    OFError,
)

SETTABLE = frozenset({"eth_dst", "eth_src", "vlan_vid", "vlan_pcp", "ip_dscp", "ip_ecn",
                      "ipv4_src", "ipv4_dst", "tcp_src", "tcp_dst", "udp_src", "udp_dst",
                      "metadata"})



class Packet:
    """A frame's bytes and the fields parsed from them (``fields`` is what matches see)."""

    __slots__ = ("data", "fields", "l3", "l4", "queue_id")

    def __init__(self, data: bytes, in_port: int) -> None:
        self.data = bytearray(data)
        self.queue_id: int | None = None
        self.l3 = self.l4 = -1
        self.fields: dict[str, int] = {"in_port": in_port, "in_phy_port": in_port,
                                       "metadata": 0}
        self._parse()

    def copy(self) -> Packet:
        new = Packet.__new__(Packet)
        new.data, new.fields = bytearray(self.data), dict(self.fields)
        new.l3, new.l4, new.queue_id = self.l3, self.l4, self.queue_id
        return new

    def _parse(self) -> None:
        d, f = self.data, self.fields
        f["vlan_vid"] = 0  # OFPVID_NONE: untagged
        if len(d) < 14:
            return
        f["eth_dst"] = int.from_bytes(d[0:6], "big")
        f["eth_src"] = int.from_bytes(d[6:12], "big")
        (etype,) = struct.unpack_from("!H", d, 12)
        off = 14
        if etype == ETH_VLAN and len(d) >= 18:
            (tci, etype) = struct.unpack_from("!HH", d, 14)
            f["vlan_vid"] = OFPVID_PRESENT | (tci & 0x0FFF)
            f["vlan_pcp"] = tci >> 13
            off = 18
        f["eth_type"] = etype
        self.l3 = off
        if etype == ETH_ARP and len(d) >= off + 28:
            f["arp_op"] = struct.unpack_from("!H", d, off + 6)[0]
            f["arp_sha"] = int.from_bytes(d[off + 8:off + 14], "big")
            f["arp_spa"] = int.from_bytes(d[off + 14:off + 18], "big")
            f["arp_tha"] = int.from_bytes(d[off + 18:off + 24], "big")
            f["arp_tpa"] = int.from_bytes(d[off + 24:off + 28], "big")
        elif etype == ETH_IP and len(d) >= off + 20 and d[off] >> 4 == 4:
            ihl = (d[off] & 0x0F) * 4
            f["ip_dscp"], f["ip_ecn"] = d[off + 1] >> 2, d[off + 1] & 3
            f["ip_proto"] = d[off + 9]
            f["ipv4_src"] = int.from_bytes(d[off + 12:off + 16], "big")
            f["ipv4_dst"] = int.from_bytes(d[off + 16:off + 20], "big")
            (frag,) = struct.unpack_from("!H", d, off + 6)
            if not frag & 0x1FFF and ihl >= 20:
                self._l4(off + ihl, d[off + 9])
        elif etype == ETH_IPV6 and len(d) >= off + 40 and d[off] >> 4 == 6:
            tclass = (struct.unpack_from("!I", d, off)[0] >> 20) & 0xFF
            f["ip_dscp"], f["ip_ecn"] = tclass >> 2, tclass & 3
            f["ip_proto"] = d[off + 6]
            f["ipv6_src"] = int.from_bytes(d[off + 8:off + 24], "big")
            f["ipv6_dst"] = int.from_bytes(d[off + 24:off + 40], "big")
            self._l4(off + 40, d[off + 6])

    def _l4(self, off: int, proto: int) -> None:
        d, f = self.data, self.fields
        if len(d) < off + 4:
            return
        self.l4 = off
        a, b = struct.unpack_from("!HH", d, off)
        names = {6: ("tcp_src", "tcp_dst"), 17: ("udp_src", "udp_dst"),
                 132: ("sctp_src", "sctp_dst")}.get(proto)
        if names is not None:
            f[names[0]], f[names[1]] = a, b
        elif proto == 1:
            f["icmpv4_type"], f["icmpv4_code"] = d[off], d[off + 1]

    # --- set_field ------------------------------------------------------------------------
    def set_field(self, name: str, value: int) -> None:
        """Rewrite one field (a field the frame does not have is left alone, as Open
        vSwitch does for a header that is not there)."""
        if name not in SETTABLE:
            raise OFError(ofp.OFPET_BAD_ACTION, ofp.OFPBAC_BAD_SET_TYPE, f"cannot set {name}")
        f, d = self.fields, self.data
        if name == "metadata":
            f[name] = value
            return
        if name not in f:
            return
        if name in ("eth_dst", "eth_src"):
            start = 0 if name == "eth_dst" else 6
            d[start:start + 6] = value.to_bytes(6, "big")
        elif name in ("vlan_vid", "vlan_pcp"):
            if not f.get("vlan_vid", 0) & OFPVID_PRESENT:
                return
            (tci,) = struct.unpack_from("!H", d, 14)
            tci = (tci & 0xF000) | (value & 0x0FFF) if name == "vlan_vid" else \
                (tci & 0x1FFF) | (value & 7) << 13
            struct.pack_into("!H", d, 14, tci)
            value = OFPVID_PRESENT | (value & 0x0FFF) if name == "vlan_vid" else value & 7
        elif name in ("ip_dscp", "ip_ecn"):
            dscp = value if name == "ip_dscp" else f["ip_dscp"]
            ecn = value if name == "ip_ecn" else f["ip_ecn"]
            tos = (dscp & 0x3F) << 2 | (ecn & 3)
            if f.get("eth_type") == ETH_IP:
                d[self.l3 + 1] = tos
                self._ip_checksum()
            else:
                (word,) = struct.unpack_from("!I", d, self.l3)
                struct.pack_into("!I", d, self.l3, (word & ~(0xFF << 20)) | tos << 20)
        elif name in ("ipv4_src", "ipv4_dst"):
            start = self.l3 + (12 if name == "ipv4_src" else 16)
            d[start:start + 4] = value.to_bytes(4, "big")
            self._ip_checksum()
        else:  # transport ports
            if self.l4 < 0:
                return
            struct.pack_into("!H", d, self.l4 + (0 if name.endswith("_src") else 2),
                             value & 0xFFFF)
        f[name] = value & FIELDS[name].full

    def _ip_checksum(self) -> None:
        d, off = self.data, self.l3
        ihl = (d[off] & 0x0F) * 4
        struct.pack_into("!H", d, off + 10, 0)
        struct.pack_into("!H", d, off + 10, internet_checksum(bytes(d[off:off + ihl])))
