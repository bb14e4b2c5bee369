"""Discovery on fake fleets (tests/fakes) against a real fabricd, judged through fabricctl
and pings between fake hosts (ARP through the controller, ICMP through the entries the
switches hold): a 4x8 fabric found whole, a three-tier fabric found with its pods and
spine planes, and a fabric cabled wrong reported (with a cabling plan: as missing and
unexpected links too) while it still forwards.

Moved from Mininet (tests/e2e/test_discovery.py's 4x8 test, tests/e2e/test_miswiring.py):
what they checked is at the OpenFlow level (links from LLDP packet-ins, roles, warnings,
every pair of hosts reachable), which the fake gives in seconds.
"""

from __future__ import annotations

import json

import pytest

from tests.e2e import fleet_support as fs
from tests.e2e.fleet_support import fabricctl, start_fleet
from tests.fakes.hosts import HostNet
from tests.fakes.layout import Layout, spine_leaf, three_tier

# fixtures, by name
_environment, start_fabricd, fabricd, fleets = fs.FIXTURES


def expected_links(spines: int, leaves: int) -> set[tuple[int, int, int, int]]:
    links = set()
    for j in range(1, leaves + 1):
        for i in range(1, spines + 1):
            links |= {(2000 + j, i, 1000 + i, j), (1000 + i, j, 2000 + j, i)}
    return links


def topology(ctl) -> dict:
    res = fabricctl(ctl, "--json", "topology")
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)


def all_pairs_ok(hosts: HostNet) -> None:
    """Every ordered pair of hosts answers one ping, then three in a row."""
    assert len(hosts.hosts) >= 2
    assert hosts.all_pairs(count=1) == []
    assert hosts.all_pairs(count=3) == []


@pytest.mark.timeout(180)
def test_4x8_discovery_and_all_pairs(fabricd, fleets):
    lay = spine_leaf(4, 8, 2)
    assert expected_links(4, 8) == lay.directed_links()
    fleet, hosts = start_fleet(fabricd, fleets, lay)
    topo = topology(fabricd)
    roles = {s["dpid"]: s["role"] for s in topo["switches"]}
    assert roles == {1000 + i: "spine" for i in range(1, 5)} | {
        2000 + j: "leaf" for j in range(1, 9)}
    got = {(lk["src_dpid"], lk["src_port"], lk["dst_dpid"], lk["dst_port"])
           for lk in topo["links"]}
    assert got == expected_links(4, 8)
    assert topo["warnings"] == []
    all_pairs_ok(hosts)
    # every host learned where it is
    learned = {h["mac"]: (h["ip"], h["dpid"], h["port"]) for h in topology(fabricd)["hosts"]}
    assert learned == {h.mac: (h.ip, h.dpid, h.port) for h in hosts}
    assert fleet.failures == []


@pytest.mark.timeout(180)
def test_three_tier_discovery_and_all_pairs(fabricd, fleets):
    """4 pods of 4 leaves and 2 spines under 2 spine planes of 2 super-spines (28
    switches, a host per leaf): roles, pods and spine planes; every pair of hosts."""
    lay = three_tier(pods=4, spines=2, leaves=4, supers=2, hosts_per_leaf=1)
    _, hosts = start_fleet(fabricd, fleets, lay)
    topo = topology(fabricd)
    places = {s["dpid"]: (s["role"], s.get("pod", 0), s.get("spine_plane", 0))
              for s in topo["switches"]}
    want = {d: ("leaf", (d - 2001) // 4 + 1, 0) for d in lay.leaves}
    want |= {d: ("spine", (d - 1001) // 2 + 1, (d - 1001) % 2 + 1) for d in lay.spines}
    want |= {d: ("super-spine", 0, (d - 3001) // 2 + 1) for d in lay.supers}
    assert places == want
    assert topo["warnings"] == []
    all_pairs_ok(hosts)


def miswired() -> Layout:
    """2 spines, 4 leaves, 2 hosts each, numbered as Mininet numbers ``FabricSpec(2, 4,
    2, extra_links=(("l1", "l2"),), omit_links=(("l4", "s2"),))``: l4 has no cable to
    s2 (so its hosts are on ports 2 and 3, and s2 has three ports), and l1's and l2's
    ports 5 are cabled to each other."""
    lay = Layout()
    lay.add_switch(1001, "s1", [1, 2, 3, 4])
    lay.add_switch(1002, "s2", [1, 2, 3])
    lay.spines += [1001, 1002]
    for j in range(1, 5):
        uplinks = 1 if j == 4 else 2
        extra = [5] if j in (1, 2) else []
        lay.add_switch(2000 + j, f"l{j}", list(range(1, uplinks + 3)) + extra)
        lay.leaves.append(2000 + j)
        lay.host_ports[2000 + j] = [uplinks + 1, uplinks + 2]
        for i in range(1, uplinks + 1):
            lay.cable((2000 + j, i), (1000 + i, j))
    lay.cable((2001, 5), (2002, 5))
    return lay


def clean_plan(spines: int, leaves: int) -> list[list[str]]:
    return [[f"{2000 + j}:{i}", f"{1000 + i}:{j}"]
            for j in range(1, leaves + 1) for i in range(1, spines + 1)]


def test_miswired_fabric_is_reported_and_still_forwards(start_fabricd, fleets):
    ctl = start_fabricd(config={"cabling": clean_plan(2, 4)})
    lay = miswired()
    _, hosts = start_fleet(ctl, fleets, lay)
    assert [h.name for h in hosts] == [f"h{n}" for n in range(1, 9)]
    assert (hosts["h7"].dpid, hosts["h7"].port) == (2004, 2)
    topo = topology(ctl)
    assert set(topo["warnings"]) == {
        "leaf-to-leaf link 2001:5 <-> 2002:5 (not a Clos)",
        "leaf 2004 has no link to spine(s) 1002",
        "missing link 1002:4 <-> 2004:2 (in the cabling plan, not found)",
        "unexpected link 2001:5 <-> 2002:5 (not in the cabling plan)",
    }
    roles = {s["dpid"]: s["role"] for s in topo["switches"]}
    assert roles == {1001: "spine", 1002: "spine", 2001: "leaf", 2002: "leaf",
                     2003: "leaf", 2004: "leaf"}
    human = fabricctl(ctl, "topology")
    assert human.returncode == 0, human.stderr
    assert "Warnings (4)" in human.stdout
    assert "! leaf 2004 has no link to spine(s) 1002" in human.stdout
    all_pairs_ok(hosts)
