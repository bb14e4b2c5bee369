"""The statistics requests the fabric app sends, made into bytes once (apps/stats.py): the
same messages os-ken would build, each switch's in one write, numbered with its
connection's xids, and the counter reads of leaves known by those xids."""

from __future__ import annotations

from os_ken.ofproto import ofproto_v1_3 as ofp
from os_ken.ofproto import ofproto_v1_3_parser as parser

from apps.stats import StatsPoller
from controller.core import constants as C
from controller.core.model.monitor import LoadMonitor


class Dp:
    """A connection as the poller uses it: an id, os-ken's xid counter, writes."""

    ofproto, ofproto_parser = ofp, parser

    def __init__(self, dpid: int) -> None:
        self.id, self.xid, self.writes = dpid, 100, []

    def set_xid(self, msg) -> None:
        self.xid += 1
        msg.set_xid(self.xid)

    def send(self, data: bytes) -> None:
        self.writes.append(data)


def oskens(dp: Dp, msg, xid: int) -> bytes:
    msg.set_xid(xid)
    msg.serialize()
    return bytes(msg.buf)


def poller() -> StatsPoller:
    return StatsPoller(LoadMonitor(), lambda **kw: None, lambda now: None,
                       lambda *a: None, lambda events, now: None)


def test_port_counters_go_in_one_write_per_switch_with_a_leafs_counter_reads():
    spine, leaf = Dp(1), Dp(2)
    stats = poller()
    stats.poll("ports", [spine, leaf], {2}, 0.0)
    assert spine.writes == [oskens(spine, parser.OFPPortStatsRequest(spine, 0, ofp.OFPP_ANY),
                                   101)]
    reads = [oskens(leaf, parser.OFPFlowStatsRequest(
        leaf, 0, C.TABLE_TE, ofp.OFPP_ANY, ofp.OFPG_ANY, C.make_cookie(kind),
        C.COOKIE_OWNER_MASK | C.COOKIE_KIND_MASK), xid)
        for kind, xid in ((C.KIND_PIN, 102), (C.KIND_JOB, 103))]
    assert leaf.writes == [oskens(leaf, parser.OFPPortStatsRequest(leaf, 0, ofp.OFPP_ANY), 101)
                           + reads[0] + reads[1]]
    assert leaf.xid == 103  # (what os-ken numbers next follows on)
    assert {x: (d, pins) for x, (d, pins, _) in stats._counter_reads.items()} == {
        102: (2, True), 103: (2, False)}


def test_queue_and_meter_counters_are_one_request_each():
    dp = Dp(7)
    stats = poller()
    stats.poll("queues", [dp], (), 0.0)
    stats.poll("meters", [dp], (), 0.0)
    assert dp.writes == [
        oskens(dp, parser.OFPQueueStatsRequest(dp, 0, ofp.OFPP_ANY, ofp.OFPQ_ALL), 101),
        oskens(dp, parser.OFPMeterStatsRequest(dp, 0, ofp.OFPM_ALL), 102)]
