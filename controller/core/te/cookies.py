"""TE's entries on a switch: the pin that holds a flow on its path at the ingress leaf
(and between pods at the ingress spine), and the cookie that lets any instance reading
the switch back know what the pin is (its uplink, whether its flow is of a priority
class, whether an operator pinned it).
"""

from __future__ import annotations

from functools import lru_cache

from controller.core import constants as C
from controller.core.southbound.openflow import FlowRule
from controller.core.te.flows import Flow, FlowKey


def pin_cookie_low(port: int, priority: bool, operator: bool) -> int:
    """A TE entry's cookie (low bits): its uplink, whether its flow is of a priority
    class, whether an operator pinned it: what another instance reading the switch
    needs to know of it."""
    return port << 2 | int(priority) << 1 | int(operator)


def pin_cookie_fields(low: int) -> tuple[int, bool, bool]:
    """The inverse of :func:`pin_cookie_low`: (uplink port, priority, operator)."""
    return low >> 2, bool(low & 2), bool(low & 1)


def pin_rule(flow: Flow, group_id: int) -> FlowRule:
    """The ingress-leaf entry that holds a flow on its path: output through the uplink's
    fast-failover group (the uplink, or another if it goes down before we react)."""
    return _pin_rule(flow.key, group_id, flow.priority, flow.operator)


def spine_pin_rule(flow: Flow, group_id: int) -> FlowRule:
    """The ingress spine's entry that holds a flow between pods on its super-spine:
    ahead of the host entries of the forwarding table, output through the spine's
    uplink's fast-failover group."""
    return _spine_pin_rule(flow.key, group_id, flow.priority, flow.operator)


@lru_cache(maxsize=1 << 16)
def _spine_pin_rule(key: FlowKey, group_id: int, priority: bool, operator: bool) -> FlowRule:
    prio = C.PRIO_PIN_OPERATOR if operator else C.PRIO_PIN
    return FlowRule(
        C.TABLE_FORWARD, prio, key.match(), (("apply", (("group", group_id),)),),
        C.make_cookie(C.KIND_PIN, pin_cookie_low(group_id - C.FF_GROUP_BASE, priority,
                                                 operator)),
    )


@lru_cache(maxsize=1 << 16)
def _pin_rule(key: FlowKey, group_id: int, priority: bool, operator: bool) -> FlowRule:
    """(The same object for as long as the pin stays as it is: a leaf's pins are asked
    for at every sync of it, and an entry held as the very object is not compared.)"""
    prio = C.PRIO_PIN_OPERATOR if operator else C.PRIO_PIN
    return FlowRule(
        C.TABLE_TE, prio, key.match(),
        (("apply", (("group", group_id),)), ("clear",)),
        # the uplink is in the cookie: a move changes it, so the switch gets a fresh
        # entry (add) rather than a modified one
        C.make_cookie(C.KIND_PIN, pin_cookie_low(group_id - C.FF_GROUP_BASE, priority,
                                                 operator)),
    )
