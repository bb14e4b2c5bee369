"""Operator intent a cluster shares (controller/core/intent/kinds.py): values that survive the
store's encoding, a core that computes an operator's drain without applying it and
applies a drain set as a whole, an agent that hands each revision to the app once and
before the role requests of its step, and the API's compare-and-swap loop (a change
that raced another instance's is computed again; etcd down: UNAVAILABLE, nothing
applied)."""

from __future__ import annotations

import grpc
import pytest

from apps.api.fabric_commands import Change, NotAnswered
from apps.api.server import ControllerHandle, FabricServicer, status_of
from apps.cluster_agent import ClusterAgent
from apps.cluster_store import StoreRefused, StoreUnavailable
from controller.config import FabricdConfig
from controller.core.errors import Aborted, FailedPrecondition, NotFound, Unavailable
from controller.core.fabric.ecmp import group_towards
from controller.core.fabric.qos import default_policy, profile_policy
from controller.core.intent.kinds import (
    Applied,
    Drains,
    Intent,
    IntentError,
    decode_jobs,
    decode_pins,
    decode_policy,
    encode_jobs,
    encode_pins,
    encode_policy,
)
from controller.core.intent.mastership import Mastership, StoreView
from controller.core.model.fabric_model import Cable, LinkEnd
from controller.core.model.job_spec import JobSpec
from controller.core.te import FlowKey
from tests.unit.fakefabric import FakeFabric


def discovered() -> FakeFabric:
    fab = FakeFabric()
    fab.connect_all()
    return fab


def test_values_survive_the_store_and_bad_ones_are_named():
    d = Drains(frozenset({Cable(LinkEnd(1001, 3), LinkEnd(2002, 1))}), frozenset({1002}))
    assert Drains.decode(d.encode()) == d
    assert Drains.decode(Drains().encode()) == Drains()
    policy = profile_policy("sonic")
    assert decode_policy(encode_policy(policy)) == policy
    with pytest.raises(IntentError, match="drains"):
        Drains.decode('{"cables": [[1, 2, 3]], "switches": []}')
    with pytest.raises(IntentError, match="qos"):
        decode_policy('{"classes": "no"}')
    job = JobSpec("j1", ("10.0.0.1", "10.0.0.2"), "ring")
    assert decode_jobs(encode_jobs([job])) == [job] and decode_jobs("") == []
    with pytest.raises(IntentError, match="listed twice"):
        decode_jobs(encode_jobs([job, job]))
    with pytest.raises(IntentError, match="jobs"):
        decode_jobs('[{"id": "j2", "members": "x"}]')
    pin = {FlowKey("10.0.0.1", "10.0.0.3", 6, 0, 5201): 1002}
    assert decode_pins(encode_pins(pin)) == pin and decode_pins("") == {}
    with pytest.raises(IntentError, match="listed twice"):
        decode_pins(encode_pins(pin)[:-1] + ", " + encode_pins(pin)[1:])
    with pytest.raises(IntentError, match="pins"):
        decode_pins('[{"flow": ["10.0.0.1", "10.0.0.300", 6, 0, 0], "spine": 1}]')


def test_a_revision_is_applied_once_and_never_an_older_one():
    applied = Applied()
    assert applied.is_new(Intent("qos", 5, ""))
    applied.mark(Intent("qos", 5, ""))
    assert not applied.is_new(Intent("qos", 5, ""))
    assert not applied.is_new(Intent("qos", 3, ""))
    applied.mark(Intent("qos", 3, ""))  # (a late reading does not go back)
    assert applied.revision("qos") == 5 and applied.revision("drains") == 0


def test_an_operators_drain_is_computed_without_being_applied():
    fab = discovered()
    before = fab.core.maintenance.drains
    drains, message = fab.core.maintenance_change("drain_switch", 1001)
    assert drains.switches == {1001} and message == "switch 1001 drained"
    assert fab.core.maintenance.drains == before == Drains()
    desired, _ = fab.core.desired(2001, fab.now)
    rids = fab.core.view().group_ids
    assert {rid: len(group_towards(desired, rids[leaf]).buckets) for leaf, rid in rids.items()
            if leaf != 2001} == {rids[leaf]: 2 for leaf in fab.leaves if leaf != 2001}
    assert len(desired.groups) == 1  # (still both spines: one group for every leaf)
    with pytest.raises(FailedPrecondition, match="is a leaf"):
        fab.core.maintenance_change("drain_switch", 2001)
    with pytest.raises(NotFound):
        fab.core.maintenance_change("drain_link", 2001, 9)
    same, message = fab.core.maintenance_change("undrain", 1001)
    assert same == Drains() and message == "switch 1001 is not drained"


def test_a_shared_drain_set_is_applied_whole_with_an_event_per_change():
    fab = discovered()
    cable = fab.core.maintenance.cable_at(2001, 1)
    # another instance drained a spine and a cable: both arrive as one set
    eff = fab.core.set_drains(Drains(frozenset({cable}), frozenset({1002})))
    assert eff.changed
    assert fab.core.maintenance.switches == {1002} and fab.core.maintenance.cables == {cable}
    kinds = [(e.kind, e.message) for e in fab.core.events[-2:]]
    assert ("drain", "switch 1002 drained") in kinds
    same = fab.core.maintenance.drains
    assert not fab.core.set_drains(same).changed  # the same set: nothing to do
    fab.core.set_drains(Drains())
    assert fab.core.maintenance.drains == Drains()
    assert [e.kind for e in fab.core.events[-2:]] == ["undrain", "undrain"]


class IntentStore:
    """What the agent reads: one member, no switches, the shared intent as given."""

    lease_id = 1

    def __init__(self) -> None:
        self.intents: dict[str, Intent] = {}

    def keepalive(self) -> bool:
        return True

    def announce(self, connected) -> None:
        pass

    def view(self) -> StoreView:
        return StoreView(frozenset({"a"}), {}, {"a": frozenset()}, dict(self.intents),
                         te_leader="a")


def test_the_agent_hands_each_revision_over_once():
    store = IntentStore()
    got: list = []
    agent = ClusterAgent(store, Mastership("a", 1.0), dict, got.append,  # type: ignore[arg-type]
                         interval=0.2, apply_intents=got.append)
    store.intents = {"qos": Intent("qos", 4, "q"), "drains": Intent("drains", 7, "d")}
    agent.step(0.0)
    assert got == [[Intent("qos", 4, "q"), Intent("drains", 7, "d")]]  # in store order
    agent.step(0.2)
    assert len(got) == 1
    store.intents["drains"] = Intent("drains", 9, "d2")
    agent.step(0.4)
    assert got[1:] == [[Intent("drains", 9, "d2")]]


class Context:
    def time_remaining(self) -> float:
        return 5.0

    def peer(self) -> str:
        return "test"


class Commands:
    """The fabric app's commands as the API's calls see them (run at once, here)."""

    def __init__(self) -> None:
        self.applied = Applied()
        self.intents: list[Intent] = []  # applied, in order

    def apply_intent(self, intent: Intent) -> bool:
        if not self.applied.is_new(intent):
            return False
        self.intents.append(intent)
        self.applied.mark(intent)
        return True


def servicer(commands: Commands, write) -> FabricServicer:
    config = FabricdConfig.model_validate(
        {"cluster": {"etcd": ["http://127.0.0.1:2379"], "node_id": "a", "insecure_etcd": True}})
    handle = ControllerHandle(lambda: None, write_intent=write,
                              call=lambda fn, timeout=10.0, must_run=False: fn(commands))
    return FabricServicer(handle, config, 0.0)


def test_a_change_that_raced_another_instances_is_computed_again_on_top_of_it():
    commands = Commands()
    theirs = Intent("qos", 12, encode_policy(default_policy()))
    writes: list = []

    def write(kind, value, expect):
        writes.append(expect)
        if expect < theirs.revision:  # another instance wrote first
            return False, theirs
        return True, Intent(kind, 13, value)

    computed: list = []

    def compute(c):
        computed.append(c.applied.revision("qos"))
        return Change("mine", "done", c.applied.revision("qos"))

    assert servicer(commands, write)._shared(Context(), "qos", compute) == "done"
    assert writes == [0, 12] and computed == [0, 12]
    assert commands.intents == [theirs, Intent("qos", 13, "mine")]  # theirs first, then mine


def test_no_change_writes_nothing_and_an_unreachable_store_applies_nothing():
    commands = Commands()

    def unreachable(kind, value, expect):
        raise StoreUnavailable("etcd unreachable: 127.0.0.1:2379: ConnectionRefusedError")

    s = servicer(commands, unreachable)
    assert s._shared(Context(), "drains",
                     lambda c: Change(None, "not drained", 0)) == "not drained"
    with pytest.raises(Unavailable) as err:
        s._shared(Context(), "drains", lambda c: Change("x", "drained", 0))
    assert status_of(err.value) == grpc.StatusCode.UNAVAILABLE
    assert "etcd unreachable" in str(err.value)
    assert "not applied" in str(err.value) and commands.intents == []


def test_a_change_etcd_refuses_is_a_failed_precondition_with_its_reason():
    commands = Commands()

    def too_large(kind, value, expect):
        raise StoreRefused(3, "etcdserver: request is too large")

    with pytest.raises(FailedPrecondition) as err:
        servicer(commands, too_large)._shared(Context(), "jobs",
                                              lambda c: Change("x" * 10, "ok", 0))
    assert status_of(err.value) == grpc.StatusCode.FAILED_PRECONDITION
    assert "too large" in str(err.value)
    assert "not applied" in str(err.value) and commands.intents == []


def test_a_change_racing_others_every_time_is_refused_whole():
    commands = Commands()
    revision = [20]

    def write(kind, value, expect):
        revision[0] += 1  # someone else always got there first
        return False, Intent(kind, revision[0], "theirs")

    with pytest.raises(Aborted) as err:
        servicer(commands, write)._shared(
            Context(), "drains", lambda c: Change("mine", "", c.applied.revision("drains")))
    assert status_of(err.value) == grpc.StatusCode.ABORTED
    assert {i.value for i in commands.intents} == {"theirs"}  # theirs applied, never mine


def test_a_stored_change_the_controller_is_slow_to_apply_is_said_stored_and_still_applied():
    """Once the store holds a change it is applied here whatever the client's deadline
    (its call is never withdrawn); a client that stops waiting is told it is stored."""
    commands = Commands()
    asked: list = []

    def slow_call(fn, timeout=10.0, must_run=False):
        asked.append(must_run)
        if must_run:
            raise NotAnswered("still waiting after 5 s: it runs when the controller gets "
                              "to it")
        return fn(commands)

    config = FabricdConfig.model_validate(
        {"cluster": {"etcd": ["http://127.0.0.1:2379"], "node_id": "a", "insecure_etcd": True}})
    handle = ControllerHandle(lambda: None, call=slow_call,
                              write_intent=lambda kind, value, expect: (
                                  True, Intent(kind, expect + 1, value)))
    with pytest.raises(Unavailable) as err:
        FabricServicer(handle, config, 0.0)._shared(
            Context(), "drains", lambda c: Change("x", "drained", 0))
    assert asked == [False, True]  # computed, then applied as a call that must run
    assert "stored at revision 1, not in force yet" in str(err.value)
    assert "not applied" not in str(err.value)
