"""Discovery: switches, ports and the links between them, found with signed LLDP probes.

A component of :class:`~controller.core.fabric_core.FabricCore`. It owns the probes (out
of every up port that has no learned host behind it), the checks an LLDP frame must
pass before it makes a link (signature and age, both ends ours and up, no host behind
either end, not a loop back to its own switch, not a flapping port held down), link
expiry, and flap dampening. What changes the topology is reported through the core's
``changed`` sink, which invalidates the views derived from it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

from controller.core.effects import Effects, PacketOut
from controller.core.fabric.dampening import FlapDamper
from controller.core.fabric.frames import FrameError, build_lldp, parse_lldp
from controller.core.fabric.hosts import HostGuard
from controller.core.fabric.probe_delay import AGE_STRETCH, ProbeDelay
from controller.core.fabric.probe_pacing import ProbePacer
from controller.core.fabric.ratelog import RateLimitedLog
from controller.core.model.fabric_model import Fabric, Link, LinkEnd, Port

log = logging.getLogger("aifabric.core")
# a probe is accepted while the link it confirms would live (link_timeout), but never
# older than this: a replayed probe is good for no longer
MAX_PROBE_AGE = 10.0

# a switch whose neighbours have not all found their links yet is settled anyway after
# this many settle times (one whose session flaps from the start holds nobody back)
HOLD_SETTLES = 5
# A switch disconnected this long without a link is forgotten (its state and metric
# series): anyone who reaches the OpenFlow port could otherwise grow the switch table
# without bound, one made-up dpid at a time. A switch with links is kept (it is part of
# the fabric: its links stay frozen until it is back).
FORGET_UNLINKED_AFTER = 60.0


class Discovery:
    def __init__(self, fabric: Fabric, secret: bytes, damper: FlapDamper,
                 host_guard: HostGuard, *, lldp_interval: float, link_timeout: float,
                 settle_time: float, probe_budget: float, count: Callable[[str], None],
                 event: Callable[..., None], changed: Callable[[str | None], Effects],
                 rlog: RateLimitedLog) -> None:
        self.fabric = fabric
        self.secret = secret
        self.damper = damper
        self.host_guard = host_guard
        self.lldp_interval = lldp_interval
        self.link_timeout = link_timeout
        self.settle_time = settle_time
        self.pacer = ProbePacer(probe_budget, lldp_interval)
        self.delay = ProbeDelay()  # how late probes come back: settling and ages stretch
        # a connected switch's ports not probed yet, and when the last of them was: it
        # is settled ``settle_time`` after that (within a probe budget, a switch of a
        # large fabric that connects with many others waits its turn to be probed)
        self._unprobed: dict[int, set[int]] = {}
        self._probed_at: dict[int, float] = {}
        self._session: dict[int, float] = {}  # the session (its start) they are of
        # switches whose own links were found at least once since the start (their
        # ports probed and the settle time passed): only these are given a role
        self.judged: set[int] = set()
        self._all_probed_at = 0.0  # when no switch had ports waiting for a probe, last
        self._settled: dict[int, float] = {}  # dpid -> the session it settled in
        self._lost_at: dict[int, float] = {}  # dpid -> when a link of it was last removed
        self._count = count
        self._event = event
        self._changed = changed
        self._rlog = rlog

    # --- probes ---------------------------------------------------------------------------------
    def probes(self, dpid: int, ports: list[int], now: float) -> list[PacketOut]:
        """LLDP probes out of ``ports`` of one switch, never out of a port with a learned
        host (a host gets no genuine probe to replay)."""
        hosted = self._hosted_ports(dpid)
        return self._packet_outs([(dpid, p) for p in ports if p not in hosted], now)

    def probe(self, dpid: int, now: float) -> Effects:
        """Probes out of every up port of one switch (a switch that just connected):
        as many as the probe budget allows now, the rest at the next ticks."""
        sw = self.fabric.switches.get(dpid)
        if sw is None or not sw.connected:
            return Effects()
        hosted = self._hosted_ports(dpid)
        ports = [p for p in sw.up_ports() if p not in hosted]
        if self._session.get(dpid) != sw.connected_since:  # (a new session: wait again)
            self._session[dpid] = sw.connected_since
            if ports:
                self._unprobed[dpid] = set(ports)
                self._probed_at.pop(dpid, None)
            else:  # (nothing to wait for)
                self._unprobed.pop(dpid, None)
                self._probed_at[dpid] = now
        ends = self.pacer.soon([(dpid, p) for p in ports], now)
        # (sent after the sync this connection causes: switches that connected with it
        # then hold their LLDP entry, and answer)
        return Effects(packet_outs=self._packet_outs(ends, now))

    def probe_all(self, now: float, lag: float = 0.0) -> Effects:
        """The probes of this tick (each interval): ports waiting for a probe, then
        every up port of every connected switch in turn, within the probe budget
        (:class:`ProbePacer`), fewer while the caller's loop runs ``lag`` seconds
        behind."""
        self.pacer.adapt(lag, now)
        fab = self.fabric
        hosted = {(h.dpid, h.port) for h in fab.hosts.values()}

        def ports() -> list[tuple[int, int]]:
            return [(sw.dpid, p) for sw in fab.switches.values() if sw.connected
                    for p in sw.up_ports() if (sw.dpid, p) not in hosted]

        def probeable(end: tuple[int, int]) -> bool:
            if fab.port_is_up(*end) and fab.is_connected(end[0]) and end not in hosted:
                return True
            self._probed([end], now)  # (it will not be: it does not hold its switch back)
            return False

        # (while switches' links are still being found, at the whole budget)
        finding = not self.judged.issuperset(
            d for d, sw in fab.switches.items() if sw.connected)
        return Effects(packet_outs=self._packet_outs(
            self.pacer.due(now, ports, probeable, full=finding), now))

    def _packet_outs(self, ends: list[tuple[int, int]], now: float) -> list[PacketOut]:
        self._probed(ends, now)
        return [PacketOut(d, (p,), build_lldp(d, p, self.secret, now), held=False)
                for d, p in ends]

    def _probed(self, ends: Iterable[tuple[int, int]], now: float) -> None:
        """These ports were probed (or will not be): a switch whose last port it was
        settles from ``now``."""
        for d, p in ends:
            waiting = self._unprobed.get(d)
            if waiting is not None:
                waiting.discard(p)
                if not waiting:
                    del self._unprobed[d]
                    self._probed_at[d] = now
                    if not self._unprobed:
                        self._all_probed_at = now

    def _hosted_ports(self, dpid: int) -> set[int]:
        return {h.port for h in self.fabric.hosts.values() if h.dpid == dpid}

    # --- switches and ports ---------------------------------------------------------------------
    def switch_connected(self, dpid: int, ports: list[Port], now: float) -> Effects:
        self.fabric.switch_up(dpid, ports, now)
        log.info("switch %d connected with %d ports", dpid, len(ports))
        self._event("switch_up", f"switch {dpid} connected with {len(ports)} ports", dpid=dpid)
        return self._changed(f"switch {dpid} connected")

    def switch_disconnected(self, dpid: int) -> Effects:
        if not self.fabric.is_connected(dpid):
            return Effects()
        self.fabric.switch_down(dpid)
        log.warning("switch %d disconnected; its links are avoided where possible", dpid)
        self._event("switch_down", f"switch {dpid} disconnected", dpid=dpid)
        return self._changed(f"switch {dpid} down")

    def port_status(self, dpid: int, port: Port, deleted: bool, now: float) -> Effects:
        """A port came up, went down or was deleted: its links go with it; a port that
        goes down too often is held down (dampened); one that comes up is probed."""
        if not self.fabric.is_connected(dpid):
            return Effects()
        if deleted:
            gone = self.fabric.port_deleted(dpid, port.port_no)
        else:
            gone = self.fabric.port_update(dpid, port, now)
        end = LinkEnd(dpid, port.port_no)
        if deleted or not port.up:
            self.fabric.expected.discard(end)
            self.host_guard.forget_port(dpid, port.port_no)
            self._probed([(dpid, port.port_no)], now)  # (nothing to wait for there)
            # both ends of the cable earn the penalty (the far end's own down event may
            # come later or, when its switch is not ours, never)
            ends = {e for lk in gone for e in (lk.src, lk.dst)}
            if self.damper.knows(end):
                ends.add(end)
            for e in sorted(ends):
                if self.damper.flap(e, now):
                    self._hold(e, now)
        why = f"port {dpid}:{port.port_no} {'deleted' if deleted else 'down'}"
        self._log_gone(gone, why, now)
        eff = self._changed(why if gone else None)
        if port.up and not deleted and end not in self.fabric.held:
            eff.packet_outs += self.probes(dpid, [port.port_no], now)
        return eff

    def is_settled(self, dpid: int, now: float) -> bool:
        """A switch is settled once discovery had time to find its links and those of
        the switches at their other ends: the wiring around it is known, so its role and
        groups are decided once, not link by link while a fabric comes up (a neighbour
        that never gets there holds it back for ``HOLD_SETTLES`` settle times at most).
        It stays settled for the rest of its session (a memo: a spine that joins later
        does not unsettle the leaves it is cabled to)."""
        sw = self.fabric.switches.get(dpid)
        if sw is None or not sw.connected:
            return False
        if self._settled.get(dpid) == sw.connected_since:
            return True
        # (judged by the step first: a settled switch has a role in any view made since)
        if dpid not in self.judged or not self._own_links_found(dpid, now):
            return False
        if (now - self._probed_at[dpid] < HOLD_SETTLES * self._settle(now)
                and not self.judged.issuperset(self.fabric.peers(dpid))):
            return False
        self._settled[dpid] = sw.connected_since
        return True

    def _own_links_found(self, dpid: int, now: float) -> bool:
        """Every port of the switch probed in its current session the settle time ago,
        every link of it kept from before that session confirmed again (or removed), and
        none removed for the settle time; or ``HOLD_SETTLES`` settle times after the
        probes. (A probe sent before its peer could answer is lost: after switches
        reconnect together, as when Open vSwitch restarts, links kept from their previous
        sessions are confirmed, or expire and are found again, only at the next round.)"""
        sw = self.fabric.switches.get(dpid)
        if sw is None or not sw.connected:
            return False
        probed = self._probed_at.get(dpid)
        if probed is None or self._session.get(dpid) != sw.connected_since:
            return False
        settle = self._settle(now)
        if now - probed < settle:
            return False
        if now - probed >= HOLD_SETTLES * settle:
            return True
        # A probe sent before the switch at the other end connected found nothing, and
        # the port looks like a host's until that switch probes back: while switches
        # that connected since wait for their first probes (the budget spreads them over
        # seconds on a large fabric), and a settle time after, nothing is judged (a spine
        # with half its ports unlinked was taken for a leaf, and leaves for spines).
        if self._unprobed or now - self._all_probed_at < settle:
            return False
        connected = self.fabric.is_connected
        return (now - self._lost_at.get(dpid, probed) >= settle
                and all(lk.last_seen >= sw.connected_since  # (or frozen: its peer is away)
                        or not (connected(lk.src.dpid) and connected(lk.dst.dpid))
                        for lk in self.fabric.links_at(dpid)))

    def _settle(self, now: float) -> float:
        """The settle time, stretched while probes come back late (:mod:`probe_delay`)."""
        return self.delay.settle_time(self.settle_time, now)

    def judge(self, now: float) -> bool:
        """A step: switches whose own links have been found (for the first time) join
        ``judged``. True when some did (roles are then derived again)."""
        if self.judged.issuperset(self.fabric.switches):  # (once the fabric is up)
            return False
        new = {d for d in self.fabric.switches
               if d not in self.judged and self._own_links_found(d, now)}
        self.judged |= new
        return bool(new)

    # --- time -----------------------------------------------------------------------------------
    def expire(self, now: float, horizon: float) -> Effects:
        """Release ports that have been stable (probing them again) and remove links
        not confirmed by a probe that arrived before ``horizon``."""
        eff = Effects()
        for end in self.damper.release(now):
            self.fabric.held.discard(end)
            log.info("port %d:%d has been stable: its link may come back", end.dpid, end.port)
            self._event("link_undampened", f"port {end.dpid}:{end.port} has been stable: "
                        "its link may come back", at=f"{end.dpid}:{end.port}")
            if self.fabric.port_is_up(end.dpid, end.port):
                eff.packet_outs += self.probes(end.dpid, [end.port], now)
            eff.merge(self._changed(None))  # (it may be an edge port again, or a link soon)
        # (a link waits for its probes as long as probes lately took to come back)
        max_age = max(self.pacer.link_max_age(self.link_timeout),
                      AGE_STRETCH * self.delay.recent(now))
        gone = self.fabric.expire_links(horizon, max_age)
        if gone:
            self._log_gone(gone, "LLDP timeout", now)
            eff.merge(self._changed("LLDP timeout"))
        if self._forget_departed(now):
            eff.merge(self._changed("switches forgotten"))
        return eff

    def _forget_departed(self, now: float) -> bool:
        """Forget switches disconnected for FORGET_UNLINKED_AFTER without a link."""
        forgotten = []
        for dpid, sw in list(self.fabric.switches.items()):
            if sw.connected:
                continue
            if sw.down_since is None:
                sw.down_since = now
            elif (now - sw.down_since >= FORGET_UNLINKED_AFTER
                  and not self.fabric.link_ports(dpid)):
                self.fabric.forget_switch(dpid)
                for d in (self._unprobed, self._probed_at, self._session, self._settled,
                          self._lost_at):
                    d.pop(dpid, None)
                self.judged.discard(dpid)
                forgotten.append(dpid)
        if forgotten:
            log.info("forgot %d switch(es) disconnected for %g s without a link: %s",
                     len(forgotten), FORGET_UNLINKED_AFTER,
                     ", ".join(map(str, forgotten[:10])))
        return bool(forgotten)

    def _hold(self, end: LinkEnd, now: float) -> None:
        self.fabric.held.add(end)
        self._count("links_dampened")
        self._rlog.log(logging.WARNING, f"dampened:{end.dpid}:{end.port}", now,
                       "port %d:%d flaps: its link is held down until it is stable",
                       end.dpid, end.port)
        self._event("link_dampened", f"port {end.dpid}:{end.port} flaps: its link is held "
                    "down until it has been stable for a while", at=f"{end.dpid}:{end.port}")

    def _log_gone(self, gone: list[Link], why: str, now: float) -> None:
        for lk in gone:
            self._lost_at[lk.src.dpid] = self._lost_at[lk.dst.dpid] = now
            log.warning(
                "link %d:%d -> %d:%d removed (%s)",
                lk.src.dpid, lk.src.port, lk.dst.dpid, lk.dst.port, why,
            )
            self._event("link_down", f"link {lk.src.dpid}:{lk.src.port} -> "
                        f"{lk.dst.dpid}:{lk.dst.port} removed ({why})",
                        src=f"{lk.src.dpid}:{lk.src.port}", dst=f"{lk.dst.dpid}:{lk.dst.port}",
                        reason=why)

    # --- LLDP -------------------------------------------------------------------------------------
    def lldp_in(self, dpid: int, in_port: int, payload: bytes, now: float) -> Effects:
        """An LLDP frame arrived: a link, if it passes every check."""
        try:  # (how old it may be is judged below, once it is known to be of a link)
            probe = parse_lldp(payload, self.secret, now, max_age=MAX_PROBE_AGE)
        except FrameError as exc:
            self._count("rejected_lldp")
            self._rlog.log(logging.WARNING, f"lldp:{dpid}:{in_port}", now,
                           "rejected LLDP frame on %d:%d: %s", dpid, in_port, exc)
            return Effects()
        src, dst = LinkEnd(probe.dpid, probe.port), LinkEnd(dpid, in_port)
        if src in self.fabric.held or dst in self.fabric.held:
            self._count("lldp_dampened")  # a flapping link stays down until it is stable
            return Effects()
        if not self.fabric.is_connected(src.dpid):
            self._count("rejected_lldp")
            return Effects()
        if src.dpid == dst.dpid:
            self._count("rejected_lldp")
            self._rlog.log(logging.WARNING, f"lldp:{dpid}:{in_port}", now,
                           "rejected LLDP on %d:%d: loops back to its own switch", dpid, in_port)
            return Effects()
        if not self.fabric.port_is_up(src.dpid, src.port) or not self.fabric.port_is_up(
            dst.dpid, dst.port
        ):
            self._count("rejected_lldp")
            return Effects()
        for end in (src, dst):
            if end.port in self._hosted_ports(end.dpid):
                self._count("rejected_lldp")
                self._count("rejected_lldp_host_port")
                self._rlog.log(logging.WARNING, f"lldp:{dpid}:{in_port}", now,
                               "rejected LLDP %d:%d -> %d:%d: port %d:%d has a host behind it",
                               src.dpid, src.port, dst.dpid, dst.port, end.dpid, end.port,
                )
                return Effects()
        age = now - probe.sent_at  # (stamped ahead of the clock: as old as it is ahead)
        if abs(age) > self.delay.max_age(max(self.link_timeout, 2 * self.lldp_interval),
                                    MAX_PROBE_AGE, now):
            self._count("rejected_lldp")
            self._rlog.log(logging.WARNING, f"lldp:{dpid}:{in_port}", now,
                           "rejected LLDP frame on %d:%d: LLDP probe is stale (%.1f s old)",
                           dpid, in_port, abs(age))
            return Effects()
        self.delay.seen(max(0.0, age), now)  # (of accepted probes: the age allowed grows by steps)
        self.fabric.expected.discard(src)
        self.fabric.expected.discard(dst)
        is_new, displaced = self.fabric.link_seen(src, dst, now, probe.sent_at)
        if not is_new:
            return Effects()
        self._log_gone(displaced, "re-cabled", now)
        # (a line per switch per interval: 31,000 links come up with a 1,000-switch
        # fabric, and their lines took an eighth of the loop; the events have each)
        self._rlog.log(logging.INFO, f"link_up:{src.dpid}", now, "link %d:%d -> %d:%d "
                       "discovered", src.dpid, src.port, dst.dpid, dst.port)
        self._event("link_up", f"link {src.dpid}:{src.port} -> {dst.dpid}:{dst.port} "
                    "discovered", src=f"{src.dpid}:{src.port}", dst=f"{dst.dpid}:{dst.port}")
        eff = self._changed(f"link {src.dpid}:{src.port} -> {dst.dpid}:{dst.port} up")
        if LinkEnd(dst.dpid, dst.port) not in self.fabric.links:
            # answer at once so that the reverse direction is found without waiting a tick
            eff.packet_outs += self.probes(dst.dpid, [dst.port], now)
        return eff
