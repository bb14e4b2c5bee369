"""The fabric app's output: what the core asks for, made into OpenFlow messages.

Owns the switches' connections (``dps``), their sync sessions (read-back, mirror,
plans: :class:`controller.core.southbound.sync.SwitchSync`) and the coalescing of
changes: a change marks the switches dirty, and they are synced once every event queued
before it has been handled (or once it is ``SYNC_MAX_DELAY`` old), so a burst of events
(a fabric coming up) costs one recomputation, not one per event. A sync of every switch
that cost a lot is paced (the next waits for three times its cost) so that the loop
keeps up with its other events; TE's changes of a few switches are not. Packet-outs
wait for that sync: a host that gets an ARP answer sends at once, and its packets
should find the new entries in place. Everything here runs on the fabric app's thread.
"""

from __future__ import annotations

import collections
import logging
import time
from collections.abc import Callable
from typing import Any

from os_ken.ofproto import ofproto_v1_3 as ofp
from os_ken.ofproto import ofproto_v1_3_parser as parser

from apps import clock, ofmsg, oskenfix
from controller.core.fabric_core import Effects
from controller.core.southbound.sync import Session, SwitchSync

log = logging.getLogger("aifabric.fabric")

SYNC_MAX_DELAY = 0.05  # seconds a change may wait while other events keep arriving
# A sync of every switch plans for this long, then lets the events queued meanwhile in
# (packet-ins, ticks, barrier replies) and goes on: at 1,000 switches one took seconds,
# and the probes waiting behind it came back stale. An operator's change is synced whole.
SYNC_SLICE = 0.1
# Flow control: what a switch is sent goes in chunks, each closed by a barrier, with at
# most WINDOW chunks unanswered; the rest waits here. A switch works through its session
# in order: an LLDP probe sent behind ten thousand group-mods comes back seconds late, is
# refused as stale, and the links it should have confirmed expire, which changes groups
# and sends more (a large fabric coming up collapsed that way). Probes go at once, behind
# at most WINDOW messages (counted in messages, not chunks: TE's pins go one at a time,
# each closing its own chunk, and must not wait for the loop to see barrier replies).
CHUNK = 64  # messages per barrier at most
WINDOW = 128  # messages sent behind barriers not answered yet
# A switch that does not answer its barriers (a hostile peer, a wedged agent) would make
# the controller keep what it is owed: its session is dropped once a barrier has waited
# too long for an answer (``openflow.barrier_timeout``), or once more than MAX_WAITING
# messages wait for it (a leaf of a 1,000-switch fabric holds ~3,000 entries: this is
# its whole state many times over).
MAX_WAITING = 50_000


class _Outbox:
    """What one switch connection is sent, and the barriers it has not answered."""

    __slots__ = ("dp", "waiting", "unanswered", "in_flight")

    def __init__(self, dp) -> None:
        self.dp = dp
        self.waiting: collections.deque = collections.deque()
        # barriers not answered yet: (xid, messages up to it, monotonic time sent)
        self.unanswered: collections.deque[tuple[int, int, float]] = collections.deque()
        self.in_flight = 0  # messages behind them


class Southbound:
    """See the module docstring.

    ``later(fn)`` runs ``fn`` after the events queued now (the app's loop), ``at(when,
    fn)`` at a monotonic time (a paced sync waits for its turn, not for the next event);
    ``writable(dpid)`` says whether this instance may write to a switch (a cluster's
    other instances master some); ``synced(now, topology)`` is called after a sync
    (``topology``: the whole fabric was recomputed) and ``effects_done(now)`` after
    every change, for the app to publish."""

    def __init__(self, sync: SwitchSync, later: Callable[[Callable[[], None]], None],
                 at: Callable[[float, Callable[[], None]], None],
                 writable: Callable[[int], bool], masters: Callable[[], set[int] | None],
                 synced: Callable[[float, bool], None],
                 effects_done: Callable[[float], None]) -> None:
        self.sync = sync
        self.dps: dict[int, Any] = {}  # dpid -> its current connection (os-ken Datapath)
        self._later, self._at = later, at
        self._writable, self._masters = writable, masters
        self._synced, self._effects_done = synced, effects_done
        self._dirty_since: float | None = None  # a change waits for its sync since then
        self._dirty_all = False  # the change concerns every switch (else: self._touched)
        self._touched: set[int] = set()  # switches whose TE entries changed since
        self._dirty_hosts = False  # hosts changed since (their entries, on every switch)
        self._held_outs: list = []  # packet-outs waiting for the entries they rely on
        self._sync_due = False  # a sync is deferred until the events queued now are handled
        self._cost = 0.0  # seconds the last sync of every switch took
        self._paced_until = 0.0  # (monotonic) no paced sync of every switch before then
        self._rest: list[int] | None = None  # what the sync of every switch under way has
        self._rest_cost = 0.0  # left to plan, and what its slices cost so far (seconds)
        self._go_on_due = False  # its next slice is queued
        self._outboxes: dict[int, _Outbox] = {}  # dpid -> its connection's (flow control)
        self.stats = {"flow_mods": 0, "group_mods": 0, "packet_out": 0,
                      "sessions_stalled": 0}

    def apply(self, eff: Effects, now: float, force_sync: bool = False,
              flush: bool = False) -> None:
        """Send what the core asked for (see the module docstring); ``flush``: sync now."""
        for dpid, rule, timeout in eff.ephemeral:
            session = self.sync.sessions.get(dpid)
            if session is not None and session.ready and self._writable(dpid):
                dp = self.dps[dpid]
                self.send(dp, [ofmsg.flow_add_expiring(dp, rule, timeout)])
                self.stats["flow_mods"] += 1
        if eff.changed or force_sync:
            self._dirty_since = self._dirty_since or now
            self._dirty_all = True
        if eff.touched:
            self._dirty_since = self._dirty_since or now
            self._touched |= eff.touched
        if eff.hosts:
            self._dirty_since = self._dirty_since or now
            self._dirty_hosts = True
        if self._dirty_since is None:
            self.send_packet_outs(eff.packet_outs)
            self._effects_done(now)
            return
        self.send_packet_outs([po for po in eff.packet_outs if not po.held])
        self._held_outs += [po for po in eff.packet_outs if po.held]
        if flush or (now - self._dirty_since >= self._max_delay() and not self._paced()):
            self.flush(now, sliced=not flush)
        elif not self._sync_due:  # after the events already queued: then sync
            self._sync_due = True
            self._later(self._deferred_sync)
        self._effects_done(now)

    def _max_delay(self) -> float:
        """How long a change may wait while other events keep arriving: SYNC_MAX_DELAY,
        or for a change of every switch twice what their last sync cost (a fabric whose
        sync takes a second is synced at most a third of the time: the loop keeps up
        with its other events)."""
        return max(SYNC_MAX_DELAY, 2 * self._cost) if self._dirty_all else SYNC_MAX_DELAY

    def _paced(self) -> bool:
        """Whether the waiting change must wait for its turn: a sync of every switch
        does (``_paced_until``, or the end of the one under way), one of the few
        switches TE touched does not."""
        return self._dirty_all and (self._rest is not None
                                    or time.monotonic() < self._paced_until)

    def _deferred_sync(self) -> None:
        if self._dirty_since is None:  # (synced meanwhile)
            self._sync_due = False
            return
        if self._paced():  # its turn comes at _paced_until
            if self._rest is None:
                self._at(self._paced_until, self._deferred_sync)
            else:  # (the sync under way asks again when it is done)
                self._sync_due = False
            return
        self._sync_due = False
        now = clock.now()
        self.flush(now)
        self._effects_done(now)

    def flush(self, now: float, sliced: bool = True) -> None:
        """Sync the switches the waiting changes concern, then send the held packet-outs
        (a sync of every switch goes in slices, ``sliced``: see SYNC_SLICE)."""
        self._dirty_since = None
        everything = self._dirty_all
        started = time.monotonic()
        self._sync_all(now, None if everything else self._touched, sliced=sliced,
                       hosts=self._dirty_hosts)
        everything = everything or self.sync.widened  # (time alone changed every switch)
        self._dirty_all = self._dirty_hosts = False
        self._touched = set()
        if everything:  # (one under way starts over)
            self._rest, self._rest_cost = None, 0.0
            self._slice_done(now, started)
        elif self._rest is None:  # (else they wait for the sync under way)
            self._send_held()
            self._synced(now, False)

    def _go_on(self) -> None:
        """The next slice of the sync of every switch under way."""
        self._go_on_due = False
        if self._rest is None:
            return
        now, started = clock.now(), time.monotonic()
        self._sync_all(now, None, rest=self._rest)
        self._slice_done(now, started)
        self._effects_done(now)

    def _slice_done(self, now: float, started: float) -> None:
        """A slice of a sync of every switch is done: the next goes after the events
        queued meanwhile, or, with the last, the sync is paced and announced."""
        self._rest_cost += time.monotonic() - started
        if self.sync.left:
            self._rest = self.sync.left
            if not self._go_on_due:  # (one on its way: a sync that started over)
                self._go_on_due = True
                self._later(self._go_on)
            return
        self._rest = None
        self._cost = self._rest_cost
        self._paced_until = time.monotonic() + 2 * self._cost  # (a third of the time)
        self._send_held()
        self._synced(now, True)
        if self._dirty_since is not None and not self._sync_due:  # (changes meanwhile)
            self._sync_due = True
            self._at(self._paced_until, self._deferred_sync)

    def _send_held(self) -> None:
        outs, self._held_outs = self._held_outs, []
        self.send_packet_outs(outs)

    def _sync_all(self, now: float, only: set[int] | None, rest: list[int] | None = None,
                  sliced: bool = True, hosts: bool = False) -> None:
        # (a sync of the switches TE touched places new flows, as often as hosts open
        # them: its line is for debugging only)
        deadline = time.monotonic() + SYNC_SLICE
        plans = self.sync.plans(now, only, self._masters(), rest,
                                (lambda: time.monotonic() > deadline) if sliced else None,
                                hosts)
        level = logging.INFO if self.sync.widened else logging.DEBUG
        for dpid, plan in plans:
            log.log(level, "switch %d: %s", dpid, plan.summary())
            dp = self.dps[dpid]
            self.send(dp, ofmsg.plan_messages(dp, plan))
            self.stats["flow_mods"] += (len(plan.flow_adds) + len(plan.flow_mods)
                                        + len(plan.flow_dels))
            self.stats["group_mods"] += (len(plan.group_adds) + len(plan.group_mods)
                                         + len(plan.group_dels))

    def send_packet_outs(self, outs) -> None:
        """Packet-outs: a held one (it relies on entries just planned) after what the
        switch is sent before it, the others (probes) at once, each switch's in one
        write."""
        now: dict[int, tuple[Any, list[bytes]]] = {}
        for po in outs:
            dp = self.dps.get(po.dpid)
            if dp is None or not self._writable(po.dpid):
                continue
            msg = ofmsg.packet_out_bytes(po.ports, po.data)
            if po.held:
                self.send(dp, [msg])
            else:
                now.setdefault(po.dpid, (dp, []))[1].append(ofmsg.numbered(dp, msg))
            self.stats["packet_out"] += 1
        for dp, msgs in now.values():
            dp.send(b"".join(msgs))

    # --- flow control -------------------------------------------------------------------------
    def send(self, dp, msgs: list) -> None:
        """Send ``msgs`` to a switch in order, within its window (see ``CHUNK``)."""
        box = self._outboxes.get(dp.id)
        if box is None or box.dp is not dp:  # (a new connection starts afresh)
            box = self._outboxes[dp.id] = _Outbox(dp)
        box.waiting.extend(msgs)
        if len(box.waiting) > MAX_WAITING:
            self._drop(box, f"{len(box.waiting)} messages wait behind {box.in_flight} "
                            "unanswered")
            return
        self._pump(box)

    def drop_stalled(self, horizon: float, limit: float) -> None:
        """End the sessions of switches with a barrier sent ``limit`` seconds before
        ``horizon`` (monotonic) still unanswered. ``horizon``: when the tick that calls
        this was posted; every reply that arrived before it has been handled (one queue),
        so a busy loop does not make answered barriers look late."""
        for box in list(self._outboxes.values()):
            if box.unanswered and horizon - box.unanswered[0][2] > limit:
                self._drop(box, f"a barrier unanswered for {horizon - box.unanswered[0][2]:.0f} s")

    def _drop(self, box: _Outbox, why: str) -> None:
        log.error("switch %d: %s; its connection is dropped and it is reconciled when "
                  "it reconnects", box.dp.id, why)
        self.stats["sessions_stalled"] += 1
        del self._outboxes[box.dp.id]
        oskenfix.end_session(box.dp)

    def answered(self, dp, xid: int) -> None:
        """A barrier reply: the chunks up to it are done; send more."""
        box = self._outboxes.get(dp.id)
        if box is None or box.dp is not dp or all(x != xid for x, _, _ in box.unanswered):
            return  # (an old connection's, or a barrier already passed)
        while True:
            done, n, _ = box.unanswered.popleft()
            box.in_flight -= n
            if done == xid:
                break
        self._pump(box)

    def forget(self, dp) -> None:
        """A connection ended: what waited for it is dropped (a switch that comes back
        is read back and reconciled)."""
        box = self._outboxes.get(dp.id)
        if box is not None and box.dp is dp:
            del self._outboxes[dp.id]

    def waiting(self) -> int:
        """Messages waiting for a window, all switches together."""
        return sum(len(b.waiting) for b in self._outboxes.values())

    @staticmethod
    def _pump(box: _Outbox) -> None:
        """Send chunks while the window has room; a chunk ends at a barrier of the
        messages' own (a plan ends with one) or after ``CHUNK`` messages, where one is
        added."""
        dp, waiting = box.dp, box.waiting
        now = time.monotonic()
        while waiting and box.in_flight < WINDOW:
            barrier, sent, chunk = None, 0, bytearray()
            for _ in range(min(CHUNK, len(waiting))):
                msg = waiting.popleft()
                chunk += ofmsg.numbered(dp, msg)
                sent += 1
                if isinstance(msg, parser.OFPBarrierRequest):
                    barrier = msg
                    break
            if barrier is None:
                barrier = parser.OFPBarrierRequest(dp)
                chunk += ofmsg.numbered(dp, barrier)
                sent += 1
            dp.send(bytes(chunk))  # (a chunk in one write: one entry of os-ken's queue)
            box.unanswered.append((barrier.xid, sent, now))
            box.in_flight += sent

    @staticmethod
    def request_state(dp, session: Session) -> None:
        """Read the switch's entries, groups and meters back (its session's read-back)."""
        req = parser.OFPFlowStatsRequest(dp, 0, ofp.OFPTT_ALL, ofp.OFPP_ANY, ofp.OFPG_ANY)
        dp.send_msg(req)  # (numbers the request)
        session.read_xid = req.xid
        dp.send_msg(parser.OFPGroupDescStatsRequest(dp, 0))
        meters = parser.OFPMeterConfigStatsRequest(dp, 0, ofp.OFPM_ALL)
        dp.send_msg(meters)
        session.meter_xid = meters.xid

    def session(self, dp) -> Session | None:
        """The current session of ``dp``'s connection (None: an older connection)."""
        return self.sync.current(dp.id, dp)
