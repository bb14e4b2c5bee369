"""Periodic work as a table: each timer has a name and an interval; ``due(now)`` says
which timers fire now. The app owns the clock and the work; this only keeps the times."""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Timer:
    name: str
    interval: float  # seconds between runs (0: every tick)


Job = Timer  # the former name (apps/fabric_app.py): not a training job (jobs.JobSpec)


class Schedule:
    """When each timer last fired, and which are due. A timer first fires at the first
    tick."""

    def __init__(self, timers: Iterable[Timer]) -> None:
        self.timers = {t.name: t for t in timers}
        self._last: dict[str, float | None] = dict.fromkeys(self.timers)

    def due(self, now: float, stretch: float = 1.0,
            stretched: Collection[str] = ()) -> list[str]:
        """Timers that fire at ``now``, in table order; each is taken as fired now. The
        intervals of the ``stretched`` timers are ``stretch`` times longer."""
        out = []
        for name, timer in self.timers.items():
            last = self._last[name]
            interval = timer.interval * (stretch if name in stretched else 1.0)
            if last is None or now - last >= interval:
                self._last[name] = now
                out.append(name)
        return out

    def last(self, name: str) -> float | None:
        return self._last[name]
