"""Training jobs on Mininet (2 spines, 4 leaves, 2 hosts per leaf): registered through
fabricctl, their pairs held on their spines and marked into their class with real
packets, re-placed when a spine link is cut, kept across a controller restart."""

from __future__ import annotations

import json
import subprocess
import sys
import time

from mininet_topos import attack
from mininet_topos.attack import forged_udp, ping_result, start_ping
from mininet_topos.network import wait_until
from tests.e2e.conftest import all_pairs_ok, assert_switches_hold_desired, scrape

FABRICCTL = [sys.executable, "-m", "controller.cli.fabricctl"]
RING = ("h1", "h3", "h5", "h7", "h2", "h4", "h6", "h8")  # rank r on leaf r mod 4


def fabricctl(ctl, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*FABRICCTL, "--server", ctl.grpc_addr, *args], input=stdin,
                          capture_output=True, text=True, timeout=30)


def job_json(ctl, job_id: str) -> dict:
    res = fabricctl(ctl, "--json", "job", "show", job_id)
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)


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


def dscp_seen(receiver, sender_ip: str, send, proto: str = "icmp") -> set[int]:
    """DSCP values of the packets (``proto``: a tcpdump expression) from ``sender_ip``
    that reach ``receiver``."""
    cap = receiver.popen(["tcpdump", "-l", "-n", "-v", "-c", "3", "-i",
                          f"{receiver.name}-eth0", *proto.split(), "and", "src", sender_ip],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    time.sleep(1.0)
    send()
    try:
        out, _ = cap.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        cap.kill()
        out, _ = cap.communicate()
    tos = [line.split("tos ")[1].split(",")[0] for line in out.splitlines() if "tos " in line]
    return {int(t, 16) >> 2 for t in tos}


def test_a_job_through_fabricctl_marks_its_class_and_refuses_bad_input(fabric_2x4,
                                                                        tmp_path):
    ctl, net, _ = fabric_2x4
    all_pairs_ok(net)  # (the controller knows every host)
    h1, h2, h3 = net.get("h1", "h2", "h3")
    # before: best effort, whatever the job would say
    assert dscp_seen(h3, h1.IP(), lambda: h1.cmd(f"ping -c 3 -i 0.2 {h3.IP()}")) == {0}
    job = register_ring(ctl, net, tmp_path, traffic_class="collective", priority=5)
    assert job["state"] == "placed" and len(job["pairs"]) == 16
    assert {p["state"] for p in job["pairs"]} == {"placed"}
    # 2 spines: each direction of the ring has an uplink per pair (two per uplink in all)
    assert job["worst_link_pairs"] == 1
    uplinks: dict = {}
    for p in job["pairs"]:
        uplinks[(p["src_leaf"], p["uplink_port"])] = uplinks.get(
            (p["src_leaf"], p["uplink_port"]), 0) + 1
    assert sorted(uplinks.values()) == [2] * 8
    # real packets between two members are marked into the class at the first leaf
    assert dscp_seen(h3, h1.IP(), lambda: h1.cmd(f"ping -c 3 -i 0.2 {h3.IP()}")) == {34}
    # h2, h1's leaf neighbour, sending as h1 gets neither the class nor the pair's path;
    # the same frame from h1's own port does (so the frames themselves are fine)
    def as_h1(sender) -> set[int]:
        frame = forged_udp(sender.MAC(), h3.MAC(), h1.IP(), h3.IP(), 40000, 9).hex()
        return dscp_seen(h3, h1.IP(), lambda: attack.run(
            sender, "send", f"{sender.name}-eth0", frame, frame, frame), "udp port 9")

    assert as_h1(h2) == set()  # (the source guard stops it at h2's port)
    assert as_h1(h1) == {34}
    # and counted by the pair's entry
    assert wait_until(lambda: pair(job_json(ctl, "ring8"), h1.IP(), h3.IP())["bytes"] > 0,
                      timeout=5)
    metrics = scrape(ctl)
    (worst,) = metrics["aifabric_job_worst_link_pairs"].samples
    assert worst.labels == {"job": "ring8"} and worst.value == 1
    (carried,) = metrics["aifabric_job_bytes"].samples
    assert carried.value > 0
    listed = fabricctl(ctl, "job", "list")
    assert listed.returncode == 0 and "ring8" in listed.stdout and "placed" in listed.stdout
    shown = fabricctl(ctl, "job", "show", "ring8")
    assert shown.returncode == 0 and "worst link" in shown.stdout

    # bad input: a clear error, a non-zero exit, nothing applied
    bad = fabricctl(ctl, "job", "register", "x1", "--members", f"{h1.IP()},10.9.9.9",
                    "--pattern", "ring")
    assert bad.returncode == 2 and "members[1]" in bad.stderr and "10.9.9.9" in bad.stderr
    bad = fabricctl(ctl, "job", "register", "x2", "--members", f"{h1.IP()},{h1.IP()}",
                    "--pattern", "ring")
    assert bad.returncode == 2 and "members[1]" in bad.stderr and "rank 0" in bad.stderr
    bad = fabricctl(ctl, "job", "register", "x3", "--members", f"{h1.IP()},{h3.IP()}",
                    "--pattern", "ring", "--class", "gold")
    assert bad.returncode == 2 and "traffic_class" in bad.stderr
    bad = fabricctl(ctl, "job", "register", "ring8", "--members", f"{h1.IP()},{h3.IP()}",
                    "--pattern", "ring")
    assert bad.returncode == 1 and "ALREADY_EXISTS" in bad.stderr
    bad = fabricctl(ctl, "job", "register", "--file", "-", stdin="id: x4\nmembers: 3\n")
    assert bad.returncode == 2 and "members" in bad.stderr
    bad = fabricctl(ctl, "job", "register", "--file", str(tmp_path / "absent.yaml"))
    assert bad.returncode == 2 and "cannot read" in bad.stderr
    bad = fabricctl(ctl, "job", "show", "nope")
    assert bad.returncode == 1 and "NOT_FOUND" in bad.stderr
    assert [j["id"] for j in json.loads(fabricctl(ctl, "--json", "job", "list").stdout)] \
        == ["ring8"]
    # deleted: its pairs go back to ECMP and TE, best effort again
    assert fabricctl(ctl, "job", "delete", "ring8").returncode == 0
    assert fabricctl(ctl, "job", "delete", "ring8").returncode == 1
    assert json.loads(fabricctl(ctl, "--json", "job", "list").stdout) == []
    assert dscp_seen(h3, h1.IP(), lambda: h1.cmd(f"ping -c 3 -i 0.2 {h3.IP()}")) == {0}
    all_pairs_ok(net)
    assert_switches_hold_desired(ctl, net)
    audit = [json.loads(line.split("audit: ", 1)[1]) for line in
             ctl.log_path.read_text().splitlines() if "aifabric.api: audit: " in line]
    got = [(a["method"], a["result"]) for a in audit]
    assert got[0] == ("RegisterJob", "OK") and audit[0]["request"]["id"] == "ring8"
    assert ("RegisterJob", "INVALID_ARGUMENT") in got and ("RegisterJob",
                                                           "ALREADY_EXISTS") in got
    assert ("DeleteJob", "OK") in got and ("DeleteJob", "NOT_FOUND") in got


def test_a_jobs_pairs_survive_a_spine_link_cut_and_a_controller_restart(
        fabric_2x4, controller_factory, tmp_path):
    ctl, net, spec = fabric_2x4
    all_pairs_ok(net)
    h1, h3 = net.get("h1", "h3")
    job = register_ring(ctl, net, tmp_path)
    spine = pair(job, h1.IP(), h3.IP())["spine"]
    ping = start_ping(h1, h3.IP(), 8)  # every 10 ms
    time.sleep(2.0)
    # the far side of the pair's path: its spine's link to h3's leaf
    net.configLinkStatus(f"s{spine - 1000}", "l2", "down")
    try:
        assert wait_until(lambda: pair(job_json(ctl, "ring8"), h1.IP(), h3.IP())["spine"]
                          not in (spine, 0), timeout=3)
        res = ping_result(ping)
        assert res.sent > 400 and res.sent - res.received <= 10, res  # <= 100 ms
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

    # a controller killed and restarted finds the job in its state file and keeps
    # every pair where the switches hold it
    ctl.proc.kill()
    ctl.proc.wait(5)
    again = controller_factory("--state-file", str(ctl.state_file), of_port=ctl.of_port,
                               grpc_port=int(ctl.grpc_addr.split(":")[1]))
    ping = start_ping(h1, h3.IP(), 6)

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
