"""A change made while syncs of every switch are paced is synced when its turn comes,
not whenever the next event happens to arrive."""

from __future__ import annotations

import time

from apps.southbound import Southbound
from controller.core.effects import Effects


class CountingSync:
    """Stands in for SwitchSync: counts the syncs, plans nothing."""

    def __init__(self) -> None:
        self.sessions: dict = {}
        self.syncs = 0

    def plans(self, now, only, masters):
        self.syncs += 1
        return []


def test_a_change_under_pacing_is_synced_at_its_turn():
    sync = CountingSync()
    later: list = []
    timed: list = []
    out = Southbound(sync, later.append, lambda when, fn: timed.append((when, fn)),
                     lambda dpid: True, lambda: None, lambda now, whole: None,
                     lambda now: None)
    out._cost = 0.1  # the last sync of every switch took 100 ms: none for 300 ms now
    out._paced_until = time.monotonic() + 0.3
    out.apply(Effects(changed=True), time.time())
    assert sync.syncs == 0 and len(later) == 1  # deferred behind the queued events
    later.pop()()  # ... which are handled: its turn has not come, it is timed for then
    assert sync.syncs == 0 and len(timed) == 1
    when, fn = timed.pop()
    assert abs(when - out._paced_until) < 1e-9
    time.sleep(max(0.0, when - time.monotonic()))
    fn()
    assert sync.syncs == 1 and not timed and not later
    # and the next change is deferred again (nothing is left marked as on its way)
    out._paced_until = 0.0
    out.apply(Effects(changed=True), time.time())
    assert len(later) == 1
    later.pop()()
    assert sync.syncs == 2
