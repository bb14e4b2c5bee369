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
