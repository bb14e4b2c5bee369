"""Maintenance: drain a spine or a link with traffic running (no loss), refuse a drain
that would cut leaves apart, undrain; through fabricctl over gRPC."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from mininet_topos.network import wait_until
from tests.e2e.conftest import all_pairs_ok, audit_entries, group_buckets

pytestmark = pytest.mark.mininet  # (scripts/run_tests.py: the serial lane)

FABRICCTL = [sys.executable, "-m", "controller.cli.fabricctl"]
LEAVES = ("l1", "l2", "l3", "l4")
GROUP_OF = {"l1": 2001, "l2": 2002, "l3": 2003, "l4": 2004}  # the group towards each leaf


def every_leaf_uses(ports: list[int]) -> bool:
    """Every leaf has its ECMP group towards each other leaf, and each uses ``ports``
    (not merely: whatever groups there are, none of them others)."""
    return all(group_buckets(leaf) == {gid: ports for other, gid in GROUP_OF.items()
                                       if other != leaf} for leaf in LEAVES)


def ctl_cmd(ctl, *args):
    return subprocess.run([*FABRICCTL, "--server", ctl.grpc_addr, *args], capture_output=True,
                          text=True, timeout=30)


def test_drain_and_undrain_without_loss(fabric_2x4):
    ctl, net, spec = fabric_2x4
    all_pairs_ok(net)
    h1, h3, h5 = net.get("h1", "h3", "h5")
    # (every reply printed: the echo still in flight at the deadline is not a loss)
    pingers = [src.popen(["ping", "-n", "-i", "0.01", "-w", "6", dst.IP()],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
               for src, dst in ((h1, h3), (h3, h5), (h5, h1))]

    res = ctl_cmd(ctl, "drain", "switch", "1001")
    assert res.returncode == 0 and "switch 1001 drained" in res.stdout, res.stderr
    assert wait_until(lambda: every_leaf_uses([2]), 1.0, 0.02)
    # the spine is drained, so l1's remaining uplink is its last path: refused
    res = ctl_cmd(ctl, "drain", "link", "2001:2")
    assert res.returncode == 3 and "without a path" in res.stderr
    res = ctl_cmd(ctl, "drain", "switch", "2001")
    assert res.returncode == 3 and "is a leaf" in res.stderr
    res = ctl_cmd(ctl, "drain", "switch", "4242")
    assert res.returncode == 1 and "NOT_FOUND" in res.stderr
    res = ctl_cmd(ctl, "drain", "link", "2001:9")
    assert res.returncode == 1 and "no link at 2001:9" in res.stderr

    topo = json.loads(ctl_cmd(ctl, "--json", "topology").stdout)
    assert {s["dpid"] for s in topo["switches"] if s["drained"]} == {1001}
    assert sum(lk["drained"] for lk in topo["links"]) == 8 and len(topo["links"]) == 16

    assert ctl_cmd(ctl, "undrain", "switch", "1001").returncode == 0
    assert ctl_cmd(ctl, "drain", "link", "1001:3").returncode == 0  # spine 1 <-> leaf 3
    assert wait_until(lambda: group_buckets("l3")[2001] == [2] and
                      group_buckets("l1")[2003] == [2] and group_buckets("l1")[2002] == [1, 2],
                      1.0, 0.02)
    assert ctl_cmd(ctl, "undrain", "link", "2003:1").returncode == 0  # named by its other end
    assert wait_until(lambda: every_leaf_uses([1, 2]), 1.0, 0.02)
    for p in pingers:
        out, _ = p.communicate(timeout=15)
        sent = int(re.search(r"(\d+) packets transmitted", out)[1])
        replied = {int(n) for n in re.findall(r"bytes from .*icmp_seq=(\d+) ", out)}
        # (the last echo may be in flight when ping's deadline ends it: counted lost by
        # ping, and by this test until it read the replies, once in 5 runs or so)
        lost = sorted(set(range(1, sent)) - replied)
        # Known issue (see the issue note): now and then one packet in ~500 is lost while
        # OVS's userspace datapath swaps a select group's buckets in place.
        assert sent > 250 and len(lost) <= 1, (lost, out[-400:])  # ~600 at 10 ms; fewer
        # on a busy CPU
    all_pairs_ok(net)
    audited = audit_entries(ctl)
    for entry in (("DrainSwitch", "OK"), ("DrainLink", "FAILED_PRECONDITION"),
                  ("DrainSwitch", "FAILED_PRECONDITION"), ("DrainSwitch", "NOT_FOUND"),
                  ("DrainLink", "NOT_FOUND"), ("Undrain", "OK"), ("DrainLink", "OK")):
        assert ("local-admin", *entry) in audited, (entry, audited)
