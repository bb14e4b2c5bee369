"""The gRPC management API: ``aifabric.v1.Fabric`` plus health checking and reflection.

Handlers run on gRPC's own threads and never touch os-ken, a datapath or the core's
state: reads take the immutable snapshots the fabric app publishes; anything that
changes state (or must read it consistently) is a method of
:class:`~apps.api.fabric_commands.FabricCommands`, run on the app's thread through
``_call`` (an ``EventCall``), waiting no longer than the client's deadline.

Refusals are domain errors (:mod:`controller.core.errors`), raised by the handlers, the
commands and the core alike, and mapped to status codes here only (:data:`STATUS`,
:func:`statuses`); any other exception is a defect: logged with its traceback and
answered ``INTERNAL``.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from aifabric.v1 import fabric_pb2, fabric_pb2_grpc
from apps import clock
from apps.api.audit import AuditLog
from apps.api.auth import Principal, TokenAuthInterceptor, load_or_create_token
from apps.api.event_bus import EventBus
from apps.api.fabric_commands import (
    CallCommand,
    Change,
    FabricCommands,
    NotAnswered,
    not_started,
)
from apps.api.health_watch import SERVICE_NAME, watch_health
from apps.api.messages import (
    event_message,
    flow_key,
    flow_message,
    job_message,
    job_spec,
    policy_message,
    to_message,
    validate_policy,
    validate_servers,
)
from apps.cluster_store import StoreRefused, StoreUnavailable
from apps.runtime import job_limits
from controller import __version__
from controller.config import FabricdConfig
from controller.core.constants import ANSWERED_KEY
from controller.core.errors import (
    Aborted,
    AlreadyExists,
    FabricError,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    ResourceExhausted,
    Unavailable,
)
from controller.core.events import KINDS
from controller.core.intent.kinds import TITLES, Intent
from controller.core.snapshot import Published
from controller.core.te import FlowKey

log = logging.getLogger("aifabric.api")

MAX_REQUEST_BYTES = 1024 * 1024  # larger requests: RESOURCE_EXHAUSTED before any handler
T = TypeVar("T")

# Each domain error's status code: the one place refusals become gRPC statuses.
STATUS: dict[type[FabricError], grpc.StatusCode] = {
    NotFound: grpc.StatusCode.NOT_FOUND,
    InvalidArgument: grpc.StatusCode.INVALID_ARGUMENT,
    FailedPrecondition: grpc.StatusCode.FAILED_PRECONDITION,
    AlreadyExists: grpc.StatusCode.ALREADY_EXISTS,
    ResourceExhausted: grpc.StatusCode.RESOURCE_EXHAUSTED,
    Unavailable: grpc.StatusCode.UNAVAILABLE,
    Aborted: grpc.StatusCode.ABORTED,
}
INTERNAL_MESSAGE = "internal error in the controller (its log has the details)"


def status_of(error: FabricError) -> grpc.StatusCode:
    """The status code of a domain error (of its nearest kind in :data:`STATUS`)."""
    for kind in type(error).__mro__:
        if kind in STATUS:
            return STATUS[kind]
    return grpc.StatusCode.INTERNAL  # (a FabricError of no kind: a defect too)


def _abort(context, method: str, exc: Exception) -> None:
    """End the call with ``exc`` as its status (re-raises gRPC's own abort)."""
    if context.code() is not None:  # context.abort() was called: its status stands
        raise exc
    context.set_trailing_metadata(((ANSWERED_KEY, "1"),))
    if isinstance(exc, FabricError):
        code = status_of(exc)
        if code != grpc.StatusCode.INTERNAL:
            context.abort(code, str(exc))
    log.error("%s failed: %s: %s", method, type(exc).__name__, exc, exc_info=exc)
    context.abort(grpc.StatusCode.INTERNAL, INTERNAL_MESSAGE)


def statuses(cls: type) -> type:
    """Wrap every RPC handler of ``cls`` so that what it raises becomes its status."""
    service = fabric_pb2.DESCRIPTOR.services_by_name["Fabric"]
    for rpc in service.methods:
        handler = getattr(cls, rpc.name)
        if rpc.server_streaming:
            @functools.wraps(handler)
            def stream(self, request, context, _handler=handler, _name=rpc.name):
                try:
                    yield from _handler(self, request, context)
                except Exception as exc:
                    _abort(context, _name, exc)
            setattr(cls, rpc.name, stream)
        else:
            @functools.wraps(handler)
            def unary(self, request, context, _handler=handler, _name=rpc.name):
                try:
                    return _handler(self, request, context)
                except Exception as exc:
                    _abort(context, _name, exc)
            setattr(cls, rpc.name, unary)
    return cls


@dataclass
class ControllerHandle:
    """How the API reaches the controller: ``published`` is what the fabric app last
    published (None until the apps run), read once per call; ``call`` runs a command
    (a function of the app's :class:`FabricCommands`) on the fabric app's thread (every
    mutation goes that way)."""

    published: Callable[[], Published | None]
    # call(command, timeout): command(commands) on the app's own thread; raises what it
    # raised, or NotAnswered (UNAVAILABLE) when it did not run
    call: CallCommand = not_started
    event_bus: Callable[[], EventBus | None] = lambda: None
    # why the fabric app's event loop looks stalled (the watchdog), or None
    stalled: Callable[[], str | None] = lambda: None
    # cluster mode: what the cluster agent last read from etcd (a ClusterStatus), or None
    cluster: Callable[[], Any] = lambda: None
    # cluster mode: write a shared kind by compare-and-swap (EtcdStore.write_intent)
    write_intent: Callable[[str, str, int], tuple[bool, Intent]] | None = None
    # whether switches can connect yet (the OpenFlow listener has bound its port)
    listening: Callable[[], bool] = lambda: True


WATCH_POLL_SECONDS = 1.0
SHARED_WRITE_ATTEMPTS = 3  # cluster mode: tries of a change racing other instances
CALL_TIMEOUT = 10.0  # seconds a mutation may wait for the fabric app
UNARY_THREADS = 32  # server threads only unary calls and health can use
  # how often a watcher checks that its client is still there
STARTING = "controller is still starting"
TE_OFF = "traffic engineering is off (fabricd runs with --no-te)"


@statuses
class FabricServicer(fabric_pb2_grpc.FabricServicer):
    """The handlers: validate the request (InvalidArgument naming the field), read a
    snapshot or call a command, answer a message. Refusals are raised, never aborted
    here (see :func:`statuses`)."""

    def __init__(self, handle: ControllerHandle, config: FabricdConfig, started_at: float):
        self.handle = handle
        self.config = config
        self.started_at = started_at

    def _call(self, context, command: Callable[[FabricCommands], T],
              must_run: bool = False) -> T:
        """Run ``command`` on the app's thread; it raises what the command raised.
        ``must_run``: it runs even after the client stopped waiting (a stored change)."""
        # Wait no longer than the client does: a command not started by then is not
        # applied, and the status (and the audit line) say so.
        left = context.time_remaining()
        timeout = CALL_TIMEOUT if left is None else max(0.05, min(CALL_TIMEOUT, left - 0.2))
        if must_run:
            return self.handle.call(command, timeout, must_run=True)
        return self.handle.call(command, timeout)

    def _shared(self, context, kind: str, compute: Callable[[FabricCommands], Change]) -> str:
        """A change of the operator intent, in both modes. ``compute`` runs on the
        fabric app's thread and returns the :class:`Change` (its value None: nothing to
        change). The value is written to the store (etcd in a cluster, the state file
        alone) only if the store still holds the revision it was computed from; then it
        is applied here at once (and by the other instances of a cluster as they read
        it). When the kind changed meanwhile, that change is applied here first and this
        one computed again."""
        if self.handle.write_intent is None:
            raise Unavailable(STARTING)
        what = TITLES.get(kind, kind)
        for _ in range(SHARED_WRITE_ATTEMPTS):
            change = self._call(context, compute)
            if change.value is None:
                return change.message
            try:
                ok, intent = self.handle.write_intent(kind, change.value, change.revision)
            except StoreRefused as exc:  # (etcd's own refusal: no better on a retry)
                raise FailedPrecondition(f"{exc}: not applied ({what} could not be "
                                         "kept)") from exc
            except StoreUnavailable as exc:
                raise Unavailable(f"{exc}: not applied ({what} could not be kept)") from exc
            try:  # (stored: applied here even if the client stops waiting)
                self._call(context, lambda c, i=intent: c.apply_intent(i), must_run=True)
            except NotAnswered as exc:
                raise Unavailable(f"{what} stored at revision {intent.revision}, not in "
                                  f"force yet ({exc})") from exc
            if ok:
                return change.message
        raise Aborted(f"{what} changed {SHARED_WRITE_ATTEMPTS} times while this request "
                      "was computed (others are changing it): not applied; try again")

    def _published(self) -> Published:
        got = self.handle.published()
        if got is None:
            raise Unavailable(STARTING)
        return got

    def _te_on(self, why: str = "") -> None:
        if not self.config.te.enabled:
            raise FailedPrecondition(TE_OFF + why)

    def GetTopology(self, request, context):
        return to_message(self._published().topology, fabric_pb2.Topology)

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
        pub = self._published()
        return fabric_pb2.LinkList(
            links=[to_message(s, fabric_pb2.LinkStatus) for s in pub.links],
            collected_at=pub.links_at)

    def _maintain(self, context, action: str, dpid: int, port: int) -> fabric_pb2.DrainReply:
        if dpid == 0:
            raise InvalidArgument("dpid: required")
        if action == "drain_link" and port == 0:
            raise InvalidArgument("port: required")
        message = self._shared(context, "drains",
                               lambda c: c.drain_change(action, dpid, port))
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
        policy = validate_policy(request)
        if not self.config.qos.enabled:
            raise FailedPrecondition("QoS is off (fabricd runs with --no-qos)")
        self._shared(context, "qos", lambda c: c.qos_change(policy))
        log.info("QoS policy set through the API by %s", context.peer())
        return policy_message(policy, True)

    def ListFlows(self, request, context):
        if not self.config.te.enabled:
            return fabric_pb2.FlowList(te_enabled=False)
        pub = self._published()
        return fabric_pb2.FlowList(
            flows=[flow_message(f) for f in pub.flows if f.large or not request.large_only],
            collected_at=pub.flows_at, te_enabled=True)

    def _te_key(self, request) -> FlowKey:
        """The request's flow, once TE is known to be on."""
        key = flow_key(request.flow)
        self._te_on()
        return key

    def PinFlow(self, request, context):
        if request.spine == 0:
            raise InvalidArgument("spine: required")
        key = self._te_key(request)
        self._shared(context, "pins", lambda c: c.pin_change(key, request.spine))
        try:
            info = self._call(context, lambda c: c.flow_info(key))
        except NotAnswered as exc:
            raise Unavailable(f"{key} pinned to spine {request.spine} (stored); the "
                              f"controller did not say how it is placed ({exc})") from exc
        log.info("%s pinned to spine %d by %s", key, request.spine, context.peer())
        return flow_message(info)

    def UnpinFlow(self, request, context):
        key = self._te_key(request)
        self._shared(context, "pins", lambda c: c.unpin_change(key))
        log.info("%s unpinned by %s", key, context.peer())
        return fabric_pb2.UnpinFlowReply(message=f"{key} unpinned")

    def WatchEvents(self, request, context):
        bus = self.handle.event_bus()
        if bus is None:
            raise Unavailable(STARTING)
        unknown = [k for k in request.kinds if k not in KINDS]
        if unknown:
            raise InvalidArgument(f"kinds: unknown kind {unknown[0]!r} (known: "
                                  f"{', '.join(KINDS)})")
        kinds = set(request.kinds)
        seq = 0 if request.replay else bus.last_seq
        while context.is_active():
            for e in bus.wait(seq, WATCH_POLL_SECONDS):
                seq = e.seq
                if not kinds or e.event.kind in kinds:
                    yield event_message(e)

    def GetSwitchEntries(self, request, context):
        if request.dpid == 0:
            raise InvalidArgument("dpid: required")
        got = self._call(context, lambda c: c.switch_entries(request.dpid))
        return to_message(got, fabric_pb2.SwitchEntries)

    def RegisterJob(self, request, context):
        self._te_on(": jobs cannot be placed")
        spec = job_spec(request)
        # (malformed jobs are refused here, before they reach the controller: JobError)
        spec.validate(job_limits(self.config), server_rails=True)
        self._shared(context, "jobs", lambda c: c.job_register_change(spec))
        info = self._call(context, lambda c: c.job_info(spec.job_id))
        log.info("job %s registered (%s over %d hosts) by %s", spec.job_id, spec.pattern,
                 len(spec.members), context.peer())
        return job_message(info)

    def ListJobs(self, request, context):
        return fabric_pb2.JobList(jobs=[job_message(j) for j in self._published().jobs])

    def GetJob(self, request, context):
        if not request.id:
            raise InvalidArgument("id: required")
        found = next((j for j in self._published().jobs if j.job_id == request.id), None)
        if found is None:
            raise NotFound(f"no job {request.id!r}")
        return job_message(found)

    def DeleteJob(self, request, context):
        self._te_on(": jobs cannot be placed")
        if not request.id:
            raise InvalidArgument("id: required")
        self._shared(context, "jobs", lambda c: c.job_delete_change(request.id))
        log.info("job %s deleted by %s", request.id, context.peer())
        return fabric_pb2.DeleteJobReply(message=f"job {request.id} deleted")

    def SetServers(self, request, context):
        servers = validate_servers(request)
        message = self._shared(context, "servers", lambda c: c.servers_change(servers))
        log.info("%s by %s", message, context.peer())
        return fabric_pb2.SetServersReply(message=message)

    def GetQosStats(self, request, context):
        pub = self._published()
        rows = pub.queues
        if request.dpid and all(r.dpid != request.dpid for r in rows):
            raise NotFound(f"no queue statistics for dpid {request.dpid}")
        return fabric_pb2.QosStats(
            queues=[to_message(r, fabric_pb2.QueueStats) for r in rows
                    if not request.dpid or r.dpid == request.dpid],
            collected_at=pub.queues_at)


def api_tokens(api) -> dict[str, Principal]:
    """Who may call: the config's tokens, or the local admin token (read from its file,
    made there on first start); RuntimeError if that file is unusable."""
    if api.tokens:
        return {t.token: Principal(t.name, t.role) for t in api.tokens}
    try:
        token, made = load_or_create_token(api.token_file)
    except OSError as exc:
        raise RuntimeError(f"api.token_file {api.token_file}: {exc.strerror}") from None
    log.info("API admin token %s %s (fabricctl reads it from there)",
             "generated in" if made else "read from", api.token_file)
    return {token: Principal("local-admin", "admin")}


def reload_tokens(server: grpc.Server, api) -> None:
    """A reload: the running server's callers are the new config's from now on
    (RuntimeError, nothing changed, if they cannot be read)."""
    server.aifabric_auth.set_tokens(api_tokens(api))


def start_api_server(config: FabricdConfig, handle: ControllerHandle) -> grpc.Server:
    """Bind and start the API; raises RuntimeError with a reason if the address is unusable."""
    api = config.api
    auth = TokenAuthInterceptor(api_tokens(api), AuditLog(api.audit_log), api.max_watchers,
                                api.max_watchers_per_token)
    server = grpc.server(
        # watchers are capped below the pool: UNARY_THREADS always remain for the rest
        futures.ThreadPoolExecutor(max_workers=api.max_watchers + UNARY_THREADS,
                                   thread_name_prefix="aifabric-api"),
        options=[("grpc.max_receive_message_length", MAX_REQUEST_BYTES)],
        interceptors=[auth],
    )
    server.aifabric_auth = auth  # (a reload replaces its tokens: reload_tokens)
    fabric_pb2_grpc.add_FabricServicer_to_server(
        FabricServicer(handle, config, clock.now()), server
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

    threading.Thread(target=watch_health, args=(handle, health_servicer),
                     name="aifabric-health", daemon=True).start()
    log.info("management API listening on %s (%s)", address,
             "TLS" + (", client certificates required" if api.tls.client_ca else "")
             if api.tls else "plain TCP")
    return server
