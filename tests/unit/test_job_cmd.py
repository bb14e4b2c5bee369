"""fabricctl job: a job from flags or from a scheduler's file, refused locally when it
cannot be read (the server validates the rest)."""

import argparse

import pytest

from controller.cli.job_cmd import spec_from_args
from controller.core.model.job_spec import JobError


def args(**kw) -> argparse.Namespace:
    base = {"file": None, "id": None, "members": None, "pattern": None, "pairs": None,
            "transport": "any", "traffic_class": "", "priority": 0}
    return argparse.Namespace(**{**base, **kw})


def test_flags_make_a_job():
    got = spec_from_args(args(id="j", members="10.0.0.1, 10.0.0.3,10.0.0.5",
                              pattern="pairs", pairs="0:2, 2:1", priority=3,
                              traffic_class="collective"))
    assert got == {"id": "j", "members": ["10.0.0.1", "10.0.0.3", "10.0.0.5"],
                   "pattern": "pairs", "pairs": [[0, 2], [2, 1]],
                   "traffic_class": "collective", "priority": 3}


def test_a_yaml_file_makes_the_same_job(tmp_path):
    f = tmp_path / "job.yaml"
    f.write_text("id: j\nmembers: [10.0.0.1, 10.0.0.3]\npattern: ring\ntransport: roce\n")
    assert spec_from_args(args(file=str(f))) == {
        "id": "j", "members": ["10.0.0.1", "10.0.0.3"], "pattern": "ring",
        "transport": "roce"}


@pytest.mark.parametrize("kw, needle", [
    ({"id": "j", "members": "10.0.0.1"}, "give ID, --members and --pattern"),
    ({"id": "j", "members": "10.0.0.1,10.0.0.2", "pattern": "pairs", "pairs": "0-1"},
     "pairs: expected SRC:DST"),
])
def test_bad_flags_are_named(kw, needle):
    with pytest.raises((JobError, ValueError), match=needle):
        spec_from_args(args(**kw))


def test_bad_files_are_named(tmp_path):
    with pytest.raises(ValueError, match="cannot read"):
        spec_from_args(args(file=str(tmp_path / "absent.yaml")))
    f = tmp_path / "job.yaml"
    f.write_text("id: [unclosed\n")
    with pytest.raises(ValueError, match="not YAML or JSON"):
        spec_from_args(args(file=str(f)))
    f.write_text("- a list\n")
    with pytest.raises(JobError, match="expected a mapping"):
        spec_from_args(args(file=str(f)))


def test_fabricctl_loads_no_traffic_engineering():
    """Every fabricctl call starts a Python process: it must not load the TE core and
    numpy (half its CPU) to read a job file or print a table."""
    import subprocess
    import sys

    code = ("import sys, controller.cli.fabricctl; "
            "print(sorted(m for m in sys.modules if m == 'numpy' "
            "or m.startswith('controller.core.te')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"
