"""The gRPC management API: ``aifabric.v1.Fabric`` plus health checking and reflection.

Handlers run on gRPC's own threads and never touch os-ken, a datapath or the core's
state: reads take the immutable snapshots the fabric app publishes; anything that
changes state (or must read it consistently) runs on the app's thread through
``_call`` (an ``EventCall``), waiting no longer than the client's deadline.
"""

from __future__ import annotations

import ipaddress
import logging
import threading
import time
from collections.abc import Callable
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import yaml
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from pydantic import ValidationError

from aifabric.v1 import fabric_pb2, fabric_pb2_grpc
from apps.api.auth import AuditLog, Principal, TokenAuthInterceptor, load_or_create_token
from apps.api.event_bus import EventBus
from apps.cluster_store import StoreRefused, StoreUnavailable
from apps.guard import WATCHDOG_TRIPS
from controller import __version__
from controller.config import FabricdConfig, first_error
from controller.core.events import KINDS, FabricEvent, StampedEvent
from controller.core.fabric_jobs import JobExists
from controller.core.jobs import JobError, JobSpec
from controller.core.qos import PROFILES, QosPolicy, profile_policy
from controller.core.shared import TITLES, Intent, encode_policy
from controller.core.snapshot import FlowInfo, JobInfo, Published, TopologySnapshot
from controller.core.te import PROTO_NUMBERS, FlowKey

log = logging.getLogger("aifabric.api")

SERVICE_NAME = fabric_pb2.DESCRIPTOR.services_by_name["Fabric"].full_name
MAX_DOCUMENT = 256 * 1024
MAX_REQUEST_BYTES = 1024 * 1024  # larger requests: RESOURCE_EXHAUSTED before any handler


@dataclass
class ControllerHandle:
    """How the API reaches the controller: ``published`` is what the fabric app last
    published (None until the apps run), read once per call; ``call`` runs a command on
    the fabric app's thread (every mutation goes that way)."""

    published: Callable[[], Published | None]
    # runs fn(fabric_app) on the app's own thread; raises what fn raised, or TimeoutError
    call: Callable[..., Any] = lambda fn, timeout=10.0: (_ for _ in ()).throw(
        TimeoutError("the controller is still starting"))
    event_bus: Callable[[], EventBus | None] = lambda: None
    # why the fabric app's event loop looks stalled (the watchdog), or None
    stalled: Callable[[], str | None] = lambda: None
    # cluster mode: what the cluster agent last read from etcd (a ClusterStatus), or None
    cluster: Callable[[], Any] = lambda: None
    # cluster mode: write a shared kind by compare-and-swap (EtcdStore.write_intent)
    write_intent: Callable[[str, str, int], tuple[bool, Intent]] | None = None


WATCH_POLL_SECONDS = 1.0
SHARED_WRITE_ATTEMPTS = 3  # cluster mode: tries of a change racing other instances
CALL_TIMEOUT = 10.0  # seconds a mutation may wait for the fabric app
UNARY_THREADS = 32  # server threads only unary calls and health can use
WATCHDOG_POLL_SECONDS = 0.5
  # how often a watcher checks that its client is still there


def flow_key(msg: fabric_pb2.FlowMatch) -> FlowKey:
    """A FlowKey from a request, ValueError naming the field that is wrong."""
    if not msg.src_ip or not msg.dst_ip:
        raise ValueError("flow.src_ip and flow.dst_ip: required")
    proto = PROTO_NUMBERS.get(msg.protocol.lower())
    if proto is None:
        raise ValueError(f"flow.protocol: must be tcp or udp, not {msg.protocol!r}")
    for name in ("src_port", "dst_port"):
        if getattr(msg, name) > 0xFFFF:
            raise ValueError(f"flow.{name}: {getattr(msg, name)} is out of range 0-65535")
    for name in ("src_ip", "dst_ip"):
        try:
            ipaddress.IPv4Address(getattr(msg, name))
        except ValueError:
            raise ValueError(f"flow.{name}: {getattr(msg, name)!r} is not an IPv4 "
                             "address") from None
    return FlowKey(msg.src_ip, msg.dst_ip, proto, msg.src_port, msg.dst_port)


def flow_message(f: FlowInfo) -> fabric_pb2.FlowStatus:
    return fabric_pb2.FlowStatus(
        flow=fabric_pb2.FlowMatch(src_ip=f.src_ip, dst_ip=f.dst_ip, protocol=f.protocol,
                                  src_port=f.src_port, dst_port=f.dst_port),
        src_leaf=f.src_leaf, dst_leaf=f.dst_leaf, spine=f.spine, uplink_port=f.uplink_port,
        rate_bps=f.rate_bps, demand_bps=f.demand_bps, traffic_class=f.traffic_class,
        priority=f.priority, large=f.large, pinned_by=f.pinned_by, age_seconds=f.age,
        moves=f.moves,
    )


def job_spec(msg: fabric_pb2.JobSpec) -> JobSpec:
    """The API's JobSpec as the core's (validated by the core)."""
    return JobSpec(msg.id, tuple(msg.members), msg.pattern,
                   tuple((p.src, p.dst) for p in msg.pairs), msg.transport or "any",
                   msg.traffic_class, msg.priority)


def job_message(j: JobInfo) -> fabric_pb2.JobStatus:
    return fabric_pb2.JobStatus(
        spec=fabric_pb2.JobSpec(
            id=j.job_id, members=j.members, pattern=j.pattern,
            pairs=[fabric_pb2.RankPair(src=a, dst=b) for a, b in j.rank_pairs],
            transport=j.transport, traffic_class=j.traffic_class, priority=j.priority),
        registered_at=j.registered_at, state=j.state,
        pairs=[fabric_pb2.JobPairStatus(
            src_rank=p.src_rank, dst_rank=p.dst_rank, src_ip=p.src_ip, dst_ip=p.dst_ip,
            src_leaf=p.src_leaf, dst_leaf=p.dst_leaf, spine=p.spine,
            uplink_port=p.uplink_port, step=p.step, state=p.state, bytes=p.bytes,
            rate_bps=p.rate_bps) for p in j.pairs],
        worst_link=j.worst_link, worst_link_pairs=j.worst_link_pairs,
        worst_link_utilization=j.worst_link_utilization)


def event_message(e: StampedEvent) -> fabric_pb2.Event:
    return fabric_pb2.Event(seq=e.seq, time=e.at, kind=e.event.kind,
                            message=e.event.message, fields=dict(e.event.fields))


# --- QoS policy <-> protobuf -------------------------------------------------------------
def policy_message(policy: QosPolicy | None, enabled: bool) -> fabric_pb2.QosPolicy:
    if policy is None:
        return fabric_pb2.QosPolicy(enabled=enabled)
    return fabric_pb2.QosPolicy(
        classes=[
            fabric_pb2.TrafficClass(
                name=c.name, dscp=c.dscp, queue=c.queue, scheduling=c.scheduling,
                share=c.share,
                match=fabric_pb2.ClassMatch(
                    udp_dst=[str(p) for p in c.match.udp_dst],
                    tcp_dst=[str(p) for p in c.match.tcp_dst],
                    tcp_src=[str(p) for p in c.match.tcp_src],
                    dscp=list(c.match.dscp), with_dscp=list(c.match.with_dscp),
                ),
            )
            for c in policy.classes
        ],
        trust_unclassified_dscp=policy.trust_unclassified_dscp,
        enabled=enabled,
        best_effort_share=policy.best_effort_share,
    )


def policy_data(msg: fabric_pb2.QosPolicy) -> dict:
    """The structured policy as plain data for validation (read-only fields left out)."""
    return {
        "classes": [
            {
                "name": c.name, "dscp": c.dscp, "queue": c.queue,
                "scheduling": c.scheduling or "share", "share": c.share,
                "match": {k: list(getattr(c.match, k)) for k in
                          ("udp_dst", "tcp_dst", "tcp_src", "dscp", "with_dscp")
                          if len(getattr(c.match, k))},
            }
            for c in msg.classes
        ],
        "trust_unclassified_dscp": msg.trust_unclassified_dscp,
    }


def validate_policy(request: fabric_pb2.SetQosPolicyRequest) -> QosPolicy:
    """The request's policy, validated in full; ValueError with a message naming the
    problem (field path and reason) otherwise."""
    which = request.WhichOneof("source")
    if which is None:
        raise ValueError("give a policy or a document")
    if which == "document":
        if len(request.document) > MAX_DOCUMENT:
            raise ValueError(f"document: larger than {MAX_DOCUMENT} bytes")
        try:
            data = yaml.safe_load(request.document)
        except yaml.YAMLError as exc:
            kind = exc.__class__.__name__
            raise ValueError(f"document: not valid YAML or JSON ({kind})") from None
        if not isinstance(data, dict):
            raise ValueError("document: must be a mapping with a 'classes' list")
        if set(data) == {"profile"}:
            try:
                return profile_policy(str(data["profile"]))
            except KeyError:
                raise ValueError(f"profile: unknown profile {data['profile']!r} (known: "
                                 f"default, {', '.join(PROFILES)})") from None
    else:
        data = policy_data(request.policy)
    try:
        return QosPolicy.model_validate(data)
    except ValidationError as exc:
        where, msg = first_error(exc, unknown="unknown field")
        raise ValueError(f"{where or 'policy'}: {msg}") from None


def topology_message(snap: TopologySnapshot) -> fabric_pb2.Topology:
    return fabric_pb2.Topology(
        switches=[
            fabric_pb2.Switch(
                dpid=s.dpid, role=s.role, connected=s.connected,
                connected_since=s.connected_since, ports=s.ports, drained=s.drained,
            )
            for s in snap.switches
        ],
        links=[
            fabric_pb2.Link(
                src_dpid=lk.src_dpid, src_port=lk.src_port, dst_dpid=lk.dst_dpid,
                dst_port=lk.dst_port, discovered_at=lk.discovered_at, drained=lk.drained,
            )
            for lk in snap.links
        ],
        hosts=[
            fabric_pb2.Host(
                mac=h.mac, ip=h.ip, dpid=h.dpid, port=h.port, first_seen=h.first_seen,
                recovered=h.recovered, state=h.state, last_seen=h.last_seen,
            )
            for h in snap.hosts
        ],
        warnings=list(snap.warnings),
        generated_at=snap.generated_at,
    )


class FabricServicer(fabric_pb2_grpc.FabricServicer):
    def __init__(self, handle: ControllerHandle, config: FabricdConfig, started_at: float):
        self.handle = handle
        self.config = config
        self.started_at = started_at

    def _shared(self, context, kind: str, compute: Callable[[Any], tuple[str | None, str,
                                                                        int]]) -> str:
        """A change of the operator intent, in both modes. ``compute`` runs on the
        fabric app's thread and returns the kind's new value (None: nothing to change),
        what the change does in words, and the revision of the kind it was computed
        from. The value is written to the store (etcd in a cluster, the state file
        alone) only if the store still holds that revision; then it is applied here at
        once (and by the other instances of a cluster as they read it). When the kind
        changed meanwhile, that change is applied here first and this one computed
        again."""
        if self.handle.write_intent is None:
            context.abort(grpc.StatusCode.UNAVAILABLE, "controller is still starting")
        what = TITLES.get(kind, kind)
        for _ in range(SHARED_WRITE_ATTEMPTS):
            value, message, expect = self._call(context, compute)
            if value is None:
                return message
            try:
                ok, intent = self.handle.write_intent(kind, value, expect)
            except StoreUnavailable as exc:
                # (etcd's own refusal, e.g. a value over its request size, is no better
                # on a retry: FAILED_PRECONDITION; an unreachable etcd: UNAVAILABLE)
                code = (grpc.StatusCode.FAILED_PRECONDITION if isinstance(exc, StoreRefused)
                        else grpc.StatusCode.UNAVAILABLE)
                context.abort(code, f"{exc}: not applied ({what} could not be kept)")
            self._call(context, lambda app, i=intent: app.commands.apply_intent(i))
            if ok:
                return message
        context.abort(grpc.StatusCode.ABORTED,
                      f"{what} changed {SHARED_WRITE_ATTEMPTS} times while this request was "
                      "computed (others are changing it): not applied; try again")

    def _published(self, context) -> Published:
        got = self.handle.published()
        if got is None:
            context.abort(grpc.StatusCode.UNAVAILABLE, "controller is still starting")
        return got

    def GetTopology(self, request, context):
        return topology_message(self._published(context).topology)

    def GetStatus(self, request, context):
        return fabric_pb2.Status(
            version=__version__,
            started_at=self.started_at,
            openflow_port=self.config.openflow.port,
            qos_enabled=self.config.qos.enabled,
            te_enabled=self.config.te.enabled,
            link_speed_mbps=self.config.link_speed_mbps or 0.0,
            counters=dict(pub.counters) if (pub := self.handle.published()) else {},
            cluster=self._cluster_status(pub),
        )

    def _cluster_status(self, pub: Published | None) -> fabric_pb2.ClusterStatus | None:
        c = self.config.cluster
        if not c.enabled:
            return None
        got = self.handle.cluster()
        mine = sorted(pub.masters or ()) if pub is not None else []
        if got is None:
            return fabric_pb2.ClusterStatus(name=c.name, node_id=c.node_id or "",
                                            mastered_here=mine,
                                            etcd_error="the cluster agent is starting")
        return fabric_pb2.ClusterStatus(
            name=c.name, node_id=got.node, members=list(got.members),
            masters=[fabric_pb2.SwitchMaster(dpid=d, node_id=n) for d, n in got.masters],
            mastered_here=mine, etcd_ok=got.etcd_ok, etcd_error=got.etcd_error,
            checked_at=got.checked_at, te_leader=got.te_leader)

    def ListLinks(self, request, context):
        pub = self._published(context)
        return fabric_pb2.LinkList(
            links=[
                fabric_pb2.LinkStatus(
                    src_dpid=s.src_dpid, src_port=s.src_port, dst_dpid=s.dst_dpid,
                    dst_port=s.dst_port, rate_bps=s.rate_bps, utilization=s.utilization,
                    drops_per_second=s.drops_per_second, errors_per_second=s.errors_per_second)
                for s in pub.links
            ],
            collected_at=pub.links_at,
        )

    def _maintain(self, context, action: str, dpid: int, port: int) -> fabric_pb2.DrainReply:
        if dpid == 0:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "dpid: required")
        if action == "drain_link" and port == 0:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "port: required")

        def compute(app) -> tuple[str | None, str, int]:
            drains, message, revision = app.commands.maintenance_change(action, dpid, port)
            return (None if drains == app.core.drains else drains.encode(), message,
                    revision)

        message = self._shared(context, "drains", compute)
        log.info("%s by %s", message, context.peer())
        return fabric_pb2.DrainReply(message=message)

    def DrainLink(self, request, context):
        return self._maintain(context, "drain_link", request.dpid, request.port)

    def DrainSwitch(self, request, context):
        return self._maintain(context, "drain_switch", request.dpid, 0)

    def Undrain(self, request, context):
        return self._maintain(context, "undrain", request.dpid, request.port)

    def GetQosPolicy(self, request, context):
        pub = self.handle.published()
        return policy_message(pub.qos_policy if pub else None, self.config.qos.enabled)

    def SetQosPolicy(self, request, context):
        try:
            policy = validate_policy(request)
        except ValueError as exc:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        if not self.config.qos.enabled:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION,
                          "QoS is off (fabricd runs with --no-qos)")
        value = encode_policy(policy)
        self._shared(context, "qos", lambda app: (value, "", app.commands.applied.revision("qos")))
        log.info("QoS policy set through the API by %s", context.peer())
        return policy_message(policy, True)

    def ListFlows(self, request, context):
        if not self.config.te.enabled:
            return fabric_pb2.FlowList(te_enabled=False)
        pub = self._published(context)
        return fabric_pb2.FlowList(
            flows=[flow_message(f) for f in pub.flows if f.large or not request.large_only],
            collected_at=pub.flows_at, te_enabled=True)

    def _te_key(self, context, request) -> FlowKey:
        """The request's flow, once TE is known to be on (else a status)."""
        try:
            key = flow_key(request.flow)
        except ValueError as exc:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        if not self.config.te.enabled:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION,
                          "traffic engineering is off (fabricd runs with --no-te)")
        return key

    def _call(self, context, fn):
        """Run ``fn(fabric_app)`` on the app's thread; its exceptions become statuses."""
        # Wait no longer than the client does: a command not started by then is not
        # applied, and the status (and the audit line) say so.
        left = context.time_remaining()
        timeout = CALL_TIMEOUT if left is None else max(0.05, min(CALL_TIMEOUT, left - 0.2))
        try:
            return self.handle.call(fn, timeout)
        except TimeoutError as exc:
            context.abort(grpc.StatusCode.UNAVAILABLE, f"the controller did not answer: {exc}")
        except JobError as exc:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        except JobExists as exc:
            context.abort(grpc.StatusCode.ALREADY_EXISTS, str(exc))
        except LookupError as exc:
            context.abort(grpc.StatusCode.NOT_FOUND, str(exc).strip("'\""))
        except (ValueError, RuntimeError) as exc:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(exc))

    def PinFlow(self, request, context):
        if request.spine == 0:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "spine: required")
        key = self._te_key(context, request)
        self._shared(context, "pins",
                     lambda app: app.commands.pin_change(key, request.spine))
        info = self._call(context, lambda app: app.commands.flow_info(key))
        log.info("%s pinned to spine %d by %s", key, request.spine, context.peer())
        return flow_message(info)

    def UnpinFlow(self, request, context):
        key = self._te_key(context, request)
        self._shared(context, "pins", lambda app: app.commands.pin_change(key, None))
        log.info("%s unpinned by %s", key, context.peer())
        return fabric_pb2.UnpinFlowReply(message=f"{key} unpinned")

    def WatchEvents(self, request, context):
        bus = self.handle.event_bus()
        if bus is None:
            context.abort(grpc.StatusCode.UNAVAILABLE, "controller is still starting")
        unknown = [k for k in request.kinds if k not in KINDS]
        if unknown:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                          f"kinds: unknown kind {unknown[0]!r} (known: {', '.join(KINDS)})")
        kinds = set(request.kinds)
        seq = 0 if request.replay else bus.last_seq
        while context.is_active():
            for e in bus.wait(seq, WATCH_POLL_SECONDS):
                seq = e.seq
                if not kinds or e.event.kind in kinds:
                    yield event_message(e)

    def GetSwitchEntries(self, request, context):
        if request.dpid == 0:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "dpid: required")
        got = self._call(context, lambda app: app.commands.switch_entries(request.dpid))
        return fabric_pb2.SwitchEntries(
            dpid=got.dpid, complete=got.complete, flows=got.flows, groups=got.groups,
            meters=got.meters, kept_groups=got.kept_groups, pending=got.pending)

    def _jobs_enabled(self, context) -> None:
        if not self.config.te.enabled:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION,
                          "traffic engineering is off (fabricd runs with --no-te): jobs "
                          "cannot be placed")

    def RegisterJob(self, request, context):
        self._jobs_enabled(context)
        spec = job_spec(request)
        try:  # (malformed jobs are refused here, before they reach the controller)
            spec.validate(self.config.jobs.limits())
        except JobError as exc:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        self._shared(context, "jobs", lambda app: app.commands.job_change(register=spec))
        info = self._call(context, lambda app: app.commands.job_info(spec.job_id))
        log.info("job %s registered (%s over %d hosts) by %s", spec.job_id, spec.pattern,
                 len(spec.members), context.peer())
        return job_message(info)

    def ListJobs(self, request, context):
        pub = self._published(context)
        return fabric_pb2.JobList(jobs=[job_message(j) for j in pub.jobs])

    def GetJob(self, request, context):
        if not request.id:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "id: required")
        pub = self._published(context)
        found = next((j for j in pub.jobs if j.job_id == request.id), None)
        if found is None:
            context.abort(grpc.StatusCode.NOT_FOUND, f"no job {request.id!r}")
        return job_message(found)

    def DeleteJob(self, request, context):
        self._jobs_enabled(context)
        if not request.id:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "id: required")
        self._shared(context, "jobs", lambda app: app.commands.job_change(delete=request.id))
        log.info("job %s deleted by %s", request.id, context.peer())
        return fabric_pb2.DeleteJobReply(message=f"job {request.id} deleted")

    def GetQosStats(self, request, context):
        pub = self._published(context)
        rows = pub.queues
        if request.dpid and all(r.dpid != request.dpid for r in rows):
            context.abort(grpc.StatusCode.NOT_FOUND, f"no queue statistics for dpid "
                          f"{request.dpid}")
        return fabric_pb2.QosStats(
            queues=[
                fabric_pb2.QueueStats(dpid=r.dpid, port=r.port, port_name=r.port_name,
                                      queue=r.queue, tx_bytes=r.tx_bytes,
                                      tx_packets=r.tx_packets, tx_errors=r.tx_errors)
                for r in rows if not request.dpid or r.dpid == request.dpid
            ],
            collected_at=pub.queues_at,
        )


def start_api_server(config: FabricdConfig, handle: ControllerHandle) -> grpc.Server:
    """Bind and start the API; raises RuntimeError with a reason if the address is unusable."""
    api = config.api
    if api.tokens:
        tokens = {t.token: Principal(t.name, t.role) for t in api.tokens}
    else:
        try:
            token, made = load_or_create_token(api.token_file)
        except OSError as exc:
            raise RuntimeError(f"api.token_file {api.token_file}: {exc.strerror}") from None
        tokens = {token: Principal("local-admin", "admin")}
        log.info("API admin token %s %s (fabricctl reads it from there)",
                 "generated in" if made else "read from", api.token_file)
    server = grpc.server(
        # watchers are capped below the pool: UNARY_THREADS always remain for the rest
        futures.ThreadPoolExecutor(max_workers=api.max_watchers + UNARY_THREADS,
                                   thread_name_prefix="aifabric-api"),
        options=[("grpc.max_receive_message_length", MAX_REQUEST_BYTES)],
        interceptors=[TokenAuthInterceptor(tokens, AuditLog(api.audit_log),
                                           api.max_watchers, api.max_watchers_per_token)],
    )
    fabric_pb2_grpc.add_FabricServicer_to_server(
        FabricServicer(handle, config, time.time()), server
    )
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        (SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME), server
    )
    address = api.address
    try:
        if api.tls is not None:
            def read(path: str) -> bytes:
                return Path(path).expanduser().read_bytes()

            creds = grpc.ssl_server_credentials(
                [(read(api.tls.key), read(api.tls.cert))],
                root_certificates=read(api.tls.client_ca) if api.tls.client_ca else None,
                require_client_auth=api.tls.client_ca is not None,
            )
            port = server.add_secure_port(address, creds)
        else:
            if not api.loopback:
                log.warning("the API on %s is not loopback and has no TLS: tokens travel "
                            "in clear text (--insecure-api)", address)
            port = server.add_insecure_port(address)
    except (RuntimeError, OSError) as exc:
        raise RuntimeError(f"cannot listen on {address}: {exc}") from None
    if port == 0:
        raise RuntimeError(f"cannot listen on {address} (address in use?)")
    server.start()
    for name in ("", SERVICE_NAME):
        health_servicer.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)

    def serving_once_the_apps_run() -> None:
        # SERVING means the controller answers, not just that the port is open; the
        # watchdog turns it NOT_SERVING while the fabric app's event loop is stalled.
        while handle.published() is None:
            time.sleep(0.05)
        serving = None
        tripped = False
        while True:
            try:
                why = handle.stalled()
            except Exception:  # the watchdog itself must not die
                log.exception("watchdog: cannot read the fabric app's heartbeat")
                why = "the fabric app's heartbeat cannot be read"
            if (why is None) != serving:
                serving = why is None
                state = (health_pb2.HealthCheckResponse.SERVING if serving
                         else health_pb2.HealthCheckResponse.NOT_SERVING)
                for name in ("", SERVICE_NAME):
                    health_servicer.set(name, state)
                if why is not None:
                    log.error("watchdog: NOT_SERVING: %s", why)
                    WATCHDOG_TRIPS.inc()
                    tripped = True
                    bus = handle.event_bus()
                    if bus is not None:
                        bus.publish([FabricEvent("watchdog", f"health NOT_SERVING: {why}")],
                                    time.time())
                elif tripped:
                    log.warning("watchdog: the fabric app answers again; SERVING")
            time.sleep(WATCHDOG_POLL_SECONDS)

    threading.Thread(target=serving_once_the_apps_run, name="aifabric-health",
                     daemon=True).start()
    log.info("management API listening on %s (%s)", address,
             "TLS" + (", client certificates required" if api.tls.client_ca else "")
             if api.tls else "plain TCP")
    return server
