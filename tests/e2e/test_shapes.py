"""Fabrics as AI clusters are built, on Mininet. A three-tier Clos (2 pods of 2 leaves
and 2 spines, under 2 spine planes of 2 super-spines): roles, pods and spine planes
found from the wiring; every pair reachable; a spine-to-super-spine link cut under an
inter-pod ping is skipped by the switches; a controller restart re-installs nothing;
TE holds a flow between pods on a super-spine.
Two planes under one controller. A rail-optimized group of servers. (The cases:
tests/unit/test_three_tier.py and test_servers.py, and the fleet's
tests/e2e/test_fleet_servers.py.)"""

from __future__ import annotations

import json
import subprocess
import time

import grpc
import pytest

from controller.cli.client import flow_match
from mininet_topos.attack import start_ping, stop_ping
from mininet_topos.discovery import wait_discovered
from mininet_topos.network import ping, replies_from
from mininet_topos.spine_leaf import FabricSpec
from mininet_topos.traffic import interrupt, start_servers, stop_servers, udp_flow
from tests.e2e.conftest import (
    all_pairs_ok,
    assert_kept,
    assert_switches_hold_desired,
    flow_table,
    running_fabric,
    wait_until,
)

pytestmark = pytest.mark.mininet  # (scripts/run_tests.py: the serial lane)

SPEC = FabricSpec(spines=2, leaves=2, hosts_per_leaf=1, bw=10, pods=2, supers=2)
UPLINKS = {f"s{i}": (3, 4) for i in range(1, 5)}  # a spine's ports to its super-spines


def tx_packets(switch: str, port: int) -> int:
    out = subprocess.run(["ovs-ofctl", "-O", "OpenFlow13", "dump-ports", switch, str(port)],
                         capture_output=True, text=True, check=True).stdout
    return int(out.split("tx pkts=")[1].split(",")[0])


def uplink_counts() -> dict[tuple[str, int], int]:
    return {(sw, p): tx_packets(sw, p) for sw, ports in UPLINKS.items() for p in ports}


def test_three_tier_fabric_reaches_every_pair_survives_a_cut_and_a_restart(
        controller_factory):
    ctl = controller_factory()
    with running_fabric(ctl, SPEC) as (net, topo):
        places = {s["dpid"]: (s["role"], s.get("pod", 0), s.get("spine_plane", 0))
                  for s in topo["switches"]}
        assert places[2001] == ("leaf", 1, 0) and places[2004] == ("leaf", 2, 0)
        assert places[1001] == ("spine", 1, 1) and places[1004] == ("spine", 2, 2)
        assert places[3001] == ("super-spine", 0, 1) and places[3004] == ("super-spine", 0, 2)
        assert topo["warnings"] == []
        all_pairs_ok(net)

        # the spine-to-super-spine link h1's echoes to h4 (pod 1 to pod 2) go up
        h1, h4 = net.get("h1", "h4")
        before = uplink_counts()
        assert ping(h1, h4.IP(), count=50, interval=0.01) == 50
        grew = {k: v - before[k] for k, v in uplink_counts().items() if v - before[k] >= 50}
        assert len(grew) in (1, 2), grew  # (the echoes up in pod 1, the replies in pod 2)
        spine, port = next(k for k in sorted(grew) if k[0] in ("s1", "s2"))
        far = {3: 1, 4: 2}[port] + 2 * (int(spine[1]) - 1)  # the super-spine behind it
        pinger = start_ping(h1, h4.IP(), seconds=6, interval=0.01)
        time.sleep(1.5)
        net.configLinkStatus(spine, f"x{far}", "down")
        time.sleep(2.0)
        result = stop_ping(pinger)
        # at most 200 ms of echoes lost while the switches skip the dead link
        assert result.sent >= 250 and result.sent - result.received <= 20, result
        net.configLinkStatus(spine, f"x{far}", "up")
        with ctl.client() as client:
            wait_discovered(client, SPEC, timeout=20)
        all_pairs_ok(net)

        # a controller restart: every entry of every switch kept, none re-installed
        names = [s.name for s in net.switches]
        tables = {sw: flow_table(sw) for sw in names}
        t0 = time.monotonic()
        ctl.proc.kill()
        ctl.proc.wait(5)
        again = controller_factory(of_port=ctl.of_port,
                                   grpc_port=int(ctl.grpc_addr.split(":")[1]))
        with again.client() as client:
            wait_discovered(client, SPEC, timeout=30)
            assert wait_until(lambda: len(client.topology().hosts) == 4, timeout=10)
        time.sleep(1.0)
        for sw in names:
            assert_kept(tables[sw], flow_table(sw), time.monotonic() - t0 - 1.0)
        all_pairs_ok(net)
        assert_switches_hold_desired(again, net)


def test_te_holds_a_flow_between_pods_on_its_super_spine(controller_factory):
    """A UDP flow from pod 1 to pod 2 is placed by TE on a whole path: its packets go up
    the spine uplink the path names (the spine's pin), and nowhere else; pinned by an
    operator to each super-spine in turn, they follow; that uplink cut, the spine's fast
    failover and the controller keep them flowing."""
    ctl = controller_factory()
    with running_fabric(ctl, SPEC) as (net, _):
        h1, h3 = net.get("h1", "h3")
        all_pairs_ok(net)
        start_servers(h3, [5201])
        proc = udp_flow(h1, h3.IP(), 5201, mbps=2, seconds=30)  # ~210 packets a second
        try:
            with ctl.client() as client:
                def placed():
                    return next((f for f in client.flows().flows if f.flow.protocol == "udp"
                                 and f.flow.dst_ip == h3.IP() and f.super_spine), None)

                assert wait_until(lambda: placed() is not None, timeout=10)
                f = placed()

                def carried(up: tuple[str, int]) -> dict:
                    """Packets up each spine uplink in 1 s: the flow's uplink carries
                    it (~210), the others only LLDP and the test's control traffic."""
                    time.sleep(0.3)  # (entries in force, queues drained)
                    before = uplink_counts()
                    time.sleep(1.0)
                    grew = {k: v - before[k] for k, v in uplink_counts().items()}
                    assert grew[up] >= 130, (up, grew)
                    assert all(v < 40 for k, v in grew.items() if k != up), (up, grew)
                    return grew

                carried((f"s{f.spine - 1000}", f.spine_uplink_port))
                match = flow_match(h1.IP(), h3.IP(), "udp", f.flow.src_port, 5201)
                for ss in (3001, 3002, 3003, 3004):
                    got = client.pin_flow(match, ss)
                    assert got.super_spine == ss and got.pinned_by == "operator"
                    carried((f"s{got.spine - 1000}", got.spine_uplink_port))
                # pinned to x1 (over s1 port 3), then that cable fails
                got = client.pin_flow(match, 3001)
                assert (got.spine, got.spine_uplink_port) == (1001, 3)
                carried(("s1", 3))
                net.configLinkStatus("s1", "x1", "down")
                try:
                    carried(("s1", 4))  # (fast failover, then the pin's new path)
                    assert wait_until(lambda: placed().super_spine == 3002, timeout=5)
                finally:
                    net.configLinkStatus("s1", "x1", "up")
        finally:
            interrupt(proc)
            stop_servers(h3)


def test_two_planes_under_one_controller(controller_factory):
    """Two disconnected 2x2 fabrics (a NIC per plane): no warning, each switch in its
    plane, every pair within a plane reachable and none across, a drain judged in its
    own plane."""
    spec = FabricSpec(spines=2, leaves=2, hosts_per_leaf=1, bw=10, planes=2)
    ctl = controller_factory()
    with running_fabric(ctl, spec) as (net, topo):
        assert topo["warnings"] == []
        assert {s["dpid"]: s.get("plane") for s in topo["switches"]} == {
            1001: 1, 1002: 1, 2001: 1, 2002: 1, 1003: 2, 1004: 2, 2003: 2, 2004: 2}
        h1, h2, h3, h4 = net.get("h1", "h2", "h3", "h4")
        for src, same, other in ((h1, h2, h3), (h2, h1, h4), (h3, h4, h1), (h4, h3, h2)):
            got = replies_from(src, [same.IP(), other.IP()], count=3, timeout=1,
                               interval=0.05)
            assert got == {same.IP(): 3, other.IP(): 0}, (src.name, got)
        with ctl.client() as client:
            client.drain_switch(1001)  # plane 1 keeps 1002
            with pytest.raises(grpc.RpcError) as err:
                client.drain_switch(1002)
            assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
            assert "leaf 2001 without a path to leaf 2002" in err.value.details()
            client.drain_switch(1003)  # plane 2 keeps 1004, whatever plane 1 has left
        assert ping(h1, h2.IP(), count=5, interval=0.05) == 5
        assert ping(h3, h4.IP(), count=5, interval=0.05) == 5


def test_a_rail_optimized_group_keeps_same_rail_traffic_on_its_leaf(controller_factory,
                                                                   tmp_path):
    """Two servers with a NIC on each of two leaves (rail 0 on l1, rail 1 on l2), named
    by a numbering rule: the rail check passes, and traffic between the same rail of
    the two servers never reaches a spine, where another rail's does."""
    spec = FabricSpec(spines=2, leaves=2, hosts_per_leaf=2, bw=10)
    cfg = tmp_path / "rails.yaml"
    cfg.write_text(json.dumps({"server_rule": {"servers": 2, "rails": 2,
                                               "first": "10.0.0.1", "name": "gpu{n}"}}))
    ctl = controller_factory("--config", str(cfg))
    with running_fabric(ctl, spec) as (net, _):
        h1, h2, h3 = net.get("h1", "h2", "h3")  # gpu1 rail 0, gpu2 rail 0, gpu1 rail 1
        all_pairs_ok(net)  # (every NIC known)
        with ctl.client() as client:
            assert wait_until(lambda: len(client.topology().server_nics) == 4 and all(
                n.state == "ok" for n in client.topology().server_nics), timeout=5)
            assert client.topology().warnings == []

        def spines_tx() -> int:
            return sum(tx_packets(s, p) for s in ("s1", "s2") for p in (1, 2))

        before = spines_tx()
        assert ping(h1, h2.IP(), count=50, interval=0.01) == 50  # gpu1:0 <-> gpu2:0
        assert spines_tx() - before < 10  # (LLDP only: a probe a second per port)
        assert ping(h1, h3.IP(), count=50, interval=0.01) == 50  # gpu1:0 -> gpu1:1
        assert spines_tx() - before >= 100  # (echo and reply, each over a spine)
