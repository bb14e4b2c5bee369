"""The TE topology and loads derived from the current fabric view: the paths in service
(leaves and spines connected, neither drained, links not drained), what each resource
can carry (the port speeds), and what each carries now (the port rates last read).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from controller.core.fabric.ecmp import uplinks
from controller.core.fabric.fabric_view import FabricView
from controller.core.model.roles import LEAF
from controller.core.te.topology import Resource, TeTopology, down, up


def derive_topology(view: FabricView, speed: Callable[[int, int], float],
                    link_speed_bps: float = 0.0) -> TeTopology:
    """The paths in service for TE as ``view`` has them; ``speed(dpid, port)`` gives a
    port's rate (bit/s), ``link_speed_bps`` overrides the host rate (0: the slowest
    edge port's)."""
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
    edge = [speed(d, p) for d in leaves for p in view.edge_ports.get(d, ())]
    host_rate = link_speed_bps or (min(edge) if edge else 0.0)
    return TeTopology(ups, reach, capacity, host_rate)


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
