"""Timeouts and intervals run on a monotonic clock: the apps hand the core
apps.clock.now(), never the system clock, which a step (NTP, ``date -s``) moves."""

from __future__ import annotations

import ast
import importlib.util
import time
from pathlib import Path

from apps import clock

ROOT = Path(__file__).resolve().parents[2]
# (the audit log stamps its lines with the wall clock: display only)
WALL_CLOCK_ALLOWED = {"apps/clock.py", "apps/api/audit.py"}


def wall_clock_reads(path: Path) -> list[int]:
    """Lines of ``path`` that call time.time (or pass it on)."""
    return [node.lineno for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, ast.Attribute) and node.attr == "time"
            and isinstance(node.value, ast.Name) and node.value.id == "time"]


def test_the_apps_and_the_daemon_read_no_wall_clock_for_the_core():
    files = [*(ROOT / "apps").rglob("*.py"), ROOT / "controller" / "daemon.py"]
    found = {str(p.relative_to(ROOT)): lines for p in files
             if str(p.relative_to(ROOT)) not in WALL_CLOCK_ALLOWED
             and (lines := wall_clock_reads(p))}
    assert found == {}
    assert wall_clock_reads(ROOT / "apps" / "api" / "audit.py")  # (the check sees one)


def fresh_clock():
    """apps/clock.py loaded anew, as a process starting now would: the suite's own copy
    was anchored when it was imported, and the wall clock may have moved from the
    monotonic one since (a paused VM, NTP slewing a loaded CI machine)."""
    spec = importlib.util.spec_from_file_location("fresh_clock", ROOT / "apps" / "clock.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_clock_reads_as_wall_time_and_never_goes_back(monkeypatch):
    started = fresh_clock()
    assert abs(started.now() - time.time()) < 1.0
    first = clock.now()
    # a step of the system clock back by an hour does not move it
    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() - 3600)
    assert clock.now() >= first and clock.now() - first < 1.0


def test_an_event_stamped_by_the_wall_clock_is_dated_by_its_age(monkeypatch):
    now = clock.now()
    assert abs(clock.at_wall(time.time() - 0.5, now) - (now - 0.5)) < 0.05
    assert clock.at_wall(None, now) == now
    # the wall clock stepped back an hour after the stamp: not dated in the future
    assert clock.at_wall(time.time() + 3600, now) == now
    # ... or forward: not hours back either
    assert clock.at_wall(time.time() - 3600, now) == now - 60.0
