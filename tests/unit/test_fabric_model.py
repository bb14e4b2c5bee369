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
