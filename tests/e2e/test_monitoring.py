"""Link load measured from port counters, through ListLinks and fabricctl links."""

from __future__ import annotations

import json
import subprocess
import sys
import time

from mininet_topos import traffic as T
from mininet_topos.network import reachability, wait_until
from mininet_topos.spine_leaf import FabricSpec
from tests.e2e.conftest import running_fabric

FABRICCTL = [sys.executable, "-m", "controller.fabricctl"]


def links(ctl) -> list[dict]:
    res = subprocess.run([*FABRICCTL, "--server", ctl.grpc_addr, "--json", "links"],
                         capture_output=True, text=True, check=True)
    return json.loads(res.stdout)


def test_link_utilization_follows_traffic(controller_factory):
    ctl = controller_factory("--link-speed", "10", "--no-qos")
    spec = FabricSpec(spines=2, leaves=4, hosts_per_leaf=2, bw=10)
    with running_fabric(ctl, spec) as (net, topo):
        reachability(net, count=1, timeout=2)
        rows = links(ctl)
        assert len(rows) == 16
        h1, h3 = net.get("h1", "h3")
        T.start_servers(h3, [5201])
        flow = T.udp_flow(h1, h3.IP(), 5201, 5, 8)  # 5 Mbit/s from leaf 1 to leaf 2

        def loaded() -> bool:
            up = [r for r in links(ctl) if r["src_dpid"] == 2001]
            return sorted(round(r["utilization"], 1) for r in up)[-1] >= 0.4

        assert wait_until(loaded, timeout=6, interval=0.5)
        time.sleep(2.5)
        rows = links(ctl)
        T.result(flow)
        T.stop_servers(h3)
    by = {(r["src_dpid"], r["dst_dpid"]): r for r in rows}
    uplinks = sorted((by[(2001, s)]["utilization"], s) for s in (1001, 1002))
    spine = uplinks[-1][1]  # the spine ECMP chose for this flow
    assert 0.4 <= uplinks[-1][0] <= 0.65, uplinks  # 5 of 10 Mbit/s, plus headers
    assert uplinks[0][0] < 0.05, uplinks  # the other uplink stays idle
    assert 0.4 <= by[(spine, 2002)]["utilization"] <= 0.65  # and on into leaf 2
    idle = [r for k, r in by.items() if k not in ((2001, spine), (spine, 2002))]
    assert all(r["utilization"] < 0.05 for r in idle), idle
    assert all(r["drops_per_second"] == 0 for r in rows)
