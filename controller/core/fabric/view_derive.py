"""The fabric as forwarding sees it (:class:`FabricView`), derived from the fabric model,
discovery's judgements, maintenance and the settings: the core's memo, rebuilt after a
change of links, switches, drains or policy. Hosts alone are taken in by
:func:`host_locations` without deriving the rest again."""

from __future__ import annotations

from collections.abc import Mapping

from controller.core.fabric.ecmp import assign_group_ids
from controller.core.fabric.fabric_view import FabricView, HostLocation
from controller.core.fabric.maintenance import Maintenance
from controller.core.fabric.qos import QosPolicy
from controller.core.model.cabling import cabling_warnings
from controller.core.model.fabric_model import Fabric
from controller.core.model.roles import LEAF, infer_roles
from controller.core.settings import CoreSettings


def host_locations(fab: Fabric) -> tuple[HostLocation, ...]:
    """Every learned host, by MAC."""
    return tuple(HostLocation(h.mac, h.ip, h.dpid, h.port)
                 for h in sorted(fab.hosts.values(), key=lambda h: h.mac))


def derive_view(fab: Fabric, settings: CoreSettings, judged: set[int],
                roles_before: Mapping[int, str], maintenance: Maintenance,
                qos: QosPolicy | None, guard_ports: Mapping[int, tuple[int, ...]],
                te: bool) -> tuple[FabricView, tuple[str, ...]]:
    """The view, and the wiring warnings found on the way. ``judged``: switches whose
    links discovery has found; ``roles_before``: the roles of the last view (a switch
    keeps its role while it is away)."""
    cables = fab.cables()
    # Disconnected switches still carrying (frozen) links remain part of the fabric.
    members = sorted(
        {d for d, s in fab.switches.items() if s.connected}
        | {c.a.dpid for c in cables}
        | {c.b.dpid for c in cables}
    )
    # Roles only for switches whose links have been found (or set by the operator, or
    # with hosts, which only leaves have): until then a spine with few links known
    # looks like a leaf, and ports not probed yet like host ports (they are not counted).
    overrides = settings.role_overrides
    hosted = {h.dpid for h in fab.hosts.values()}
    ranked = [d for d in members if d in judged or d in overrides or d in hosted]
    result = infer_roles(
        members,
        cables,
        {d: len(fab.edge_ports(d)) for d in ranked if fab.is_connected(d)},
        overrides,
        roles_before,
        hosted,
    )
    roles = {d: result.roles[d] for d in ranked}
    warnings = result.warnings + tuple(cabling_warnings(settings.cabling, cables))
    adjacency: dict[int, list[tuple[int, int, int]]] = {d: [] for d in members}
    for c in cables:
        adjacency[c.a.dpid].append((c.a.port, c.b.dpid, c.b.port))
        adjacency[c.b.dpid].append((c.b.port, c.a.dpid, c.a.port))
    leaves = [d for d in ranked if roles[d] == LEAF]
    view = FabricView(
        roles=roles,
        adjacency={d: tuple(sorted(v)) for d, v in adjacency.items()},
        hosts=host_locations(fab),
        group_ids=assign_group_ids(leaves),
        connected=frozenset(d for d in members if fab.is_connected(d)),
        edge_ports={d: tuple(fab.edge_ports(d)) for d in leaves},
        qos=qos,
        drained_ends=frozenset(maintenance.drained_ends(cables)),
        drained_switches=frozenset(maintenance.switches),
        te=te,
        punt=settings.punt,
        guarded={d: p for d, p in guard_ports.items() if d in leaves},
        places={d: result.places[d] for d in ranked if d in result.places},
        repeat_up=settings.spine_uplink_repeats,
    )
    return view, warnings
