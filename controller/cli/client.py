"""A small client for the aifabric management API (used by fabricctl, tests and bench)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from aifabric.v1 import fabric_pb2, fabric_pb2_grpc
from controller.core.constants import DEFAULT_TOKEN_FILE

DEFAULT_SERVER = "127.0.0.1:50051"


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


def topology_dict(topo: fabric_pb2.Topology) -> dict[str, Any]:
    """The topology as plain JSON-able data with the API's field names (dpids as ints)."""
    return {
        "switches": [
            {"dpid": s.dpid, "role": s.role, "connected": s.connected,
             "connected_since": s.connected_since, "ports": s.ports, "drained": s.drained}
            for s in topo.switches
        ],
        "links": [
            {"src_dpid": lk.src_dpid, "src_port": lk.src_port, "dst_dpid": lk.dst_dpid,
             "dst_port": lk.dst_port, "discovered_at": lk.discovered_at,
             "drained": lk.drained}
            for lk in topo.links
        ],
        "hosts": [
            {"mac": h.mac, "ip": h.ip, "dpid": h.dpid, "port": h.port,
             "first_seen": h.first_seen, "recovered": h.recovered, "state": h.state,
             "last_seen": h.last_seen}
            for h in topo.hosts
        ],
        "warnings": list(topo.warnings),
    }



def status_dict(st: fabric_pb2.Status) -> dict[str, Any]:
    return {
        "version": st.version,
        "started_at": st.started_at,
        "openflow_port": st.openflow_port,
        "qos_enabled": st.qos_enabled,
        "te_enabled": st.te_enabled,
        "link_speed_mbps": st.link_speed_mbps,
        "counters": dict(sorted(st.counters.items())),
        "cluster": cluster_dict(st.cluster) if st.HasField("cluster") else None,
    }


def cluster_dict(c: fabric_pb2.ClusterStatus) -> dict[str, Any]:
    return {
        "name": c.name,
        "node_id": c.node_id,
        "members": list(c.members),
        "masters": {str(m.dpid): m.node_id for m in c.masters},
        "mastered_here": list(c.mastered_here),
        "etcd_ok": c.etcd_ok,
        "etcd_error": c.etcd_error,
        "checked_at": c.checked_at,
        "te_leader": c.te_leader,
    }


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
    return [{"dpid": q.dpid, "port": q.port, "port_name": q.port_name, "queue": q.queue,
             "tx_bytes": q.tx_bytes, "tx_packets": q.tx_packets, "tx_errors": q.tx_errors}
            for q in st.queues]


def links_list(ll: fabric_pb2.LinkList) -> list[dict[str, Any]]:
    return [{"src_dpid": lk.src_dpid, "src_port": lk.src_port, "dst_dpid": lk.dst_dpid,
             "dst_port": lk.dst_port, "rate_bps": round(lk.rate_bps, 1),
             "utilization": round(lk.utilization, 4),
             "drops_per_second": round(lk.drops_per_second, 3),
             "errors_per_second": round(lk.errors_per_second, 3)} for lk in ll.links]


def flow_match(src_ip: str, dst_ip: str, protocol: str, src_port: int = 0,
               dst_port: int = 0) -> fabric_pb2.FlowMatch:
    return fabric_pb2.FlowMatch(src_ip=src_ip, dst_ip=dst_ip, protocol=protocol,
                                src_port=src_port, dst_port=dst_port)


def flow_dict(f: fabric_pb2.FlowStatus) -> dict[str, Any]:
    return {"src_ip": f.flow.src_ip, "dst_ip": f.flow.dst_ip, "protocol": f.flow.protocol,
            "src_port": f.flow.src_port, "dst_port": f.flow.dst_port,
            "src_leaf": f.src_leaf, "dst_leaf": f.dst_leaf, "spine": f.spine,
            "uplink_port": f.uplink_port, "rate_bps": round(f.rate_bps, 1),
            "demand_bps": round(f.demand_bps, 1), "traffic_class": f.traffic_class,
            "priority": f.priority, "large": f.large, "pinned_by": f.pinned_by,
            "age_seconds": round(f.age_seconds, 1), "moves": f.moves}


def event_dict(e: fabric_pb2.Event) -> dict[str, Any]:
    return {"seq": e.seq, "time": e.time, "kind": e.kind, "message": e.message,
            "fields": dict(e.fields)}


def job_spec_message(d: dict[str, Any]) -> fabric_pb2.JobSpec:
    """A job as a scheduler's file has it (``JobSpec.to_dict`` shape) for the API."""
    return fabric_pb2.JobSpec(
        id=d["id"], members=d["members"], pattern=d["pattern"],
        pairs=[fabric_pb2.RankPair(src=a, dst=b) for a, b in d.get("pairs", [])],
        transport=d.get("transport", ""), traffic_class=d.get("traffic_class", ""),
        priority=d.get("priority", 0))


def job_dict(j: fabric_pb2.JobStatus) -> dict[str, Any]:
    sp = j.spec
    return {
        "id": sp.id, "members": list(sp.members), "pattern": sp.pattern,
        "pairs_given": [[p.src, p.dst] for p in sp.pairs], "transport": sp.transport,
        "traffic_class": sp.traffic_class, "priority": sp.priority,
        "registered_at": j.registered_at, "state": j.state,
        "worst_link": j.worst_link, "worst_link_pairs": j.worst_link_pairs,
        "worst_link_utilization": j.worst_link_utilization,
        "pairs": [{"src_rank": p.src_rank, "dst_rank": p.dst_rank, "src_ip": p.src_ip,
                   "dst_ip": p.dst_ip, "src_leaf": p.src_leaf, "dst_leaf": p.dst_leaf,
                   "spine": p.spine, "uplink_port": p.uplink_port, "step": p.step,
                   "state": p.state, "bytes": p.bytes, "rate_bps": p.rate_bps}
                  for p in j.pairs],
    }
