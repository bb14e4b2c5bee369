"""Spine/leaf role inference from the wiring, and wiring warnings.

A clean two-tier Clos is a bipartite graph of switches: spines on one side, leaves on
the other, every leaf cabled to every spine, hosts on leaves only. The side whose
switches have edge ports (ports with no switch behind them) is the leaf side.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import networkx as nx

from controller.core.model.fabric_model import Cable

SPINE = "spine"
LEAF = "leaf"
ROLES = (SPINE, LEAF)


@dataclass(frozen=True)
class RoleResult:
    roles: dict[int, str]
    warnings: tuple[str, ...]


def infer_roles(
    switches: list[int],
    cables: list[Cable],
    edge_port_count: Mapping[int, int],
    overrides: Mapping[int, str] | None = None,
    previous: Mapping[int, str] | None = None,
) -> RoleResult:
    """Assign a role to each switch and list what makes the wiring not a clean Clos.

    A switch with no usable link keeps its ``previous`` role (a spine whose links are
    all down is still a spine), or is taken for a leaf if it never had one.
    """
    overrides = dict(overrides or {})
    previous = dict(previous or {})
    graph = nx.Graph()
    graph.add_nodes_from(switches)
    for c in cables:
        graph.add_edge(c.a.dpid, c.b.dpid)

    roles: dict[int, str] = {}
    for comp in nx.connected_components(graph):
        roles.update(
            _component_roles(graph.subgraph(comp), edge_port_count, overrides, previous)
        )
    for dpid, role in overrides.items():
        if dpid in roles:
            roles[dpid] = role
    return RoleResult(roles, tuple(wiring_warnings(roles, cables)))


def _component_roles(
    comp: nx.Graph,
    edge_port_count: Mapping[int, int],
    overrides: Mapping[int, str],
    previous: Mapping[int, str],
) -> dict[int, str]:
    nodes = sorted(comp.nodes)
    if len(nodes) == 1:
        return {nodes[0]: overrides.get(nodes[0], previous.get(nodes[0], LEAF))}
    if nx.is_bipartite(comp):
        side_a = set(nx.bipartite.sets(comp)[0])
        side_b = set(nodes) - side_a
        spine_side = _pick_spine_side(side_a, side_b, edge_port_count, overrides)
        return {d: SPINE if d in spine_side else LEAF for d in nodes}
    # Not bipartite (e.g. a leaf-to-leaf cable): judge each switch on its own.
    return {d: LEAF if edge_port_count.get(d, 0) > 0 else SPINE for d in nodes}


def _pick_spine_side(
    side_a: set[int], side_b: set[int], edge_port_count: Mapping[int, int], overrides
) -> set[int]:
    for side, other in ((side_a, side_b), (side_b, side_a)):
        if any(overrides.get(d) == SPINE for d in side) or any(
            overrides.get(d) == LEAF for d in other
        ):
            return side

    def score(side: set[int]) -> tuple[int, int, int]:
        with_edges = sum(1 for d in side if edge_port_count.get(d, 0) > 0)
        # fewer switches with edge ports, then fewer switches, then the lowest dpid
        return (with_edges, len(side), min(side))

    return side_a if score(side_a) <= score(side_b) else side_b


def wiring_warnings(roles: Mapping[int, str], cables: list[Cable]) -> list[str]:
    warnings: list[str] = []
    neighbours: dict[int, set[int]] = {d: set() for d in roles}
    for c in cables:
        ra, rb = roles.get(c.a.dpid), roles.get(c.b.dpid)
        neighbours.setdefault(c.a.dpid, set()).add(c.b.dpid)
        neighbours.setdefault(c.b.dpid, set()).add(c.a.dpid)
        if ra == rb:
            warnings.append(
                f"{ra}-to-{rb} link {c.a.dpid}:{c.a.port} <-> {c.b.dpid}:{c.b.port}"
                " (not a two-tier Clos)"
            )
    spines = sorted(d for d, r in roles.items() if r == SPINE)
    leaves = sorted(d for d, r in roles.items() if r == LEAF)
    for leaf in leaves:
        up = neighbours[leaf] & set(spines)
        if not up:
            warnings.append(f"leaf {leaf} has no uplinks to any spine")
            continue
        missing = [s for s in spines if s not in up]
        if missing:
            warnings.append(
                f"leaf {leaf} has no link to spine(s) {', '.join(map(str, missing))}"
            )
    for spine in spines:
        if not neighbours[spine] & set(leaves):
            warnings.append(f"spine {spine} has no links to any leaf")
    return warnings
