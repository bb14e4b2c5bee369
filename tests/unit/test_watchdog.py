"""The watchdog over real gRPC: health follows the fabric app's heartbeat."""

from __future__ import annotations

import socket
import time

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from apps.api_server import ControllerHandle, start_api_server
from apps.event_bus import EventBus
from controller.config import load_config
from controller.snapshot import TopologySnapshot


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def health(addr: str) -> str:
    with grpc.insecure_channel(addr) as ch:
        resp = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(),
                                                    timeout=2.0)
    return health_pb2.HealthCheckResponse.ServingStatus.Name(resp.status)


def wait_for(addr: str, state: str, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if health(addr) == state:
            return True
        time.sleep(0.1)
    return False


def test_health_turns_not_serving_while_the_loop_is_stalled_and_back(tmp_path):
    addr = f"127.0.0.1:{free_port()}"
    config = load_config(None, {"api.address": addr,
                                "api.token_file": str(tmp_path / "token")})
    stall: list[str | None] = [None]
    bus = EventBus()
    handle = ControllerHandle(snapshot=TopologySnapshot.empty, counters=dict,
                              event_bus=lambda: bus, stalled=lambda: stall[0])
    server = start_api_server(config, handle)
    try:
        assert wait_for(addr, "SERVING")
        stall[0] = "no tick for 6.0 s"
        assert wait_for(addr, "NOT_SERVING")
        events = bus.wait(0, 0.1)
        assert [e.event.kind for e in events] == ["watchdog"]
        assert "no tick" in events[0].event.message
        stall[0] = None
        assert wait_for(addr, "SERVING")
    finally:
        server.stop(0)
