"""The topology as the API shows it (:class:`TopologySnapshot`), made from the core: its
switches and links are made again only after a change of the fabric (a view derived
again), its hosts each time (hosts come and go far more often: at 320 switches and
9,728 link directions, every host learned rebuilt the whole, ~85 ms)."""

from __future__ import annotations

from typing import Protocol

from controller.core.fabric.fabric_view import FabricView
from controller.core.fabric.hosts import HostGuard
from controller.core.fabric.maintenance import Maintenance
from controller.core.model.fabric_model import Fabric
from controller.core.model.servers import Located, ServerBook, rail_check
from controller.core.snapshot import HostInfo, LinkInfo, SwitchInfo, TopologySnapshot


class Source(Protocol):
    """What a snapshot is made from (the core)."""

    fabric: Fabric
    maintenance: Maintenance
    host_guard: HostGuard
    servers: ServerBook
    derived: int  # views derived so far

    def view(self) -> FabricView: ...

    def warnings(self) -> tuple[str, ...]: ...

    def last_role(self, dpid: int) -> str | None: ...


def _place_of(view: FabricView, dpid: int) -> dict[str, int]:
    place = view.places.get(dpid)
    return {} if place is None else {"plane": place.plane, "pod": place.pod,
                                     "spine_plane": place.spine_plane}


class SnapshotMaker:
    """Makes snapshots, keeping the switches and links of the last one while no view
    has been derived since (every change of switches, ports, links or drains derives
    one: :attr:`FabricCore.derived`)."""

    def __init__(self) -> None:
        self._kept: tuple[int, tuple[SwitchInfo, ...], tuple[LinkInfo, ...]] | None = None

    def make(self, core: Source, now: float) -> TopologySnapshot:
        view = core.view()
        if self._kept is None or self._kept[0] != core.derived:
            self._kept = (core.derived, *self._fabric(core, view))
        _, switches, links = self._kept
        fab = core.fabric
        probing = core.host_guard.pending
        hosts = tuple(
            HostInfo(h.mac, h.ip or "", h.dpid, h.port, h.first_seen, h.recovered,
                     "static" if h.static else "probing" if h.mac in probing
                     else "recovered" if h.recovered else "bound", h.last_seen)
            for h in sorted(fab.hosts.values(), key=lambda h: (h.dpid, h.port, h.mac))
        )
        nics, off_rail = rail_check(core.servers.all, (
            Located(h.mac, h.ip, h.dpid, h.port) for h in fab.hosts.values()))
        return TopologySnapshot(switches, links, hosts, core.warnings() + off_rail, now, nics)

    @staticmethod
    def _fabric(core: Source, view: FabricView
                ) -> tuple[tuple[SwitchInfo, ...], tuple[LinkInfo, ...]]:
        fab, maintenance = core.fabric, core.maintenance
        switches = tuple(
            SwitchInfo(
                dpid=sw.dpid,
                role=view.roles.get(sw.dpid, core.last_role(sw.dpid) or "unknown"),
                connected=sw.connected,
                connected_since=sw.connected_since,
                ports=len(sw.up_ports()),
                drained=sw.dpid in maintenance.switches,
                **_place_of(view, sw.dpid),
            )
            for sw in sorted(fab.switches.values(), key=lambda s: s.dpid)
        )
        drained = maintenance.drained_ends()
        links = tuple(
            LinkInfo(lk.src.dpid, lk.src.port, lk.dst.dpid, lk.dst.port, lk.discovered_at,
                     lk.src in drained or bool({lk.src.dpid, lk.dst.dpid}
                                               & maintenance.switches))
            for lk in sorted(fab.links.values(), key=lambda lk: (lk.src, lk.dst))
            if fab.is_connected(lk.src.dpid) and fab.is_connected(lk.dst.dpid)
        )
        return switches, links
