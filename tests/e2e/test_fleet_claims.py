"""Who may connect as which switch (on a fake 2x4 fleet against a real fabricd): a second
connection claiming a connected leaf's dpid is refused while the leaf answers, takes
its place when the leaf's session is dead, and a dpid missing from
``openflow.allowed_dpids`` is refused. Before, a claim took the leaf's place at once: it
was sent the leaf's entries, and once it left the leaf was taken for gone (46% of host
pairs unreachable, tried on Mininet)."""

from __future__ import annotations

from tests.e2e import fleet_support as fs
from tests.e2e.conftest import replay_events
from tests.e2e.fleet_support import assert_synced, connected, start_fleet, wait_links
from tests.fakes.fleet import Fleet
from tests.fakes.layout import Layout, spine_leaf

# fixtures, by name
_environment, start_fabricd, fabricd, fleets = fs.FIXTURES

LEAF = 2001


def impostor(ctl, fleets: list, like: Fleet, dpid: int = LEAF) -> Fleet:
    """A fleet of one switch claiming ``dpid``, with the same ports (cabled to nothing)."""
    lay = Layout()
    lay.add_switch(dpid, "claim", like.layout.ports[dpid])
    fleet = Fleet(ctl.of_port, lay)
    fleets.append(fleet)
    return fleet


def writes(fleet: Fleet, dpid: int) -> int:
    got = fleet.switch(dpid).received
    return got["flow_mod"] + got["group_mod"] + got["meter_mod"]


def counters(ctl) -> dict:
    with ctl.client() as c:
        return dict(c.status().counters)


def test_a_second_connection_claiming_a_connected_leaf_is_refused(fabricd, fleets):
    fleet, hosts = start_fleet(fabricd, fleets, spine_leaf(2, 4, 2))
    # two claims at once: one waits for the leaf's answer, the other is refused at once
    claims = [impostor(fabricd, fleets, fleet), impostor(fabricd, fleets, fleet)]
    for claim in claims:
        claim.connect_all()
    assert fs.wait_until(lambda: all(LEAF in c.closed_by_peer() for c in claims), 5), \
        "the claims' sessions were not ended"
    for claim in claims:  # nothing meant for the leaf reached them
        assert writes(claim, LEAF) == 0, claim.switch(LEAF).received
        assert claim.switch(LEAF).flows() == []
    # the leaf kept its session, its state and its traffic
    assert LEAF in fleet.connected() and LEAF not in fleet.closed_by_peer()
    assert hosts.all_pairs(count=2) == []
    assert_synced(fabricd, fleet)
    with fabricd.client() as c:
        assert LEAF in connected(c)
    assert counters(fabricd).get("switches_refused", 0) == 2
    refused = replay_events(fabricd, "switch_refused")
    assert refused and all(dict(e.fields)["dpid"] == str(LEAF) for e in refused), refused


def test_a_switch_back_over_a_dead_session_takes_its_place(fabricd, fleets):
    """The leaf's old session no longer answers (it died without a FIN): the switch's
    new connection takes its place within the claim timeout (1 s) and is synced."""
    fleet, _ = start_fleet(fabricd, fleets, spine_leaf(2, 4, 2))
    fleet.switch(LEAF).answers_echo = False
    back = impostor(fabricd, fleets, fleet)
    back.connect_all()
    assert fs.wait_until(lambda: LEAF in fleet.closed_by_peer(), 5), \
        "the dead session was not ended"
    assert LEAF not in back.closed_by_peer()
    ok, problems = fs.wait_synced(fabricd, back, [LEAF], 10)
    assert ok, problems
    assert counters(fabricd).get("switch_takeovers", 0) == 1
    assert [dict(e.fields)["dpid"] for e in replay_events(fabricd, "switch_takeover")] \
        == [str(LEAF)]


def test_only_allowed_dpids_may_connect(start_fabricd, fleets):
    lay = spine_leaf(2, 4, 2)
    stranger = lay.leaves[-1]
    ctl = start_fabricd(config={"openflow": {"allowed_dpids": [
        d for d in lay.dpids if d != stranger]}})
    fleet = Fleet(ctl.of_port, lay)
    fleets.append(fleet)
    fleet.connect_all()
    want = {lk for lk in lay.directed_links() if stranger not in (lk[0], lk[2])}
    found, why = wait_links(ctl, want, 30)
    assert found, why
    assert fs.wait_until(lambda: stranger in fleet.closed_by_peer(), 5)
    ok, problems = fs.wait_synced(ctl, fleet, [d for d in lay.dpids if d != stranger], 20)
    assert ok, problems
    assert writes(fleet, stranger) == 0
    with ctl.client() as c:
        assert stranger not in {s.dpid for s in c.topology().switches}
    assert counters(ctl).get("switches_not_allowed", 0) >= 1
