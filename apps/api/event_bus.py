"""Fabric events handed from the fabric app's thread to API watchers on other threads."""

from __future__ import annotations

import threading
from collections import deque

from controller.core.events import FabricEvent, StampedEvent


class EventBus:
    """A bounded, numbered history of events that watchers can block on."""

    def __init__(self, keep: int = 10_000) -> None:
        self._cond = threading.Condition()
        self._events: deque[StampedEvent] = deque(maxlen=keep)
        self._seq = 0

    def publish(self, events: list[FabricEvent], now: float) -> None:
        if not events:
            return
        with self._cond:
            for e in events:
                self._seq += 1
                self._events.append(StampedEvent(self._seq, now, e))
            self._cond.notify_all()

    @property
    def last_seq(self) -> int:
        with self._cond:
            return self._seq

    def wait(self, seq: int, timeout: float) -> list[StampedEvent]:
        """Events after ``seq``, waiting up to ``timeout`` seconds for the first one."""
        with self._cond:
            self._cond.wait_for(lambda: self._seq > seq, timeout)
            return [e for e in self._events if e.seq > seq]
