"""Waiting for fabricd to discover a Mininet fabric, judged through its API."""

from __future__ import annotations

import time
from typing import Any

import grpc

from controller.cli.client import FabricClient, topology_dict
from mininet_topos.spine_leaf import FabricSpec


def discovered(topo: dict[str, Any], spec: FabricSpec, settled_at: float | None = None) -> bool:
    """True when every switch is connected with its role and every link direction is
    known; with ``settled_at`` (controller clock), also every switch connected before it."""
    roles = {s["dpid"]: s["role"] for s in topo["switches"] if s["connected"]}
    want = {d: "spine" for d in spec.spine_dpids()} | {d: "leaf" for d in spec.leaf_dpids()}
    if roles != want or len(topo["links"]) != spec.n_directed_links:
        return False
    return settled_at is None or all(s["connected_since"] <= settled_at for s in topo["switches"])


def wait_discovered(
    client: FabricClient, spec: FabricSpec, timeout: float = 30.0, settle: float = 1.0
) -> dict:
    """Poll GetTopology until the fabric is fully discovered and every switch has been
    connected for ``settle`` seconds (fabricd's default settle time: from then on its
    entries are complete and hosts are learned); raise TimeoutError if not."""
    deadline = time.monotonic() + timeout
    topo: dict[str, Any] = {}
    while time.monotonic() < deadline:
        try:
            msg = client.topology()
            topo = topology_dict(msg)
        except grpc.RpcError:
            topo = {}
        if topo and discovered(topo, spec, msg.generated_at - settle):
            return topo
        time.sleep(0.1)
    raise TimeoutError(
        f"fabric not discovered in {timeout} s: "
        f"{sum(s['connected'] for s in topo.get('switches', []))} switches connected, "
        f"{len(topo.get('links', []))}/{spec.n_directed_links} link directions"
    )


def discovery_seconds(topo: dict[str, Any]) -> float:
    """From the first switch connecting to the last link direction found (controller clock)."""
    first = min(s["connected_since"] for s in topo["switches"])
    last = max(lk["discovered_at"] for lk in topo["links"])
    return last - first
