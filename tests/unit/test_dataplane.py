"""The core's entries, installed in fake switches and exercised by tracing packets:
"h1 reaches h3 through spine 1002 in queue 3", asserted in milliseconds."""

from __future__ import annotations

import time
from collections import Counter

from controller.core.fabric.ecmp import group_towards
from controller.core.fabric.qos import default_policy
from controller.core.model.fabric_model import Port
from controller.core.settings import CoreSettings
from controller.core.te import TeSettings
from tests.unit.dataplane import DataPlane, host, with_hosts
from tests.unit.fakefabric import FakeFabric, ip_frame

RATE = 5e6


def fabric(spines: int = 2, leaves: int = 4, per_leaf: int = 2, te: bool = True,
           qos: bool = True) -> tuple[FakeFabric, DataPlane, dict[int, tuple]]:
    """A discovered fabric with ``per_leaf`` hosts on every leaf, synced into fake
    switches; host n -> (mac, ip, leaf, port)."""
    fab = FakeFabric(spines, leaves, per_leaf, settings=CoreSettings(
        te=TeSettings() if te else None, qos=default_policy() if qos else None,
        link_speed_bps=RATE))
    dp, hosts = with_hosts(fab, per_leaf)
    return fab, dp, hosts


def send(dp: DataPlane, hosts, a: int, b: int, **kw):
    return dp.send(hosts, a, b, **kw)


def test_every_pair_is_delivered_to_its_host_and_only_there():
    fab, dp, hosts = fabric()
    for a, b, t in dp.every_pair(hosts):
        same_leaf = hosts[a][2] == hosts[b][2]
        assert len(t.spines) == (0 if same_leaf else 1), t.hops
        assert set(t.spines) <= set(fab.spines)


def test_ecmp_spreads_flows_over_every_spine():
    fab, dp, hosts = fabric(te=False)
    used = Counter(send(dp, hosts, 1, 3, sport=40000 + i).spines[0] for i in range(64))
    assert set(used) == set(fab.spines)
    assert min(used.values()) >= 16, used


def test_a_new_tcp_flow_is_copied_to_te_and_once_pinned_follows_its_pin():
    fab, dp, hosts = fabric()
    first = send(dp, hosts, 1, 3)
    assert first.to_controller == [hosts[1][2]]  # the ingress leaf copies its header
    # TE sees the copy and pins the flow to a spine
    fab.core.traffic.flow_seen(hosts[1][2], hosts[1][3], _tcp(1, 3), fab.now)
    dp.sync()
    (flow,) = fab.core.traffic.flows(fab.now)
    pinned = send(dp, hosts, 1, 3)
    assert pinned.spines == [flow.spine] and pinned.to_controller == []
    assert pinned.delivered == [hosts[3][2:]]


def test_a_failed_uplink_is_bypassed_by_the_switch_then_by_the_core():
    fab, dp, hosts = fabric(te=False)
    leaf = hosts[1][2]
    dp.link_down((leaf, 1))  # leaf 1's uplink to spine 1
    # before the controller hears of it: the groups' liveness keeps every flow moving
    for i in range(16):
        t = send(dp, hosts, 1, 3, sport=41000 + i)
        assert t.delivered == [hosts[3][2:]] and t.spines == [fab.spines[1]]
    # the core hears of it on both ends, and its groups leave the dead link out
    fab.core.port_status(leaf, Port(1, "p1", up=False), False, fab.now)
    fab.core.port_status(fab.spines[0], Port(1, "p1", up=False), False, fab.now)
    dp.sync()
    towards_1 = group_towards(dp.switches[hosts[3][2]], fab.core.view().group_ids[leaf])
    assert [b.watch_port for b in towards_1.buckets] == [2]
    for i in range(16):
        t = send(dp, hosts, 3, 1, sport=42000 + i)
        assert t.delivered == [hosts[1][2:]] and t.spines == [fab.spines[1]]


def test_roce_rides_its_queue_end_to_end_and_a_forged_mark_does_not():
    fab, dp, hosts = fabric()
    roce = send(dp, hosts, 1, 3, proto=17, dport=4791)
    assert [h.dscp for h in roce.hops if h.out_port != "controller"] == [26, 26, 26]
    assert roce.queues() == [3, 3, 3]
    # a bulk TCP flow whose host marks it as CNP (the strict class) is re-marked
    forged = send(dp, hosts, 1, 3, proto=6, dport=5001, dscp=48)
    assert {h.dscp for h in forged.hops if h.out_port != "controller"} == {0}
    assert forged.queues() == [0, 0, 0]
    # the collective class, marked by the host, keeps its mark and gets queue 4
    coll = send(dp, hosts, 1, 3, proto=6, dport=5001, dscp=34)
    assert coll.queues() == [4, 4, 4]


def test_a_restarted_controller_changes_nothing_and_forwards_the_same():
    fab, dp, hosts = fabric()
    fab.core.traffic.flow_seen(hosts[1][2], hosts[1][3], _tcp(1, 3), fab.now)
    dp.sync()
    dp.restart_changes_nothing(FakeFabric(settings=fab.core.settings), hosts)


def test_a_16x64_fabric_reaches_every_leaf_in_a_unit_test():
    t0 = time.monotonic()
    fab, dp, hosts = fabric(spines=16, leaves=64, per_leaf=2, te=False, qos=False)
    built = time.monotonic() - t0
    spines_used = set()
    for a in range(1, len(hosts) + 1, 7):
        for b in range(2, len(hosts) + 1, 9):
            if a != b:
                t = send(dp, hosts, a, b, sport=a * 1000 + b)
                assert t.delivered == [hosts[b][2:]], (a, b)
                spines_used.update(t.spines)
    assert spines_used == set(fab.spines)
    assert built < 60, built


def _tcp(a: int, b: int) -> bytes:
    return ip_frame(host(a), host(b), 40000, 5201)
