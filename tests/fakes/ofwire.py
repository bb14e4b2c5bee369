"""OpenFlow 1.3 bytes in and out for the fake switch: the controller's requests decoded
(fixed parts with ``struct``, matches with :mod:`tests.fakes.fields`, instructions,
actions, buckets and bands with os-ken's own parsers), and the switch's messages
encoded (replies, multipart replies split with ``OFPMPF_REPLY_MORE``, packet-ins, port
status, flow-removed, errors). Nothing here keeps state.

Open vSwitch's ``controller(max_len, meter_id)`` action is NXAST_CONTROLLER2 with
property 5 (NXAC2PT_METER_ID); os-ken does not know that property, so it is registered
here (the same way the controller does for itself) to be read and written back.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from os_ken.ofproto import nx_actions  # noqa: F401 - registers the Nicira actions
from os_ken.ofproto import ofproto_v1_3 as ofp
from os_ken.ofproto import ofproto_v1_3_parser as parser

from tests.fakes.fields import Match, OFError

VERSION = ofp.OFP_VERSION
MAX_MSG = 0xFFFF
NXAC2PT_METER_ID = 5


def _register_meter_id_property() -> None:
    c2 = parser.NXActionController2
    cells = dict(zip(c2.serialize_body.__code__.co_freevars,
                     (c.cell_contents for c in c2.serialize_body.__closure__ or ()),
                     strict=True))
    prop = cells["NXActionController2Prop"]
    if NXAC2PT_METER_ID in prop._TYPES:
        return

    @prop.register_type(NXAC2PT_METER_ID)
    class _MeterId(prop):  # type: ignore[misc, valid-type]
        _arg_name = "meter_id"

        @classmethod
        def parser_prop(cls, buf, length):
            return struct.unpack_from("!I", buf, 0)[0], 4

        @classmethod
        def serialize_prop(cls, meter_id):
            return bytearray(struct.pack("!HHI", NXAC2PT_METER_ID, 8, meter_id))


_register_meter_id_property()


def bad(code: int, why: str) -> OFError:
    return OFError(ofp.OFPET_BAD_REQUEST, code, why)


# --- decoding ---------------------------------------------------------------------------------
@dataclass
class FlowMod:
    cookie: int
    cookie_mask: int
    table_id: int
    command: int
    idle_timeout: int
    hard_timeout: int
    priority: int
    buffer_id: int
    out_port: int
    out_group: int
    flags: int
    match: Match
    instructions: list[Any]


def _actions(buf: bytes, offset: int, end: int) -> list[Any]:
    out = []
    while offset < end:
        if offset + 4 > end:
            raise OFError(ofp.OFPET_BAD_ACTION, ofp.OFPBAC_BAD_LEN, "truncated action")
        atype, alen = struct.unpack_from("!HH", buf, offset)
        if alen < 8 or alen % 8 or offset + alen > end:
            raise OFError(ofp.OFPET_BAD_ACTION, ofp.OFPBAC_BAD_LEN, f"action length {alen}")
        if atype not in parser.OFPAction._ACTION_TYPES:
            raise OFError(ofp.OFPET_BAD_ACTION, ofp.OFPBAC_BAD_TYPE, f"action {atype}")
        try:
            action = parser.OFPAction.parser(buf[:offset + alen], offset)
        except (AssertionError, KeyError, struct.error, ValueError) as exc:
            raise OFError(ofp.OFPET_BAD_ACTION, ofp.OFPBAC_BAD_EXPERIMENTER
                          if atype == ofp.OFPAT_EXPERIMENTER else ofp.OFPBAC_BAD_ARGUMENT,
                          f"action {atype}: {exc!r}") from exc
        if isinstance(action, parser.OFPActionExperimenterUnknown):
            raise OFError(ofp.OFPET_BAD_ACTION, ofp.OFPBAC_BAD_EXP_TYPE, "experimenter action")
        out.append(action)
        offset += alen
    return out


def _instructions(buf: bytes, offset: int, end: int) -> list[Any]:
    out = []
    while offset < end:
        if offset + 4 > end:
            raise OFError(ofp.OFPET_BAD_INSTRUCTION, ofp.OFPBIC_BAD_LEN, "truncated")
        itype, ilen = struct.unpack_from("!HH", buf, offset)
        if ilen < 8 or offset + ilen > end:
            raise OFError(ofp.OFPET_BAD_INSTRUCTION, ofp.OFPBIC_BAD_LEN, f"length {ilen}")
        cls = parser.OFPInstruction._INSTRUCTION_TYPES.get(itype)
        if cls is None:
            raise OFError(ofp.OFPET_BAD_INSTRUCTION, ofp.OFPBIC_UNKNOWN_INST, str(itype))
        if cls is parser.OFPInstructionActions:
            ins = parser.OFPInstructionActions(itype, _actions(buf, offset + 8, offset + ilen))
        else:
            ins = cls.parser(buf, offset)
        out.append(ins)
        offset += ilen
    return out


def flow_mod(buf: bytes) -> FlowMod:
    if len(buf) < 56:
        raise bad(ofp.OFPBRC_BAD_LEN, "flow-mod")
    fixed = struct.unpack_from("!QQBBHHHIIIH2x", buf, 8)
    match, mlen = Match.decode(buf, 48)
    return FlowMod(*fixed, match=match, instructions=_instructions(buf, 48 + mlen, len(buf)))


def group_mod(buf: bytes) -> tuple[int, int, int, list[Any]]:
    """(command, type, group_id, buckets)."""
    if len(buf) < 16:
        raise bad(ofp.OFPBRC_BAD_LEN, "group-mod")
    command, gtype, gid = struct.unpack_from("!HBxI", buf, 8)
    buckets, offset = [], 16
    while offset < len(buf):
        if offset + 16 > len(buf):
            raise OFError(ofp.OFPET_GROUP_MOD_FAILED, ofp.OFPGMFC_BAD_BUCKET, "truncated")
        blen, weight, watch_port, watch_group = struct.unpack_from("!HHII", buf, offset)
        if blen < 16 or offset + blen > len(buf):
            raise OFError(ofp.OFPET_GROUP_MOD_FAILED, ofp.OFPGMFC_BAD_BUCKET, f"len {blen}")
        buckets.append(parser.OFPBucket(weight, watch_port, watch_group,
                                        _actions(buf, offset + 16, offset + blen)))
        offset += blen
    return command, gtype, gid, buckets


def meter_mod(buf: bytes) -> tuple[int, int, int, list[Any]]:
    """(command, flags, meter_id, bands)."""
    if len(buf) < 16:
        raise bad(ofp.OFPBRC_BAD_LEN, "meter-mod")
    command, flags, mid = struct.unpack_from("!HHI", buf, 8)
    bands, offset = [], 16
    while offset < len(buf):
        btype, blen = struct.unpack_from("!HH", buf, offset) if offset + 4 <= len(buf) \
            else (0, 0)
        if blen < 16 or offset + blen > len(buf):
            raise OFError(ofp.OFPET_METER_MOD_FAILED, ofp.OFPMMFC_BAD_BAND, f"len {blen}")
        if btype != ofp.OFPMBT_DROP:  # (Open vSwitch's userspace datapath: drop bands)
            raise OFError(ofp.OFPET_METER_MOD_FAILED, ofp.OFPMMFC_BAD_BAND, f"type {btype}")
        bands.append(parser.OFPMeterBandDrop.parser(buf, offset))
        offset += blen
    return command, flags, mid, bands


def packet_out(buf: bytes) -> tuple[int, int, list[Any], bytes]:
    """(buffer_id, in_port, actions, data)."""
    if len(buf) < 24:
        raise bad(ofp.OFPBRC_BAD_LEN, "packet-out")
    buffer_id, in_port, alen = struct.unpack_from("!IIH6x", buf, 8)
    if 24 + alen > len(buf):
        raise bad(ofp.OFPBRC_BAD_LEN, "packet-out actions")
    return buffer_id, in_port, _actions(buf, 24, 24 + alen), bytes(buf[24 + alen:])


@dataclass
class StatsFilter:
    """A flow or aggregate statistics request's selection."""

    table_id: int
    out_port: int
    out_group: int
    cookie: int
    cookie_mask: int
    match: Match


def flow_stats_request(body: bytes) -> StatsFilter:
    if len(body) < 40:
        raise bad(ofp.OFPBRC_BAD_LEN, "flow stats request")
    table_id, out_port, out_group, cookie, mask = struct.unpack_from("!B3xII4xQQ", body, 0)
    return StatsFilter(table_id, out_port, out_group, cookie, mask, Match.decode(body, 32)[0])


# --- encoding -------------------------------------------------------------------------------
def msg(mtype: int, xid: int, body: bytes = b"") -> bytes:
    return struct.pack("!BBHI", VERSION, mtype, 8 + len(body), xid) + body


def hello(xid: int) -> bytes:
    """HELLO with a version bitmap saying 1.3 (as Open vSwitch sends it)."""
    return msg(ofp.OFPT_HELLO, xid, struct.pack("!HHI", ofp.OFPHET_VERSIONBITMAP, 8,
                                                1 << VERSION))


def error(xid: int, err_type: int, code: int, offending: bytes) -> bytes:
    return msg(ofp.OFPT_ERROR, xid, struct.pack("!HH", err_type, code) + offending[:64])


def serialize(objs: Iterable[Any]) -> bytes:
    """os-ken instructions, actions, buckets or bands, back to bytes."""
    out = b""
    for o in objs:
        buf = bytearray()
        o.serialize(buf, 0)
        out += bytes(buf)
    return out


def port(p: Any) -> bytes:
    mac = bytes.fromhex(p.hw_addr.replace(":", ""))
    return struct.pack(ofp.OFP_PORT_PACK_STR, p.port_no, mac, p.name.encode()[:15],
                       p.config, p.state, 0x820, 0, 0, 0, p.curr_speed, p.curr_speed)


def features_reply(xid: int, dpid: int) -> bytes:
    caps = (ofp.OFPC_FLOW_STATS | ofp.OFPC_TABLE_STATS | ofp.OFPC_PORT_STATS
            | ofp.OFPC_GROUP_STATS | ofp.OFPC_QUEUE_STATS)
    return msg(ofp.OFPT_FEATURES_REPLY, xid,
               struct.pack(ofp.OFP_SWITCH_FEATURES_PACK_STR, dpid, 0, 254, 0, caps, 0))


def packet_in(pi: Any, buffer_id: int = ofp.OFP_NO_BUFFER) -> bytes:
    match = Match({"in_port": (pi.in_port, 0xFFFFFFFF)}).encode()
    body = struct.pack(ofp.OFP_PACKET_IN_PACK_STR, buffer_id, pi.total_len, pi.reason,
                       pi.table_id, pi.cookie) + match + b"\0\0" + pi.data
    return msg(ofp.OFPT_PACKET_IN, 0, body)


def port_status(reason: int, p: Any) -> bytes:
    return msg(ofp.OFPT_PORT_STATUS, 0, struct.pack("!B7x", reason) + port(p))


def _duration(since: float, now: float) -> tuple[int, int]:
    d = max(0.0, now - since)
    return int(d), int((d - int(d)) * 1e9)


def flow_removed(e: Any, reason: int, now: float) -> bytes:
    sec, nsec = _duration(e.installed, now)
    body = struct.pack(ofp.OFP_FLOW_REMOVED_PACK_STR0, e.cookie, e.priority, reason,
                       e.table_id, sec, nsec, e.idle_timeout, e.hard_timeout,
                       e.packet_count, e.byte_count) + e.match.encode()
    return msg(ofp.OFPT_FLOW_REMOVED, 0, body)


def multipart(xid: int, mp_type: int, items: list[bytes], limit: int = MAX_MSG,
              head: bytes = b"") -> list[bytes]:
    """Items in as few replies as fit ``limit`` bytes each (every reply but the last
    with OFPMPF_REPLY_MORE); at least one reply, empty if there are no items."""
    out: list[bytes] = []
    part: list[bytes] = []
    size = 16
    for item in items:
        if part and size + len(item) > limit:
            out.append(msg(ofp.OFPT_MULTIPART_REPLY, xid, struct.pack(
                "!HH4x", mp_type, ofp.OFPMPF_REPLY_MORE) + b"".join(part)))
            part, size = [], 16
        part.append(item)
        size += len(item)
    out.append(msg(ofp.OFPT_MULTIPART_REPLY, xid,
                   struct.pack("!HH4x", mp_type, 0) + head + b"".join(part)))
    return out


def flow_stats(e: Any, now: float) -> bytes:
    sec, nsec = _duration(e.installed, now)
    tail = e.match.encode() + serialize(e.instructions)
    return struct.pack(ofp.OFP_FLOW_STATS_0_PACK_STR, 48 + len(tail), e.table_id, sec, nsec,
                       e.priority, e.idle_timeout, e.hard_timeout, e.flags, e.cookie,
                       e.packet_count, e.byte_count) + tail


def group_desc(g: Any) -> bytes:
    buckets = serialize(g.buckets)
    return struct.pack(ofp.OFP_GROUP_DESC_STATS_PACK_STR, 8 + len(buckets), g.type,
                       g.group_id) + buckets


def group_stats(g: Any, refs: int, now: float) -> bytes:
    sec, nsec = _duration(g.installed, now)
    counters = b"".join(struct.pack("!QQ", p, b) for p, b in g.bucket_counts)
    return struct.pack(ofp.OFP_GROUP_STATS_PACK_STR, 40 + len(counters), g.group_id, refs,
                       g.packet_count, g.byte_count, sec, nsec) + counters


def meter_config(m: Any) -> bytes:
    bands = serialize(m.bands)
    return struct.pack(ofp.OFP_METER_CONFIG_PACK_STR, 8 + len(bands), m.flags,
                       m.meter_id) + bands


def meter_stats(m: Any, flows: int, now: float) -> bytes:
    sec, nsec = _duration(m.installed, now)
    bands = b"".join(struct.pack("!QQ", p, b) for p, b in m.band_counts)
    return struct.pack(ofp.OFP_METER_STATS_PACK_STR, m.meter_id, 40 + len(bands), flows,
                       m.packet_in, m.byte_in, sec, nsec) + bands


def port_stats(p: Any, now: float) -> bytes:
    c = p.counters
    sec, nsec = _duration(p.since, now)
    return struct.pack(ofp.OFP_PORT_STATS_PACK_STR, p.port_no, c["rx_packets"],
                       c["tx_packets"], c["rx_bytes"], c["tx_bytes"], c["rx_dropped"],
                       c["tx_dropped"], 0, 0, 0, 0, 0, 0, sec, nsec)


def desc(dpid: int) -> bytes:
    return struct.pack(ofp.OFP_DESC_PACK_STR, b"aifabric tests", b"fake OpenFlow 1.3 switch",
                       b"tests.fakes", f"{dpid:016x}".encode(), b"fleet")
