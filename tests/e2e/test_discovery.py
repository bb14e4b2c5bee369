"""Discovery and forwarding on a real Mininet fabric, judged through the API, pings and
Open vSwitch's own view of the entries (the 4x8 fabric: tests/e2e/test_fleet_discovery.py)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from mininet_topos.spine_leaf import FabricSpec
from tests.e2e.conftest import all_pairs_ok, group_buckets

pytestmark = pytest.mark.mininet  # (scripts/run_tests.py: the serial lane)


def expected_links(spec: FabricSpec) -> set[tuple[int, int, int, int]]:
    links = set()
    for j, leaf in enumerate(spec.leaf_dpids(), 1):
        for i, spine in enumerate(spec.spine_dpids(), 1):
            links |= {(leaf, i, spine, j), (spine, j, leaf, i)}
    return links


def check_topology(topo: dict, spec: FabricSpec) -> None:
    roles = {s["dpid"]: s["role"] for s in topo["switches"]}
    assert roles == {d: "spine" for d in spec.spine_dpids()} | {
        d: "leaf" for d in spec.leaf_dpids()
    }
    got = {(lk["src_dpid"], lk["src_port"], lk["dst_dpid"], lk["dst_port"]) for lk in topo["links"]}
    assert got == expected_links(spec)
    assert topo["warnings"] == []


def test_2x4_discovery_hosts_and_all_pairs(fabric_2x4, tmp_path):
    ctl, net, spec = fabric_2x4
    out = subprocess.run(
        [sys.executable, "-m", "controller.cli.fabricctl", "--server", ctl.grpc_addr, "--json",
         "topology"], capture_output=True, text=True, check=True,
    ).stdout
    check_topology(json.loads(out), spec)
    all_pairs_ok(net)
    topo = json.loads(subprocess.run(
        [sys.executable, "-m", "controller.cli.fabricctl", "--server", ctl.grpc_addr, "topology",
         "--json"], capture_output=True, text=True, check=True).stdout)
    assert set(topo) == {"switches", "links", "hosts", "warnings", "generated_at", "server_nics"}
    hosts = {h["mac"]: (h["ip"], h["dpid"], h["port"]) for h in topo["hosts"]}
    for n, host in enumerate(net.hosts, 1):
        leaf = spec.leaf_dpids()[spec.host_leaf(n) - 1]
        port = spec.spines + (n - 1) % spec.hosts_per_leaf + 1
        assert hosts[host.MAC()] == (host.IP(), leaf, port)
    # ECMP: every leaf holds a select group towards every other leaf over both spines
    for leaf_name in ("l1", "l4"):
        groups = group_buckets(leaf_name)
        others = [d for d in spec.leaf_dpids() if d != spec.leaf_dpids()[int(leaf_name[1]) - 1]]
        for dest in others:
            assert groups[dest] == [1, 2], (leaf_name, dest, groups)

    # what the controller wants each switch to hold, as an operator checks it: fabricctl
    # prints it in ovs-ofctl syntax, ovs-ofctl compares it with the bridge (no output:
    # no difference; a missing entry would show as a '+' line, a stray one as '-')
    for name, dpid in (("l1", 2001), ("s2", 1002)):
        want = tmp_path / f"{name}.flows"
        want.write_text(subprocess.run(
            [sys.executable, "-m", "controller.cli.fabricctl", "--server", ctl.grpc_addr,
             "entries", str(dpid), "--only", "flows"], capture_output=True, text=True,
            check=True).stdout)
        assert len(want.read_text().splitlines()) > 5
        diff = subprocess.run(["ovs-ofctl", "-O", "OpenFlow13", "diff-flows", name, str(want)],
                              capture_output=True, text=True)
        assert diff.returncode == 0 and diff.stdout == "", diff.stdout + diff.stderr
