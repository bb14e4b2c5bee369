"""QoS end to end: a RoCE-like flow and a collective keep their share of a congested
port against bulk traffic, on a host port and on a spine uplink (the bulk traffic's own
loss shows the port was congested; bench.qos measures the same scenarios without QoS)."""

from __future__ import annotations

import json
import subprocess
import time

import pytest

from mininet_topos import traffic as T
from mininet_topos.spine_leaf import FabricSpec
from tests.e2e.conftest import running_fabric, wait_qos_ready

pytestmark = pytest.mark.mininet  # (scripts/run_tests.py: the serial lane)

ROCE_MBPS = 3.0
ROCE_SECONDS = 4.0
# Offered beyond the flood's own 10 Mbit/s link, which caps it at the link rate: the
# shared port gets about 13 Mbit/s for its 10.
BULK_MBPS = 20.0


def roce_vs_bulk(controller_factory, spec, roce=("h3", "h1"), bulk=("h2", "h1")):
    """A RoCE-like flow and, 0.3 s after it, a UDP flood onto the same port, with the
    default QoS policy: the results of both."""
    ctl = controller_factory("--link-speed", "10")
    with running_fabric(ctl, spec) as (net, topo):
        wait_qos_ready(net)
        src_r, dst_r = net.get(*roce)
        src_b, dst_b = net.get(*bulk)
        T.start_servers(dst_r, [4791])
        T.start_servers(dst_b, [5201])
        # RoCE first, so that iperf3's control connection and UDP set-up (best effort,
        # like any TCP) cross an idle port: behind the flood they may take seconds,
        # and the RoCE flow then starts late or runs after the flood. The flood
        # outlasts the RoCE flow's run.
        rdma = T.udp_flow(src_r, dst_r.IP(), 4791, ROCE_MBPS, ROCE_SECONDS)
        time.sleep(0.3)
        flood = T.udp_flow(src_b, dst_b.IP(), 5201, BULK_MBPS, ROCE_SECONDS + 0.7)
        r, b = T.result(rdma), T.result(flood)
        T.stop_servers(dst_r, dst_b)
    return r, b


# The flood comes from h1's leaf neighbour h2: the only queue it shares with the RoCE
# flow (h3, on leaf 2, over either spine) is h1's host port. (From another leaf, hash
# ECMP put both flows on one spine, and the spine's port to leaf 1 was the bottleneck.)
HOST_PORT = FabricSpec(spines=2, leaves=4, hosts_per_leaf=2, bw=10)
# One spine: both flows cross spine 1 -> leaf 1, each to its own host.
UPLINK = FabricSpec(spines=1, leaves=3, hosts_per_leaf=2, bw=10, uplink_bw=10)


@pytest.mark.parametrize(
    "spec,roce,bulk",
    [(HOST_PORT, ("h3", "h1"), ("h2", "h1")), (UPLINK, ("h3", "h1"), ("h5", "h2"))],
    ids=["host-port", "spine-uplink"],
)
def test_roce_keeps_its_guarantee_against_a_bulk_flood(controller_factory, spec, roce, bulk):
    on, bulk_on = roce_vs_bulk(controller_factory, spec, roce, bulk)
    assert on.lost_percent < 1.0, on
    assert on.delivered_mbps >= 0.95 * ROCE_MBPS, on
    # the rest of the port is still used (delivered: iperf3's receiver rate also counts
    # its wait at the end, and read 4.6 Mbit/s for 7.1 delivered once in CI)
    assert bulk_on.delivered_mbps > 5.0, bulk_on
    # and the port was over-subscribed: the flood lost what did not fit beside RoCE
    # (measured: 28% of its 9.8 Mbit/s, 7 of the port's 10 left to it).
    # (Without QoS the same flood tail-drops both flows: bench.qos measures that
    # baseline in the same invocation; RoCE lost 49-83% on the host port and 12-61% on
    # the uplink when this test ran it too)
    assert bulk_on.lost_percent > 10.0, bulk_on


def queue_tx_bytes(switch: str, port: int, queue: int) -> int:
    out = subprocess.run(["ovs-ofctl", "-O", "OpenFlow13", "queue-stats", switch, str(port),
                          str(queue)], capture_output=True, text=True, check=True).stdout
    return int(out.split("bytes=")[1].split(",")[0])


def test_collective_tcp_keeps_its_share_against_bulk_tcp(controller_factory, tmp_path):
    """Judged by what left h1's leaf port in the collective's queue (OVS queue counters),
    not by iperf3's own estimates."""
    policy = {"classes": [
        {"name": "collective", "dscp": 34, "queue": 4, "share": 0.6,
         "match": {"dscp": [34]}},
    ]}
    cfg = tmp_path / "qos.yaml"
    cfg.write_text(json.dumps({"qos": {"policy": policy}}))
    # 5 Mbit/s links: two dozen TCP flows at 10 Mbit/s exhaust the userspace datapath's
    # CPU before the port, and then no queue discipline can help (ENVIRONMENT.md)
    spec = FabricSpec(spines=2, leaves=4, hosts_per_leaf=2, bw=5)
    # TE off: every flow ends at h1's port, whatever spine it crosses, and TE moving the
    # bulk flows between spines meanwhile (each twice in 5 s in a run where the port was
    # filled to 72% and the collective got 1.45 Mbit/s) measured its churn, not the queues
    ctl = controller_factory("--link-speed", "5", "--config", str(cfg), "--no-te")
    with running_fabric(ctl, spec) as (net, topo):
        wait_qos_ready(net)
        h1 = net.get("h1")
        senders = ("h2", "h4", "h5", "h6", "h7", "h8")  # 6 x 2 bulk TCP flows into h1
        T.start_servers(h1, [5301] + [5310 + i for i in range(len(senders))])
        bulks = [T.tcp_flow(net.get(h), h1.IP(), 5310 + i, 10, streams=2)
                 for i, h in enumerate(senders)]
        time.sleep(1.5)
        be0, c0, t0 = queue_tx_bytes("l1", 3, 0), queue_tx_bytes("l1", 3, 4), time.monotonic()
        coll = T.tcp_flow(net.get("h3"), h1.IP(), 5301, 6, tos=34 << 2)
        T.result(coll)
        elapsed = time.monotonic() - t0
        be1, c1 = queue_tx_bytes("l1", 3, 0), queue_tx_bytes("l1", 3, 4)
        for b in bulks:  # (read above, by the queue counters: the rest would only wait)
            b.kill()
            b.wait(5)
        T.stop_servers(h1)
    coll_mbps = (c1 - c0) * 8 / elapsed / 1e6
    bulk_mbps = (be1 - be0) * 8 / elapsed / 1e6
    # Its guarantee is 60% of 5 Mbit/s = 3; its fair share among 13 TCP flows would be
    # 0.38. Measured here: 1.86-2.28 in 4 local runs (one TCP flow does not fill its
    # whole class in this emulation), 1.25 once in a fresh-clone CI run with the other
    # lane busy: the bound is about three times the fair share.
    assert coll_mbps >= 1.1, (coll_mbps, bulk_mbps)
    assert bulk_mbps > 0.5, (coll_mbps, bulk_mbps)  # bulk did compete, and got the rest
    assert coll_mbps + bulk_mbps <= 5.3, (coll_mbps, bulk_mbps)  # the port's rate holds
