"""The OpenFlow channel's TLS socket (apps/oskentls.py): one session read and written by
two threads at once, as os-ken's receive and send threads do, carries both ways
intact; a broken session ends the reader instead of making it spin."""

from __future__ import annotations

import os
import socket
import ssl
import threading

import pytest

from apps.oskentls import SerialTls, handshake
from mininet_topos.certs import make_test_certs


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    return make_test_certs(tmp_path_factory.mktemp("certs"))


def tls_pair(certs) -> tuple[SerialTls, ssl.SSLSocket]:
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(certs["server.pem"], certs["server.key"])
    server_ctx.verify_mode = ssl.CERT_REQUIRED
    server_ctx.load_verify_locations(certs["ca.pem"])
    client_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client_ctx.load_verify_locations(certs["ca.pem"])
    client_ctx.check_hostname = False
    client_ctx.load_cert_chain(certs["client.pem"], certs["client.key"])
    a, b = socket.socketpair()
    got: list = []
    t = threading.Thread(target=lambda: got.append(handshake(server_ctx, a, 5.0)))
    t.start()
    client = client_ctx.wrap_socket(b)
    t.join(10)
    server = got[0]
    server.settimeout(5.0)
    return server, client


def read_exactly(recv, n: int) -> bytes:
    out = bytearray()
    while len(out) < n:
        chunk = recv(min(65536, n - len(out)))
        if not chunk:
            break
        out += chunk
    return bytes(out)


def test_a_reader_and_a_writer_at_once_carry_both_ways_intact(certs):
    server, client = tls_pair(certs)
    up, down = os.urandom(2_000_000), os.urandom(2_000_000)
    got: dict[str, bytes] = {}
    threads = [
        threading.Thread(target=lambda: got.__setitem__("server", read_exactly(
            server.recv, len(up)))),  # os-ken's receive thread
        threading.Thread(target=lambda: server.sendall(down)),  # its send thread
        threading.Thread(target=lambda: client.sendall(up)),
        threading.Thread(target=lambda: got.__setitem__("client", read_exactly(
            client.recv, len(down)))),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert got["server"] == up and got["client"] == down
    client.close()
    server.close()


def ends(server: SerialTls) -> bool:
    """Whether reading ends as os-ken's receive loop needs: an end of stream, or an
    OSError that is not an ``ssl.SSLError`` (which the loop retries forever)."""
    try:
        while server.recv(100):
            pass
        return True
    except ssl.SSLError:
        return False
    except OSError:
        return True


def test_a_session_shut_down_or_closed_by_the_peer_ends_the_reader(certs):
    server, client = tls_pair(certs)
    client.close()  # the peer goes away
    assert ends(server)
    server, client = tls_pair(certs)
    server.shutdown(socket.SHUT_RDWR)  # what oskenfix.end_session does
    assert ends(server)
    client.close()
