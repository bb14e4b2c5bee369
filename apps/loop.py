"""An os-ken app whose event loop cannot freeze itself.

os-ken's own loop reads a 128-event queue whose ``put`` blocks while it is full (see
:mod:`apps.intake`). :class:`BoundedLoopApp` keeps os-ken's handler registration and
dispatch (``@set_ev_cls``, dispatcher states) but takes its events from an
:class:`~apps.intake.Intake`: senders never wait, a burst is taken in batches, and work
the app defers to "after the events queued now" (:meth:`BoundedLoopApp.later`) or to a
moment (:meth:`BoundedLoopApp.at`) is plain state on its own thread, never an event
posted to itself; the loop wakes for the next such moment even when no event comes.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from os_ken.base import app_manager
from os_ken.controller import ofp_event
from prometheus_client import Counter

from apps import oskenfix
from apps.guard import record_error
from apps.intake import CONTROL, PUNT, Intake, IntakeLimits

log = logging.getLogger("aifabric.loop")

oskenfix.apply()  # (every app on this base needs os-ken's fixes: a switch leaving seen at
# once, a switch that stops reading never stalls the loop; see apps.oskenfix)

BATCH = 256  # events taken at once (then deferred work due by then runs)
# One piece of work (a handler, deferred or timed work) that holds the loop this long
# delays everything queued behind it: counted by name (``SLOW_WORK``) and logged, at
# most once per SLOW_LOG_EVERY seconds per name, with the worst since the last line.
SLOW = 0.25
SLOW_LOG_EVERY = 10.0
SLOW_WORK = Counter(
    "aifabric_loop_slow_work",
    f"Work that held an app's event loop {SLOW} s or more (a handler, deferred or timed "
    "work), by app and name; _seconds: how long in all",
    ["app", "work"], registry=None,
)
SLOW_WORK_SECONDS = Counter(
    "aifabric_loop_slow_work_seconds",
    f"Seconds spent in work that held an app's event loop {SLOW} s or more",
    ["app", "work"], registry=None,
)
ETH_TYPE_LLDP = b"\x88\xcc"


def is_lldp(frame: bytes) -> bool:
    """True for an untagged LLDP frame (the fabric's own probes coming back)."""
    return frame[12:14] == ETH_TYPE_LLDP


class _AppIntake(Intake):
    def __init__(self, app: BoundedLoopApp, limits: IntakeLimits) -> None:
        super().__init__(limits, app.name)
        self._app = app

    def overflow(self, source: Any) -> None:
        self._app.session_overflow(source)


class BoundedLoopApp(app_manager.OSKenApp):
    """Base of aifabric's os-ken apps (see the module docstring)."""

    INTAKE_LIMITS = IntakeLimits()

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.intake: Intake = _AppIntake(self, self.intake_limits())
        self._later: deque[tuple[int, Callable[[], None]]] = deque()
        # name -> (when its last line was logged, slow ones since, the worst since)
        self._slow: dict[str, tuple[float, int, float]] = {}
        self._done_seq = 0  # the sequence number of the last event handled
        # (monotonic time, order, fn): work due at a moment, earliest first
        self._timed: list[tuple[float, int, Callable[[], None]]] = []
        self._timed_order = itertools.count()

    # --- intake (any thread) -----------------------------------------------------------------
    def intake_limits(self) -> IntakeLimits:
        """How much may wait for this app (read once, at start)."""
        return self.INTAKE_LIMITS

    def intake_lane(self, ev: Any) -> tuple[str, Any]:
        """The lane of an event and whose bound it counts against (see apps.intake)."""
        if isinstance(ev, ofp_event.EventOFPStateChange):
            return CONTROL, None  # (one per connection change: never bounded)
        msg = getattr(ev, "msg", None)
        if msg is not None and isinstance(ev, ofp_event.EventOFPMsgBase):
            if isinstance(ev, ofp_event.EventOFPPacketIn) and not is_lldp(msg.data):
                return PUNT, msg.datapath
            return CONTROL, msg.datapath
        return CONTROL, None

    def _send_event(self, ev: Any, state: Any) -> None:
        # (os-ken's send_event lands here, from whatever thread sends)
        if ev is self._event_stop:
            self.intake.put(ev, None, CONTROL)
            return
        lane, source = self.intake_lane(ev)
        self.intake.put(ev, state, lane, source)

    def submit(self, ev: Any) -> bool:
        """Hand this app an event of ours; False if its lane refused it (see apps.intake)."""
        lane, source = self.intake_lane(ev)
        return self.intake.put(ev, None, lane, source)

    def session_overflow(self, dp: Any) -> None:
        """A switch has more messages waiting here than allowed: end its session (it is
        read back and reconciled when it reconnects)."""
        log.error("%s: switch %s sent more than %d messages the controller has not handled "
                  "yet: its session is ended (reconciled when it reconnects)", self.name,
                  getattr(dp, "id", dp), self.intake.limits.per_switch)
        oskenfix.end_session(dp)

    # --- the app's own thread ----------------------------------------------------------------
    def later(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` on this thread once every event queued by now has been handled."""
        self._later.append((self.intake.last_seq, fn))

    def at(self, when: float, fn: Callable[[], None]) -> None:
        """Run ``fn`` on this thread at monotonic time ``when`` or soon after (after the
        batch of events being handled then), whether or not events arrive meanwhile."""
        heapq.heappush(self._timed, (when, next(self._timed_order), fn))

    def _run_timed(self) -> None:
        now = time.monotonic()
        while self._timed and self._timed[0][0] <= now:
            _, _, fn = heapq.heappop(self._timed)
            self._run(fn, f"{self.name}.at")

    def _run(self, work: Callable, failed: str | None, *args: Any) -> None:
        """``work(*args)``, an exception recorded as ``failed``'s (None: as the work's
        own name), and counted and logged if it held the loop too long (SLOW)."""
        started = time.monotonic()
        try:
            work(*args)
        except Exception:
            record_error(failed or getattr(work, "__qualname__", repr(work)))
        now = time.monotonic()
        took = now - started
        if took < SLOW:
            return
        name = getattr(work, "__qualname__", type(work).__name__)
        SLOW_WORK.labels(self.name, name).inc()
        SLOW_WORK_SECONDS.labels(self.name, name).inc(took)
        logged, count, worst = self._slow.get(name, (0.0, 0, 0.0))
        count, worst = count + 1, max(worst, took)
        if now - logged < SLOW_LOG_EVERY:
            self._slow[name] = (logged, count, worst)
            return
        self._slow[name] = (now, 0, 0.0)
        if logged:
            log.warning("%s: %s held the event loop %.2f s (in the last %.0f s: %d over "
                        "%g s, the longest %.2f s)", self.name, name, took, now - logged,
                        count, SLOW, worst)
        else:
            log.warning("%s: %s held the event loop %.2f s", self.name, name, took)

    def _wait(self) -> float:
        """How long the loop may wait for an event: until the next timed work, 1 s most."""
        if not self._timed:
            return 1.0
        return min(1.0, max(0.0, self._timed[0][0] - time.monotonic()))

    def _run_later(self) -> None:
        while self._later and self._later[0][0] <= self._done_seq:
            _, fn = self._later.popleft()
            self._run(fn, f"{self.name}.later")

    def _event_loop(self) -> None:
        while self.is_active or len(self.intake):
            for item in self.intake.take(BATCH, timeout=self._wait()):
                if item.event is not self._event_stop:
                    for handler in self.get_handlers(item.event, item.state):
                        # (aifabric's handlers are guarded already)
                        self._run(handler, None, item.event)
                self._done_seq = item.seq
                self._run_later()
            self._run_timed()
            self._run_later()  # (what timed work deferred: nothing is queued before it)
