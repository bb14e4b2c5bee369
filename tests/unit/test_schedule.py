"""The periodic job table."""

from controller.core.schedule import Job, Schedule


def test_jobs_run_at_the_first_tick_then_at_their_interval():
    s = Schedule([Job("probe", 1.0), Job("ports", 2.0), Job("publish", 0.0)])
    assert s.due(100.0) == ["probe", "ports", "publish"]
    assert s.due(100.5) == ["publish"]
    assert s.due(101.0) == ["probe", "publish"]
    assert s.due(102.0) == ["probe", "ports", "publish"]
    assert s.last("ports") == 102.0


def test_a_late_tick_runs_a_job_once_not_once_per_missed_interval():
    s = Schedule([Job("probe", 1.0)])
    s.due(10.0)
    assert s.due(15.0) == ["probe"]
    assert s.due(15.5) == []


def test_stretched_timers_fire_that_many_times_less_often():
    """A large fabric's statistics within their budget (apps/fabric_app.py): the
    stretched rows run 3x less often, the rest as configured."""
    s = Schedule([Job("probe", 1.0), Job("ports", 1.0), Job("meters", 1.0)])
    fired = [s.due(float(t), 3.0, ("ports", "meters")) for t in range(7)]
    assert [t for t, names in enumerate(fired) if "ports" in names] == [0, 3, 6]
    assert [t for t, names in enumerate(fired) if "meters" in names] == [0, 3, 6]
    assert all("probe" in names for names in fired)
