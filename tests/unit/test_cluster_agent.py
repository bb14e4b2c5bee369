"""The cluster agent's step against a fake store: the master role is asked for once per
connection, and again when the switch reconnects (the new connection starts as an
equal, so the old request no longer holds)."""

from __future__ import annotations

from apps.cluster_agent import ClusterAgent
from controller.core.mastership import MASTER, Holder, Mastership, RoleRequest, StoreView


class FakeStore:
    """What the agent uses of EtcdStore: one member, its claims win."""

    def __init__(self) -> None:
        self.lease_id: int | None = 1
        self.revision = 10
        self.holders: dict[int, Holder] = {}
        self.connected: frozenset[int] = frozenset()

    def keepalive(self) -> bool:
        return True

    def join(self, ttl: int, connected) -> None:
        self.lease_id = 1

    def announce(self, connected) -> None:
        self.connected = frozenset(connected)

    def view(self) -> StoreView:
        return StoreView(frozenset({"a"}), dict(self.holders), {"a": self.connected})

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
