"""The fabric model: switches and their ports, directed links found by LLDP, and hosts.

Mutated only by :class:`controller.core.FabricCore` on the owning app's thread; every
method that depends on time takes ``now`` as an argument.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass, field
from typing import NamedTuple

from controller.core.constants import OFPP_MAX

# how many times its timeout a link is kept while LLDP does not get through its
# switches' control channels at all (then it is judged without them)
LAG_TOLERANCE = 3.0


@dataclass(frozen=True)
class Port:
    port_no: int
    name: str = ""
    hw_addr: str = ""
    up: bool = True
    speed_bps: int = 0  # as the switch reports it (0: unknown)


@dataclass
class Switch:
    dpid: int
    ports: dict[int, Port] = field(default_factory=dict)
    connected: bool = True
    connected_since: float = 0.0
    port_up_since: dict[int, float] = field(default_factory=dict)
    down_since: float | None = None  # disconnected: since when (set by the next step)

    def up_ports(self) -> list[int]:
        """Physical ports that are up (reserved ports such as LOCAL are left out)."""
        return sorted(p.port_no for p in self.ports.values() if p.up and p.port_no <= OFPP_MAX)


class LinkEnd(NamedTuple):
    """A port of a switch (a tuple: compared and hashed at C speed, 10,000s per pass)."""

    dpid: int
    port: int


@dataclass
class Link:
    """One direction of a cable: LLDP sent out of ``src`` arrived at ``dst``."""

    src: LinkEnd
    dst: LinkEnd
    discovered_at: float
    last_seen: float
    last_sent: float = 0.0  # when the newest probe that confirmed it was sent


@dataclass
class Host:
    mac: str
    ip: str | None
    dpid: int
    port: int
    first_seen: float
    last_seen: float
    recovered: bool = False  # rebuilt from a switch's entries after a controller restart
    static: bool = False  # bound by the config: never moved, aged or forgotten


class Cable(NamedTuple):
    """A usable bidirectional link between two connected switches, ``a < b``."""

    a: LinkEnd
    b: LinkEnd


class Fabric:
    """Switches, links and hosts as discovered so far."""

    def __init__(self) -> None:
        self.switches: dict[int, Switch] = {}
        # by source end, oldest confirmation first; changed only in this class
        self.links: dict[LinkEnd, Link] = {}
        # indexes of ``links``, kept with it (a fabric of a thousand switches has some
        # 32,000 link directions, found one by one): dpid -> port -> links on it (as
        # source or destination); link destination -> its source
        self._link_ports: dict[int, collections.Counter[int]] = {}
        self._into: dict[LinkEnd, LinkEnd] = {}
        # the newest probe (by when it was sent) that came back from each switch, and
        # to each: how far LLDP got through a switch's control channel (link expiry)
        self.heard_from: dict[int, float] = {}
        self.heard_at: dict[int, float] = {}
        self.hosts: dict[str, Host] = {}  # keyed by MAC
        self.held: set[LinkEnd] = set()  # fabric ports held down by flap dampening
        # ports that faced a switch before a controller restart, not judged yet
        self.expected: set[LinkEnd] = set()

    # --- switches and ports -----------------------------------------------------------------
    def switch_up(self, dpid: int, ports: list[Port], now: float) -> None:
        self.switches[dpid] = Switch(
            dpid, {p.port_no: p for p in ports}, True, now, {p.port_no: now for p in ports}
        )

    def switch_down(self, dpid: int) -> None:
        """Mark a switch disconnected from the controller.

        Its links are kept, frozen: a lost control connection says nothing about the
        data plane, and LLDP cannot be exchanged through the switch until it is back.
        Neighbours' port-down events still remove them; forwarding avoids them where
        another path exists (see ``forwarding``).
        """
        sw = self.switches.get(dpid)
        if sw is not None:
            sw.connected = False

    def forget_switch(self, dpid: int) -> None:
        """Remove a disconnected switch that has no link: as if never seen (its ports,
        hosts and probe times)."""
        sw = self.switches.get(dpid)
        if sw is None or sw.connected or self._link_ports.get(dpid):
            return
        for port in list(sw.ports):
            self.forget_hosts_on(dpid, port)
        del self.switches[dpid]
        self._link_ports.pop(dpid, None)
        self.heard_from.pop(dpid, None)
        self.heard_at.pop(dpid, None)
        self.held = {e for e in self.held if e.dpid != dpid}
        self.expected = {e for e in self.expected if e.dpid != dpid}

    def port_update(self, dpid: int, port: Port, now: float) -> list[Link]:
        """Record a port's new state; a port that is down loses its links."""
        sw = self.switches.get(dpid)
        if sw is None:
            return []
        old = sw.ports.get(port.port_no)
        sw.ports[port.port_no] = port
        if port.up:
            if old is None or not old.up:
                sw.port_up_since[port.port_no] = now
            return []
        self.forget_hosts_on(dpid, port.port_no)  # whatever comes back is learned afresh
        return self._drop_links_at(LinkEnd(dpid, port.port_no))

    def port_deleted(self, dpid: int, port_no: int) -> list[Link]:
        sw = self.switches.get(dpid)
        if sw is not None:
            sw.ports.pop(port_no, None)
        self.forget_hosts_on(dpid, port_no)
        return self._drop_links_at(LinkEnd(dpid, port_no))

    def is_connected(self, dpid: int) -> bool:
        sw = self.switches.get(dpid)
        return sw is not None and sw.connected

    def port_is_up(self, dpid: int, port_no: int) -> bool:
        """Last known state of a port (as reported before a disconnection, if any)."""
        sw = self.switches.get(dpid)
        if sw is None:
            return False
        port = sw.ports.get(port_no)
        return port is not None and port.up

    # --- links ------------------------------------------------------------------------------
    def link_seen(self, src: LinkEnd, dst: LinkEnd, now: float,
                  sent: float | None = None) -> tuple[bool, list[Link]]:
        """Record an LLDP sighting (of a probe sent at ``sent``, arrived at ``now``);
        returns (is_new, links it displaced).

        A port has one peer: a sighting that contradicts an older link replaces it
        (re-cabling), and hosts learned on either end are forgotten.
        """
        sent = now if sent is None else min(sent, now)
        for heard, dpid in ((self.heard_from, src.dpid), (self.heard_at, dst.dpid)):
            if sent > heard.get(dpid, -1.0):
                heard[dpid] = sent
        current = self.links.get(src)
        if current is not None and current.dst == dst:
            current.last_seen = now
            current.last_sent = max(current.last_sent, sent)
            self.links[src] = self.links.pop(src)  # (the links stay oldest first)
            return False, []
        # (the links this one contradicts: from src, or into dst from elsewhere)
        into_dst = self._into.get(dst)
        suspects = [self.links[e] for e in sorted({src, into_dst} - {None}) if e in self.links]
        displaced = [lk for lk in suspects if lk.src == src or lk.dst == dst]
        for lk in displaced:
            self._remove_link(lk)
        self._add_link(Link(src, dst, now, now, sent))
        for end in (src, dst):
            self.forget_hosts_on(end.dpid, end.port)
        return True, displaced

    def forget_hosts_on(self, dpid: int, port: int) -> list[str]:
        gone = [m for m, h in self.hosts.items()
                if (h.dpid, h.port) == (dpid, port) and not h.static]
        for mac in gone:
            del self.hosts[mac]
        return gone

    def expire_links(self, now: float, max_age: float) -> list[Link]:
        """Drop links LLDP stopped confirming; frozen links of disconnected switches stay.

        A link unconfirmed for ``max_age`` goes once probes sent ``max_age`` after its
        last confirmation have come back from its source and to its destination by other
        links: LLDP gets through both switches, only not over it. While their control
        channels lag (a switch working through a burst of flow-mods answers its probes
        seconds late), it is kept, up to ``LAG_TOLERANCE`` times ``max_age``."""
        def gone(lk: Link) -> bool:
            if now - lk.last_seen <= max_age:
                return False
            if not (self.is_connected(lk.src.dpid) and self.is_connected(lk.dst.dpid)):
                return False
            through = min(self.heard_from.get(lk.src.dpid, -1.0),
                          self.heard_at.get(lk.dst.dpid, -1.0))
            return (through - lk.last_sent > max_age
                    or now - lk.last_seen > LAG_TOLERANCE * max_age)

        # (links are kept in the order they were last confirmed: the scan stops at the
        # first one confirmed within max_age; at 1,000 switches a scan of all 31,488
        # every second was a twelfth of the loop)
        old = []
        for lk in self.links.values():
            if now - lk.last_seen <= max_age:
                break
            if gone(lk):
                old.append(lk)
        for lk in old:
            self._remove_link(lk)
        return old

    def _links_on(self, end: LinkEnd) -> list[Link]:
        """The links from or into ``end``."""
        return [lk for lk in (self.links.get(end), self.links.get(self._into.get(end)))
                if lk is not None and end in (lk.src, lk.dst)]

    def _drop_links_at(self, end: LinkEnd) -> list[Link]:
        """Drop the links from or into ``end``."""
        gone = {lk.src: lk for lk in self._links_on(end)}
        for lk in gone.values():
            self._remove_link(lk)
        return list(gone.values())

    def _add_link(self, lk: Link) -> None:
        self.links[lk.src] = lk
        self._into[lk.dst] = lk.src
        for end in (lk.src, lk.dst):
            self._link_ports.setdefault(end.dpid, collections.Counter())[end.port] += 1

    def _remove_link(self, lk: Link) -> None:
        del self.links[lk.src]
        if self._into.get(lk.dst) == lk.src:
            del self._into[lk.dst]
        for end in (lk.src, lk.dst):
            ports = self._link_ports[end.dpid]
            ports[end.port] -= 1
            if ports[end.port] <= 0:
                del ports[end.port]

    def link_ports(self, dpid: int) -> set[int]:
        """Ports of ``dpid`` that LLDP has shown to face another switch (either direction)."""
        return set(self._link_ports.get(dpid, ()))

    def links_at(self, dpid: int) -> list[Link]:
        """The links out of and into ``dpid``."""
        return [lk for port in self._link_ports.get(dpid, ())
                for lk in self._links_on(LinkEnd(dpid, port))]

    def peers(self, dpid: int) -> set[int]:
        """The switches at the other end of ``dpid``'s links (either direction)."""
        return {lk.dst.dpid if lk.src.dpid == dpid else lk.src.dpid
                for lk in self.links_at(dpid)}

    def edge_ports(self, dpid: int, now: float | None = None, min_up: float = 0.0) -> list[int]:
        """Up ports of a connected switch with no link on them: where hosts may be.

        With ``now``, only ports that have been up for ``min_up`` seconds count: a port
        that just came up may face a switch whose LLDP has not arrived yet.
        """
        sw = self.switches.get(dpid)
        if sw is None or not sw.connected:
            return []
        linked = self.link_ports(dpid)
        ports = [p for p in sw.up_ports() if p not in linked
                 and LinkEnd(dpid, p) not in self.held
                 and LinkEnd(dpid, p) not in self.expected]
        if now is not None:
            ports = [p for p in ports if now - sw.port_up_since.get(p, now) >= min_up]
        return ports

    def cables(self) -> list[Cable]:
        """Links seen in both directions with both ports up (frozen ones included)."""
        out = []
        for lk in self.links.values():
            if lk.src >= lk.dst:
                continue
            back = self.links.get(lk.dst)
            if back is None or back.dst != lk.src:
                continue
            if self.port_is_up(lk.src.dpid, lk.src.port) and self.port_is_up(
                lk.dst.dpid, lk.dst.port
            ):
                out.append(Cable(lk.src, lk.dst))
        return sorted(out)

    # --- hosts ------------------------------------------------------------------------------
    def learn_host(
        self, mac: str, ip: str | None, dpid: int, port: int, now: float, recovered: bool = False
    ) -> bool:
        """Record a host sighting; True when the forwarding-relevant facts changed."""
        changed = False
        if ip is not None:
            for other in self.hosts.values():
                if other.ip == ip and other.mac != mac:
                    other.ip = None  # the address moved to another MAC
                    changed = True
        host = self.hosts.get(mac)
        if host is None:
            self.hosts[mac] = Host(mac, ip, dpid, port, now, now, recovered)
            return True
        host.last_seen = now
        if (host.dpid, host.port) != (dpid, port):
            host.dpid, host.port = dpid, port
            changed = True
        if ip is not None and host.ip != ip:
            host.ip = ip
            changed = True
        if not recovered:
            host.recovered = False
        return changed

    def host_by_ip(self, ip: str) -> Host | None:
        for host in self.hosts.values():
            if host.ip == ip:
                return host
        return None
