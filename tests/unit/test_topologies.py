"""Mininet's topologies (built as Mininet would, without starting anything) are cabled
and numbered as the fake fleet's layouts, and as docs/topologies.md says."""

from __future__ import annotations

import pytest

from mininet_topos.spine_leaf import FabricSpec, SpineLeafTopo
from tests.fakes.layout import spine_leaf, three_tier


def cables(spec: FabricSpec) -> set[frozenset]:
    """The switch-to-switch cables of ``spec``'s Mininet topology, as (dpid, port) ends."""
    topo = SpineLeafTopo(spec=spec)
    dpid = {n: int(topo.nodeInfo(n)["dpid"], 16) for n in topo.switches()}
    out = set()
    for a, b, info in topo.links(withInfo=True):
        if a in dpid and b in dpid:
            out.add(frozenset({(dpid[a], info["port1"]), (dpid[b], info["port2"])}))
    return out


def layout_cables(lay) -> set[frozenset]:
    return {frozenset({a, b}) for a, b in lay.cables}


def test_two_and_three_tiers_are_numbered_as_the_fleet_numbers_them():
    assert cables(FabricSpec(2, 4, 2)) == layout_cables(spine_leaf(2, 4, 2))
    spec = FabricSpec(spines=2, leaves=3, hosts_per_leaf=2, pods=3, supers=2)
    assert cables(spec) == layout_cables(three_tier(3, 2, 3, 2, 2))
    assert spec.n_directed_links == 2 * len(cables(spec))
    lay = three_tier(3, 2, 3, 2, 2)
    assert sorted(spec.dpids()) == lay.dpids


def test_planes_repeat_the_shape_numbered_on():
    spec = FabricSpec(spines=2, leaves=2, hosts_per_leaf=1, planes=2)
    got = cables(spec)
    one = layout_cables(spine_leaf(2, 2))
    shifted = {frozenset({(d + 2, p) for d, p in c}) for c in one}
    assert got == one | shifted
    assert spec.n_directed_links == 2 * len(got) and spec.n_hosts == 4
    assert [spec.plane_of_leaf(j) for j in (1, 2, 3, 4)] == [1, 1, 2, 2]
    assert spec.shape() == "2 planes of 2x2"


@pytest.mark.parametrize("kw", [dict(pods=2), dict(supers=2), dict(planes=0),
                                dict(pods=2, supers=-1)])
def test_impossible_shapes_are_refused(kw):
    with pytest.raises(ValueError):
        FabricSpec(**kw)


def test_rails_make_each_leaf_a_rail_and_host_k_a_nic_of_server_k():
    from controller.config import FabricdConfig
    from mininet_topos.cli import rails_config

    cfg = FabricdConfig.model_validate(rails_config(FabricSpec(2, 3, 2)))
    assert {s.name: s.nics for s in cfg.all_servers()} == {
        "server1": ["10.0.0.1", "10.0.0.3", "10.0.0.5"],  # h1, h3, h5: on l1, l2, l3
        "server2": ["10.0.0.2", "10.0.0.4", "10.0.0.6"]}
    with pytest.raises(SystemExit, match="over 64 rails"):
        rails_config(FabricSpec(2, 65, 1))


def test_a_three_tier_cabling_plan_is_checked_like_any_other():
    from controller.core.model.cabling import cabling_warnings, make_cable
    from controller.core.model.fabric_model import LinkEnd

    lay = three_tier(2, 2, 2, 2, 1)
    plan = [make_cable(LinkEnd(*a), LinkEnd(*b)) for a, b in lay.cables]
    found = [c for c in plan if (c.a.dpid, c.b.dpid) != (1001, 3001)]
    assert cabling_warnings(plan, found) == [
        "missing link 1001:3 <-> 3001:1 (in the cabling plan, not found)"]


def test_a_lane_beside_the_mininet_lane_builds_no_network_and_has_its_own_ports(monkeypatch):
    from mininet_topos.controller_proc import free_port, port_range
    from mininet_topos.network import mininet_lock

    monkeypatch.setenv("AIFABRIC_NO_MININET", "1")
    with pytest.raises(RuntimeError, match="marked `mininet`"), mininet_lock():
        pass
    monkeypatch.setenv("AIFABRIC_TEST_PORTS", "26384-26390")
    assert port_range() == (26384, 26390)
    assert all(26384 <= free_port() <= 26390 for _ in range(3))
    for bad in ("26384", "x-y", "40000-50000", "2000-1000"):
        monkeypatch.setenv("AIFABRIC_TEST_PORTS", bad)
        with pytest.raises(ValueError, match="AIFABRIC_TEST_PORTS"):
            port_range()
    monkeypatch.delenv("AIFABRIC_TEST_PORTS")
    assert port_range() == (20000, 32767)
