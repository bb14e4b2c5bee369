"""Commands from the API to the fabric app: a caller that gives up either prevents the
command or learns what it did, never neither."""

import threading

from apps.app_events import EventCall


def test_a_command_cancelled_before_it_starts_never_runs():
    ev = EventCall(lambda app: app.append("ran"))
    assert ev.cancel() is True
    assert ev.start() is False


def test_a_command_already_running_cannot_be_cancelled():
    ev = EventCall(lambda app: None)
    assert ev.start() is True
    assert ev.cancel() is False


def test_cancel_and_start_race_to_exactly_one_outcome():
    for _ in range(200):
        ev = EventCall(lambda app: None)
        results = {}
        t = threading.Thread(target=lambda ev=ev, results=results: results.setdefault(
            "start", ev.start()))
        t.start()
        results["cancel"] = ev.cancel()
        t.join()
        # exactly one of them wins
        assert results["start"] != results["cancel"]
