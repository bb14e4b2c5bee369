"""Hostile hosts, with real packets: malformed LLDP, ARP hijacks, MAC and new-flow floods.
None of them may stop, blind or hijack the fabric. One fabric serves the whole module
(the attacks leave nothing behind that the next test depends on; each test checks its
own starting point)."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import grpc
import pytest

from controller.frames import build_ethernet, build_lldp, parse_ethernet
from mininet_topos.controller_proc import FabricdProcess
from mininet_topos.network import ping, reachability, wait_until
from mininet_topos.spine_leaf import FabricSpec
from tests.e2e.conftest import running_fabric

ATTACK = Path(__file__).resolve().parents[2] / "mininet_topos" / "attack.py"
SPEC = FabricSpec(spines=2, leaves=4, hosts_per_leaf=2, bw=10)


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


def attack(host, *args: str, wait: bool = True, timeout: float = 120):
    proc = host.popen([sys.executable, str(ATTACK), *args], stdout=subprocess.PIPE,
                      stderr=subprocess.STDOUT, text=True)
    if not wait:
        return proc
    out, _ = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, out
    return out


def ping_loss(proc: subprocess.Popen) -> tuple[int, int]:
    out, _ = proc.communicate(timeout=120)
    m = re.search(r"(\d+) packets transmitted, (\d+) received", out)
    assert m, out
    return int(m.group(1)), int(m.group(2))


def start_ping(src, dst_ip: str, seconds: float, interval: float = 0.01):
    count = int(seconds / interval)
    return src.popen(["ping", "-n", "-q", "-i", str(interval), "-W", "1", "-c", str(count),
                      dst_ip], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def topology(ctl):
    with ctl.client() as c:
        return c.topology()


def counters(ctl) -> dict[str, int]:
    with ctl.client() as c:
        return dict(c.status().counters)


def events(ctl, *kinds: str) -> list:
    """Every event of ``kinds`` so far (a replayed watch, read for a second)."""
    got = []
    with ctl.client() as c:
        try:
            for e in c.watch_events(list(kinds), replay=True, timeout=1.0):
                got.append(e)
        except grpc.RpcError as exc:
            if exc.code() != grpc.StatusCode.DEADLINE_EXCEEDED:
                raise
    return got


def flush_arp(net) -> None:
    for h in net.hosts:
        h.cmd("ip neigh flush all")


def all_pairs_ok(net) -> bool:
    flush_arp(net)
    result = reachability(net, count=2, timeout=1.0)
    return all(result.values())


def lldp_chassis(chassis: bytes) -> bytes:
    """An LLDP frame in aifabric's format whose chassis ID is ``chassis``."""
    genuine = parse_ethernet(build_lldp(1001, 3, b"x" * 32, time.time())).payload
    org = genuine[genuine.index(b"\x02\xaf\x00") - 2:]
    tlv = ((1 << 9) | len(chassis)).to_bytes(2, "big") + chassis
    return build_ethernet("01:80:c2:00:00:0e", "02:00:00:00:00:66", 0x88CC, tlv + org)


def test_malformed_lldp_does_not_stop_the_controller(fabric):
    ctl, net = fabric
    h1 = net.get("h1")
    frames = [lldp_chassis(b"\x07" + c) for c in (b"dpid:-1", b"dpid:+1", b"dpid:" + b"f" * 40,
                                                   b"dpid:\xff", b"")]
    frames += [frames[0][:20], build_ethernet("01:80:c2:00:00:0e", "02:00:00:00:00:66",
                                              0x88CC, b"\xfe\x00" * 300)]
    attack(h1, "send", "h1-eth0", *(f.hex() for f in frames))
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
    mac3 = bytes.fromhex(h3.MAC().replace(":", ""))
    ip1 = bytes(int(x) for x in victim_ip.split("."))
    frames = []
    for op in (1, 2):  # request and reply forms of gratuitous ARP
        arp = (b"\x00\x01\x08\x00\x06\x04" + op.to_bytes(2, "big") + mac3 + ip1
               + (b"\xff" * 6 if op == 2 else bytes(6)) + ip1)
        frames.append((b"\xff" * 6 + mac3 + b"\x08\x06" + arp).ljust(60, b"\0"))
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
    conflicts = events(ctl, "host_conflict")
    assert conflicts and any(e.fields["bound_mac"] == victim_mac for e in conflicts)
    assert counters(ctl).get("host_conflicts", 0) >= 2


def test_mac_flood_is_bounded_and_bystanders_keep_their_ping(fabric):
    ctl, net = fabric
    h2, h6, h8 = net.get("h2"), net.get("h6"), net.get("h8")
    assert len(topology(ctl).links) == 16
    pinger = start_ping(h2, h6.IP(), seconds=12)
    time.sleep(1.0)
    out = attack(h8, "macflood", "h8-eth0", "20000", "2000")
    sent, received = ping_loss(pinger)
    assert sent >= 600, f"the pinger itself was starved: {sent} sent"
    assert received >= 0.99 * sent, f"bystander ping lost {sent - received} of {sent} ({out})"
    topo = topology(ctl)
    assert len(topo.links) == 16
    on_port = [h for h in topo.hosts if (h.dpid, h.port) == (2004, 4)]
    assert len(on_port) <= 32
    assert len(topo.hosts) <= 8 + 32
    drops = events(ctl, "meter_drops", "host_refused")
    assert any(e.kind == "host_refused" for e in drops)
    assert any(e.kind == "meter_drops" and e.fields["port"] == "4"
               and e.fields["dpid"] == "2004" for e in drops)
    assert all_pairs_ok(net)


def test_new_flow_flood_is_policed_at_the_switch(fabric):
    ctl, net = fabric
    h3, h4, h5, h6, h7 = (net.get(n) for n in ("h3", "h4", "h5", "h6", "h7"))
    pinger = start_ping(h4, h6.IP(), seconds=14)
    time.sleep(1.0)
    flood = attack(h7, "flowflood", h3.IP(), "12", "2000", wait=False)
    time.sleep(4.0)
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
    sent, received = ping_loss(pinger)
    assert sent >= 700, f"the pinger itself was starved: {sent} sent"
    assert received >= 0.99 * sent, f"bystander ping lost {sent - received} of {sent} ({out})"
    st = counters(ctl)
    with ctl.client() as c:
        tracked = [f for f in c.flows().flows if f.flow.src_ip == h7.IP()]
    # the meter let through at most its rate (200/s by default) of the ~24,000 flows
    assert len(tracked) <= 200 * 14, len(tracked)
    assert st.get("meter_drops", 0) > 0
    assert len(topology(ctl).links) == 16
