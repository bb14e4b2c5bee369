"""Hosts cannot fake the topology with LLDP (on a fake 2x4 fleet, tests/fakes, against a
real fabricd): forged, foreign and replayed probes arriving on host ports create no
link. Moved from Mininet (tests/e2e/test_lldp_security.py): the frames are injected at
the host ports, and the genuine probe is captured where a host would capture it."""

from __future__ import annotations

import time

from controller.core.fabric.frames import build_ethernet, build_lldp
from tests.e2e import fleet_support as fs
from tests.e2e.fleet_support import links_of, start_fleet
from tests.fakes.hosts import ETH_LLDP
from tests.fakes.layout import spine_leaf

# fixtures, by name
_environment, start_fabricd, fabricd, fleets = fs.FIXTURES


def links_and_warnings(ctl):
    with ctl.client() as c:
        links = links_of(c)
        warnings = list(c.topology().warnings)
        rejected = c.status().counters.get("rejected_lldp", 0)
    return links, warnings, rejected


def test_lldp_from_host_ports_creates_no_link(fabricd, fleets):
    lay = spine_leaf(2, 4, 2)
    fleet, hosts = start_fleet(fabricd, fleets, lay)
    h1, h5 = hosts["h1"], hosts["h5"]
    links0, warnings0, rejected0 = links_and_warnings(fabricd)
    assert len(links0) == 16 and warnings0 == []

    # 1. Frames no switch of ours sent: a probe in aifabric's format signed with a guessed
    #    key, and a plain LLDP frame as any switch or host agent would send.
    frames = [
        build_lldp(1001, 3, b"guess".ljust(32, b"\0"), time.time()),
        build_ethernet(
            "01:80:c2:00:00:0e", "00:00:00:00:00:01", 0x88CC,
            b"\x02\x07\x04" + bytes(6) + b"\x04\x02\x07" + b"1" + b"\x06\x02\x00\x78\x00\x00",
        ),
    ]
    for frame in frames:
        for host in (h1, h5):
            hosts.send(host, frame)

    # 2. A genuine probe: h1 is silent, so l1 still probes its port and h1 captures one.
    def probes() -> list:
        return h1.captured(lambda s: s.ethertype == ETH_LLDP)

    assert hosts.wait(lambda: bool(probes()), 5), "no LLDP probe reached the silent host"
    captured = probes()[-1].data
    # Both hosts speak (they are learned on their ports), then replay the fresh probe at
    # once: into the port it came out of, and through a colluding host on another leaf.
    assert hosts.ping(h1, h5) == 1
    for host in (h1, h5):
        hosts.send(host, captured)
    time.sleep(1.5)  # a tick or so for anything to be (wrongly) accepted
    links1, warnings1, rejected1 = links_and_warnings(fabricd)
    assert links1 == links0
    assert warnings1 == []
    assert rejected1 >= rejected0 + 6
    with fabricd.client() as c:
        st = c.status().counters
        learned = {h.mac: (h.dpid, h.port) for h in c.topology().hosts}
    assert st.get("rejected_lldp_host_port", 0) >= 1  # the relayed probe, by its reason
    assert learned[h1.mac] == (2001, 3) and learned[h5.mac] == (2003, 3)
    # and the fabric still forwards
    assert hosts.ping(h1, h5, count=5, interval=0.05) == 5
    assert fleet.failures == []
