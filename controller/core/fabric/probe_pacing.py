"""LLDP probes paced to a budget: which ports to probe now.

Probing every port of every switch each ``lldp_interval`` costs one packet-out and one
packet-in per link direction per interval: 32,000 a second on a fabric of a thousand
switches, more than a controller (or the switches' agents) should spend on keeping
links fresh. A link that fails is seen by port status within a second; LLDP is what
finds links and confirms that a cable still goes where it went. So probes go out at
most ``budget`` per second:

- ports that need a probe soon (a switch that connected) are probed first, as far as
  the budget allows now (the whole budget, even while the loop lags: a fabric coming
  up keeps it behind, and discovery waits for them), the rest at the next ticks;
- every other port is probed in turn, round-robin, at most once per interval: on a
  small fabric every port each interval, as without a budget; on a large one a full
  round takes ``ports / budget`` seconds, and links are kept that much longer
  (:meth:`ProbePacer.link_max_age`);
- while the controller's event loop runs behind (:meth:`ProbePacer.adapt`), fewer: a
  probe that waits in the queue comes back stale, and its reply adds to the queue. The
  rate halves while the loop lags more than ``LAG_HIGH`` and grows back by a tenth of
  the budget per interval below ``LAG_LOW``, never below a round every ``MAX_ROUND``
  seconds (measured at 320 switches beside the fleet on two cores: at the full budget
  fabricd took a whole core with 3,300 LLDP packet-ins a second, its loop half a
  second behind, until links expired).

Pure: the caller says what time it is and which ports are up.
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Iterable

Port = tuple[int, int]  # (dpid, port)

LAG_HIGH = 0.1  # s the event loop runs behind: probe at half the rate
LAG_LOW = 0.025  # s: below this, probe faster again
MAX_ROUND = 30.0  # s a round of every port takes at the slowest
MIN_RATE = 50.0  # probes/s at the slowest, however few the ports
MIN_SPACING = 0.05  # s: calls of due closer than this save up this long's worth


class ProbePacer:
    def __init__(self, budget: float, interval: float) -> None:
        """``budget``: probes per second at most (0: no limit); ``interval``: seconds
        between rounds at the most often (a port is probed once an interval at most).
        :meth:`due` may be called more often than that (the fabric app calls it every
        quarter of a second): the probes then go out as the budget refills, a quarter
        of a second's worth at a time, instead of an interval's worth at once."""
        self.budget = budget
        self.interval = interval
        self.rate = budget  # probes per second now: the budget, less while the loop lags
        # seconds between the calls of due (an interval at most): the tokens saved up
        # are that long's worth at most, so that the probes of a round are spread over
        # the calls made during it rather than sent with the first
        self._spacing = interval
        self._last_due: float | None = None
        self._tokens = self._cap
        self._refilled: float | None = None
        self._urgent: collections.OrderedDict[Port, None] = collections.OrderedDict()
        self._round: collections.deque[Port] = collections.deque()
        self._round_size = 0  # ports in the current round
        self._round_started: float | None = None
        self._last_round = interval  # seconds the last full round took
        self._adapted: float | None = None  # when the rate was last changed by adapt
        self._worst_lag = 0.0  # the worst lag adapt was told of since
        self.sent = 0  # probes handed out, in all

    @property
    def _cap(self) -> float:
        return float("inf") if not self.budget else self.rate * self._spacing

    @property
    def round_time(self) -> float:
        """Seconds a full round of the ports takes at the current rate."""
        if not self.budget:
            return self.interval
        return max(self.interval, self._round_size / self.rate)

    def adapt(self, lag: float, now: float) -> None:
        """The caller's event loop runs ``lag`` seconds behind (called each tick, acted
        on once an interval at most, by the worst lag since): halve the rate above
        LAG_HIGH, add a tenth of the budget below LAG_LOW, keep it between (see the
        module docstring). No budget, no adapting."""
        if not self.budget:
            return
        self._worst_lag = max(self._worst_lag, lag)
        if self._adapted is not None and now - self._adapted < self.interval:
            return
        lag, self._worst_lag, self._adapted = self._worst_lag, 0.0, now
        floor = min(self.budget, max(MIN_RATE, self._round_size / MAX_ROUND))
        if lag > LAG_HIGH:
            self.rate = max(floor, self.rate / 2)
        elif lag < LAG_LOW:
            self.rate = min(self.budget, self.rate + self.budget / 10)
        self._tokens = min(self._tokens, self._cap)

    def _refill(self, now: float, full: bool = False) -> None:
        if self._refilled is not None and self.budget and now > self._refilled:
            # (without a budget the tokens are infinite; while ports of switches that
            # just connected wait, or ``full``: at the whole budget whatever the lag:
            # discovery waits for them, and a fabric coming up keeps the loop behind)
            rate = self.budget if self._urgent or full else self.rate
            self._tokens = min(rate * self._spacing,
                               self._tokens + (now - self._refilled) * rate)
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
            probeable: Callable[[Port], bool], full: bool = False) -> list[Port]:
        """The ports to probe at this tick: waiting urgent ones first, then the round
        (``ports()``: every port that is probed, asked for when a round starts;
        ``probeable``: whether a port still is, as the round reaches it; ``full``: at
        the whole budget, whatever the lag, as while links are still being found)."""
        if self._last_due is not None and now > self._last_due:
            self._spacing = min(self.interval, max(MIN_SPACING, now - self._last_due))
        self._last_due = now
        self._refill(now, full)
        out = [p for p in self.soon((), now) if probeable(p)]
        if not self._round and (self._round_started is None
                                or now - self._round_started >= self.interval - 1e-6):
            fresh = ports()
            self._round.extend(fresh)
            self._round_size = len(fresh)
            if self._round_started is not None:
                self._last_round = now - self._round_started
            self._round_started = now
        # at most one round per interval, and no more than the budget
        n = self._take(len(self._round))
        for _ in range(n):
            p = self._round.popleft()
            if probeable(p):
                out.append(p)
        return out

    def link_max_age(self, link_timeout: float) -> float:
        """How long a link may go unconfirmed: ``link_timeout`` when every port is probed
        each interval, stretched by as many intervals as a round takes (at the current
        rate, or as the last round did: the rate may just have grown)."""
        if not self.budget:
            return link_timeout
        slowest = max(self.round_time, self._last_round)
        return link_timeout * max(1.0, slowest / self.interval)
