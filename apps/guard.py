"""Guards for os-ken event handlers: no input may end an app's event thread.

On os-ken's native-thread hub an exception that escapes a handler ends the app's event
loop without a word, and from then on nothing is answered. Every handler of every app
is wrapped in :func:`guarded`: an unexpected exception is logged with its traceback
(rate-limited: a host that triggers one in a loop must not fill the disk), counted per
handler, and the event is dropped. The thread lives on.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from prometheus_client import Counter

log = logging.getLogger("aifabric.guard")

HANDLER_ERRORS = Counter(
    "aifabric_handler_errors",
    "Unexpected exceptions in event handlers (the event was dropped, the thread lives on)",
    ["handler"], registry=None,
)
WATCHDOG_TRIPS = Counter(
    "aifabric_watchdog_trips",
    "Times health turned NOT_SERVING because the fabric app's event loop stalled",
    registry=None,
)
LOG_INTERVAL = 10.0  # seconds between two tracebacks of the same handler

F = TypeVar("F", bound=Callable[..., Any])

_lock = threading.Lock()
_counts: dict[str, int] = {}
_last_logged: dict[str, float] = {}


def handler_errors() -> dict[str, int]:
    """Errors per handler so far (a copy, safe to read from any thread)."""
    with _lock:
        return dict(_counts)


def record_error(name: str) -> None:
    """Count and (rate-limited) log the exception being handled, for handler ``name``."""
    now = time.monotonic()
    with _lock:
        _counts[name] = _counts.get(name, 0) + 1
        count = _counts[name]
        quiet = now - _last_logged.get(name, -LOG_INTERVAL) < LOG_INTERVAL
        if not quiet:
            _last_logged[name] = now
    HANDLER_ERRORS.labels(handler=name).inc()
    if not quiet:
        log.exception("handler %s failed (%d so far); the event is dropped, the app goes on"
                      " (the next tracebacks of it are held back for %g s)",
                      name, count, LOG_INTERVAL)


def guarded(fn: F) -> F:
    """Wrap an os-ken handler (or any callable run on an app's thread)."""
    name = fn.__qualname__

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except Exception:
            record_error(name)
            return None

    return wrapper  # type: ignore[return-value]


class Heartbeat:
    """When an event loop last did its periodic work, for a watchdog on another thread."""

    def __init__(self, clock=time.monotonic) -> None:
        self._clock = clock
        self.last = clock()

    def beat(self) -> None:
        self.last = self._clock()

    def stalled(self, limit: float, what: str = "the fabric app") -> str | None:
        """Why the loop looks stuck (nothing for ``limit`` seconds), or None."""
        idle = self._clock() - self.last
        if idle <= limit:
            return None
        return (f"{what} has processed no tick for {idle:.1f} s (limit {limit:g} s): its "
                "event loop is stalled or its thread has died")


class StallExit:
    """Ends the process when an event loop has been stalled for ``limit`` seconds: a
    controller that serves a frozen view is worse than one that is gone (a service
    manager restarts it, a standby instance takes its switches)."""

    def __init__(self, heartbeat: Callable[[], Heartbeat | None], limit: float,
                 exit_fn: Callable[[str], None], poll: float = 0.5) -> None:
        self.heartbeat, self.limit, self.exit_fn, self.poll = heartbeat, limit, exit_fn, poll

    def check(self) -> str | None:
        """Why the process must end now, or None."""
        beat = self.heartbeat()
        return None if beat is None else beat.stalled(self.limit)

    def run(self, stop: threading.Event | None = None) -> None:
        """Check every ``poll`` seconds (on a thread of its own) until ``stop`` is set."""
        while stop is None or not stop.is_set():
            try:
                why = self.check()
            except Exception:  # the watchdog itself must not die
                log.exception("watchdog: cannot read the heartbeat")
                why = None
            if why is not None:
                self.exit_fn(why)
                return
            time.sleep(self.poll)
