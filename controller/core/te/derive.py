"""The TE topology and loads derived from the current fabric view: the paths in service
(leaves, spines and super-spines connected, none drained, links not drained), what each
resource can carry (the port speeds), and what each carries now (the port rates last
read).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from controller.core.fabric.ecmp import uplinks
from controller.core.fabric.fabric_view import FabricView
from controller.core.model.roles import LEAF, SPINE, SUPER_SPINE
from controller.core.te.topology import Resource, TeTopology, down, up


def derive_topology(view: FabricView, speed: Callable[[int, int], float],
                    link_speed_bps: float = 0.0, three_tier: bool = True) -> TeTopology:
    """The paths in service for TE as ``view`` has them; ``speed(dpid, port)`` gives a
    port's rate (bit/s), ``link_speed_bps`` overrides the host rate (0: the slowest
    edge port's). Without ``three_tier``, no path goes up to a super-spine."""
    roles = view.roles
    leaves = [d for d, r in roles.items() if r == LEAF and d in view.connected]
    spines = [d for d, r in roles.items() if r != LEAF and d in view.connected
              and d not in view.drained_switches]
    drained = view.drained_ends
    ups: dict[int, tuple[tuple[int, int], ...]] = {}
    capacity: dict[Resource, float] = {}
    for leaf in leaves:
        usable = tuple((p, s) for p, s in uplinks(view, leaf)
                       if s in spines and (leaf, p) not in drained)
        ups[leaf] = usable
        for p, _ in usable:
            capacity[up(leaf, p)] = speed(leaf, p)
    reach: dict[int, frozenset[int]] = {}
    for spine in spines:
        to = set()
        for leaf in leaves:
            ports = [p for p in view.ports_towards(spine, leaf) if (spine, p) not in drained]
            if ports:
                to.add(leaf)
                capacity[down(spine, leaf)] = sum(speed(spine, p) for p in ports)
        reach[spine] = frozenset(to)
    spine_ups, descent = _third_tier(view, spines, reach, speed, capacity) if three_tier \
        else ({}, {})
    edge = [speed(d, p) for d in leaves for p in view.edge_ports.get(d, ())]
    host_rate = link_speed_bps or (min(edge) if edge else 0.0)
    return TeTopology(ups, reach, capacity, host_rate, spine_ups, descent)


def _third_tier(view: FabricView, in_service: list[int], reach: dict[int, frozenset[int]],
                speed: Callable[[int, int], float], capacity: dict[Resource, float]
                ) -> tuple[dict[int, tuple[tuple[int, int], ...]],
                           dict[int, dict[int, tuple[int, ...]]]]:
    """With three tiers: each spine's uplinks in service to super-spines in service, and
    each super-spine's spines (in service, by links in service) by the leaves they
    deliver to; the capacities of those links are added to ``capacity``."""
    roles, drained = view.roles, view.drained_ends
    supers = {d for d in in_service if roles.get(d) == SUPER_SPINE}
    if not supers:
        return {}, {}
    spines = [d for d in in_service if roles.get(d) == SPINE]
    spine_ups: dict[int, tuple[tuple[int, int], ...]] = {}
    for spine in spines:
        usable = tuple((p, x) for p, x in uplinks(view, spine)
                       if x in supers and (spine, p) not in drained)
        if usable:
            spine_ups[spine] = usable
            for p, _ in usable:
                capacity[up(spine, p)] = speed(spine, p)
    descent: dict[int, dict[int, tuple[int, ...]]] = {}
    for ss in sorted(supers):
        by_leaf: dict[int, list[int]] = {}
        for spine in spines:
            ports = [p for p in view.ports_towards(ss, spine) if (ss, p) not in drained]
            if not ports:
                continue
            capacity[down(ss, spine)] = sum(speed(ss, p) for p in ports)
            for leaf in reach.get(spine, ()):
                by_leaf.setdefault(leaf, []).append(spine)
        descent[ss] = {leaf: tuple(s) for leaf, s in by_leaf.items()}
    return spine_ups, descent


def measured_loads(topo: TeTopology, view: FabricView,
                   port_bps: Mapping[tuple[int, int], float]) -> dict[Resource, float]:
    """Measured load of every TE resource, from the port rates the app last read."""
    out: dict[Resource, float] = {}
    for r in topo.capacity:
        kind, a, b = r
        if kind == "up":
            out[r] = port_bps.get((a, b), 0.0)
        else:
            out[r] = sum(port_bps.get((a, p), 0.0) for p in view.ports_towards(a, b))
    return out
