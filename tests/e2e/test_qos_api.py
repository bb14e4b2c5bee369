"""QoS through the API: invalid policies rejected with nothing changed; a new policy
reaches every switch (marking entries, queues, filters) without dropping traffic;
per-queue statistics."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import grpc
import pytest

from aifabric.v1 import fabric_pb2
from controller.core import constants as C
from mininet_topos import traffic as T
from mininet_topos.network import wait_until
from mininet_topos.spine_leaf import FabricSpec
from tests.e2e.conftest import (
    audit_entries,
    flow_table,
    marking,
    queue_rates,
    running_fabric,
    wait_qos_ready,
)

pytestmark = pytest.mark.mininet  # (scripts/run_tests.py: the serial lane)

FABRICCTL = [sys.executable, "-m", "controller.cli.fabricctl"]


BAD = [
    ({"classes": [{"name": "a", "dscp": 26, "queue": 3, "share": 0.7,
                   "match": {"udp_dst": [4791]}},
                  {"name": "b", "dscp": 27, "queue": 4, "share": 0.3,
                   "match": {"udp_dst": [5000]}}]}, "shares add up to 100%"),
    ({"classes": [{"name": "a", "dscp": 26, "queue": 3, "share": 0.2,
                   "match": {"udp_dst": [4791]}},
                  {"name": "b", "dscp": 26, "queue": 4, "share": 0.2,
                   "match": {"udp_dst": [5000]}}]}, "DSCP 26 is marked by both"),
    ({"classes": [{"name": "a", "dscp": 26, "queue": 3, "share": 0.2,
                   "match": {"udp_dst": ["4000-5000"]}},
                  {"name": "b", "dscp": 27, "queue": 4, "share": 0.2,
                   "match": {"udp_dst": [4791]}}]}, "overlapping matches"),
    ({"classes": [{"name": "a", "dscp": 26, "queue": 3, "share": 0.2, "colour": "red",
                   "match": {"udp_dst": [4791]}}]}, "classes.0.colour: unknown field"),
    ({"clases": []}, "unknown field"),
]


def test_qos_policy_through_the_api(controller_factory, tmp_path):
    ctl = controller_factory("--link-speed", "10")
    with running_fabric(ctl, FabricSpec(spines=2, leaves=4, hosts_per_leaf=2, bw=10)) as (
            net, topo):
        wait_qos_ready(net)
        before_marking, before_queues = marking("l1"), queue_rates("l1-eth3")
        assert before_marking  # (what "nothing changed" compares below)
        assert before_queues[3] == 5_000_000  # default policy: RoCE gets half of 10 Mbit/s
        # every switch also maps DSCP to its queue with set_queue (the kernel datapath's way)
        spine = {k: v["actions"] for k, v in flow_table("s1").items()
                 if k.startswith(f"{C.TABLE_CLASSIFY}/300/")}
        assert any("nw_tos=104" in k and "set_queue:3" in a for k, a in spine.items()), spine
        with ctl.client() as c:
            before = c.qos_policy()
            for policy, needle in BAD:
                with pytest.raises(grpc.RpcError) as err:
                    c.set_qos_document(json.dumps(policy))
                assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
                assert needle in err.value.details(), err.value.details()
            # the structured form is validated the same way
            bad = fabric_pb2.QosPolicy(classes=[fabric_pb2.TrafficClass(
                name="x", dscp=99, queue=1, share=0.1,
                match=fabric_pb2.ClassMatch(udp_dst=["1"]))])
            with pytest.raises(grpc.RpcError) as err:
                c.stub.SetQosPolicy(fabric_pb2.SetQosPolicyRequest(policy=bad), timeout=5)
            assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert "classes.0.dscp" in err.value.details()
            assert c.qos_policy() == before
        time.sleep(1.0)
        assert marking("l1") == before_marking and queue_rates("l1-eth3") == before_queues

        # fabricctl: a bad file exits 2 with the reason; a good one is applied everywhere
        bad_file = tmp_path / "bad.yaml"
        bad_file.write_text("classes:\n  - name: a\n    dscp: 70\n    queue: 1\n    share: 0.1\n"
                            "    match: {udp_dst: [1]}\n")
        res = subprocess.run([*FABRICCTL, "--server", ctl.grpc_addr, "qos", "set",
                              str(bad_file)], capture_output=True, text=True)
        assert res.returncode == 2 and "classes.0.dscp" in res.stderr
        good = tmp_path / "good.yaml"
        good.write_text(
            "classes:\n"
            "  - {name: roce, dscp: 26, queue: 3, share: 0.3, match: {udp_dst: [4791]}}\n"
            "  - {name: nccl, dscp: 34, queue: 4, share: 0.4,\n"
            "     match: {tcp_dst: ['5000-5099'], tcp_src: ['5000-5099']}}\n")
        h1, h8 = net.get("h1", "h8")
        # (a count, not a deadline: with -w, the last ping's reply may come after
        # ping has stopped waiting, and it is counted lost)
        pinger = h1.popen(["ping", "-n", "-q", "-i", "0.01", "-c", "400", h8.IP()],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        time.sleep(0.5)
        res = subprocess.run([*FABRICCTL, "--server", ctl.grpc_addr, "qos", "set", str(good)],
                             capture_output=True, text=True)
        assert res.returncode == 0, res.stderr
        assert "nccl" in res.stdout
        audited = audit_entries(ctl)
        assert ("local-admin", "SetQosPolicy", "OK") in audited
        assert ("local-admin", "SetQosPolicy", "INVALID_ARGUMENT") in audited
        out, _ = pinger.communicate(timeout=15)
        assert " 0% packet loss" in out, out  # established traffic kept flowing
        assert wait_until(lambda: queue_rates("l1-eth3") == {0: 3_000_000, 3: 3_000_000,
                                                             4: 4_000_000}, timeout=10)
        assert wait_until(lambda: any("tp_dst=0x1388/0xfff8" in k for k in marking("l4")), 5)
        res = subprocess.run([*FABRICCTL, "--server", ctl.grpc_addr, "--json", "qos", "show"],
                             capture_output=True, text=True, check=True)
        shown = json.loads(res.stdout)
        assert [c["name"] for c in shown["classes"]] == ["roce", "nccl"]
        assert shown["best_effort_share"] == pytest.approx(0.3)

        # per-queue statistics: RoCE traffic shows up in queue 3 of h1's leaf port
        T.start_servers(h1, [4791])
        T.result(T.udp_flow(net.get("h3"), h1.IP(), 4791, 2, 2))
        T.stop_servers(h1)

        def roce_counted() -> bool:
            with ctl.client() as c:
                rows = c.qos_stats(2001).queues
            return any(r.port_name == "l1-eth3" and r.queue == 3 and r.tx_packets > 300
                       for r in rows)

        assert wait_until(roce_counted, timeout=6)

        # two floods into h1 overflow its best-effort queue: the drops show up per queue.
        # One comes from h1's leaf neighbour, so the two meet first at h1's port whatever
        # spine the other takes (two remote floods on one spine would drop at the spine).
        T.start_servers(h1, [5201, 5202])
        floods = [T.udp_flow(net.get(h), h1.IP(), port, 20, 2)
                  for h, port in (("h2", 5201), ("h5", 5202))]
        for f in floods:
            T.result(f)
        T.stop_servers(h1)

        def be_drops() -> int:  # (in process: polled, fabricctl costs 0.4 s of CPU a call)
            with ctl.client() as c:
                rows = c.qos_stats(2001).queues
            return sum(r.tx_errors for r in rows if r.port_name == "l1-eth3" and r.queue == 0)

        assert wait_until(lambda: be_drops() > 100, timeout=6)
        res = subprocess.run([*FABRICCTL, "--server", ctl.grpc_addr, "qos", "stats", "--dpid",
                              "2001"], capture_output=True, text=True, check=True)
        assert "l1-eth3" in res.stdout and "DROPS" in res.stdout
