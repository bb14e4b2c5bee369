"""Link-flap dampening: the damper's arithmetic, and the fabric following a port that
bounces every 200 ms without rewriting its groups each time."""

from controller.core.fabric.dampening import DampingSettings, FlapDamper
from controller.core.fabric.ecmp import group_towards
from controller.core.model.fabric_model import LinkEnd, Port
from tests.unit.fakefabric import FakeFabric

END = LinkEnd(2001, 1)


def test_third_quick_flap_holds_the_link_until_the_penalty_decays():
    d = FlapDamper(DampingSettings())
    assert not d.flap(END, 0.0)
    assert not d.flap(END, 0.5)
    assert d.flap(END, 1.0) and d.suppressed(END)  # 1 + 0.84 + 0.71... >= 2.5
    assert d.release(2.0) == []
    assert d.release(6.0) == [END] and not d.suppressed(END)


def test_slow_flaps_are_never_held():
    d = FlapDamper(DampingSettings())
    assert not any(d.flap(END, t * 10.0) for t in range(20))


def test_a_bouncing_uplink_is_held_down_without_a_storm_of_rewrites():
    fab = FakeFabric()
    fab.connect_all()
    assert len(fab.core.fabric.links) == 16
    gid = fab.core.view().group_ids[2001]

    def buckets() -> tuple:
        desired, _ = fab.core.desired(2002, fab.now)
        return tuple(b.watch_port for b in group_towards(desired, gid).buckets)

    states = [buckets()]
    for _ in range(25):  # down/up every 200 ms for 10 s, at both ends of the cable
        for up in (False, True):
            for dpid, port in ((2001, 1), (1001, 1)):
                fab.deliver(fab.core.port_status(dpid, Port(port, f"p{port}", up=up), False,
                                                 fab.now))
            fab.now += 0.2
            if int(fab.now * 10) % 10 == 0:
                fab.deliver(fab.core.tick(fab.now))
            if buckets() != states[-1]:
                states.append(buckets())
    assert len(states) <= 6, states  # a few changes before the hold, not 50
    assert states[-1] == (2,)  # held down: leaf 2002 reaches leaf 2001 over spine 2 only
    kinds = [e.kind for e in fab.core.take_events()]
    assert kinds.count("link_dampened") == 2  # both ends
    # stable again: let back once the penalty has decayed, and rediscovered
    for _ in range(12):
        fab.advance(1.0)
    assert len(fab.core.fabric.links) == 16
    assert buckets() == (1, 2)
    assert "link_undampened" in [e.kind for e in fab.core.take_events()]
