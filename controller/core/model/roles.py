"""Roles inferred from the wiring (leaf, spine, super-spine), where each switch sits
(plane, pod, spine plane), and wiring warnings.

A Clos is a bipartite graph of switches in tiers, every link joining two adjacent
tiers: leaves (tier 0, the switches with host ports), spines above them and, in a
three-tier Clos, super-spines above the spines. The leaves and spines wired together
form a *pod*; a super-spine joins spines of at least two pods. Spines and the
super-spines they reach form a *spine plane* (usually spine i of every pod and the
super-spines of plane i). Disconnected fabrics under one controller (one NIC per
plane on every server) are *planes*: each is judged on its own.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field

from networkx.utils import UnionFind

from controller.core.model.fabric_model import Cable

SPINE = "spine"
LEAF = "leaf"
SUPER_SPINE = "super-spine"
ROLES = (SPINE, LEAF, SUPER_SPINE)
TIER = {LEAF: 0, SPINE: 1, SUPER_SPINE: 2}


@dataclass(frozen=True)
class Place:
    """Where a switch sits: its plane (the connected fabric it is part of, numbered
    from 1 by lowest dpid); in a three-tier plane its pod (leaves and spines) and its
    spine plane (spines and super-spines); 0 where there is none."""

    plane: int
    pod: int = 0
    spine_plane: int = 0


@dataclass(frozen=True)
class RoleResult:
    roles: dict[int, str]
    warnings: tuple[str, ...]
    places: dict[int, Place] = field(default_factory=dict)


class Graph:
    """Switches and who is cabled to whom: what role inference asks of a graph,
    without networkx's per-edge overhead (a view of 1,000 switches is derived at every
    change of the fabric; networkx's graph, components and colouring were half of it)."""

    def __init__(self, adj: dict[int, set[int]]) -> None:
        self.adj = adj

    @classmethod
    def of(cls, nodes: Iterable[int], edges: Iterable[tuple[int, int]]) -> Graph:
        adj: dict[int, set[int]] = {d: set() for d in nodes}
        for a, b in edges:
            adj.setdefault(a, set()).add(b)
            adj.setdefault(b, set()).add(a)
        return cls(adj)

    @property
    def nodes(self) -> Iterable[int]:
        return self.adj.keys()

    def __iter__(self):
        return iter(self.adj)

    def __getitem__(self, node: int) -> set[int]:
        return self.adj[node]

    def subgraph(self, nodes: Iterable[int]) -> Graph:
        keep = set(nodes)
        return Graph({d: self.adj[d] & keep for d in keep})

    def components(self) -> list[set[int]]:
        """The connected components."""
        seen: set[int] = set()
        out = []
        for start in self.adj:
            if start in seen:
                continue
            comp, todo = {start}, [start]
            while todo:
                for n in self.adj[todo.pop()]:
                    if n not in comp:
                        comp.add(n)
                        todo.append(n)
            seen |= comp
            out.append(comp)
        return out

    def two_sides(self) -> tuple[set[int], set[int]] | None:
        """The two sides of a connected bipartite graph (the lowest node's first), or
        None when a link joins two nodes of one side."""
        if not self.adj:
            return set(), set()
        start = min(self.adj)
        side = {start: 0}
        todo = [start]
        while todo:
            d = todo.pop()
            for n in self.adj[d]:
                if n not in side:
                    side[n] = 1 - side[d]
                    todo.append(n)
                elif side[n] == side[d]:
                    return None
        return ({d for d, k in side.items() if k == 0}, {d for d, k in side.items() if k == 1})


def infer_roles(
    switches: list[int],
    cables: list[Cable],
    edge_port_count: Mapping[int, int],
    overrides: Mapping[int, str] | None = None,
    previous: Mapping[int, str] | None = None,
    hosted: Collection[int] = (),
) -> RoleResult:
    """Assign a role to each switch and list what makes the wiring not a clean Clos.

    A switch with no usable link keeps its ``previous`` role (a spine whose links are
    all down is still a spine), or is taken for a leaf if it never had one. ``hosted``:
    switches where hosts were learnt (leaves for sure; a port with no link may face
    anything: a router, a switch not under this controller).
    """
    overrides = dict(overrides or {})
    previous = dict(previous or {})
    graph = Graph.of(switches, ((c.a.dpid, c.b.dpid) for c in cables))

    roles: dict[int, str] = {}
    places: dict[int, Place] = {}
    comps = sorted((sorted(c) for c in graph.components()), key=lambda c: c[0])
    for plane, nodes in enumerate(comps, start=1):
        comp = graph.subgraph(nodes)
        found = _component_roles(comp, edge_port_count, overrides, previous, set(hosted))
        found.update({d: r for d, r in overrides.items() if d in found})
        roles.update(found)
        places.update(_places(comp, found, plane))
    return RoleResult(roles, tuple(wiring_warnings(roles, cables, places)), places)


def _component_roles(
    comp: Graph,
    edge_port_count: Mapping[int, int],
    overrides: Mapping[int, str],
    previous: Mapping[int, str],
    hosted: set[int],
) -> dict[int, str]:
    nodes = sorted(comp.nodes)
    if len(nodes) == 1:
        return {nodes[0]: overrides.get(nodes[0], previous.get(nodes[0], LEAF))}

    def above(d: int) -> bool:  # judged a spine or super-spine before (or after a restart)
        return previous.get(d) in (SPINE, SUPER_SPINE)

    # leaves for sure: hosts learnt there, or the operator's word; by their host ports
    # alone (a port with no link may face a router), unless they were above before
    strong = {d for d in nodes if overrides.get(d) == LEAF
              or (d in hosted and overrides.get(d) is None)}
    weak = {d for d in nodes if edge_port_count.get(d, 0) > 0 and overrides.get(d) is None
            and not above(d)} - strong
    sides = comp.two_sides()
    if sides is not None:
        side_a, side_b = sides
        spines = _pick_spine_side(side_a, side_b, edge_port_count, overrides)
        lower = set(nodes) - spines
        strong &= lower
        weak &= lower
        if not (strong or weak or any(above(d) for d in lower)):
            return {d: SPINE if d in spines else LEAF for d in nodes}  # (two tiers)
    else:
        # Not bipartite (a cable inside a tier): leaves by their host ports, spines
        # next to them; a switch wired to more of those than to leaves is above them
        # (a super-spine with a stray cable to a leaf).
        known = strong | weak
        if not known:
            return {d: SPINE for d in nodes}
        near = {d for d in nodes if d not in known and any(n in known for n in comp[d])}
        spines = {d for d in near if sum(n in near for n in comp[d])
                  <= sum(n in known for n in comp[d])}
        lower = set(nodes) - spines
    roles = {d: SPINE for d in spines}
    roles.update(_leaves_or_supers(comp, lower, strong, weak, spines, previous))
    return roles


def _leaves_or_supers(comp: Graph, lower: set[int], strong: set[int], weak: set[int],
                      spines: set[int], previous: Mapping[int, str]) -> dict[int, str]:
    """Leaves and super-spines among ``lower``. Pods are the spines that share a leaf
    (``strong`` ones where there are, else those with host ports); a switch that joins
    spines of two pods or more is a super-spine, even with a port of no link, unless
    hosts were learnt there; a switch judged above the leaves before stays so while
    nothing says otherwise; the rest are leaves (with no hosts yet, some)."""
    pod_of = _pods_of_spines(comp, strong or weak, spines)
    out = {}
    for d in lower:
        pods = {pod_of[n] for n in comp[d] if n in pod_of}
        if d in strong or (d in weak and not strong):
            out[d] = LEAF
        elif len(pods) >= 2 or (previous.get(d) in (SPINE, SUPER_SPINE) and d not in weak):
            out[d] = SUPER_SPINE
        else:
            out[d] = LEAF
    supers = [d for d, r in out.items() if r == SUPER_SPINE]
    if not supers:
        return out
    # A super-spine that lost its cables to all pods but one still reaches spines of
    # one spine plane only, where a leaf reaches its pod's spines of every plane.
    below = {s for s in spines if any(out.get(n) == SUPER_SPINE for n in comp[s])}
    plane_of = UnionFind()
    for x in supers:
        plane_of.union(x, *(n for n in comp[x] if n in spines))
    planes_of_pod: dict[int, set] = {}
    for s in below & set(pod_of):
        planes_of_pod.setdefault(pod_of[s], set()).add(plane_of[s])
    for d in sorted(lower - strong - weak):
        up = [n for n in comp[d] if n in spines]
        if (out[d] == LEAF and up and all(n in below and n in pod_of for n in up)
                and len({pod_of[n] for n in up}) == 1
                and len({plane_of[n] for n in up}) == 1
                and len(planes_of_pod.get(pod_of[up[0]], ())) >= 2):
            out[d] = SUPER_SPINE
    return out


def _pods_of_spines(comp: Graph, leaves: Iterable[int], spines: set[int]) -> dict[int, int]:
    """spine -> a pod key, for the spines with a leaf of ``leaves``: spines that share a
    leaf (directly or through others) share a pod. (A spine with none is in no pod yet:
    a new spine, or one whose links are still being found, says nothing.)"""
    pods = UnionFind()
    for leaf in leaves:
        up = [n for n in comp[leaf] if n in spines]
        if up:
            pods.union(*up)
    return {s: pods[s] for s in spines if s in pods.parents}


def _pick_spine_side(
    side_a: set[int], side_b: set[int], edge_port_count: Mapping[int, int], overrides
) -> set[int]:
    for side, other in ((side_a, side_b), (side_b, side_a)):
        # an operator's spine is on the spine side, unless the other side has
        # super-spines (spines sit between the two)
        if any(overrides.get(d) == SPINE for d in side) or any(
            overrides.get(d) in (LEAF, SUPER_SPINE) for d in other
        ):
            return side

    def score(side: set[int]) -> tuple[int, int, int]:
        with_edges = sum(1 for d in side if edge_port_count.get(d, 0) > 0)
        # fewer switches with edge ports, then fewer switches, then the lowest dpid
        return (with_edges, len(side), min(side))

    return side_a if score(side_a) <= score(side_b) else side_b


def _numbered(groups: Iterable[Iterable[int]]) -> dict[int, int]:
    """switch -> the number (from 1, by lowest dpid) of the group it is in."""
    out: dict[int, int] = {}
    for i, group in enumerate(sorted((sorted(g) for g in groups), key=lambda g: g[0]), 1):
        out.update((d, i) for d in group)
    return out


def _places(comp: Graph, roles: Mapping[int, str], plane: int) -> dict[int, Place]:
    supers = [d for d in comp if roles[d] == SUPER_SPINE]
    if not supers:
        return {d: Place(plane) for d in comp}
    below = comp.subgraph(d for d in comp if roles[d] in (LEAF, SPINE))
    pods = _numbered(below.components())
    above = Graph.of(supers, ((s, n) for s in supers for n in comp[s] if roles[n] == SPINE))
    spine_planes = _numbered(above.components())
    return {d: Place(plane, pods.get(d, 0), spine_planes.get(d, 0)) for d in comp}


def wiring_warnings(roles: Mapping[int, str], cables: list[Cable],
                    places: Mapping[int, Place] | None = None) -> list[str]:
    """What makes the wiring not a clean Clos, each plane judged on its own: links
    that skip or stay in a tier, leaves not wired to every spine (of their pod), spines
    not wired to every super-spine of their spine plane, and pods missing a plane."""
    places = places or {d: Place(1) for d in roles}
    warnings: list[str] = []
    neighbours: dict[int, set[int]] = {d: set() for d in roles}
    for c in cables:
        ra, rb = roles.get(c.a.dpid), roles.get(c.b.dpid)
        neighbours.setdefault(c.a.dpid, set()).add(c.b.dpid)
        neighbours.setdefault(c.b.dpid, set()).add(c.a.dpid)
        if ra in TIER and rb in TIER and abs(TIER[ra] - TIER[rb]) != 1:
            warnings.append(f"{ra}-to-{rb} link {c.a.dpid}:{c.a.port} <-> "
                            f"{c.b.dpid}:{c.b.port} (not a Clos)")

    by_plane: dict[int, list[int]] = {}
    for d in sorted(roles):
        by_plane.setdefault(places[d].plane if d in places else 1, []).append(d)
    for _, members in sorted(by_plane.items()):
        if not any(roles[d] == SUPER_SPINE for d in members):
            warnings += _tier_warnings(neighbours, [d for d in members if roles[d] == LEAF],
                                       [d for d in members if roles[d] == SPINE], "spine")
        else:
            warnings += _three_tier_warnings(roles, {d: places[d] for d in members},
                                             neighbours)
    return warnings


def _tier_warnings(neighbours: Mapping[int, set[int]], lower: list[int],
                   upper: list[int], up_name: str, scope: str = "") -> list[str]:
    """Switches of ``lower`` not wired to every switch of ``upper`` (``up_name``s), and
    switches of ``upper`` wired to none of ``lower``."""
    low_name = "leaf" if up_name == "spine" else "spine"
    warnings: list[str] = []
    ups = set(upper)
    for d in lower:
        up = neighbours.get(d, set()) & ups
        if not up:
            warnings.append(f"{low_name} {d} has no uplinks to any {up_name}{scope}")
            continue
        missing = [s for s in upper if s not in up]
        if missing:
            warnings.append(f"{low_name} {d} has no link to {up_name}(s) "
                            f"{', '.join(map(str, missing))}{scope}")
    lows = set(lower)
    for s in upper:
        if not neighbours.get(s, set()) & lows:
            warnings.append(f"{up_name} {s} has no links to any {low_name}{scope}")
    return warnings


def _three_tier_warnings(roles: Mapping[int, str], here: Mapping[int, Place],
                         neighbours: Mapping[int, set[int]]) -> list[str]:
    """:func:`wiring_warnings` of one three-tier plane (``here``: its switches)."""
    warnings: list[str] = []
    pods = sorted({p.pod for d, p in here.items() if roles[d] != SUPER_SPINE and p.pod})
    for pod in pods:
        members = [d for d, p in here.items() if p.pod == pod]
        warnings += _tier_warnings(
            neighbours, sorted(d for d in members if roles[d] == LEAF),
            sorted(d for d in members if roles[d] == SPINE), "spine", f" (pod {pod})")
    spine_planes = sorted({p.spine_plane for p in here.values() if p.spine_plane})
    for sp in spine_planes:
        members = sorted(d for d, p in here.items() if p.spine_plane == sp)
        spines = [d for d in members if roles[d] == SPINE]
        supers = [d for d in members if roles[d] == SUPER_SPINE]
        warnings += _tier_warnings(neighbours, spines, supers, "super-spine",
                                   f" (spine plane {sp})")
        have = {here[s].pod for s in spines}
        warnings += [f"pod {pod} has no spine in spine plane {sp}"
                     for pod in pods if pod not in have]
        for x in supers:
            seen: dict[int, int] = {}
            for s in sorted(neighbours.get(x, set())):
                if roles.get(s) != SPINE:
                    continue
                pod = here[s].pod
                if pod in seen:
                    warnings.append(f"super-spine {x} is wired to two spines of pod {pod} "
                                    f"({seen[pod]} and {s}): a spine in two spine planes?")
                seen.setdefault(pod, s)
    lone = sorted(d for d, p in here.items() if roles[d] == SPINE and not p.spine_plane)
    warnings += [f"spine {s} has no uplinks to any super-spine" for s in lone]
    return warnings
