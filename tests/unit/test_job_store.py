"""The job state file: round trip, atomic replacement, clear errors for a bad file."""

import json

import pytest

from apps.job_store import JobStoreError, load_jobs, save_jobs
from controller.core.jobs import JobLimits, JobSpec

SPECS = [JobSpec("a", ("10.0.0.1", "10.0.0.3"), "ring", traffic_class="collective"),
         JobSpec("b", ("10.0.0.2", "10.0.0.4", "10.0.0.6"), "pairs", pairs=((0, 2),),
                 transport="roce", priority=4)]


def test_jobs_round_trip_in_registration_order(tmp_path):
    path = tmp_path / "state" / "jobs.json"  # (the directory is made)
    assert load_jobs(path, JobLimits()) == []  # no file yet: no jobs
    save_jobs(path, SPECS)
    assert load_jobs(path, JobLimits()) == SPECS
    save_jobs(path, SPECS[1:])
    assert load_jobs(path, JobLimits()) == SPECS[1:]
    assert [p.name for p in path.parent.iterdir()] == ["jobs.json"]  # no temporary left


@pytest.mark.parametrize("text, needle", [
    ("{not json", "not JSON"),
    ('{"version": 2, "jobs": []}', "expected"),
    ('{"version": 1, "jobs": [{"id": "a", "members": ["10.0.0.1"], "pattern": "ring"}]}',
     "jobs[0].members"),
    ('{"version": 1, "jobs": [{"id": "a", "members": ["10.0.0.1", "10.0.0.2"], '
     '"pattern": "ring", "colour": 1}]}', "jobs[0].colour"),
])
def test_a_bad_state_file_is_named_with_the_problem(tmp_path, text, needle):
    path = tmp_path / "jobs.json"
    path.write_text(text)
    with pytest.raises(JobStoreError) as err:
        load_jobs(path, JobLimits())
    assert str(path) in str(err.value) and needle in str(err.value)


def test_a_job_listed_twice_is_refused(tmp_path):
    path = tmp_path / "jobs.json"
    path.write_text(json.dumps({"version": 1, "jobs": [SPECS[0].to_dict()] * 2}))
    with pytest.raises(JobStoreError, match="listed twice"):
        load_jobs(path, JobLimits())


def test_an_unwritable_place_is_an_error_and_the_old_file_stays(tmp_path):
    path = tmp_path / "jobs.json"
    save_jobs(path, SPECS)
    with pytest.raises(JobStoreError, match="cannot write"):
        save_jobs(path / "under-a-file.json", SPECS[:1])  # (fails for root too)
    assert load_jobs(path, JobLimits()) == SPECS
