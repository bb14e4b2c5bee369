"""A small client for the aifabric management API (used by fabricctl, tests and bench)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import grpc
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.json_format import MessageToDict, ParseDict
from google.protobuf.message import Message
from grpc_health.v1 import health_pb2, health_pb2_grpc

from aifabric.v1 import fabric_pb2, fabric_pb2_grpc
from controller.core.constants import DEFAULT_TOKEN_FILE

DEFAULT_SERVER = "127.0.0.1:50051"


def local_target(server: str) -> bool:
    """Whether a gRPC target is this host: ``localhost``, a loopback address or a unix
    socket (a host name other than localhost is taken as another host)."""
    import ipaddress

    if server.startswith("unix:"):
        return True
    host = server[1:server.find("]")] if server.startswith("[") else server.rsplit(":", 1)[0]
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def default_token() -> str | None:
    """$AIFABRIC_TOKEN, else the token file ($AIFABRIC_TOKEN_FILE or the local default)
    when it is readable, else None."""
    token = os.environ.get("AIFABRIC_TOKEN")
    if token:
        return token.strip()
    path = Path(os.environ.get("AIFABRIC_TOKEN_FILE") or DEFAULT_TOKEN_FILE).expanduser()
    try:
        return path.read_text().strip() or None
    except OSError:
        return None


class _Bearer(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor):
    """Adds ``authorization: Bearer TOKEN`` to every call."""

    def __init__(self, token: str) -> None:
        self.metadata = ("authorization", f"Bearer {token}")

    def _details(self, d):
        metadata = [*(d.metadata or ()), self.metadata]
        return d._replace(metadata=metadata) if hasattr(d, "_replace") else _Details(
            d.method, d.timeout, metadata, d.credentials, d.wait_for_ready, d.compression)

    def intercept_unary_unary(self, continuation, details, request):
        return continuation(self._details(details), request)

    def intercept_unary_stream(self, continuation, details, request):
        return continuation(self._details(details), request)


class _Details(grpc.ClientCallDetails):
    def __init__(self, method, timeout, metadata, credentials, wait_for_ready, compression):
        self.method, self.timeout, self.metadata = method, timeout, metadata
        self.credentials, self.wait_for_ready = credentials, wait_for_ready
        self.compression = compression


class FabricClient:
    """``token``: None reads the default (see :func:`default_token`), "" sends none.
    TLS when ``ca`` is given (with ``cert``/``key`` for a client certificate)."""

    def __init__(self, server: str = DEFAULT_SERVER, timeout: float = 5.0,
                 token: str | None = None, ca: str | None = None, cert: str | None = None,
                 key: str | None = None) -> None:
        self.server = server
        self.timeout = timeout
        if ca is not None:
            def read(path: str | None) -> bytes | None:
                return Path(path).expanduser().read_bytes() if path else None

            creds = grpc.ssl_channel_credentials(read(ca), read(key), read(cert))
            channel = grpc.secure_channel(server, creds)
        else:
            channel = grpc.insecure_channel(server)
        self.raw_channel = channel
        token = default_token() if token is None else token
        self.channel = grpc.intercept_channel(channel, _Bearer(token)) if token else channel
        self.stub = fabric_pb2_grpc.FabricStub(self.channel)

    def close(self) -> None:
        self.raw_channel.close()

    def __enter__(self) -> FabricClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def topology(self) -> fabric_pb2.Topology:
        return self.stub.GetTopology(fabric_pb2.GetTopologyRequest(), timeout=self.timeout)

    def status(self) -> fabric_pb2.Status:
        return self.stub.GetStatus(fabric_pb2.GetStatusRequest(), timeout=self.timeout)

    def links(self) -> fabric_pb2.LinkList:
        return self.stub.ListLinks(fabric_pb2.ListLinksRequest(), timeout=self.timeout)

    def drain_link(self, dpid: int, port: int) -> str:
        req = fabric_pb2.DrainLinkRequest(dpid=dpid, port=port)
        return self.stub.DrainLink(req, timeout=max(self.timeout, 15.0)).message

    def drain_switch(self, dpid: int) -> str:
        req = fabric_pb2.DrainSwitchRequest(dpid=dpid)
        return self.stub.DrainSwitch(req, timeout=max(self.timeout, 15.0)).message

    def undrain(self, dpid: int, port: int = 0) -> str:
        req = fabric_pb2.UndrainRequest(dpid=dpid, port=port)
        return self.stub.Undrain(req, timeout=max(self.timeout, 15.0)).message

    def qos_policy(self) -> fabric_pb2.QosPolicy:
        return self.stub.GetQosPolicy(fabric_pb2.GetQosPolicyRequest(), timeout=self.timeout)

    def set_qos_document(self, text: str) -> fabric_pb2.QosPolicy:
        return self.stub.SetQosPolicy(fabric_pb2.SetQosPolicyRequest(document=text),
                                      timeout=max(self.timeout, 15.0))

    def qos_stats(self, dpid: int = 0) -> fabric_pb2.QosStats:
        return self.stub.GetQosStats(fabric_pb2.GetQosStatsRequest(dpid=dpid),
                                     timeout=self.timeout)

    def flows(self, large_only: bool = False) -> fabric_pb2.FlowList:
        return self.stub.ListFlows(fabric_pb2.ListFlowsRequest(large_only=large_only),
                                   timeout=self.timeout)

    def pin_flow(self, flow: fabric_pb2.FlowMatch, spine: int) -> fabric_pb2.FlowStatus:
        return self.stub.PinFlow(fabric_pb2.PinFlowRequest(flow=flow, spine=spine),
                                 timeout=max(self.timeout, 15.0))

    def unpin_flow(self, flow: fabric_pb2.FlowMatch) -> str:
        return self.stub.UnpinFlow(fabric_pb2.UnpinFlowRequest(flow=flow),
                                   timeout=max(self.timeout, 15.0)).message

    def register_job(self, spec: fabric_pb2.JobSpec) -> fabric_pb2.JobStatus:
        return self.stub.RegisterJob(spec, timeout=max(self.timeout, 15.0))

    def jobs(self) -> fabric_pb2.JobList:
        return self.stub.ListJobs(fabric_pb2.ListJobsRequest(), timeout=self.timeout)

    def job(self, job_id: str) -> fabric_pb2.JobStatus:
        return self.stub.GetJob(fabric_pb2.GetJobRequest(id=job_id), timeout=self.timeout)

    def delete_job(self, job_id: str) -> str:
        return self.stub.DeleteJob(fabric_pb2.DeleteJobRequest(id=job_id),
                                   timeout=max(self.timeout, 15.0)).message

    def set_servers(self, servers: list[tuple[str, list[str]]]) -> str:
        """Replace the servers set through the API: (name, NICs in rail order) each."""
        req = fabric_pb2.SetServersRequest(servers=[
            fabric_pb2.ServerSpec(name=name, nics=nics) for name, nics in servers])
        return self.stub.SetServers(req, timeout=max(self.timeout, 15.0)).message

    def switch_entries(self, dpid: int) -> fabric_pb2.SwitchEntries:
        return self.stub.GetSwitchEntries(fabric_pb2.GetSwitchEntriesRequest(dpid=dpid),
                                          timeout=self.timeout)

    def watch_events(self, kinds: list[str] | None = None, replay: bool = False,
                     timeout: float | None = None):
        """Iterator over events (a cancellable gRPC stream); ``timeout`` ends it."""
        return self.stub.WatchEvents(
            fabric_pb2.WatchEventsRequest(kinds=kinds or [], replay=replay), timeout=timeout)

    def health(self, service: str = "") -> str:
        stub = health_pb2_grpc.HealthStub(self.channel)
        resp = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=self.timeout)
        return health_pb2.HealthCheckResponse.ServingStatus.Name(resp.status)


# --- messages as plain data (--json), rendered generically -------------------------------
INT64 = frozenset({FieldDescriptor.TYPE_INT64, FieldDescriptor.TYPE_UINT64,
                   FieldDescriptor.TYPE_SINT64, FieldDescriptor.TYPE_FIXED64,
                   FieldDescriptor.TYPE_SFIXED64})


def message_dict(msg: Message) -> dict[str, Any]:
    """A message as plain JSON-able data with the API's field names: every field (its
    default included), 64-bit integers (dpids, counters) as numbers, not the strings
    ProtoJSON makes of them."""
    data = MessageToDict(msg, always_print_fields_with_no_presence=True,
                         preserving_proto_field_name=True)
    return _numbers(msg.DESCRIPTOR, data)


def _numbers(desc: Descriptor, data: dict[str, Any]) -> dict[str, Any]:
    """``data`` with its 64-bit integers as numbers, its keys in the message's order."""
    out: dict[str, Any] = {}
    for f in desc.fields:
        if f.name not in data:
            continue
        value, kind = data[f.name], f.message_type
        many = isinstance(value, list)  # (a repeated field)
        if kind is not None and kind.GetOptions().map_entry:
            entry = kind.fields_by_name["value"]
            if entry.type in INT64:
                value = {k: int(v) for k, v in value.items()}
            elif entry.message_type is not None:
                value = {k: _numbers(entry.message_type, v) for k, v in value.items()}
        elif kind is not None:
            value = [_numbers(kind, v) for v in value] if many else _numbers(kind, value)
        elif f.type in INT64:
            value = [int(v) for v in value] if many else int(value)
        out[f.name] = value
    return out


def topology_dict(topo: fabric_pb2.Topology) -> dict[str, Any]:
    """The topology as plain JSON-able data with the API's field names (dpids as ints)."""
    return message_dict(topo)


def status_dict(st: fabric_pb2.Status) -> dict[str, Any]:
    """The status; ``cluster`` None when fabricd runs alone, counters by name."""
    d = message_dict(st)
    d["counters"] = dict(sorted(d["counters"].items()))
    d["cluster"] = cluster_dict(st.cluster) if st.HasField("cluster") else None
    return d


def cluster_dict(c: fabric_pb2.ClusterStatus) -> dict[str, Any]:
    """The cluster's status; ``masters`` as {dpid (text): instance}."""
    d = message_dict(c)
    d["masters"] = {str(m.dpid): m.node_id for m in c.masters}
    return d


def policy_dict(p: fabric_pb2.QosPolicy) -> dict[str, Any]:
    """A policy as data in the config file's shape (what ``fabricctl qos set`` accepts)."""
    classes = []
    for c in p.classes:
        match = {k: [int(x) if k in ("dscp", "with_dscp") or str(x).isdigit() else x
                     for x in getattr(c.match, k)]
                 for k in ("udp_dst", "tcp_dst", "tcp_src", "dscp", "with_dscp")
                 if len(getattr(c.match, k))}
        classes.append({"name": c.name, "dscp": c.dscp, "queue": c.queue,
                        "scheduling": c.scheduling, "share": round(c.share, 6), "match": match})
    return {"enabled": p.enabled, "classes": classes,
            "trust_unclassified_dscp": p.trust_unclassified_dscp,
            "best_effort_share": round(p.best_effort_share, 6)}


def qos_stats_list(st: fabric_pb2.QosStats) -> list[dict[str, Any]]:
    return [message_dict(q) for q in st.queues]


def links_list(ll: fabric_pb2.LinkList) -> list[dict[str, Any]]:
    return [message_dict(lk) for lk in ll.links]


def flow_match(src_ip: str, dst_ip: str, protocol: str, src_port: int = 0,
               dst_port: int = 0) -> fabric_pb2.FlowMatch:
    return fabric_pb2.FlowMatch(src_ip=src_ip, dst_ip=dst_ip, protocol=protocol,
                                src_port=src_port, dst_port=dst_port)


def flow_dict(f: fabric_pb2.FlowStatus) -> dict[str, Any]:
    """A flow with its 5-tuple (``flow``) flattened in."""
    d = message_dict(f)
    return {**d.pop("flow"), **d}


def event_dict(e: fabric_pb2.Event) -> dict[str, Any]:
    return message_dict(e)


def job_spec_message(d: dict[str, Any]) -> fabric_pb2.JobSpec:
    """A job as a scheduler's file has it (``JobSpec.to_dict`` shape) for the API."""
    pairs = [{"src": a, "dst": b} for a, b in d.get("pairs", [])]
    return ParseDict({**d, "pairs": pairs}, fabric_pb2.JobSpec())


def job_dict(j: fabric_pb2.JobStatus) -> dict[str, Any]:
    """A job with its spec flattened in (its rank pairs as ``pairs_given``, [src, dst])."""
    d = message_dict(j)
    spec = d.pop("spec")
    given = [[p["src"], p["dst"]] for p in spec.pop("pairs")]
    return {**spec, "pairs_given": given, **d}
