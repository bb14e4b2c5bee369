"""LLDP probes paced to a budget: which ports to probe now.

Probing every port of every switch each ``lldp_interval`` costs one packet-out and one
packet-in per link direction per interval: 32,000 a second on a fabric of a thousand
switches, more than a controller (or the switches' agents) should spend on keeping
links fresh. A link that fails is seen by port status within a second; LLDP is what
finds links and confirms that a cable still goes where it went. So probes go out at
most ``budget`` per second:

- ports that need a probe soon (a switch that connected) are probed first, as far as
  the budget allows now, the rest at the next ticks;
- every other port is probed in turn, round-robin, at most once per interval: on a
  small fabric every port each interval, as without a budget; on a large one a full
  round takes ``ports / budget`` seconds, and links are kept that much longer
  (:meth:`ProbePacer.link_max_age`).

Pure: the caller says what time it is and which ports are up.
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Iterable

Port = tuple[int, int]  # (dpid, port)


class ProbePacer:
    def __init__(self, budget: float, interval: float) -> None:
        """``budget``: probes per second at most (0: no limit); ``interval``: seconds
        between the ticks that call :meth:`due`."""
        self.budget = budget
        self.interval = interval
        self._tokens = self._cap
        self._refilled: float | None = None
        self._urgent: collections.OrderedDict[Port, None] = collections.OrderedDict()
        self._round: collections.deque[Port] = collections.deque()
        self.round_time = interval  # seconds a full round of the ports takes
        self.sent = 0  # probes handed out, in all

    @property
    def _cap(self) -> float:
        return float("inf") if not self.budget else self.budget * self.interval

    def _refill(self, now: float) -> None:
        if self._refilled is not None:  # (without a budget the tokens stay infinite)
            self._tokens = min(self._cap, self._tokens + (now - self._refilled) * self.budget)
        self._refilled = now

    def _take(self, want: int) -> int:
        n = int(min(want, self._tokens))
        self._tokens -= n
        self.sent += n
        return n

    def soon(self, ports: Iterable[Port], now: float) -> list[Port]:
        """Ports that need a probe soon: those the budget allows now, in order (the
        rest wait for the next ticks, ahead of the round)."""
        self._refill(now)
        for p in ports:
            self._urgent[p] = None
        n = self._take(len(self._urgent))
        return [self._urgent.popitem(last=False)[0] for _ in range(n)]

    def due(self, now: float, ports: Callable[[], list[Port]],
            probeable: Callable[[Port], bool]) -> list[Port]:
        """The ports to probe at this tick: waiting urgent ones first, then the round
        (``ports()``: every port that is probed, asked for when a round starts;
        ``probeable``: whether a port still is, as the round reaches it)."""
        self._refill(now)
        out = [p for p in self.soon((), now) if probeable(p)]
        if not self._round:
            fresh = ports()
            self._round.extend(fresh)
            # what a round takes: one interval, or as many as the budget needs
            self.round_time = max(self.interval,
                                  len(fresh) / self.budget if self.budget else 0.0)
        # at most one full round per tick, and no more than the budget
        n = self._take(len(self._round))
        for _ in range(n):
            p = self._round.popleft()
            if probeable(p):
                out.append(p)
        return out

    def link_max_age(self, link_timeout: float) -> float:
        """How long a link may go unconfirmed: ``link_timeout`` when every port is probed
        each interval, stretched by as many intervals as a round takes."""
        return link_timeout * max(1.0, self.round_time / self.interval)
