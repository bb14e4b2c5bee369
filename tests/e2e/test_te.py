"""Traffic engineering on Mininet with real TCP/UDP flows and 5 Mbit/s links (2 spines,
4 leaves, 2 hosts per leaf): permutation throughput, a hotspot routed around, a spine
link cut during a ping. (Flows pinned and refused through fabricctl, plain ECMP
without TE: on the fake fleet, tests/e2e/test_fleet_api.py.)"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time

import pytest

from controller.core import constants as C
from mininet_topos import traffic as T
from mininet_topos.network import wait_until
from mininet_topos.spine_leaf import FabricSpec
from tests.e2e.conftest import running_fabric

pytestmark = pytest.mark.mininet  # (scripts/run_tests.py: the serial lane)

FABRICCTL = [sys.executable, "-m", "controller.cli.fabricctl"]
SPEC = FabricSpec(spines=2, leaves=4, hosts_per_leaf=2, bw=5)
RATE = 5.0  # Mbit/s
# QoS off: these tests are about paths; the QoS tests cover the queues
ARGS = ("--link-speed", "5", "--no-qos")


def ctl_json(ctl, *args: str):
    res = subprocess.run([*FABRICCTL, "--server", ctl.grpc_addr, "--json", *args],
                         capture_output=True, text=True, timeout=30)
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)


def flows(ctl, **match) -> list[dict]:
    """ListFlows, in process: a fabricctl process per poll would take CPU from the
    userspace datapath these tests measure."""
    from controller.cli.client import flow_dict

    with ctl.client() as c:
        rows = [flow_dict(f) for f in c.flows().flows]
    return [r for r in rows if all(r[k] == v for k, v in match.items())]


class EventRecorder:
    """Collects WatchEvents in a thread for the duration of a test."""

    def __init__(self, ctl) -> None:
        self.events: list[dict] = []
        self.client = ctl.client()
        self.stream = self.client.watch_events()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        import grpc

        try:
            for e in self.stream:
                self.events.append({"kind": e.kind, "message": e.message,
                                    "fields": dict(e.fields), "time": e.time})
        except grpc.RpcError:
            pass

    def of(self, kind: str) -> list[dict]:
        return [e for e in list(self.events) if e["kind"] == kind]

    def close(self) -> None:
        self.stream.cancel()
        self.thread.join(5)
        self.client.close()


def test_permutation_reaches_the_non_blocking_rate(controller_factory):
    ctl = controller_factory(*ARGS)
    with running_fabric(ctl, SPEC) as (net, topo):
        hosts = [net.get(f"h{i}") for i in range(1, 9)]
        # every leaf sends two flows to one other leaf: hashing alone often stacks
        # both on one spine (the leaf pair needs both)
        pairs = [(0, 2), (1, 3), (2, 4), (3, 5), (4, 6), (5, 7), (6, 0), (7, 1)]
        for _, d in pairs:
            T.start_servers(hosts[d], [5201], settle=0)
        time.sleep(0.3)
        events = EventRecorder(ctl)
        t0 = time.time()
        # (iperf3 runs the omitted 6 s and then 8 measured: 14 s in all; bench.te
        # measures the rate itself over 12 s)
        procs = [T.tcp_flow(hosts[s], hosts[d].IP(), 5201, 8, omit=6) for s, d in pairs]

        def placed() -> bool:
            big = flows(ctl, dst_port=5201, large=True)
            by_leaf: dict[int, set[int]] = {}
            for r in big:
                by_leaf.setdefault(r["src_leaf"], set()).add(r["spine"])
            return len(big) == 8 and len(by_leaf) == 4 and all(
                len(s) == 2 for s in by_leaf.values())

        assert wait_until(placed, timeout=12, interval=1.0), flows(ctl, dst_port=5201)
        # the data plane follows: every leaf's two uplinks each carry one flow (with two
        # flows hashed onto one spine, the other uplink would stand idle), and so does
        # each spine's link into every leaf (two flows into a leaf over one spine would
        # leave its other downlink idle)
        # (the best of four one-second readings: a single reading can fall on a second
        # in which the emulated link dropped and TCP backed off; CI saw 0.8 Mbit/s once
        # on an uplink whose flow averaged 4)
        uplinks: dict[tuple[int, int], float] = {}
        downlinks: dict[tuple[int, int], float] = {}
        for when in (8, 9.5, 11, 12.5):
            time.sleep(max(0.0, t0 + when - time.time()))
            with ctl.client() as c:
                for lk in c.links().links:
                    if lk.src_dpid in SPEC.leaf_dpids():
                        key = (lk.src_dpid, lk.src_port)
                        uplinks[key] = max(uplinks.get(key, 0.0), lk.rate_bps / 1e6)
                    else:
                        key = (lk.src_dpid, lk.dst_dpid)
                        downlinks[key] = max(downlinks.get(key, 0.0), lk.rate_bps / 1e6)
        results = [T.result(p, timeout=60) for p in procs]
        events.close()
        # what the leaves held at the end, for the failure message
        pins = {leaf: [line.split(f"table={C.TABLE_TE}, ")[-1] for line in subprocess.run(
            ["ovs-ofctl", "-O", "OpenFlow13", "dump-flows", leaf, f"table={C.TABLE_TE}"],
            capture_output=True, text=True).stdout.splitlines() if "tp_dst=5201" in line]
            for leaf in ("l1", "l2", "l3", "l4")}
    total = sum(r.received_mbps for r in results)
    moves = [(round(e["time"] - t0, 1), e["message"]) for e in events.of("reroute")]
    why = ([round(r.received_mbps, 2) for r in results], uplinks, downlinks, moves, pins)
    # (an idle uplink carries only ACKs, ~0.1 Mbit/s; a used one at least several times
    # the 1 Mbit/s bound even when the emulation runs slow)
    assert len(uplinks) == 8 and min(uplinks.values()) >= 0.2 * RATE, why
    assert len(downlinks) == 8 and min(downlinks.values()) >= 0.2 * RATE, why
    # (generous bounds, that no flow was starved: the rate itself is measured in
    # bench/te.py. On 2 shared cores the emulated links deliver 80-95% of their rate
    # when all eight flows run on a quiet day, and CI saw 69% on a busy one, with every
    # link above in use; the links' use is what shows the placement)
    assert min(r.received_mbps for r in results) >= 0.3 * RATE, why
    assert total >= 0.55 * 8 * RATE, why


@pytest.mark.parametrize("rebalance", [True, False], ids=["rebalancing", "congestion-only"])
def test_a_hotspot_on_one_spine_is_routed_around(controller_factory, tmp_path, rebalance):
    # With periodic rebalancing the flow moves as soon as the demands show a better
    # placement; without it, congestion detection (80% for 3 readings) moves it.
    cfg = tmp_path / "fabricd.yaml"
    cfg.write_text(f"te:\n  rebalance: {str(rebalance).lower()}\n")
    ctl = controller_factory(*ARGS, "--config", str(cfg))
    with running_fabric(ctl, SPEC) as (net, topo):
        h1, h2, h3, h4 = net.get("h1", "h2", "h3", "h4")
        T.start_servers(h3, [5201])
        T.start_servers(h4, [5202])
        h2.cmd(f"ping -c 1 -W 1 {h4.IP()}")  # pins name hosts the controller knows
        events = EventRecorder(ctl)
        try:
            tcp = T.tcp_flow(h1, h3.IP(), 5201, 24)

            def bulk() -> dict | None:
                # iperf3's data connection: its control connection to the same port may
                # show as large for a reading too, and outrun the data connection's
                # first reading; only the data connection carries half the link
                rows = flows(ctl, dst_port=5201, large=True)
                best = max(rows, key=lambda f: f["rate_bps"], default=None)
                return best if best and best["rate_bps"] >= 0.5 * RATE * 1e6 else None

            assert wait_until(lambda: bulk() is not None, timeout=8), json.dumps(flows(ctl))
            flow = bulk()
            assert flow is not None
            hot = flow["spine"]
            # background traffic held on the same spine by an operator pin
            ctl_json(ctl, "pin", "udp", h2.IP(), h4.IP(), "--dport", "5202",
                     "--spine", str(hot))
            t0 = time.time()
            udp = T.udp_flow(h2, h4.IP(), 5202, 4.5, 10)  # (outlasts took < 8)

            def moved() -> bool:
                rows = flows(ctl, dst_port=5201, src_port=flow["src_port"])
                return bool(rows) and rows[0]["spine"] != hot

            assert wait_until(moved, timeout=12, interval=0.5), events.events

            def reroutes() -> list[dict]:
                return [e for e in events.of("reroute") if e["fields"]["flow"].startswith(
                    f"tcp {h1.IP()}:{flow['src_port']}")]

            # (the event reaches the recorder's stream a moment after the flows list
            # shows the move: CI once read it too early)
            wait_until(lambda: bool(reroutes()), timeout=3, interval=0.1)
            # with rebalancing, whichever sees it first moves it (both are right)
            why = ("rebalance", "congestion") if rebalance else ("congestion",)
            assert reroutes() and reroutes()[0]["fields"]["reason"].startswith(why), (
                reroutes(), events.events, flows(ctl, dst_port=5201))
            reroute = reroutes()[0]
            if not rebalance:
                assert events.of("congestion")
            took = reroute["time"] - t0
            # the TCP flow has the other spine to itself (after congestion it may first
            # have to come out of its retransmission back-off)
            assert wait_until(lambda: flows(ctl, dst_port=5201, src_port=flow["src_port"])[0]
                              ["rate_bps"] >= 0.7 * RATE * 1e6, timeout=12, interval=0.5), \
                flows(ctl, dst_port=5201, src_port=flow["src_port"])
            udp_res = T.result(udp, timeout=30)
            tcp.kill()  # (its rate was read above; the rest of its 24 s would only wait)
            tcp.wait(5)
        finally:
            events.close()
    assert took < 8.0  # 3 readings of 1 s, plus counter smoothing
    assert udp_res.lost_percent < 10, udp_res  # the pinned flow itself keeps its path


def test_cutting_a_spine_link_loses_a_fraction_of_a_second(controller_factory):
    ctl = controller_factory(*ARGS)
    with running_fabric(ctl, SPEC) as (net, topo):
        h1, h3 = net.get("h1", "h3")
        T.start_servers(h3, [5201])
        events = EventRecorder(ctl)
        try:
            # a UDP "ping" at 100 packets/s that TE places, and a real ping at 10 ms
            udp = T.udp_flow(h1, h3.IP(), 5201, 0.08, 9, length=100)
            pinger = h1.popen(["ping", "-n", "-q", "-i", "0.01", "-w", "8", h3.IP()],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            mine = {"dst_port": 5201, "protocol": "udp", "src_ip": h1.IP()}
            assert wait_until(lambda: flows(ctl, **mine), timeout=4)
            (flow,) = flows(ctl, **mine)
            spine = flow["spine"]
            time.sleep(1.0)
            # the far side of the path: the spine's link to the destination leaf
            net.configLinkStatus(f"s{spine - 1000}", "l2", "down")
            out, _ = pinger.communicate(timeout=20)
            res = T.result(udp, timeout=30)
            (after,) = flows(ctl, **mine)
            reroutes = events.of("reroute")
        finally:
            events.close()
            net.configLinkStatus(f"s{spine - 1000}", "l2", "up")
    sent, received = (int(x) for x in out.split("packets transmitted")[0].split()[-1:] +
                      out.split("received")[0].split()[-1:])
    # 10 pings = 100 ms, what a quiet machine loses (fabricd's groups change ~10 ms
    # after the port-status); a bound with room for the CI's two shared cores, where
    # 13-17 were lost
    assert sent > 300 and sent - received <= 25, out
    assert res.packets > 500 and res.lost_packets <= 25, res
    assert after["spine"] != spine and after["moves"] >= 1
    assert any("down" in e["fields"]["reason"] for e in reroutes), reroutes
