"""Restart adoption: the TE pins a leaf holds, read back after a controller restart, are
kept until the fabric is known and then adopted as tracked flows, so that flows stay
where they were (an operator's pin stays an operator's pin: its cookie says so)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from controller.core import constants as C
from controller.core.southbound.openflow import FlowRule
from controller.core.te.cookies import pin_cookie_fields
from controller.core.te.flows import Flow, FlowKey
from controller.core.te.topology import SpinePath

if TYPE_CHECKING:
    from controller.core.fabric.fabric_view import FabricView
    from controller.core.model.fabric_model import Fabric

log = logging.getLogger("aifabric.core")


def te_pins(rules: list[FlowRule]) -> list[FlowRule]:
    """The TE pins among a switch's entries."""
    return [r for r in rules if C.cookie_kind(r.cookie) == C.KIND_PIN
            and r.table == C.TABLE_TE]


class RecoveredPins:
    """The pins read back from each leaf, not adopted yet."""

    def __init__(self) -> None:
        self._by_leaf: dict[int, list[FlowRule]] = {}

    def __bool__(self) -> bool:
        return bool(self._by_leaf)

    def keep(self, leaf: int, pins: list[FlowRule]) -> None:
        self._by_leaf[leaf] = pins

    def take_flows(self, view: FabricView, fabric: Fabric, now: float) -> list[Flow]:
        """The flows the kept pins hold, where the fabric now knows their destination
        and uplink (the others are dropped); nothing is kept after."""
        flows = []
        for leaf, rules in self._by_leaf.items():
            for rule in rules:
                key = FlowKey.from_match(rule.match)
                groups = [a[1] for ins in rule.instructions if ins[0] == "apply"
                          for a in ins[1] if a[0] == "group"]
                dst = fabric.host_by_ip(key.dst_ip) if key else None
                if key is None or len(groups) != 1 or dst is None:
                    continue
                port = groups[0] - C.FF_GROUP_BASE
                spine = next((pd for lp, pd, _ in view.adjacency.get(leaf, ()) if lp == port),
                             None)
                if spine is None:
                    continue
                _, priority, operator = pin_cookie_fields(C.cookie_low(rule.cookie))
                flows.append(Flow(key, leaf, dst.dpid, "priority" if priority else
                                  "best-effort", priority, SpinePath(leaf, port, spine),
                                  operator=operator, first_seen=now, last_active=now,
                                  bytes_at=now))
                log.info("flow %s recovered on %d:%d", key, leaf, port)
        self._by_leaf.clear()
        return flows
