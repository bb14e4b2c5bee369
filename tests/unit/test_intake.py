"""The apps' event intake: nothing ever waits to put, each lane keeps its bound, and
work deferred by the loop runs after what was queued before it."""

from __future__ import annotations

import threading
import time

import pytest
from os_ken.base import app_manager
from os_ken.controller import event

from apps.intake import CALL, CONTROL, PUNT, TICK, Intake, IntakeLimits
from apps.loop import BoundedLoopApp

# (wall-clock windows of a tenth of a second: off the idle lane, scripts/run_tests.py)
pytestmark = pytest.mark.serial


def test_punts_are_dropped_beyond_their_bounds_and_counted():
    intake = Intake(IntakeLimits(punts=10, punts_per_switch=4))
    assert [intake.put(i, lane=PUNT, source="s1") for i in range(6)] == [True] * 4 + [False] * 2
    assert all(intake.put(i, lane=PUNT, source=f"s{i}") for i in range(2, 8))
    assert not intake.put("x", lane=PUNT, source="s9")  # 10 in all
    assert intake.dropped[PUNT] == 3
    # control messages are not punts: still taken while punts are full
    assert intake.put("port status", lane=CONTROL, source="s1")
    taken = intake.take(100)
    assert len(taken) == 11 and taken[-1].event == "port status"
    assert intake.put("again", lane=PUNT, source="s1")  # room once taken


def test_one_tick_waits_at_most():
    intake = Intake()
    assert intake.put("t1", lane=TICK)
    assert not intake.put("t2", lane=TICK)
    assert not intake.put("t3", lane=TICK)
    assert intake.dropped[TICK] == 2
    assert [i.event for i in intake.take(10)] == ["t1"]
    assert intake.put("t4", lane=TICK)


def test_api_calls_are_refused_beyond_their_bound():
    intake = Intake(IntakeLimits(calls=3))
    assert [intake.put(i, lane=CALL) for i in range(5)] == [True] * 3 + [False] * 2
    intake.take(1)
    assert intake.put("next", lane=CALL)


def test_a_switch_over_its_bound_is_reported_once_and_nothing_is_lost():
    overflowed = []

    class Reporting(Intake):
        def overflow(self, source):
            overflowed.append(source)

    intake = Reporting(IntakeLimits(per_switch=5))
    for i in range(12):
        assert intake.put(i, lane=CONTROL, source="s1")
    assert intake.put("other", lane=CONTROL, source="s2")
    assert overflowed == ["s1"]
    assert [i.event for i in intake.take(100)] == [*range(12), "other"]
    # its count starts again once handled
    for i in range(5):
        intake.put(i, lane=CONTROL, source="s1")
    assert overflowed == ["s1"]


def test_events_come_out_in_order_with_increasing_numbers_and_take_waits_only_when_empty():
    intake = Intake()
    for i in range(5):
        intake.put(i, lane=PUNT if i % 2 else CONTROL, source="s")
    batch = intake.take(3)
    assert [i.event for i in batch] == [0, 1, 2]
    assert [i.seq for i in batch] == [1, 2, 3]
    assert [i.event for i in intake.take(10)] == [3, 4]
    t = time.monotonic()
    assert intake.take(10, timeout=0.05) == []
    assert time.monotonic() - t >= 0.04
    threading.Timer(0.05, lambda: intake.put("late")).start()
    assert [i.event for i in intake.take(10, timeout=5)] == ["late"]


def test_put_never_blocks_even_with_nobody_taking():
    intake = Intake(IntakeLimits(punts=16, punts_per_switch=16, per_switch=100))
    t = time.monotonic()
    for i in range(20_000):
        intake.put(i, lane=PUNT, source=i % 7)
        intake.put(i, lane=TICK)
        intake.put(i, lane=CALL)
    assert time.monotonic() - t < 5.0
    assert intake.waiting() == {CONTROL: 0, PUNT: 16, TICK: 1, CALL: 256}


class Ping(event.EventBase):
    def __init__(self, n: int) -> None:
        super().__init__()
        self.n = n


class Done(event.EventBase):
    pass


class SelfPostingApp(BoundedLoopApp):
    """Handles a ping by sending itself more, from its own thread, as a burst would."""

    def __init__(self) -> None:
        super().__init__()
        self.order: list = []
        self.finished = threading.Event()
        self.register_handler(Ping, self.on_ping)
        self.register_handler(Done, lambda ev: self.finished.set())

    def on_ping(self, ev: Ping) -> None:
        self.order.append(ev.n)
        if ev.n == 0:
            for n in range(1, 1000):  # far over os-ken's 128-event queue
                self.send_event(self.name, Ping(n))
            self.later(lambda: self.order.append("after 999"))
            self.send_event(self.name, Done())


def test_an_app_posting_to_itself_a_burst_larger_than_oskens_queue_does_not_freeze(monkeypatch):
    app = SelfPostingApp()
    monkeypatch.setitem(app_manager.SERVICE_BRICKS, app.name, app)  # (send_event finds it)
    thread = threading.Thread(target=app._event_loop, daemon=True)
    thread.start()
    try:
        app._send_event(Ping(0), None)
        assert app.finished.wait(10), f"the loop froze after {len(app.order)} events"
        deadline = time.monotonic() + 5
        while "after 999" not in app.order and time.monotonic() < deadline:
            time.sleep(0.01)
        # the deferred work ran after every event queued before it, not before
        assert app.order == [*range(1000), "after 999"]
    finally:
        app.is_active = False
        app._send_event(app._event_stop, None)
        thread.join(5)
    assert not thread.is_alive()


def test_deferred_work_waits_for_what_was_queued_when_it_was_deferred():
    app = BoundedLoopApp()
    ran: list = []
    app.register_handler(Ping, lambda ev: (ran.append(ev.n), ev.n == 1 and app.later(
        lambda: ran.append("later"))))
    for n in range(1, 4):
        app._send_event(Ping(n), None)
    thread = threading.Thread(target=app._event_loop, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 5
        while len(ran) < 4 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert ran == [1, 2, 3, "later"]
    finally:
        app.is_active = False
        app._send_event(app._event_stop, None)
        thread.join(5)


def test_timed_work_runs_on_time_though_no_event_comes():
    """Work due at a moment (a paced sync's turn) runs then, without waiting for an
    event to wake the loop (with nothing arriving the loop used to wait a whole second,
    and a change made under pacing waited for the next event)."""
    app = BoundedLoopApp()
    ran: list[float] = []
    start = time.monotonic()
    app.register_handler(Ping, lambda ev: app.at(start + 0.2, lambda: ran.append(
        time.monotonic())))
    app._send_event(Ping(1), None)
    thread = threading.Thread(target=app._event_loop, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 5
        while not ran and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(ran) == 1 and 0.2 <= ran[0] - start < 0.6, ran
    finally:
        app.is_active = False
        app._send_event(app._event_stop, None)
        thread.join(5)


def test_work_that_holds_the_loop_is_counted_by_name_and_logged_once_per_interval(caplog,
                                                                                 monkeypatch):
    """A handler or deferred work that holds the loop SLOW seconds or more is counted
    (metric by app and name) and logged, the repeats within SLOW_LOG_EVERY folded into
    the next line; quick work is neither."""
    from apps import loop

    monkeypatch.setattr(loop, "SLOW", 0.05)
    app = BoundedLoopApp()

    def stall(ev):
        if ev.n % 2:
            time.sleep(0.06)

    app.register_handler(Ping, stall)
    name = stall.__qualname__
    before = loop.SLOW_WORK.labels(app.name, name)._value.get()
    for n in range(1, 6):  # three slow (1, 3, 5), two quick
        app._send_event(Ping(n), None)
    app._send_event(app._event_stop, None)
    app.is_active = False
    with caplog.at_level("WARNING", logger="aifabric.loop"):
        app._event_loop()
    assert loop.SLOW_WORK.labels(app.name, name)._value.get() - before == 3
    assert loop.SLOW_WORK_SECONDS.labels(app.name, name)._value.get() >= 0.18
    lines = [r.getMessage() for r in caplog.records if name in r.getMessage()]
    assert len(lines) == 1 and "held the event loop 0.0" in lines[0], lines
