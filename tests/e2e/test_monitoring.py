"""Link load measured from port counters, through ListLinks and fabricctl links."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from mininet_topos import traffic as T
from mininet_topos.network import reachability, wait_until
from mininet_topos.spine_leaf import FabricSpec
from tests.e2e.conftest import running_fabric, scrape

pytestmark = pytest.mark.mininet  # (scripts/run_tests.py: the serial lane)

FABRICCTL = [sys.executable, "-m", "controller.cli.fabricctl"]


def links(ctl) -> list[dict]:
    res = subprocess.run([*FABRICCTL, "--server", ctl.grpc_addr, "--json", "links"],
                         capture_output=True, text=True, check=True)
    return json.loads(res.stdout)


def test_link_utilization_follows_traffic(controller_factory, tmp_path):
    ctl = controller_factory("--link-speed", "10", "--no-qos")
    spec = FabricSpec(spines=2, leaves=4, hosts_per_leaf=2, bw=10)
    with running_fabric(ctl, spec) as (net, topo):
        reachability(net, count=1, timeout=2)
        # (ListLinks answers as of the last poll of the port counters: a link found
        # since then has its row from the next poll on)
        assert wait_until(lambda: len(links(ctl)) == 16, timeout=10, interval=0.5), links(ctl)
        h1, h3 = net.get("h1", "h3")
        T.start_servers(h3, [5201])
        flow = T.udp_flow(h1, h3.IP(), 5201, 5, 8)  # 5 Mbit/s from leaf 1 to leaf 2

        def loaded() -> bool:
            up = [r for r in links(ctl) if r["src_dpid"] == 2001]
            return sorted(round(r["utilization"], 1) for r in up)[-1] >= 0.4

        assert wait_until(loaded, timeout=6, interval=0.5)
        time.sleep(2.5)
        rows = links(ctl)
        metrics = scrape(ctl)
        top = subprocess.run([*FABRICCTL, "--server", ctl.grpc_addr, "top", "--count", "2",
                              "--interval", "0.5"], capture_output=True, text=True, timeout=30)
        pictures = {}
        for kind in ("svg", "png"):
            path = tmp_path / f"fabric.{kind}"
            res = subprocess.run([*FABRICCTL, "--server", ctl.grpc_addr, "topology", "--output",
                                  str(path)], capture_output=True, text=True, timeout=30)
            assert res.returncode == 0, res.stderr
            pictures[kind] = path.read_bytes()
        T.result(flow)
        T.stop_servers(h3)
    by = {(r["src_dpid"], r["dst_dpid"]): r for r in rows}
    uplinks = sorted((by[(2001, s)]["utilization"], s) for s in (1001, 1002))
    spine = uplinks[-1][1]  # the spine ECMP chose for this flow
    assert 0.4 <= uplinks[-1][0] <= 0.65, uplinks  # 5 of 10 Mbit/s, plus headers
    assert uplinks[0][0] < 0.05, uplinks  # the other uplink stays idle
    assert 0.4 <= by[(spine, 2002)]["utilization"] <= 0.65  # and on into leaf 2
    idle = [r for k, r in by.items() if k not in ((2001, spine), (spine, 2002))]
    assert len(rows) == 16 and len(idle) == 14, rows  # every other link direction
    assert all(r["utilization"] < 0.05 for r in idle), idle
    assert all(r["drops_per_second"] == 0 for r in rows)
    assert top.returncode == 0 and top.stdout.count("aifabric top") == 2, top.stderr
    first = [x for x in top.stdout.splitlines() if "->" in x][0]
    assert first.startswith(("2001:", f"{spine}:")) and "#" in first  # busiest first
    # the picture: every switch, the busy uplink in the colour of its load
    from controller.cli.picture import util_colour

    svg = pictures["svg"].decode()
    assert svg.startswith("<svg") and svg.count("<rect") == 7
    assert f'stroke="{util_colour(0.0)}"' in svg and svg.count("<circle") == 8
    assert pictures["png"].startswith(b"\x89PNG") and len(pictures["png"]) > 1000
    # the same through Prometheus
    util = {(s.labels["src_dpid"], s.labels["dst_dpid"]): s.value
            for s in metrics["aifabric_link_utilization_ratio"].samples}
    assert len(util) == 16 and util[("2001", str(spine))] >= 0.4
    connected = metrics["aifabric_switch_connected"].samples
    assert sorted((s.labels["role"], s.value) for s in connected) == \
        [("leaf", 1.0)] * 4 + [("spine", 1.0)] * 2
    assert metrics["aifabric_hosts"].samples[0].value >= 2
    pkt_in = [s for s in metrics["aifabric_openflow_messages"].samples
              if s.name == "aifabric_openflow_messages_total" and s.labels["type"] == "packet_in"]
    assert pkt_in[0].value > 0
    lag = [s for s in metrics["aifabric_event_loop_lag_seconds"].samples
           if s.name == "aifabric_event_loop_lag_seconds_count"]
    assert lag[0].value > 10  # four ticks a second
    assert metrics["aifabric_flows"].samples  # the UDP flow, placed by TE
