"""Log lines a host can cause, bounded: at most one per key per interval.

A host that sends a malformed or forged frame in a loop must not fill the disk or
spend the controller's time formatting lines: the first line of a kind is logged, the
repeats within the interval are counted and their number given with the next line.
"""

from __future__ import annotations

import logging


class RateLimitedLog:
    def __init__(self, logger: logging.Logger, interval: float = 10.0,
                 max_keys: int = 1024) -> None:
        self.logger, self.interval, self.max_keys = logger, interval, max_keys
        self._last: dict[str, float] = {}
        self._held: dict[str, int] = {}
        self._full_until = float("-inf")  # full of keys too recent to drop until then

    def log(self, level: int, key: str, now: float, msg: str, *args: object) -> bool:
        """Log ``msg`` unless a line of ``key`` went out less than ``interval`` ago;
        True when it was logged."""
        last = self._last.get(key)
        if last is not None and now - last < self.interval:
            self._held[key] = self._held.get(key, 0) + 1
            return False
        if last is None and len(self._last) >= self.max_keys:
            # too many distinct keys at once: the counters say enough. (The keys are
            # looked through again only once the oldest can go: a burst of thousands
            # of new keys must not cost a pass over all of them each.)
            if now < self._full_until:
                return False
            self._last = {k: t for k, t in self._last.items() if now - t < self.interval}
            if len(self._last) >= self.max_keys:
                self._full_until = min(self._last.values()) + self.interval
                return False
        self._last[key] = now
        held = self._held.pop(key, 0)
        if held:
            msg += f" ({held} more like it in the last {self.interval:g} s not logged)"
        self.logger.log(level, msg, *args)
        return True
