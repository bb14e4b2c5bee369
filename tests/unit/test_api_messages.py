"""One shape per entity: the core's snapshots and the API's messages have the same
fields by name (so apps/api/messages.py copies them generically, and a field added on
one side only fails here), and fabricctl's --json renders the messages generically
with the keys scripts rely on."""

from __future__ import annotations

import dataclasses

import pytest
from google.protobuf.json_format import MessageToDict

from aifabric.v1 import fabric_pb2 as pb
from apps.api.messages import event_message, job_message, to_message
from controller.cli.client import (
    flow_dict,
    job_dict,
    links_list,
    message_dict,
    qos_stats_list,
    status_dict,
    topology_dict,
)
from controller.core.events import FabricEvent, StampedEvent
from controller.core.snapshot import (
    FlowInfo,
    HostInfo,
    JobInfo,
    JobPairInfo,
    LinkInfo,
    LinkStat,
    NicInfo,
    QueueStat,
    SwitchEntries,
    SwitchInfo,
    TopologySnapshot,
)

BIG = 2**40 + 7  # a 64-bit dpid ProtoJSON would write as a string

SWITCH = SwitchInfo(BIG, "leaf", True, 1.5, 3, True)
LINK = LinkInfo(BIG, 1, 1001, 2, 3.5, True)
HOST = HostInfo("aa:bb", "10.0.0.1", BIG, 4, 5.5, True, "recovered", 6.5)
NIC = NicInfo("gpu01", 3, "10.0.0.1", "aa:bb", "10.0.0.1", BIG, 4, "off-rail")
FLOW = FlowInfo("10.0.0.1", "10.0.0.3", "udp", 0, 5201, BIG, 2002, 1001, 3, 1.5e6, 2.5e6,
                "collective", True, True, "operator", 7.5, 2)
PAIR = JobPairInfo(0, 1, "10.0.0.1", "10.0.0.3", BIG, 2002, 1001, 3, 1, "placed", 10, 2.5)
JOB = JobInfo("j1", ("10.0.0.1", "10.0.0.3"), "pairs", "roce", "collective", 5, 8.5,
              "placed", (PAIR,), "2001:3 -> 1001:1", 1, 0.25, ((0, 1),))
# snapshot type -> (a populated value, its message)
PAIRS = {
    SwitchInfo: (SWITCH, pb.Switch),
    LinkInfo: (LINK, pb.Link),
    HostInfo: (HOST, pb.Host),
    NicInfo: (NIC, pb.ServerNic),
    TopologySnapshot: (TopologySnapshot((SWITCH,), (LINK,), (HOST,), ("w",), 9.5, (NIC,)),
                       pb.Topology),
    LinkStat: (LinkStat(BIG, 1, 1001, 2, 1.5, 0.25, 0.5, 0.75), pb.LinkStatus),
    QueueStat: (QueueStat(BIG, 1, "s1-eth1", 2, 3 * BIG, 4, 5), pb.QueueStats),
    FlowInfo: (FLOW, pb.FlowStatus),
    JobPairInfo: (PAIR, pb.JobPairStatus),
    SwitchEntries: (SwitchEntries(BIG, True, ("f",), ("g",), ("m",), (7,), 3),
                    pb.SwitchEntries),
    JobInfo: (JOB, pb.JobStatus),
}
FLATTENED = {"flow"}  # FlowStatus.flow: the 5-tuple, FlowInfo's own first fields
# JobStatus.spec is made by hand from these (the core's job_id and rank_pairs)
JOB_SPEC = {"job_id", "members", "pattern", "transport", "traffic_class", "priority",
            "rank_pairs"}


def message_fields(cls) -> set[str]:
    out: set[str] = set()
    for f in cls.DESCRIPTOR.fields:
        out |= {g.name for g in f.message_type.fields} if f.name in FLATTENED else {f.name}
    return out


@pytest.mark.parametrize("kind", list(PAIRS), ids=lambda k: k.__name__)
def test_snapshots_and_messages_have_one_shape(kind):
    _, cls = PAIRS[kind]
    fields = {f.name for f in dataclasses.fields(kind)}
    if kind is JobInfo:
        assert message_fields(cls) - {"spec"} == fields - JOB_SPEC
    else:
        assert message_fields(cls) == fields


@pytest.mark.parametrize("kind", [k for k in PAIRS if k is not JobInfo],
                         ids=lambda k: k.__name__)
def test_every_field_is_copied(kind):
    value, cls = PAIRS[kind]
    got = MessageToDict(to_message(value, cls), preserving_proto_field_name=True,
                        always_print_fields_with_no_presence=True)
    want = dataclasses.asdict(value)
    if kind is FlowInfo:
        flow = got.pop("flow")
        assert flow == {"src_ip": "10.0.0.1", "dst_ip": "10.0.0.3", "protocol": "udp",
                        "src_port": 0, "dst_port": 5201}
        want = {k: v for k, v in want.items() if k not in flow}
    assert want and set(got) == set(want)
    for name, v in want.items():
        if isinstance(v, int) and not isinstance(v, bool):
            assert int(got[name]) == v, name  # (ProtoJSON: 64-bit ints as strings)
        elif not isinstance(v, (tuple, list)):
            assert got[name] == v, name
        else:
            assert len(got[name]) == len(v), name


def test_a_job_and_an_event():
    msg = job_message(JOB)
    assert msg.spec == pb.JobSpec(id="j1", members=["10.0.0.1", "10.0.0.3"], pattern="pairs",
                                  pairs=[pb.RankPair(src=0, dst=1)], transport="roce",
                                  traffic_class="collective", priority=5)
    assert msg.pairs[0].src_leaf == BIG and msg.worst_link_utilization == 0.25
    e = event_message(StampedEvent(3, 4.5, FabricEvent("pin", "m", (("flow", "x"),))))
    assert e == pb.Event(seq=3, time=4.5, kind="pin", message="m", fields={"flow": "x"})


def test_fabricctl_json_keeps_its_keys_and_numbers():
    topo = topology_dict(to_message(PAIRS[TopologySnapshot][0], pb.Topology))
    assert set(topo) == {"switches", "links", "hosts", "warnings", "generated_at",
                         "server_nics"}
    assert topo["switches"][0] == dataclasses.asdict(SWITCH)  # dpid a number
    assert topo["hosts"][0] == dataclasses.asdict(HOST)
    assert topo["server_nics"][0] == dataclasses.asdict(NIC)
    flow = flow_dict(to_message(FLOW, pb.FlowStatus))
    assert flow == dataclasses.asdict(FLOW)
    job = job_dict(job_message(JOB))
    assert set(job) == {"id", "members", "pattern", "pairs_given", "transport",
                        "traffic_class", "priority", "registered_at", "state", "worst_link",
                        "worst_link_pairs", "worst_link_utilization", "pairs"}
    assert job["pairs_given"] == [[0, 1]] and job["pairs"][0] == dataclasses.asdict(PAIR)
    links = links_list(pb.LinkList(links=[to_message(PAIRS[LinkStat][0], pb.LinkStatus)]))
    assert links == [dataclasses.asdict(PAIRS[LinkStat][0])]
    queues = qos_stats_list(pb.QosStats(queues=[to_message(PAIRS[QueueStat][0],
                                                           pb.QueueStats)]))
    assert queues == [dataclasses.asdict(PAIRS[QueueStat][0])]
    st = status_dict(pb.Status(version="v", counters={"b": BIG, "a": 0}))
    assert list(st["counters"].items()) == [("a", 0), ("b", BIG)] and st["cluster"] is None
    assert set(st) == {"version", "started_at", "openflow_port", "qos_enabled", "te_enabled",
                       "link_speed_mbps", "counters", "cluster"}
    st = status_dict(pb.Status(cluster=pb.ClusterStatus(
        name="c", masters=[pb.SwitchMaster(dpid=BIG, node_id="a")])))
    assert st["cluster"]["masters"] == {str(BIG): "a"}
    entries = message_dict(to_message(PAIRS[SwitchEntries][0], pb.SwitchEntries))
    assert entries == {"dpid": BIG, "complete": True, "flows": ["f"], "groups": ["g"],
                       "meters": ["m"], "kept_groups": [7], "pending": 3}
