"""Periodic work as a table: each job has a name and an interval; ``due(now)`` says which
jobs to run now. The app owns the clock and the work; this only keeps the times."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Job:
    name: str
    interval: float  # seconds between runs (0: every tick)


class Schedule:
    """When each job last ran, and which are due. A job first runs at the first tick."""

    def __init__(self, jobs: Iterable[Job]) -> None:
        self.jobs = {j.name: j for j in jobs}
        self._last: dict[str, float | None] = dict.fromkeys(self.jobs)

    def due(self, now: float) -> list[str]:
        """Jobs to run at ``now``, in table order; each is taken as run now."""
        out = []
        for name, job in self.jobs.items():
            last = self._last[name]
            if last is None or now - last >= job.interval:
                self._last[name] = now
                out.append(name)
        return out

    def last(self, name: str) -> float | None:
        return self._last[name]
