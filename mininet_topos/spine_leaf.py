"""A parametric spine-leaf (two-tier Clos) topology for Mininet.

Naming: spines ``s1..sN`` (dpid 1000+i), leaves ``l1..lM`` (dpid 2000+j), hosts
``h1..hK`` numbered leaf by leaf, with IP ``10.0.0.K/8`` and MAC ``00:00:00:00:00:K``.
Every leaf is cabled once to every spine. Host links run at ``bw`` Mbit/s; uplinks at
``uplink_bw``, by default chosen so that a leaf's uplinks carry exactly its hosts'
traffic divided by the oversubscription ratio.
"""

from __future__ import annotations

from dataclasses import dataclass

from mininet.topo import Topo

SPINE_DPID_BASE = 1000
LEAF_DPID_BASE = 2000


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

    def __post_init__(self) -> None:
        if self.spines < 1 or self.leaves < 1 or self.hosts_per_leaf < 0:
            raise ValueError("need at least one spine and one leaf, and hosts_per_leaf >= 0")
        if self.spines > 999 or self.leaves > 999:
            raise ValueError("at most 999 spines and 999 leaves")
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
    def n_hosts(self) -> int:
        return self.leaves * self.hosts_per_leaf

    @property
    def n_directed_links(self) -> int:
        return 2 * (self.spines * self.leaves - len(self.omit_links) + len(self.extra_links))

    def spine_dpids(self) -> list[int]:
        return [SPINE_DPID_BASE + i for i in range(1, self.spines + 1)]

    def leaf_dpids(self) -> list[int]:
        return [LEAF_DPID_BASE + j for j in range(1, self.leaves + 1)]

    def host_leaf(self, host_index: int) -> int:
        """Leaf number (1-based) of host ``h<host_index>``."""
        return (host_index - 1) // self.hosts_per_leaf + 1


def dpid_str(dpid: int) -> str:
    return f"{dpid:016x}"


class SpineLeafTopo(Topo):
    """Mininet Topo built from a :class:`FabricSpec`."""

    def build(self, spec: FabricSpec) -> None:  # noqa: D401 - Mininet API
        uplink = spec.uplink_rate
        spines = [
            self.addSwitch(f"s{i}", dpid=dpid_str(SPINE_DPID_BASE + i))
            for i in range(1, spec.spines + 1)
        ]
        host_no = 0
        for j in range(1, spec.leaves + 1):
            leaf = self.addSwitch(f"l{j}", dpid=dpid_str(LEAF_DPID_BASE + j))
            for spine in spines:
                if (leaf, spine) in spec.omit_links or (spine, leaf) in spec.omit_links:
                    continue
                opts = {"bw": uplink} if uplink else {}
                self.addLink(leaf, spine, **opts)
            for _ in range(spec.hosts_per_leaf):
                host_no += 1
                host = self.addHost(
                    f"h{host_no}",
                    ip=f"10.0.{host_no // 256}.{host_no % 256}/8",
                    mac=f"00:00:00:00:{host_no // 256:02x}:{host_no % 256:02x}",
                )
                opts = {"bw": spec.bw} if spec.bw else {}
                self.addLink(host, leaf, **opts)
        for a, b in spec.extra_links:
            opts = {"bw": uplink} if uplink else {}
            self.addLink(a, b, **opts)
