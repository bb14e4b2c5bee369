"""The OpenFlow channel over TLS (config ``openflow.tls``), on Mininet: Open vSwitch's
``ssl:`` targets with a certificate signed by the switches' CA reach fabricd and carry
the fabric; a plain TCP session, a TLS client without a certificate and one whose
certificate another CA signed are refused at the handshake, and counted."""

from __future__ import annotations

import json
import socket
import ssl
import subprocess
import time

import pytest

from mininet_topos.certs import make_test_certs
from mininet_topos.discovery import wait_discovered
from mininet_topos.network import fabric_network, reachability, wait_until
from mininet_topos.spine_leaf import FabricSpec
from tests.e2e.conftest import scrape

pytestmark = pytest.mark.mininet  # (scripts/run_tests.py: the serial lane)

SPEC = FabricSpec(spines=2, leaves=2, hosts_per_leaf=1, bw=10)
HELLO = bytes.fromhex("0400000800000001")  # OpenFlow 1.3 HELLO


def refused(port: int, wrap=None) -> bool:
    """Whether fabricd ends a session opened this way without a word of OpenFlow."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        try:
            sock = wrap(raw) if wrap else raw
            sock.sendall(HELLO)
            return sock.recv(64) == b""
        except (ssl.SSLError, ConnectionError, TimeoutError):
            return True


def tls_client(cert: tuple | None):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    if cert:
        ctx.load_cert_chain(*cert)
    return lambda raw: ctx.wrap_socket(raw)


def test_switches_connect_over_tls_and_nothing_else_does(controller_factory, tmp_path):
    (tmp_path / "ours").mkdir()
    (tmp_path / "other").mkdir()
    ours, other = make_test_certs(tmp_path / "ours"), make_test_certs(tmp_path / "other")
    cfg = tmp_path / "fabricd.yaml"
    cfg.write_text(json.dumps({"openflow": {"tls": {
        "cert": str(ours["server.pem"]), "key": str(ours["server.key"]),
        "ca": str(ours["ca.pem"])}}}))
    ctl = controller_factory("--no-qos", "--config", str(cfg))
    # Open vSwitch's own key and certificate (signed by the CA fabricd trusts)
    subprocess.run(["ovs-vsctl", "set-ssl", str(ours["client.key"]), str(ours["client.pem"]),
                    str(ours["ca.pem"])], check=True)
    try:
        with fabric_network(SPEC, f"ssl:127.0.0.1:{ctl.of_port}",
                            before_start=ctl.wait_serving) as net:
            with ctl.client() as c:
                wait_discovered(c, SPEC, timeout=30)
            assert all(reachability(net, count=1, timeout=2).values())
            port = ctl.of_port
            assert refused(port)  # plain TCP
            assert refused(port, tls_client(None))  # TLS, no certificate
            assert refused(port, tls_client((other["client.pem"], other["client.key"])))
            time.sleep(0.5)
            with ctl.client() as c:  # none of them became a switch
                assert len([s for s in c.topology().switches if s.connected]) == 4
            assert wait_until(lambda: scrape(ctl)["aifabric_openflow_tls_failures"]
                              .samples[0].value >= 3, 5)  # (published at a tick)
    finally:
        subprocess.run(["ovs-vsctl", "del-ssl"], check=False)
    log = ctl.log_path.read_text()
    assert "OpenFlow over TLS" in log and "TLS handshake failed" in log
