"""A change made while syncs of every switch are paced is synced when its turn comes,
not whenever the next event happens to arrive; TE's changes of a few switches are not
paced."""

from __future__ import annotations

import time

from apps.southbound import Southbound
from controller.core.effects import Effects


class CountingSync:
    """Stands in for SwitchSync: counts the syncs, plans nothing."""

    def __init__(self) -> None:
        self.sessions: dict = {}
        self.syncs = 0
        self.widened = False

    def plans(self, now, only, masters, rest=None, enough=None, hosts=False):
        self.syncs += 1
        self.widened = only is None
        self.left = []
        return []


class SlowSync(CountingSync):
    """Plans switches 1..n (the rest given), each taking ``cost`` seconds."""

    def __init__(self, n: int, cost: float) -> None:
        super().__init__()
        self.n, self.cost = n, cost
        self.planned: list[int] = []

    def plans(self, now, only, masters, rest=None, enough=None, hosts=False):
        self.syncs += 1
        self.widened = only is None and rest is None
        order = list(range(1, self.n + 1)) if rest is None else list(rest)
        self.left = []
        for i, dpid in enumerate(order):
            time.sleep(self.cost)
            self.planned.append(dpid)
            if enough is not None and only is None and enough():
                self.left = order[i + 1:]
                break
        return []


def southbound() -> tuple[Southbound, CountingSync, list, list]:
    """A Southbound whose deferred (``later``) and timed (``at``) work is kept in lists."""
    sync = CountingSync()
    later: list = []
    timed: list = []
    out = Southbound(sync, later.append, lambda when, fn: timed.append((when, fn)),
                     lambda dpid: True, lambda: None, lambda now, whole: None,
                     lambda now: None)
    return out, sync, later, timed


def test_a_change_under_pacing_is_synced_at_its_turn():
    out, sync, later, timed = southbound()
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


def test_a_change_of_a_few_switches_is_not_paced():
    out, sync, later, timed = southbound()
    out._cost = 0.5
    out._paced_until = time.monotonic() + 1.5
    out.apply(Effects(touched={2001}), time.time())
    later.pop()()  # after the queued events: synced, not timed for 1.5 s from now
    assert sync.syncs == 1 and not timed
    out.apply(Effects(changed=True), time.time())  # a change of every switch: paced
    later.pop()()
    assert sync.syncs == 1 and len(timed) == 1


def test_a_sync_of_every_switch_goes_in_slices_and_a_change_meanwhile_waits_for_its_end():
    """Each slice plans for SYNC_SLICE (0.1 s) and lets the queued events in; a change
    of every switch that arrives meanwhile neither restarts it (the last switches would
    never be reached while changes keep coming) nor waits for the next event: it is
    synced once the sync under way is done and its pacing allows."""
    sync = SlowSync(10, 0.03)
    later: list = []
    timed: list = []
    synced: list = []
    out = Southbound(sync, later.append, lambda when, fn: timed.append((when, fn)),
                     lambda dpid: True, lambda: None, lambda now, whole: synced.append(whole),
                     lambda now: None)
    out.apply(Effects(changed=True), time.time())
    later.pop()()  # the first slice
    assert 2 <= len(sync.planned) <= 5 and not synced and len(later) == 1
    out.apply(Effects(changed=True), time.time())  # a change meanwhile: deferred ...
    assert len(later) == 2
    go_on, deferred = later.pop(0), later.pop(0)
    deferred()  # ... and not synced while the sync under way goes on
    assert sync.syncs == 1 and not timed
    go_on()
    while later:
        later.pop(0)()
    assert sync.planned == list(range(1, 11)) and synced == [True]  # each switch once
    (when, fn), = timed  # the change meanwhile, at the pacing's turn
    time.sleep(max(0.0, when - time.monotonic()))
    fn()
    assert sync.planned[10:12] == [1, 2]  # a new sync of every switch began


def test_an_operators_change_is_synced_whole_at_once():
    sync = SlowSync(10, 0.03)
    synced: list = []
    out = Southbound(sync, lambda fn: None, lambda when, fn: None, lambda dpid: True,
                     lambda: None, lambda now, whole: synced.append(whole), lambda now: None)
    out.apply(Effects(changed=True), time.time(), flush=True)
    assert sync.planned == list(range(1, 11)) and synced == [True]
