"""The fabric app's own events: the tick, a rebalancing pass back from the worker, a
call from another thread (the API, the cluster agent)."""

from __future__ import annotations

import threading
import time

from os_ken.controller import event

from apps import clock


class EventTick(event.EventBase):
    """Posted by the ticker thread; handled on the app's own thread."""

    def __init__(self) -> None:
        super().__init__()
        self.posted = time.monotonic()  # for the loop's lag
        self.posted_at = clock.now()  # on the core's clock: the tick's horizon


class EventSwitchAccepted(event.EventBase):
    """The fabric app took a connection as the switch of its dpid (to the QoS app)."""

    def __init__(self, dp) -> None:
        super().__init__()
        self.dp = dp


class EventRebalanced(event.EventBase):
    """A rebalancing pass searched on the worker thread comes back (None: it failed)."""

    def __init__(self, plan) -> None:
        super().__init__()
        self.plan = plan


class EventCall(event.EventBase):
    """Run ``fn(app)`` on the app's own thread, for a caller on another thread (the
    API); the result or the exception is kept for it, and ``done`` set.

    A caller that gives up first cancels it with :meth:`cancel`: then either it never
    runs, or it has already started and the caller waits for its outcome, so that what
    the caller reports is what happened. API calls wait in a bounded lane: beyond it
    the app refuses them (:meth:`FabricApp.submit` returns False) and the caller says
    the controller is busy."""

    def __init__(self, fn, must_run: bool = False) -> None:
        super().__init__()
        self.fn = fn
        self.must_run = must_run  # never refused (the cluster agent's work), else an API call
        self.result = None
        self.error: BaseException | None = None
        self.done = threading.Event()
        self._lock = threading.Lock()
        self._started = False
        self._cancelled = False

    def cancel(self) -> bool:
        """True if it will not run; False if it is running or ran."""
        with self._lock:
            if not self._started:
                self._cancelled = True
            return self._cancelled

    def start(self) -> bool:
        """Called by the app: False if the caller cancelled it."""
        with self._lock:
            if self._cancelled:
                return False
            self._started = True
            return True
