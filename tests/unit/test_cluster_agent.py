"""The cluster agent's step against a fake store: the master role is asked for once per
connection, and again when the switch reconnects (the new connection starts as an
equal, so the old request no longer holds); the TE leadership is claimed, told to the
app and dropped when the lease may have expired; the leader's moves are written, and
another leader's handed to the app once per revision."""

from __future__ import annotations

from apps.cluster_agent import ClusterAgent
from apps.cluster_store import StoreUnavailable
from controller.core.intent.kinds import Intent
from controller.core.intent.mastership import MASTER, Holder, Mastership, RoleRequest, StoreView


class FakeStore:
    """What the agent uses of EtcdStore: one member, its claims win."""

    def __init__(self) -> None:
        self.lease_id: int | None = 1
        self.revision = 10
        self.holders: dict[int, Holder] = {}
        self.connected: frozenset[int] = frozenset()
        self.leader: str | None = None
        self.moves: dict[int, Intent] = {}
        self.down = False  # unreachable
        self.ignored: tuple[str, ...] = ()  # malformed keys under the prefix

    def keepalive(self) -> bool:
        if self.down:
            raise StoreUnavailable("etcd unreachable: test")
        return True

    def join(self, ttl: int, connected) -> None:
        self.lease_id = 1

    def announce(self, connected) -> None:
        self.connected = frozenset(connected)

    def view(self) -> StoreView:
        return StoreView(frozenset({"a"}), dict(self.holders), {"a": self.connected},
                         te_leader=self.leader, te_moves=dict(self.moves),
                         ignored=self.ignored)

    def claim_leader(self) -> bool:
        if self.leader is not None:
            return False
        self.leader = "a"
        return True

    def write_moves(self, leaf: int, value: str) -> bool:
        if self.leader != "a":
            return False
        self.revision += 1
        self.moves[leaf] = Intent(f"te/{leaf}", self.revision, value)
        return True

    def claim(self, dpid: int) -> int | None:
        if dpid in self.holders:
            return None
        self.revision += 1
        self.holders[dpid] = Holder("a", self.revision)
        return self.revision

    def release(self, dpid: int) -> bool:
        return self.holders.pop(dpid, None) is not None


def test_the_master_role_is_asked_for_again_when_the_switch_reconnects():
    store = FakeStore()
    connections = {7: 1}
    sent: list = []
    agent = ClusterAgent(store, Mastership("a", 1.0), lambda: dict(connections),
                         sent.extend, interval=0.2)  # type: ignore[arg-type]
    agent.step(0.0)
    gen = store.holders[7].generation
    assert RoleRequest(7, MASTER, gen) in sent
    sent.clear()
    agent.step(0.2)
    assert sent == []  # asked once per connection
    connections[7] = 2  # the switch reconnected (to this instance, still its master)
    agent.step(0.4)
    assert sent == [RoleRequest(7, MASTER, gen)]
    sent.clear()
    del connections[7]  # gone, then back
    agent.step(0.6)
    connections[7] = 3
    agent.step(0.8)
    assert sent == [RoleRequest(7, MASTER, gen)]


def test_the_te_leadership_is_claimed_told_and_dropped_with_the_lease():
    store = FakeStore()
    told: list[bool] = []
    handed: list = []
    agent = ClusterAgent(store, Mastership("a", 1.0), dict, lambda _: None,  # type: ignore
                         interval=0.2, set_leader=told.append, apply_moves=handed.extend)
    agent.step(0.0)
    assert store.leader == "a" and told == [True] and agent.status.te_leader == "a"
    assert agent.status.leading
    agent.publish_moves({2001: "m1"})  # (from the app's thread)
    agent.step(0.2)
    assert store.moves[2001].value == "m1" and told == [True]  # told once
    assert handed == [(2001, store.moves[2001])]  # (its own, too: the app sorts them out)
    agent.step(0.4)
    assert len(handed) == 1  # each revision handed on once
    store.down = True  # cut off: it leads until its lease may have expired, then not
    agent.step(0.6)
    assert told == [True]
    agent.step(1.2)  # (0.8 s since the last keepalive: 0.75 of the 1 s lease)
    assert told == [True, False] and not agent.status.leading
    agent.publish_moves({2002: "m2"})
    agent.step(1.4)
    assert 2002 not in store.moves  # no longer the leader: nothing written
    store.down = False  # back, and leading again: the old moves are not written late
    agent.step(1.6)
    agent.step(1.8)
    assert told == [True, False, True] and 2002 not in store.moves


def test_an_instance_that_is_not_the_leader_writes_no_moves():
    store = FakeStore()
    store.leader = "b"
    told: list[bool] = []
    agent = ClusterAgent(store, Mastership("a", 1.0), dict, lambda _: None,  # type: ignore
                         interval=0.2, set_leader=told.append)
    agent.step(0.0)
    assert told == [False] and agent.status.te_leader == "b"
    agent.publish_moves({2001: "m"})
    agent.step(0.2)
    assert store.moves == {}


def test_ignored_keys_are_counted_and_said_once_while_mastership_goes_on(caplog):
    store = FakeStore()
    sent: list = []
    agent = ClusterAgent(store, Mastership("a", 1.0), lambda: {7: 1},
                         sent.extend, interval=0.2)  # type: ignore[arg-type]
    store.ignored = ("/aifabric/default/master/zz",)
    with caplog.at_level("ERROR", logger="aifabric.cluster"):
        for k in range(3):
            agent.step(0.2 * k)
    assert RoleRequest(7, MASTER, store.holders[7].generation) in sent
    assert agent.status.etcd_ok and agent.status.ignored == 1
    said = [r for r in caplog.records if "are ignored" in r.getMessage()]
    assert len(said) == 1 and "master/zz" in said[0].getMessage()
    store.ignored = ()
    agent.step(0.8)
    assert agent.status.ignored == 0
