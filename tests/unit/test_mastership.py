"""Mastership decisions against a fake store with etcd's semantics (leases, create-if-
absent, revisions) and fake switches with OpenFlow's role rules (generation ids, one
master): one master per switch, spread, takeover after a kill, step-down when the lease
may have expired, no two writers, a deposed master's late request refused."""

from __future__ import annotations

from dataclasses import dataclass, field

from controller.core.intent.mastership import (
    MASTER,
    SLAVE,
    Claim,
    ClaimLeader,
    Clear,
    Holder,
    Mastership,
    Release,
    RoleRequest,
    StoreView,
    assignment,
)

TTL = 1.0


@dataclass
class FakeStore:
    """Keys bound to leases, as etcd does them: a lease not kept alive for its ttl
    expires and takes its keys; every write takes the next revision."""

    revision: int = 100
    leases: dict[str, float] = field(default_factory=dict)  # node -> expiry
    masters: dict[int, Holder] = field(default_factory=dict)
    connected: dict[str, frozenset[int]] = field(default_factory=dict)
    leader: str | None = None  # the te-leader key

    def keepalive(self, node: str, now: float) -> None:
        self.leases[node] = now + TTL

    def expire(self, now: float) -> None:
        for node, until in list(self.leases.items()):
            if until <= now:
                del self.leases[node]
                self.masters = {d: h for d, h in self.masters.items() if h.node != node}
                if self.leader == node:
                    self.leader = None

    def claim(self, node: str, dpid: int) -> None:
        if node in self.leases and dpid not in self.masters:  # create if absent
            self.revision += 1
            self.masters[dpid] = Holder(node, self.revision)

    def claim_leader(self, node: str) -> None:
        if node in self.leases and self.leader is None:
            self.revision += 1
            self.leader = node

    def release(self, node: str, dpid: int) -> None:
        if self.masters.get(dpid, Holder("", 0)).node == node:  # delete if ours
            self.revision += 1
            del self.masters[dpid]

    def view(self) -> StoreView:
        return StoreView(frozenset(self.leases), dict(self.masters), dict(self.connected),
                         te_leader=self.leader)


@dataclass
class FakeSwitch:
    """OpenFlow 1.3 roles: a MASTER request demotes the other master; a request whose
    generation id is older than the latest one seen is refused (stale)."""

    dpid: int
    generation: int | None = None
    roles: dict[str, str] = field(default_factory=dict)
    refused: list[tuple[str, int]] = field(default_factory=list)

    def request(self, node: str, role: str, generation: int) -> bool:
        if self.generation is not None and generation - self.generation < 0:
            self.refused.append((node, generation))
            return False
        self.generation = generation
        if role == MASTER:
            for other, r in self.roles.items():
                if r == MASTER:
                    self.roles[other] = SLAVE
        self.roles[node] = role
        return True

    def writers(self) -> set[str]:
        return {n for n, r in self.roles.items() if r == MASTER}


class Cluster:
    def __init__(self, nodes: list[str], dpids: list[int]) -> None:
        self.store = FakeStore()
        self.switches = {d: FakeSwitch(d) for d in dpids}
        self.nodes = {n: Mastership(n, TTL) for n in nodes}
        self.alive = set(nodes)  # processes running
        self.reaching = set(nodes)  # processes that reach the store
        self.now = 0.0
        for n in nodes:
            self.store.connected[n] = frozenset(dpids)

    def step(self, dt: float = 0.1) -> None:
        self.now += dt
        for n in sorted(self.alive & self.reaching):
            self.store.keepalive(n, self.now)
            self.nodes[n].keepalive(self.now)
        self.store.expire(self.now)
        for n in sorted(self.alive):
            m = self.nodes[n]
            view = self.store.view() if n in self.reaching else StoreView(frozenset(), {})
            for action in m.decide(view, self.store.connected.get(n, ()), self.now):
                if isinstance(action, Claim) and n in self.reaching:
                    self.store.claim(n, action.dpid)
                elif isinstance(action, Release) and n in self.reaching:
                    self.store.release(n, action.dpid)
                elif isinstance(action, ClaimLeader) and n in self.reaching:
                    self.store.claim_leader(n)
                elif isinstance(action, RoleRequest):
                    self.switches[action.dpid].request(n, action.role, action.generation)
                # (a Yield sends nothing: the instance stops writing on its own)
        # never two instances allowed to write to one switch
        for d in self.switches:
            writing = {n for n in self.alive if self.nodes[n].may_write(d, self.now)}
            assert len(writing) <= 1, (d, writing, self.now)
        # and never two TE leaders
        assert len(self.leaders()) <= 1, (self.leaders(), self.now)

    def leaders(self) -> set[str]:
        """Who leads, each judging by the store as it is now (a partitioned instance
        by what it read last can only be older: no better for it)."""
        view = self.store.view()
        return {n for n in self.alive if self.nodes[n].leads(view, self.now)}

    def run(self, seconds: float) -> None:
        for _ in range(round(seconds / 0.1)):
            self.step()

    def master_of(self, dpid: int) -> str | None:
        writers = self.switches[dpid].writers()
        assert len(writers) <= 1
        return next(iter(writers), None)


DPIDS = [1001, 1002, 2001, 2002, 2003, 2004, 2005, 2006, 2007, 2008, 2009, 2010]


def want(c: Cluster, members) -> dict[int, str]:
    """The assignment the instances should reach, all connected to every switch."""
    return assignment(members, {m: c.store.connected[m] for m in members})


def test_the_assignment_spreads_few_switches_evenly_and_moves_few_on_a_change():
    for n in range(1, 40):
        dpids = list(range(1000, 1000 + n))
        three = assignment("abc", dict.fromkeys("abc", dpids))
        counts = sorted(list(three.values()).count(m) for m in "abc")
        assert counts[-1] - counts[0] <= 1, (n, counts)
        four = assignment("abcd", dict.fromkeys("abcd", dpids))
        moved = sum(1 for d in dpids if three[d] != four[d])
        assert moved <= n // 2 + 1, (n, moved)  # (even loads cost some extra moves)
    # a member not connected to a switch is not given it
    got = assignment("ab", {"a": [1, 2, 3], "b": [2, 3]})
    assert got[1] == "a" and set(got) == {1, 2, 3}


def test_every_switch_gets_one_master_spread_over_the_instances():
    c = Cluster(["a", "b", "c"], DPIDS)
    c.run(0.5)
    masters = {d: c.master_of(d) for d in DPIDS}
    assert all(masters.values())
    assert masters == want(c, "abc")
    assert sorted(list(masters.values()).count(n) for n in "abc") == [4, 4, 4]  # even
    for d in DPIDS:  # the store and the switch agree, with the store's generation
        assert c.switches[d].generation == c.store.masters[d].generation
        assert c.nodes[masters[d]].may_write(d, c.now)


def test_a_killed_master_is_replaced_within_about_one_ttl_with_a_newer_generation():
    c = Cluster(["a", "b", "c"], DPIDS)
    c.run(0.5)
    victim = c.master_of(2001)
    lost = [d for d in DPIDS if c.master_of(d) == victim]
    before = {d: c.switches[d].generation for d in lost}
    c.alive.discard(victim)  # SIGKILL: no more keepalives, no step-down either
    c.run(TTL + 0.3)
    for d in lost:
        new = c.master_of(d)
        assert new not in (None, victim), d
        assert new == want(c, set("abc") - {victim})[d]
        assert c.switches[d].generation > before[d]


def test_an_instance_cut_off_from_the_store_steps_down_before_its_lease_can_expire():
    c = Cluster(["a", "b"], DPIDS)
    c.run(0.5)
    held = [d for d in DPIDS if c.master_of(d) == "a"]
    assert held == sorted(d for d, m in want(c, "ab").items() if m == "a") and held
    old = {d: c.switches[d].generation for d in held}
    c.reaching.discard("a")  # partitioned from etcd, still connected to its switches
    c.run(TTL * 0.8)
    assert not any(c.nodes["a"].may_write(d, c.now) for d in DPIDS)
    c.run(TTL)  # its lease expired in the store: b took over with newer generations
    assert all(c.master_of(d) == "b" for d in held)
    # a's late request with its old generation is refused by the switch
    d = held[0]
    assert not c.switches[d].request("a", MASTER, old[d])
    assert c.switches[d].refused == [("a", old[d])] and c.master_of(d) == "b"


def test_a_joining_instance_takes_the_switches_it_prefers_and_nothing_is_left_masterless():
    c = Cluster(["a", "b"], DPIDS)
    c.run(0.5)
    c.nodes["c"] = Mastership("c", TTL)
    c.store.connected["c"] = frozenset(DPIDS)
    c.alive.add("c")
    c.reaching.add("c")
    for _ in range(10):
        c.step()
        assert all(c.master_of(d) for d in DPIDS)  # the old master holds until demoted
    assert {d: c.master_of(d) for d in DPIDS} == want(c, "abc")


def test_a_switch_its_preferred_instance_cannot_reach_is_taken_by_another():
    c = Cluster(["a", "b"], DPIDS)
    d = next(d for d, m in want(c, "ab").items() if m == "a")
    c.store.connected["a"] = frozenset(set(DPIDS) - {d})
    c.run(0.3)
    assert c.master_of(d) == "b"  # b is the only one connected to it
    c.store.connected["a"] = frozenset(DPIDS)  # a reaches it again: it is handed back
    c.run(0.5)
    assert c.master_of(d) == "a"


def test_a_new_instance_is_slave_until_it_holds_the_key():
    m = Mastership("a", TTL)
    m.keepalive(0.0)
    view = StoreView(frozenset({"a", "b"}), {7: Holder("b", 55)}, te_leader="b")
    actions = m.decide(view, [7], 0.1)
    assert actions == [RoleRequest(7, SLAVE, 55)] and not m.may_write(7, 0.1)
    assert m.decide(view, [7], 0.2) == []
    actions = m.decide(StoreView(frozenset({"a"}), {7: Holder("a", 60)}, te_leader="a"),
                       [7], 0.3)
    assert actions == [RoleRequest(7, MASTER, 60)] and m.may_write(7, 0.3)


def test_an_instance_whose_lease_is_gone_steps_down_with_the_generation_it_knew():
    m = Mastership("a", TTL)
    m.keepalive(0.0)
    m.decide(StoreView(frozenset({"a"}), {7: Holder("a", 60), 8: Holder("b", 61)}), [7, 8],
             0.1)
    assert m.may_write(7, 0.1) and not m.may_write(8, 0.1)
    assert m.step_down() == [RoleRequest(7, SLAVE, 60)]
    assert not m.may_write(7, 0.1) and m.step_down() == []


def test_one_te_leader_taken_over_when_its_lease_goes_and_none_while_partitioned():
    c = Cluster(["a", "b", "c"], DPIDS)
    c.run(0.3)
    (first,) = c.leaders()
    c.alive.discard(first)  # killed: its lease expires, another instance leads
    c.run(TTL + 0.5)
    (second,) = c.leaders()
    assert second != first
    # the leader cut off from the store stops leading before its lease can expire
    # (step() asserts that no two lead at any time)
    c.reaching.discard(second)
    c.run(TTL * 0.8)
    assert c.store.view().te_leader == second and not c.leaders()
    c.run(TTL)
    (third,) = c.leaders()
    assert third not in (first, second)


def test_an_instance_claims_the_te_leader_key_only_while_it_is_absent():
    m = Mastership("a", TTL)
    m.keepalive(0.0)
    taken = StoreView(frozenset({"a", "b"}), {}, te_leader="b")
    assert m.decide(taken, [], 0.1) == []  # (no switches: no ClaimLeader, nor anything)
    assert not m.leads(taken, 0.1)
    free = StoreView(frozenset({"a", "b"}), {})
    assert ClaimLeader() in m.decide(free, [], 0.2)
    mine = StoreView(frozenset({"a"}), {}, te_leader="a")
    assert m.leads(mine, 0.3) and not m.leads(mine, TTL)  # (no keepalive since 0.0)


def test_keys_no_live_member_wrote_are_cleared_before_the_claim():
    """A master key or te-leader key the store reads as forged (not under the lease of
    the member it names) does not count as held: it is cleared, as the version read
    (its revision), and then claimed as if absent."""
    node = Mastership("a", TTL)
    node.keepalive(0.0)
    view = StoreView(frozenset({"a"}), {}, {"a": frozenset({5})},
                     forged={"master/0000000000000005": 0, "te-leader": 77})
    got = node.decide(view, [5], 0.0)
    assert got[:2] == [Clear("te-leader", 77), ClaimLeader()]
    assert got.index(Clear("master/0000000000000005", 0)) < got.index(Claim(5))
    # (a key that counts is never cleared)
    held = StoreView(frozenset({"a"}), {5: Holder("a", 3)}, {"a": frozenset({5})},
                     te_leader="a")
    assert not [a for a in node.decide(held, [5], 0.1) if isinstance(a, Clear)]
