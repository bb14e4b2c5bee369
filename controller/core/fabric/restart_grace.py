"""The grace period after a controller restart: what the switches held when they
reconnected is kept until it can be judged.

A switch's ECMP groups and routes lead to leaves: until a leaf is back and settled (or
the grace period ends), the groups and routes towards it stay (by the leaf's route id:
a spine's group towards it, a leaf's route entry for it and the shared group that
uses), and so do the entries that use them. The
ports a switch's groups send out of face switches: until each is judged (a link found
over it, or the port going down), that switch's groups are kept as they are. The
period starts when the first switch reconnects and lasts ``absent_timeout`` seconds;
then whatever did not come back is judged without it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping

from controller.core import constants as C
from controller.core.model.fabric_model import Fabric, LinkEnd
from controller.core.southbound.openflow import FlowRule, GroupRule, SwitchMirror, routes_matched

log = logging.getLogger("aifabric.core")


class RestartGrace:
    def __init__(self, fabric: Fabric, absent_timeout: float,
                 group_ids: Callable[[], Mapping[int, int]],
                 is_settled: Callable[[int, float], bool]) -> None:
        self.fabric = fabric  # (its ``expected``: ports that faced a switch)
        self.absent_timeout = absent_timeout
        self._group_ids = group_ids  # leaf -> its ECMP group, in the current view
        self._is_settled = is_settled
        self._expected_groups: set[int] = set()  # ECMP groups the switches held at start
        self._until: float | None = None  # end of the grace period

    def switch_connected(self, now: float) -> None:
        """The first switch back starts the period."""
        if self._until is None:
            self._until = now + self.absent_timeout

    def recover(self, dpid: int, flows: list[FlowRule], groups: list[GroupRule]) -> None:
        """The leaves switch ``dpid`` had groups or routes towards when it connected, and
        the ports its groups send out of (they face switches: not taken for host ports
        until judged)."""
        self._expected_groups |= {g.group_id for g in groups
                                  if 0 < g.group_id < C.SHARED_GROUP_BASE}
        self._expected_groups |= _route_ids(flows)
        linked = self.fabric.link_ports(dpid)
        self.fabric.expected |= {
            LinkEnd(dpid, a[1]) for g in groups for b in g.buckets for a in b.actions
            if a[0] == "output" and a[1] not in linked
            and self.fabric.port_is_up(dpid, a[1])}

    def active(self, now: float) -> bool:
        return self._until is not None and now < self._until

    def waiting(self, dpid: int, now: float) -> bool:
        """True while a port of ``dpid`` that faced a switch before the restart is not
        judged yet (that switch is not back): its groups are then kept as they are."""
        return self.active(now) and any(e.dpid == dpid for e in self.fabric.expected)

    def kept_groups(self, dpid: int, held: SwitchMirror, now: float) -> frozenset[int]:
        """The groups and routes (ids) that a sync of switch ``dpid`` (holding ``held``)
        must leave as they are: those towards leaves not back yet, and all it holds
        while a switch it faces is not back (see :meth:`waiting`)."""
        frozen = self.frozen_groups(now)
        if not self.waiting(dpid, now):
            return frozen
        return frozen | frozenset(held.groups) | _route_ids(held.flows.values())

    def frozen_groups(self, now: float) -> frozenset[int]:
        """Groups towards leaves that have not come back (yet) since the restart."""
        if not self._expected_groups or not self.active(now):
            return frozenset()
        # a leaf's groups thaw once it is settled (its own entries read back, its hosts
        # recovered, its links found): until then nobody can judge what it reaches
        live = {g for d, g in self._group_ids().items() if self._is_settled(d, now)}
        return frozenset(g for g in self._expected_groups if g not in live)

    def end(self, now: float) -> bool:
        """After the grace period, what did not come back is judged without it: True
        when that changes the desired state (once)."""
        if self.active(now) or not (self._expected_groups or self.fabric.expected):
            return False
        gone = sorted(self._expected_groups - set(self._group_ids().values()))
        if gone:
            log.warning("%d ECMP group(s) towards leaves that did not come back within %g s "
                        "are removed: %s", len(gone), self.absent_timeout, gone)
        if self.fabric.expected:
            log.warning("ports facing switches that did not come back within %g s are "
                        "judged without them: %s", self.absent_timeout,
                        sorted((e.dpid, e.port) for e in self.fabric.expected))
        self._expected_groups.clear()
        self.fabric.expected.clear()
        return True


def _route_ids(flows: Iterable[FlowRule]) -> frozenset[int]:
    """The route ids of the leaf route entries among ``flows`` (the leaves they lead to)."""
    return frozenset(rid for r in flows if r.table == C.TABLE_ROUTE
                     and C.cookie_kind(r.cookie) == C.KIND_ROUTE for rid in routes_matched(r))
