"""The core's entries written in ``ovs-ofctl`` syntax (OpenFlow 1.3).

What the controller wants a switch to hold, in the form an operator can hand to Open
vSwitch's own tools: ``ovs-ofctl -O OpenFlow13 add-flows/add-groups/add-meters BRIDGE
FILE`` reads these lines, and ``ovs-ofctl diff-flows BRIDGE FILE`` compares them with
what the bridge holds. The end-to-end tests load them into a scratch bridge and compare
its dump with the real switch's, so the comparison is made by OVS's own parser.
"""

from __future__ import annotations

from typing import Any

from controller.core.southbound.openflow import (
    Action,
    Bucket,
    FlowRule,
    GroupRule,
    Instruction,
    MeterRule,
)

# The match fields the core uses, by their OpenFlow (os-ken) name -> ovs-ofctl's name.
_FIELDS = {name: name for name in ("in_port", "metadata", "eth_dst", "eth_src", "eth_type",
                                   "ip_dscp", "ip_proto", "tcp_src", "tcp_dst", "udp_src",
                                   "udp_dst")}
_FIELDS |= {"ipv4_src": "ip_src", "ipv4_dst": "ip_dst"}


def _value(field: str, value: Any) -> str:
    if isinstance(value, tuple):  # (value, mask)
        return f"{_value(field, value[0])}/{_value(field, value[1])}"
    return hex(value) if field in ("eth_type", "metadata") else str(value)


def match_text(match: tuple[tuple[str, Any], ...]) -> str:
    for name, _ in match:
        if name not in _FIELDS:
            raise ValueError(f"no ovs-ofctl spelling for match field {name!r}")
    return ",".join(f"{_FIELDS[k]}={_value(k, v)}" for k, v in match)


def action_text(action: Action) -> str:
    kind = action[0]
    if kind == "output":
        return f"output:{action[1]}"
    if kind == "controller":
        return f"controller(max_len={action[1]})"
    if kind == "meter_controller":
        return f"controller(max_len={action[1]},meter_id={action[2]})"
    if kind == "group":
        return f"group:{action[1]}"
    if kind == "set_field":
        return f"set_field:{_value(action[1], action[2])}->{action[1]}"
    if kind == "set_queue":
        return f"set_queue:{action[1]}"
    raise ValueError(f"no ovs-ofctl spelling for action {action!r}")


def _actions(actions: tuple[Action, ...]) -> str:
    return ",".join(action_text(a) for a in actions)


def instructions_text(instructions: tuple[Instruction, ...]) -> str:
    parts = []
    for ins in instructions:
        if ins[0] == "apply":
            parts += [action_text(a) for a in ins[1]]
        elif ins[0] == "clear":
            parts.append("clear_actions")
        elif ins[0] == "write":
            parts.append(f"write_actions({_actions(ins[1])})")
        elif ins[0] == "write_metadata":
            parts.append(f"write_metadata:{ins[1]:#x}/{ins[2]:#x}")
        elif ins[0] == "goto":
            parts.append(f"goto_table:{ins[1]}")
        else:
            raise ValueError(f"no ovs-ofctl spelling for instruction {ins!r}")
    return ",".join(parts) or "drop"


def flow_text(rule: FlowRule) -> str:
    """One ``add-flows`` line."""
    match = match_text(rule.match)
    return (f"table={rule.table},priority={rule.priority},cookie={rule.cookie:#x}"
            + (f",{match}" if match else "")
            + f",actions={instructions_text(rule.instructions)}")


def _bucket(bucket: Bucket, group_type: str) -> str:
    head = []
    if group_type == "select":
        head.append(f"weight:{bucket.weight}")
    if bucket.watch_port is not None:
        head.append(f"watch_port:{bucket.watch_port}")
    return "bucket=" + ",".join(head + [f"actions={_actions(bucket.actions)}"])


def group_text(group: GroupRule) -> str:
    """One ``add-groups`` line."""
    kind = "fast_failover" if group.group_type == "ff" else group.group_type
    return ",".join([f"group_id={group.group_id}", f"type={kind}",
                     *(_bucket(b, group.group_type) for b in group.buckets)])


def meter_text(meter: MeterRule) -> str:
    """One ``add-meters`` line (packets per second, one drop band)."""
    return (f"meter={meter.meter_id},pktps,burst,stats,"
            f"bands=type=drop,rate={meter.rate_pps},burst_size={meter.burst}")
