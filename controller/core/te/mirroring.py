"""Cluster mode: traffic engineering across instances. Each instance writes the leaves it
masters; the TE leader decides for the whole fabric. The leader tracks the flows of
leaves others write as their switches hold them (:func:`mirror`) and hands its moves on
those leaves to their masters (:class:`ClusterShare`), which make them (:func:`move_to`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from controller.core.te.flows import Flow, FlowKey, FlowTable, Move
from controller.core.te.topology import SpinePath, TeTopology

log = logging.getLogger("aifabric.core")


def mirror(table: FlowTable, leaf: int, held: Sequence[tuple[FlowKey, SpinePath, int, bool]],
           now: float) -> None:
    """The TE entries of a leaf another instance masters, as read from the switch
    ((flow, path, destination leaf, priority class) each): its flows are tracked as
    the switch holds them, so that the TE leader decides on the whole fabric. A flow
    moved here within ``min_move_interval`` keeps the path it was moved to (the
    leaf's master has yet to write it); operator pins are the cluster's shared
    intent, not read from switches."""
    pending = table.settings.min_move_interval
    seen = set()
    for key, path, dst_leaf, priority in held:
        seen.add(key)
        f = table.flows.get(key)
        if f is None:
            if len(table.flows) >= table.settings.max_flows:
                table.count("flows_over_limit")
                continue
            table.flows[key] = Flow(key, leaf, dst_leaf,
                                    "priority" if priority else "best-effort", priority,
                                    path, first_seen=now, last_active=now, bytes_at=now)
        elif not f.operator and f.path != path and now - f.moved_at >= pending:
            f.path = path  # (moved by its master: a failure, or a new placement)
    gone = [k for k, f in table.flows.items()
            if f.src_leaf == leaf and k not in seen and not f.operator
            and now - f.moved_at >= pending and now - f.first_seen >= pending]
    for k in gone:
        del table.flows[k]


def move_to(table: FlowTable, key: FlowKey, spine: int, topo: TeTopology, reason: str,
            now: float) -> Move | None:
    """Move a tracked flow to ``spine`` (another instance's decision); None when the
    flow is not tracked here, is pinned by an operator, is there already, or the
    spine has no path in service for it."""
    f = table.flows.get(key)
    if f is None or f.operator or f.path is None or f.path.spine == spine:
        return None
    path = topo.path_via(f.src_leaf, f.dst_leaf, spine)
    return None if path is None else table.move(f, path, reason, now)


class ClusterShare:
    """This instance's part in the cluster: the leaves it writes (None: alone, every
    leaf), whether it is the TE leader (the one that rebalances), and the leader's moves
    on leaves others write, by leaf, for their masters to make: flow -> (spine, reason)."""

    def __init__(self) -> None:
        self.writes: frozenset[int] | None = None
        self.leader = True
        self.moves: dict[int, dict[FlowKey, tuple[int, str]]] = {}

    def set_role(self, writes: frozenset[int] | None, leader: bool) -> None:
        """Cluster mode: the leaves this instance masters, and whether it leads TE."""
        if leader != self.leader:
            log.info("TE leader: %s", "this instance (it rebalances the fabric)" if leader
                     else "another instance (this one places new flows only)")
        self.writes, self.leader = writes, leader
        if not leader:
            self.moves.clear()

    def share(self, moves: list[Move]) -> None:
        """The leader's moves on leaves another instance writes, for it to make."""
        if self.writes is None:
            return
        for m in moves:
            if m.new.leaf not in self.writes:
                self.moves.setdefault(m.new.leaf, {})[m.key] = (m.new.spine, m.reason)

    def take(self) -> dict[int, dict[FlowKey, tuple[int, str]]]:
        """The leader's moves to share since the last call, by leaf."""
        out, self.moves = self.moves, {}
        return out
