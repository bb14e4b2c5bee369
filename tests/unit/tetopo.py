"""A synthetic TE topology for unit tests: leaf 2000+j's port i goes to spine 1000+i."""

from __future__ import annotations

from controller.core.te import TeTopology, down, up

RATE = 5e6  # bit/s, like the Mininet fabrics


def topo(spines: int = 2, leaves: int = 4, rate: float = RATE, cut=()) -> TeTopology:
    """Leaves 2001..2000+leaves, spines 1001..1000+spines, every link ``rate``; ``cut``
    removes (leaf, spine) links."""
    uplinks, reach, cap = {}, {}, {}
    for j in range(1, leaves + 1):
        leaf = 2000 + j
        uplinks[leaf] = tuple((i, 1000 + i) for i in range(1, spines + 1)
                              if (leaf, 1000 + i) not in cut)
        for i in range(1, spines + 1):
            if (leaf, 1000 + i) not in cut:
                cap[up(leaf, i)] = rate
                cap[down(1000 + i, leaf)] = rate
    for i in range(1, spines + 1):
        reach[1000 + i] = frozenset(2000 + j for j in range(1, leaves + 1)
                                    if (2000 + j, 1000 + i) not in cut)
    return TeTopology(uplinks, reach, cap, host_rate=rate)
