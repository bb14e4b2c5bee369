"""Which hosts changed, view after view: a switch whose host entries were planned as of
an older view is sent only the entries of the hosts that changed since (at 320
switches, one host learned was a plan of every switch's whole state: ~0.2 s)."""

from __future__ import annotations

from collections import deque

from controller.core.fabric.fabric_view import HostLocation

# Changes remembered; a switch planned further back than that is planned whole.
KEPT = 1024


class HostLog:
    """The generations of the fabric's hosts: ``gen`` goes up by one with every view
    whose hosts differ from the view before, and the log says which hosts (MACs) and
    which switches (their leaves, before and after) each step changed."""

    def __init__(self) -> None:
        self.gen = 0
        self._steps: deque[tuple[int, frozenset[str], frozenset[int]]] = deque(maxlen=KEPT)
        self._since: tuple[int, int, tuple[frozenset[str], frozenset[int]] | None] | None = None

    def record(self, old: tuple[HostLocation, ...], new: tuple[HostLocation, ...]) -> None:
        """The hosts of a new view (``new``) after those of the one before (``old``)."""
        if old == new:
            return
        before = {h.mac: h for h in old}
        after = {h.mac: h for h in new}
        macs = frozenset(m for m in before.keys() | after.keys()
                         if before.get(m) != after.get(m))
        if not macs:
            return
        dpids = frozenset({before[m].dpid for m in macs if m in before}
                          | {after[m].dpid for m in macs if m in after})
        self.gen += 1
        self._steps.append((self.gen, macs, dpids))

    def since(self, gen: int) -> tuple[frozenset[str], frozenset[int]] | None:
        """The hosts changed after generation ``gen`` and the leaves they were or are at;
        None when that is further back than the log goes (plan whole)."""
        if gen == self.gen:
            return frozenset(), frozenset()
        if gen > self.gen or gen < 0 or not self._steps or self._steps[0][0] > gen + 1:
            return None
        memo = self._since
        if memo is not None and memo[:2] == (gen, self.gen):
            return memo[2]
        macs: set[str] = set()
        dpids: set[int] = set()
        for g, m, d in reversed(self._steps):
            if g <= gen:
                break
            macs |= m
            dpids |= d
        out = (frozenset(macs), frozenset(dpids))
        self._since = (gen, self.gen, out)  # (every switch planned at gen asks the same)
        return out
