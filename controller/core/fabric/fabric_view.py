"""The fabric as forwarding sees it, frozen at one instant (:class:`FabricView`), and
the up-down ways through it: which spines and super-spines reach a leaf, and which
ports a switch sends through towards the next tier.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from functools import cached_property

from controller.core.fabric.qos import QosPolicy
from controller.core.model.roles import SPINE, SUPER_SPINE, Place


@dataclass(frozen=True)
class HostLocation:
    mac: str
    ip: str | None
    dpid: int
    port: int


@dataclass(frozen=True)
class PuntLimits:
    """Packets per second the switch lets through to the controller (its meters)."""

    host_pps: int = 100  # per edge port: ARP, broadcast, unknown destinations
    host_burst: int = 200
    te_pps: int = 200  # per edge port: TE's new-flow copies
    lldp_pps: int = 1000  # per switch: discovery, apart from everything hosts send

    @property
    def control_pps(self) -> int:
        """Shared by punts from ports that are not (yet) known edge ports."""
        return 5 * self.host_pps


@dataclass(frozen=True)
class FabricView:
    """What forwarding needs to know, frozen at one instant."""

    roles: Mapping[int, str]
    # dpid -> ((local port, peer dpid, peer port), ...) over usable cables
    adjacency: Mapping[int, tuple[tuple[int, int, int], ...]]
    hosts: tuple[HostLocation, ...]
    group_ids: Mapping[int, int]  # leaf dpid -> id of the group that reaches it
    connected: frozenset[int] = frozenset()  # switches with a live OpenFlow session
    edge_ports: Mapping[int, tuple[int, ...]] = field(default_factory=dict)  # leaf -> ports
    qos: QosPolicy | None = None  # None: no marking (--no-qos)
    # maintenance: leaves stop sending over these; spines keep forwarding what still
    # arrives, so nothing in flight is lost
    drained_ends: frozenset[tuple[int, int]] = frozenset()
    drained_switches: frozenset[int] = frozenset()
    te: bool = False  # traffic engineering: leaves send remote traffic through table 4
    punt: PuntLimits = PuntLimits()
    # leaf -> its settled host ports, where the source guard applies (empty: off)
    guarded: Mapping[int, tuple[int, ...]] = field(default_factory=dict)
    places: Mapping[int, Place] = field(default_factory=dict)  # plane, pod, spine plane
    repeat_up: bool = True  # a spine's up-buckets repeated against OVS's hash (ecmp)

    def with_hosts(self, hosts: tuple[HostLocation, ...]) -> FabricView:
        """This view with other hosts; what it derived and keeps (the ways through the
        fabric: nothing of it depends on hosts) is carried over, not derived again."""
        view = replace(self, hosts=hosts)
        view.__dict__.update({k: v for k, v in self.__dict__.items() if k in _CARRIED})
        return view

    def ports_towards(self, dpid: int, peer: int) -> list[int]:
        return list(self._towards.get((dpid, peer), ()))

    @cached_property
    def _towards(self) -> dict[tuple[int, int], tuple[int, ...]]:
        """(switch, neighbour) -> the switch's ports to it, sorted (built once per view)."""
        out: dict[tuple[int, int], list[int]] = {}
        for dpid, adj in self.adjacency.items():
            for lp, pd, _ in adj:
                out.setdefault((dpid, pd), []).append(lp)
        return {k: tuple(sorted(v)) for k, v in out.items()}

    @cached_property
    def hosts_by_mac(self) -> dict[str, HostLocation]:
        return {h.mac: h for h in self.hosts}

    @cached_property
    def reached_by(self) -> dict[int, tuple[int, ...]]:
        """switch -> the switches with a link to it, sorted (built once per view)."""
        return {d: tuple(sorted({pd for _, pd, _ in adj})) for d, adj in self.adjacency.items()}

    def neighbours(self, dpid: int, role: str) -> set[int]:
        return {pd for _, pd, _ in self.adjacency.get(dpid, ()) if self.roles.get(pd) == role}

    @cached_property
    def tiers_above(self) -> tuple[dict[int, tuple[int, ...]], dict[int, tuple[int, ...]]]:
        """(spine -> its super-spines, super-spine -> its spines), sorted; empty in a
        two-tier fabric (built once per view)."""
        roles = self.roles
        ups: dict[int, tuple[int, ...]] = {}
        downs: dict[int, tuple[int, ...]] = {}
        if SUPER_SPINE not in roles.values():
            return ups, downs
        for d, adj in self.adjacency.items():
            role = roles.get(d)
            if role == SPINE:
                ups[d] = tuple(sorted({pd for _, pd, _ in adj
                                       if roles.get(pd) == SUPER_SPINE}))
            elif role == SUPER_SPINE:
                downs[d] = tuple(sorted({pd for _, pd, _ in adj if roles.get(pd) == SPINE}))
        return ups, downs

    def reach(self, dest: int) -> tuple[tuple[int, ...], frozenset[int]]:
        """How traffic goes down to leaf ``dest``, up-down only: (the spines that reach
        it, sorted: those with a link to it, and those with a link to a super-spine over
        one of them; the super-spines over those with a link to it). Worked out once per
        set of switches with a link to ``dest`` (the leaves of a pod share it)."""
        by = self.reached_by.get(dest, ())
        got = self._reach_memo.get(by)
        if got is None:
            roles = self.roles
            linked = [s for s in by if roles.get(s) == SPINE]
            ups, downs = self.tiers_above
            if not ups:
                got = (tuple(linked), frozenset())
            else:
                supers = frozenset(x for s in linked for x in ups.get(s, ()))
                spines = set(linked).union(*(downs.get(x, ()) for x in supers))
                got = (tuple(sorted(spines)), supers)
            self._reach_memo[by] = got
        return got

    @cached_property
    def leaf_keys(self) -> dict[tuple[int, ...], tuple[dict, Counter]]:
        """A leaf's spines -> the key of every destination leaf, and how many share
        each (worked out once per view: :func:`controller.core.fabric.ecmp.leaf_ecmp`)."""
        return {}

    @cached_property
    def _reach_memo(self) -> dict[tuple[int, ...], tuple[tuple[int, ...], frozenset[int]]]:
        return {}

    def onward(self, spine: int, dest: int) -> tuple[int, ...]:
        """The switches a spine sends traffic for leaf ``dest`` to: the leaf itself when
        they are linked, else the super-spines over the spines linked to it."""
        if self._towards.get((spine, dest)):
            return (dest,)
        supers = self.reach(dest)[1]
        return tuple(x for x in self.tiers_above[0].get(spine, ()) if x in supers)

    def down_to(self, dpid: int, dest: int) -> tuple[int, ...]:
        """The spines with a link to leaf ``dest`` that super-spine ``dpid`` reaches."""
        towards, roles = self._towards, self.roles
        return tuple(s for s in self.reached_by.get(dest, ())
                     if roles.get(s) == SPINE and (dpid, s) in towards)

    @property
    def draining(self) -> bool:
        """Whether anything is drained (else every way is in service)."""
        return bool(self.drained_ends or self.drained_switches)

    def in_service(self, dpid: int, nxt: int) -> bool:
        """``nxt`` is in service, and so is one of ``dpid``'s links to it."""
        return nxt not in self.drained_switches and any(
            (dpid, p) not in self.drained_ends for p in self._towards.get((dpid, nxt), ()))

    def serves(self, dpid: int, dest: int) -> bool:
        """A spine or super-spine has a way down to leaf ``dest`` in service all the way."""
        if self._towards.get((dpid, dest)):
            return self.in_service(dpid, dest)
        return any(self.in_service(dpid, s) and self.in_service(s, dest)
                   for s in self.down_to(dpid, dest))

    def next_ports(self, dpid: int, nexts, better=None) -> tuple[int, ...]:
        """The ports of ``dpid`` towards the switches ``nexts`` (one hop closer to a
        destination) that traffic takes: those in service towards connected switches,
        else those in service, else towards connected switches, else all of them; and
        first of all those towards ``better`` (the ``nexts`` whose own ways on are in
        service, when some are not). (A switch that lost its controller session may be
        dead; drained ones are out of service, but better them than no path.)"""
        towards, drained = self._towards, self.drained_ends

        def stages(cands) -> tuple[list[int], list[int]]:
            serving = [s for s in cands if s not in self.drained_switches]
            return [s for s in serving if s in self.connected], serving

        for group in (*(stages(better) if better is not None else ()), *stages(nexts)):
            ports = tuple(p for s in group for p in towards.get((dpid, s), ())
                          if (dpid, p) not in drained)
            if ports:
                return ports
        group = [s for s in nexts if s in self.connected] or list(nexts)
        return tuple(p for s in group for p in towards.get((dpid, s), ()))


# what a view derives and keeps that does not depend on its hosts (FabricView.with_hosts)
_CARRIED = frozenset(("_towards", "reached_by", "tiers_above", "leaf_keys", "_reach_memo"))
