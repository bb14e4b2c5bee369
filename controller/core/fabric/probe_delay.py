"""How late LLDP probes come back, lately, and what discovery stretches by it.

A probe is stamped when it is sent and judged when its packet-in arrives. On a quiet
fabric it comes back within milliseconds; while switches work through bursts of
flow-mods (a large fabric coming up, every session reopening at once) it may come back
seconds later. What assumes a prompt return then goes wrong: a switch was judged (given
a role, then its groups and routes) a settle time after its ports were probed, with most
of its links still on their way, and was re-programmed as each arrived; probes older
than the link timeout were rejected as stale, and their links expired. Both now stretch
with the delay seen (:class:`ProbeDelay`): the age a probe is accepted at up to the
bound a replayed probe is held to, and how long a link waits for its next probe.
"""

from __future__ import annotations

# the longest delay counts for this long (seconds): one burst's lag outlives the burst
WINDOW = 30
# a switch is judged this many times the recent delay after its ports were probed, at
# least (its probes, and those of its neighbours towards it, have come back by then)
SETTLE_STRETCH = 1.5
# a probe is accepted this many times the recent delay old, at least
AGE_STRETCH = 2.0


class ProbeDelay:
    """The longest delay (probe sent -> its frame arrived) of genuine probes over the
    last ``WINDOW`` seconds, in one-second slots."""

    def __init__(self) -> None:
        self._slots: dict[int, float] = {}
        self._memo: tuple[int, float] = (-1, 0.0)

    def seen(self, age: float, now: float) -> None:
        """A probe came back ``age`` seconds after it was sent (a step)."""
        slot = int(now)
        if slot not in self._slots:
            for old in [s for s in self._slots if s <= slot - WINDOW]:
                del self._slots[old]
        if age > self._slots.get(slot, 0.0):
            self._slots[slot] = age
            self._memo = (-1, 0.0)

    def recent(self, now: float) -> float:
        """The longest delay seen in the last ``WINDOW`` seconds (0 if none)."""
        slot = int(now)
        if self._memo[0] != slot:
            self._memo = (slot, max((a for s, a in self._slots.items()
                                     if slot - WINDOW < s <= slot), default=0.0))
        return self._memo[1]

    def settle_time(self, base: float, now: float) -> float:
        """How long after its ports were probed a switch's links are taken as found."""
        return max(base, SETTLE_STRETCH * self.recent(now))

    def max_age(self, base: float, bound: float, now: float) -> float:
        """How old a probe may be and still confirm its link: ``base``, stretched by the
        recent delay, never beyond ``bound`` (a replayed probe is good for no longer)."""
        return min(bound, max(base, AGE_STRETCH * self.recent(now)))
