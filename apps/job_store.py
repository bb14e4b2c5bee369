"""The state file of registered training jobs: read once at start-up, rewritten whole
(atomically: a temporary file, fsync, rename) on every change, so that a crash leaves
either the old list or the new one, never half of one.

Why a file and not the switches: a switch holds where a job's pairs go (their entries,
read back after a restart so nothing moves), but not the job itself (its members, rank
order, pattern, class); those are the scheduler's intent and must outlive the process.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from controller.core.jobs import JobError, JobLimits, JobSpec

VERSION = 1


class JobStoreError(Exception):
    """The state file cannot be read or written (the message names the file)."""


def load_jobs(path: str | Path, limits: JobLimits) -> list[JobSpec]:
    """The jobs kept in ``path`` in registration order; [] when there is no file yet."""
    p = Path(path)
    try:
        text = p.read_text()
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise JobStoreError(f"{p}: cannot read the job state file: {exc.strerror}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise JobStoreError(f"{p}: not JSON ({exc}); fix or remove it") from None
    if not isinstance(data, dict) or data.get("version") != VERSION \
            or not isinstance(data.get("jobs"), list):
        raise JobStoreError(f"{p}: expected {{\"version\": {VERSION}, \"jobs\": [...]}}")
    specs, seen = [], set()
    for i, d in enumerate(data["jobs"]):
        try:
            spec = JobSpec.from_dict(d)
            spec.validate(limits)
        except JobError as exc:
            raise JobStoreError(f"{p}: jobs[{i}].{exc}") from None
        if spec.job_id in seen:
            raise JobStoreError(f"{p}: jobs[{i}]: job {spec.job_id!r} is listed twice")
        seen.add(spec.job_id)
        specs.append(spec)
    return specs


def save_jobs(path: str | Path, specs: list[JobSpec]) -> None:
    """Replace the file with ``specs`` (JobStoreError if it cannot be written)."""
    p = Path(path)
    body = json.dumps({"version": VERSION, "jobs": [s.to_dict() for s in specs]}, indent=1)
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", dir=p.parent)
        try:
            with os.fdopen(fd, "w") as f:
                f.write(body + "\n")
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, p)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as exc:
        raise JobStoreError(f"{p}: cannot write the job state file: {exc.strerror}") from None
