"""Traffic engineering: which spine each tracked flow between two leaves crosses, and
when it moves. Pure: the caller passes the topology, the measured link loads and the
time; the answers are placements, moves and events. One module per concern:

* ``topology``: the paths between leaves and the resources they load (``TeTopology``,
  ``SpinePath``), numbered for the array-based search;
* ``settings``: ``TeSettings``;
* ``flows``: flow keys, flow records, the flow table (moves, events, smoothed counters);
* ``demand``: which flows get a demand, and Hedera's demand estimation;
* ``placement``: first-packet placement of new flows (first fit, priority use);
* ``placement_search``: the array-based search of a placement for many flows;
* ``rebalance``: the rebalancing pass, its plan, its search and the worker protocol;
* ``congestion``: moving large flows off links that stay hot;
* ``failover``: re-placing flows whose path is no longer in service;
* ``pins``: operator pins, and the pins a cluster shares;
* ``mirroring``: cluster mode (leaves another instance writes, the leader's moves);
* ``cookies``: TE's entries (pins) and their cookies;
* ``engine``: ``TrafficEngineer``, which ties the decisions together;
* ``reader``, ``derive``, ``admission``, ``restart``, ``fabric``: ``FabricTE``, TE as a
  component of the core (import it from ``controller.core.te.fabric``: it depends on
  the core's training jobs, which depend on this package);
* ``off``: ``TeOff``, what the core holds in its place with ``--no-te``.

This module re-exports what the rest of aifabric uses.
"""

from controller.core.te.cookies import pin_rule
from controller.core.te.demand import estimate_demands
from controller.core.te.engine import TrafficEngineer
from controller.core.te.flows import (
    PROTO_NAMES,
    PROTO_NUMBERS,
    TCP,
    UDP,
    Flow,
    FlowKey,
    FlowSnapshot,
    Move,
)
from controller.core.te.placement_search import place
from controller.core.te.rebalance import RebalancePass, RebalancePlan, search
from controller.core.te.settings import TeSettings
from controller.core.te.topology import (
    Resource,
    SpinePath,
    TeTopology,
    down,
    resource_text,
    resources,
    up,
)

__all__ = [
    "PROTO_NAMES",
    "PROTO_NUMBERS",
    "TCP",
    "UDP",
    "Flow",
    "FlowKey",
    "FlowSnapshot",
    "Move",
    "RebalancePass",
    "RebalancePlan",
    "Resource",
    "SpinePath",
    "TeSettings",
    "TeTopology",
    "TrafficEngineer",
    "down",
    "estimate_demands",
    "pin_rule",
    "place",
    "resource_text",
    "resources",
    "search",
    "up",
]
