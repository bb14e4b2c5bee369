"""Handler guards, the heartbeat the watchdog reads, and rate-limited log lines."""

import logging

from apps.guard import Heartbeat, guarded, handler_errors
from controller.core.fabric.ratelog import RateLimitedLog


def test_a_guarded_handler_survives_its_exception_and_counts_it(caplog):
    calls = []

    class App:
        @guarded
        def on_event(self, ev):
            calls.append(ev)
            if ev == "bad":
                raise ValueError("hostile input")
            return ev

    app = App()
    name = App.on_event.__qualname__
    before = handler_errors().get(name, 0)
    with caplog.at_level(logging.ERROR, logger="aifabric.guard"):
        assert app.on_event("bad") is None
        assert app.on_event("bad") is None
        assert app.on_event("good") == "good"
    assert calls == ["bad", "bad", "good"]
    assert handler_errors()[name] == before + 2
    # one traceback per interval, not one per event
    tracebacks = [r for r in caplog.records if r.exc_info]
    assert len(tracebacks) == 1, tracebacks


def test_heartbeat_reports_a_stall_and_its_end():
    t = [100.0]
    hb = Heartbeat(clock=lambda: t[0])
    assert hb.stalled(5.0) is None
    t[0] += 6.0
    why = hb.stalled(5.0)
    assert why is not None and "6.0 s" in why
    hb.beat()
    assert hb.stalled(5.0) is None


def test_rate_limited_log_holds_back_repeats_and_counts_them(caplog):
    rl = RateLimitedLog(logging.getLogger("test.ratelog"), interval=10.0)
    with caplog.at_level(logging.WARNING, logger="test.ratelog"):
        assert rl.log(logging.WARNING, "port1", 0.0, "bad frame on %s", "port1")
        for i in range(100):
            assert not rl.log(logging.WARNING, "port1", 1.0 + i * 0.01, "bad frame")
        assert rl.log(logging.WARNING, "port2", 2.0, "bad frame on %s", "port2")
        assert rl.log(logging.WARNING, "port1", 11.0, "bad frame on %s", "port1")
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 3
    assert "100 more like it" in lines[2]


def test_rate_limited_log_bounds_its_keys():
    rl = RateLimitedLog(logging.getLogger("test.ratelog2"), interval=10.0, max_keys=8)
    logged = sum(rl.log(logging.INFO, f"k{i}", i * 0.01, "x") for i in range(100))
    assert logged == 8
    assert len(rl._last) <= 8
    # full, it does not look through its keys at every new one (a burst of thousands of
    # new keys cost a pass over all of them each): only once the oldest can go
    passes = []
    rl._last = _Counting(rl._last, passes)
    assert not any(rl.log(logging.INFO, f"n{i}", 5.0 + i * 0.01, "x") for i in range(100))
    assert passes == []
    assert rl.log(logging.INFO, "late", 10.0, "x")  # (k0, logged at 0.0, has gone)
    assert not rl.log(logging.INFO, "later", 10.001, "x")  # (k1 goes at 10.01)
    assert rl.log(logging.INFO, "last", 10.011, "x")


class _Counting(dict):
    """A dict that records each pass over its items."""

    def __init__(self, items: dict, passes: list) -> None:
        super().__init__(items)
        self.passes = passes

    def items(self):  # type: ignore[override]
        self.passes.append(1)
        return super().items()
