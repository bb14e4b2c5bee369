"""Run the whole test suite in two lanes at once (``make test``).

- **mininet**: the tests marked ``mininet``, one after another (one Mininet network at
  a time on a machine), and those marked ``serial`` (timing-sensitive without a
  network: etcd leases, handshake deadlines), at normal priority: they measure rates
  and timing.
- **others**: everything else (unit tests, the fake switch fleet, etcd, daemon CLI),
  beside them in Linux's idle scheduling class (``SCHED_IDLE``: it runs only on a
  core nothing else wants), so that they take the CPU the Mininet lane leaves idle,
  never the CPU its measurements need (a mere ``nice 10`` cost a bystander ping 1% of
  its packets under a flood). It may then wait for seconds: a test with a deadline of
  a few seconds is marked ``serial`` (a peer handshake test missed its 5 s there).
  This lane may not build a network (``AIFABRIC_NO_MININET``: a test that does fails,
  naming the marker) and picks its TCP ports from another range than the Mininet lane.

The Mininet lane's output is shown as it runs; the other lane's when both are done (and
kept in ``--log-dir``). The exit status is the first failing lane's (a lane with
nothing selected fails only if the other has nothing either). Arguments after
``--`` go to both pytest runs.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
NO_TESTS = 5  # pytest's exit status when nothing was selected (in one lane: fine)


@dataclass(frozen=True)
class Lane:
    name: str
    marker: str
    idle: bool  # SCHED_IDLE
    ports: str  # AIFABRIC_TEST_PORTS
    durations: int  # how many of its slowest tests pytest lists
    no_mininet: bool


LANES = (
    Lane("mininet", "mininet or serial", False, "20000-26383", 25, no_mininet=False),
    Lane("others", "not mininet and not serial", True, "26384-32767", 15, no_mininet=True),
)


def command(lane: Lane, extra: list[str]) -> list[str]:
    """(Paths among ``extra`` narrow the run; pyproject's ``testpaths`` is the default.)"""
    return [sys.executable, "-m", "pytest", "-q", "-m", lane.marker,
            f"--durations={lane.durations}", *extra]


def environment(lane: Lane) -> dict[str, str]:
    env = dict(os.environ, AIFABRIC_TEST_PORTS=lane.ports)
    env.pop("AIFABRIC_NO_MININET", None)
    if lane.no_mininet:
        env["AIFABRIC_NO_MININET"] = "1"
    return env


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 epilog="e.g. scripts/run_tests.py -- -x -k cluster")
    ap.add_argument("--log-dir", type=Path, default=Path("/var/tmp/aifabric-tests"),
                    help="where the lanes' output is kept (default: %(default)s)")
    ap.add_argument("pytest_args", nargs="*", help="passed to both pytest runs")
    args = ap.parse_args(argv)
    if any(a.startswith("-m") for a in args.pytest_args):
        ap.error("-m would override the lanes' own markers: select with -k or paths")
    args.log_dir.mkdir(parents=True, exist_ok=True)
    signal.signal(signal.SIGTERM, _interrupted)  # (the lanes go too)
    started = time.monotonic()
    procs: dict[str, subprocess.Popen] = {}
    logs: dict[str, Path] = {}
    ended: dict[str, tuple[int, float]] = {}
    try:
        for lane in LANES:
            shown = lane is LANES[0]
            logs[lane.name] = args.log_dir / f"{lane.name}.log"
            out = None if shown else open(logs[lane.name], "wb")  # noqa: SIM115
            procs[lane.name] = subprocess.Popen(
                command(lane, args.pytest_args), cwd=REPO, env=environment(lane),
                stdout=out, stderr=subprocess.STDOUT if out else None,
                start_new_session=True, preexec_fn=_idle if lane.idle else None)
            if out is not None:
                out.close()
        while len(ended) < len(procs):
            for name, proc in procs.items():
                if name not in ended and proc.poll() is not None:
                    ended[name] = (proc.returncode, time.monotonic() - started)
            time.sleep(0.5)
    except BaseException:
        _stop(procs)  # (their fixtures clean up: Mininet's leftovers, fabricd processes)
        for lane in LANES[1:]:
            if lane.name in logs and logs[lane.name].exists():
                print(f"\n===== lane {lane.name} (stopped; {logs[lane.name]}) =====")
                sys.stdout.write(logs[lane.name].read_text(errors="replace"))
        raise
    for lane in LANES[1:]:
        print(f"\n===== lane {lane.name} ({logs[lane.name]}) =====", flush=True)
        sys.stdout.write(logs[lane.name].read_text(errors="replace"))
    print("\n===== lanes =====")
    for lane in LANES:
        rc, took = ended[lane.name]
        said = {0: "passed", NO_TESTS: "nothing selected"}.get(rc, f"FAILED (exit {rc})")
        print(f"{lane.name:<8} {said:<16} {took:6.0f} s")
    print(f"{'total':<8} {'':<16} {time.monotonic() - started:6.0f} s", flush=True)
    codes = [ended[lane.name][0] for lane in LANES]
    if all(rc == NO_TESTS for rc in codes):
        return NO_TESTS
    return next((rc for rc in codes if rc not in (0, NO_TESTS)), 0)


def _idle() -> None:
    """(In the child, before pytest: inherited by everything it starts.)"""
    os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))


def _interrupted(signum, frame) -> None:
    raise KeyboardInterrupt


def _stop(procs: dict[str, subprocess.Popen], grace: float = 60.0) -> None:
    """Interrupt every lane still running as Ctrl-C would (pytest then runs its
    fixtures' teardown), and kill what is left after ``grace`` seconds."""
    running = [p for p in procs.values() if p.poll() is None]
    for proc in running:
        os.killpg(proc.pid, signal.SIGINT)
    deadline = time.monotonic() + grace
    for proc in running:
        try:
            proc.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
