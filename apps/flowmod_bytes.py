"""Flow-mods of the common entries written straight as OpenFlow 1.3 bytes.

A new flow's pin is made into a flow-mod once, but thousands of new flows a second make
thousands of them, and os-ken's message objects (its match object above all) were a
tenth of the fabric app's time then. The entries the core makes most (pins, host
entries, routes, guard passes) use a few match fields, instructions and actions; those
are written here, byte for byte as os-ken writes them (tests/unit/test_flowmod_bytes.py
compares both on every entry of a fabric's desired state). Anything else returns None,
and apps.ofmsg builds it through os-ken.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Callable

from os_ken.ofproto import ofproto_v1_3 as ofp

from controller.core.southbound.openflow import FlowRule

_FLOW_MOD = struct.Struct("!BBHIQQBBHHHIIIH2x")  # header and fixed part: 48 bytes
_OXM_BASIC = ofp.OFPXMC_OPENFLOW_BASIC << 16


def _mac(value: object) -> bytes:
    return bytes.fromhex(str(value).replace(":", ""))


def _ipv4(value: object) -> bytes:
    return socket.inet_aton(str(value))


def _uint(size: int) -> Callable[[object], bytes]:
    return lambda value: int(value).to_bytes(size, "big")  # type: ignore[call-overload]


# field -> (OXM field number, its value's bytes); os-ken writes fields in this order
_FIELDS: dict[str, tuple[int, Callable[[object], bytes]]] = {
    "in_port": (ofp.OFPXMT_OFB_IN_PORT, _uint(4)),
    "metadata": (ofp.OFPXMT_OFB_METADATA, _uint(8)),
    "eth_dst": (ofp.OFPXMT_OFB_ETH_DST, _mac),
    "eth_src": (ofp.OFPXMT_OFB_ETH_SRC, _mac),
    "eth_type": (ofp.OFPXMT_OFB_ETH_TYPE, _uint(2)),
    "ip_dscp": (ofp.OFPXMT_OFB_IP_DSCP, _uint(1)),
    "ip_proto": (ofp.OFPXMT_OFB_IP_PROTO, _uint(1)),
    "ipv4_src": (ofp.OFPXMT_OFB_IPV4_SRC, _ipv4),
    "ipv4_dst": (ofp.OFPXMT_OFB_IPV4_DST, _ipv4),
    "tcp_src": (ofp.OFPXMT_OFB_TCP_SRC, _uint(2)),
    "tcp_dst": (ofp.OFPXMT_OFB_TCP_DST, _uint(2)),
    "udp_src": (ofp.OFPXMT_OFB_UDP_SRC, _uint(2)),
    "udp_dst": (ofp.OFPXMT_OFB_UDP_DST, _uint(2)),
}


def _pad8(n: int) -> int:
    return (n + 7) // 8 * 8 - n


def _match(match: tuple) -> bytes | None:
    fields = []
    for name, value in match:
        spec = _FIELDS.get(name)
        if spec is None:
            return None
        number, pack = spec
        if isinstance(value, tuple):  # (value, mask): only the metadata's here
            if name != "metadata":
                return None
            payload = pack(int(value[0]) & int(value[1])) + pack(value[1])  # (as os-ken)
            number = number << 1 | 1
        else:
            payload = pack(value)
            number = number << 1
        header = _OXM_BASIC | number << 8 | len(payload)  # (class, field, hasmask, length)
        fields.append((spec[0], struct.pack("!I", header) + payload))
    body = b"".join(f for _, f in sorted(fields, key=lambda f: f[0]))
    length = 4 + len(body)
    return struct.pack("!HH", ofp.OFPMT_OXM, length) + body + bytes(_pad8(length))


def _action(a: tuple) -> bytes | None:
    if a[0] == "output":
        return struct.pack("!HHIH6x", ofp.OFPAT_OUTPUT, 16, a[1], 0)
    if a[0] == "controller":
        return struct.pack("!HHIH6x", ofp.OFPAT_OUTPUT, 16, ofp.OFPP_CONTROLLER, a[1])
    if a[0] == "group":
        return struct.pack("!HHI", ofp.OFPAT_GROUP, 8, a[1])
    return None


def _instructions(rule: FlowRule) -> bytes | None:
    out = []
    for ins in rule.instructions:
        if ins[0] in ("apply", "write"):
            actions = [_action(a) for a in ins[1]]
            if any(a is None for a in actions):
                return None
            body = b"".join(actions)  # type: ignore[arg-type]
            kind = ofp.OFPIT_APPLY_ACTIONS if ins[0] == "apply" else ofp.OFPIT_WRITE_ACTIONS
            out.append(struct.pack("!HH4x", kind, 8 + len(body)) + body)
        elif ins[0] == "clear":
            out.append(struct.pack("!HH4x", ofp.OFPIT_CLEAR_ACTIONS, 8))
        elif ins[0] == "goto":
            out.append(struct.pack("!HHB3x", ofp.OFPIT_GOTO_TABLE, 8, ins[1]))
        elif ins[0] == "write_metadata":
            out.append(struct.pack("!HH4xQQ", ofp.OFPIT_WRITE_METADATA, 24, ins[1], ins[2]))
        else:
            return None
    return b"".join(out)


def flow_mod(rule: FlowRule, command: int) -> bytes | None:
    """``rule``'s flow-mod (xid 0) as os-ken would write it, or None when it uses a
    field, instruction or action not written here, or a value in a form os-ken reads
    and this does not (os-ken then makes it, or says what is wrong with it)."""
    try:
        return _flow_mod(rule, command)
    except (ValueError, TypeError, OSError, OverflowError, struct.error):
        return None


def _flow_mod(rule: FlowRule, command: int) -> bytes | None:
    match = _match(rule.match)
    if match is None:
        return None
    instructions = b"" if command == ofp.OFPFC_DELETE_STRICT else _instructions(rule)
    if instructions is None:
        return None
    length = _FLOW_MOD.size + len(match) + len(instructions)
    head = _FLOW_MOD.pack(ofp.OFP_VERSION, ofp.OFPT_FLOW_MOD, length, 0, rule.cookie, 0,
                          rule.table, command, 0, 0, rule.priority, ofp.OFP_NO_BUFFER,
                          ofp.OFPP_ANY, ofp.OFPG_ANY, 0)
    return head + match + instructions
