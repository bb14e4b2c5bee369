"""The fabric as traffic engineering sees it: the paths between two leaves (by uplink and
spine), the resources a path loads and what each can carry, numbered for the array-based
placement search (:mod:`controller.core.te.placement_search`).

Vocabulary:

* a *path* (:class:`SpinePath`) leaves the ingress leaf by one uplink port to one spine;
  the spine then delivers to the destination leaf (over its own ECMP group when it has
  several links);
* a *resource* is what a path loads: the uplink ``("up", leaf, port)`` and the spine's
  bundle towards the destination leaf ``("down", spine, leaf)``; each has a capacity
  (bit/s) and a measured load.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from itertools import repeat
from typing import NamedTuple

import numpy as np

Resource = tuple[str, int, int]  # ("up", leaf, port) | ("down", spine, leaf)


class SpinePath(NamedTuple):
    """Where a flow leaves its ingress leaf (a tuple: hashed and compared in C, as the
    placement search does a great deal)."""

    leaf: int  # ingress leaf
    port: int  # its uplink port
    spine: int

    def __str__(self) -> str:
        return f"{self.leaf}:{self.port} -> spine {self.spine}"


def up(leaf: int, port: int) -> Resource:
    return ("up", leaf, port)


def down(spine: int, leaf: int) -> Resource:
    return ("down", spine, leaf)


def resource_text(r: Resource) -> str:
    kind, a, b = r
    return f"{a}:{b} (uplink)" if kind == "up" else f"spine {a} -> leaf {b}"


@dataclass(frozen=True)
class TeTopology:
    """The paths in service and what each resource can carry."""

    uplinks: Mapping[int, tuple[tuple[int, int], ...]]  # leaf -> ((port, spine), ...)
    reach: Mapping[int, frozenset[int]]  # spine -> leaves it delivers to
    capacity: Mapping[Resource, float]  # bit/s
    host_rate: float = 0.0  # a host NIC's rate, bit/s (0: unknown)

    def paths(self, src_leaf: int, dst_leaf: int) -> list[SpinePath]:
        key = (src_leaf, dst_leaf)
        found = self._paths.get(key)
        if found is None:
            found = self._paths[key] = [] if src_leaf == dst_leaf else [
                SpinePath(src_leaf, port, spine) for port, spine in self.uplinks.get(src_leaf, ())
                if dst_leaf in self.reach.get(spine, frozenset())]
        return found

    def path_via(self, src_leaf: int, dst_leaf: int, spine: int) -> SpinePath | None:
        """The path in service between two leaves through ``spine`` (None: none)."""
        return next((p for p in self.paths(src_leaf, dst_leaf) if p.spine == spine), None)

    @cached_property
    def _paths(self) -> dict[tuple[int, int], list[SpinePath]]:
        return {}

    @cached_property
    def order(self) -> tuple[Resource, ...]:
        """Every resource, in the order of their numbers (:attr:`index`)."""
        return tuple(sorted(self.capacity))

    @cached_property
    def index(self) -> dict[Resource, int]:
        """Every resource numbered, for the array-based placement search."""
        return {r: i for i, r in enumerate(self.order)}

    @cached_property
    def caps(self) -> list[float]:
        return [self.cap(r) for r in self.order]

    @cached_property
    def uplink_number(self) -> dict[SpinePath, int]:
        """The resource number of each path's uplink, for the paths in service."""
        idx = self.index
        return {SpinePath(leaf, port, spine): idx[up(leaf, port)]
                for leaf, ups in self.uplinks.items() for port, spine in ups
                if up(leaf, port) in idx}

    def load_list(self, loads: Mapping[Resource, float]) -> list[float]:
        """``loads`` by resource number (0 where not given)."""
        return list(map(loads.get, self.order, repeat(0.0)))

    def options(self, src_leaf: int, dst_leaf: int) -> list[tuple[SpinePath, int, int]]:
        """The paths between two leaves with their resources' numbers (cached)."""
        key = (src_leaf, dst_leaf)
        got = self._options.get(key)
        if got is None:
            idx = self.index
            got = self._options[key] = [(p, idx[up(p.leaf, p.port)],
                                         idx[down(p.spine, dst_leaf)])
                                        for p in self.paths(src_leaf, dst_leaf)]
        return got

    @cached_property
    def _options(self) -> dict:
        return {}

    @cached_property
    def width(self) -> int:
        """The most paths two leaves can have (the width of :meth:`option_table`)."""
        return max((len(u) for u in self.uplinks.values()), default=0)

    def option_table(self, pairs: list[tuple[int, int]]) -> tuple[np.ndarray, np.ndarray]:
        """The options of each (src leaf, dst leaf) of ``pairs`` as one row of resource
        numbers: :attr:`width` uplinks, then as many spine links, padded with
        ``len(caps)`` (a resource the placement search never picks), and how many each
        pair has. Rows are kept per topology; a table with new rows is built whole and
        published in one assignment, so threads may share it."""
        rows, table, counts = self._table[0]
        new = [p for p in dict.fromkeys(pairs) if p not in rows]
        if new:
            pad, width = len(self.caps), self.width
            add, add_n = [], []
            for p in new:
                opts = self.options(*p)
                filler = [pad] * (width - len(opts))
                add.append([o[1] for o in opts] + filler + [o[2] for o in opts] + filler)
                add_n.append(len(opts))
            rows = dict(rows)
            rows.update((p, k) for k, p in enumerate(new, start=len(rows)))
            added = np.array(add, dtype=np.int32).reshape((len(new), 2 * width))
            table = np.concatenate([table, added])
            counts = np.concatenate([counts, np.array(add_n, dtype=np.int32)])
            self._table[0] = (rows, table, counts)
        ids = np.fromiter(map(rows.__getitem__, pairs), np.intp, len(pairs))
        return table[ids], counts[ids]

    @cached_property
    def _table(self) -> list:
        return [({}, np.zeros((0, 2 * self.width), dtype=np.int32),
                 np.zeros(0, dtype=np.int32))]

    def cap(self, r: Resource) -> float:
        return self.capacity.get(r, 0.0) or 1.0

    @cached_property
    def link_rate(self) -> float:
        ups = [c for r, c in self.capacity.items() if r[0] == "up" and c > 0]
        return min(ups) if ups else 0.0


def resources(path: SpinePath, dst_leaf: int) -> tuple[Resource, Resource]:
    return up(path.leaf, path.port), down(path.spine, dst_leaf)


def path_text(p: SpinePath | None, dst_leaf: int) -> str:
    """A flow's path as events name it (None: the ECMP groups)."""
    if p is None:
        return "ECMP"
    return f"leaf {p.leaf} port {p.port} -> spine {p.spine} -> leaf {dst_leaf}"
