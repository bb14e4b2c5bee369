"""Failure and drain: a flow whose path is no longer in service is re-placed at once (an
operator's pin keeps its switch, the super-spine between pods, else the spine, on
another uplink or spine to it if there is one)."""

from __future__ import annotations

from collections.abc import Collection, Mapping

from controller.core.te.flows import FlowTable, Move
from controller.core.te.topology import Resource, SpinePath, TeTopology, resources


def revalidate(table: FlowTable, topo: TeTopology, loads: Mapping[Resource, float],
           now: float, reason: str, leaves: Collection[int] | None = None) -> list[Move]:
    """Re-place at once every flow whose path is no longer in service (of the
    ``leaves`` given: the ones this instance writes in a cluster; None: all)."""
    moves: list[Move] = []
    planned = dict(loads)
    for flow in sorted(table.flows.values(), key=lambda f: (not f.priority, -f.rate_bps,
                                                           f.key)):
        if leaves is not None and flow.src_leaf not in leaves:
            continue  # (its master re-places it; the switch then says where)
        valid = topo.paths(flow.src_leaf, flow.dst_leaf)
        if flow.path in valid:
            continue
        if not valid:
            continue  # nothing to move to: the data plane falls back on its groups
        if flow.operator:  # (its switch kept: the super-spine, else the spine)
            old = flow.path
            same = [p for p in valid if old and p.choice == old.choice] or [
                p for p in valid if old and p.spine == old.spine]
            if same:
                moves.append(table.move(flow, same[0], f"{reason}: uplink changed", now))
            continue
        new = min(valid, key=lambda p: path_util(p, flow.dst_leaf, topo, planned,
                                                 flow.rate_bps))
        for r in resources(new, flow.dst_leaf):
            planned[r] = planned.get(r, 0.0) + flow.rate_bps
        moves.append(table.move(flow, new, reason, now))
    return moves


def path_util(p: SpinePath, dst_leaf: int, topo: TeTopology, loads: Mapping[Resource, float],
              extra: float) -> float:
    """The worse utilization of a path's two links with ``extra`` bit/s on them."""
    return max((loads.get(r, 0.0) + extra) / topo.cap(r) for r in resources(p, dst_leaf))
