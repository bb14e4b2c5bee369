"""What the core's tests read of a simulated fabric: a discovered one, and where a
switch's desired state sends towards each leaf."""

from __future__ import annotations

from controller.core import constants as C
from controller.core.southbound.openflow import uses_groups
from tests.ecmp import ecmp_towards
from tests.unit.fakefabric import FakeFabric

H1 = ("00:00:00:00:00:01", "10.0.0.1")  # a host on leaf 2001, port 3
H3 = ("00:00:00:00:00:03", "10.0.0.3")  # a host on leaf 2002, port 3


def discovered():
    fab = FakeFabric()
    fab.connect_all()
    return fab


def bucket_ports(desired) -> dict[int, list[int]]:
    """Where a switch's ECMP sends towards each leaf: route id -> the output ports of the
    buckets of its group (a leaf's by its route entries, a spine's select groups)."""
    routes = [(rid, min(uses_groups(rule), default=None))
              for (table, _, match), rule in desired.flows.items() if table == C.TABLE_ROUTE
              for k, rid in match if k == "metadata"]
    select = {gid: [b.actions[0][1] for b in g.buckets]
              for gid, g in desired.groups.items() if g.group_type == "select"}
    return ecmp_towards(routes, select)


def towards_other_leaves(fab, leaf: int, ports: list[int]) -> dict[int, list[int]]:
    """A leaf's groups as expected: one towards each other leaf, over ``ports``."""
    gids = fab.core.view().group_ids
    return {gids[other]: ports for other in fab.leaves if other != leaf}
