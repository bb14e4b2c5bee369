"""The controller's clock: monotonic, read in seconds since the epoch.

Every timeout and interval the core measures (link expiry, settling, host ageing, the
restart grace period, rates from counters, TE's intervals) runs on it, so a step of the
system clock (NTP at boot, an operator's ``date -s``) cannot expire every link at once,
hold them forever or make a rate negative. It reads as wall time because it is anchored
to the system clock when the process starts: the times the API shows and the stamps in
LLDP probes (which another instance of a cluster checks against its own clock) need no
conversion. Only a step of the system clock after the start makes it differ from the
wall clock, by that step, until a restart; the audit log (apps/api/auth.py) stamps
lines with the wall clock itself."""

from __future__ import annotations

import time

_ANCHOR = time.time() - time.monotonic()


def now() -> float:
    """Monotonic seconds, anchored to the wall clock at the process's start."""
    return _ANCHOR + time.monotonic()


def at_wall(stamp: float | None, reading: float | None = None) -> float:
    """The clock's reading when the wall clock read ``stamp`` (os-ken stamps its events
    with ``time.time()``): the current ``reading`` (default: now) less the event's age,
    the age kept within [0, 60] s so that a step of the wall clock in between cannot
    date it in the future or hours back (no stamp: the reading itself)."""
    reading = now() if reading is None else reading
    if not stamp:
        return reading
    return reading - min(60.0, max(0.0, time.time() - stamp))
