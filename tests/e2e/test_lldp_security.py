"""Hosts cannot fake the topology with LLDP: forged, foreign and replayed probes
arriving on host ports create no link."""

from __future__ import annotations

import time
from pathlib import Path

from controller.core.frames import build_ethernet, build_lldp
from mininet_topos.network import ping

TOOL = Path(__file__).with_name("lldp_tool.py")


def links_and_warnings(ctl):
    with ctl.client() as c:
        topo = c.topology()
        status = c.status()
    links = {(lk.src_dpid, lk.src_port, lk.dst_dpid, lk.dst_port) for lk in topo.links}
    return links, list(topo.warnings), status.counters.get("rejected_lldp", 0)


def test_lldp_from_host_ports_creates_no_link(fabric_2x4, tmp_path):
    ctl, net, spec = fabric_2x4
    h1, h5 = net.get("h1"), net.get("h5")
    links0, warnings0, rejected0 = links_and_warnings(ctl)
    assert len(links0) == 16 and warnings0 == []

    # 1. Frames no switch of ours sent: a probe in aifabric's format signed with a guessed
    #    key, and a plain LLDP frame as any switch or host agent would send.
    frames = {
        "forged.hex": build_lldp(1001, 3, b"guess".ljust(32, b"\0"), time.time()),
        "foreign.hex": build_ethernet(
            "01:80:c2:00:00:0e", "00:00:00:00:00:01", 0x88CC,
            b"\x02\x07\x04" + bytes(6) + b"\x04\x02\x07" + b"1" + b"\x06\x02\x00\x78\x00\x00",
        ),
    }
    for name, frame in frames.items():
        (tmp_path / name).write_text(frame.hex())
        for host in (h1, h5):
            assert send(host, tmp_path / name)

    # 2. A genuine probe: h1 is silent, so l1 still probes its port and h1 can capture one.
    captured = tmp_path / "genuine.hex"
    h1.cmd(f"python3 {TOOL} capture h1-eth0 {captured} 5")
    assert captured.exists(), "no LLDP probe reached the silent host"
    # Both hosts speak (they are learned on their ports), then replay the fresh probe at
    # once: into the port it came out of, and through a colluding host on another leaf.
    assert ping(h1, h5.IP(), count=1, interval=0.1) == 1
    for host in (h1, h5):
        assert send(host, captured)
    time.sleep(1.5)  # a tick or so for anything to be (wrongly) accepted
    links1, warnings1, rejected1 = links_and_warnings(ctl)
    assert links1 == links0
    assert warnings1 == []
    assert rejected1 >= rejected0 + 6
    with ctl.client() as c:
        st = c.status().counters
        hosts = {h.mac: (h.dpid, h.port) for h in c.topology().hosts}
    assert st.get("rejected_lldp_host_port", 0) >= 1  # the relayed probe, by its reason
    assert hosts[h1.MAC()] == (2001, 3) and hosts[h5.MAC()] == (2003, 3)
    # and the fabric still forwards
    assert ping(h1, h5.IP(), count=5, interval=0.05) == 5


def send(host, hexfile) -> bool:
    out = host.cmd(f"python3 {TOOL} send {host.name}-eth0 {hexfile}; echo rc=$?")
    return "rc=0" in out
