"""Maintenance: the links and switches an operator has taken out of service (drained).

This holds the operator's intent and its rules (a leaf cannot be drained; a drain that
would leave two leaves without a path is refused); the core turns changes into events
and new desired state. A drain is of a cable: it outlives the link going down and up,
and applies only while that cable is cabled (a port re-cabled elsewhere is in service).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from controller.core.errors import FailedPrecondition, NotFound
from controller.core.intent.kinds import Drains
from controller.core.model.fabric_model import Cable, Fabric, LinkEnd
from controller.core.model.roles import LEAF, SPINE, TIER


def _meet(a: tuple[frozenset, frozenset], b: tuple[frozenset, frozenset]) -> bool:
    """Two leaves reaching ``a`` and ``b`` (spines, super-spines) have a path."""
    return bool(a[0] & b[0] or a[1] & b[1])


def cable_text(cable: Cable) -> str:
    return f"link {cable.a.dpid}:{cable.a.port} <-> {cable.b.dpid}:{cable.b.port}"


class Maintenance:
    def __init__(self, fabric: Fabric) -> None:
        self.fabric = fabric
        self.cables: set[Cable] = set()  # drained: carry no traffic
        self.switches: set[int] = set()

    @property
    def drains(self) -> Drains:
        """The cables and switches out of service now."""
        return Drains(frozenset(self.cables), frozenset(self.switches))

    def cable_at(self, dpid: int, port: int) -> Cable | None:
        """The cable with an end at ``dpid:port`` now."""
        end = LinkEnd(dpid, port)
        return next((c for c in self.fabric.cables() if end in (c.a, c.b)), None)

    def drained_at(self, dpid: int, port: int) -> list[Cable]:
        """Drained cables with an end at ``dpid:port`` (cabled now or not)."""
        end = LinkEnd(dpid, port)
        return sorted((c for c in self.cables if end in (c.a, c.b)), key=lambda c: (c.a, c.b))

    def drained_ends(self, cables: Iterable[Cable] | None = None) -> frozenset[LinkEnd]:
        """Port ends out of service: those of drained cables that are cabled now
        (``cables``: the fabric's, when the caller has them already)."""
        if not self.cables:
            return frozenset()
        present = set(self.fabric.cables() if cables is None else cables)
        return frozenset(e for c in self.cables if c in present for e in (c.a, c.b))

    def cut_pairs(self, cables: set[Cable], switches: set[int],
                  roles: Mapping[int, str]) -> list[tuple[int, int]]:
        """Leaf pairs that have a path now and would have none with this drain set
        (up-down paths: through a spine both are wired to, or up to super-spines over
        spines of each)."""
        before = self._reach(self.cables, self.switches, roles)
        after = self._reach(cables, switches, roles)
        # leaves alike before and after are judged together (a pod's leaves usually are)
        kinds: dict[tuple[frozenset, frozenset, frozenset, frozenset], list[int]] = {}
        for leaf in sorted(before):
            kinds.setdefault((*before[leaf], *after[leaf]), []).append(leaf)
        groups = sorted(kinds.items(), key=lambda kv: kv[1][0])
        cut: list[tuple[int, int]] = []
        for i, (ka, la) in enumerate(groups):
            for kb, lb in groups[i:]:
                if _meet(ka[:2], kb[:2]) and not _meet(ka[2:], kb[2:]):
                    cut += [(a, b) for a in la for b in lb if a < b]
        return sorted(cut)

    def _reach(self, cables: set[Cable], switches: set[int], roles: Mapping[int, str]
               ) -> dict[int, tuple[frozenset[int], frozenset[int]]]:
        """leaf -> (the spines it reaches, the super-spines over those) with these
        cables and switches out of service."""
        up: dict[int, set[int]] = {}
        for c in self.fabric.cables():
            if c in cables or c.a.dpid in switches or c.b.dpid in switches:
                continue
            a, b = c.a.dpid, c.b.dpid
            ta, tb = TIER.get(roles.get(a)), TIER.get(roles.get(b))
            if ta is None or tb is None or abs(ta - tb) != 1:
                continue  # (not a Clos link: no up-down path uses it)
            low, high = (a, b) if ta < tb else (b, a)
            up.setdefault(low, set()).add(high)
        out = {}
        for leaf in (d for d, r in roles.items() if r == LEAF):
            spines = frozenset(s for s in up.get(leaf, ()) if roles.get(s) == SPINE)
            out[leaf] = (spines, frozenset(x for s in spines for x in up.get(s, ())))
        return out

    def with_drain(self, roles: Mapping[int, str], cable: Cable | None = None,
                   switch: int | None = None) -> Drains:
        """The drain sets with a cable or a spine more (nothing changes here);
        FailedPrecondition (with the reason) for a leaf, or if two leaves would be left
        without a path."""
        cables, switches = set(self.cables), set(self.switches)
        if switch is not None:
            if roles.get(switch) == LEAF:
                raise FailedPrecondition(f"switch {switch} is a leaf: its hosts have no "
                                         "other path")
            switches.add(switch)
        if cable is not None:
            cables.add(cable)
        cut = self.cut_pairs(cables, switches, roles)
        if cut:
            a, b = cut[0]
            more = f" (and {len(cut) - 1} more pairs)" if len(cut) > 1 else ""
            raise FailedPrecondition(f"draining would leave leaf {a} without a path to leaf "
                                     f"{b}{more}")
        return Drains(frozenset(cables), frozenset(switches))

    def set(self, drains: Drains) -> tuple[list[str], list[str]]:
        """Make these the drain sets (checked already, or as the cluster decided: no rule
        is checked again); what was drained and what is back in service, in words."""
        cables, switches = drains.cables, drains.switches
        drained = [cable_text(c) for c in sorted(cables - self.cables,
                                                 key=lambda c: (c.a, c.b))]
        drained += [f"switch {d}" for d in sorted(switches - self.switches)]
        back = [cable_text(c) for c in sorted(self.cables - cables, key=lambda c: (c.a, c.b))]
        back += [f"switch {d}" for d in sorted(self.switches - switches)]
        self.cables, self.switches = set(cables), set(switches)
        return drained, back

    def change(self, roles: Callable[[], Mapping[int, str]], action: str, dpid: int,
               port: int = 0) -> tuple[Drains, str]:
        """The drain sets an operator's drain or undrain would make (``drain_link``,
        ``drain_switch``, ``undrain`` with a port for a link, without for a switch), and
        what it does, in words; nothing changes here. NotFound for an unknown switch or
        link; FailedPrecondition when the fabric's state forbids it (``roles``: the
        switches' roles, asked for when a drain is checked)."""
        if dpid not in self.fabric.switches:
            raise NotFound(f"no switch with dpid {dpid}")
        current = self.drains
        if action == "drain_switch":
            return self.with_drain(roles(), switch=dpid), f"switch {dpid} drained"
        if action == "undrain" and not port:
            if dpid not in current.switches:
                return current, f"switch {dpid} is not drained"
            return (Drains(current.cables, current.switches - {dpid}),
                    f"switch {dpid} back in service")
        if action == "undrain":
            drained = self.drained_at(dpid, port)
            if not drained:
                cable = self.cable_at(dpid, port)
                if cable is None:
                    raise NotFound(f"no link at {dpid}:{port}")
                return current, f"{cable_text(cable)} is not drained"
            # (with one before re-cabling: whatever was drained there)
            return (Drains(current.cables - set(drained), current.switches),
                    " and ".join(f"{cable_text(c)} back in service" for c in drained))
        if action != "drain_link":
            raise ValueError(f"unknown maintenance action {action!r}")
        cable = self.cable_at(dpid, port)
        if cable is None:
            raise NotFound(f"no link at {dpid}:{port}")
        return self.with_drain(roles(), cable=cable), f"{cable_text(cable)} drained"
