"""Statistics polling: what the fabric app reads from the switches, how often, and what
it makes of the replies.

One table (:data:`POLLS` as built by :func:`polls`) says what is read and how often:
port counters (link load, and the TE pass once every switch answered), the counters of
TE pins and job pair entries (leaves, with TE on), queue counters (with QoS on) and
meter counters (packets each punt meter dropped at the switch). Requests go out
asynchronously; replies come back as OpenFlow events that the fabric app hands here on
its own thread, so nothing ever waits on a switch. Like Faucet's Gauge, but a component
of the fabric app rather than an app of its own: the TE pass the port counters drive
must run on the thread that owns the core.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from os_ken.ofproto import ofproto_v1_3 as ofp
from os_ken.ofproto import ofproto_v1_3_parser as parser

from apps import ofmsg
from controller.core import constants as C
from controller.core.events import FabricEvent
from controller.core.model.monitor import LoadMonitor, PortCounters, link_stats
from controller.core.snapshot import MeterStat, QueueStat

log = logging.getLogger("aifabric.stats")

METER_EVENT_INTERVAL = 10.0  # seconds between two meter_drops events of one meter


@dataclass(frozen=True)
class Poll:
    """One row of the polling table: what is read and every how many seconds."""

    what: str  # "ports" | "queues" | "meters"
    interval: float


def polls(port_interval: float, qos: bool) -> tuple[Poll, ...]:
    """The table: port counters (and TE's entry counters) every ``port_interval``,
    queues every 2 s (with QoS), meters every second."""
    rows = [Poll("ports", port_interval), Poll("meters", 1.0)]
    if qos:
        rows.insert(1, Poll("queues", 2.0))
    return tuple(rows)


def meter_role(meter_id: int) -> tuple[str, int]:
    """What a meter of ours polices, and for which port (0: the whole switch)."""
    if meter_id == C.METER_LLDP:
        return "lldp", 0
    if meter_id == C.METER_CONTROL:
        return "shared", 0
    if meter_id >= C.METER_TE_BASE:
        return "te_copy", meter_id - C.METER_TE_BASE
    return "host", meter_id - C.METER_HOST_BASE


# the requests, as bytes (sent with each connection's next xid: ofmsg.numbered)
_PORT_STATS = ofmsg.encode(parser.OFPPortStatsRequest(None, 0, ofp.OFPP_ANY))
_QUEUE_STATS = ofmsg.encode(parser.OFPQueueStatsRequest(None, 0, ofp.OFPP_ANY, ofp.OFPQ_ALL))
_METER_STATS = ofmsg.encode(parser.OFPMeterStatsRequest(None, 0, ofp.OFPM_ALL))
# a leaf's TE entry counters: its pins, its jobs' pair entries (by cookie kind)
_COUNTER_READS = tuple(
    (kind, ofmsg.encode(parser.OFPFlowStatsRequest(
        None, 0, C.TABLE_TE, ofp.OFPP_ANY, ofp.OFPG_ANY, C.make_cookie(kind),
        C.COOKIE_OWNER_MASK | C.COOKIE_KIND_MASK)))
    for kind in (C.KIND_PIN, C.KIND_JOB))


class StatsPoller:
    """Sends the table's requests and reads the replies (the fabric app's thread only).

    ``publish(**fields)`` replaces fields of the published value; ``on_round(now)`` is
    called when a round of port counters is complete (or a switch did not answer the
    last round in time), for the TE pass; ``pin_counters(dpid, parts, now, all_pins)``
    takes the counters of a leaf's TE pins (``all_pins``) or job pair entries;
    ``events(list, now)`` publishes fabric events."""

    def __init__(self, monitor: LoadMonitor, publish: Callable[..., None],
                 on_round: Callable[[float], None],
                 pin_counters: Callable[[int, list, float, bool], None],
                 events: Callable[[list[FabricEvent], float], None]) -> None:
        self.monitor = monitor
        self._publish, self._on_round = publish, on_round
        self._pin_counters, self._events = pin_counters, events
        # switches yet to answer this round, by row: what a round gathers is published
        # once, when the last switch answered or the next round starts (a reply at a
        # time would rebuild every link's figures once per switch: quadratic)
        self._awaiting: dict[str, set[int]] = {"ports": set(), "queues": set(),
                                                "meters": set()}
        self._links: tuple = ()  # the links the last port reply was read against
        self._speed_of: Callable[[int, int], float] = lambda dpid, port: 0.0
        self._dps: dict[int, Any] = {}
        # counter reads in flight: xid -> (dpid, pins? (else job pairs), parts so far);
        # a new round drops what never ended
        self._counter_reads: dict[int, tuple[int, bool, list]] = {}
        self._queues: dict[tuple[int, int, int], tuple[int, int, int]] = {}
        self._drops: dict[tuple[int, int], int] = {}  # (dpid, meter) -> dropped so far
        self._drop_event_at: dict[tuple[int, int], float] = {}
        self.meter_drops = 0

    # --- requests ---------------------------------------------------------------------------
    def poll(self, what: str, dps: Iterable[Any], leaves: Iterable[int], now: float) -> None:
        """Send one row's requests to ``dps`` (TE entry counters to ``leaves``): made
        into bytes once, each switch's in one write (at 320 switches, building and
        queueing os-ken's request objects, a thousand a second, was a fifth of the
        fabric app's thread)."""
        dps = list(dps)
        if self._awaiting[what]:  # a switch did not answer the last round in time
            self._round_done(what, now)
        self._awaiting[what] = {dp.id for dp in dps}
        if what == "ports":
            self._counter_reads = {}
            leaves = set(leaves)
            for dp in dps:
                data = ofmsg.numbered(dp, _PORT_STATS)
                if dp.id in leaves:
                    for kind, request in _COUNTER_READS:
                        data += ofmsg.numbered(dp, request)
                        self._counter_reads[dp.xid] = (dp.id, kind == C.KIND_PIN, [])
                dp.send(data)
        else:
            request = _QUEUE_STATS if what == "queues" else _METER_STATS
            for dp in dps:
                dp.send(ofmsg.numbered(dp, request))

    def _answered(self, what: str, dpid: int, now: float) -> None:
        awaiting = self._awaiting[what]
        if dpid in awaiting:  # (a late answer to a round already over counts for nothing)
            awaiting.discard(dpid)
            if not awaiting:
                self._round_done(what, now)

    def _round_done(self, what: str, now: float) -> None:
        self._awaiting[what] = set()
        if what == "ports":
            self._publish(links=link_stats(self._links, self.monitor, self._speed_of),
                          links_at=now)
            self._on_round(now)
        elif what == "queues":
            names = {(d.id, p.port_no): ofmsg.port_name(p)
                     for d in self._dps.values() for p in list(d.ports.values())}
            self._publish(queues=tuple(
                QueueStat(d, p, names.get((d, p), ""), q, *c)
                for (d, p, q), c in sorted(self._queues.items()) if d in self._dps),
                queues_at=now)
        else:
            meters = tuple(MeterStat(d, m, *meter_role(m), n)
                           for (d, m), n in sorted(self._drops.items()) if d in self._dps)
            self.meter_drops = sum(m.dropped for m in meters)
            self._publish(meters=meters)

    # --- replies ----------------------------------------------------------------------------
    def port_stats(self, msg, now: float, links, speed_of) -> None:
        dp = msg.datapath
        for s in msg.body:
            if s.port_no > ofp.OFPP_MAX:
                continue
            self.monitor.update(dp.id, s.port_no, PortCounters(
                s.tx_bytes, s.rx_bytes, s.tx_dropped, s.rx_dropped, s.tx_errors, s.rx_errors),
                now)
        self._links, self._speed_of = links, speed_of
        if not msg.flags & ofp.OFPMPF_REPLY_MORE:
            self._answered("ports", dp.id, now)

    def counters(self, msg, now: float) -> bool:
        """A reply to a counter read of ours (True), or not ours (False)."""
        read = self._counter_reads.get(msg.xid)
        if read is None or read[0] != msg.datapath.id:
            return False  # (or a round that ended already)
        dpid, pins, parts = read
        parts += [(ofmsg.flow_match(s), s.cookie, s.byte_count) for s in msg.body]
        if not msg.flags & ofp.OFPMPF_REPLY_MORE:
            del self._counter_reads[msg.xid]
            # (the whole list of a leaf's TE pins: what another instance's leaf holds)
            self._pin_counters(dpid, parts, now, pins)
        return True

    def queue_stats(self, msg, now: float, dps: dict[int, Any]) -> None:
        dp = msg.datapath
        for s in msg.body:
            self._queues[(dp.id, s.port_no, s.queue_id)] = (s.tx_bytes, s.tx_packets,
                                                            s.tx_errors)
        self._dps = dps
        if not msg.flags & ofp.OFPMPF_REPLY_MORE:
            self._answered("queues", dp.id, now)

    def meter_stats(self, msg, now: float, dps: dict[int, Any]) -> None:
        dp = msg.datapath
        events = []
        for s in msg.body:
            if not C.is_our_meter(s.meter_id) or not s.band_stats:
                continue
            key = (dp.id, s.meter_id)
            dropped = s.band_stats[0].packet_band_count
            before = self._drops.get(key, dropped)
            self._drops[key] = dropped
            if dropped > before and now - self._drop_event_at.get(key, 0.0) >= \
                    METER_EVENT_INTERVAL:
                self._drop_event_at[key] = now
                kind, port = meter_role(s.meter_id)
                what = f"port {dp.id}:{port}" if port else f"switch {dp.id}"
                events.append(FabricEvent(
                    "meter_drops", f"{what} sends more {kind} traffic to the controller than "
                    f"its meter allows: {dropped - before} packets dropped at the switch",
                    (("dpid", str(dp.id)), ("meter", str(s.meter_id)), ("kind", kind),
                     ("port", str(port)), ("dropped", str(dropped - before)))))
                log.warning("meter_drops: %s", events[-1].message)
        self._events(events, now)
        self._dps = dps
        if not msg.flags & ofp.OFPMPF_REPLY_MORE:
            self._answered("meters", dp.id, now)

    def forget(self, dpid: int) -> None:
        """A switch is gone: its load readings with it."""
        self.monitor.forget_switch(dpid)
