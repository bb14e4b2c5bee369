"""The standalone intent store: compare-and-swap writes kept whole on disk, and a file
that cannot be trusted refused whole, with its name and the reason."""

from __future__ import annotations

import json
import os

import pytest

from apps.cluster_store import StoreUnavailable
from apps.intent_file import IntentFile, IntentFileError
from controller.core.intent.kinds import Drains, decode_jobs, encode_jobs
from controller.core.model.fabric_model import Cable, LinkEnd
from controller.core.model.job_spec import JobSpec


def drains(switch: int) -> str:
    return Drains(frozenset({Cable(LinkEnd(2001, 1), LinkEnd(1001, 1))}),
                  frozenset({switch})).encode()


def test_writes_are_compare_and_swap_and_survive_a_new_process(tmp_path):
    path = tmp_path / "state.json"
    store = IntentFile(path)
    assert store.load() == []  # (no file yet)
    ok, first = store.write_intent("drains", drains(1001), 0)
    assert ok and first.revision == 1
    ok, held = store.write_intent("drains", drains(1002), 0)  # computed from an old one
    assert not ok and held == first
    ok, jobs = store.write_intent("jobs", encode_jobs([JobSpec("j", ("10.0.0.1", "10.0.0.2"),
                                                                "ring")]), 0)
    assert ok and jobs.revision == 2
    ok, second = store.write_intent("drains", drains(1002), first.revision)
    assert ok and second.revision == 3

    again = IntentFile(path).load()
    assert {i.kind: i for i in again} == {"drains": second, "jobs": jobs}
    assert decode_jobs(jobs.value)[0].job_id == "j"
    assert not [p for p in os.listdir(tmp_path) if p != "state.json"]  # no temporary left


@pytest.mark.parametrize("text,reason", [
    ("{", "not JSON"),
    ("[]", "expected {\"format\": 1"),
    (json.dumps({"format": 2, "revision": 1, "intent": {}}), "expected {\"format\": 1"),
    (json.dumps({"format": 1, "revision": 1, "intent": {"acl": {"revision": 1,
                                                               "value": "{}"}}}),
     "unknown kind 'acl'"),
    (json.dumps({"format": 1, "revision": 1, "intent": {"drains": {"revision": 5,
                                                                  "value": "{}"}}}),
     "drains: expected"),
    (json.dumps({"format": 1, "revision": 2, "intent": {
        "drains": {"revision": 1, "value": drains(1001)},
        "qos": {"revision": 2, "value": "{\"classes\": 3}"}}}), "qos"),
])
def test_a_file_that_cannot_be_trusted_is_refused_whole_naming_it(tmp_path, text, reason):
    path = tmp_path / "state.json"
    path.write_text(text)
    store = IntentFile(path)
    with pytest.raises(IntentFileError) as err:
        store.load()
    assert str(path) in str(err.value) and reason in str(err.value), err.value
    # and nothing of it is held: a write computed from "never written" is taken
    assert store.write_intent("drains", drains(1001), 0)[0]


def test_an_unreadable_file_is_an_error_and_a_failed_write_changes_nothing(tmp_path):
    path = tmp_path / "state.json"
    path.write_bytes(b"\xff\xfe not text")
    with pytest.raises(IntentFileError, match="not JSON"):
        IntentFile(path).load()

    ro = tmp_path / "ro"
    ro.mkdir()
    store = IntentFile(ro / "state.json")
    ok, first = store.write_intent("drains", drains(1001), 0)
    assert ok
    os.chmod(ro, 0o500)
    try:
        if os.geteuid() == 0:  # (root writes anywhere: a path under a file instead)
            store.path = ro / "state.json" / "x"
        with pytest.raises(StoreUnavailable, match="cannot write the state file"):
            store.write_intent("drains", drains(1002), first.revision)
    finally:
        os.chmod(ro, 0o700)
        store.path = ro / "state.json"
    assert store.write_intent("drains", drains(1002), first.revision)[0]  # (still rev 1)
