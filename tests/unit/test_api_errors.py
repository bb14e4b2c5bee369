"""The API's error contract over real gRPC: each domain error (controller/core/errors.py)
gives its status code and its message; any other exception escaping a command or a
handler (a defect) gives INTERNAL with a generic message and a logged traceback, never
NOT_FOUND or FAILED_PRECONDITION; the real commands' refusals from the core keep their
codes."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import grpc
import pytest

from aifabric.v1 import fabric_pb2, fabric_pb2_grpc
from apps.api.event_bus import EventBus
from apps.api.fabric_commands import FabricCommands, NotAnswered
from apps.api.server import INTERNAL_MESSAGE, ControllerHandle, start_api_server
from apps.commands import Commands
from controller.config import load_config
from controller.core.errors import (
    Aborted,
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    ResourceExhausted,
    Unavailable,
)
from controller.core.intent.kinds import Intent, IntentError
from controller.core.model.job_spec import JobError, JobRefused
from controller.core.settings import CoreSettings
from controller.core.snapshot import Published, TopologySnapshot
from controller.core.te import TeSettings
from controller.core.te.job_book import JobExists
from mininet_topos.controller_proc import free_port
from tests.unit.fakefabric import FakeFabric

ADMIN = "a" * 24


class Raising:
    """Commands whose every method raises ``error`` (the test sets it)."""

    def __init__(self) -> None:
        self.error: BaseException = KeyError(42)

    def __getattr__(self, name: str) -> Callable[..., Any]:
        def raising(*args, **kwargs):
            raise self.error
        return raising


@contextmanager
def serve(tmp_path, commands: Any, published: Published | None = None,
          **handle: Any) -> Iterator[fabric_pb2_grpc.FabricStub]:
    """A real API server whose commands run at once on ``commands``."""
    addr = f"127.0.0.1:{free_port()}"
    config = load_config(None, {"api.address": addr, "api.audit_log": str(tmp_path / "audit"),
                                "api.tokens": [{"name": "t", "role": "admin", "token": ADMIN}]})
    pub = published or Published(TopologySnapshot.empty())
    fields: dict[str, Any] = {
        "call": lambda command, timeout=10.0, must_run=False: command(commands),
        "write_intent": lambda kind, value, expect: (True, Intent(kind, expect + 1, value)),
        **handle}
    server = start_api_server(config, ControllerHandle(lambda: pub, **fields))
    channel = grpc.insecure_channel(addr)
    stub = fabric_pb2_grpc.FabricStub(channel)
    stub.address = addr  # (for clients of their own)
    try:
        yield stub
    finally:
        channel.close()
        server.stop(0)


@pytest.fixture
def raising(tmp_path):
    commands = Raising()
    with serve(tmp_path, commands) as stub:
        yield stub, commands


def status(call: Callable[..., Any], request: Any) -> tuple[grpc.StatusCode, str]:
    try:
        call(request, timeout=5, metadata=[("authorization", f"Bearer {ADMIN}")])
    except grpc.RpcError as exc:
        return exc.code(), exc.details()
    return grpc.StatusCode.OK, ""


DOMAIN = [
    (NotFound("no switch with dpid 7"), grpc.StatusCode.NOT_FOUND),
    (InvalidArgument("members[2]: bad"), grpc.StatusCode.INVALID_ARGUMENT),
    (JobError("members[2]", "duplicate member 10.0.0.1"), grpc.StatusCode.INVALID_ARGUMENT),
    (JobRefused("members[2]", "no host with address 10.0.0.99 is known"),
     grpc.StatusCode.FAILED_PRECONDITION),
    (ResourceExhausted("64 jobs are registered, the limit"),
     grpc.StatusCode.RESOURCE_EXHAUSTED),
    (FailedPrecondition("draining would leave leaf 1 without a path to leaf 2"),
     grpc.StatusCode.FAILED_PRECONDITION),
    (IntentError("pins: not a pin list"), grpc.StatusCode.FAILED_PRECONDITION),
    (AlreadyExists("it is there"), grpc.StatusCode.ALREADY_EXISTS),
    (JobExists("job 'j' is registered already (delete it first)"),
     grpc.StatusCode.ALREADY_EXISTS),
    (Unavailable("etcd unreachable"), grpc.StatusCode.UNAVAILABLE),
    (NotAnswered("not started within 10 s: not applied"), grpc.StatusCode.UNAVAILABLE),
    (Aborted("changed 3 times"), grpc.StatusCode.ABORTED),
]


@pytest.mark.parametrize("error,code", DOMAIN, ids=[type(e).__name__ for e, _ in DOMAIN])
def test_each_domain_error_gives_its_code_and_message(raising, error, code):
    stub, commands = raising
    commands.error = error
    got = status(stub.GetSwitchEntries, fabric_pb2.GetSwitchEntriesRequest(dpid=7))
    assert got == (code, str(error))
    # the same through a mutation (the change is computed by a command)
    got = status(stub.DrainSwitch, fabric_pb2.DrainSwitchRequest(dpid=7))
    assert got == (code, str(error))


@pytest.mark.parametrize("error", [KeyError("dpid"), LookupError("oops"), ValueError("x"),
                                   RuntimeError("y"), TypeError("z"), TimeoutError("t"),
                                   AttributeError("a")])
def test_a_stray_exception_in_a_command_is_internal_and_logged(raising, caplog, error,
                                                                tmp_path):
    stub, commands = raising
    commands.error = error
    with caplog.at_level(logging.ERROR, logger="aifabric.api"):
        got = status(stub.GetSwitchEntries, fabric_pb2.GetSwitchEntriesRequest(dpid=7))
        assert got == (grpc.StatusCode.INTERNAL, INTERNAL_MESSAGE)
        got = status(stub.DrainSwitch, fabric_pb2.DrainSwitchRequest(dpid=7))
        assert got == (grpc.StatusCode.INTERNAL, INTERNAL_MESSAGE)
    failed = [r for r in caplog.records if "failed" in r.getMessage()]
    assert [r.getMessage().split()[0] for r in failed] == ["GetSwitchEntries", "DrainSwitch"]
    assert all(r.exc_info and r.exc_info[0] is type(error) for r in failed)
    audit = [json.loads(line) for line in (tmp_path / "audit").read_text().splitlines()]
    assert [a["result"] for a in audit if a["method"] == "DrainSwitch"] == ["INTERNAL"]


def test_a_stray_exception_in_a_read_or_a_stream_is_internal(tmp_path):
    broken = Published(TopologySnapshot(("not a switch",), (), (), (), 0.0))  # type: ignore
    bus = EventBus()
    bus.wait = lambda seq, timeout: (_ for _ in ()).throw(KeyError(seq))  # type: ignore
    with serve(tmp_path, Raising(), broken, event_bus=lambda: bus) as stub:
        got = status(stub.GetTopology, fabric_pb2.GetTopologyRequest())
        assert got == (grpc.StatusCode.INTERNAL, INTERNAL_MESSAGE)
        got = status(lambda r, **kw: list(stub.WatchEvents(r, **kw)),
                     fabric_pb2.WatchEventsRequest())
        assert got == (grpc.StatusCode.INTERNAL, INTERNAL_MESSAGE)
        # a stream's own refusals keep their codes
        got = status(lambda r, **kw: list(stub.WatchEvents(r, **kw)),
                     fabric_pb2.WatchEventsRequest(kinds=["nope"]))
        assert got[0] == grpc.StatusCode.INVALID_ARGUMENT and "unknown kind 'nope'" in got[1]


def test_the_controller_not_answering_is_unavailable(tmp_path):
    with serve(tmp_path, Raising(), call=ControllerHandle(lambda: None).call) as stub:
        got = status(stub.GetSwitchEntries, fabric_pb2.GetSwitchEntriesRequest(dpid=7))
        assert got == (grpc.StatusCode.UNAVAILABLE,
                       "the controller did not answer: the controller is still starting")


def test_the_commands_implement_the_whole_interface():
    assert FabricCommands.__abstractmethods__  # (the interface is not empty)
    assert not Commands.__abstractmethods__


def real_commands() -> Commands:
    fab = FakeFabric(settings=CoreSettings(te=TeSettings()))
    fab.connect_all()
    return Commands(fab.core, None, lambda *a, **k: None,  # type: ignore[arg-type]
                    lambda **k: None, lambda: Published(TopologySnapshot.empty()),
                    lambda now: None, lambda: fab.now)


def test_the_cores_refusals_keep_their_codes(tmp_path):
    with serve(tmp_path, real_commands()) as stub:
        assert status(stub.DrainSwitch, fabric_pb2.DrainSwitchRequest(dpid=2001)) == (
            grpc.StatusCode.FAILED_PRECONDITION,
            "switch 2001 is a leaf: its hosts have no other path")
        assert status(stub.DrainSwitch, fabric_pb2.DrainSwitchRequest(dpid=42)) == (
            grpc.StatusCode.NOT_FOUND, "no switch with dpid 42")
        assert status(stub.DrainLink, fabric_pb2.DrainLinkRequest(dpid=2001, port=9)) == (
            grpc.StatusCode.NOT_FOUND, "no link at 2001:9")
        assert status(stub.DrainSwitch, fabric_pb2.DrainSwitchRequest(dpid=1001)) == (
            grpc.StatusCode.OK, "")
        assert status(stub.DeleteJob, fabric_pb2.DeleteJobRequest(id="nope")) == (
            grpc.StatusCode.NOT_FOUND, "no job 'nope'")
        flow = fabric_pb2.FlowMatch(src_ip="10.0.0.1", dst_ip="10.0.0.99", protocol="udp")
        assert status(stub.PinFlow, fabric_pb2.PinFlowRequest(flow=flow, spine=4242)) == (
            grpc.StatusCode.NOT_FOUND, "no switch with dpid 4242")
        assert status(stub.PinFlow, fabric_pb2.PinFlowRequest(flow=flow, spine=1001)) == (
            grpc.StatusCode.NOT_FOUND, "no host with address 10.0.0.1")
        assert status(stub.UnpinFlow, fabric_pb2.UnpinFlowRequest(flow=flow)) == (
            grpc.StatusCode.NOT_FOUND, "no operator pin for udp 10.0.0.1:* -> 10.0.0.99:*")
        job = fabric_pb2.JobSpec(id="j", members=["10.0.0.1", "10.0.0.2"], pattern="ring")
        code, message = status(stub.RegisterJob, job)
        assert code == grpc.StatusCode.FAILED_PRECONDITION and message.startswith("members[0]")



def test_fabricctl_tells_a_controller_refusing_from_no_controller(tmp_path, capsys):
    """UNAVAILABLE from the controller itself (etcd down) is its message, not "cannot
    reach": the server marks every status it ends a call with; no server is "cannot
    reach"."""
    from controller.cli import fabricctl

    commands = Raising()
    commands.error = Unavailable("etcd unreachable: drain not stored")
    with serve(tmp_path, commands) as stub:
        argv = ["--server", stub.address, "--token", ADMIN, "drain", "switch", "1001"]
        assert fabricctl.main(argv) == 1
        err = capsys.readouterr().err
        assert err == "fabricctl: UNAVAILABLE: etcd unreachable: drain not stored\n", err
        commands.error = KeyError(1)  # (INTERNAL: answered too)
        assert fabricctl.main(argv) == 1
        assert capsys.readouterr().err == f"fabricctl: INTERNAL: {INTERNAL_MESSAGE}\n"
    nobody = f"127.0.0.1:{free_port()}"
    assert fabricctl.main(["--server", nobody, "--token", ADMIN, "--timeout", "1",
                           "topology"]) == 1
    err = capsys.readouterr().err
    assert err == f"fabricctl: cannot reach the controller at {nobody} (unavailable)\n", err
