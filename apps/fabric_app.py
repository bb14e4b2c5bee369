"""The os-ken app that owns the fabric: OpenFlow events in, the core's decisions out.

A thin translator. Each handler turns an OpenFlow event into a call of
:class:`controller.core.FabricCore` on this app's own thread (the only writer of
controller state) and hands the result to its components:

- :mod:`apps.southbound`: what the core asks for, made into OpenFlow messages and
  sent as the difference from what each switch holds (read back when it connects);
- :mod:`apps.stats`: the statistics polling table and what the replies mean;
- :mod:`apps.cluster_role`: cluster mode's mastership and TE leadership;
- :mod:`apps.commands`: what the API asks (operator intent, reads of the core).

Events come through a bounded intake (:mod:`apps.loop`); periodic work is one table of
timers run on a tick; other threads see only :attr:`FabricApp.published`.
"""

from __future__ import annotations

import logging
import os
import threading
import time

from os_ken.base import app_manager
from os_ken.controller import ofp_event
from os_ken.controller.handler import (
    CONFIG_DISPATCHER,
    DEAD_DISPATCHER,
    MAIN_DISPATCHER,
    set_ev_cls,
)
from os_ken.ofproto import ofproto_v1_3 as ofp
from os_ken.ofproto import ofproto_v1_3_parser as parser

from apps import clock, ofmsg, oskenfix, runtime
from apps.admission import SwitchAdmission
from apps.api.metrics import LOOP_LAG
from apps.app_events import EventCall, EventRebalanced, EventSwitchAccepted, EventTick
from apps.cluster_role import ClusterRole
from apps.commands import Commands
from apps.guard import Heartbeat, guarded
from apps.intake import CALL, CONTROL, TICK, IntakeLimits
from apps.loop import BoundedLoopApp
from apps.publisher import Publisher
from apps.rebalancer import Rebalancer
from apps.southbound import Southbound
from apps.stats import StatsPoller, polls
from controller.core import constants as C
from controller.core.fabric_core import Effects, FabricCore
from controller.core.model.fabric_model import Port
from controller.core.model.monitor import LoadMonitor
from controller.core.schedule import Schedule, Timer
from controller.core.snapshot import Published
from controller.core.southbound.openflow import MeterRule
from controller.core.southbound.sync import SwitchSync

log = logging.getLogger("aifabric.fabric")

TICK_SECONDS = 0.25
STATS_TIMERS = ("ports", "queues", "meters")  # the statistics' rows (apps/stats.py polls)
RESYNC_MIN_INTERVAL = 5.0


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
        self.core = FabricCore(runtime.core_settings(cfg),
                               secret=runtime.secret() or os.urandom(32))
        sync = SwitchSync(self.core)  # per-switch sessions: read-back, mirror, plans
        self.pub = Publisher(self.core)  # what other threads see (the API, metrics)
        self.heartbeat = Heartbeat()  # read by the watchdog (another thread)
        self.cluster = ClusterRole(self.core, cfg.cluster.enabled, cfg.cluster.node_id or "",
                                   self.pub.set, self._apply)
        self.out = Southbound(sync, self.later, self.at, self.cluster.writable,
                              self.cluster.written, self.pub.synced, self.pub.events)
        self.stats = StatsPoller(LoadMonitor(alpha=cfg.te.smoothing), self.pub.set,
                                 self._te_round, self.core.traffic.pin_counters,
                                 self.pub.bus.publish)
        self.commands = Commands(self.core, sync, self._apply, self.pub.set,
                                 lambda: self.pub.value, self.pub.flows, clock.now)
        # periodic work, one table: (timer, what runs); the statistics' rows are its own
        self.timers = Schedule([Timer("probe", cfg.discovery.lldp_interval),
                                *(Timer(p.what, p.interval)
                                  for p in polls(cfg.te.poll_interval, self.core.qos is not None))])
        self._stop = threading.Event()
        self.rebalancer = Rebalancer(self.core, lambda plan: self.submit(EventRebalanced(plan)),
                                     self.later, self._apply, self.pub.flows_changed,
                                     self.cluster.share_moves)
        self._counts = {"packet_in": 0, "te_passes": 0}
        self.admission = SwitchAdmission.of(cfg.openflow, self.pub.bus.publish)
        self._hosts_generation = (0, 0)  # (the host guard's, the view's hosts')
        self.commands.restore(runtime.intents())

    @property
    def dps(self) -> dict:
        return self.out.dps

    @property
    def published(self) -> Published:
        """What other threads see (any thread: one value, replaced whole)."""
        return self.pub.value

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

    # --- lifecycle ----------------------------------------------------------------------------
    def start(self):
        thread = super().start()
        threading.Thread(target=self._ticker, name="aifabric-ticker", daemon=True).start()
        return thread

    def close(self) -> None:
        self.rebalancer.close()
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

    @set_ev_cls(EventTick)
    @guarded
    def _on_tick(self, ev) -> None:
        self.heartbeat.beat()
        LOOP_LAG.observe(time.monotonic() - ev.posted)
        # (switches that stopped answering barriers)
        self.out.drop_stalled(ev.posted, runtime.config().openflow.barrier_timeout)
        now = clock.now()
        for dp in self.admission.expired(ev.posted_at, self.dps.get):  # (back over a
            self._accept(dp, now)  # dead session: by the posting time, as barriers)
        leaves: set[int] | None = None
        stretch = self._poll_stretch()
        if self.core.traffic.te is not None:
            self.core.traffic.te.table.poll_stretch = stretch
        # (probes as the budget refills, every tick: an interval's worth at once, 5,000
        # at 320 switches, held the loop a third of a second)
        self._apply(self.core.probe(now, horizon=ev.posted_at), now)
        for timer in self.timers.due(time.monotonic(), stretch, STATS_TIMERS):
            if timer == "probe":
                # Links expire by the tick's posting time: every LLDP reply that arrived
                # before it has been handled by now (one queue), however busy the loop was.
                self._apply(self.core.tick(now, horizon=ev.posted_at, probe=False), now)
                continue
            if leaves is None:  # (the roles last derived: a change of the fabric's
                leaves = {d for d in self.dps  # view waits for the next sync)
                          if self.core.traffic.te is not None
                          and self.core.role(d, derive=False) == "leaf"}
            self.stats.poll(timer, self.dps.values(), leaves, now)
        self._apply(self.core.time_passed(self.dps, now), now)  # (settled with time alone)
        self.pub.refresh(now)
        # a host's state changed, maybe silently (a host's address: synced as host
        # entries alone, which publish no topology)
        generation = (self.core.host_guard.generation, self.core.host_log.gen)
        if generation != self._hosts_generation:
            self._hosts_generation = generation
            self.pub.topology(now)
        self._publish_counters(now)

    def _poll_stretch(self) -> float:
        """How many times longer than configured the statistics' intervals are: as many
        as keep the port counters read within ``te.poll_budget`` a second (at 1,000
        switches, reading and judging 32,000 counters a second was a third of the
        loop)."""
        te = runtime.config().te
        if not te.poll_budget:
            return 1.0
        ports = sum(len(sw.ports) for sw in self.core.fabric.switches.values()
                    if sw.connected)
        return max(1.0, ports / (te.poll_budget * te.poll_interval))

    def _publish_counters(self, now: float) -> None:
        counts = {**self._counts, **self.out.stats, "meter_drops": self.stats.meter_drops,
                  "messages_waiting": self.out.waiting(), **self.admission.counts(),
                  "openflow_tls_failures": oskenfix.tls_failures}
        qos_app = app_manager.lookup_service_brick("QosApp")
        if qos_app is not None:  # (read-only: ints and a reference)
            counts["qos_errors"] = qos_app.errors
            counts["qos_failing"] = int(qos_app.failing is not None)
        self.pub.counters(now, counts)

    # --- switch connection ------------------------------------------------------------------
    @set_ev_cls(ofp_event.EventOFPStateChange, [MAIN_DISPATCHER, DEAD_DISPATCHER])
    @guarded
    def _on_state_change(self, ev) -> None:
        dp = ev.datapath
        now = clock.now()
        if dp.id is None:
            return
        if ev.state == MAIN_DISPATCHER:
            if self.admission.connected(dp, self.dps.get(dp.id), now):
                self._accept(dp, now)
        elif ev.state == DEAD_DISPATCHER:
            if self.out.sync.disconnect(dp.id, dp):  # (else an old or refused connection)
                del self.dps[dp.id]
                self.out.forget(dp)
                self.cluster.switch_down(dp.id)
                self.stats.forget(dp.id)
                self._apply(self.core.discovery.switch_disconnected(dp.id), now)
            newcomer = self.admission.ended(dp, now, self.dps.get)  # (a claim: it takes it)
            if newcomer is not None:
                self._accept(newcomer, now)

    def _accept(self, dp, now: float) -> None:
        """``dp`` is the switch of its dpid from now on (an older connection is ended)."""
        old = self.dps.get(dp.id)
        if old is not None and old is not dp:
            oskenfix.end_session(old)
        ports = [_port(p) for p in list(dp.ports.values())]
        self.dps[dp.id] = dp
        qos_app = app_manager.lookup_service_brick("QosApp")
        if qos_app is not None:
            qos_app.submit(EventSwitchAccepted(dp))  # (its ports: on its own thread)
        self.cluster.switch_up(dp)
        self.out.request_state(dp, self.out.sync.connect(dp.id, dp, now))
        self._apply(self.core.switch_connected(dp.id, ports, now), now)

    @set_ev_cls(ofp_event.EventOFPEchoReply, MAIN_DISPATCHER)
    @guarded
    def _on_echo_reply(self, ev) -> None:
        msg = ev.msg
        self.admission.echo_reply(msg.datapath, bytes(msg.data or b""), msg.xid, clock.now())

    @set_ev_cls(ofp_event.EventOFPSwitchFeatures, CONFIG_DISPATCHER)
    @guarded
    def _on_features(self, ev) -> None:
        dp = ev.msg.datapath
        # Full frames to the controller on table-miss (our own entries use NO_BUFFER).
        dp.send_msg(parser.OFPSetConfig(dp, ofp.OFPC_FRAG_NORMAL, ofp.OFPCML_NO_BUFFER))

    @set_ev_cls(ofp_event.EventOFPFlowStatsReply, MAIN_DISPATCHER)
    @guarded
    def _on_flow_stats(self, ev) -> None:
        session = self.out.session(ev.msg.datapath)
        if session is None:
            return
        if ev.msg.xid != session.read_xid:  # counters of the TE pins and job pairs
            self.stats.counters(ev.msg, clock.now())
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
        got = self.out.sync.read(dp.id, dp, part, items, last)
        if got is None:
            return
        log.info("switch %d holds %d aifabric entries, %d groups, %d meters, %d foreign "
                 "entries (left alone)", got.dpid, len(got.flows), len(got.groups),
                 len(got.meters), got.foreign)
        dpid, now = got.dpid, clock.now()
        self.core.traffic.recover_pins(dpid, got.flows)
        self.core.recover_layout(dpid, got.flows, got.groups)
        self._apply(self.core.edge.recover_hosts(dpid, got.flows, now), now, force_sync=True)
        # Probe only now: the switch holds its LLDP entry, so replies to it are seen.
        self._apply(self.core.discovery.probe(dpid, now), now)

    # --- statistics (apps.stats) ------------------------------------------------------------
    @set_ev_cls([ofp_event.EventOFPPortStatsReply, ofp_event.EventOFPQueueStatsReply,
                 ofp_event.EventOFPMeterStatsReply], MAIN_DISPATCHER)
    @guarded
    def _on_stats(self, ev) -> None:
        msg, now = ev.msg, clock.now()
        if self.out.session(msg.datapath) is None:
            return
        if isinstance(ev, ofp_event.EventOFPPortStatsReply):
            self.stats.port_stats(msg, now, self.pub.value.topology.links, self.core.port_speed)
        elif isinstance(ev, ofp_event.EventOFPQueueStatsReply):
            self.stats.queue_stats(msg, now, self.dps)
        else:
            self.stats.meter_stats(msg, now, self.dps)

    # --- traffic engineering ----------------------------------------------------------------
    def _te_round(self, now: float) -> None:
        """A round of port counters is in: expiry and congestion here; the rebalancing
        search (the long part) on the worker thread, so that packet-ins, LLDP and port
        status never wait for it."""
        self._counts["te_passes"] += 1
        rates = {k: load.tx_bps for k, load in self.stats.monitor.ports.items()}
        eff = self.core.traffic.te_pass(rates, now, rebalance=False)
        self.cluster.share_moves()
        self.rebalancer.start(now)
        self._apply(eff, now)
        self.pub.flows_changed(now)

    @set_ev_cls(EventRebalanced)
    @guarded
    def _on_rebalanced(self, ev) -> None:
        self.rebalancer.finish(ev.plan, clock.now())

    # --- API and cluster agent calls --------------------------------------------------------
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

    # --- OpenFlow input -----------------------------------------------------------------------
    @set_ev_cls(ofp_event.EventOFPPacketIn, MAIN_DISPATCHER)
    @guarded
    def _on_packet_in(self, ev) -> None:
        msg = ev.msg
        dp = msg.datapath
        in_port = msg.match.get("in_port")
        if self.out.session(dp) is None or in_port is None:
            return
        self._counts["packet_in"] += 1
        now = clock.now()
        # The core judges a frame by when it arrived (os-ken stamps it in the receive
        # thread), not by how long it queued: a busy loop must not reject its own fresh
        # LLDP probes as stale.
        arrived = clock.at_wall(getattr(ev, "timestamp", None), now)
        kind = C.cookie_kind(msg.cookie) if C.is_ours(msg.cookie) else None
        handle = {C.KIND_TE: self.core.traffic.flow_seen,
                  C.KIND_GUARD: self.core.unbound_source}.get(kind, self.core.packet_in)
        self._apply(handle(dp.id, in_port, bytes(msg.data), arrived), now)

    @set_ev_cls(ofp_event.EventOFPPortStatus, MAIN_DISPATCHER)
    @guarded
    def _on_port_status(self, ev) -> None:
        msg = ev.msg
        dp = msg.datapath
        if self.out.session(dp) is None:
            return
        port = _port(msg.desc)
        deleted = msg.reason == ofp.OFPPR_DELETE
        log.info("port %d:%d (%s) %s", dp.id, port.port_no, port.name,
                 "deleted" if deleted else ("up" if port.up else "down"))
        now = clock.now()
        self._apply(self.core.port_status(dp.id, port, deleted, now), now)

    @set_ev_cls(ofp_event.EventOFPErrorMsg, MAIN_DISPATCHER)
    @guarded
    def _on_error(self, ev) -> None:
        msg = ev.msg
        dp = msg.datapath
        session = self.out.session(dp)
        if session is None or self.cluster.refused(dp, msg):
            return  # (a connection not taken as its switch says nothing here)
        log.error("switch %s reported OpenFlow error type=%d code=%d; its state will be "
                  "re-read", dp.id, msg.type, msg.code)
        now = clock.now()
        if not session.ready and msg.xid == session.meter_xid:
            # a switch without meters must not stay unread forever; the meters it is sent
            # will fail too, and its punts then go unpoliced: say so loudly
            log.error("switch %s cannot report its meters: packets to the controller are "
                      "not policed at this switch", dp.id)
            self._read(msg, "meters", [], last=True)
            return
        if now - session.started > RESYNC_MIN_INTERVAL:
            self._reread(dp, now)

    @set_ev_cls(ofp_event.EventOFPBarrierReply, MAIN_DISPATCHER)
    @guarded
    def _on_barrier_reply(self, ev) -> None:
        self.out.answered(ev.msg.datapath, ev.msg.xid)  # (flow control: more may go)

    @set_ev_cls(ofp_event.EventOFPRoleReply, MAIN_DISPATCHER)
    @guarded
    def _on_role_reply(self, ev) -> None:
        dp = ev.msg.datapath
        if self.dps.get(dp.id) is dp and self.cluster.role_reply(dp, ev.msg):
            # another instance wrote to it meanwhile: read it back, then sync
            now = clock.now()
            if not self._reread(dp, now):
                self._apply(Effects(changed=True), now)

    def _reread(self, dp, now: float) -> bool:
        session = self.out.sync.reread(dp.id, dp, now)
        if session is not None:
            self.out.request_state(dp, session)
        return session is not None

    # --- output and what others see ------------------------------------------------------------
    def _apply(self, eff: Effects, now: float, force_sync: bool = False,
               flush: bool = False) -> None:
        self.out.apply(eff, now, force_sync, flush)
