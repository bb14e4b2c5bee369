import pytest
from pydantic import ValidationError

from controller.core import constants as C
from controller.core.fabric.qos import (
    QosPolicy,
    default_policy,
    marking_rules,
    port_plan,
    range_to_masks,
)


def policy(*classes, **kw):
    return QosPolicy.model_validate({"classes": list(classes), **kw})


ROCE = {"name": "roce", "dscp": 26, "queue": 3, "share": 0.5, "match": {"udp_dst": [4791]}}


def test_default_policy_is_valid_and_leaves_room_for_best_effort():
    p = default_policy()
    assert {c.name for c in p.classes} == {"cnp", "roce", "collective", "storage"}
    assert p.best_effort_share == pytest.approx(0.15)
    cnp = next(c for c in p.classes if c.name == "cnp")
    assert cnp.dscp == 48 and cnp.scheduling == "strict"


@pytest.mark.parametrize(
    "classes,needle",
    [
        ([ROCE, {**ROCE, "name": "roce2", "dscp": 27, "queue": 4, "share": 0.46,
                 "match": {"udp_dst": [5000]}}], "shares add up to 96%"),
        ([ROCE, {**ROCE, "name": "x", "queue": 4, "share": 0.1,
                 "match": {"udp_dst": [1]}}], "DSCP 26 is marked by both"),
        ([ROCE, {**ROCE, "name": "x", "dscp": 27, "share": 0.1,
                 "match": {"udp_dst": [1]}}], "queue 3 is used by both"),
        ([ROCE, {**ROCE, "name": "x", "dscp": 27, "queue": 4, "share": 0.1,
                 "match": {"udp_dst": ["4700-4800"]}}], "overlapping matches"),
        ([ROCE, {**ROCE, "dscp": 27, "queue": 4, "share": 0.1,
                 "match": {"udp_dst": [1]}}], "used twice"),
        ([{**ROCE, "colour": "red"}], "Extra inputs are not permitted"),
        ([{**ROCE, "match": {}}], "needs at least one"),
        ([{**ROCE, "match": {"udp_dst": ["9-3"]}}], "LOW <= HIGH"),
        ([{**ROCE, "match": {"udp_dst": [70000]}}], "1-65535"),
        ([{**ROCE, "match": {"dscp": [64]}}], "outside 0-63"),
        ([{**ROCE, "match": {"dscp": [26], "with_dscp": [48]}}], "with_dscp narrows"),
        ([{**ROCE, "dscp": 0}], "greater than or equal to 1"),
        ([{**ROCE, "queue": 8}], "less than or equal to 7"),
        ([{**ROCE, "share": 1.2}], "less than 1"),
    ],
)
def test_invalid_policies_name_the_problem(classes, needle):
    with pytest.raises(ValidationError) as err:
        policy(*classes)
    assert needle in str(err.value)


def test_more_specific_matches_do_not_conflict():
    cnp = {"name": "cnp", "dscp": 48, "queue": 6, "scheduling": "strict", "share": 0.05,
           "match": {"udp_dst": [4791], "with_dscp": [48]}}
    p = policy(cnp, ROCE)
    rules = marking_rules(p, [3])
    by_dscp = {dict(r.match).get("ip_dscp"): r for r in rules
               if dict(r.match).get("udp_dst") == 4791}
    assert by_dscp[48].priority > by_dscp[None].priority


def test_port_plan_shares_and_ceiling():
    plan = port_plan(default_policy(), 10_000_000)
    queues = {q.queue: q for q in plan.queues}
    assert queues[3].min_rate == 5_000_000 and queues[3].max_rate == 10_000_000
    assert queues[6].priority == 0 and queues[3].priority == 1 and queues[0].priority == 2
    assert queues[0].min_rate == 1_500_000
    # the strict class (CNP, which hosts can mark into) is capped at its share
    assert queues[6].max_rate == queues[6].min_rate == 500_000
    assert all(q.max_rate == plan.rate for q in plan.queues if q.queue != 6)
    assert dict(plan.dscp_to_queue) == {48: 6, 26: 3, 34: 4, 10: 2}


def test_marking_rules_mark_and_remark():
    rules = marking_rules(policy(ROCE), [3, 4])
    assert all(r.table == C.TABLE_CLASSIFY for r in rules)
    roce = [r for r in rules if dict(r.match).get("udp_dst") == 4791]
    assert {dict(r.match)["in_port"] for r in roce} == {3, 4}
    assert roce[0].instructions == (
        ("apply", (("set_field", "ip_dscp", 26), ("set_queue", 3))),
        ("goto", C.TABLE_FORWARD))
    remark = [r for r in rules if r.priority == C.PRIO_QOS_DEFAULT]
    assert len(remark) == 2
    assert remark[0].instructions[0] == ("apply", (("set_field", "ip_dscp", 0),))
    trusting = marking_rules(policy(ROCE, trust_unclassified_dscp=True), [3])
    assert not [r for r in trusting if r.priority == C.PRIO_QOS_DEFAULT]
    assert [dict(r.match).get("udp_dst") for r in trusting] == [4791]  # the class's mark only


@pytest.mark.parametrize("lo,hi", [(5000, 5099), (1, 65535), (4791, 4791), (1024, 2047)])
def test_port_ranges_become_exact_masks(lo, hi):
    covered = set()
    for value, mask in range_to_masks(lo, hi):
        block = {p for p in range(value, value + (~mask & 0xFFFF) + 1)}
        assert all(p & mask == value for p in block)
        assert not covered & block
        covered |= block
    assert covered == set(range(lo, hi + 1))


def test_port_range_rules_use_masks():
    cls = {**ROCE, "match": {"tcp_dst": ["5000-5099"]}}
    rules = [r for r in marking_rules(policy(cls), [3]) if "tcp_dst" in dict(r.match)]
    assert len(rules) == len(range_to_masks(5000, 5099))
    assert (5000, 0xFFF8) in [dict(r.match)["tcp_dst"] for r in rules]


@pytest.mark.parametrize("name", ["default", "cumulus", "cisco", "sonic"])
def test_named_profiles_are_valid(name):
    from controller.core.fabric.qos import profile_policy

    p = profile_policy(name)
    assert any(c.match.udp_dst for c in p.classes)  # RoCEv2 is recognised by its port
    assert p.best_effort_share >= 0.05


def test_config_profile_and_policy(tmp_path):
    from controller.config import load_config

    f = tmp_path / "c.yaml"
    f.write_text("qos: {profile: cisco}\n")
    assert {c.dscp for c in load_config(f).qos.effective_policy().classes} == {48, 24}
    f.write_text("qos: {profile: juniper}\n")
    from controller.config import ConfigError

    with pytest.raises(ConfigError, match="qos.profile"):
        load_config(f)


def test_every_switch_maps_dscp_to_queue_for_the_kernel_datapath():
    from controller.core.fabric.qos import queue_rules

    rules = {dict(r.match)["ip_dscp"]: r for r in queue_rules(default_policy())}
    assert set(rules) == {48, 26, 34, 10}
    assert rules[26].instructions == (("apply", (("set_queue", 3),)), ("goto", C.TABLE_FORWARD))
    assert all(r.priority < C.PRIO_QOS_DEFAULT for r in rules.values())


def test_qos_rows_are_removed_only_when_positively_gone():
    from apps.ovs_qos import PortQosState
    from apps.qos_app import ports_to_clear

    ours = PortQosState("u", True, 10, {}, ())
    foreign = PortQosState("v", False, 10, {}, ())
    state = {"l1-eth1": ours, "l2-eth1": ours, "l3-eth1": ours, "x-eth1": foreign}
    want = {"l1-eth1": ("l1", None)}
    # after a restart only l1 is known: l2's and l3's rows stay
    known = {"l1-eth1", "l2-eth1", "l3-eth1", "x-eth1"}
    assert ports_to_clear(state, want, set(), set(), False, known) == []
    # l3-eth1 was deleted by its switch; l1-eth1 must be re-made
    assert ports_to_clear(state, want, {"l1-eth1"}, {"l3-eth1"}, False, known) == [
        "l1-eth1", "l3-eth1"]
    # --no-qos: every row of ours on the switches it took goes, never a foreign one
    assert ports_to_clear(state, want, set(), set(), True, known) == [
        "l1-eth1", "l2-eth1", "l3-eth1"]
    # nor one of a bridge it never saw (another controller's, on the same OVSDB)
    assert ports_to_clear(state, {}, set(), set(), True, {"l1-eth1"}) == ["l1-eth1"]
