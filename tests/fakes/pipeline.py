"""A frame through a fake switch's OpenFlow 1.3 pipeline (:class:`SwitchTables`).

Lookup: in each table the highest-priority entry whose match the frame's fields satisfy
(masked fields included) wins; no entry is a table miss, and a miss drops the frame
(OpenFlow 1.3 without a table-miss entry). An entry's instructions run in OpenFlow's
order: ``meter`` (a meter over its rate drops the frame there), ``apply_actions`` (in
list order), ``clear_actions``, ``write_actions`` (into the action set),
``write_metadata``, ``goto_table``; the action set runs at the end of the pipeline
(``set_field``, ``set_queue``, then ``group`` or else ``output``).

Actions: ``output`` to a port (never back out of the port the frame came in on, unless
``IN_PORT``), ``ALL``/``FLOOD``, ``CONTROLLER`` (a packet-in carrying the entry's
cookie and table, reason ``ACTION``, or ``NO_MATCH`` from a table-miss entry, the data
cut to ``max_len``), Open vSwitch's ``controller(max_len, meter_id)`` (the frame goes
through the meter first; a meter that does not exist polices nothing), ``group``
(select: one live bucket by a weighted hash of the frame's addresses and ports; all:
every live bucket; indirect: its bucket; fast-failover: the first live one; each bucket
on its own copy of the frame), ``set_field``, ``set_queue``.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Any

from os_ken.ofproto import ofproto_v1_3 as ofp
from os_ken.ofproto import ofproto_v1_3_parser as parser

from tests.fakes.fields import to_int
from tests.fakes.oftables import NX_CONTROLLER_ACTIONS, FlowEntry, SwitchTables
from tests.fakes.packet import Packet

_ORDER = {parser.OFPInstructionMeter: 0, parser.OFPInstructionActions: 1,
          parser.OFPInstructionWriteMetadata: 4, parser.OFPInstructionGotoTable: 5}
_ACTIONS_ORDER = {ofp.OFPIT_APPLY_ACTIONS: 1, ofp.OFPIT_CLEAR_ACTIONS: 2,
                  ofp.OFPIT_WRITE_ACTIONS: 3}
_HASHED = ("eth_src", "eth_dst", "eth_type", "ipv4_src", "ipv4_dst", "ipv6_src", "ipv6_dst",
           "ip_proto", "tcp_src", "tcp_dst", "udp_src", "udp_dst", "sctp_src", "sctp_dst")
MAX_GROUP_DEPTH = 8


@dataclass(frozen=True)
class Output:
    """The frame leaves by ``port`` (a physical port number)."""

    port: int
    data: bytes
    queue_id: int | None = None


@dataclass(frozen=True)
class ToController:
    """A packet-in: ``data`` is the frame cut to the action's max_len."""

    reason: int
    table_id: int
    cookie: int
    in_port: int
    data: bytes
    total_len: int


@dataclass
class _Ctx:
    table_id: int = 0
    cookie: int = 0xFFFFFFFFFFFFFFFF  # (a packet-out's packet-ins: no entry)
    table_miss: bool = False
    packet_out: bool = False


def _ins_order(ins: Any) -> int:
    if isinstance(ins, parser.OFPInstructionActions):
        return _ACTIONS_ORDER.get(ins.type, 9)
    return _ORDER.get(type(ins), 9)


def select_hash(pkt: Packet) -> int:
    """The hash a select group picks a bucket by: a flow's packets all take one."""
    f = pkt.fields
    return zlib.crc32(repr(tuple(f.get(k) for k in _HASHED)).encode())


class Pipeline:
    """Runs frames through one switch's tables; results are :class:`Output` and
    :class:`ToController` items, in the order the switch would emit them."""

    def __init__(self, tables: SwitchTables) -> None:
        self.t = tables
        self.dropped_by_meter = 0
        self.table_misses = 0

    # --- entry points -----------------------------------------------------------------------
    def receive(self, in_port: int, data: bytes, now: float) -> list[Output | ToController]:
        """A frame arrives on ``in_port``: the pipeline from table 0."""
        return self.run(Packet(data, in_port), now)

    def packet_out(self, in_port: int, actions: list, data: bytes,
                   now: float) -> list[Output | ToController]:
        """A packet-out's actions applied to ``data`` (output to TABLE: the pipeline)."""
        pkt, out = Packet(data, in_port), []
        self._actions(actions, pkt, now, out, _Ctx(packet_out=True), 0)
        return out

    def run(self, pkt: Packet, now: float, table_id: int = 0) -> list[Output | ToController]:
        out: list[Output | ToController] = []
        action_set: dict[Any, Any] = {}
        ctx = _Ctx()
        while True:
            self.t.lookups[table_id] += 1
            entry = self.lookup(table_id, pkt.fields)
            if entry is None:
                self.table_misses += 1
                break
            self.t.matched[table_id] += 1
            entry.packet_count += 1
            entry.byte_count += len(pkt.data)
            entry.last_hit = now
            ctx = _Ctx(table_id, entry.cookie,
                       entry.priority == 0 and not entry.match.fields)
            goto = None
            for ins in sorted(entry.instructions, key=_ins_order):
                if isinstance(ins, parser.OFPInstructionMeter):
                    meter = self.t.meters.get(ins.meter_id)
                    if meter is not None and not meter.admit(len(pkt.data), now):
                        self.dropped_by_meter += 1
                        return out
                elif isinstance(ins, parser.OFPInstructionActions):
                    if ins.type == ofp.OFPIT_APPLY_ACTIONS:
                        self._actions(ins.actions, pkt, now, out, ctx, 0)
                    elif ins.type == ofp.OFPIT_CLEAR_ACTIONS:
                        action_set.clear()
                    else:
                        for a in ins.actions:
                            action_set[_set_key(a)] = a
                elif isinstance(ins, parser.OFPInstructionWriteMetadata):
                    md = pkt.fields.get("metadata", 0)
                    pkt.fields["metadata"] = (md & ~ins.metadata_mask) | (
                        ins.metadata & ins.metadata_mask)
                elif isinstance(ins, parser.OFPInstructionGotoTable):
                    goto = ins.table_id
            if goto is None:
                break
            table_id = goto
        if action_set:
            self._actions(_set_order(action_set), pkt, now, out, ctx, 0)
        return out

    def lookup(self, table_id: int, fields: dict[str, int]) -> FlowEntry | None:
        for e in self.t.ordered(table_id):
            if e.match.matches(fields):
                return e
        return None

    # --- actions ----------------------------------------------------------------------------
    def _actions(self, actions: list, pkt: Packet, now: float, out: list, ctx: _Ctx,
                 depth: int) -> None:
        for a in actions:
            if isinstance(a, parser.OFPActionOutput):
                self._output(a.port, a.max_len, pkt, now, out, ctx)
            elif isinstance(a, parser.OFPActionGroup):
                self._group(a.group_id, pkt, now, out, ctx, depth)
            elif isinstance(a, parser.OFPActionSetField):
                pkt.set_field(a.key, to_int(a.key, a.value))
            elif isinstance(a, parser.OFPActionSetQueue):
                pkt.queue_id = a.queue_id
            elif isinstance(a, NX_CONTROLLER_ACTIONS):
                meter_id = getattr(a, "meter_id", None)
                meter = self.t.meters.get(meter_id) if meter_id is not None else None
                if meter is not None and not meter.admit(len(pkt.data), now):
                    self.dropped_by_meter += 1
                    continue
                self._to_controller(getattr(a, "max_len", ofp.OFPCML_NO_BUFFER),
                                    getattr(a, "reason", ofp.OFPR_ACTION), pkt, out, ctx)

    def _output(self, port: int, max_len: int, pkt: Packet, now: float, out: list,
                ctx: _Ctx) -> None:
        in_port = pkt.fields["in_port"]
        if port == ofp.OFPP_CONTROLLER:
            self._to_controller(max_len, ofp.OFPR_ACTION, pkt, out, ctx)
        elif port == ofp.OFPP_IN_PORT:
            if in_port in self.t.ports:
                out.append(Output(in_port, bytes(pkt.data), pkt.queue_id))
        elif port in (ofp.OFPP_ALL, ofp.OFPP_FLOOD):
            for p in sorted(self.t.ports):
                if p != in_port and p <= ofp.OFPP_MAX and self.t.ports[p].up:
                    out.append(Output(p, bytes(pkt.data), pkt.queue_id))
        elif port == ofp.OFPP_TABLE:
            if ctx.packet_out:
                out.extend(self.run(pkt.copy(), now))
        elif port != in_port and port <= ofp.OFPP_MAX:  # (LOCAL: nothing behind it here)
            out.append(Output(port, bytes(pkt.data), pkt.queue_id))

    def _to_controller(self, max_len: int, reason: int, pkt: Packet, out: list,
                       ctx: _Ctx) -> None:
        if reason == ofp.OFPR_ACTION and ctx.table_miss:
            reason = ofp.OFPR_NO_MATCH
        data = bytes(pkt.data)
        cut = data if max_len == ofp.OFPCML_NO_BUFFER else data[:max_len]
        out.append(ToController(reason, ctx.table_id, ctx.cookie, pkt.fields["in_port"],
                                cut, len(data)))

    def _group(self, group_id: int, pkt: Packet, now: float, out: list, ctx: _Ctx,
               depth: int) -> None:
        group = self.t.groups.get(group_id)
        if group is None or depth >= MAX_GROUP_DEPTH:
            return
        group.packet_count += 1
        group.byte_count += len(pkt.data)
        live = [i for i, b in enumerate(group.buckets) if self.t.bucket_live(b)]
        if group.type == ofp.OFPGT_SELECT:
            weighted = [i for i in live if group.buckets[i].weight > 0]
            total = sum(group.buckets[i].weight for i in weighted)
            chosen = []
            if total:
                point = select_hash(pkt) % total
                for i in weighted:
                    point -= group.buckets[i].weight
                    if point < 0:
                        chosen = [i]
                        break
        elif group.type == ofp.OFPGT_FF:
            chosen = live[:1]
        elif group.type == ofp.OFPGT_INDIRECT:
            chosen = [0] if group.buckets else []
        else:
            chosen = live
        for i in chosen:
            group.bucket_counts[i][0] += 1
            group.bucket_counts[i][1] += len(pkt.data)
            self._actions(group.buckets[i].actions, pkt.copy(), now, out, ctx, depth + 1)


def _set_key(a: Any) -> Any:
    """One action of each kind in an action set (one set_field per field)."""
    if isinstance(a, parser.OFPActionSetField):
        return ("set_field", a.key)
    return type(a)


def _set_order(action_set: dict) -> list:
    """OpenFlow's order for an action set: set_field, set_queue, then group or output."""
    def rank(a: Any) -> int:
        if isinstance(a, parser.OFPActionSetField):
            return 0
        if isinstance(a, parser.OFPActionSetQueue):
            return 1
        if isinstance(a, parser.OFPActionGroup):
            return 2
        return 3

    actions = sorted(action_set.values(), key=rank)
    if any(isinstance(a, parser.OFPActionGroup) for a in actions):
        actions = [a for a in actions if not isinstance(a, parser.OFPActionOutput)]
    return actions
