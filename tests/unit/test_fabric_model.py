"""The fabric model's link indexes, kept with its links (not rebuilt per change)."""

import random

from controller.core.model.fabric_model import Fabric, LinkEnd, Port


def brute_ports(fab: Fabric, dpid: int) -> set[int]:
    return {e.port for lk in fab.links.values() for e in (lk.src, lk.dst) if e.dpid == dpid}


def test_link_indexes_follow_sightings_recabling_port_downs_and_expiry():
    rng = random.Random(7)
    fab = Fabric()
    for dpid in range(1, 7):
        fab.switch_up(dpid, [Port(p) for p in range(1, 6)], 0.0)
    now = 0.0
    for _ in range(3000):
        now += 0.01
        a = LinkEnd(rng.randrange(1, 7), rng.randrange(1, 6))
        b = LinkEnd(rng.randrange(1, 7), rng.randrange(1, 6))
        op = rng.random()
        if op < 0.7 and a != b:
            is_new, displaced = fab.link_seen(a, b, now)
            assert fab.links[a].dst == b
            assert all(lk.src == a or lk.dst == b for lk in displaced)
        elif op < 0.85:
            fab.port_update(a.dpid, Port(a.port, up=False), now)
            assert not any(a in (lk.src, lk.dst) for lk in fab.links.values())
            fab.port_update(a.dpid, Port(a.port), now)
        else:
            fab.expire_links(now, 0.5)
        for dpid in range(1, 7):
            assert fab.link_ports(dpid) == brute_ports(fab, dpid)
        # a port has one peer: no two links arrive at one end
        dsts = [lk.dst for lk in fab.links.values()]
        assert len(dsts) == len(set(dsts))


def test_expiry_removes_exactly_the_links_unconfirmed_for_too_long():
    """Links are kept oldest confirmation first, and expiry stops at the first one
    confirmed recently: the result is the same as judging every link."""
    rng = random.Random(3)
    fab = Fabric()
    for dpid in range(1, 9):
        fab.switch_up(dpid, [Port(p) for p in range(1, 9)], 0.0)
    ends = [(LinkEnd(d, p), LinkEnd(d + 4, p)) for d in range(1, 5) for p in range(1, 9)]
    now = 0.0
    for a, b in ends:
        fab.link_seen(a, b, now)
        fab.link_seen(b, a, now)
    for step in range(200):
        now += 0.1
        for a, b in rng.sample(ends, 6):  # some confirmed, the others ageing
            fab.link_seen(a, b, now)
            fab.link_seen(b, a, now)
        # (probes of the others' switches keep coming back: links not confirmed go)
        for d in range(1, 9):
            fab.heard_from[d] = fab.heard_at[d] = now
        want = {src for src, lk in fab.links.items() if now - lk.last_seen > 1.0}
        gone = {lk.src for lk in fab.expire_links(now, 1.0)}
        assert gone == want, step
        assert all(now - lk.last_seen <= 1.0 for lk in fab.links.values())
