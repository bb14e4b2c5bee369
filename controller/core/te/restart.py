"""Restart adoption: the TE pins a leaf holds (and a spine, for flows between pods), read
back after a controller restart, are kept until the leaf is settled and then adopted as
tracked flows, so that flows stay where they were (an operator's pin stays an
operator's pin: its cookie says so)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from controller.core import constants as C
from controller.core.southbound.openflow import FlowRule
from controller.core.te.cookies import pin_cookie_fields
from controller.core.te.flows import Flow, FlowKey
from controller.core.te.topology import SpinePath

if TYPE_CHECKING:
    from controller.core.fabric.fabric_view import FabricView
    from controller.core.model.fabric_model import Fabric
    from controller.core.te.topology import TeTopology

log = logging.getLogger("aifabric.core")


def te_pins(rules: list[FlowRule]) -> list[FlowRule]:
    """The TE pins among a switch's entries (a leaf's, in its TE table)."""
    return [r for r in rules if C.cookie_kind(r.cookie) == C.KIND_PIN
            and r.table == C.TABLE_TE]


def spine_pins(rules: list[FlowRule]) -> dict[FlowKey, int]:
    """The TE pins among a spine's entries (flows between pods, in its forwarding
    table): each flow's uplink port."""
    out = {}
    for r in rules:
        if C.cookie_kind(r.cookie) == C.KIND_PIN and r.table == C.TABLE_FORWARD:
            key = FlowKey.from_match(r.match)
            if key is not None:
                out[key] = pin_cookie_fields(C.cookie_low(r.cookie))[0]
    return out


class RecoveredPins:
    """The pins read back from each leaf, not adopted yet, and from each spine (where
    flows between pods go up), until the leaves' pins are adopted."""

    def __init__(self) -> None:
        self._by_leaf: dict[int, list[FlowRule]] = {}
        self._up: dict[int, dict[FlowKey, int]] = {}  # spine -> flow -> uplink port

    def __bool__(self) -> bool:
        return bool(self._by_leaf)

    def keep(self, dpid: int, rules: list[FlowRule]) -> bool:
        """A switch's entries read back: its pins are kept (whether it had any)."""
        leaf, up = te_pins(rules), spine_pins(rules)
        if leaf:
            self._by_leaf[dpid] = leaf
        if up:
            self._up[dpid] = up
        return bool(leaf or up)

    def ready(self, settled: Callable[[int], bool]) -> bool:
        """Whether a leaf with pins kept is settled (its links known): they can be
        adopted."""
        return any(map(settled, self._by_leaf))

    def take_flows(self, view: FabricView, fabric: Fabric, topo: TeTopology,
                   settled: Callable[[int], bool], now: float) -> list[Flow]:
        """The flows the kept pins of settled leaves hold, where the fabric now knows
        their destination and uplink (the others are dropped). A flow between pods
        takes the super-spine its spine's pin names (without one, the path is out of
        service and the flow is re-placed)."""
        flows = []
        for leaf in [d for d in self._by_leaf if settled(d)]:
            for rule in self._by_leaf.pop(leaf):
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
                path = SpinePath(leaf, port, spine)
                sport = self._up.get(spine, {}).get(key)
                if sport is not None and dst.dpid not in topo.reach.get(spine, ()):
                    path = next((p for p in topo.paths(leaf, dst.dpid)
                                 if p[:4] == (leaf, port, spine, sport)), path)
                _, priority, operator = pin_cookie_fields(C.cookie_low(rule.cookie))
                flows.append(Flow(key, leaf, dst.dpid, "priority" if priority else
                                  "best-effort", priority, path, operator=operator,
                                  first_seen=now, last_active=now, bytes_at=now))
                log.info("flow %s recovered on %s", key, path)
        if not self._by_leaf:
            self._up.clear()
        return flows
