"""Waiting for fabricd to discover a Mininet fabric, judged through its API."""

from __future__ import annotations

import time
from typing import Any

import grpc

from controller.cli.client import FabricClient, topology_dict
from mininet_topos.spine_leaf import FabricSpec


def discovered(topo: dict[str, Any], spec: FabricSpec) -> bool:
    """True when every switch is connected with its role and every link direction is
    known."""
    roles = {s["dpid"]: s["role"] for s in topo["switches"] if s["connected"]}
    want = ({d: "spine" for d in spec.spine_dpids()} | {d: "leaf" for d in spec.leaf_dpids()}
            | {d: "super-spine" for d in spec.super_dpids()})
    return roles == want and len(topo["links"]) == spec.n_directed_links


def settled(client: FabricClient, dpids: list[int]) -> bool:
    """Every switch settled: fabricd had time to find its links, and what it should hold
    is complete (from then on hosts are learned and may speak)."""
    return all(client.switch_entries(d).complete for d in dpids)


def wait_discovered(client: FabricClient, spec: FabricSpec, timeout: float = 30.0) -> dict:
    """Poll the API until the fabric is fully discovered and every switch is settled;
    raise TimeoutError if not."""
    deadline = time.monotonic() + timeout
    topo: dict[str, Any] = {}
    dpids = spec.dpids()
    while time.monotonic() < deadline:
        try:
            topo = topology_dict(client.topology())
            if discovered(topo, spec) and settled(client, dpids):
                return topo
        except grpc.RpcError:
            topo = {}
        time.sleep(0.1)
    raise TimeoutError(
        f"fabric not discovered and settled in {timeout} s: "
        f"{sum(s['connected'] for s in topo.get('switches', []))} switches connected, "
        f"{len(topo.get('links', []))}/{spec.n_directed_links} link directions"
    )


def discovery_seconds(topo: dict[str, Any]) -> float:
    """From the first switch connecting to the last link direction found (controller clock)."""
    first = min(s["connected_since"] for s in topo["switches"])
    last = max(lk["discovered_at"] for lk in topo["links"])
    return last - first
