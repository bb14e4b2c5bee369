"""The gRPC management API: ``aifabric.v1.Fabric`` plus health checking and reflection.

Handlers run on gRPC's own threads. They only read immutable snapshots published by
the fabric app (and, for mutations in later API versions, submit commands to it);
they never touch os-ken or a datapath.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent import futures
from dataclasses import dataclass

import grpc
from aifabric.v1 import fabric_pb2, fabric_pb2_grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from controller import __version__
from controller.config import FabricdConfig
from controller.snapshot import TopologySnapshot

log = logging.getLogger("aifabric.api")

SERVICE_NAME = fabric_pb2.DESCRIPTOR.services_by_name["Fabric"].full_name


@dataclass
class ControllerHandle:
    """How the API reaches the controller: a snapshot reader and counters, both
    callables that return None until the fabric app is running."""

    snapshot: Callable[[], TopologySnapshot | None]
    counters: Callable[[], dict[str, int] | None]


def topology_message(snap: TopologySnapshot) -> fabric_pb2.Topology:
    return fabric_pb2.Topology(
        switches=[
            fabric_pb2.Switch(
                dpid=s.dpid, role=s.role, connected=s.connected,
                connected_since=s.connected_since, ports=s.ports,
            )
            for s in snap.switches
        ],
        links=[
            fabric_pb2.Link(
                src_dpid=lk.src_dpid, src_port=lk.src_port, dst_dpid=lk.dst_dpid,
                dst_port=lk.dst_port, discovered_at=lk.discovered_at,
            )
            for lk in snap.links
        ],
        hosts=[
            fabric_pb2.Host(
                mac=h.mac, ip=h.ip, dpid=h.dpid, port=h.port, first_seen=h.first_seen,
                recovered=h.recovered,
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

    def GetTopology(self, request, context):
        snap = self.handle.snapshot()
        if snap is None:
            context.abort(grpc.StatusCode.UNAVAILABLE, "controller is still starting")
        return topology_message(snap)

    def GetStatus(self, request, context):
        return fabric_pb2.Status(
            version=__version__,
            started_at=self.started_at,
            openflow_port=self.config.openflow.port,
            qos_enabled=self.config.qos.enabled,
            te_enabled=self.config.te.enabled,
            link_speed_mbps=self.config.link_speed_mbps or 0.0,
            counters=self.handle.counters() or {},
        )


def start_api_server(config: FabricdConfig, handle: ControllerHandle) -> grpc.Server:
    """Bind and start the API; raises RuntimeError with a reason if the address is unusable."""
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=16, thread_name_prefix="aifabric-api"),
        options=[("grpc.max_receive_message_length", 4 * 1024 * 1024)],
    )
    fabric_pb2_grpc.add_FabricServicer_to_server(
        FabricServicer(handle, config, time.time()), server
    )
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        (SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME), server
    )
    address = config.api.address
    try:
        port = server.add_insecure_port(address)
    except RuntimeError as exc:
        raise RuntimeError(f"cannot listen on {address}: {exc}") from None
    if port == 0:
        raise RuntimeError(f"cannot listen on {address} (address in use?)")
    server.start()
    for name in ("", SERVICE_NAME):
        health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    log.info("management API listening on %s", address)
    return server
