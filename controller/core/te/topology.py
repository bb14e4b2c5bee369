"""The fabric as traffic engineering sees it: the paths between two leaves (by uplink and
spine, and with three tiers by the spine's uplink and super-spine), the resources a path
loads and what each can carry, numbered for the array-based placement search
(:mod:`controller.core.te.placement_search`).

Vocabulary:

* a *path* (:class:`SpinePath`) leaves the ingress leaf by one uplink port to one spine;
  the spine then delivers to the destination leaf (over its own ECMP group when it has
  several links). Between pods of a three-tier fabric, the spine sends it on by one of
  its uplinks to one super-spine, which delivers it to the destination pod's spine
  (the *egress* spine: 0 when the super-spine reaches the leaf through several);
* a *resource* is what a path loads: an uplink ``("up", switch, port)`` (of the leaf,
  and of the spine between pods) and a bundle of links down ``("down", upper, lower)``
  (spine to leaf; super-spine to the egress spine); each has a capacity (bit/s) and a
  measured load.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from itertools import repeat
from typing import NamedTuple

import numpy as np

Resource = tuple[str, int, int]  # ("up", switch, port) | ("down", upper, lower)


class SpinePath(NamedTuple):
    """Where a flow leaves its ingress leaf and, between pods, its ingress spine (a
    tuple: hashed and compared in C, as the placement search does a great deal)."""

    leaf: int  # ingress leaf
    port: int  # its uplink port
    spine: int
    spine_port: int = 0  # between pods: the spine's uplink port (0: the spine delivers)
    super_spine: int = 0
    egress: int = 0  # the destination pod's spine (0: the super-spine spreads over several)

    def __str__(self) -> str:
        if self.super_spine:
            return (f"{self.leaf}:{self.port} -> spine {self.spine}:{self.spine_port} -> "
                    f"super-spine {self.super_spine}")
        return f"{self.leaf}:{self.port} -> spine {self.spine}"

    @property
    def choice(self) -> int:
        """The switch that names the path to an operator and between instances: the
        super-spine between pods, else the spine."""
        return self.super_spine or self.spine

    @property
    def switches(self) -> tuple[int, ...]:
        """The switches that hold its pins: the ingress leaf, and between pods the
        ingress spine."""
        return (self.leaf, self.spine) if self.super_spine else (self.leaf,)


def up(leaf: int, port: int) -> Resource:
    return ("up", leaf, port)


def down(spine: int, leaf: int) -> Resource:
    return ("down", spine, leaf)


def resource_text(r: Resource) -> str:
    kind, a, b = r
    return f"{a}:{b} (uplink)" if kind == "up" else f"{a} -> {b} (down)"


@dataclass(frozen=True)
class TeTopology:
    """The paths in service and what each resource can carry."""

    uplinks: Mapping[int, tuple[tuple[int, int], ...]]  # leaf -> ((port, spine), ...)
    reach: Mapping[int, frozenset[int]]  # spine -> leaves it delivers to
    capacity: Mapping[Resource, float]  # bit/s
    host_rate: float = 0.0  # a host NIC's rate, bit/s (0: unknown)
    # three tiers: spine -> ((port, super-spine), ...), and super-spine -> {leaf: the
    # spines it reaches the leaf through}
    spine_uplinks: Mapping[int, tuple[tuple[int, int], ...]] = field(default_factory=dict)
    descent: Mapping[int, Mapping[int, tuple[int, ...]]] = field(default_factory=dict)

    def paths(self, src_leaf: int, dst_leaf: int) -> list[SpinePath]:
        key = (src_leaf, dst_leaf)
        found = self._paths.get(key)
        if found is None:
            found = self._paths[key] = [] if src_leaf == dst_leaf else \
                self._find(src_leaf, dst_leaf)
        return found

    def _find(self, src_leaf: int, dst_leaf: int) -> list[SpinePath]:
        """Up and down only: through a spine that delivers to ``dst_leaf``, else up to a
        super-spine that reaches it through other spines (never back through the
        ingress spine, whose pin would send it up again)."""
        out = []
        nowhere: frozenset[int] = frozenset()
        for port, spine in self.uplinks.get(src_leaf, ()):
            if dst_leaf in self.reach.get(spine, nowhere):
                out.append(SpinePath(src_leaf, port, spine))
                continue
            for sport, ss in self.spine_uplinks.get(spine, ()):
                down = self.descent.get(ss, {}).get(dst_leaf)
                if down and spine not in down:
                    out.append(SpinePath(src_leaf, port, spine, sport, ss,
                                         down[0] if len(down) == 1 else 0))
        return out

    def path_via(self, src_leaf: int, dst_leaf: int, via: int) -> SpinePath | None:
        """The first path in service between two leaves through switch ``via`` (a spine
        or a super-spine; None: none)."""
        return next((p for p in self.paths(src_leaf, dst_leaf)
                     if via in (p.spine, p.super_spine)), None)

    @cached_property
    def leaves_under(self) -> dict[int, tuple[int, ...]]:
        """With three tiers, each spine that sends flows up: the leaves with an uplink
        to it in service (their flows between pods pass it)."""
        out: dict[int, list[int]] = {}
        for leaf, ups in self.uplinks.items():
            for _, spine in ups:
                if spine in self.spine_uplinks:
                    out.setdefault(spine, []).append(leaf)
        return {s: tuple(dict.fromkeys(v)) for s, v in out.items()}

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
    def columns(self) -> int:
        """The most resources a path loads: 2 (uplink, spine down), 4 with three tiers
        (and the spine's uplink, the super-spine down)."""
        return 4 if self.spine_uplinks else 2

    @property
    def nothing(self) -> int:
        """The number of the resource a path with fewer than :attr:`columns` loads is
        padded with (no load, never full); ``len(caps)`` pads options a pair lacks."""
        return len(self.caps) + 1

    @cached_property
    def resource_ends(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """By resource number (and the two pads, -1 and False): the switch a resource
        leaves (an uplink's switch, a bundle's upper end), the switch below it (an
        uplink's: 0), and whether it is a spine's uplink (three tiers)."""
        n = len(self.order)
        upper = np.full(n + 2, -1, dtype=np.int64)
        lower = np.full(n + 2, -1, dtype=np.int64)
        spine_up = np.zeros(n + 2, dtype=bool)
        for k, (kind, a, b) in enumerate(self.order):
            upper[k] = a
            lower[k] = b if kind == "down" else 0
            spine_up[k] = kind == "up" and a in self.spine_uplinks
        return upper, lower, spine_up

    @cached_property
    def uplink_number(self) -> dict[SpinePath, int]:
        """The resource number of each path's uplink, for the paths in service of a
        two-tier fabric (where a path's uplink names it)."""
        idx = self.index
        return {SpinePath(leaf, port, spine): idx[up(leaf, port)]
                for leaf, ups in self.uplinks.items() for port, spine in ups
                if up(leaf, port) in idx}

    def load_list(self, loads: Mapping[Resource, float]) -> list[float]:
        """``loads`` by resource number (0 where not given)."""
        return list(map(loads.get, self.order, repeat(0.0)))

    def options(self, src_leaf: int, dst_leaf: int) -> list[tuple[SpinePath, tuple[int, ...]]]:
        """The paths between two leaves with their resources' numbers, :attr:`columns`
        of them (padded with :attr:`nothing`) (cached)."""
        key = (src_leaf, dst_leaf)
        got = self._options.get(key)
        if got is None:
            idx, cols, pad = self.index, self.columns, self.nothing
            tail = (pad,) * (cols - 2)
            got = self._options[key] = []
            for p in self.paths(src_leaf, dst_leaf):
                if p.super_spine:
                    rs = tuple(idx[r] for r in resources(p, dst_leaf))
                    nums = rs + (pad,) * (cols - len(rs))
                else:  # (most paths: written out, a large fabric numbers millions)
                    nums = (idx["up", src_leaf, p.port], idx["down", p.spine, dst_leaf], *tail)
                got.append((p, nums))
        return got

    def option_number(self, src_leaf: int, dst_leaf: int) -> dict[SpinePath, int]:
        """Each path between two leaves by its option's number (cached)."""
        key = (src_leaf, dst_leaf)
        got = self._option_numbers.get(key)
        if got is None:
            got = self._option_numbers[key] = {
                p: j for j, (p, _) in enumerate(self.options(src_leaf, dst_leaf))}
        return got

    @cached_property
    def _options(self) -> dict:
        return {}

    @cached_property
    def _option_numbers(self) -> dict:
        return {}

    @cached_property
    def width(self) -> int:
        """The most paths two leaves can have (the width of :meth:`option_table`)."""
        def fan(spine: int) -> int:
            return max(1, len(self.spine_uplinks.get(spine, ())))

        return max((sum(fan(s) for _, s in u) for u in self.uplinks.values()), default=0)

    def option_table(self, pairs: list[tuple[int, int]]) -> tuple[np.ndarray, np.ndarray]:
        """The options of each (src leaf, dst leaf) of ``pairs`` as one row of resource
        numbers: :attr:`columns` blocks of :attr:`width` (the options' uplinks, then
        their spine links down, ...), padded with ``len(caps)`` (a resource the
        placement search never picks), and how many each pair has. Rows are kept per
        topology; a table with new rows is built whole and published in one assignment,
        so threads may share it."""
        rows, table, counts = self._table[0]
        new = [p for p in dict.fromkeys(pairs) if p not in rows]
        if new:
            pad, width, cols = len(self.caps), self.width, self.columns
            add, add_n = [], []
            for p in new:
                opts = self.options(*p)
                filler = [pad] * (width - len(opts))
                row: list[int] = []
                for c in range(cols):
                    row += [o[1][c] for o in opts]
                    row += filler
                add.append(row)
                add_n.append(len(opts))
            rows = dict(rows)
            rows.update((p, k) for k, p in enumerate(new, start=len(rows)))
            added = np.array(add, dtype=np.int32).reshape((len(new), cols * width))
            table = np.concatenate([table, added])
            counts = np.concatenate([counts, np.array(add_n, dtype=np.int32)])
            self._table[0] = (rows, table, counts)
        ids = np.fromiter(map(rows.__getitem__, pairs), np.intp, len(pairs))
        return table[ids], counts[ids]

    @cached_property
    def _table(self) -> list:
        return [({}, np.zeros((0, self.columns * self.width), dtype=np.int32),
                 np.zeros(0, dtype=np.int32))]

    def cap(self, r: Resource) -> float:
        return self.capacity.get(r, 0.0) or 1.0

    @cached_property
    def link_rate(self) -> float:
        leaf_ups = {up(leaf, p) for leaf, u in self.uplinks.items() for p, _ in u}
        ups = [c for r, c in self.capacity.items() if r in leaf_ups and c > 0]
        return min(ups) if ups else 0.0


def resources(path: SpinePath, dst_leaf: int) -> tuple[Resource, ...]:
    """What a path loads: its uplink first, then down to the leaf or, between pods, the
    spine's uplink, then (with one egress spine) the links down to it and from it."""
    if not path.super_spine:
        return up(path.leaf, path.port), down(path.spine, dst_leaf)
    if not path.egress:
        return up(path.leaf, path.port), up(path.spine, path.spine_port)
    return (up(path.leaf, path.port), up(path.spine, path.spine_port),
            down(path.super_spine, path.egress), down(path.egress, dst_leaf))


def path_text(p: SpinePath | None, dst_leaf: int) -> str:
    """A flow's path as events name it (None: the ECMP groups)."""
    if p is None:
        return "ECMP"
    if p.super_spine:
        return (f"leaf {p.leaf} port {p.port} -> spine {p.spine} port {p.spine_port} -> "
                f"super-spine {p.super_spine} -> leaf {dst_leaf}")
    return f"leaf {p.leaf} port {p.port} -> spine {p.spine} -> leaf {dst_leaf}"
