"""The os-ken app that owns the fabric: discovery, host learning, forwarding sync.

A thin translator. OpenFlow events become calls into :class:`controller.core.FabricCore`
on this app's own event thread (the only writer of controller state); the core's
packet-outs and desired entries become OpenFlow messages. When a switch connects, what
it already holds is read back first, so the difference is all that is ever sent: a
reconnecting switch, or every switch after a controller restart, is reconciled in
place, not wiped.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from os_ken.base import app_manager
from os_ken.controller import event, ofp_event
from os_ken.controller.handler import (
    CONFIG_DISPATCHER,
    DEAD_DISPATCHER,
    MAIN_DISPATCHER,
    set_ev_cls,
)
from os_ken.ofproto import ofproto_v1_3 as ofp
from os_ken.ofproto import ofproto_v1_3_parser as parser

from apps import ofmsg, oskenfix, runtime
from apps.api.event_bus import EventBus
from apps.api.metrics import LOOP_LAG
from apps.guard import Heartbeat, guarded, handler_errors
from apps.intake import CALL, CONTROL, TICK, IntakeLimits
from apps.loop import BoundedLoopApp
from controller.core import constants as C
from controller.core import ofctl_text
from controller.core.events import FabricEvent
from controller.core.fabric_core import CoreSettings, Effects, FabricCore
from controller.core.jobs import JobSpec
from controller.core.mastership import Yield
from controller.core.model import Port
from controller.core.monitor import LoadMonitor, PortCounters, link_stats
from controller.core.openflow import MeterRule
from controller.core.schedule import Job, Schedule
from controller.core.shared import (
    TITLES,
    Applied,
    Drains,
    Intent,
    IntentError,
    decode_jobs,
    decode_moves,
    decode_pins,
    decode_policy,
    encode_jobs,
    encode_moves,
    encode_pins,
)
from controller.core.snapshot import (
    FlowInfo,
    JobInfo,
    MeterStat,
    Published,
    QueueStat,
    SwitchEntries,
    TopologySnapshot,
)
from controller.core.sync import Session, SwitchSync
from controller.core.te import PROTO_NAMES, FlowKey
from controller.core.te import search as te_search

log = logging.getLogger("aifabric.fabric")
oskenfix.apply()

TICK_SECONDS = 0.25
RESYNC_MIN_INTERVAL = 5.0
QUEUE_STATS_INTERVAL = 2.0
METER_STATS_INTERVAL = 1.0
METER_EVENT_INTERVAL = 10.0  # seconds between two meter_drops events of one meter
# moves of a rebalancing pass applied per event (whole leaves): a pass that moves
# thousands of flows is applied in slices, other events served between them
REBALANCE_SLICE = 256
SYNC_MAX_DELAY = 0.05  # seconds a change may wait while other events keep arriving


class EventTick(event.EventBase):
    """Posted by the ticker thread; handled on the app's own thread."""

    def __init__(self) -> None:
        super().__init__()
        self.posted = time.monotonic()
        self.posted_wall = time.time()


class EventRebalanced(event.EventBase):
    """A rebalancing pass searched on the worker thread comes back (None: it failed)."""

    def __init__(self, plan) -> None:
        super().__init__()
        self.plan = plan


class EventCall(event.EventBase):
    """Run ``fn(app)`` on the app's own thread, for a caller on another thread (the
    API); the result or the exception is kept for it, and ``done`` set.

    A caller that gives up first cancels it with :meth:`cancel`: then either it never
    runs, or it has already started and the caller waits for its outcome, so that what
    the caller reports is what happened. API calls wait in a bounded lane: beyond it
    the app refuses them (:meth:`FabricApp.submit` returns False) and the caller says
    the controller is busy."""

    def __init__(self, fn, must_run: bool = False) -> None:
        super().__init__()
        self.fn = fn
        self.must_run = must_run  # never refused (the cluster agent's work), else an API call
        self.result = None
        self.error: BaseException | None = None
        self.done = threading.Event()
        self._lock = threading.Lock()
        self._started = False
        self._cancelled = False

    def cancel(self) -> bool:
        """True if it will not run; False if it is running or ran."""
        with self._lock:
            if not self._started:
                self._cancelled = True
            return self._cancelled

    def start(self) -> bool:
        """Called by the app: False if the caller cancelled it."""
        with self._lock:
            if self._cancelled:
                return False
            self._started = True
            return True


def meter_role(meter_id: int) -> tuple[str, int]:
    """What a meter of ours polices, and for which port (0: the whole switch)."""
    if meter_id == C.METER_LLDP:
        return "lldp", 0
    if meter_id == C.METER_CONTROL:
        return "shared", 0
    if meter_id >= C.METER_TE_BASE:
        return "te_copy", meter_id - C.METER_TE_BASE
    return "host", meter_id - C.METER_HOST_BASE


def _port(desc) -> Port:
    up = not (desc.state & ofp.OFPPS_LINK_DOWN) and not (desc.config & ofp.OFPPC_PORT_DOWN)
    return Port(desc.port_no, ofmsg.port_name(desc), desc.hw_addr, up,
                int(getattr(desc, "curr_speed", 0)) * 1000)


class FabricApp(BoundedLoopApp):
    OFP_VERSIONS = [ofp.OFP_VERSION]
    _EVENTS = [EventTick, EventCall, EventRebalanced]

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        cfg = runtime.config()
        disc = cfg.discovery
        self.core = FabricCore(
            CoreSettings(
                lldp_interval=disc.lldp_interval,
                link_timeout=disc.link_timeout,
                settle_time=disc.settle_time,
                absent_timeout=disc.absent_timeout,
                damping=disc.dampening.settings(),
                role_overrides=dict(cfg.roles),
                cabling=cfg.cabling_plan(),
                qos=runtime.qos_policy(cfg),
                te=cfg.te.settings() if cfg.te.enabled else None,
                link_speed_bps=(cfg.link_speed_mbps or 0) * 1_000_000,
                new_flow_rate=cfg.te.new_flow_rate,
                hosts=cfg.host_settings(),
                punt=cfg.punt_limits(),
                declined_flow_timeout=cfg.edge.declined_flow_timeout,
                max_flows_per_port=cfg.te.max_flows_per_port,
                job_limits=cfg.jobs.limits(),
                source_guard=cfg.edge.source_guard,
            ),
            secret=runtime.secret() or os.urandom(32),
        )
        self.sync = SwitchSync(self.core)  # per-switch sessions: read-back, mirror, plans
        self.dps: dict[int, Any] = {}  # dpid -> its current connection (os-ken Datapath)
        # what other threads see (the API, metrics): one value, replaced whole
        self.published = Published(TopologySnapshot.empty(), qos_policy=self.core.qos)
        self._stop = threading.Event()
        self._dirty_since: float | None = None  # a change waits for its sync since then
        self._dirty_all = False  # the change concerns every switch (else: self._touched)
        self._settled: frozenset[int] = frozenset()
        # groups towards leaves not back yet, and switches waiting for one
        self._frozen: tuple[frozenset[int], frozenset[int]] = (frozenset(), frozenset())
        self._held_outs: list = []  # packet-outs waiting for the entries they rely on
        self._sync_due = False  # a sync is deferred until the events queued now are handled
        # TE's rebalancing search runs here, one pass at a time (its result comes back
        # as an event and is applied only if the fabric did not change meanwhile)
        self._rebalancer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="aifabric-te")
        self._rebalancing = False
        self._meter_drops: dict[tuple[int, int], int] = {}  # (dpid, meter) -> dropped
        self._meter_event_at: dict[tuple[int, int], float] = {}
        self._queue_counters: dict[tuple[int, int, int], tuple[int, int, int]] = {}
        self.monitor = LoadMonitor(alpha=cfg.te.smoothing)
        self.poll_interval = cfg.te.poll_interval
        # periodic work: what runs how often (each is a method taking (now, tick))
        self.schedule = Schedule([
            Job("probe", self.core.settings.lldp_interval),  # LLDP out, links expire
            Job("port_stats", self.poll_interval),  # link load, TE pin counters, TE pass
            Job("queue_stats", QUEUE_STATS_INTERVAL),
            Job("meter_stats", METER_STATS_INTERVAL),
        ])
        self._jobs = {"probe": self._probe, "port_stats": self._poll_ports,
                      "queue_stats": self._poll_queues, "meter_stats": self._poll_meters}
        self.stats = {"packet_in": 0, "flow_mods": 0, "group_mods": 0, "packet_out": 0,
                      "te_passes": 0}
        self.event_bus = EventBus()
        self._awaiting_ports: set[int] = set()  # switches yet to answer this poll round
        # the counter reads of TE pins and job pair entries in flight: xid -> (dpid, pins?
        # (else job pairs), the reply's parts so far); a poll round drops what never ended
        self._counter_reads: dict[int, tuple[int, bool, list]] = {}
        self._touched: set[int] = set()  # switches whose TE pins changed since the last sync
        self.heartbeat = Heartbeat()  # read by the watchdog (another thread)
        self._hosts_generation = 0
        self._errors_seen: dict[str, int] = {}
        # Cluster mode: this instance writes only to the switches it masters (the
        # cluster agent decides, set_roles carries it out); alone, to every switch.
        self.clustered = cfg.cluster.enabled
        self.masters: set[int] = set()
        self._connections: dict[int, int] = {}  # dpid -> number of its current connection
        self._connection_count = 0
        self.cluster_agent = None  # set by the daemon once the app runs (cluster mode)
        self.shared = Applied()  # the revision of each shared kind applied here
        self.node_id = cfg.cluster.node_id or ""
        self.te_leader = False  # cluster mode: this instance relieves and rebalances
        self._publish(masters=frozenset() if self.clustered else None)
        self._restore(runtime.intents())
        if self.clustered:
            self.core.set_cluster_role(frozenset(), leader=False)

    def intake_limits(self) -> IntakeLimits:
        of = runtime.config().openflow
        return IntakeLimits(punts=of.punt_backlog, punts_per_switch=of.punt_backlog_per_switch,
                            per_switch=of.message_backlog_per_switch)

    def intake_lane(self, ev):
        if isinstance(ev, EventTick):
            return TICK, None
        if isinstance(ev, EventCall):
            return (CONTROL if ev.must_run else CALL), None
        return super().intake_lane(ev)

    def _restore(self, intents) -> None:
        """Standalone: the intent kept in the state file, in force before any switch
        connects (the QoS policy is the core's from the start: runtime.qos_policy)."""
        now = time.time()
        for intent in intents:
            if intent.kind == "drains":
                self.core.set_drains(Drains.decode(intent.value))
            elif intent.kind in ("jobs", "pins") and self.core.te is None:
                log.warning("the %s kept in the state file are not in force: traffic "
                            "engineering is off", TITLES[intent.kind])
            elif intent.kind == "jobs":  # (placed once their hosts are known)
                self.core.restore_jobs(decode_jobs(intent.value), now)
            elif intent.kind == "pins":  # (made once their flows are seen)
                self.core.set_pins(decode_pins(intent.value), now)
            elif intent.kind == "qos" and self.core.qos is None:
                log.warning("the QoS policy kept in the state file is not in force: QoS "
                            "is off")
            self.shared.mark(intent)
            log.info("%s restored from the state file (revision %d)", TITLES[intent.kind],
                     intent.revision)
        self.core.take_events()  # (a restored drain is not news)
        self._publish(topology=self.core.snapshot(now), qos_policy=self.core.qos)
        self._publish_flows(now)

    def writable(self, dpid: int) -> bool:
        """True if this instance may write to ``dpid`` (alone: always)."""
        return not self.clustered or dpid in self.masters

    # --- lifecycle ----------------------------------------------------------------------------
    def start(self):
        thread = super().start()
        threading.Thread(target=self._ticker, name="aifabric-ticker", daemon=True).start()
        return thread

    def close(self) -> None:
        self._rebalancer.shutdown(wait=False, cancel_futures=True)
        self._stop.set()

    def stalled(self, limit: float) -> str | None:
        """Why the event loop looks stuck, or None. Safe to call from any thread."""
        return self.heartbeat.stalled(limit)

    def _ticker(self) -> None:
        # os-ken's own timed waits do not work on the native hub: a plain sleep loop posts
        # ticks, and the work happens on the app thread.
        while not self._stop.is_set():
            time.sleep(TICK_SECONDS)
            self.submit(EventTick())  # (one waits at most: a late loop is not flooded)

    # --- periodic work: the table is in __init__ (self.schedule) ---------------------------
    def _probe(self, now: float, ev) -> Effects:
        # Links expire by the tick's posting time: every LLDP reply that arrived before
        # it has been handled by now (one queue), however busy the loop was.
        return self.core.tick(now, horizon=ev.posted_wall)

    def _poll_ports(self, now: float, ev) -> Effects:
        # asynchronous: replies come back as events, the loop never waits on a switch
        eff = Effects()
        if self._awaiting_ports:  # a switch did not answer the last round in time
            eff = self._te_pass(now)
            self._publish_flows(now)
        self._awaiting_ports = set(self.dps)
        self._counter_reads = {}
        for dp in self.dps.values():
            dp.send_msg(parser.OFPPortStatsRequest(dp, 0, ofp.OFPP_ANY))
            if self.core.te is not None and self.core.role(dp.id) == "leaf":
                for kind in (C.KIND_PIN, C.KIND_JOB):
                    req = parser.OFPFlowStatsRequest(
                        dp, 0, C.TABLE_TE, ofp.OFPP_ANY, ofp.OFPG_ANY,
                        C.make_cookie(kind), C.COOKIE_OWNER_MASK | C.COOKIE_KIND_MASK)
                    dp.send_msg(req)  # (numbers the request)
                    self._counter_reads[req.xid] = (dp.id, kind == C.KIND_PIN, [])
        return eff

    def _poll_queues(self, now: float, ev) -> Effects:
        if self.core.qos is not None:
            for dp in self.dps.values():
                dp.send_msg(parser.OFPQueueStatsRequest(dp, 0, ofp.OFPP_ANY, ofp.OFPQ_ALL))
        return Effects()

    def _poll_meters(self, now: float, ev) -> Effects:
        for dp in self.dps.values():
            dp.send_msg(parser.OFPMeterStatsRequest(dp, 0, ofp.OFPM_ALL))
        return Effects()

    @set_ev_cls(EventTick)
    @guarded
    def _on_tick(self, ev) -> None:
        self.heartbeat.beat()
        LOOP_LAG.observe(time.monotonic() - ev.posted)
        now = time.time()
        eff = Effects()
        for job in self.schedule.due(now):
            eff.merge(self._jobs[job](now, ev))
        # Switches become settled with time alone: sync when that happens.
        settled = frozenset(d for d in self.dps if self.core.is_settled(d, now))
        frozen = self.core.frozen_groups(now)
        waiting = frozenset(d for d in self.dps if self.core.waiting(d, now))
        newly = settled != self._settled or (frozen, waiting) != self._frozen
        self._settled, self._frozen = settled, (frozen, waiting)
        self._apply(eff, now, force_sync=newly)
        te_stats = self.core.te.stats if self.core.te is not None else {}
        generation = self.core.host_guard.generation
        if generation != self._hosts_generation:  # a host's state changed, maybe silently
            self._hosts_generation = generation
            self._publish(topology=self.core.snapshot(now))
        errors_now = handler_errors()
        if errors_now != self._errors_seen:  # (counted in guard; announced from here)
            self.event_bus.publish([FabricEvent(
                "handler_error", f"handler {name} failed {n - self._errors_seen.get(name, 0)} "
                f"time(s) ({n} in all); the events were dropped, the app goes on (see the "
                "log for the traceback)", (("handler", name), ("total", str(n))))
                for name, n in sorted(errors_now.items())
                if n != self._errors_seen.get(name, 0)], now)
            self._errors_seen = errors_now
        errors = {f"handler_errors.{k}": v for k, v in errors_now.items()}
        qos_app = app_manager.lookup_service_brick("QosApp")
        if qos_app is not None:  # (read-only: ints and a reference)
            errors["qos_errors"] = qos_app.errors
            errors["qos_failing"] = int(qos_app.failing is not None)
        self._publish(counters={**self.stats, **self.core.counters, **te_stats, **errors})

    # --- switch connection ------------------------------------------------------------------
    @set_ev_cls(ofp_event.EventOFPStateChange, [MAIN_DISPATCHER, DEAD_DISPATCHER])
    @guarded
    def _on_state_change(self, ev) -> None:
        dp = ev.datapath
        now = time.time()
        if ev.state == MAIN_DISPATCHER:
            if dp.id is None:
                return
            old = self.dps.get(dp.id)
            if old is not None and old is not dp:
                log.info("switch %d reconnected; the old connection is dropped", dp.id)
            ports = [_port(p) for p in list(dp.ports.values())]
            self.dps[dp.id] = dp
            if self.clustered:
                self._lose_master(dp.id)  # (a new connection starts as an equal)
                self._connection_count += 1
                self._connections[dp.id] = self._connection_count
                dp.send_msg(ofmsg.async_all_roles(dp))
            self._request_state(dp, self.sync.connect(dp.id, dp, now))
            self._apply(self.core.switch_connected(dp.id, ports, now), now)
        elif ev.state == DEAD_DISPATCHER:
            if dp.id is None:
                return
            if not self.sync.disconnect(dp.id, dp):
                return  # an old connection of a switch that has already reconnected
            del self.dps[dp.id]
            if self.clustered:
                self._lose_master(dp.id)
                self._connections.pop(dp.id, None)
            self.monitor.forget_switch(dp.id)
            self._apply(self.core.switch_disconnected(dp.id, now), now)

    @set_ev_cls(ofp_event.EventOFPSwitchFeatures, CONFIG_DISPATCHER)
    @guarded
    def _on_features(self, ev) -> None:
        dp = ev.msg.datapath
        # Full frames to the controller on table-miss (our own entries use NO_BUFFER).
        dp.send_msg(parser.OFPSetConfig(dp, ofp.OFPC_FRAG_NORMAL, ofp.OFPCML_NO_BUFFER))

    def _request_state(self, dp, session: Session) -> None:
        """Read the switch's entries, groups and meters back (its session's read-back)."""
        req = parser.OFPFlowStatsRequest(dp, 0, ofp.OFPTT_ALL, ofp.OFPP_ANY, ofp.OFPG_ANY)
        dp.send_msg(req)  # (numbers the request)
        session.read_xid = req.xid
        dp.send_msg(parser.OFPGroupDescStatsRequest(dp, 0))
        meters = parser.OFPMeterConfigStatsRequest(dp, 0, ofp.OFPM_ALL)
        dp.send_msg(meters)
        session.meter_xid = meters.xid

    def _sync_for(self, dp) -> Session | None:
        return self.sync.current(dp.id, dp)

    @set_ev_cls(ofp_event.EventOFPFlowStatsReply, MAIN_DISPATCHER)
    @guarded
    def _on_flow_stats(self, ev) -> None:
        sync = self._sync_for(ev.msg.datapath)
        if sync is None:
            return
        if ev.msg.xid != sync.read_xid:  # counters of the TE pins and job pairs
            read = self._counter_reads.get(ev.msg.xid)
            if read is None or read[0] != ev.msg.datapath.id:
                return  # (a round that ended already)
            dpid, pins, parts = read
            parts += [(ofmsg.flow_match(s), s.cookie, s.byte_count) for s in ev.msg.body]
            if ev.msg.flags & ofp.OFPMPF_REPLY_MORE:
                return
            del self._counter_reads[ev.msg.xid]
            # (the whole list of a leaf's TE pins: what another instance's leaf holds)
            self.core.pin_counters(dpid, parts, time.time(), all_pins=pins)
            return
        self._read(ev.msg, "flows", [ofmsg.flow_from_stats(s) for s in ev.msg.body])

    @set_ev_cls(ofp_event.EventOFPGroupDescStatsReply, MAIN_DISPATCHER)
    @guarded
    def _on_group_desc(self, ev) -> None:
        self._read(ev.msg, "groups", [ofmsg.group_from_desc(g) for g in ev.msg.body])

    @set_ev_cls(ofp_event.EventOFPMeterConfigStatsReply, MAIN_DISPATCHER)
    @guarded
    def _on_meter_config(self, ev) -> None:
        # (a meter of ours in another shape is held as "rate 0": it gets modified)
        self._read(ev.msg, "meters", [ofmsg.meter_from_config(stat)
                                      or MeterRule(stat.meter_id, 0, 0)
                                      for stat in ev.msg.body if C.is_our_meter(stat.meter_id)])

    def _read(self, msg, part: str, items: list, last: bool | None = None) -> None:
        """One reply of a switch's read-back; once complete, the core recovers from it."""
        dp = msg.datapath
        if last is None:
            last = not msg.flags & ofp.OFPMPF_REPLY_MORE
        got = self.sync.read(dp.id, dp, part, items, last)
        if got is None:
            return
        log.info(
            "switch %d holds %d aifabric entries, %d groups, %d meters, %d foreign entries "
            "(left alone)", got.dpid, len(got.flows), len(got.groups), len(got.meters),
            got.foreign,
        )
        dpid, now = got.dpid, time.time()
        self.core.recover_pins(dpid, got.flows)
        self.core.recover_layout(dpid, got.flows, got.groups)
        self._apply(self.core.recover_hosts(dpid, got.flows, now), now, force_sync=True)
        # Probe only now: the switch holds its LLDP entry, so replies to it are seen.
        self._apply(self.core.probe(dpid, now), now)

    # --- QoS (called through EventCall) -----------------------------------------------------
    def set_qos_policy(self, policy) -> None:
        """Marking on the switches and the queues' plan as one change, on this thread:
        two policies set at once are applied one after the other, whole."""
        now = time.time()
        self._apply(self.core.set_qos_policy(policy), now, flush=True)
        self._publish(qos_policy=policy)
        qos_app = app_manager.lookup_service_brick("QosApp")
        if qos_app is not None:
            qos_app.set_policy(policy)  # thread-safe: its worker provisions the queues
        log.info("QoS policy replaced: %s", ", ".join(c.name for c in policy.classes))

    # --- reads that need the app's thread (called through EventCall) ------------------------
    def switch_entries(self, dpid: int) -> SwitchEntries:
        """What switch ``dpid`` should hold, and how far its session is from it."""
        session = self.sync.sessions.get(dpid)
        if session is None:
            raise LookupError(f"switch {dpid} is not connected")
        now = time.time()
        # (a change not synced yet: its re-placements first, as the sync would make them)
        self._apply(self.core.prepare(now), now)
        desired, complete = self.core.desired(dpid, now)
        keep = self.core.kept_groups(dpid, session.mirror.groups, now)
        pending = len(self.sync.plan_for(session, now))
        return SwitchEntries(
            dpid, complete,
            tuple(ofctl_text.flow_text(r) for _, r in sorted(desired.flows.items(),
                                                              key=lambda kv: repr(kv[0]))),
            tuple(ofctl_text.group_text(g) for _, g in sorted(desired.groups.items())),
            tuple(ofctl_text.meter_text(m) for _, m in sorted(desired.meters.items())),
            tuple(sorted(keep)), pending)

    @set_ev_cls(ofp_event.EventOFPQueueStatsReply, MAIN_DISPATCHER)
    @guarded
    def _on_queue_stats(self, ev) -> None:
        dp = ev.msg.datapath
        if self._sync_for(dp) is None:
            return
        for s in ev.msg.body:
            self._queue_counters[(dp.id, s.port_no, s.queue_id)] = (
                s.tx_bytes, s.tx_packets, s.tx_errors)
        if not ev.msg.flags & ofp.OFPMPF_REPLY_MORE:
            names = {}
            for d in self.dps.values():
                for p in list(d.ports.values()):
                    names[(d.id, p.port_no)] = ofmsg.port_name(p)
            self._publish(queues=tuple(
                QueueStat(d, p, names.get((d, p), ""), q, *c)
                for (d, p, q), c in sorted(self._queue_counters.items()) if d in self.dps
            ), queues_at=time.time())

    @set_ev_cls(ofp_event.EventOFPMeterStatsReply, MAIN_DISPATCHER)
    @guarded
    def _on_meter_stats(self, ev) -> None:
        dp = ev.msg.datapath
        if self._sync_for(dp) is None:
            return
        now = time.time()
        events = []
        for s in ev.msg.body:
            if not C.is_our_meter(s.meter_id) or not s.band_stats:
                continue
            key = (dp.id, s.meter_id)
            dropped = s.band_stats[0].packet_band_count
            before = self._meter_drops.get(key, dropped)
            self._meter_drops[key] = dropped
            if dropped > before and now - self._meter_event_at.get(key, 0.0) >= \
                    METER_EVENT_INTERVAL:
                self._meter_event_at[key] = now
                kind, port = meter_role(s.meter_id)
                what = f"port {dp.id}:{port}" if port else f"switch {dp.id}"
                events.append(FabricEvent(
                    "meter_drops", f"{what} sends more {kind} traffic to the controller than "
                    f"its meter allows: {dropped - before} packets dropped at the switch",
                    (("dpid", str(dp.id)), ("meter", str(s.meter_id)), ("kind", kind),
                     ("port", str(port)), ("dropped", str(dropped - before)))))
                log.warning("meter_drops: %s", events[-1].message)
        self.event_bus.publish(events, now)
        if not ev.msg.flags & ofp.OFPMPF_REPLY_MORE:
            meters = tuple(
                MeterStat(d, m, *meter_role(m), n)
                for (d, m), n in sorted(self._meter_drops.items()) if d in self.dps)
            self._publish(meters=meters)
            self.stats["meter_drops"] = sum(m.dropped for m in meters)

    # --- monitoring -----------------------------------------------------------------------
    @set_ev_cls(ofp_event.EventOFPPortStatsReply, MAIN_DISPATCHER)
    @guarded
    def _on_port_stats(self, ev) -> None:
        dp = ev.msg.datapath
        if self._sync_for(dp) is None:
            return
        now = time.time()
        for s in ev.msg.body:
            if s.port_no > ofp.OFPP_MAX:
                continue
            self.monitor.update(dp.id, s.port_no, PortCounters(
                s.tx_bytes, s.rx_bytes, s.tx_dropped, s.rx_dropped, s.tx_errors, s.rx_errors),
                now)
        if not ev.msg.flags & ofp.OFPMPF_REPLY_MORE:
            self._publish_link_stats(now)
            self._awaiting_ports.discard(dp.id)
            if not self._awaiting_ports:
                self._apply(self._te_pass(now), now)
                self._publish_flows(now)

    def _te_pass(self, now: float) -> Effects:
        """Expiry and congestion here; the rebalancing search (the long part) on the worker
        thread, so that packet-ins, LLDP and port status never wait for it."""
        self._awaiting_ports = set()
        self.stats["te_passes"] += 1
        rates = {k: load.tx_bps for k, load in self.monitor.ports.items()}
        eff = self.core.te_pass(rates, now, rebalance=False)
        self._share_moves()
        if not self._rebalancing:
            job = self.core.rebalance_job(now)
            if job is not None:
                self._rebalancing = True
                self._rebalancer.submit(self._search, job)
        return eff

    def _search(self, job) -> None:
        """On the worker thread: the pure search, then the result back to the app."""
        try:
            plan = te_search(job)
        except Exception:  # (a bug must not leave rebalancing stuck "in flight")
            log.exception("rebalancing search failed; the flows stay where they are")
            plan = None
        self.submit(EventRebalanced(plan))

    @set_ev_cls(EventRebalanced)
    @guarded
    def _on_rebalanced(self, ev) -> None:
        if ev.plan is None:
            self._rebalancing = False
            return
        now = time.time()
        eff, rest = self.core.rebalanced(ev.plan, now, REBALANCE_SLICE)
        self._apply(eff, now)
        self._share_moves()
        if rest is not None:  # the next slice after whatever else is waiting
            self.later(lambda: self._on_rebalanced(EventRebalanced(rest)))
            return
        self._rebalancing = False
        self._publish_flows(now)

    # --- API calls ------------------------------------------------------------------------
    @set_ev_cls(EventCall)
    @guarded
    def _on_call(self, ev) -> None:
        if not ev.start():
            return  # its caller gave up before it ran: not applied
        try:
            ev.result = ev.fn(self)
        except Exception as exc:  # handed to the caller, who maps it to a status
            ev.error = exc
        finally:
            ev.done.set()

    def flow_info(self, key: FlowKey) -> FlowInfo:
        """The flow as published (LookupError if TE does not track it)."""
        want = (key.src_ip, key.dst_ip, PROTO_NAMES[key.proto], key.src_port, key.dst_port)
        found = next((f for f in self.published.flows
                      if (f.src_ip, f.dst_ip, f.protocol, f.src_port, f.dst_port) == want),
                     None)
        if found is None:
            raise LookupError(f"no flow {key}")
        return found

    def job_info(self, job_id: str) -> JobInfo:
        found = next((j for j in self.core.job_infos() if j.job_id == job_id), None)
        if found is None:
            raise LookupError(f"no job {job_id!r}")
        return found

    def _publish_link_stats(self, now: float) -> None:
        self._publish(links=link_stats(self.published.topology.links, self.monitor,
                                       self.core.port_speed), links_at=now)

    # --- OpenFlow input -----------------------------------------------------------------------
    @set_ev_cls(ofp_event.EventOFPPacketIn, MAIN_DISPATCHER)
    @guarded
    def _on_packet_in(self, ev) -> None:
        msg = ev.msg
        dp = msg.datapath
        if self._sync_for(dp) is None:
            return
        self.stats["packet_in"] += 1
        in_port = msg.match.get("in_port")
        if in_port is None:
            return
        now = time.time()
        # The core judges a frame by when it arrived (os-ken stamps it in the receive
        # thread), not by how long it queued: a busy loop must not reject its own fresh
        # LLDP probes as stale.
        arrived = min(getattr(ev, "timestamp", now) or now, now)
        kind = C.cookie_kind(msg.cookie) if C.is_ours(msg.cookie) else None
        if kind == C.KIND_TE:
            self._apply(self.core.flow_seen(dp.id, in_port, bytes(msg.data), arrived), now)
            return
        if kind == C.KIND_GUARD:
            self._apply(self.core.unbound_source(dp.id, in_port, bytes(msg.data), arrived),
                        now)
            return
        self._apply(self.core.packet_in(dp.id, in_port, bytes(msg.data), arrived), now)

    @set_ev_cls(ofp_event.EventOFPPortStatus, MAIN_DISPATCHER)
    @guarded
    def _on_port_status(self, ev) -> None:
        msg = ev.msg
        dp = msg.datapath
        if self._sync_for(dp) is None:
            return
        now = time.time()
        port = _port(msg.desc)
        deleted = msg.reason == ofp.OFPPR_DELETE
        log.info(
            "port %d:%d (%s) %s", dp.id, port.port_no, port.name,
            "deleted" if deleted else ("up" if port.up else "down"),
        )
        self._apply(self.core.port_status(dp.id, port, deleted, now), now)

    @set_ev_cls(ofp_event.EventOFPErrorMsg, MAIN_DISPATCHER)
    @guarded
    def _on_error(self, ev) -> None:
        msg = ev.msg
        dp = msg.datapath
        if self.clustered and (
                (msg.type, msg.code) == (ofp.OFPET_BAD_REQUEST, ofp.OFPBRC_IS_SLAVE)
                or msg.type == ofp.OFPET_ROLE_REQUEST_FAILED):
            # another instance took the switch (or our request was stale): stop writing
            stale = msg.type == ofp.OFPET_ROLE_REQUEST_FAILED
            log.log(logging.INFO if stale else logging.WARNING,
                    "switch %s: not its master (%s)", dp.id,
                    "a newer master's generation is in force" if stale
                    else "the switch refused a write: another instance masters it")
            self._lose_master(dp.id)
            return
        log.error(
            "switch %s reported OpenFlow error type=%d code=%d; its state will be re-read",
            dp.id, msg.type, msg.code,
        )
        sync = self._sync_for(dp)
        now = time.time()
        if sync is not None and not sync.ready and msg.xid == sync.meter_xid:
            # a switch without meters must not stay unread forever; the meters it is sent
            # will fail too, and its punts then go unpoliced: say so loudly
            log.error("switch %s cannot report its meters: packets to the controller are "
                      "not policed at this switch", dp.id)
            self._read(msg, "meters", [], last=True)
            return
        if sync is not None and now - sync.started > RESYNC_MIN_INTERVAL:
            session = self.sync.reread(dp.id, dp, now)
            if session is not None:
                self._request_state(dp, session)

    # --- cluster mode: roles (set_roles is called through EventCall) ------------------------
    def connected(self) -> dict[int, int]:
        """The switches connected to this instance, each with the number of its current
        connection (a reconnected switch has a new one: its role must be asked for
        again). Any thread: one copy of a dict."""
        return dict(self._connections)

    def set_roles(self, requests) -> None:
        """Send the role requests the cluster agent decided. A slave request takes effect
        here at once (stop writing before the switch even answers); a master request
        when the switch accepts it (:meth:`_on_role_reply`)."""
        for req in requests:
            if isinstance(req, Yield):  # another instance holds it: stop writing, quietly
                self._lose_master(req.dpid)
                continue
            dp = self.dps.get(req.dpid)
            if dp is None:
                continue
            if req.role != "master":
                self._lose_master(req.dpid)
            dp.send_msg(ofmsg.role_request(dp, req.role, req.generation))
            log.info("switch %d: asking for the %s role (generation %d)", req.dpid, req.role,
                     req.generation)

    # --- cluster mode: the TE leader -------------------------------------------------------
    def set_te_leader(self, leading: bool) -> None:
        """The cluster agent says whether this instance is the TE leader now."""
        self.te_leader = leading
        self.core.set_cluster_role(frozenset(self.masters), leading)

    def _share_moves(self) -> None:
        """The leader's moves of leaves other instances master, to the agent to write."""
        moves = self.core.take_shared_moves()
        if moves and self.cluster_agent is not None:
            self.cluster_agent.publish_moves(
                {leaf: encode_moves(self.node_id, m) for leaf, m in moves.items()})

    def apply_leader_moves(self, moves: list[tuple[int, Intent]]) -> None:
        """The TE leader's latest moves of leaves (as the agent read them): those of the
        leaves this instance masters are made."""
        now = time.time()
        for leaf, intent in moves:
            if leaf not in self.masters:
                continue
            try:
                leader, got = decode_moves(intent.value)
            except IntentError as exc:
                log.error("cluster: TE moves of leaf %d not made: %s", leaf, exc)
                continue
            self._apply(self.core.apply_leader_moves(leaf, got, leader, now), now)

    # --- cluster mode: operator intent shared through etcd (controller/core/shared.py) ----
    def apply_intents(self, intents) -> None:
        """Apply the kinds the cluster agent read that are newer than what this instance
        applied (each on its own: one unreadable value does not hold up the others)."""
        for intent in intents:
            try:
                self.apply_intent(intent)
            except IntentError as exc:
                log.error("cluster: shared %s at revision %d not applied: %s", intent.kind,
                          intent.revision, exc)
                self.shared.mark(intent)  # (said once; the next change is read anew)

    def apply_intent(self, intent: Intent) -> bool:
        """Make a kind's value as the store holds it this instance's own, unless this
        revision or a later one is applied already (False then). IntentError for a
        value that cannot be read."""
        if not self.shared.is_new(intent):
            return False
        now = time.time()
        if intent.kind == "drains":
            self._apply(self.core.set_drains(Drains.decode(intent.value)), now, flush=True)
        elif intent.kind == "jobs":
            specs = decode_jobs(intent.value)
            self._apply_te_intent("jobs are not placed", lambda: self.core.set_jobs(specs, now),
                                  now)
        elif intent.kind == "pins":
            pins = decode_pins(intent.value)
            self._apply_te_intent("pins are not made", lambda: self.core.set_pins(pins, now),
                                  now)
        elif intent.kind == "qos":
            policy = decode_policy(intent.value)
            if not runtime.config().qos.enabled:
                log.warning("cluster: a shared QoS policy is not applied here: QoS is off")
            elif policy != self.core.qos:
                self.set_qos_policy(policy)
        else:
            log.warning("cluster: unknown shared kind %r ignored (a newer fabricd wrote "
                        "it?)", intent.kind)
        self.shared.mark(intent)
        log.info("cluster: shared %s at revision %d applied", intent.kind, intent.revision)
        return True

    def _apply_te_intent(self, refused: str, change, now: float) -> None:
        if not runtime.config().te.enabled:
            log.warning("cluster: shared %s here: TE is off", refused)
            return
        self._apply(change(), now, flush=True)
        self._publish_flows(now)

    def pin_change(self, key: FlowKey, spine: int | None) -> tuple[str, str, int]:
        """The shared pins with ``key`` pinned to ``spine`` (checked here as alone:
        LookupError, ValueError) or unpinned (None; LookupError if it is not pinned),
        what it does, and the revision of the shared pins it was computed from."""
        pins = self.core.shared_pins()
        if spine is not None:
            self.core.check_pin(key, spine)
            pins[key] = spine
            message = f"{key} pinned to spine {spine}"
        else:
            if key not in pins:
                raise LookupError(f"no operator pin for {key}")
            del pins[key]
            message = f"{key} unpinned"
        return encode_pins(pins), message, self.shared.revision("pins")

    def job_change(self, register: JobSpec | None = None,
                   delete: str | None = None) -> tuple[str, str, int]:
        """The shared job list with a job registered (checked here as alone: JobError,
        JobExists) or deleted (LookupError), what it does, and the revision of the
        shared jobs it was computed from (nothing changes here)."""
        specs = self.core.registered_jobs()
        if register is not None:
            self.core.check_job(register)
            specs.append(register)
            message = f"job {register.job_id} registered"
        else:
            if all(s.job_id != delete for s in specs):
                raise LookupError(f"no job {delete!r}")
            specs = [s for s in specs if s.job_id != delete]
            message = f"job {delete} deleted"
        return encode_jobs(specs), message, self.shared.revision("jobs")

    def maintenance_change(self, action: str, dpid: int, port: int) -> tuple[Drains, str, int]:
        """The drain set an operator's drain or undrain would make, what it does, and the
        revision of the shared drains it was computed from (nothing changes here)."""
        drains, message = self.core.maintenance_change(action, dpid, port)
        return drains, message, self.shared.revision("drains")

    def _lose_master(self, dpid: int) -> None:
        if dpid in self.masters:
            self.masters.discard(dpid)
            self._masters_changed()

    def _masters_changed(self) -> None:
        masters = frozenset(self.masters)
        self.core.set_cluster_role(masters, self.te_leader)
        self._publish(masters=masters)
        qos_app = app_manager.lookup_service_brick("QosApp")
        if qos_app is not None:
            qos_app.set_masters(masters)

    @set_ev_cls(ofp_event.EventOFPRoleReply, MAIN_DISPATCHER)
    @guarded
    def _on_role_reply(self, ev) -> None:
        msg = ev.msg
        dp = msg.datapath
        if self.dps.get(dp.id) is not dp:
            return
        if msg.role == ofp.OFPCR_ROLE_MASTER:
            if dp.id not in self.masters:
                self.masters.add(dp.id)
                self._masters_changed()
                log.info("switch %d: this instance is its master (generation %d)", dp.id,
                         msg.generation_id)
                # another instance wrote to it meanwhile: read it back, then sync
                now = time.time()
                session = self.sync.reread(dp.id, dp, now)
                if session is not None:
                    self._request_state(dp, session)
                else:
                    self._apply(Effects(changed=True), now)
        else:
            self._lose_master(dp.id)

    # --- output -----------------------------------------------------------------------------
    def _apply(self, eff: Effects, now: float, force_sync: bool = False,
               flush: bool = False) -> None:
        """Send what the core asked for. Changes are coalesced: the switches are synced
        once every event queued before the change has been handled (:meth:`later`), or
        once a change is SYNC_MAX_DELAY old, so a burst of events (a fabric coming up)
        costs one recomputation, not one per event.
        Packet-outs wait for that sync: a host that gets an ARP answer sends at once,
        and its packets should find the new entries in place."""
        for dpid, rule, timeout in eff.ephemeral:
            session = self.sync.sessions.get(dpid)
            if session is not None and session.ready and self.writable(dpid):
                dp = self.dps[dpid]
                dp.send_msg(ofmsg.flow_add_expiring(dp, rule, timeout))
                self.stats["flow_mods"] += 1
        if eff.changed or force_sync:
            self._dirty_since = self._dirty_since or now
            self._dirty_all = True
        if eff.touched:
            self._dirty_since = self._dirty_since or now
            self._touched |= eff.touched
        if self._dirty_since is None:
            self._send_packet_outs(eff.packet_outs)
            self._publish_events(now)
            return
        self._held_outs += eff.packet_outs
        if flush or now - self._dirty_since >= SYNC_MAX_DELAY:
            self._flush(now)
        elif not self._sync_due:  # after the events already queued: then sync
            self._sync_due = True
            self.later(self._deferred_sync)
        self._publish_events(now)

    @guarded
    def _deferred_sync(self) -> None:
        self._sync_due = False
        if self._dirty_since is not None:
            now = time.time()
            self._flush(now)
            self._publish_events(now)

    def _flush(self, now: float) -> None:
        """Sync the switches the waiting changes concern, then send the held packet-outs."""
        self._dirty_since = None
        if self._dirty_all:
            self._sync_all(now)
            self._publish(topology=self.core.snapshot(now))
        else:
            self._sync_all(now, only=self._touched)
        self._dirty_all = False
        self._touched = set()
        outs, self._held_outs = self._held_outs, []
        self._send_packet_outs(outs)
        self._publish_flows(now)

    def _publish(self, **changes) -> None:
        """Replace the published value (one assignment: readers see before or after)."""
        self.published = dataclasses.replace(self.published, **changes)

    def _publish_flows(self, now: float) -> None:
        if self.core.te is not None:
            self._publish(flows=self.core.flows(now), flows_at=now,
                          jobs=self.core.job_infos(), jobs_at=now)

    def _publish_events(self, now: float) -> None:
        events = self.core.take_events()
        if any(e.kind.startswith("host_") for e in events):
            self._publish(topology=self.core.snapshot(now))  # a host's state changed
        for e in events:
            if e.kind in ("reroute", "congestion", "congestion_cleared", "pin", "unpin"):
                log.info("%s: %s", e.kind, e.message)
        self.event_bus.publish(events, now)

    def _send_packet_outs(self, outs) -> None:
        for po in outs:
            dp = self.dps.get(po.dpid)
            if dp is None or not self.writable(po.dpid):
                continue
            actions = [parser.OFPActionOutput(p, 0) for p in po.ports]
            dp.send_msg(
                parser.OFPPacketOut(dp, ofp.OFP_NO_BUFFER, ofp.OFPP_CONTROLLER, actions, po.data)
            )
            self.stats["packet_out"] += 1

    def _sync_all(self, now: float, only: set[int] | None = None) -> None:
        writable = self.masters if self.clustered else None
        for dpid, plan in self.sync.plans(now, only, writable):
            log.info("switch %d: %s", dpid, plan.summary())
            dp = self.dps[dpid]
            for m in ofmsg.plan_messages(dp, plan):
                dp.send_msg(m)
            self.stats["flow_mods"] += len(plan.flow_adds) + len(plan.flow_mods) + len(
                plan.flow_dels
            )
            self.stats["group_mods"] += len(plan.group_adds) + len(plan.group_mods) + len(
                plan.group_dels
            )
