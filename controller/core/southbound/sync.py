"""The per-switch sync state machine: what the controller knows each switch holds, and
the plan that brings it to what the core wants.

A switch's session goes ``reading`` -> ``ready``. On connect its flow entries, groups
and meters are read back (three multipart replies, in any order); once all three are
complete the session holds a mirror of aifabric's own entries (foreign ones are left
alone, declined-flow entries expire by themselves) and the core recovers what the
entries say (hosts, pins, the layout before a restart). From then on, every plan sent
is applied to the mirror, so the next plan is the difference again. A reply from an
older connection of the same switch is ignored: sessions carry the connection as an
opaque token.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from controller.core import constants as C
from controller.core.southbound.openflow import (
    FlowRule,
    GroupRule,
    MeterRule,
    SwitchMirror,
    SyncPlan,
)

if TYPE_CHECKING:
    from controller.core.fabric_core import FabricCore

READ_PARTS = ("flows", "groups", "meters")


@dataclass
class Session:
    """One OpenFlow session of one switch, as the sync sees it."""

    dpid: int
    conn: object  # the connection (opaque): replies on another one are not this session's
    started: float
    phase: str = "reading"  # reading -> ready
    mirror: SwitchMirror = field(default_factory=SwitchMirror)
    flows: list[FlowRule] = field(default_factory=list)
    groups: list[GroupRule] = field(default_factory=list)
    meters: list[MeterRule] = field(default_factory=list)
    done: set[str] = field(default_factory=set)  # parts of the read-back complete
    read_xid: int | None = None  # the request that reads the switch's entries
    meter_xid: int | None = None  # the request that reads its meters
    # its mirror was last planned to the switch's complete desired state (since then,
    # a sync of only TE's entries may compare only those)
    whole: bool = False
    # the generation of the core's hosts its host entries were planned at (since then,
    # a sync of host entries sends only those of the hosts changed: FabricCore.host_delta)
    host_gen: int = -1

    @property
    def ready(self) -> bool:
        return self.phase == "ready"


@dataclass(frozen=True)
class ReadBack:
    """A switch's complete read-back: aifabric's own entries, and how many others."""

    dpid: int
    flows: list[FlowRule]
    groups: list[GroupRule]
    meters: list[MeterRule]
    foreign: int


class SwitchSync:
    """Sessions of every connected switch, and the plans that bring them in line."""

    def __init__(self, core: FabricCore) -> None:
        self.core = core
        self.sessions: dict[int, Session] = {}
        self.widened = False  # the last plans were of every switch (see plans)
        self.left: list[int] = []  # switches the last plans of every one did not reach

    # --- sessions ---------------------------------------------------------------------------
    def connect(self, dpid: int, conn: object, now: float) -> Session:
        """A new session (replacing any older one of the switch): to be read back."""
        session = self.sessions[dpid] = Session(dpid, conn, now)
        return session

    def disconnect(self, dpid: int, conn: object) -> bool:
        """Forget the switch's session if it is this connection's (False: an older one)."""
        session = self.sessions.get(dpid)
        if session is None or session.conn is not conn:
            return False
        del self.sessions[dpid]
        return True

    def current(self, dpid: int, conn: object) -> Session | None:
        """The switch's session if ``conn`` is its connection."""
        session = self.sessions.get(dpid)
        return session if session is not None and session.conn is conn else None

    def reread(self, dpid: int, conn: object, now: float) -> Session | None:
        """Read a ready switch back again (its state is in doubt), on the same connection."""
        session = self.current(dpid, conn)
        if session is None or not session.ready:
            return None
        return self.connect(dpid, conn, now)

    # --- read-back --------------------------------------------------------------------------
    def read(self, dpid: int, conn: object, part: str, items: list,
             last: bool) -> ReadBack | None:
        """One reply of the read-back (``part``: flows, groups or meters); the complete
        read-back once all three parts are in, else None."""
        session = self.current(dpid, conn)
        if session is None or session.ready or part not in READ_PARTS:
            return None
        getattr(session, part).extend(items)
        if last:
            session.done.add(part)
        if len(session.done) < len(READ_PARTS):
            return None
        # (entries for declined flows expire by themselves: not part of the mirror)
        mine = [r for r in session.flows if C.is_ours(r.cookie)
                and C.cookie_kind(r.cookie) != C.KIND_NOCOPY]
        session.mirror = SwitchMirror({r.key: r for r in mine},
                                      {g.group_id: g for g in session.groups},
                                      {m.meter_id: m for m in session.meters})
        session.phase = "ready"
        return ReadBack(dpid, mine, list(session.groups), list(session.meters),
                        len(session.flows) - len(mine))

    # --- plans ------------------------------------------------------------------------------
    def plan_for(self, session: Session, now: float) -> SyncPlan:
        """What ``session``'s switch must be sent now to hold what the core wants (all of
        it while its state is being read back: nothing of it is known yet), as of the
        core's last :meth:`FabricCore.prepare`."""
        return self._plan(session, now, pins_only=False)[0]

    def _plan(self, session: Session, now: float, pins_only: bool,
              hosts: bool = False) -> tuple[SyncPlan, bool, bool]:
        """:meth:`plan_for`, whether it brings the switch to its complete state, and
        whether to the host entries of the log's last generation. ``pins_only``: only
        TE's entries changed since then (a sync of the leaves TE touched), so only
        those are compared; ``hosts``: hosts changed too, so are the entries of those
        hosts. A getter: the caller applies the plan (and its host generation)."""
        held = session.mirror if session.ready else SwitchMirror()
        keep = self.core.grace.kept_groups(session.dpid, held, now)
        if (pins_only or hosts) and session.whole:
            plan = self._plan_part(session, held, keep, now, pins_only, hosts)
            if plan is not None:
                return plan, True, hosts
        desired, complete = self.core.desired(session.dpid, now)
        return held.plan(desired, additive=not complete, keep_groups=keep), complete, complete

    def _plan_part(self, session: Session, held: SwitchMirror, keep: frozenset[int],
                   now: float, pins_only: bool, hosts: bool) -> SyncPlan | None:
        """The plan of a switch whose mirror was planned whole, comparing only TE's
        entries (``pins_only``) and the entries of the hosts changed since (``hosts``);
        None when it is to be planned whole."""
        plan = SyncPlan()
        if pins_only:
            pins = self.core.pins(session.dpid, now)
            if pins is None:
                return None
            plan = held.plan_part(pins, C.PIN_KINDS, keep)
        if hosts and session.host_gen != self.core.host_log.gen:
            delta = self.core.host_delta(session.dpid, session.host_gen)
            if delta is None:
                return None
            plan.add_flows(held.plan_keys(*delta, keep))
        return plan

    def plans(self, now: float, only: set[int] | None = None,
              writable: Collection[int] | None = None,
              rest: Collection[int] | None = None,
              enough: Callable[[], bool] | None = None,
              hosts: bool = False) -> list[tuple[int, SyncPlan]]:
        """The plan of every ready switch (of ``only``, if given; of ``writable``, if
        given: in a cluster, the switches this instance masters) that differs, spines
        first: a leaf entry lets traffic into the fabric, so the spine entries it relies
        on should be there first. Each plan is taken as sent (applied to its mirror).
        Asked for some switches, it plans every one if preparing the core changed the
        desired state (``widened``). ``rest``: the switches a sync of every one left
        (planned whole, in the same order); ``enough()``: asked after each switch,
        True stops there, and the switches not planned are in :attr:`left`.
        ``hosts``: hosts changed, and every switch is sent their entries (only those,
        where it was planned whole before)."""
        prepared = self.core.prepare(now)
        if prepared.changed:  # (time alone changed more: switches judged, host ports
            only, rest, hosts = None, None, False  # settled; nothing else asks again)
        elif only is not None:
            only = only | prepared.touched  # (flows re-placed after a change)
        hosts = hosts and only is not None  # (else every switch is planned whole)
        self.widened = only is None and rest is None
        out: list[tuple[int, SyncPlan]] = []
        # (spines and super-spines first: the ways through them are ready before the
        # leaves send over them)
        if rest is not None:
            candidates: Collection[int] = rest
        elif only is not None and not hosts:  # (a new flow's leaf, not every switch)
            candidates = only & self.sessions.keys()
        else:
            candidates = self.sessions
        order = sorted(candidates, key=lambda d: (self.core.role(d) in ("leaf", None), d))
        self.left = []
        for i, dpid in enumerate(order):
            session = self.sessions.get(dpid)
            if session is None or not session.ready or (writable is not None
                                                        and dpid not in writable):
                continue
            pins = only is not None and dpid in only  # (else: for hosts, or whole)
            plan, session.whole, hosts_done = self._plan(session, now, pins, hosts)
            if hosts_done:  # (its host entries are those of the log's last generation)
                session.host_gen = self.core.host_log.gen
            if plan:
                session.mirror.apply(plan)
                out.append((dpid, plan))
            if enough is not None and only is None and enough():
                self.left = order[i + 1:]
                # (what they are sent before this sync reaches them is planned whole:
                # their mirrors are of an older fabric, and a host's or a pin's entry
                # of the new one may send to a group they are not sent yet)
                for later in self.left:
                    if later in self.sessions:
                        self.sessions[later].whole = False
                break
        return out
