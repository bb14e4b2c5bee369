"""LLDP probes within a budget (controller/core/fabric/probe_pacing.py), alone and as
discovery runs them."""

from dataclasses import replace

import pytest

from controller.core.fabric.probe_pacing import ProbePacer
from controller.core.settings import CoreSettings
from tests.unit.fakefabric import FakeFabric

PORTS = [(1, p) for p in range(1, 26)]


def always(_end) -> bool:
    return True


@pytest.mark.parametrize("budget", [0, 1000])  # none, or more than the ports need
def test_without_a_binding_budget_every_port_is_probed_each_tick(budget):
    pacer = ProbePacer(budget, 1.0)
    for t in range(3):
        assert pacer.due(float(t), lambda: list(PORTS), always) == PORTS
    assert pacer.link_max_age(3.5) == 3.5


def test_a_budget_probes_the_ports_in_turns_and_keeps_links_longer():
    pacer = ProbePacer(10, 1.0)
    ticks = [pacer.due(float(t), lambda: list(PORTS), always) for t in range(4)]
    assert [len(t) for t in ticks] == [10, 10, 5, 10]  # one round at most per tick
    assert ticks[0] + ticks[1] + ticks[2] == PORTS  # every port once per round
    assert ticks[3] == PORTS[:10]  # and round again
    assert pacer.round_time == 2.5
    assert pacer.link_max_age(3.5) == 3.5 * 3  # (the last round took three ticks)
    assert pacer.sent == 35


def test_urgent_ports_go_first_within_what_the_budget_allows():
    pacer = ProbePacer(10, 1.0)
    urgent = [(9, p) for p in range(1, 16)]
    assert pacer.soon(urgent, 0.0) == urgent[:10]  # the budget of one interval, now
    assert pacer.soon([], 0.0) == []  # nothing left until time passes
    tick = pacer.due(1.0, lambda: list(PORTS), always)
    assert tick[:5] == urgent[10:]  # the rest first at the next tick
    assert tick[5:] == PORTS[:5]


def test_a_port_that_went_down_is_skipped_when_its_turn_comes():
    pacer = ProbePacer(10, 1.0)
    down = {(1, 3), (1, 12)}
    first = pacer.due(0.0, lambda: list(PORTS), lambda e: e not in down)
    second = pacer.due(1.0, lambda: list(PORTS), lambda e: e not in down)
    assert (1, 3) not in first and (1, 12) not in second
    assert len(first) == 9 and len(second) == 9


def test_discovery_within_a_small_budget_keeps_every_link_and_expires_a_silent_one():
    # 2x4 fabric: 24 probed ports (hosts' ports included until hosts are known); 8 a
    # second: a round takes 3 s, so links are kept 3 x 3.5 s
    fab = FakeFabric(settings=replace(CoreSettings(), probe_budget=8))
    fab.connect_all()
    for _ in range(12):
        fab.advance(1.0)
    assert len(fab.core.fabric.cables()) == 8  # found, and none expired between probes
    assert fab.core.discovery.pacer.link_max_age(3.5) == 3.5 * 3
    fab.unwire((2001, 1))  # no port-down event: its probes just stop arriving
    for _ in range(7):
        fab.advance(1.0)
    assert len(fab.core.fabric.cables()) == 8  # 7 s: not yet
    for _ in range(6):
        fab.advance(1.0)
    assert len(fab.core.fabric.cables()) == 7  # 13 s > 10.5 s: gone


def test_a_lagging_loop_slows_the_probes_down_to_a_floor_and_they_come_back():
    ports = [(1, p) for p in range(1, 3001)]
    pacer = ProbePacer(1000, 1.0)
    assert len(pacer.due(0.0, lambda: list(ports), always)) == 1000
    rates = []
    for t in range(1, 8):  # the loop 1 s behind: halved each tick, to a round in 30 s
        pacer.adapt(1.0, float(t))
        rates.append(pacer.rate)
        assert len(pacer.due(float(t), lambda: list(ports), always)) == int(pacer.rate)
    assert rates == [500, 250, 125, 100, 100, 100, 100]  # (3,000 ports / MAX_ROUND)
    assert pacer.link_max_age(3.5) == 3.5 * 30  # links wait for the slower round
    pacer.adapt(0.1, 8.0)  # between the two marks: held
    assert pacer.rate == 100
    pacer.adapt(0.0, 8.5)  # (once an interval at most)
    assert pacer.rate == 100
    for t in range(9, 21):  # keeping up: a tenth of the budget back per interval
        pacer.adapt(0.0, float(t))
    assert pacer.rate == 1000


def test_discovery_keeps_every_link_while_its_loop_lags():
    # 2x4, 24 probed ports, 200 probes a second at most; the loop 2 s behind at every
    # tick: the rate falls to MIN_RATE (50 a second, still every port each tick) and
    # links are judged by the loop's position, so none expires
    fab = FakeFabric(settings=replace(CoreSettings(), probe_budget=200))
    fab.connect_all()
    for _ in range(3):
        fab.advance(1.0)
    assert len(fab.core.fabric.cables()) == 8
    for _ in range(30):
        fab.now += 1.0
        fab.deliver(fab.core.tick(fab.now, horizon=fab.now - 2.0))
        assert len(fab.core.fabric.cables()) == 8
    assert fab.core.discovery.pacer.rate == 50  # (MIN_RATE)


def test_a_switch_is_settled_only_after_its_ports_were_probed():
    # 2x4 with 2 hosts a leaf: 24 ports to probe, 4 a second: the leaves connecting
    # last wait for their turn, and are not programmed (settled) before it
    fab = FakeFabric(settings=replace(CoreSettings(), probe_budget=4))
    core = fab.core
    for dpid in fab.spines + fab.leaves:
        fab.deliver(core.switch_connected(dpid, fab.ports(dpid), fab.now))
        fab.deliver(core.discovery.probe(dpid, fab.now))
    fab.advance(1.5)  # longer than settle_time since every switch connected
    assert not core.is_settled(2004, fab.now)  # its ports have not all been probed yet
    desired, complete = core.desired(2004, fab.now)
    assert not complete and not desired.groups  # so it holds only what finds its links
    for _ in range(8):
        fab.advance(1.0)
    assert all(core.is_settled(d, fab.now) for d in fab.spines + fab.leaves)
    assert len(core.fabric.cables()) == 8


def test_switches_connecting_faster_than_the_budget_probes_get_their_roles_right():
    """8x64 with no hosts (1,024 ports, 300 probes a second: the first probes take over
    3 s), spines connecting first: their first probes find no one, and half their ports
    look like host ports until the leaves probe back. Nothing is judged before every
    switch's ports were probed (spines were taken for leaves, leaves for spines, then
    super-spines for good)."""
    fab = FakeFabric(8, 64, 0, settings=replace(CoreSettings(), probe_budget=300))
    core = fab.core
    for dpid in fab.switches:
        fab.deliver(core.switch_connected(dpid, fab.ports(dpid), fab.now))
        fab.deliver(core.discovery.probe(dpid, fab.now))
    want = {d: "spine" if d in fab.spines else "leaf" for d in fab.switches}
    for _ in range(20):
        fab.advance(0.5)
        roles = core.view().roles
        assert {d: r for d, r in roles.items() if r != want[d]} == {}
    assert roles == want and all(core.is_settled(d, fab.now) for d in fab.switches)


def test_asked_every_quarter_second_the_probes_go_out_as_the_budget_refills():
    """Called more often than its interval, a pacer hands out a quarter of a second's
    worth of probes at a time on a large fabric (not an interval's worth at once), and
    on a small one still probes every port once an interval, not at every call."""
    big = [(1, p) for p in range(1, 5001)]
    pacer = ProbePacer(1000, 1.0)
    assert len(pacer.due(0.0, lambda: list(big), always)) == 1000  # (a full bucket first)
    sizes = [len(pacer.due(t / 4, lambda: list(big), always)) for t in range(1, 9)]
    assert sizes == [250] * 8
    even = [(1, p) for p in range(1, 1001)]  # (a round's worth of the budget: spread too)
    pacer = ProbePacer(1000, 1.0)
    got = [len(pacer.due(t / 4, lambda: list(even), always)) for t in range(0, 13)]
    assert got[0] == 1000 and got[4:] == [250] * 9, got  # (a full bucket first)
    small = [(1, p) for p in range(1, 41)]
    pacer = ProbePacer(1000, 1.0)
    got = [len(pacer.due(t / 4, lambda: list(small), always)) for t in range(0, 12)]
    assert got == [40, 0, 0, 0] * 3


def test_the_rate_follows_the_worst_lag_of_each_interval():
    """Told the lag at every tick, the pacer acts once an interval on the worst of them:
    one tick far behind among quick ones halves the rate."""
    ports = [(1, p) for p in range(1, 3001)]
    pacer = ProbePacer(1000, 1.0)
    pacer.due(0.0, lambda: list(ports), always)
    pacer.adapt(0.0, 0.0)  # (acts: at the budget already)
    for t, lag in ((0.25, 0.0), (0.5, 0.3), (0.75, 0.0)):
        pacer.adapt(lag, t)
        assert pacer.rate == 1000  # (not before the interval is over)
    pacer.adapt(0.0, 1.0)
    assert pacer.rate == 500


def lagging(ports: list) -> ProbePacer:
    """A pacer of 1,000 probes a second whose loop ran 1 s behind for 4 s (at its
    floor: ``ports`` in MAX_ROUND)."""
    pacer = ProbePacer(1000, 1.0)
    pacer.due(0.0, lambda: list(ports), always)
    for t in range(1, 5):
        pacer.adapt(1.0, float(t))
        pacer.due(float(t), lambda: list(ports), always)
    return pacer


def test_ports_of_a_switch_that_just_connected_go_at_the_budget_while_the_loop_lags():
    """The round slows down while the loop lags; the ports of switches that just
    connected (what discovery waits for while a fabric comes up) do not."""
    ports = [(1, p) for p in range(1, 3001)]
    pacer = lagging(ports)
    assert pacer.rate == 100  # (the floor: 3,000 ports in 30 s)
    new = [(2, p) for p in range(1, 1001)]
    assert pacer.soon(new, 4.0) == []  # (the tokens of this tick are spent)
    got = [len(pacer.due(4.0 + t / 4, lambda: list(ports), always)) for t in range(1, 5)]
    assert got == [250] * 4  # the budget's pace, a quarter of a second's worth a tick
    assert len(pacer.due(5.25, lambda: list(ports), always)) == 25  # then the round's


def test_while_links_are_being_found_the_round_goes_at_the_budget_whatever_the_lag():
    ports = [(1, p) for p in range(1, 3001)]
    pacer = lagging(ports)
    assert pacer.rate == 100
    got = [len(pacer.due(4.0 + t / 4, lambda: list(ports), always, full=True))
           for t in range(1, 5)]
    assert got == [250] * 4
    assert len(pacer.due(5.25, lambda: list(ports), always)) == 25  # (found: the rate's)
