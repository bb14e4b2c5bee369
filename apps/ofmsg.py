"""Translation between the core's pure entries (``controller.core.southbound.openflow``) and os-ken
OpenFlow 1.3 messages, in both directions (the reverse is used to read what a switch
already holds when it connects)."""

from __future__ import annotations

import struct
from functools import lru_cache
from types import SimpleNamespace
from typing import Any

from os_ken.ofproto import ofproto_v1_3 as ofp
from os_ken.ofproto import ofproto_v1_3_parser as parser

from apps import flowmod_bytes
from controller.core import constants as C
from controller.core.southbound.openflow import Bucket, FlowRule, GroupRule, MeterRule, SyncPlan

# --- OVS's metered controller action ----------------------------------------------------
# OVS's controller(max_len=N, meter_id=M) is NXAST_CONTROLLER2 with property 5
# (NXAC2PT_METER_ID, a be32). os-ken knows the action but not that property: register it
# with the property table of the OpenFlow 1.3 parser's class, so that it is both sent
# and read back (the table is a closure variable of the class's serializer).
_NXAC2PT_METER_ID = 5


def _register_meter_id_property() -> None:
    c2 = parser.NXActionController2
    cells = dict(zip(c2.serialize_body.__code__.co_freevars,
                     (c.cell_contents for c in c2.serialize_body.__closure__ or ()),
                     strict=True))
    prop = cells["NXActionController2Prop"]
    if _NXAC2PT_METER_ID in prop._TYPES:
        return

    @prop.register_type(_NXAC2PT_METER_ID)
    class _MeterId(prop):  # type: ignore[misc, valid-type]
        _arg_name = "meter_id"

        @classmethod
        def parser_prop(cls, buf, length):
            return struct.unpack_from("!I", buf, 0)[0], 4

        @classmethod
        def serialize_prop(cls, meter_id):
            return bytearray(struct.pack("!HHI", _NXAC2PT_METER_ID, 8, meter_id))


_register_meter_id_property()

_GROUP_TYPES = {
    "all": ofp.OFPGT_ALL,
    "select": ofp.OFPGT_SELECT,
    "indirect": ofp.OFPGT_INDIRECT,
    "ff": ofp.OFPGT_FF,
}
_GROUP_NAMES = {v: k for k, v in _GROUP_TYPES.items()}


# --- core -> os-ken --------------------------------------------------------------------
def _action(a: tuple) -> Any:
    kind = a[0]
    if kind == "output":
        return parser.OFPActionOutput(a[1], 0)
    if kind == "controller":
        return parser.OFPActionOutput(ofp.OFPP_CONTROLLER, a[1])
    if kind == "meter_controller":
        return parser.NXActionController2(max_len=a[1], meter_id=a[2])
    if kind == "group":
        return parser.OFPActionGroup(a[1])
    if kind == "set_field":
        return parser.OFPActionSetField(**{a[1]: a[2]})
    if kind == "set_queue":
        return parser.OFPActionSetQueue(a[1])
    raise ValueError(f"unknown action {a!r}")


def _instructions(rule: FlowRule) -> list[Any]:
    out = []
    for ins in rule.instructions:
        if ins[0] == "apply":
            out.append(
                parser.OFPInstructionActions(ofp.OFPIT_APPLY_ACTIONS, [_action(a) for a in ins[1]])
            )
        elif ins[0] == "write":
            out.append(
                parser.OFPInstructionActions(ofp.OFPIT_WRITE_ACTIONS, [_action(a) for a in ins[1]])
            )
        elif ins[0] == "clear":
            out.append(parser.OFPInstructionActions(ofp.OFPIT_CLEAR_ACTIONS, []))
        elif ins[0] == "goto":
            out.append(parser.OFPInstructionGotoTable(ins[1]))
        elif ins[0] == "write_metadata":
            out.append(parser.OFPInstructionWriteMetadata(ins[1], ins[2]))
        else:
            raise ValueError(f"unknown instruction {ins!r}")
    return out


def flow_mod(dp, rule: FlowRule, command: int) -> parser.OFPFlowMod:
    return parser.OFPFlowMod(
        datapath=dp,
        cookie=rule.cookie,
        table_id=rule.table,
        command=command,
        priority=rule.priority,
        buffer_id=ofp.OFP_NO_BUFFER,
        out_port=ofp.OFPP_ANY,
        out_group=ofp.OFPG_ANY,
        flags=0,
        match=parser.OFPMatch(**dict(rule.match)),
        instructions=[] if command == ofp.OFPFC_DELETE_STRICT else _instructions(rule),
    )


def group_mod(dp, group: GroupRule, command: int) -> parser.OFPGroupMod:
    buckets = [
        parser.OFPBucket(
            weight=b.weight if group.group_type == "select" else 0,
            watch_port=b.watch_port if b.watch_port is not None else ofp.OFPP_ANY,
            watch_group=ofp.OFPG_ANY,
            actions=[_action(a) for a in b.actions],
        )
        for b in group.buckets
    ]
    return parser.OFPGroupMod(dp, command, _GROUP_TYPES[group.group_type], group.group_id, buckets)


def meter_mod(dp, meter: MeterRule, command: int) -> parser.OFPMeterMod:
    return parser.OFPMeterMod(
        dp, command, ofp.OFPMF_PKTPS | ofp.OFPMF_BURST | ofp.OFPMF_STATS, meter.meter_id,
        [parser.OFPMeterBandDrop(rate=meter.rate_pps, burst_size=meter.burst)])


def flow_add_expiring(dp, rule: FlowRule, hard_timeout: int) -> parser.OFPFlowMod:
    """An entry outside the desired state that the switch removes by itself."""
    msg = flow_mod(dp, rule, ofp.OFPFC_ADD)
    msg.hard_timeout = hard_timeout
    return msg


_ROLES = {"master": ofp.OFPCR_ROLE_MASTER, "slave": ofp.OFPCR_ROLE_SLAVE,
          "equal": ofp.OFPCR_ROLE_EQUAL}


def role_request(dp, role: str, generation: int) -> parser.OFPRoleRequest:
    """Ask the switch for ``role``; ``generation`` orders masters (an older one is
    refused as stale)."""
    return parser.OFPRoleRequest(dp, _ROLES[role], generation % (1 << 64))


def async_all_roles(dp) -> parser.OFPSetAsync:
    """Packet-ins and port status in every role (a slave sees what the master sees, so
    every instance of a cluster builds the same view), flow-removed for the master."""
    packet_in = (1 << ofp.OFPR_NO_MATCH) | (1 << ofp.OFPR_ACTION) | (1 << ofp.OFPR_INVALID_TTL)
    port_status = (1 << ofp.OFPPR_ADD) | (1 << ofp.OFPPR_DELETE) | (1 << ofp.OFPPR_MODIFY)
    removed = (1 << ofp.OFPRR_IDLE_TIMEOUT) | (1 << ofp.OFPRR_HARD_TIMEOUT) | \
        (1 << ofp.OFPRR_DELETE) | (1 << ofp.OFPRR_GROUP_DELETE)
    return parser.OFPSetAsync(dp, [packet_in, packet_in], [port_status, port_status],
                              [removed, 0])


# --- messages as bytes ------------------------------------------------------------------
# The same entry goes to many switches (a host's entry to every leaf, a leaf's control
# entries to all of them) and again after a reconnection: each is made into bytes once,
# and sent with the connection's next xid. Building os-ken's objects was the fabric
# app's main cost while a large fabric came up and while flows were placed.
_NO_DP = SimpleNamespace(ofproto=ofp, ofproto_parser=parser)
_XID = struct.Struct("!I")


def encode(msg: Any) -> bytes:
    """An os-ken message's bytes (xid 0), without a connection."""
    msg.datapath = _NO_DP
    msg.set_xid(0)
    msg.serialize()
    return bytes(msg.buf)


@lru_cache(maxsize=1 << 17)
def flow_mod_bytes(rule: FlowRule, command: int) -> bytes:
    fast = flowmod_bytes.flow_mod(rule, command)  # (most entries: without os-ken's objects)
    return fast if fast is not None else encode(flow_mod(_NO_DP, rule, command))


@lru_cache(maxsize=1 << 15)
def group_mod_bytes(group: GroupRule, command: int) -> bytes:
    return encode(group_mod(_NO_DP, group, command))


_PACKET_OUT = struct.Struct("!BBHIIIH6x")  # header, buffer id, in port, actions' length
_OUTPUT = struct.Struct("!HHIH6x")  # an output action: type, length, port, max length


def packet_out_bytes(ports: tuple[int, ...], data: bytes) -> bytes:
    """A packet-out of ``data`` (from the controller, unbuffered) out of ``ports``, as
    bytes with xid 0 (:func:`numbered` gives it the connection's next): the same
    message os-ken builds, without its objects (LLDP probes go out thousands a second)."""
    actions = b"".join(_OUTPUT.pack(ofp.OFPAT_OUTPUT, _OUTPUT.size, p, 0) for p in ports)
    head = _PACKET_OUT.pack(ofp.OFP_VERSION, ofp.OFPT_PACKET_OUT,
                            _PACKET_OUT.size + len(actions) + len(data), 0,
                            ofp.OFP_NO_BUFFER, ofp.OFPP_CONTROLLER, len(actions))
    return head + actions + data


def numbered(dp, msg: Any) -> bytes:
    """An os-ken message or bytes made by :func:`encode`, as sent (``dp.send``): with the
    switch's next xid, as os-ken numbers what it sends (an os-ken message keeps one it
    was given, as ``send_msg`` does, and learns the one it gets). Several, joined, go to
    the switch in one write."""
    if not isinstance(msg, bytes):
        if msg.xid is None:
            dp.set_xid(msg)
        msg.serialize()
        return bytes(msg.buf)
    dp.xid = (dp.xid + 1) & ofp.MAX_XID
    buf = bytearray(msg)
    _XID.pack_into(buf, 4, dp.xid)
    return bytes(buf)


def plan_messages(dp, plan: SyncPlan) -> list[Any]:
    """The messages of a plan (os-ken messages, or bytes for :func:`send`), in a safe
    order, with barriers between dependent phases: meters and groups before the flows
    that use them, flows deleted before them."""
    msgs: list[Any] = []
    msgs += [meter_mod(dp, m, ofp.OFPMC_ADD) for m in plan.meter_adds]
    msgs += [meter_mod(dp, m, ofp.OFPMC_MODIFY) for m in plan.meter_mods]
    msgs += [group_mod_bytes(g, ofp.OFPGC_ADD) for g in plan.group_adds]
    msgs += [group_mod_bytes(g, ofp.OFPGC_MODIFY) for g in plan.group_mods]
    if msgs:
        msgs.append(parser.OFPBarrierRequest(dp))
    msgs += [flow_mod_bytes(r, ofp.OFPFC_ADD) for r in plan.flow_adds]
    msgs += [flow_mod_bytes(r, ofp.OFPFC_MODIFY_STRICT) for r in plan.flow_mods]
    msgs += [flow_mod_bytes(r, ofp.OFPFC_DELETE_STRICT) for r in plan.flow_dels]
    if plan.group_dels:
        msgs.append(parser.OFPBarrierRequest(dp))
        msgs += [
            parser.OFPGroupMod(dp, ofp.OFPGC_DELETE, ofp.OFPGT_SELECT, gid, [])
            for gid in plan.group_dels
        ]
    if plan.meter_dels:
        msgs.append(parser.OFPBarrierRequest(dp))
        msgs += [parser.OFPMeterMod(dp, ofp.OFPMC_DELETE, 0, mid, [])
                 for mid in plan.meter_dels]
    msgs.append(parser.OFPBarrierRequest(dp))
    return msgs


# --- os-ken -> core --------------------------------------------------------------------
def port_name(desc: Any) -> str:
    """A port description's name as text (os-ken gives bytes)."""
    name = desc.name
    return name.decode(errors="replace") if isinstance(name, bytes) else str(name)



def _parse_action(a: Any) -> tuple:
    if isinstance(a, parser.OFPActionOutput):
        if a.port == ofp.OFPP_CONTROLLER:
            return ("controller", a.max_len)
        return ("output", a.port)
    if isinstance(a, parser.OFPActionGroup):
        return ("group", a.group_id)
    if isinstance(a, parser.NXActionController2):
        return ("meter_controller", getattr(a, "max_len", 0xFFFF),
                getattr(a, "meter_id", 0xFFFFFFFF))
    if isinstance(a, parser.OFPActionSetField):
        return ("set_field", a.key, a.value)
    if isinstance(a, parser.OFPActionSetQueue):
        return ("set_queue", a.queue_id)
    return ("unknown", type(a).__name__)


def _normal(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(value)
    return value


def flow_match(stat: Any) -> tuple:
    """The match of a flow-stats entry in the core's canonical form."""
    return tuple(sorted((k, _normal(v)) for k, v in stat.match.items()))


def flow_from_stats(stat: Any) -> FlowRule:
    match = flow_match(stat)
    instructions = []
    for ins in stat.instructions:
        if isinstance(ins, parser.OFPInstructionActions) and ins.type == ofp.OFPIT_APPLY_ACTIONS:
            instructions.append(("apply", tuple(_parse_action(a) for a in ins.actions)))
        elif isinstance(ins, parser.OFPInstructionActions) and ins.type == ofp.OFPIT_WRITE_ACTIONS:
            instructions.append(("write", tuple(_parse_action(a) for a in ins.actions)))
        elif isinstance(ins, parser.OFPInstructionActions) and ins.type == ofp.OFPIT_CLEAR_ACTIONS:
            instructions.append(("clear",))
        elif isinstance(ins, parser.OFPInstructionGotoTable):
            instructions.append(("goto", ins.table_id))
        elif isinstance(ins, parser.OFPInstructionWriteMetadata):
            instructions.append(("write_metadata", ins.metadata, ins.metadata_mask))
        else:
            instructions.append(("unknown", type(ins).__name__))
    return FlowRule(stat.table_id, stat.priority, match, tuple(instructions), stat.cookie)


def group_from_desc(desc: Any) -> GroupRule:
    gtype = _GROUP_NAMES.get(desc.type, "unknown")
    buckets = tuple(
        Bucket(
            tuple(_parse_action(a) for a in b.actions),
            b.weight if gtype == "select" else 1,
            None if b.watch_port == ofp.OFPP_ANY else b.watch_port,
        )
        for b in desc.buckets
    )
    return GroupRule(desc.group_id, gtype, buckets)


def ours(rule: FlowRule) -> bool:
    return C.is_ours(rule.cookie)


def meter_from_config(stat: Any) -> MeterRule | None:
    """One of our meters from a meter-config reply (None: not a pktps drop meter)."""
    bands = [b for b in stat.bands if isinstance(b, parser.OFPMeterBandDrop)]
    if len(bands) != 1 or not stat.flags & ofp.OFPMF_PKTPS:
        return None
    return MeterRule(stat.meter_id, bands[0].rate, bands[0].burst_size)
