"""The API's security over real TCP and TLS against a running fabricd (no fabric needed):
tokens and roles, the audit log, TLS with and without client certificates, the rule
about non-loopback addresses, and the generated local token."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time

import grpc
import pytest

from aifabric.v1 import fabric_pb2
from controller.cli.client import FabricClient, flow_match
from mininet_topos.certs import make_test_certs
from mininet_topos.controller_proc import FabricdProcess, free_port

FABRICD = [sys.executable, "-m", "controller.daemon"]
FABRICCTL = [sys.executable, "-m", "controller.cli.fabricctl"]
ADMIN = "admin-token-0123456789abcdef"
READER = "reader-token-0123456789abcdef"


@pytest.fixture
def secured(tmp_path, controller_factory):
    cfg = tmp_path / "fabricd.yaml"
    cfg.write_text(
        "api:\n  tokens:\n"
        f"    - {{name: alice, role: admin, token: {ADMIN}}}\n"
        f"    - {{name: bob, role: reader, token: {READER}}}\n"
        f"  audit_log: {tmp_path / 'audit.log'}\n")
    ctl = controller_factory("--config", str(cfg), "--no-qos")
    ctl.wait_serving()
    return ctl, tmp_path / "audit.log"


def answered_empty(topology: fabric_pb2.Topology) -> bool:
    """A real answer about the empty fabric this daemon sees: nothing in it, stamped now."""
    return (not topology.switches and not topology.links and not topology.hosts
            and abs(topology.generated_at - time.time()) < 60)


def code_of(fn) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as err:
        fn()
    return err.value.code()


def test_tokens_roles_and_the_audit_log(secured):
    ctl, audit = secured
    anon = FabricClient(ctl.grpc_addr, token="")
    wrong = FabricClient(ctl.grpc_addr, token="not-a-token-at-all-xxxx")
    reader = FabricClient(ctl.grpc_addr, token=READER)
    admin = FabricClient(ctl.grpc_addr, token=ADMIN)
    try:
        assert anon.health() == "SERVING"  # probes need no token
        assert code_of(anon.topology) == grpc.StatusCode.UNAUTHENTICATED
        assert code_of(wrong.topology) == grpc.StatusCode.UNAUTHENTICATED
        assert code_of(lambda: anon.drain_switch(1001)) == grpc.StatusCode.UNAUTHENTICATED
        # reads are for readers: answered (with the empty fabric this daemon sees)
        assert answered_empty(reader.topology())
        assert reader.flows().te_enabled
        denied = [
            lambda: reader.drain_switch(1001),
            lambda: reader.undrain(1001),
            lambda: reader.drain_link(1001, 1),
            lambda: reader.pin_flow(flow_match("10.0.0.1", "10.0.0.3", "udp"), 1001),
            lambda: reader.unpin_flow(flow_match("10.0.0.1", "10.0.0.3", "udp")),
            lambda: reader.set_qos_document("profile: sonic"),
        ]
        for call in denied:
            assert code_of(call) == grpc.StatusCode.PERMISSION_DENIED
        # the admin gets through to the controller, which has no such switch
        assert code_of(lambda: admin.drain_switch(4242)) == grpc.StatusCode.NOT_FOUND
        with pytest.raises(grpc.RpcError) as err:
            list(anon.watch_events(timeout=2))
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    finally:
        for c in (anon, wrong, reader, admin):
            c.close()
    lines = [json.loads(x) for x in audit.read_text().splitlines()]
    results = [(e["who"], e["method"], e["result"]) for e in lines]
    assert ("-", "DrainSwitch", "UNAUTHENTICATED") in results
    assert ("bob", "DrainSwitch", "PERMISSION_DENIED") in results
    assert ("bob", "SetQosPolicy", "PERMISSION_DENIED") in results
    # refused calls, reads too, with the caller's address; the second refused
    # GetTopology from the same host within 10 s is held back (counted in a later line)
    assert results.count(("-", "GetTopology", "UNAUTHENTICATED")) == 1
    assert ("-", "WatchEvents", "UNAUTHENTICATED") in results
    assert all(e["peer"].startswith("ipv4:127.0.0.1") for e in lines), lines
    [done] = [e for e in lines if e["who"] == "alice"]
    assert (done["method"], done["result"]) == ("DrainSwitch", "NOT_FOUND")
    assert done["request"] == {"dpid": "4242"}
    assert "time" in done and "no switch with dpid 4242" in done["detail"]
    assert len(lines) == 3 + 6 + 1  # allowed reads are not audited


def test_fabricctl_token_flag_and_exit_codes(secured):
    ctl, _ = secured

    def run(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
        return subprocess.run([*FABRICCTL, "--server", ctl.grpc_addr, *args],
                              capture_output=True, text=True, timeout=30,
                              env={**os.environ, "AIFABRIC_TOKEN": "", **(env or {})})

    res = run("--token", READER, "drain", "switch", "1001")
    assert res.returncode == 4 and "PERMISSION_DENIED" in res.stderr and "bob" in res.stderr
    res = run("--token", "", "topology")
    assert res.returncode == 4 and "UNAUTHENTICATED" in res.stderr
    res = run("topology", env={"AIFABRIC_TOKEN": READER})
    assert res.returncode == 0
    res = run("--token", ADMIN, "drain", "switch", "4242")
    assert res.returncode == 1 and "NOT_FOUND" in res.stderr


def test_tls_with_client_certificates(tmp_path, controller_factory):
    certs = make_test_certs(tmp_path)
    ctl = controller_factory("--no-qos", "--tls-cert", str(certs["server.pem"]),
                             "--tls-key", str(certs["server.key"]),
                             "--tls-client-ca", str(certs["ca.pem"]), start=False)
    ctl.tls = {"ca": str(certs["ca.pem"]), "cert": str(certs["client.pem"]),
               "key": str(certs["client.key"])}
    ctl.start()
    with FabricClient(ctl.grpc_addr, ca=str(certs["ca.pem"]), cert=str(certs["client.pem"]),
                      key=str(certs["client.key"])) as good:
        assert good.health() == "SERVING"
        assert answered_empty(good.topology())  # answered (no fabric here)
    with FabricClient(ctl.grpc_addr, timeout=3, ca=str(certs["ca.pem"])) as no_cert:
        assert code_of(no_cert.topology) == grpc.StatusCode.UNAVAILABLE
    with FabricClient(ctl.grpc_addr, timeout=3) as plain:
        assert code_of(plain.topology) == grpc.StatusCode.UNAVAILABLE
    res = subprocess.run([*FABRICCTL, "--server", ctl.grpc_addr, "--ca", str(certs["ca.pem"]),
                          "--cert", str(certs["client.pem"]), "--key",
                          str(certs["client.key"]), "--json", "status"],
                         capture_output=True, text=True, timeout=30)
    assert res.returncode == 0 and json.loads(res.stdout)["te_enabled"] is True


def test_non_loopback_needs_tls_or_an_explicit_flag(tmp_path):
    addr = f"0.0.0.0:{free_port()}"
    res = subprocess.run([*FABRICD, "--grpc-addr", addr, "--of-port", str(free_port()),
                          "--metrics-addr", "off"], capture_output=True, text=True, timeout=30)
    assert res.returncode == 2 and "api" in res.stderr and "--insecure-api" in res.stderr
    ctl = FabricdProcess(tmp_path / "fabricd.log",
                         extra_args=["--grpc-addr", addr, "--insecure-api", "--no-qos"])
    ctl.grpc_addr = addr.replace("0.0.0.0", "127.0.0.1")
    with ctl:
        with ctl.client() as c:
            assert c.health() == "SERVING"
    assert "not loopback and has no TLS" in (tmp_path / "fabricd.log").read_text()


def test_a_local_token_is_generated_once_and_kept(tmp_path, controller_factory):
    token_file = tmp_path / "sub" / "api-token"
    ctl = controller_factory("--no-qos", "--token-file", str(token_file), start=False)
    ctl.token_file = token_file
    ctl.start()
    token = token_file.read_text().strip()
    assert len(token) >= 16 and stat.S_IMODE(token_file.stat().st_mode) == 0o600
    with FabricClient(ctl.grpc_addr, token=token) as c:
        c.topology()
    res = subprocess.run([*FABRICCTL, "--server", ctl.grpc_addr, "topology"],
                         capture_output=True, text=True, timeout=30,
                         env={**os.environ, "AIFABRIC_TOKEN": "",
                              "AIFABRIC_TOKEN_FILE": str(token_file)})
    assert res.returncode == 0, res.stderr
    ctl.stop()
    ctl.start()  # a restart keeps the token
    assert token_file.read_text().strip() == token


def test_oversized_and_malformed_requests_leave_it_serving(secured):
    ctl, _ = secured
    with FabricClient(ctl.grpc_addr, token=ADMIN) as c:
        big = fabric_pb2.SetQosPolicyRequest(document="x" * (2 * 1024 * 1024))
        with pytest.raises(grpc.RpcError) as err:
            c.stub.SetQosPolicy(big, timeout=10)
        assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        bad = fabric_pb2.PinFlowRequest(flow=fabric_pb2.FlowMatch(
            src_ip="10.0.0.1", dst_ip="10.0.0.3", protocol="sctp"), spine=1001)
        with pytest.raises(grpc.RpcError) as err:
            c.stub.PinFlow(bad, timeout=10)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "protocol" in err.value.details()
        # raw bytes that are not a protobuf message
        raw = c.raw_channel.unary_unary("/aifabric.v1.Fabric/GetTopology")
        with pytest.raises(grpc.RpcError) as err:
            raw(b"\xff\xff\xff", timeout=5, metadata=[("authorization", f"Bearer {ADMIN}")])
        assert err.value.code() in (grpc.StatusCode.INTERNAL, grpc.StatusCode.INVALID_ARGUMENT)
        assert c.health() == "SERVING" and answered_empty(c.topology())
