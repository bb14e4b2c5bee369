"""Host identity at the leaf edge: who may claim which MAC and IPv4 address, and where.

Hosts are untrusted. A frame can claim any source MAC and any sender address; what a
host claims is therefore a *sighting*, and a sighting that contradicts a live binding
(the MAC seen on another port, the address claimed by another MAC) is refused: the
frame is dropped, a ``host_conflict`` event says who claimed what, and the bound host
is probed with an ARP request at its own port. If it answers within the probe timeout,
the binding stands; if it does not, it is gone (a VM migrated, a NIC was swapped) and
the claim that was waiting is applied: a ``host_moved`` event. A port going down
releases its bindings at once, so re-cabling a host is immediate.

Also bounded here: hosts per edge port (beyond the limit, new MACs are ignored and
reported once per port), and idle hosts (probed after the idle timeout, forgotten if
they do not answer). Static bindings from the config are never overridden or aged.
Pure: no clock, no I/O; the core turns the probes asked for into packet-outs.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from controller.core.events import FabricEvent
from controller.core.model.fabric_model import Fabric, Host

# ARP probes are sent from this locally administered MAC with sender address 0.0.0.0
# (RFC 5227), so no host's ARP cache learns anything from them.
PROBE_MAC = "0a:af:00:00:00:01"


@dataclass(frozen=True)
class StaticHost:
    mac: str
    ip: str
    dpid: int
    port: int


@dataclass(frozen=True)
class HostSettings:
    max_per_port: int = 32  # hosts one edge port may have (a server and its containers)
    idle_timeout: float = 300.0  # seconds without a packet-in before a host is probed
    probe_timeout: float = 1.0  # seconds a probed host has to answer
    static: tuple[StaticHost, ...] = ()


@dataclass(frozen=True)
class Claim:
    """A sighting that waits for a bound host's verification."""

    mac: str
    ip: str | None
    dpid: int
    port: int


@dataclass
class Verification:
    """An ARP probe sent to a bound host; what to do if it stays silent."""

    mac: str
    deadline: float
    claim: Claim | None = None  # None: an idle host is probed, nobody waits on it


@dataclass(frozen=True)
class Probe:
    """Ask the host bound at ``dpid:port`` whether it still has ``ip``."""

    dpid: int
    port: int
    mac: str
    ip: str


@dataclass
class Outcome:
    """What a sighting or a timer pass did."""

    accepted: bool = True  # False: the frame is to be dropped
    changed: bool = False  # forwarding-relevant facts changed
    probes: list[Probe] = field(default_factory=list)
    events: list[FabricEvent] = field(default_factory=list)
    counters: list[str] = field(default_factory=list)

    def merge(self, other: Outcome) -> Outcome:
        self.changed = self.changed or other.changed
        self.probes += other.probes
        self.events += other.events
        self.counters += other.counters
        return self


def unicast_mac(mac: str) -> bool:
    """A MAC a host may own: not group (multicast/broadcast), not all zeros."""
    return mac != "00:00:00:00:00:00" and not int(mac[:2], 16) & 1


def host_address(ip: str | None) -> str | None:
    """``ip`` if a host may own it (unicast, not 0.0.0.0, loopback or link-local
    broadcast), else None."""
    if ip is None:
        return None
    try:
        addr = ipaddress.IPv4Address(ip)
    except ValueError:
        return None
    if addr.is_unspecified or addr.is_multicast or addr.is_loopback or addr.is_reserved \
            or addr == ipaddress.IPv4Address("255.255.255.255"):
        return None
    return ip


class HostGuard:
    """The binding rules over ``fabric.hosts`` (the one writer is the core's thread)."""

    def __init__(self, fabric: Fabric, settings: HostSettings) -> None:
        self.fabric = fabric
        self.settings = settings
        self.pending: dict[str, Verification] = {}  # by the bound host's MAC
        self.generation = 0  # bumped whenever a host starts or stops being probed
        self._full_reported: set[tuple[int, int]] = set()

    def _set_pending(self, mac: str, v: Verification | None) -> None:
        if v is None:
            self.pending.pop(mac, None)
        else:
            self.pending[mac] = v
        self.generation += 1

    # --- static bindings --------------------------------------------------------------------
    def install_static(self, now: float) -> bool:
        """(Re)create the static hosts whose leaf is known; True if any was added."""
        added = False
        for s in self.settings.static:
            host = self.fabric.hosts.get(s.mac)
            if host is not None and (host.dpid, host.port, host.ip) == (s.dpid, s.port, s.ip):
                host.static = True
                continue
            for other in list(self.fabric.hosts.values()):
                if other.mac != s.mac and other.ip == s.ip:
                    other.ip = None
            self.fabric.hosts[s.mac] = Host(s.mac, s.ip, s.dpid, s.port, now, now,
                                            static=True)
            added = True
        return added

    # --- sightings --------------------------------------------------------------------------
    def sighting(self, mac: str, ip: str | None, dpid: int, port: int, now: float) -> Outcome:
        """A frame from ``mac`` (claiming ``ip``) arrived on edge port ``dpid:port``."""
        if not unicast_mac(mac):
            return Outcome(accepted=False, counters=["bad_frames"])
        ip = host_address(ip)
        host = self.fabric.hosts.get(mac)
        if host is not None and (host.dpid, host.port) == (dpid, port):
            return self._refresh(host, ip, now)
        if host is not None:  # the MAC is bound elsewhere
            return self._conflict(host, Claim(mac, ip, dpid, port), now,
                                  f"MAC {mac} is bound to {host.dpid}:{host.port}")
        if ip is not None:
            owner = self._owner(ip, mac)
            if owner is not None:
                return self._conflict(owner, Claim(mac, ip, dpid, port), now,
                                      f"{ip} is bound to {owner.mac} at "
                                      f"{owner.dpid}:{owner.port}")
        return self._learn(Claim(mac, ip, dpid, port), now)

    def _owner(self, ip: str, mac: str) -> Host | None:
        owner = self.fabric.host_by_ip(ip)
        return owner if owner is not None and owner.mac != mac else None

    def _refresh(self, host: Host, ip: str | None, now: float) -> Outcome:
        host.last_seen = now
        out = Outcome()
        if host.mac in self.pending:  # it answered (or spoke): the binding stands
            self._set_pending(host.mac, None)
        if ip is None or host.ip == ip:
            return out
        if host.static:
            return self._refused_claim(host, ip)
        owner = self._owner(ip, host.mac)
        if owner is not None:
            return self._conflict(owner, Claim(host.mac, ip, host.dpid, host.port), now,
                                  f"{ip} is bound to {owner.mac} at {owner.dpid}:{owner.port}")
        host.ip = ip  # a host that had no address, or changed it (DHCP renumbering)
        out.changed = True
        return out

    def _refused_claim(self, host: Host, ip: str) -> Outcome:
        return Outcome(accepted=False, counters=["host_conflicts"], events=[FabricEvent(
            "host_conflict", f"static host {host.mac} at {host.dpid}:{host.port} claimed "
            f"{ip}; its binding is {host.ip}: refused",
            (("mac", host.mac), ("claimed_ip", ip), ("bound_ip", host.ip or "")))])

    def _conflict(self, bound: Host, claim: Claim, now: float, why: str) -> Outcome:
        """Refuse ``claim``; probe ``bound`` unless it is static or already probed."""
        out = Outcome(accepted=False, counters=["host_conflicts"])
        at = f"{claim.dpid}:{claim.port}"
        verify = not bound.static and bound.ip is not None
        pending = self.pending.get(bound.mac)
        if pending is None or pending.claim is None:
            # one event per verification (a host repeating a claim is not news)
            out.events.append(FabricEvent(
                "host_conflict",
                f"refused {claim.mac} ({claim.ip or 'no IPv4'}) at {at}: {why}"
                + ("; probing it" if verify else
                   " (static)" if bound.static else " (no address to probe: kept until it "
                   "ages out or its port goes down)"),
                (("mac", claim.mac), ("ip", claim.ip or ""), ("at", at),
                 ("bound_mac", bound.mac), ("bound_at", f"{bound.dpid}:{bound.port}"))))
        if not verify:
            return out
        if pending is None:
            self._set_pending(bound.mac, Verification(
                bound.mac, now + self.settings.probe_timeout, claim))
            assert bound.ip is not None
            out.probes.append(Probe(bound.dpid, bound.port, bound.mac, bound.ip))
        else:
            # a probe is under way (for a conflict or idleness): the claim waits on it,
            # the latest one being what a genuine move looks like
            pending.claim = claim
        return out

    def _learn(self, claim: Claim, now: float) -> Outcome:
        here = [h for h in self.fabric.hosts.values()
                if (h.dpid, h.port) == (claim.dpid, claim.port)]
        where = (claim.dpid, claim.port)
        if len(here) >= self.settings.max_per_port:
            out = Outcome(accepted=False, counters=["hosts_refused"])
            if where not in self._full_reported:
                self._full_reported.add(where)
                out.events.append(FabricEvent(
                    "host_refused", f"port {claim.dpid}:{claim.port} has "
                    f"{len(here)} hosts (the limit): new MACs there are ignored "
                    f"(first: {claim.mac})",
                    (("at", f"{claim.dpid}:{claim.port}"), ("mac", claim.mac),
                     ("limit", str(self.settings.max_per_port)))))
            return out
        self._full_reported.discard(where)
        self.fabric.hosts[claim.mac] = Host(claim.mac, claim.ip, claim.dpid, claim.port,
                                            now, now)
        return Outcome(changed=True, events=[FabricEvent(
            "host_learned", f"host {claim.mac} ({claim.ip or 'no IPv4'}) at "
            f"{claim.dpid}:{claim.port}",
            (("mac", claim.mac), ("ip", claim.ip or ""), ("dpid", str(claim.dpid)),
             ("port", str(claim.port))))])

    # --- timers -----------------------------------------------------------------------------
    def expire(self, now: float) -> Outcome:
        """Resolve probes whose time is up; probe hosts idle for too long."""
        out = Outcome()
        for mac, v in list(self.pending.items()):
            if now < v.deadline:
                continue
            self._set_pending(mac, None)
            host = self.fabric.hosts.get(mac)
            if host is not None:  # still pending: it did not answer
                del self.fabric.hosts[mac]
                out.changed = True
                where = f"{host.dpid}:{host.port}"
                if v.claim is None:
                    out.counters.append("hosts_aged_out")
                    out.events.append(FabricEvent(
                        "host_aged_out", f"host {mac} ({host.ip or 'no IPv4'}) at {where} "
                        "was idle and did not answer a probe: forgotten",
                        (("mac", mac), ("ip", host.ip or ""), ("at", where))))
                else:
                    out.counters.append("hosts_moved")
                    c = v.claim
                    out.events.append(FabricEvent(
                        "host_moved", f"{host.mac} ({host.ip or 'no IPv4'}) at {where} did not "
                        f"answer a probe: its binding is released to {c.mac} "
                        f"({c.ip or 'no IPv4'}) at {c.dpid}:{c.port}",
                        (("mac", c.mac), ("ip", c.ip or ""), ("at", f"{c.dpid}:{c.port}"),
                         ("old_mac", host.mac), ("old_at", where))))
            if v.claim is not None and (host is None or mac not in self.fabric.hosts):
                out.merge(self._apply_claim(v.claim, now))
        for host in list(self.fabric.hosts.values()):
            if host.static or host.mac in self.pending:
                continue
            if now - host.last_seen < self.settings.idle_timeout:
                continue
            if host.ip is None:  # nothing to probe: idle is gone
                del self.fabric.hosts[host.mac]
                out.changed = True
                out.counters.append("hosts_aged_out")
                out.events.append(FabricEvent(
                    "host_aged_out", f"host {host.mac} (no IPv4) at {host.dpid}:{host.port} "
                    "was idle: forgotten", (("mac", host.mac), ("ip", ""),
                                            ("at", f"{host.dpid}:{host.port}"))))
                continue
            self._set_pending(host.mac, Verification(
                host.mac, now + self.settings.probe_timeout))
            out.probes.append(Probe(host.dpid, host.port, host.mac, host.ip))
        return out

    def _apply_claim(self, claim: Claim, now: float) -> Outcome:
        current = self.fabric.hosts.get(claim.mac)
        if current is not None and (current.dpid, current.port) != (claim.dpid, claim.port):
            return Outcome()  # the claimant itself is bound elsewhere meanwhile
        if claim.ip is not None and self._owner(claim.ip, claim.mac) is not None:
            return Outcome()  # somebody else holds the address now
        if current is not None:
            if claim.ip is not None and current.ip != claim.ip:
                current.ip = claim.ip
                return Outcome(changed=True)
            return Outcome()
        return self._learn(claim, now)

    def forget_port(self, dpid: int, port: int) -> None:
        """A port went down or was deleted: it may be reported as full again."""
        self._full_reported.discard((dpid, port))
