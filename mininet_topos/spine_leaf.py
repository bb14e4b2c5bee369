"""A parametric Clos topology for Mininet: two tiers (spine-leaf), or three (pods of
leaves and spines under spine planes of super-spines).

Naming: spines ``s1..sN`` (dpid 1000+i), leaves ``l1..lM`` (dpid 2000+j), super-spines
``x1..xK`` (dpid 3000+k), hosts ``h1..hH`` numbered leaf by leaf, with IP ``10.0.0.H/8``
and MAC ``00:00:00:00:00:H``. Two tiers: every leaf is cabled once to every spine.
Three tiers (``supers`` > 0): pod p has ``leaves`` leaves and ``spines`` spines (numbered
on across pods), every leaf cabled to its pod's spines; spine i of every pod is cabled
to the ``supers`` super-spines of spine plane i. ``planes`` > 1: as many disconnected
fabrics of that shape, numbered on (hosts too). Host links run at ``bw`` Mbit/s;
uplinks at ``uplink_bw``, by default chosen so that a leaf's uplinks carry exactly its
hosts' traffic divided by the oversubscription ratio, and a spine's uplinks to the
super-spines what its leaves send it.
"""

from __future__ import annotations

from dataclasses import dataclass

from mininet.topo import Topo

SPINE_DPID_BASE = 1000
LEAF_DPID_BASE = 2000
SUPER_DPID_BASE = 3000


@dataclass(frozen=True)
class FabricSpec:
    spines: int = 2
    leaves: int = 4
    hosts_per_leaf: int = 2
    bw: float | None = 10.0  # host link rate in Mbit/s (None: unshaped)
    oversubscription: float = 1.0  # host bandwidth : uplink bandwidth, per leaf
    uplink_bw: float | None = None  # explicit uplink rate, overrides the ratio
    # Deliberate miswiring, to try cabling validation: ("l1", "l2") pairs of node names.
    extra_links: tuple[tuple[str, str], ...] = ()  # cabled after everything else
    omit_links: tuple[tuple[str, str], ...] = ()  # leaf-spine cables left out
    # three tiers: ``pods`` pods of ``leaves`` leaves and ``spines`` spines each, under
    # ``spines`` spine planes of ``supers`` super-spines (0: two tiers)
    pods: int = 1
    supers: int = 0
    # several disconnected fabrics of this shape (a server NIC per plane), numbered on
    planes: int = 1

    def __post_init__(self) -> None:
        if self.spines < 1 or self.leaves < 1 or self.hosts_per_leaf < 0:
            raise ValueError("need at least one spine and one leaf, and hosts_per_leaf >= 0")
        if self.pods < 1 or self.supers < 0 or self.planes < 1:
            raise ValueError("need at least one pod and one plane, and supers >= 0")
        if self.pods > 1 and not self.supers:
            raise ValueError("pods need super-spines above them (supers >= 1)")
        if self.supers and self.pods < 2:
            raise ValueError("super-spines join pods: three tiers need at least 2 pods")
        if (self.n_spines > 999 or self.n_leaves > 999
                or self.planes * self.supers * self.spines > 999):
            raise ValueError("at most 999 spines, 999 leaves and 999 super-spines")
        if self.oversubscription <= 0:
            raise ValueError("oversubscription must be positive")
        if self.bw is not None and self.bw <= 0:
            raise ValueError("bw must be positive")

    @property
    def uplink_rate(self) -> float | None:
        if self.uplink_bw is not None:
            return self.uplink_bw
        if self.bw is None:
            return None
        hosts = max(self.hosts_per_leaf, 1)
        return self.bw * hosts / (self.spines * self.oversubscription)

    @property
    def super_uplink_rate(self) -> float | None:
        """A spine's uplinks to the super-spines: what its leaves send it, divided by the
        oversubscription ratio."""
        uplink = self.uplink_rate
        if uplink is None or not self.supers:
            return None
        return uplink * self.leaves / (self.supers * self.oversubscription)

    @property
    def n_spines(self) -> int:
        return self.planes * self.pods * self.spines

    @property
    def n_leaves(self) -> int:
        return self.planes * self.pods * self.leaves

    @property
    def n_hosts(self) -> int:
        return self.n_leaves * self.hosts_per_leaf

    @property
    def n_directed_links(self) -> int:
        cables = self.planes * self.pods * self.spines * (self.leaves + self.supers)
        return 2 * (cables - len(self.omit_links) + len(self.extra_links))

    def spine_dpids(self) -> list[int]:
        return [SPINE_DPID_BASE + i for i in range(1, self.n_spines + 1)]

    def leaf_dpids(self) -> list[int]:
        return [LEAF_DPID_BASE + j for j in range(1, self.n_leaves + 1)]

    def super_dpids(self) -> list[int]:
        n = self.planes * self.spines * self.supers
        return [SUPER_DPID_BASE + k for k in range(1, n + 1)]

    def plane_of_leaf(self, leaf_number: int) -> int:
        """The plane (from 1) of leaf ``l<leaf_number>``."""
        return (leaf_number - 1) // (self.pods * self.leaves) + 1

    def dpids(self) -> list[int]:
        return self.spine_dpids() + self.leaf_dpids() + self.super_dpids()

    def shape(self) -> str:
        """E.g. "2x4" (spines x leaves), "2 pods of 2x2 under 2 spine planes of 2
        super-spines", "2 planes of 2x2"."""
        one = f"{self.spines}x{self.leaves}" if not self.supers else (
            f"{self.pods} pods of {self.spines}x{self.leaves} under {self.spines} "
            f"spine planes of {self.supers} super-spines")
        return one if self.planes == 1 else f"{self.planes} planes of {one}"

    def host_leaf(self, host_index: int) -> int:
        """Leaf number (1-based) of host ``h<host_index>``."""
        return (host_index - 1) // self.hosts_per_leaf + 1


def dpid_str(dpid: int) -> str:
    return f"{dpid:016x}"


class SpineLeafTopo(Topo):
    """Mininet Topo built from a :class:`FabricSpec` (two or three tiers)."""

    def build(self, spec: FabricSpec) -> None:  # noqa: D401 - Mininet API
        self.host_no = 0
        for q in range(spec.planes):
            self._plane(spec, q)
        uplink = spec.uplink_rate
        for a, b in spec.extra_links:
            opts = {"bw": uplink} if uplink else {}
            self.addLink(a, b, **opts)

    def _plane(self, spec: FabricSpec, q: int) -> None:
        """Plane ``q`` (from 0): its pods, and their super-spines."""
        uplink = spec.uplink_rate
        for p in range(q * spec.pods, (q + 1) * spec.pods):
            spines = [
                self.addSwitch(f"s{p * spec.spines + i}",
                               dpid=dpid_str(SPINE_DPID_BASE + p * spec.spines + i))
                for i in range(1, spec.spines + 1)
            ]
            for j in range(p * spec.leaves + 1, (p + 1) * spec.leaves + 1):
                leaf = self.addSwitch(f"l{j}", dpid=dpid_str(LEAF_DPID_BASE + j))
                for spine in spines:
                    if (leaf, spine) in spec.omit_links or (spine, leaf) in spec.omit_links:
                        continue
                    opts = {"bw": uplink} if uplink else {}
                    self.addLink(leaf, spine, **opts)
                for _ in range(spec.hosts_per_leaf):
                    self.host_no += 1
                    n = self.host_no
                    host = self.addHost(f"h{n}", ip=f"10.0.{n // 256}.{n % 256}/8",
                                        mac=f"00:00:00:00:{n // 256:02x}:{n % 256:02x}")
                    opts = {"bw": spec.bw} if spec.bw else {}
                    self.addLink(host, leaf, **opts)
        if spec.supers:
            self._supers(spec, q)

    def _supers(self, spec: FabricSpec, q: int) -> None:
        """Spine i of every pod of plane ``q`` to the super-spines of spine plane i (a
        spine's ports after its leaves; a super-spine's port p faces the plane's pod p)."""
        rate = spec.super_uplink_rate
        opts = {"bw": rate} if rate else {}
        first = q * spec.spines * spec.supers
        supers = {
            (i, k): self.addSwitch(
                f"x{first + (i - 1) * spec.supers + k}",
                dpid=dpid_str(SUPER_DPID_BASE + first + (i - 1) * spec.supers + k))
            for i in range(1, spec.spines + 1) for k in range(1, spec.supers + 1)
        }
        for p in range(q * spec.pods, (q + 1) * spec.pods):
            for i in range(1, spec.spines + 1):
                spine = f"s{p * spec.spines + i}"
                for k in range(1, spec.supers + 1):
                    if (spine, supers[(i, k)]) in spec.omit_links or (
                            supers[(i, k)], spine) in spec.omit_links:
                        continue
                    self.addLink(spine, supers[(i, k)], **opts)
