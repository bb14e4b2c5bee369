"""The os-ken app that provisions queues on every switch port it sees.

Its event handlers only record ports (they must never block os-ken); a worker thread
does the slow part: read OVSDB, compute each port's queue plan from its rate and the
policy, apply the difference in one OVSDB transaction, then make sure the DSCP -> queue
filters are in place on userspace-datapath bridges. It re-checks every few seconds, so a
qdisc that OVS rebuilt gets its filters back.
"""

from __future__ import annotations

import logging
import re
import threading
import time

from os_ken.base import app_manager
from os_ken.controller import ofp_event
from os_ken.controller.handler import MAIN_DISPATCHER, set_ev_cls
from os_ken.ofproto import ofproto_v1_3 as ofp
from prometheus_client import Counter

from apps import clock, runtime
from apps.app_events import EventSwitchAccepted
from apps.guard import guarded
from apps.loop import BoundedLoopApp
from apps.ofmsg import port_name
from apps.ovs_qos import (
    OvsError,
    OvsQos,
    leaf_fifos,
    ovs_htb_devices,
    set_leaf_fifo,
    set_tc_filters,
    tc_filters,
)
from controller.core.events import FabricEvent
from controller.core.fabric.qos import PortQosPlan, QosPolicy, port_plan
from controller.core.fabric.ratelog import RateLimitedLog

log = logging.getLogger("aifabric.qos")

AUDIT_SECONDS = 5.0
RETRY_MIN, RETRY_MAX = 1.0, 30.0  # seconds between attempts while OVSDB fails
QOS_ERRORS = Counter("aifabric_qos_errors", "Failed QoS provisioning passes (OVSDB or tc "
                     "unreachable or refusing); nothing is removed on a failed read",
                     registry=None)
# How long a provisioned port may lack OVS's qdisc before its rows are re-made (something,
# such as Mininet's TCLink, replaced the qdisc behind OVS's back). OVS itself can take
# a second or more to install the qdiscs of a large transaction.
MISSING_QDISC_SECONDS = 2.0
# Port and bridge names passed to ovs-vsctl and tc: what an interface may be called
SAFE_NAME = re.compile(r"^[A-Za-z0-9_.:@][A-Za-z0-9_.:@-]{0,62}$")


def ports_to_clear(state: dict, want: dict, stale: set[str], deleted: set[str],
                   no_policy: bool, known: set[str]) -> list[str]:
    """Ports whose QoS rows (ours) go. Only what the controller positively knows: no
    policy at all (--no-qos) on a port of a switch it took, a port the switch deleted,
    or rows to be re-made (stale). A port merely not known yet (its switch has not
    reconnected since a restart), whose switch lost its session, or of a bridge this
    instance never saw (another controller's, on the same OVSDB) keeps its rows."""
    return sorted(p for p, st in state.items() if st.ours and (
        (no_policy and p in known) or p in stale or (p in deleted and p not in want)))


def port_plans(policy: QosPolicy | None, switches: list[tuple[str, dict[str, int]]]
               ) -> dict[str, tuple[str, PortQosPlan]]:
    """Port name -> (bridge, plan) for every port of ``switches`` ((bridge, {port: rate})
    each) with a rate; none without a policy."""
    if policy is None:
        return {}
    return {name: (bridge, port_plan(policy, rate))
            for bridge, ports in switches for name, rate in ports.items() if rate > 0}


class QosApp(BoundedLoopApp):
    OFP_VERSIONS = [ofp.OFP_VERSION]

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        cfg = runtime.config()
        self.enabled = cfg.qos.enabled
        self.link_speed_mbps = cfg.link_speed_mbps
        self.policy: QosPolicy | None = runtime.qos_policy(cfg)
        self.ovs = OvsQos(db=cfg.qos.ovsdb,
                          node=cfg.cluster.node_id if cfg.cluster.enabled else None)
        self.queue_limit = cfg.qos.queue_limit_packets
        self._lock = threading.Lock()
        # dpid -> (bridge name, {port name: rate in bit/s})
        self._switches: dict[int, tuple[str, dict[str, int]]] = {}
        self._wake = threading.Event()
        self._stop = threading.Event()
        self.applied_ports = 0
        self.errors = 0
        self.failing: str | None = None  # why provisioning fails now (None: it works)
        self._missing: dict[str, float] = {}  # port -> since when OVS's qdisc is missing
        self._deleted: set[str] = set()  # ports the switches said were deleted
        self._accepted: dict[int, object] = {}  # dpid -> the connection taken as it
        # in cluster mode, the switches this instance masters (only it provisions them)
        self._masters: frozenset[int] | None = None
        self._rlog = RateLimitedLog(log)  # (names a switch reports: its lines bounded)

    def start(self):
        thread = super().start()
        threading.Thread(target=self._worker, name="aifabric-qos", daemon=True).start()
        return thread

    def close(self) -> None:
        self._stop.set()
        self._wake.set()

    def set_masters(self, masters: frozenset[int]) -> None:
        """Cluster mode, thread-safe: provision only the ports of these switches."""
        with self._lock:
            self._masters = masters
        self._wake.set()

    def set_policy(self, policy: QosPolicy | None) -> None:
        """Thread-safe: the worker applies it on its next pass (at once)."""
        with self._lock:
            self.policy = policy
        self._wake.set()

    # --- OpenFlow events: record ports only ---------------------------------------------------
    def _rate(self, desc) -> int:
        if self.link_speed_mbps:
            return int(self.link_speed_mbps * 1_000_000)
        return int(desc.curr_speed) * 1000  # OpenFlow reports kbit/s

    def _record(self, dp) -> None:
        ports = list(dp.ports.values())
        bridge = next((port_name(p) for p in ports if p.port_no == ofp.OFPP_LOCAL), None)
        if bridge is None or not self._safe(dp.id, bridge):
            return
        # down ports keep their queues: a flapping link must not churn OVSDB rows
        phys = {port_name(p): self._rate(p) for p in ports if p.port_no <= ofp.OFPP_MAX
                and self._safe(dp.id, port_name(p))}
        with self._lock:
            # (ports gone since the last record were deleted, whether or not this app
            # saw the port status: it ignores a connection before it is accepted)
            old = self._switches.get(dp.id)
            if old is not None:
                self._deleted |= set(old[1]) - set(phys)
            self._switches[dp.id] = (bridge, phys)
            self._deleted -= set(phys)
        self._wake.set()

    def _safe(self, dpid: int, name: str) -> bool:
        """Whether a name a switch reports may reach ovs-vsctl and tc as an argument
        (an interface name: no option-like, whitespace or syntax characters)."""
        if SAFE_NAME.match(name):
            return True
        self._rlog.log(logging.WARNING, f"name {dpid}", time.monotonic(), "switch %d "
                       "reports a port named %r: not provisioned (names are %s)", dpid,
                       name[:80], SAFE_NAME.pattern)
        return False

    @set_ev_cls(EventSwitchAccepted)
    @guarded
    def _on_accepted(self, ev) -> None:
        """The fabric app took ``ev.dp`` as its switch. Only such connections are
        provisioned: one that merely claims a dpid names no port here. A switch that
        loses its OpenFlow session keeps its queues (OVSDB does not care who holds the
        session): only a deleted port or a policy change removes rows."""
        with self._lock:
            self._accepted[ev.dp.id] = ev.dp
        self._record(ev.dp)

    @set_ev_cls(ofp_event.EventOFPPortStatus, MAIN_DISPATCHER)
    @guarded
    def _on_port(self, ev) -> None:
        # os-ken's ofp_handler updated dp.ports before this event was queued
        dp = ev.msg.datapath
        with self._lock:
            if self._accepted.get(dp.id) is not dp:
                return
            if ev.msg.reason == ofp.OFPPR_DELETE:
                self._deleted.add(port_name(ev.msg.desc))
        self._record(dp)

    # --- worker -------------------------------------------------------------------------------
    def _worker(self) -> None:
        if not self.enabled:
            log.info("QoS off (--no-qos): ports are left unprovisioned")
        backoff = RETRY_MIN
        while not self._stop.is_set():
            self._wake.wait(AUDIT_SECONDS)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                self.reconcile()
            except Exception as exc:  # keep the worker alive whatever happens
                self.errors += 1
                QOS_ERRORS.inc()
                what = str(exc) if isinstance(exc, OvsError) else repr(exc)
                if self.failing is None:  # say it once, then count
                    self.failing = what
                    log.error("QoS provisioning failed: %s (retrying with backoff; nothing "
                              "is removed while OVSDB cannot be read)", what,
                              exc_info=not isinstance(exc, OvsError))
                    self._announce("qos_unavailable", f"QoS provisioning failed: {what}")
                time.sleep(backoff)
                backoff = min(RETRY_MAX, backoff * 2)
                self._wake.set()
                continue
            if self.failing is not None:
                log.warning("QoS provisioning works again (it failed with: %s)", self.failing)
                self._announce("qos_available", "QoS provisioning works again")
                self.failing = None
            backoff = RETRY_MIN

    def _announce(self, kind: str, message: str) -> None:
        """An event for API watchers (the fabric app's bus is thread-safe)."""
        fabric = app_manager.lookup_service_brick("FabricApp")
        if fabric is not None:
            fabric.pub.bus.publish([FabricEvent(kind, message)], clock.now())

    def _provisioned(self) -> tuple[QosPolicy | None, list[tuple[str, dict[str, int]]],
                                    set[str]]:
        """One snapshot: the policy; (bridge, {port: rate}) of the switches this instance
        provisions (every switch seen, connected or not: a lost session changes nothing
        in OVSDB; in cluster mode those it masters); the ports switches said were
        deleted."""
        with self._lock:
            policy, masters = self.policy, self._masters
            return (policy, [sw for d, sw in self._switches.items()
                             if masters is None or d in masters], set(self._deleted))

    def reconcile(self) -> None:
        policy, switches, deleted = self._provisioned()
        want = port_plans(policy, switches)
        state, orphan_qos, orphan_queues = self.ovs.read()
        # OVS caches the qdisc it installed: to make it install again, clear the port's
        # QoS first (OVS then deletes the root qdisc); the next pass provisions it afresh.
        now = time.monotonic()
        stale = {p for p, since in self._missing.items()
                 if now - since >= MISSING_QDISC_SECONDS and p in state and state[p].ours}
        change = {p: plan for p, (_, plan) in want.items()
                  if p in state and p not in stale and not OvsQos.matches(state[p], plan)}
        foreign = [p for p in change if state[p].qos_uuid and not state[p].ours]
        for p in foreign:
            log.warning("port %s has a QoS row aifabric did not make; leaving it alone", p)
            del change[p]
        known = {name for _, ports in switches for name in ports}
        clear = ports_to_clear(state, want, stale, deleted, policy is None, known)
        if change or clear or orphan_qos or orphan_queues:
            self.ovs.apply(change, clear, state, (orphan_qos, orphan_queues))
            log.info("QoS: %d ports provisioned, %d cleared (%d to be re-made: their qdisc "
                     "was replaced behind OVS's back)", len(change), len(clear), len(stale))
            for p in list(change) + clear:
                self._missing.pop(p, None)
        if stale:
            self._wake.set()
        self.applied_ports = len(want) - len(foreign)
        if self.ovs.remote:
            return  # tc only reaches local interfaces
        htb = ovs_htb_devices()
        pending = False
        for port, (bridge, plan) in sorted(want.items()):
            if port in foreign or port not in state or port in stale:
                continue
            if port not in htb:
                if port not in change:
                    self._missing.setdefault(port, now)
                pending = True  # OVS has not (re)installed its qdisc yet
                continue
            self._missing.pop(port, None)
            if self.ovs.datapath_type(bridge) != "netdev":
                continue  # the kernel datapath classifies with set_queue
            try:
                if tc_filters(port) != dict(plan.dscp_to_queue):
                    set_tc_filters(port, plan.dscp_to_queue)
                    log.debug("DSCP filters set on %s", port)
                fifos = leaf_fifos(port)
                for q in plan.queues:
                    if fifos.get(q.queue) != self.queue_limit:
                        set_leaf_fifo(port, q.queue, self.queue_limit)
            except OvsError as exc:  # the port went away, or OVS is rebuilding its qdisc
                log.debug("DSCP filters on %s: %s (retrying)", port, exc)
                pending = True
        if pending:
            time.sleep(0.2)
            self._wake.set()
