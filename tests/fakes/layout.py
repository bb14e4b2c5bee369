"""The wiring of a fake fabric: switches with their ports, and the cables between them.

:func:`spine_leaf` numbers a two-tier Clos as ``mininet_topos/spine_leaf.py`` (FabricSpec
and SpineLeafTopo) does on Mininet: spines ``s1..sN`` with dpid 1000+i, leaves
``l1..lM`` with dpid 2000+j; leaf j's port i goes to spine i, spine i's port j to leaf
j (Mininet numbers a switch's ports in the order its links are added: every leaf is
cabled to the spines in turn, then gets its hosts), and leaf j's hosts are on ports
N+1..N+K. :func:`three_tier` numbers pods under super-spines as ``FabricSpec(...,
pods=P, supers=X)`` does. Names ("s1", "l1", "x1") are labels only: the fleet names
ports after the dpid.
"""

from __future__ import annotations

from dataclasses import dataclass, field

SPINE_DPID_BASE = 1000
LEAF_DPID_BASE = 2000
SUPER_DPID_BASE = 3000

End = tuple[int, int]  # (dpid, port)


@dataclass
class Layout:
    """Switches (dpid -> name and port numbers) and cables (pairs of ends)."""

    names: dict[int, str] = field(default_factory=dict)
    ports: dict[int, list[int]] = field(default_factory=dict)
    cables: list[tuple[End, End]] = field(default_factory=list)
    spines: list[int] = field(default_factory=list)
    leaves: list[int] = field(default_factory=list)
    supers: list[int] = field(default_factory=list)  # super-spines (three tiers)
    host_ports: dict[int, list[int]] = field(default_factory=dict)
    _cabled: set[End] = field(default_factory=set, repr=False)

    def add_switch(self, dpid: int, name: str, ports: list[int]) -> None:
        if dpid in self.names:
            raise ValueError(f"dpid {dpid} twice")
        self.names[dpid] = name
        self.ports[dpid] = sorted(ports)

    def cable(self, a: End, b: End) -> None:
        for end in (a, b):
            if end in self._cabled or a == b:
                raise ValueError(f"port {end} is cabled twice")
            if end[1] not in self.ports.get(end[0], ()):
                raise ValueError(f"no port {end}")
        self._cabled |= {a, b}
        self.cables.append((a, b))

    def directed_links(self) -> set[tuple[int, int, int, int]]:
        """(src_dpid, src_port, dst_dpid, dst_port) of both directions of every cable:
        what discovery should find."""
        out = set()
        for (da, pa), (db, pb) in self.cables:
            out |= {(da, pa, db, pb), (db, pb, da, pa)}
        return out

    @property
    def dpids(self) -> list[int]:
        return sorted(self.names)


def spine_leaf(spines: int, leaves: int, hosts_per_leaf: int = 0) -> Layout:
    """A two-tier Clos, numbered as Mininet numbers ``FabricSpec(spines, leaves,
    hosts_per_leaf)`` (host ports are left uncabled: frames out of them go to the
    fleet's host callback)."""
    if spines < 1 or leaves < 1 or hosts_per_leaf < 0:
        raise ValueError("need at least one spine and one leaf, and hosts_per_leaf >= 0")
    lay = Layout()
    for i in range(1, spines + 1):
        dpid = SPINE_DPID_BASE + i
        lay.add_switch(dpid, f"s{i}", list(range(1, leaves + 1)))
        lay.spines.append(dpid)
    for j in range(1, leaves + 1):
        dpid = LEAF_DPID_BASE + j
        lay.add_switch(dpid, f"l{j}", list(range(1, spines + hosts_per_leaf + 1)))
        lay.leaves.append(dpid)
        lay.host_ports[dpid] = list(range(spines + 1, spines + hosts_per_leaf + 1))
    for j in range(1, leaves + 1):
        for i in range(1, spines + 1):
            lay.cable((LEAF_DPID_BASE + j, i), (SPINE_DPID_BASE + i, j))
    return lay


def three_tier(pods: int, spines: int, leaves: int, supers: int,
               hosts_per_leaf: int = 0) -> Layout:
    """A three-tier Clos, numbered as Mininet numbers ``FabricSpec(spines, leaves,
    hosts_per_leaf, pods=pods, supers=supers)``: pod p's leaves cabled to its spines
    (a leaf's ports 1..spines, then its hosts; a spine's ports 1..leaves), spine i of
    every pod to the super-spines of spine plane i (the spine's ports leaves+1.., the
    super-spine's port p faces pod p)."""
    if pods < 2 or spines < 1 or leaves < 1 or supers < 1 or hosts_per_leaf < 0:
        raise ValueError("need 2 pods or more, a spine, a leaf and a super-spine")
    lay = Layout()
    for p in range(pods):
        for i in range(1, spines + 1):
            dpid = SPINE_DPID_BASE + p * spines + i
            lay.add_switch(dpid, f"s{p * spines + i}", list(range(1, leaves + supers + 1)))
            lay.spines.append(dpid)
        for j in range(p * leaves + 1, (p + 1) * leaves + 1):
            dpid = LEAF_DPID_BASE + j
            lay.add_switch(dpid, f"l{j}", list(range(1, spines + hosts_per_leaf + 1)))
            lay.leaves.append(dpid)
            lay.host_ports[dpid] = list(range(spines + 1, spines + hosts_per_leaf + 1))
            for i in range(1, spines + 1):
                lay.cable((dpid, i), (SPINE_DPID_BASE + p * spines + i, j - p * leaves))
    for i in range(1, spines + 1):
        for k in range(1, supers + 1):
            n = (i - 1) * supers + k
            lay.add_switch(SUPER_DPID_BASE + n, f"x{n}", list(range(1, pods + 1)))
            lay.supers.append(SUPER_DPID_BASE + n)
            for p in range(pods):
                lay.cable((SPINE_DPID_BASE + p * spines + i, leaves + k),
                          (SUPER_DPID_BASE + n, p + 1))
    return lay
