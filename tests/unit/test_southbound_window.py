"""Flow control towards a switch: chunks closed by barriers, a window of unanswered
ones, probes ahead of what waits, held packet-outs after it."""

from __future__ import annotations

import struct
from types import SimpleNamespace

from os_ken.ofproto import ofproto_parser
from os_ken.ofproto import ofproto_v1_3 as ofp
from os_ken.ofproto import ofproto_v1_3_parser as parser

from apps import southbound as sb
from controller.core.effects import PacketOut
from tests.unit.test_southbound_pacing import southbound


class Connection:
    """What the Southbound needs of an os-ken Datapath: an id, numbering, a wire (what
    is written to it is read back as messages, one by one)."""

    ofproto, ofproto_parser = ofp, parser

    def __init__(self, dpid: int) -> None:
        self.id, self.xid, self.sent = dpid, 0, []
        self.writes = 0

    def set_xid(self, msg) -> None:
        self.xid += 1
        msg.set_xid(self.xid)

    def send_msg(self, msg) -> None:
        self.xid += 1
        msg.xid = self.xid
        self.sent.append(msg)

    def send(self, buf: bytes) -> bool:
        self.writes += 1
        pos = 0
        while pos < len(buf):
            version, kind, length, xid = ofproto_parser.header(buf[pos:])
            one = buf[pos:pos + length]
            if kind == ofp.OFPT_BARRIER_REQUEST:
                msg = parser.OFPBarrierRequest(self)
            elif kind == ofp.OFPT_PACKET_OUT:  # (os-ken parses no packet-out)
                actions_len = struct.unpack_from("!H", one, 16)[0]
                msg = parser.OFPPacketOut(self, ofp.OFP_NO_BUFFER, ofp.OFPP_CONTROLLER, [],
                                          bytes(one[24 + actions_len:]))
            else:
                msg = ofproto_parser.msg(self, version, kind, length, xid, one)
            msg.xid = xid
            self.sent.append(msg)
            pos += length
        return True

    def barriers(self) -> list[int]:
        return [m.xid for m in self.sent if isinstance(m, parser.OFPBarrierRequest)]


STALL = 10.0  # seconds a barrier may wait for its answer


def flows(dp, n: int) -> list:
    return [parser.OFPFlowMod(dp, cookie=i) for i in range(n)]


def test_a_switch_is_sent_a_window_of_chunks_and_more_as_it_answers(monkeypatch):
    monkeypatch.setattr(sb, "CHUNK", 4)  # 4 messages and a barrier: 5 a chunk
    monkeypatch.setattr(sb, "WINDOW", 10)  # two chunks unanswered
    out, *_ = southbound()
    dp = Connection(7)
    out.dps[7] = dp
    out.send(dp, flows(dp, 25))
    assert len(dp.sent) == 10 and len(dp.barriers()) == 2
    assert dp.writes == 2  # (a chunk in one write)
    assert out.waiting() == 25 - 8
    # a probe goes at once, behind the window only; a held packet-out waits its turn
    probe = PacketOut(7, (1,), b"\x01" * 60, held=False)
    answer = PacketOut(7, (3,), b"\x02" * 60, held=True)
    out.send_packet_outs([probe, answer])
    assert isinstance(dp.sent[-1], parser.OFPPacketOut) and dp.sent[-1].data == probe.data
    out.answered(dp, dp.barriers()[0])  # one chunk done: one more goes
    assert out.waiting() == 25 - 12 + 1
    out.answered(dp, 999)  # (not ours: nothing)
    assert out.waiting() == 25 - 12 + 1
    while out.waiting():  # every chunk sent so far done, again and again
        out.answered(dp, dp.barriers()[-1])
    mods = [m for m in dp.sent if isinstance(m, parser.OFPFlowMod)]
    assert [m.cookie for m in mods] == list(range(25))
    assert dp.sent[-2].data == answer.data  # after every flow-mod sent before it
    assert isinstance(dp.sent[-1], parser.OFPBarrierRequest)


def test_pins_one_at_a_time_do_not_wait_for_each_barrier_reply():
    """TE sends a pin and a barrier per placement: many fit in the window at once."""
    out, *_ = southbound()
    dp = Connection(7)
    out.dps[7] = dp
    for _ in range(sb.WINDOW // 2):
        out.send(dp, [*flows(dp, 1), parser.OFPBarrierRequest(dp)])
    assert out.waiting() == 0 and len(dp.barriers()) == sb.WINDOW // 2


def test_a_chunk_ends_at_a_barrier_of_its_own_and_a_new_connection_starts_afresh():
    out, *_ = southbound()
    dp = Connection(7)
    out.dps[7] = dp
    out.send(dp, [*flows(dp, 3), parser.OFPBarrierRequest(dp), *flows(dp, 2)])
    assert [type(m).__name__ for m in dp.sent] == [
        "OFPFlowMod", "OFPFlowMod", "OFPFlowMod", "OFPBarrierRequest",  # (its own)
        "OFPFlowMod", "OFPFlowMod", "OFPBarrierRequest"]
    stuck = Connection(7)
    out.dps[7] = stuck
    out.send(stuck, flows(stuck, 10 * sb.WINDOW))
    assert out.waiting() > 0
    left = out.waiting()
    out.forget(dp)  # (the old connection's end: the new one's queue stays)
    assert out.waiting() == left
    out.forget(stuck)
    assert out.waiting() == 0


def test_a_switch_that_stops_answering_barriers_loses_its_session(monkeypatch):
    """A peer that never answers (hostile, wedged) is not owed messages for ever: once a
    barrier has waited too long by the tick's posting time, its session ends; one
    that answers late but within the bound keeps it, and so do the others."""
    ended = []
    monkeypatch.setattr(sb.oskenfix, "end_session", ended.append)
    clock = [100.0]
    monkeypatch.setattr(sb, "time", SimpleNamespace(monotonic=lambda: clock[0]))
    out, *_ = southbound()
    mute, slow = Connection(7), Connection(8)
    out.dps.update({7: mute, 8: slow})
    for dp in (mute, slow):
        out.send(dp, flows(dp, 3 * sb.WINDOW))
    out.drop_stalled(100.0 + STALL / 2, STALL)  # neither is late yet
    assert ended == []
    clock[0] = 100.0 + STALL - 1  # the slow one answers just in time: more goes
    out.answered(slow, slow.barriers()[-1])
    out.drop_stalled(100.0 + STALL + 0.5, STALL)
    assert ended == [mute] and out.stats["sessions_stalled"] == 1
    out.drop_stalled(100.0 + 2 * STALL, STALL)  # (its newer barriers, unanswered since)
    assert ended == [mute, slow] and out.waiting() == 0


def test_a_switch_owed_too_much_loses_its_session(monkeypatch):
    ended = []
    monkeypatch.setattr(sb.oskenfix, "end_session", ended.append)
    monkeypatch.setattr(sb, "MAX_WAITING", 1_000)
    out, *_ = southbound()
    dp = Connection(7)
    out.dps[7] = dp
    out.send(dp, flows(dp, 900))
    assert ended == []
    out.send(dp, flows(dp, 400))
    assert ended == [dp] and out.waiting() == 0
