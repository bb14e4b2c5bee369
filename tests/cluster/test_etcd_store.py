"""The cluster store against a real etcd (started on free loopback ports): membership
under a lease, one winner per switch's master key with the create revision as its
generation, release by the holder only, keys gone with an expired lease, every endpoint
tried, a clear error when none answers; and the mastership decisions of two instances
driven through it, with a takeover after one stops keeping its lease alive."""

from __future__ import annotations

import time

import pytest

from apps.cluster_store import NOT_FOUND, Endpoint, EtcdStore, StoreRefused, StoreUnavailable
from controller.core.intent import mastership as ms
from controller.core.intent.mastership import Claim, Mastership, Release, RoleRequest, assignment
from mininet_topos.controller_proc import free_port
from mininet_topos.etcd_proc import EtcdProcess

# (timing: leases, handshake deadlines; a lane in the idle class may be starved for
# seconds while the Mininet lane is busy: scripts/run_tests.py)
pytestmark = pytest.mark.serial


@pytest.fixture(scope="module")
def etcd(tmp_path_factory):
    with EtcdProcess(tmp_path_factory.mktemp("etcd") / "data") as proc:
        yield proc


def store(etcd, node: str, cluster: str) -> EtcdStore:
    return EtcdStore([etcd.url], cluster, node)


def test_members_and_one_winner_per_master_key(etcd):
    a, b = store(etcd, "a", "c1"), store(etcd, "b", "c1")
    a.join(2, connected=[1, 2])
    b.join(2, connected=[2])
    view = a.view()
    assert view.members == {"a", "b"}
    assert view.connected == {"a": {1, 2}, "b": {2}}
    gen = a.claim(2)
    assert gen is not None and b.claim(2) is None
    assert b.view().holders[2].node == "a" and b.view().holders[2].generation == gen
    assert not b.release(2) and a.view().holders[2].node == "a"  # not b's to release
    assert a.release(2) and 2 not in a.view().holders
    again = b.claim(2)
    assert again is not None and again > gen  # a later master, a larger generation
    a.leave()
    b.leave()
    assert a.view().members == frozenset() and a.view().holders == {}


def test_keys_go_with_a_lease_that_is_not_kept_alive(etcd):
    a, b = store(etcd, "a", "c2"), store(etcd, "b", "c2")
    a.join(1)
    b.join(1)
    first = a.claim(7)
    assert first is not None
    t0 = time.monotonic()
    while 7 in b.view().holders:  # a stops refreshing; b goes on
        assert b.keepalive()
        assert time.monotonic() - t0 < 5, "a's lease did not expire"
        time.sleep(0.1)
    assert "a" not in b.view().members and "b" in b.view().members
    assert not a.keepalive()  # a learns its lease is gone
    assert (b.claim(7) or 0) > first
    b.leave()


def test_every_endpoint_is_tried_and_none_answering_is_a_clear_error(etcd):
    dead = f"http://127.0.0.1:{free_port()}"
    s = EtcdStore([dead, etcd.url], "c3", "a")
    s.join(2)
    assert s.view().members == {"a"}
    s.leave()
    nobody = EtcdStore([dead], "c3", "a", timeout=0.5)
    with pytest.raises(StoreUnavailable, match="etcd unreachable: 127.0.0.1:"):
        nobody.view()
    with pytest.raises(ValueError, match="HOST:PORT"):
        Endpoint.parse("ftp://x")


def test_an_error_answer_from_etcd_is_a_refusal_not_an_unreachable_store(etcd):
    """etcd's own error (a lease it does not have) is raised at once as StoreRefused
    with its code and message; the endpoints after the answering one are not tried."""
    unused = f"http://127.0.0.1:{free_port()}"
    s = EtcdStore([etcd.url, unused], "c6", "a")
    s.join(2)
    mine = s.lease_id
    other = EtcdStore([etcd.url], "c6", "b")
    other.join(2)
    gone = other.lease_id
    assert s.revoke(gone) and "b" not in s.view().members
    assert not s.revoke(gone)  # etcd no longer has it: not an error
    s.lease_id = gone
    with pytest.raises(StoreRefused, match="lease not found") as refused:
        s.announce([])
    assert refused.value.code == NOT_FOUND and "unreachable" not in str(refused.value)
    assert isinstance(refused.value, StoreUnavailable)  # (callers refuse writes alike)
    assert s._current == 0 and list(s._conns) == [0]  # the unused endpoint never tried
    s.lease_id = mine
    s.leave()


def test_one_te_leader_whose_moves_go_with_its_lease(etcd):
    a, b = store(etcd, "a", "c5"), store(etcd, "b", "c5")
    a.join(2)
    b.join(2)
    assert a.claim_leader() and not b.claim_leader()
    assert b.view().te_leader == "a"
    assert a.write_moves(2001, "moves of 2001")
    assert not b.write_moves(2002, "not the leader")  # nothing written
    got = b.view().te_moves
    assert list(got) == [2001] and got[2001].value == "moves of 2001"
    again = a.write_moves(2001, "next pass") and b.view().te_moves[2001]
    assert again and again.revision > got[2001].revision
    assert b.revoke(a.lease_id)  # a's process ended: its leadership and advice go
    assert b.view().te_leader is None and b.view().te_moves == {}
    assert b.claim_leader() and b.view().te_leader == "b"
    b.leave()


def test_moves_count_only_under_the_leaders_lease(etcd):
    """A te/<leaf> key anyone else wrote (no lease, or another member's) is not the
    leader's advice: ignored and named, while the leader's own moves are read."""
    import base64

    a, b = store(etcd, "a", "c11"), store(etcd, "b", "c11")
    a.join(2)
    b.join(2)
    assert a.claim_leader() and a.write_moves(2001, "moves of 2001")

    def forge(leaf: int, lease: int | None) -> str:
        key = f"{b.prefix}te/{leaf:016x}"
        b._call("/kv/put", {"key": base64.b64encode(key.encode()).decode(),
                            "value": base64.b64encode(b"forged").decode(),
                            **({"lease": str(lease)} if lease else {})})
        return key

    forged = {forge(2002, None), forge(2003, b.lease_id)}
    view = b.view()
    assert list(view.te_moves) == [2001] and set(view.ignored) == forged
    assert b.revoke(a.lease_id)  # no leader: no moves count, not even forged ones
    view = b.view()
    assert view.te_leader is None and view.te_moves == {} and set(view.ignored) == forged
    b.leave()


def drive(node: Mastership, s: EtcdStore, switches: list[int], now: float,
          roles: dict) -> None:
    """One step of an instance: keep the lease, read the store, carry out the actions."""
    if s.keepalive():
        node.keepalive(now)
    for action in node.decide(s.view(), switches, now):
        if isinstance(action, Claim):
            s.claim(action.dpid)
        elif isinstance(action, Release):
            s.release(action.dpid)
        elif isinstance(action, ms.Clear):
            s.clear(action.key, action.revision)
        elif isinstance(action, ms.ClaimLeader):
            s.claim_leader()
        elif isinstance(action, RoleRequest):
            roles[(node.node, action.dpid)] = (action.role, action.generation)


def test_two_instances_share_the_switches_and_one_takes_over_from_the_other(etcd):
    dpids = list(range(1, 9))
    stores = {n: store(etcd, n, "c4") for n in "ab"}
    nodes = {n: Mastership(n, ttl=1.0) for n in "ab"}
    for s in stores.values():
        s.join(1, connected=dpids)
    roles: dict = {}
    t0 = time.monotonic()
    want = assignment("ab", dict.fromkeys("ab", dpids))
    while {d: h.node for d, h in stores["a"].view().holders.items()} != want:
        for n in "ab":
            drive(nodes[n], stores[n], dpids, time.monotonic() - t0, roles)
        assert time.monotonic() - t0 < 10, stores["a"].view()
        time.sleep(0.05)
    for n in "ab":  # (the holders ask for the master role on the step after their claim)
        drive(nodes[n], stores[n], dpids, time.monotonic() - t0, roles)
    holders = stores["a"].view().holders
    lost = [d for d in dpids if holders[d].node == "a"]
    assert lost, "a masters nothing: the spread is wrong"
    killed = time.monotonic()  # a stops (no keepalive, no release)

    def b_holds_all() -> bool:
        # (one view: the store's watch thread replaces it, a key may go in between)
        held = stores["b"].view().holders
        return all(d in held and held[d].node == "b" for d in lost)

    while not b_holds_all():
        drive(nodes["b"], stores["b"], dpids, time.monotonic() - t0, roles)
        assert time.monotonic() - killed < 8, "b did not take over"
        time.sleep(0.05)
    taken = time.monotonic() - killed
    drive(nodes["b"], stores["b"], dpids, time.monotonic() - t0, roles)
    holders = stores["b"].view().holders
    for d in lost:  # b asks for the master role with the newer generation
        assert roles[("b", d)] == ("master", holders[d].generation)
        assert holders[d].generation > roles[("a", d)][1]
    # about one lease TTL (the floor etcd keeps) plus a few steps; generous: etcd checks
    # for expired leases every 0.5 s, later when the machine is busy (bench/cluster.py
    # measures the time)
    assert taken < 6.0
    stores["b"].leave()


def test_shared_intent_is_replaced_by_compare_and_swap_on_its_revision(etcd):
    a, b = store(etcd, "a", "c9"), store(etcd, "b", "c9")
    assert a.view().intents == {}
    ok, first = a.write_intent("drains", '{"one": 1}', 0)  # never written: revision 0
    assert ok and first.revision > 0 and first.value == '{"one": 1}'
    assert b.view().intents == {"drains": first}
    # b computed its change from the empty store: refused, and told what is there now
    ok, now = b.write_intent("drains", '{"two": 2}', 0)
    assert not ok and now == first
    ok, second = b.write_intent("drains", '{"two": 2}', now.revision)
    assert ok and second.revision > first.revision
    ok, _ = a.write_intent("drains", '{"three": 3}', first.revision)  # stale now
    assert not ok and a.view().intents["drains"] == second
    ok, qos = a.write_intent("qos", "{}", 0)  # kinds are apart
    assert ok and a.view().intents == {"drains": second, "qos": qos}


def test_keys_anyone_wrote_under_the_prefix_are_ignored_and_named(etcd):
    """Whoever can write to etcd can put anything under the prefix: a value that is not
    UTF-8, a master key whose dpid is not hex or whose value is not a name, a move for
    no leaf. The reading goes on (it used to raise UnicodeDecodeError and stop every
    instance's agent): the rest is read as before, each bad key is named, and an
    unreadable intent is handed on escaped for its reader to refuse."""
    import base64

    a = store(etcd, "a", "c10")
    a.join(2, connected=[1])
    assert a.claim(1) is not None
    ok, qos = a.write_intent("qos", "{}", 0)
    assert ok

    def put(key: str, raw: bytes) -> None:
        a._call("/kv/put", {"key": base64.b64encode(f"{a.prefix}{key}".encode()).decode(),
                            "value": base64.b64encode(raw).decode()})

    put("master/0000000000000002", b"\xff\xfe not a name")
    put("master/not-hex", b"a")
    put("te/zz", b"{}")
    put("intent/drains", b'{"switches": [\xff]}')
    view = a.view()
    assert view.members == {"a"} and set(view.holders) == {1}
    assert view.intents["qos"] == qos
    assert "\\xff" in view.intents["drains"].value  # (its reader refuses it, and says so)
    assert sorted(view.ignored) == sorted(
        f"{a.prefix}{k}" for k in ("master/0000000000000002", "master/not-hex", "te/zz",
                                   "intent/drains"))
    # (a master key that names no member would block every claim of its switch: it is
    # to be cleared; one whose name is not an instance's blocks nothing)
    assert set(view.forged) == {"master/0000000000000002"}
    assert a.clear("master/0000000000000002", view.forged["master/0000000000000002"])
    assert a.claim(2) is not None and a.view().holders[2].node == "a"
    ok, now = a.write_intent("drains", "{}", 0)  # told what is there, escaped
    assert not ok and "\\xff" in now.value
    ok, _ = a.write_intent("drains", "{}", now.revision)  # and it can be replaced
    assert ok and f"{a.prefix}intent/drains" not in a.view().ignored
    a.leave()


def test_master_and_leader_keys_no_member_wrote_are_cleared_and_claimed(etcd):
    """Anyone who reaches etcd can write a master key for a holder that does not exist,
    or a te-leader key: every instance yielded to it, so the switch had no master and
    TE no leader. Such a key (not under the lease of the member it names) does not
    count: the instance clears it and claims as usual; a genuine key is left alone."""
    import base64

    a, b = store(etcd, "a", "c12"), store(etcd, "b", "c12")
    a.join(5, connected=[5, 6])
    b.join(5, connected=[6])

    def forge(key: str, value: str, lease: int | None) -> None:
        a._call("/kv/put", {"key": base64.b64encode(f"{a.prefix}{key}".encode()).decode(),
                            "value": base64.b64encode(value.encode()).decode(),
                            **({"lease": str(lease)} if lease else {})})

    forge("master/0000000000000005", "ghost", None)
    forge("master/0000000000000006", "a", b.lease_id)  # a's name under b's lease
    forge("te-leader", "ghost", None)
    view = a.view()
    assert view.holders == {} and view.te_leader is None
    assert set(view.forged) == {"master/0000000000000005", "master/0000000000000006",
                                "te-leader"}
    stale = view.forged["master/0000000000000005"]
    node, roles = Mastership("a", ttl=5.0), {}
    drive(node, a, [5, 6], 0.0, roles)  # cleared and claimed
    drive(node, a, [5, 6], 0.1, roles)  # (the master role is asked for once held)
    view = a.view()
    assert view.forged == {} and view.te_leader == "a"
    assert view.holders[5].node == "a" and roles[("a", 5)][0] == "master"
    # a clear as read before (another instance's, late) leaves the genuine key alone
    assert not a.clear("master/0000000000000005", stale)
    assert a.view().holders[5].node == "a"
    assert not a.clear("master/0000000000000007", 1)  # (nothing there: nothing done)
    a.leave()
    b.leave()
