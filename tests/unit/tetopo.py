"""A synthetic TE topology for unit tests (leaf 2000+j's port i goes to spine 1000+i),
and the hosts, keys and loads the TE tests share."""

from __future__ import annotations

from controller.core.te import TCP, FlowKey, TeTopology, TrafficEngineer, down, resources, up

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


def host(n: int) -> str:
    return f"10.0.0.{n}"


def leaf_of(n: int) -> int:
    return 2001 + (n - 1) // 2  # two hosts per leaf


def key(a: int, b: int, sport: int = 40000, proto: int = TCP, dport: int = 5201) -> FlowKey:
    return FlowKey(host(a), host(b), proto, sport, dport)


def loads_of(te: TrafficEngineer) -> dict:
    out: dict = {}
    for f in te.flows.values():
        for r in resources(f.path, f.dst_leaf):
            out[r] = out.get(r, 0.0) + f.rate_bps
    return out


def per_resource(te: TrafficEngineer) -> dict:
    out: dict = {}
    for f in te.flows.values():
        for r in resources(f.path, f.dst_leaf):
            out[r] = out.get(r, 0) + 1
    return out
