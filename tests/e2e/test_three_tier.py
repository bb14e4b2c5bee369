"""A three-tier Clos on Mininet: 2 pods of 2 leaves and 2 spines, under 2 spine planes
of 2 super-spines. Roles, pods and spine planes found from the wiring; every pair
reachable; a spine-to-super-spine link cut under an inter-pod ping is skipped by the
switches; a controller restart re-installs nothing. (The cases: tests/unit/test_three_tier.py,
on the fake data plane.)"""

from __future__ import annotations

import subprocess
import time

from mininet_topos.attack import start_ping, stop_ping
from mininet_topos.discovery import wait_discovered
from mininet_topos.network import ping
from mininet_topos.spine_leaf import FabricSpec
from tests.e2e.conftest import (
    all_pairs_ok,
    assert_kept,
    assert_switches_hold_desired,
    flow_table,
    running_fabric,
    wait_until,
)

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
