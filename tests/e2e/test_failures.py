"""Spine and Open vSwitch restarts: groups follow, queues are kept, traffic flows. (A link
failing and recovering, a flapping uplink, a switch that stops reading: on the fake
fleet, tests/e2e/test_fleet_faults.py.)"""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest

from aifabric.v1 import fabric_pb2
from mininet_topos.network import ping
from tests.e2e.conftest import (
    all_pairs_ok,
    assert_switches_hold_desired,
    flow_table,
    group_buckets,
    qos_rows,
    replay_events,
    wait_until,
)

pytestmark = pytest.mark.mininet  # (scripts/run_tests.py: the serial lane)

LEAVES = ("l1", "l2", "l3", "l4")


def dscp_filters(dev: str) -> int:
    out = subprocess.run(["tc", "filter", "show", "dev", dev, "parent", "1:"],
                         capture_output=True, text=True).stdout
    return out.count("flowid")


def leaf_groups_use(ports_by_leaf: dict[str, list[int]]) -> bool:
    for leaf, ports in ports_by_leaf.items():
        groups = group_buckets(leaf)
        if len(groups) != 3 or any(b != ports for b in groups.values()):
            return False
    return True


def test_spine_failure_and_restart(fabric_2x4):
    ctl, net, spec = fabric_2x4
    all_pairs_ok(net)
    s1 = net.get("s1")
    s1.stop(deleteIntfs=False)
    assert wait_until(lambda: leaf_groups_use({leaf: [2] for leaf in LEAVES}), timeout=1.0,
                      interval=0.02), "spine 1 still in groups 1 s after it went away"
    all_pairs_ok(net)
    with ctl.client() as c:
        sw = {s.dpid: s.connected for s in c.topology().switches}
    assert sw[1001] is False

    s1.start(net.controllers)  # a fresh bridge: empty tables, must be filled again
    assert wait_until(lambda: leaf_groups_use({leaf: [1, 2] for leaf in LEAVES}), timeout=10.0)
    assert wait_until(lambda: len(group_buckets("s1")) == 4, timeout=5.0)
    # its ports, new to the controller, get their queues and DSCP filters again
    assert wait_until(lambda: all(dscp_filters(f"s1-eth{p}") == 4 for p in range(1, 5)),
                      timeout=15.0), "QoS not provisioned again on the restarted spine"
    all_pairs_ok(net)
    # traffic really crosses the restarted spine again: take it away from s2 and ping
    net.configLinkStatus("l1", "s2", "down")
    net.configLinkStatus("l3", "s2", "down")
    # (both ways: a reply sent by l3 before its own group changed would take the cut
    # link; CI lost one of ten pings so once, when it waited for l1's group only)
    assert wait_until(lambda: group_buckets("l1")[2003] == [1]
                      and group_buckets("l3")[2001] == [1], timeout=1.0, interval=0.02)
    assert ping(net.get("h1"), net.get("h5").IP(), count=10, interval=0.02) == 10
    assert_switches_hold_desired(ctl, net)


def test_ovs_vswitchd_restart_is_reinstalled_and_keeps_its_queues(fabric_2x4):
    """ovs-vswitchd killed and started again: every table, group and meter is gone.
    The controller re-installs exactly what the switches held before, a registered
    job's pair entries with the rest, on the same spines; the QoS rows in OVSDB (which
    did not restart) are kept, the DSCP filters come back."""
    ctl, net, spec = fabric_2x4
    all_pairs_ok(net)
    switches = [s.name for s in net.switches]
    without_job = {sw: len(flow_table(sw)) for sw in LEAVES}
    ring = [net.get(h).IP() for h in ("h1", "h3", "h5", "h7", "h2", "h4", "h6", "h8")]
    with ctl.client() as c:
        c.register_job(fabric_pb2.JobSpec(id="restart-ring", members=ring, pattern="ring"))
    try:
        _restart_ovs_vswitchd(ctl, net, switches, without_job)
    finally:
        with ctl.client() as c:
            c.delete_job("restart-ring")
    assert_switches_hold_desired(ctl, net)


def _restart_ovs_vswitchd(ctl, net, switches: list[str], without_job: dict) -> None:
    def job_spines() -> dict:
        with ctl.client() as c:
            job = c.job("restart-ring")
        assert job.state == "placed", job.state
        return {(p.src_ip, p.dst_ip): p.spine for p in job.pairs}

    spines = job_spines()
    assert len(spines) == 16 and set(spines.values()) == {1001, 1002}  # both directions
    # its pair entries are on the ingress leaves, part of what the restart must bring back
    assert wait_until(lambda: all(len(flow_table(sw)) > without_job[sw] for sw in LEAVES),
                      timeout=5), {sw: len(flow_table(sw)) for sw in LEAVES}
    tables = {sw: set(flow_table(sw)) for sw in switches}
    groups = {sw: group_buckets(sw) for sw in switches}
    qos = qos_rows()
    pid = int(subprocess.run(["pgrep", "-x", "ovs-vswitchd"], capture_output=True, text=True,
                             check=True).stdout.split()[0])
    os.kill(pid, signal.SIGKILL)

    def gone() -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        return False

    assert wait_until(gone, timeout=10)
    time.sleep(0.5)
    t0 = time.monotonic()
    subprocess.run(["bash", "scripts/ovs-start.sh"], check=True)
    with ctl.client() as c:
        assert wait_until(lambda: sum(s.connected for s in c.topology().switches) == 6
                          and len(c.topology().links) == 16, timeout=20)
    assert wait_until(lambda: all(set(flow_table(sw)) == tables[sw] for sw in switches),
                      timeout=10), {sw: set(flow_table(sw)) ^ tables[sw] for sw in switches}
    assert {sw: group_buckets(sw) for sw in switches} == groups
    back = time.monotonic() - t0
    all_pairs_ok(net)
    assert back < 15, back
    assert qos_rows() == qos  # OVSDB kept them; nothing was removed and re-made
    assert wait_until(lambda: all(dscp_filters(f"{leaf}-eth3") > 0 for leaf in LEAVES),
                      timeout=15)
    # The job's pairs come back where they were, unless a spine's session was seen to
    # end before the others': the controller then moved its pairs off that spine at
    # once (as it must for a spine that died), and the restart brings back that
    # placement (CI saw it once: spine 1002's end handled 38 ms before the rest)
    if replay_events(ctl, "job_reroute"):
        after = job_spines()
        assert set(after) == set(spines) and set(after.values()) <= {1001, 1002}, after
    else:
        assert job_spines() == spines
    assert_switches_hold_desired(ctl, net)
