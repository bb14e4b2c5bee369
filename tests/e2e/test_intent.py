"""Operator intent outlives the controller: a QoS policy, a drained spine, a registered
job and a pinned flow, set through the API, are all in force again after fabricd is
stopped (SIGTERM) or killed (SIGKILL) and started again, and nothing on the switches
is re-installed meanwhile."""

from __future__ import annotations

import json
import time

import pytest

from aifabric.v1 import fabric_pb2
from controller.core import constants as C
from mininet_topos.discovery import wait_discovered
from mininet_topos.spine_leaf import FabricSpec
from tests.e2e.conftest import (
    assert_switches_hold_desired,
    flow_table,
    group_buckets,
    running_fabric,
    wait_qos_ready,
    wait_until,
)

pytestmark = pytest.mark.mininet  # (scripts/run_tests.py: the serial lane)

SPEC = FabricSpec(spines=2, leaves=4, hosts_per_leaf=2, bw=10)
ARGS = ("--link-speed", "10")
LEAVES = ("l1", "l2", "l3", "l4")
POLICY = {"classes": [
    {"name": "roce", "dscp": 26, "queue": 1, "share": 0.4, "match": {"udp_dst": [4791]}},
    {"name": "collective", "dscp": 34, "queue": 2, "share": 0.3, "match": {"dscp": [34]}},
]}


def kept_entries(switches) -> dict[str, dict[str, dict]]:
    """Every switch's entries but the self-expiring ones (declined flows)."""
    return {sw: {k: v for k, v in flow_table(sw).items()
                 if (v["cookie"] >> 48) & 0xFF != C.KIND_NOCOPY} for sw in switches}


def only_spine_1(leaf: str) -> bool:
    groups = group_buckets(leaf)
    return len(groups) == 3 and all(ports == [1] for ports in groups.values())


def intent(c) -> dict:
    flows = [(f.flow.src_ip, f.flow.dst_ip, f.flow.protocol, f.flow.dst_port, f.spine)
             for f in c.flows().flows if f.pinned_by == "operator"]
    return {
        "qos": sorted((k.name, k.dscp, k.queue) for k in c.qos_policy().classes),
        "drained": sorted(s.dpid for s in c.topology().switches if s.drained),
        "jobs": sorted((j.spec.id, tuple(j.spec.members)) for j in c.jobs().jobs),
        "pins": sorted(flows),
    }


def test_policy_drain_job_and_pin_survive_a_sigkill_then_a_sigterm(controller_factory):
    """Killed (the intents as written when set), then stopped (as written on a clean
    shutdown, by an instance that restored them): all four are in force after each,
    and no entry on any switch was re-installed."""
    ctl = controller_factory(*ARGS)
    with running_fabric(ctl, SPEC) as (net, _):
        wait_qos_ready(net)
        h1, h2, h3, h4, h5, h7 = net.get("h1", "h2", "h3", "h4", "h5", "h7")
        with ctl.client() as c:
            c.set_qos_document(json.dumps(POLICY))
            c.drain_switch(1002)
            c.register_job(fabric_pb2.JobSpec(id="ring", pattern="ring", members=[
                h.IP() for h in (h1, h3, h5, h7)]))
            c.pin_flow(fabric_pb2.FlowMatch(protocol="udp", src_ip=h2.IP(), dst_ip=h4.IP(),
                                            dst_port=5201), 1001)
            want = intent(c)
        assert want["qos"] == [("collective", 34, 2), ("roce", 26, 1)]
        assert want["drained"] == [1002] and [j for j, _ in want["jobs"]] == ["ring"]
        assert want["pins"] == [(h2.IP(), h4.IP(), "udp", 5201, 1001)]
        # the drained spine carries no ECMP bucket: every leaf's group towards each other
        # leaf uses uplink 1 (to spine 1) only
        assert wait_until(lambda: all(only_spine_1(leaf) for leaf in LEAVES), timeout=10)
        switches = ("s1", "s2", *LEAVES)
        state_file, of_port = ctl.state_file, ctl.of_port
        grpc_port = int(ctl.grpc_addr.split(":")[1])
        current = ctl
        for how in ("SIGKILL", "SIGTERM"):
            time.sleep(0.5)  # (the entries' durations then show any re-install)
            before = kept_entries(switches)
            assert all(before.values())
            t0 = time.monotonic()
            if how == "SIGTERM":
                assert current.stop() == 0
            else:
                current.proc.kill()
                current.proc.wait(5)
            time.sleep(1.0)
            current = controller_factory(*ARGS, "--state-file", str(state_file),
                                         of_port=of_port, grpc_port=grpc_port)
            with current.client() as c:
                wait_discovered(c, SPEC, timeout=30)
                assert wait_until(lambda c=c: intent(c) == want, timeout=15), (
                    how, intent(c), want)
                # settled (wait_discovered), and its reconciliation sent: a re-install
                # would be on the switches by now
                time.sleep(0.5)
                assert intent(c) == want, how
            for leaf in LEAVES:
                assert only_spine_1(leaf), (how, group_buckets(leaf))
            elapsed = time.monotonic() - t0
            after = kept_entries(switches)
            for sw in switches:
                assert set(after[sw]) == set(before[sw]), (
                    how, sw, set(after[sw]) ^ set(before[sw]))
                for key, old in before[sw].items():
                    assert after[sw][key]["duration"] >= old["duration"] + elapsed - 1.0, \
                        f"{how}: {sw} {key} was re-installed"
            assert_switches_hold_desired(current, net)
