"""Training jobs on Mininet (2 spines, 4 leaves, 2 hosts per leaf): their pairs re-placed
when a spine link is cut while a ping runs, kept across a controller killed and
restarted. (A job through fabricctl, its marking and bad input: on the fake fleet,
tests/e2e/test_fleet_api.py.)"""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from controller.cli.client import job_dict
from mininet_topos.attack import ping_result, start_ping
from mininet_topos.network import wait_until
from tests.e2e.conftest import all_pairs_ok, assert_switches_hold_desired

pytestmark = pytest.mark.mininet  # (scripts/run_tests.py: the serial lane)

FABRICCTL = [sys.executable, "-m", "controller.cli.fabricctl"]
RING = ("h1", "h3", "h5", "h7", "h2", "h4", "h6", "h8")  # rank r on leaf r mod 4


def fabricctl(ctl, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*FABRICCTL, "--server", ctl.grpc_addr, *args], input=stdin,
                          capture_output=True, text=True, timeout=30)


def job_json(ctl, job_id: str) -> dict:
    """The job as ``fabricctl --json job show`` prints it, read in process: polled, a
    fabricctl process per reading costs 0.4 s of CPU the fabric shares."""
    with ctl.client() as c:
        return job_dict(c.job(job_id))


def pair(job: dict, src_ip: str, dst_ip: str) -> dict:
    return next(p for p in job["pairs"] if (p["src_ip"], p["dst_ip"]) == (src_ip, dst_ip))


def register_ring(ctl, net, tmp_path, job_id: str = "ring8", **extra) -> dict:
    members = [net.get(h).IP() for h in RING]
    doc = {"id": job_id, "members": members, "pattern": "ring", **extra}
    path = tmp_path / f"{job_id}.yaml"
    path.write_text(json.dumps(doc))  # (JSON is YAML too)
    res = fabricctl(ctl, "--json", "job", "register", "--file", str(path))
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)


def test_a_jobs_pairs_survive_a_spine_link_cut_and_a_controller_restart(
        fabric_2x4, controller_factory, tmp_path):
    ctl, net, spec = fabric_2x4
    all_pairs_ok(net)
    h1, h3 = net.get("h1", "h3")
    job = register_ring(ctl, net, tmp_path)
    spine = pair(job, h1.IP(), h3.IP())["spine"]
    ping = start_ping(h1, h3.IP(), 3)  # every 10 ms
    time.sleep(1.0)
    # the far side of the pair's path: its spine's link to h3's leaf
    net.configLinkStatus(f"s{spine - 1000}", "l2", "down")
    try:
        assert wait_until(lambda: pair(job_json(ctl, "ring8"), h1.IP(), h3.IP())["spine"]
                          not in (spine, 0), timeout=3)
        res = ping_result(ping)
        # <= 100 ms on a quiet machine; room for the CI's two shared cores (13 lost)
        assert res.sent > 150 and res.sent - res.received <= 25, res  # (~300 sent)
        now = job_json(ctl, "ring8")
        assert len(now["pairs"]) == 16, now  # (the ring of 8, both ways: all checked below)
        # every pair towards l2 avoids the cut link; the rest keep two per uplink at most
        for p in now["pairs"]:
            assert p["state"] == "placed"
            assert not (p["spine"] == spine and p["dst_leaf"] == 2002), p
        assert_switches_hold_desired(ctl, net)
    finally:
        net.configLinkStatus(f"s{spine - 1000}", "l2", "up")
    # back: the job may use the link again; it is placed as evenly as before
    assert wait_until(lambda: job_json(ctl, "ring8")["worst_link_pairs"] == 1, timeout=10)
    before = job_json(ctl, "ring8")
    paths = {(p["src_ip"], p["dst_ip"]): p["spine"] for p in before["pairs"]}
    # written, not only decided: the API shows a placement as the controller makes it,
    # a moment before its entries reach the switches; a kill in between leaves the
    # switches (and so the restarted controller) with the placement before (seen once
    # in ~20 runs)
    assert_switches_hold_desired(ctl, net)
    assert {(p["src_ip"], p["dst_ip"]): p["spine"]
            for p in job_json(ctl, "ring8")["pairs"]} == paths

    # a controller killed and restarted finds the job in its state file and keeps
    # every pair where the switches hold it
    ctl.proc.kill()
    ctl.proc.wait(5)
    again = controller_factory("--state-file", str(ctl.state_file), of_port=ctl.of_port,
                               grpc_port=int(ctl.grpc_addr.split(":")[1]))
    again.wait_serving()
    ping = start_ping(h1, h3.IP(), 4)  # (the restart takes ~2.5 s; settled 1 s later)

    def same_paths() -> bool:
        got = job_json(again, "ring8")
        return got["state"] == "placed" and {
            (p["src_ip"], p["dst_ip"]): p["spine"] for p in got["pairs"]} == paths

    ok = wait_until(same_paths, timeout=15)
    got = job_json(again, "ring8")
    assert ok, (got["state"], paths, {(p["src_ip"], p["dst_ip"]): p["spine"]
                                      for p in got["pairs"]})
    res = ping_result(ping)
    assert res.sent - res.received == 0, res
    assert_switches_hold_desired(again, net)
    del spec
