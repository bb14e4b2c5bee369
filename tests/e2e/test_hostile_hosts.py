"""Hostile hosts, with real packets: malformed LLDP, ARP hijacks, MAC and new-flow floods.
None of them may stop, blind or hijack the fabric. One fabric serves the whole module
(the attacks leave nothing behind that the next test depends on; each test checks its
own starting point)."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from mininet_topos import traffic as T
from mininet_topos.attack import (
    forged_udp,
    gratuitous_arp,
    malformed_lldp,
    start_ping,
    stop_ping,
)
from mininet_topos.attack import run as attack
from mininet_topos.controller_proc import FabricdProcess
from mininet_topos.network import cold_reachability, ping, wait_until
from mininet_topos.spine_leaf import FabricSpec
from tests.e2e.conftest import replay_events, running_fabric, scrape

pytestmark = pytest.mark.mininet  # (scripts/run_tests.py: the serial lane)

SPEC = FabricSpec(spines=2, leaves=4, hosts_per_leaf=2, bw=10)
ROCE_MBPS = 3.0


@pytest.fixture(scope="module")
def fabric(tmp_path_factory):
    log = tmp_path_factory.mktemp("hostile") / "fabricd.log"
    ctl = FabricdProcess(log, extra_args=["--link-speed", "10"])
    ctl.start()
    try:
        with running_fabric(ctl, SPEC) as (net, _topo):
            assert ping(net.get("h1"), net.get("h8").IP(), count=3, interval=0.1) >= 2
            yield ctl, net
    except BaseException:
        print(log.read_text()[-8000:])
        raise
    finally:
        ctl.stop()


@pytest.fixture(autouse=True)
def _log_on_failure(request, fabric):
    """The shared fabricd's log, when a test of this module failed (the conftest prints
    the logs of a test's own controllers only)."""
    yield
    if getattr(request.node, "rep_call_failed", False):
        log = fabric[0].log_path
        print(f"--- {log.name} (shared by this module) ---\n{log.read_text()[-8000:]}")


def fabricctl(ctl, *args: str):
    res = subprocess.run([sys.executable, "-m", "controller.cli.fabricctl", "--server",
                          ctl.grpc_addr, "--json", *args], capture_output=True, text=True,
                         timeout=30)
    assert res.returncode == 0, res.stderr
    out = res.stdout.strip()
    return json.loads(out) if out.startswith("[") else [json.loads(x) for x in
                                                          out.splitlines() if x]


def topology(ctl):
    with ctl.client() as c:
        return c.topology()


def counters(ctl) -> dict[str, int]:
    with ctl.client() as c:
        return dict(c.status().counters)


def all_pairs_ok(net) -> bool:
    return all(cold_reachability(net).values())


def test_malformed_lldp_does_not_stop_the_controller(fabric):
    ctl, net = fabric
    h1 = net.get("h1")
    attack(h1, "send", "h1-eth0", *(f.hex() for f in malformed_lldp()))
    time.sleep(1.0)
    with ctl.client() as c:
        assert c.health() == "SERVING"
    assert all_pairs_ok(net)
    with ctl.client() as c:
        assert "drained" in c.drain_link(2001, 1)
        assert "back in service" in c.undrain(2001, 1)
    st = counters(ctl)
    assert st.get("rejected_lldp", 0) >= 5
    assert not [k for k in st if k.startswith("handler_errors.")], st
    assert len(topology(ctl).links) == 16


def test_gratuitous_arp_cannot_hijack_an_address(fabric):
    ctl, net = fabric
    h1, h3, h5 = net.get("h1"), net.get("h3"), net.get("h5")
    victim_ip, victim_mac = h1.IP(), h1.MAC()
    frames = gratuitous_arp(h3.MAC(), victim_ip)  # h3 claims h1's address
    for _ in range(3):
        attack(h3, "send", "h3-eth0", *(f.hex() for f in frames))
        time.sleep(0.2)
    time.sleep(1.5)  # past the probe timeout: the victim answered its probe
    h5.cmd("ip neigh flush all")
    assert ping(h5, victim_ip, count=3, interval=0.1) >= 2
    assert victim_mac in h5.cmd(f"ip neigh show {victim_ip}")
    hosts = {h.mac: (h.ip, h.dpid, h.port) for h in topology(ctl).hosts}
    assert hosts[victim_mac] == (victim_ip, 2001, 3)
    assert hosts[h3.MAC()][0] == h3.IP()
    conflicts = replay_events(ctl, "host_conflict")
    assert conflicts and any(e.fields["bound_mac"] == victim_mac for e in conflicts)
    assert counters(ctl).get("host_conflicts", 0) >= 2
    # and as an operator sees it
    rows = fabricctl(ctl, "hosts")
    states = {r["mac"]: r["state"] for r in rows}
    assert states[victim_mac] == "bound" and states[h3.MAC()] == "bound", states
    got = fabricctl(ctl, "events", "--kind", "host_conflict", "--replay", "--count", "1")
    assert got[0]["kind"] == "host_conflict"


def test_mac_flood_is_bounded_and_bystanders_keep_their_ping(fabric):
    ctl, net = fabric
    h2, h6, h8 = net.get("h2"), net.get("h6"), net.get("h8")
    assert len(topology(ctl).links) == 16
    pinger = start_ping(h2, h6.IP(), seconds=60)  # (stopped once the flood has ended)
    time.sleep(1.0)
    t0 = time.monotonic()
    out = attack(h8, "macflood", "h8-eth0", "12000", "2000")  # 6 s
    p = stop_ping(pinger)
    # (10 ms apart: 100 a second, at least half of that while the flood went on)
    assert p.sent >= 50 * (time.monotonic() - t0 + 1), f"the pinger was starved: {p}"
    assert p.loss <= 0.01, f"bystander ping lost {p.sent - p.received} of {p.sent} ({out})"
    topo = topology(ctl)
    assert len(topo.links) == 16
    on_port = [h for h in topo.hosts if (h.dpid, h.port) == (2004, 4)]
    assert len(on_port) <= 32
    assert len(topo.hosts) <= 8 + 32
    drops = replay_events(ctl, "meter_drops", "host_refused")
    assert any(e.kind == "host_refused" for e in drops)
    assert any(e.kind == "meter_drops" and e.fields["port"] == "4"
               and e.fields["dpid"] == "2004" for e in drops)
    assert all_pairs_ok(net)


def test_new_flow_flood_is_policed_at_the_switch(fabric):
    ctl, net = fabric
    h3, h4, h5, h6, h7 = (net.get(n) for n in ("h3", "h4", "h5", "h6", "h7"))
    pinger = start_ping(h4, h6.IP(), seconds=60)  # (stopped once the flood has ended)
    time.sleep(1.0)
    t0 = time.monotonic()
    flood = attack(h7, "flowflood", h3.IP(), "8", "2000", wait=False)
    time.sleep(3.0)
    # a new TCP flow elsewhere is still placed by TE while the flood goes on
    server = h5.popen(["iperf3", "-s", "-1", "-p", "5301"], stdout=subprocess.DEVNULL,
                      stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    client = net.get("h2").popen(["iperf3", "-c", h5.IP(), "-p", "5301", "-t", "4",
                                  "--cport", "40123"], stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL)

    def placed() -> bool:
        with ctl.client() as c:
            return any(f.flow.src_ip == net.get("h2").IP() and f.flow.dst_ip == h5.IP()
                       and f.flow.src_port == 40123 and f.spine for f in c.flows().flows)

    assert wait_until(placed, timeout=4.0, interval=0.3), "the new TCP flow was not placed"
    client.wait(20)
    server.wait(20)
    out, _ = flood.communicate(timeout=60)
    p = stop_ping(pinger)
    assert p.sent >= 50 * (time.monotonic() - t0 + 1), f"the pinger was starved: {p}"
    assert p.loss <= 0.01, f"bystander ping lost {p.sent - p.received} of {p.sent} ({out})"
    st = counters(ctl)
    with ctl.client() as c:
        tracked = [f for f in c.flows().flows if f.flow.src_ip == h7.IP()]
    # the meter let through at most its rate (200/s by default) of the ~16,000 flows
    assert len(tracked) <= 200 * 10, len(tracked)
    assert st.get("meter_drops", 0) > 0
    assert len(topology(ctl).links) == 16


def test_a_cnp_marked_flood_does_not_starve_roce(fabric):
    """A host marks a flood as CNP (UDP 4791, DSCP 48: the strict class). The strict class
    is capped at its share, so an honest RoCE flow to the same host keeps its guarantee."""
    ctl, net = fabric
    h1, h3, h5 = net.get("h1"), net.get("h3"), net.get("h5")
    T.start_servers(h1, [4791, 5202])
    try:
        flood = T.udp_flow(h5, h1.IP(), 4791, 12, 8, tos=48 << 2)
        time.sleep(1.5)
        roce = T.udp_flow(h3, h1.IP(), 5202, ROCE_MBPS, 5, tos=26 << 2)
        r, f = T.result(roce), T.result(flood)
    finally:
        T.stop_servers(h1)
    assert r.lost_percent < 2.0, r
    assert r.delivered_mbps >= 0.9 * ROCE_MBPS, r
    # the flood got no more than the strict class's share (5% of 10 Mbit/s) and change
    assert f.received_mbps < 2.0, f


def test_a_flood_of_collective_flows_weighs_as_one_host(fabric):
    """h7 marks everything it sends DSCP 34, the collective class, whose flows TE places
    by who sends and receives on each link: a heavy stream, new flows to three hosts
    from its own address, and new flows from forged addresses (the source guard stops
    those at its port). TE tracks flows in h7's own name only, no more than its port's
    copy meter lets through. h8, h7's leaf neighbour, starts an honest collective flow
    (to h6, whom no earlier test of the module sends to: a receiver's recent flows weigh
    in the placement too): h7's flows, however many, weigh as one host, so it leaves by
    the spine h7's stream does not use, and keeps its rate."""
    ctl, net = fabric
    h2, h3, h4, h5, h6, h7, h8 = (net.get(n) for n in ("h2", "h3", "h4", "h5", "h6",
                                                        "h7", "h8"))
    dscp = 34
    dropped = counters(ctl).get("source_guard_dropped", 0)
    T.start_servers(h6, [5205])
    T.mark_tcp_dscp([h8], dscp)  # (iperf3 sets its TOS after the first packet)
    try:
        stream = attack(h7, "udp", h3.IP(), "5204", "14", "8", str(dscp << 2), wait=False)

        def stream_placed() -> bool:
            with ctl.client() as c:
                return any(f.flow.dst_port == 5204 for f in c.flows().flows)

        assert wait_until(stream_placed, timeout=3.0, interval=0.2)
        own = attack(h7, "flowflood", ",".join(h.IP() for h in (h2, h3, h5)), "12", "1500",
                     str(dscp << 2), wait=False)
        forged = attack(h7, "spoofflood", "h7-eth0", h7.MAC(), h4.MAC(), h4.IP(), "12",
                        "500", str(dscp << 2), wait=False)
        time.sleep(3.0)
        honest = T.tcp_flow(h8, h6.IP(), 5205, 6, omit=1)
        time.sleep(4.0)
        with ctl.client() as c:
            listed = c.flows()
            rows = [f for f in listed.flows if f.src_leaf == 2004]
        got = T.result(honest, timeout=30)
        for proc in (stream, own, forged):  # (read: the rest of their run would only wait)
            proc.kill()
            proc.communicate(timeout=10)
    finally:
        T.stop_servers(h6)
        h8.cmd("iptables -t mangle -F OUTPUT")
    mine = [f for f in rows if f.traffic_class == "collective" and f.flow.src_ip != h8.IP()]
    # no flow in a forged name is tracked: the source guard stopped them at h7's port
    assert {f.flow.src_ip for f in mine} == {h7.IP()}, {f.flow.src_ip for f in mine}
    assert counters(ctl).get("source_guard_dropped", 0) - dropped > 100
    # the copy meter (200/s) bounds what the flood made TE track
    assert 10 < len(mine) <= 200 * 15, len(mine)
    # the honest flow (iperf3's data connection: the busier of its two) does not share
    # h7's uplink with the stream, and keeps its rate
    spines: dict[int, int] = {}
    for f in mine:
        spines[f.spine] = spines.get(f.spine, 0) + 1
    stream_spine = [f.spine for f in mine if f.flow.dst_port == 5204]
    fair = max((f for f in rows if f.flow.src_ip == h8.IP() and f.flow.dst_port == 5205),
               key=lambda f: f.rate_bps)
    why = (spines, stream_spine, fair.spine, fair.moves, fair.traffic_class, got,
           [(f.traffic_class, f.spine, f.rate_bps, f.moves, f.age_seconds) for f in rows
            if f.flow.dst_port == 5204],
           [(f.flow.src_port, f.flow.dst_port, f.spine, f.rate_bps, f.moves,
             f"placed at {listed.collected_at - f.age_seconds:.2f}")
            for f in rows if h8.IP() in (f.flow.src_ip, f.flow.dst_ip)],
           {s: sum(f.rate_bps for f in mine if f.spine == s) for s in spines},  # (tracked)
           [(f"{e.time:.2f}", e.message) for e in replay_events(ctl, "reroute")][-6:],
           {k: v for k, v in counters(ctl).items() if k.startswith("te_")})
    why = "\n".join(map(str, why))  # (a str: pytest would shorten a tuple's repr)
    assert fair.traffic_class == "collective", why
    assert len(stream_spine) == 1 and fair.spine != stream_spine[0], why
    # Alone on its uplink it gets ~9 of the 10 Mbit/s (8.3-9.3 in 12 local runs); on
    # the stream's, beside 8 Mbit/s of UDP, 2 at most. A fresh-clone CI run once got
    # 5.46 with the placement right (the machine busy): the bound sits between the two.
    assert got.received_mbps >= 4.5, why


def test_a_host_that_really_moved_is_accepted(fabric):
    """Two genuine moves (run last: h8 and h7 end up on other leaves). h8 migrates like a
    VM: its old port stays up but nothing there answers for it any more, so the probe
    goes unanswered and the binding follows it. h7 is re-cabled: its old port goes down,
    which releases the binding at once."""
    ctl, net = fabric
    h1, h7, h8, l3 = (net.get(n) for n in ("h1", "h7", "h8", "l3"))
    mac8, ip8, mac7, ip7 = h8.MAC(), h8.IP(), h7.MAC(), h7.IP()
    new_ports = {}
    for host in (h8, h7):
        link = net.addLink(host, l3)
        l3.attach(link.intf2)
        ofport = subprocess.run(["ovs-vsctl", "get", "Interface", link.intf2.name, "ofport"],
                                capture_output=True, text=True, check=True).stdout
        new_ports[host.name] = (link.intf1.name, int(ofport))
    time.sleep(1.5)  # the new ports have been up for the settle time: edge ports
    # h8: the old interface keeps its carrier but takes another MAC and no address
    new8, l3port8 = new_ports["h8"]
    h8.cmd(f"ip addr flush dev h8-eth0; ip link set h8-eth0 address 02:00:00:00:08:08;"
           f" ip link set {new8} address {mac8}; ip addr add {ip8}/8 dev {new8};"
           f" ip link set {new8} up; ethtool -K {new8} tx off rx off; ip neigh flush all")

    def bound_at(mac: str) -> tuple[int, int] | None:
        for h in topology(ctl).hosts:
            if h.mac == mac:
                return (h.dpid, h.port)
        return None

    def h8_reaches_h1() -> bool:
        return ping(h8, h1.IP(), count=1, timeout=0.5) == 1

    assert wait_until(h8_reaches_h1, timeout=10.0, interval=0.5)
    assert bound_at(mac8) == (2003, l3port8)
    moved = replay_events(ctl, "host_moved")
    assert any(e.fields["mac"] == mac8 for e in moved), moved
    # h7: re-cabled, the old port goes down first
    new7, l3port7 = new_ports["h7"]
    net.configLinkStatus("h7", "l4", "down")
    h7.cmd(f"ip addr flush dev h7-eth0; ip link set {new7} address {mac7};"
           f" ip addr add {ip7}/8 dev {new7}; ip link set {new7} up;"
           f" ethtool -K {new7} tx off rx off; ip neigh flush all")
    assert wait_until(lambda: ping(h7, h1.IP(), count=1, timeout=0.5) == 1, timeout=10.0,
                      interval=0.5)
    assert bound_at(mac7) == (2003, l3port7)
    h1.cmd("ip neigh flush all")
    assert ping(h1, ip7, count=3, interval=0.1) >= 2
    assert ping(h1, ip8, count=3, interval=0.1) >= 2


def arrivals(receiver, expr: str, send, count: int) -> int:
    """How many packets matching ``expr`` (tcpdump) reach ``receiver`` while ``send``
    runs, counting up to ``count``."""
    cap = receiver.popen(["tcpdump", "-l", "-n", "-c", str(count), "-i",
                          f"{receiver.name}-eth0", *expr.split()],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    time.sleep(1.0)
    send()
    time.sleep(1.0)
    cap.terminate()
    out, _ = cap.communicate(timeout=10)
    return sum(1 for line in out.splitlines() if " IP " in line)


def test_a_host_cannot_send_in_another_hosts_name(fabric):
    """The source guard: h2 sends UDP as h1 (h1's address, with its own MAC and with
    h1's) to h3 on another leaf: none of it arrives; the same frames from h1 do. h2
    keeps its own binding and h1 its own, and both still reach h3."""
    ctl, net = fabric
    h1, h2, h3 = net.get("h1", "h2", "h3")
    assert ping(h1, h3.IP(), count=2, interval=0.2) >= 1
    assert ping(h2, h3.IP(), count=2, interval=0.2) >= 1
    dropped = counters(ctl).get("source_guard_dropped", 0)
    as_h1 = [forged_udp(mac, h3.MAC(), h1.IP(), h3.IP(), 40000 + k, 9).hex()
             for k, mac in enumerate((h2.MAC(), h1.MAC()) * 10)]
    expr = f"udp and dst port 9 and src {h1.IP()}"
    forged = arrivals(h3, expr, lambda: attack(h2, "send", "h2-eth0", *as_h1), 20)
    genuine = arrivals(h3, expr, lambda: attack(h1, "send", "h1-eth0", *as_h1[1::2]), 10)
    assert forged == 0, forged
    assert genuine >= 9, genuine  # (the same frames, from h1's own port)
    # the frames with h2's own MAC are dropped as forged; those with h1's MAC are a
    # claim on h1's MAC from another port: refused (h1 is probed and answers)
    now = counters(ctl).get("source_guard_dropped", 0)
    assert now - dropped >= 5
    # (metrics are published with the next snapshot)
    assert wait_until(lambda: scrape(ctl)["aifabric_source_guard_dropped"].samples[0].value
                      == now, timeout=5)
    hosts = {h["mac"]: h for h in fabricctl(ctl, "hosts")}
    assert hosts[h1.MAC()]["ip"] == h1.IP() and hosts[h2.MAC()]["ip"] == h2.IP()
    assert ping(h1, h3.IP(), count=3, interval=0.2) >= 2
    assert ping(h2, h3.IP(), count=3, interval=0.2) >= 2
