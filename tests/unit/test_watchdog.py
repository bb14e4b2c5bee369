"""The watchdog over real gRPC: health follows the fabric app's heartbeat."""

from __future__ import annotations

import threading
import time

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from apps.api.event_bus import EventBus
from apps.api.server import ControllerHandle, start_api_server
from controller.config import load_config
from controller.core.events import FabricEvent
from controller.core.snapshot import Published, TopologySnapshot
from mininet_topos.controller_proc import free_port

# (wall-clock windows of a tenth of a second: off the idle lane, scripts/run_tests.py)
pytestmark = pytest.mark.serial


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
    handle = ControllerHandle(published=lambda: Published(TopologySnapshot.empty()),
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


def test_watchers_are_capped_and_never_starve_unary_calls(tmp_path):
    from aifabric.v1 import fabric_pb2, fabric_pb2_grpc

    addr = f"127.0.0.1:{free_port()}"
    tokens = [{"name": "a", "role": "reader", "token": "a" * 20},
              {"name": "b", "role": "admin", "token": "b" * 20}]
    config = load_config(None, {"api.address": addr, "api.tokens": tokens,
                                "api.max_watchers": 4, "api.max_watchers_per_token": 3})
    bus = EventBus()
    handle = ControllerHandle(published=lambda: Published(TopologySnapshot.empty()),
                              event_bus=lambda: bus)
    server = start_api_server(config, handle)
    channel = grpc.insecure_channel(addr)
    stub = fabric_pb2_grpc.FabricStub(channel)

    def watch(token: str, replay: bool = False):
        return stub.WatchEvents(fabric_pb2.WatchEventsRequest(replay=replay), timeout=10,
                                metadata=[("authorization", f"Bearer {token}")])

    def refused(call) -> str | None:
        try:
            next(call)
        except grpc.RpcError as exc:
            return exc.code().name if exc.code() != grpc.StatusCode.DEADLINE_EXCEEDED \
                else None
        return None

    try:
        held = [watch("a" * 20) for _ in range(3)]
        time.sleep(0.5)  # all three are being served
        fourth = watch("a" * 20)  # over token a's cap
        assert refused(fourth) == "RESOURCE_EXHAUSTED"
        held.append(watch("b" * 20))
        time.sleep(0.3)
        fifth = watch("b" * 20)  # over the total cap
        assert refused(fifth) == "RESOURCE_EXHAUSTED"
        # unary calls and health still answer at once
        t0 = time.monotonic()
        for _ in range(20):
            stub.GetStatus(fabric_pb2.GetStatusRequest(), timeout=2,
                           metadata=[("authorization", "Bearer " + "a" * 20)])
        assert health(addr) == "SERVING"
        assert time.monotonic() - t0 < 2.0
        # a watcher that leaves frees its slot (the server notices within a poll, 1 s)
        held.pop().cancel()
        bus.publish([FabricEvent("drain", "x")], time.time())
        deadline = time.monotonic() + 3.0
        while True:
            again = watch("b" * 20, replay=True)
            try:
                assert next(again).kind == "drain"
                break
            except grpc.RpcError as exc:
                assert exc.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
                assert time.monotonic() < deadline, "the slot was never freed"
                time.sleep(0.2)
        again.cancel()
        for call in held:
            call.cancel()
    finally:
        channel.close()
        server.stop(0)


def test_a_loop_stalled_past_the_exit_limit_ends_the_process_with_its_reason():
    from apps.guard import Heartbeat, StallExit

    clock = [100.0]
    beat = Heartbeat(clock=lambda: clock[0])
    ended: list[str] = []
    watchdog = StallExit(lambda: beat, 30.0, ended.append, poll=0.01)
    assert watchdog.check() is None
    clock[0] += 29.0
    assert watchdog.check() is None
    beat.beat()
    clock[0] += 29.5  # beating again: the stall is counted from the last beat
    assert watchdog.check() is None
    clock[0] += 1.0
    runner = threading.Thread(target=watchdog.run, daemon=True)
    runner.start()
    runner.join(5)
    assert not runner.is_alive()
    assert len(ended) == 1 and "no tick for 30.5 s" in ended[0], ended


def test_the_exit_watchdog_waits_for_the_app_and_survives_a_failing_read():
    from apps.guard import StallExit

    reads = iter([None, RuntimeError("not yet"), None])

    def heartbeat():
        got = next(reads, None)
        if isinstance(got, Exception):
            raise got
        return got

    stop = threading.Event()
    ended: list[str] = []
    runner = threading.Thread(target=StallExit(heartbeat, 1.0, ended.append, poll=0.01).run,
                              args=(stop,), daemon=True)
    runner.start()
    time.sleep(0.2)
    assert runner.is_alive() and ended == []
    stop.set()
    runner.join(5)
    assert not runner.is_alive()


def test_fabricd_ends_with_status_3_and_says_why_when_its_loop_stalls(monkeypatch, caplog):
    from apps.guard import Heartbeat
    from controller import daemon

    exited = threading.Event()
    codes: list[int] = []

    def fake_exit(code: int) -> None:
        codes.append(code)
        exited.set()  # (the watchdog's thread then returns)

    monkeypatch.setattr(daemon.os, "_exit", fake_exit)
    monkeypatch.setattr(daemon.logging, "shutdown", lambda: None)

    class App:
        heartbeat = Heartbeat()

    App.heartbeat.last -= 10.0  # its last tick was 10 s ago
    with caplog.at_level("CRITICAL", logger="aifabric"):
        daemon.start_stall_exit(2.0, lambda: App)
        assert exited.wait(5)
    assert codes == [daemon.EXIT_STALLED] == [3]
    assert any("processed no tick for 10" in r.getMessage() and "fabricd ends (exit 3)" in
               r.getMessage() for r in caplog.records), caplog.text
