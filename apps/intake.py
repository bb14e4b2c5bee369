"""What other threads hand an app's event loop: bounded, never blocking, in order.

os-ken gives every app a queue of 128 events whose ``put`` blocks while it is full; an
app that posts to itself from its own thread (a deferred sync, the next slice of work)
then waits for the only thread that could make room: it froze for good as soon as 40
switches connected at once. :class:`Intake` replaces that queue. Nothing ever waits to
put: every event gets a lane, and each lane has its own bound.

- ``control``: OpenFlow messages that change what the controller knows (connections,
  port status, replies to its reads, errors, LLDP probes coming back). Never dropped:
  dropping one would leave the controller wrong. A switch with more than
  ``per_switch`` of them waiting is told so (``overflow``): the app ends that session
  (it is reconciled when it reconnects) instead of letting one switch fill the memory.
- ``punt``: other packet-ins (frames from hosts). Dropped, and counted, beyond
  ``punts`` in all or ``punts_per_switch`` from one switch: the host sends its ARP or
  its flow's next packet again, and a flood costs the loop nothing.
- ``tick``: the periodic tick. At most one waits; more are coalesced (counted).
- ``call``: API calls. Refused (``put`` returns False) beyond ``calls``: the caller
  answers "busy" at once instead of hanging a gRPC thread.

Events are taken in arrival order, in batches, each with a sequence number, so that
work an app defers "until after what is queued now" can be kept as plain state (see
:class:`apps.loop.BoundedLoopApp`) rather than as an event posted to itself.
"""

from __future__ import annotations

import threading
from collections import Counter, deque
from dataclasses import dataclass
from typing import Any

from prometheus_client import Counter as PromCounter
from prometheus_client import Gauge

CONTROL, PUNT, TICK, CALL = "control", "punt", "tick", "call"
LANES = (CONTROL, PUNT, TICK, CALL)

INTAKE_DROPPED = PromCounter(
    "aifabric_intake_dropped",
    "Events an app's intake did not take: punted frames over their backlog, API calls "
    "refused while too many wait, ticks coalesced with one already waiting",
    ["app", "lane"], registry=None,
)
INTAKE_QUEUED = Gauge(
    "aifabric_intake_queued", "Events waiting in an app's intake, by lane",
    ["app", "lane"], registry=None,
)
SESSIONS_OVERFLOWED = PromCounter(
    "aifabric_intake_sessions_overflowed",
    "Switch sessions ended because more of their messages waited than the bound",
    ["app"], registry=None,
)


@dataclass(frozen=True)
class IntakeLimits:
    """How much may wait in an intake, by lane (see the module docstring)."""

    punts: int = 4096
    punts_per_switch: int = 512
    per_switch: int = 20_000
    calls: int = 256


@dataclass(frozen=True)
class Item:
    """One event taken from the intake."""

    seq: int
    event: Any
    state: Any
    lane: str
    source: Any


class Intake:
    """A FIFO of events with a bound per lane; ``put`` never blocks."""

    def __init__(self, limits: IntakeLimits = IntakeLimits(), name: str = "app") -> None:
        self.limits = limits
        self.name = name
        self._cond = threading.Condition()
        self._items: deque[Item] = deque()
        self._seq = 0  # the last sequence number given
        self._lanes: Counter[str] = Counter()  # waiting, by lane
        self._sources: Counter[Any] = Counter()  # control messages waiting, by source
        self._punt_sources: Counter[Any] = Counter()  # punts waiting, by source
        self.dropped: Counter[str] = Counter()  # by lane (ticks: coalesced)
        self.overflowed = 0

    # --- any thread ------------------------------------------------------------------------
    def put(self, event: Any, state: Any = None, lane: str = CONTROL,
            source: Any = None) -> bool:
        """Queue ``event``; False if its lane's bound refused it (counted)."""
        overflow = False
        with self._cond:
            if lane == PUNT and (self._lanes[PUNT] >= self.limits.punts
                                 or self._punt_sources[source] >= self.limits.punts_per_switch):
                return self._refuse(lane)
            if lane == TICK and self._lanes[TICK]:
                return self._refuse(lane)
            if lane == CALL and self._lanes[CALL] >= self.limits.calls:
                return self._refuse(lane)
            if lane == CONTROL and source is not None:
                self._sources[source] += 1
                overflow = self._sources[source] == self.limits.per_switch + 1
            elif lane == PUNT:
                self._punt_sources[source] += 1
            self._seq += 1
            self._items.append(Item(self._seq, event, state, lane, source))
            self._lanes[lane] += 1
            self._cond.notify()
        if overflow:
            self.overflowed += 1
            SESSIONS_OVERFLOWED.labels(app=self.name).inc()
            self.overflow(source)
        return True

    def overflow(self, source: Any) -> None:
        """Called (on the putting thread, outside the lock) when ``source`` has more
        control messages waiting than allowed; the app ends its session."""

    def _refuse(self, lane: str) -> bool:
        self.dropped[lane] += 1
        INTAKE_DROPPED.labels(app=self.name, lane=lane).inc()
        return False

    @property
    def last_seq(self) -> int:
        """The sequence number of the newest event queued so far."""
        return self._seq

    def waiting(self) -> dict[str, int]:
        with self._cond:
            return {lane: self._lanes[lane] for lane in LANES}

    def __len__(self) -> int:
        return len(self._items)

    # --- the app's own thread --------------------------------------------------------------
    def take(self, most: int, timeout: float | None = None) -> list[Item]:
        """Up to ``most`` events in arrival order; waits (at most ``timeout`` s) only
        while none is queued."""
        with self._cond:
            if not self._items:
                self._cond.wait(timeout)
            batch = []
            while self._items and len(batch) < most:
                item = self._items.popleft()
                self._lanes[item.lane] -= 1
                if item.lane == CONTROL and item.source is not None:
                    self._release(self._sources, item.source)
                elif item.lane == PUNT:
                    self._release(self._punt_sources, item.source)
                batch.append(item)
            lanes = dict(self._lanes)
        for lane in LANES:
            INTAKE_QUEUED.labels(app=self.name, lane=lane).set(lanes.get(lane, 0))
        return batch

    @staticmethod
    def _release(counts: Counter[Any], source: Any) -> None:
        counts[source] -= 1
        if counts[source] <= 0:
            del counts[source]
