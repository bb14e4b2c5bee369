"""The flows' options as the placement search weighs them: arrays of resource numbers
(flow x option, one block of columns per hop), demands, capacities and loads, with two
resources after the topology's: a padding that is never chosen (an option a pair
lacks) and "nothing", never loaded (a hop a shorter path lacks)."""

from __future__ import annotations

from collections.abc import Mapping
from itertools import repeat
from typing import TYPE_CHECKING

import numpy as np

from controller.core.te.topology import Resource, SpinePath, TeTopology, resources

if TYPE_CHECKING:
    from controller.core.te.flows import Flow

TIE = 1e-6  # how much the lesser links of an option count against its worst
BIG = 1e30  # the load of the padding resource: never the least loaded
PADS = 2  # resources after the topology's: the padding (never chosen), nothing (no load)


class OptionArrays:
    """The flows' options as arrays: resource numbers (flow x option, one block of
    columns per hop: :attr:`TeTopology.columns`, padded with a resource that is never
    chosen, and a path with fewer hops with one that is never loaded), each flow's
    leaves, demands, capacities and the base load."""

    def __init__(self, flows: list[Flow], topo: TeTopology, dem: list[float],
                 base_load: list[float]) -> None:
        self.leaves = [(f.src_leaf, f.dst_leaf) for f in flows]
        self.both, count = topo.option_table(self.leaves)
        self.width = w = topo.width
        self.cols = [self.both[:, c * w:(c + 1) * w] for c in range(topo.columns)]
        self.ups, self.downs = self.cols[0], self.cols[1]
        self.count_a = count
        self.count = count.tolist()
        self.dem = np.array(dem, dtype=float)
        self.cap = np.array([*topo.caps, 1.0, np.inf])
        self.base = np.array([*base_load, BIG, 0.0])

    def stack(self, at: np.ndarray, pick: np.ndarray) -> np.ndarray:
        """The resources (flow x hop) of option ``pick[n]`` of flow ``at[n]``."""
        return np.stack([c[at, pick] for c in self.cols], axis=1).reshape(len(at),
                                                                          len(self.cols))

    def positions(self, paths: list[SpinePath | None], topo: TeTopology) -> list[int]:
        """Each flow's option that is the path given (-1: none, or not in service)."""
        if not paths:
            return []
        if topo.columns > 2:
            return [-1 if p is None else topo.option_number(a, b).get(p, -1)
                    for (a, b), p in zip(self.leaves, paths, strict=True)]
        # (two tiers: an uplink in service leads to one spine, it names the option)
        ups = np.fromiter(map(topo.uplink_number.get, paths, repeat(-3)), np.int64,
                          len(paths))
        hit = self.ups == ups[:, None]
        return np.where(hit.any(axis=1), hit.argmax(axis=1), -1).tolist()

    def _reset_pads(self, load: np.ndarray) -> None:
        load[-2], load[-1] = BIG, 0.0

    def take_out(self, flows: list[Flow], own: list[float], cur: list[int],
                 index: Mapping[Resource, int]) -> None:
        """Take each flow's own rate off the links of its current path (not below 0)."""
        pick = np.array(cur, dtype=np.intp)
        rate = np.array(own, dtype=float)
        on = np.nonzero(pick >= 0)[0]
        n = len(self.base)
        for c in self.cols:
            self.base -= np.bincount(c[on, pick[on]], weights=rate[on], minlength=n)
        for i in np.nonzero(pick < 0)[0].tolist():
            path = flows[i].path
            if path is None:
                continue
            for r in resources(path, flows[i].dst_leaf):  # (out of service: maybe measured)
                k = index.get(r)
                if k is not None:
                    self.base[k] -= own[i]
        np.maximum(self.base, 0.0, out=self.base)
        self._reset_pads(self.base)

    def load_of(self, choice: list[int]) -> list[float]:
        """Each resource's load with every flow on its chosen option (-1: none)."""
        pick = np.array(choice, dtype=np.intp)
        on = np.nonzero(pick >= 0)[0]
        load = self.base.copy()
        d = self.dem[on]
        n = len(load)
        for c in self.cols:
            load += np.bincount(c[on, pick[on]], weights=d, minlength=n)
        return load[:-PADS].tolist()
