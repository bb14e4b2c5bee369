"""What a fake switch shows of its state: the bodies of its multipart replies (built from
:class:`SwitchTables` as it is at the request), and the plain-data form tests read
(entries, groups and meters as dicts and tuples, no os-ken objects).

Plain actions: ``("output", port)``, ``("controller", max_len)``, ``("group", id)``,
``("set_field", field, value)``, ``("set_queue", id)``, ``("meter_controller", max_len,
meter_id)`` (Open vSwitch's metered controller action); instructions: ``("apply",
actions)``, ``("write", actions)``, ``("clear",)``, ``("goto", table)``,
``("meter", id)``, ``("write_metadata", value, mask)``.
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING, Any

from os_ken.ofproto import ofproto_v1_3 as ofp
from os_ken.ofproto import ofproto_v1_3_parser as parser

from tests.fakes import ofwire as w
from tests.fakes.fields import OFError
from tests.fakes.oftables import N_TABLES, NX_CONTROLLER_ACTIONS, FlowEntry, Group, Meter

if TYPE_CHECKING:
    from tests.fakes.switch import FakeSwitch

Reply = tuple[list[bytes], bytes]  # items, and a fixed head before them (rarely)


# --- plain data ---------------------------------------------------------------------------
def action_tuple(a: Any) -> tuple:
    if isinstance(a, parser.OFPActionOutput):
        if a.port == ofp.OFPP_CONTROLLER:
            return ("controller", a.max_len)
        return ("output", a.port)
    if isinstance(a, parser.OFPActionGroup):
        return ("group", a.group_id)
    if isinstance(a, parser.OFPActionSetField):
        return ("set_field", a.key, a.value)
    if isinstance(a, parser.OFPActionSetQueue):
        return ("set_queue", a.queue_id)
    if isinstance(a, NX_CONTROLLER_ACTIONS):
        return ("meter_controller", getattr(a, "max_len", ofp.OFPCML_NO_BUFFER),
                getattr(a, "meter_id", None))
    return (type(a).__name__,)


def instruction_tuple(ins: Any) -> tuple:
    if isinstance(ins, parser.OFPInstructionActions):
        if ins.type == ofp.OFPIT_CLEAR_ACTIONS:
            return ("clear",)
        kind = "apply" if ins.type == ofp.OFPIT_APPLY_ACTIONS else "write"
        return (kind, tuple(action_tuple(a) for a in ins.actions))
    if isinstance(ins, parser.OFPInstructionGotoTable):
        return ("goto", ins.table_id)
    if isinstance(ins, parser.OFPInstructionMeter):
        return ("meter", ins.meter_id)
    if isinstance(ins, parser.OFPInstructionWriteMetadata):
        return ("write_metadata", ins.metadata, ins.metadata_mask)
    return (type(ins).__name__,)


def flow_dict(e: FlowEntry) -> dict[str, Any]:
    return {"table": e.table_id, "priority": e.priority, "match": e.match.as_dict(),
            "cookie": e.cookie, "instructions": tuple(instruction_tuple(i)
                                                      for i in e.instructions),
            "packets": e.packet_count, "bytes": e.byte_count, "flags": e.flags,
            "idle_timeout": e.idle_timeout, "hard_timeout": e.hard_timeout,
            "installed": e.installed}  # (monotonic: the same value, never re-added)


_GROUP_TYPES = {ofp.OFPGT_ALL: "all", ofp.OFPGT_SELECT: "select",
                ofp.OFPGT_INDIRECT: "indirect", ofp.OFPGT_FF: "ff"}


def group_dict(g: Group, tables: Any) -> dict[str, Any]:
    return {"type": _GROUP_TYPES[g.type], "packets": g.packet_count, "bytes": g.byte_count,
            "buckets": tuple({"actions": tuple(action_tuple(a) for a in b.actions),
                              "weight": b.weight,
                              "watch_port": None if b.watch_port == ofp.OFPP_ANY
                              else b.watch_port,
                              "live": tables.bucket_live(b), "packets": c[0]}
                             for b, c in zip(g.buckets, g.bucket_counts, strict=True))}


def meter_dict(m: Meter) -> dict[str, Any]:
    return {"pktps": bool(m.flags & ofp.OFPMF_PKTPS),
            "bands": tuple((b.rate, b.burst_size) for b in m.bands),
            "packets_in": m.packet_in, "dropped": sum(c[0] for c in m.band_counts)}


# --- multipart reply bodies ----------------------------------------------------------------
def mp_desc(sw: FakeSwitch, body: bytes, now: float) -> Reply:
    return [w.desc(sw.dpid)], b""


def _selected(sw: FakeSwitch, body: bytes) -> list[FlowEntry]:
    f = w.flow_stats_request(body)
    if f.table_id != ofp.OFPTT_ALL and f.table_id >= N_TABLES:
        raise w.bad(ofp.OFPBRC_BAD_TABLE_ID, str(f.table_id))
    return sw.tables.select(f.table_id, f.match, f.cookie, f.cookie_mask, f.out_port,
                            f.out_group)


def mp_flow(sw: FakeSwitch, body: bytes, now: float) -> Reply:
    return [w.flow_stats(e, now) for e in _selected(sw, body)], b""


def mp_aggregate(sw: FakeSwitch, body: bytes, now: float) -> Reply:
    got = _selected(sw, body)
    return [struct.pack(ofp.OFP_AGGREGATE_STATS_REPLY_PACK_STR,
                        sum(e.packet_count for e in got), sum(e.byte_count for e in got),
                        len(got))], b""


def mp_table(sw: FakeSwitch, body: bytes, now: float) -> Reply:
    t = sw.tables
    return [struct.pack(ofp.OFP_TABLE_STATS_PACK_STR, i, len(t.tables.get(i, {})),
                        t.lookups[i], t.matched[i]) for i in range(N_TABLES)], b""


def _ports(sw: FakeSwitch, port_no: int) -> list:
    ports = sorted(sw.tables.ports.values(), key=lambda p: p.port_no)
    return ports if port_no == ofp.OFPP_ANY else [p for p in ports if p.port_no == port_no]


def mp_port_stats(sw: FakeSwitch, body: bytes, now: float) -> Reply:
    (port_no,) = struct.unpack_from("!I", body, 0)
    return [w.port_stats(p, now) for p in _ports(sw, port_no)], b""


def mp_port_desc(sw: FakeSwitch, body: bytes, now: float) -> Reply:
    return [w.port(p) for p in _ports(sw, ofp.OFPP_ANY)], b""


def mp_queue(sw: FakeSwitch, body: bytes, now: float) -> Reply:
    port_no, queue_id = struct.unpack_from("!II", body, 0)
    if port_no != ofp.OFPP_ANY and port_no not in sw.tables.ports:
        raise OFError(ofp.OFPET_QUEUE_OP_FAILED, ofp.OFPQOFC_BAD_PORT, str(port_no))
    if queue_id != ofp.OFPQ_ALL:  # (no queues are configured on a fake port)
        raise OFError(ofp.OFPET_QUEUE_OP_FAILED, ofp.OFPQOFC_BAD_QUEUE, str(queue_id))
    return [], b""


def _groups(sw: FakeSwitch, group_id: int) -> list[Group]:
    groups = sorted(sw.tables.groups.values(), key=lambda g: g.group_id)
    return groups if group_id == ofp.OFPG_ALL else [g for g in groups
                                                     if g.group_id == group_id]


def mp_group(sw: FakeSwitch, body: bytes, now: float) -> Reply:
    (gid,) = struct.unpack_from("!I", body, 0)
    return [w.group_stats(g, sw.tables.group_refs(g.group_id), now)
            for g in _groups(sw, gid)], b""


def mp_group_desc(sw: FakeSwitch, body: bytes, now: float) -> Reply:
    return [w.group_desc(g) for g in _groups(sw, ofp.OFPG_ALL)], b""


def mp_group_features(sw: FakeSwitch, body: bytes, now: float) -> Reply:
    types = sum(1 << t for t in _GROUP_TYPES)
    caps = ofp.OFPGFC_SELECT_WEIGHT | ofp.OFPGFC_SELECT_LIVENESS | ofp.OFPGFC_CHAINING
    actions = sum(1 << a for a in (ofp.OFPAT_OUTPUT, ofp.OFPAT_GROUP, ofp.OFPAT_SET_QUEUE,
                                   ofp.OFPAT_SET_FIELD))
    return [struct.pack(ofp.OFP_GROUP_FEATURES_PACK_STR, types, caps,
                        *([ofp.OFPG_MAX] * 4), *([actions] * 4))], b""


def _meters(sw: FakeSwitch, body: bytes) -> list[Meter]:
    (mid,) = struct.unpack_from("!I", body, 0)
    meters = sorted(sw.tables.meters.values(), key=lambda m: m.meter_id)
    return meters if mid == ofp.OFPM_ALL else [m for m in meters if m.meter_id == mid]


def mp_meter(sw: FakeSwitch, body: bytes, now: float) -> Reply:
    counts = sw.tables.flow_counts()
    return [w.meter_stats(m, counts[m.meter_id], now) for m in _meters(sw, body)], b""


def mp_meter_config(sw: FakeSwitch, body: bytes, now: float) -> Reply:
    return [w.meter_config(m) for m in _meters(sw, body)], b""


def mp_meter_features(sw: FakeSwitch, body: bytes, now: float) -> Reply:
    caps = ofp.OFPMF_KBPS | ofp.OFPMF_PKTPS | ofp.OFPMF_BURST | ofp.OFPMF_STATS
    return [struct.pack(ofp.OFP_METER_FEATURES_PACK_STR, ofp.OFPM_MAX,
                        1 << ofp.OFPMBT_DROP, caps, 8, 0)], b""
