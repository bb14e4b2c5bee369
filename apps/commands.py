"""What the API (and the cluster agent) ask of the fabric app, run on its thread.

Operator intent (:mod:`controller.core.intent.kinds`: the QoS policy, the drains, the jobs,
the pins) changes one way in both modes: a ``*_change`` method computes the kind's new
value from the revision applied here and checks it as the API would (nothing changes
yet); the API writes it to the store (etcd, or the state file alone) by
compare-and-swap; then :meth:`Commands.apply_intent` makes what the store holds this
instance's own. At start, standalone, :meth:`Commands.restore` puts the state file's
intent in force before any switch connects. The reads here (a flow, a job, a switch's
desired entries) need the app's thread because they look at the core.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from os_ken.base import app_manager

from apps.api.fabric_commands import Change, FabricCommands
from controller.core.errors import FabricError, InvalidArgument, NotFound
from controller.core.fabric.qos import QosPolicy
from controller.core.fabric_core import Effects, FabricCore
from controller.core.intent.kinds import (
    TITLES,
    Applied,
    Drains,
    Intent,
    IntentError,
    decode_jobs,
    decode_pins,
    decode_policy,
    decode_servers,
    encode_jobs,
    encode_pins,
    encode_policy,
    encode_servers,
)
from controller.core.model.job_spec import JobSpec
from controller.core.model.servers import Server
from controller.core.snapshot import FlowInfo, JobInfo, SwitchEntries
from controller.core.southbound import ofctl_text
from controller.core.southbound.sync import SwitchSync
from controller.core.te import PROTO_NAMES, FlowKey

log = logging.getLogger("aifabric.fabric")


class Commands(FabricCommands):
    """The :class:`FabricCommands` the API calls, and the intent in force (see the module
    docstring). ``apply(eff, now, flush=...)`` sends the core's effects;
    ``publish(**fields)`` replaces published fields; ``published()`` is the value
    readers see; ``publish_flows(now)`` republishes TE's flows and jobs."""

    def __init__(self, core: FabricCore, sync: SwitchSync,
                 apply: Callable[..., None], publish: Callable[..., None],
                 published: Callable[[], Any], publish_flows: Callable[[float], None],
                 clock: Callable[[], float]) -> None:
        self.core, self.sync = core, sync
        self._apply, self._publish, self._published = apply, publish, published
        self._publish_flows, self._clock = publish_flows, clock
        self.applied = Applied()  # the revision of each kind applied here

    # --- intent in force -----------------------------------------------------------------
    def restore(self, intents: list[Intent]) -> None:
        """Standalone: the state file's intent, before any switch connects (its QoS
        policy is the core's from the start: see runtime.qos_policy)."""
        now = self._clock()
        for intent in intents:
            if intent.kind == "drains":
                self.core.set_drains(Drains.decode(intent.value))
            elif intent.kind in ("jobs", "pins") and self.core.traffic.te is None:
                log.warning("the %s kept in the state file are not in force: traffic "
                            "engineering is off", TITLES[intent.kind])
            elif intent.kind == "jobs":  # (placed once their hosts are known)
                self.core.traffic.restore_jobs(decode_jobs(intent.value), now)
            elif intent.kind == "pins":  # (made once their flows are seen)
                self.core.traffic.set_pins(decode_pins(intent.value), now)
            elif intent.kind == "servers":
                try:
                    self._set_servers(decode_servers(intent.value))
                except InvalidArgument as exc:  # (the configuration changed since)
                    log.error("the servers kept in the state file are not in force: %s",
                              exc)
            elif intent.kind == "qos" and self.core.qos is None:
                log.warning("the QoS policy kept in the state file is not in force: QoS "
                            "is off")
            self.applied.mark(intent)
            log.info("%s restored from the state file (revision %d)", TITLES[intent.kind],
                     intent.revision)
        self.core.take_events()  # (a restored drain is not news)
        self._publish(topology=self.core.snapshot(now), qos_policy=self.core.qos)
        self._publish_flows(now)

    def apply_intents(self, intents: list[Intent]) -> None:
        """Apply the kinds the cluster agent read that are newer than what this instance
        applied (each on its own: one unreadable value does not hold up the others)."""
        for intent in intents:
            try:
                self.apply_intent(intent)
            except (IntentError, FabricError) as exc:  # (refused here: said, not fatal)
                log.error("%s at revision %d not applied: %s", TITLES.get(intent.kind,
                          intent.kind), intent.revision, exc)
                self.applied.mark(intent)  # (said once; the next change is read anew)

    def apply_intent(self, intent: Intent) -> bool:
        """Make a kind's value as the store holds it this instance's own, unless this
        revision or a later one is applied already (False then). IntentError for a
        value that cannot be read."""
        if not self.applied.is_new(intent):
            return False
        now = self._clock()
        title = TITLES.get(intent.kind, intent.kind)
        if intent.kind == "drains":
            self._apply(self.core.set_drains(Drains.decode(intent.value)), now, flush=True)
        elif intent.kind == "jobs":
            specs = decode_jobs(intent.value)
            self._te_change(title, lambda: self.core.traffic.set_jobs(specs, now), now)
        elif intent.kind == "pins":
            pins = decode_pins(intent.value)
            self._te_change(title, lambda: self.core.traffic.set_pins(pins, now), now)
        elif intent.kind == "servers":
            self._set_servers(decode_servers(intent.value))
            self._publish(topology=self.core.snapshot(now))
        elif intent.kind == "qos":
            policy = decode_policy(intent.value)
            if self.core.qos is None:
                log.warning("%s is not applied here: QoS is off", title)
            elif policy != self.core.qos:
                self.set_qos_policy(policy)
        else:
            log.warning("unknown intent kind %r ignored (a newer fabricd wrote it?)",
                        intent.kind)
        self.applied.mark(intent)
        log.info("%s at revision %d applied", title, intent.revision)
        return True

    def _set_servers(self, servers: tuple[Server, ...]) -> None:
        """Put the API's servers in force (InvalidArgument, nothing changed, if they
        clash with this instance's configured ones)."""
        self.core.servers.check(servers)
        self.core.servers.api = servers

    def _te_change(self, title: str, change: Callable[[], Effects], now: float) -> None:
        if self.core.traffic.te is None:
            log.warning("%s are not in force here: TE is off", title)
            return
        self._apply(change(), now, flush=True)
        self._publish_flows(now)

    def set_qos_policy(self, policy: QosPolicy) -> None:
        """Marking on the switches and the queues' plan as one change, on this thread:
        two policies set at once are applied one after the other, whole."""
        now = self._clock()
        self._apply(self.core.set_qos_policy(policy), now, flush=True)
        self._publish(qos_policy=policy)
        qos_app = app_manager.lookup_service_brick("QosApp")
        if qos_app is not None:
            qos_app.set_policy(policy)  # thread-safe: its worker provisions the queues
        log.info("QoS policy replaced: %s", ", ".join(c.name for c in policy.classes))

    # --- changes, computed and checked (nothing changes here) -----------------------------
    def drain_change(self, action: str, dpid: int, port: int) -> Change:
        """The drain set an operator's drain or undrain would make (None when it is the
        set in force), what it does, and the revision of the drains it was computed
        from; NotFound or FailedPrecondition from the core."""
        drains, message = self.core.maintenance_change(action, dpid, port)
        in_force = self.core.maintenance.drains
        return Change(None if drains == in_force else drains.encode(), message,
                      self.applied.revision("drains"))

    def qos_change(self, policy: QosPolicy) -> Change:
        """The policy to keep (validated by the API; None when it is the one in force)
        and the revision it replaces."""
        same = self.core.qos == policy
        return Change(None if same else encode_policy(policy),
                      "the QoS policy is in force already" if same else "",
                      self.applied.revision("qos"))

    def pin_change(self, key: FlowKey, spine: int) -> Change:
        """The pins with ``key`` pinned to ``spine`` (NotFound, FailedPrecondition if it
        cannot be; None when it is pinned there already), and the revision of the pins it
        was computed from."""
        same = (self.core.traffic.shared_pins or {}).get(key) == spine
        pins = self.core.traffic.pins_with(key, spine)
        return Change(None if same else encode_pins(pins), f"{key} pinned to spine {spine}",
                      self.applied.revision("pins"))

    def unpin_change(self, key: FlowKey) -> Change:
        """The pins without ``key`` (NotFound if it is not pinned)."""
        return Change(encode_pins(self.core.traffic.pins_without(key)), f"{key} unpinned",
                      self.applied.revision("pins"))

    def servers_change(self, servers: tuple[Server, ...]) -> Change:
        """The servers to keep in place of those set through the API so far
        (InvalidArgument if they clash with the configured ones; None when they are the
        ones in force), and the revision they replace."""
        self.core.servers.check(servers)
        same = self.core.servers.api == servers
        nics = sum(len(s.nics) for s in servers)
        return Change(None if same else encode_servers(servers),
                      f"{len(servers)} servers ({nics} NICs) set through the API"
                      + (" (in force already)" if same else ""),
                      self.applied.revision("servers"))

    def job_register_change(self, spec: JobSpec) -> Change:
        """The job list with ``spec`` registered, its ``server:rail`` members as the
        addresses of those NICs (JobError, JobExists, ResourceExhausted, or JobRefused /
        FailedPrecondition with TE off, if it cannot be)."""
        spec = replace(spec, members=self.core.job_members(spec.members))
        spec.validate(self.core.settings.job_limits)  # (again: the addresses now)
        return Change(encode_jobs(self.core.traffic.jobs_with(spec)),
                      f"job {spec.job_id} registered", self.applied.revision("jobs"))

    def job_delete_change(self, job_id: str) -> Change:
        """The job list without ``job_id`` (NotFound if it is not registered)."""
        return Change(encode_jobs(self.core.traffic.jobs_without(job_id)),
                      f"job {job_id} deleted", self.applied.revision("jobs"))

    # --- reads ------------------------------------------------------------------------------
    def flow_info(self, key: FlowKey) -> FlowInfo:
        """The flow as published (NotFound if TE does not track it)."""
        want = (key.src_ip, key.dst_ip, PROTO_NAMES[key.proto], key.src_port, key.dst_port)
        found = next((f for f in self._published().flows
                      if (f.src_ip, f.dst_ip, f.protocol, f.src_port, f.dst_port) == want),
                     None)
        if found is None:
            raise NotFound(f"no flow {key}")
        return found

    def job_info(self, job_id: str) -> JobInfo:
        """A registered job with its placement (NotFound for an unknown id)."""
        found = next((j for j in self.core.traffic.job_infos() if j.job_id == job_id), None)
        if found is None:
            raise NotFound(f"no job {job_id!r}")
        return found

    def switch_entries(self, dpid: int) -> SwitchEntries:
        """What switch ``dpid`` should hold, and how far its session is from it
        (NotFound if it is not connected)."""
        session = self.sync.sessions.get(dpid)
        if session is None:
            raise NotFound(f"switch {dpid} is not connected")
        now = self._clock()
        # (a change not synced yet: its re-placements first, as the sync would make them)
        self._apply(self.core.prepare(now), now)
        desired, complete = self.core.desired(dpid, now)
        keep = self.core.grace.kept_groups(dpid, session.mirror, now)
        pending = len(self.sync.plan_for(session, now))
        return SwitchEntries(
            dpid, complete,
            tuple(ofctl_text.flow_text(r) for _, r in sorted(desired.flows.items(),
                                                              key=lambda kv: repr(kv[0]))),
            tuple(ofctl_text.group_text(g) for _, g in sorted(desired.groups.items())),
            tuple(ofctl_text.meter_text(m) for _, m in sorted(desired.meters.items())),
            tuple(sorted(keep)), pending)
