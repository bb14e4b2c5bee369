"""The daemon's own sections of the fabricd config (``controller/config.py`` holds the
whole and the core's sections): its listeners (OpenFlow, the API, metrics), the API's
tokens and TLS, and cluster mode (etcd). None of them reaches the pure core.
"""

from __future__ import annotations

import ipaddress
import ssl
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from controller.core.constants import DEFAULT_TOKEN_FILE


class Strict(BaseModel):
    """A section of the config: an unknown key is an error."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


def parse_host_port(value: str, any_port: bool = False) -> tuple[str, int]:
    """Split ``host:port`` (``[v6]:port`` for IPv6); raise ValueError with a reason.
    With ``any_port``, port 0 (any free port) is allowed."""
    host, sep, port = value.rpartition(":")
    if not sep or not host:
        raise ValueError(f"expected HOST:PORT, got {value!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    low = 0 if any_port else 1
    if not port.isdigit() or not low <= int(port) < 65536:
        raise ValueError(f"port must be {low}-65535, got {port!r}")
    if host not in ("localhost", "*"):
        try:
            ipaddress.ip_address(host)
        except ValueError:
            raise ValueError(f"{host!r} is not an IP address") from None
    return host, int(port)


class OpenFlowTlsConfig(Strict):
    """TLS on the OpenFlow channel: the controller's certificate, and the CA every
    switch's certificate must be signed by (a switch without one is refused)."""

    cert: str = Field(description="the controller's certificate chain (PEM)")
    key: str = Field(description="its private key (PEM)")
    ca: str = Field(description="CA of the switches' certificates (PEM)")

    @model_validator(mode="after")
    def _usable(self) -> OpenFlowTlsConfig:
        _files_exist(self, "cert", "key", "ca")
        _load_tls(self.cert, self.key, self.ca)
        return self


def _files_exist(section: BaseModel, *names: str) -> None:
    """ValueError naming the first of these settings (file paths) that is set and names
    no file."""
    for name in names:
        path = getattr(section, name)
        if path is not None and not Path(path).expanduser().is_file():
            raise ValueError(f"{name}: no such file: {path}")


def _load_tls(cert: str, key: str, ca: str | None) -> None:
    """ValueError naming the file if the certificate, its key or the CA is unusable."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        ctx.load_cert_chain(Path(cert).expanduser(), Path(key).expanduser())
    except (ssl.SSLError, OSError) as exc:
        raise ValueError(f"cert {cert} with key {key}: {exc}") from None
    if ca is not None:
        try:
            ctx.load_verify_locations(Path(ca).expanduser())
        except (ssl.SSLError, OSError) as exc:
            raise ValueError(f"ca {ca}: {exc}") from None


class OpenFlowConfig(Strict):
    """The OpenFlow 1.3 listener the switches connect to, and what one switch may make
    the controller hold."""

    listen_host: str = Field("0.0.0.0", description="address switches connect to")
    port: int = Field(6653, ge=1, le=65535)
    echo_interval: float = Field(2.0, gt=0, description="seconds between echo requests")
    echo_max_unanswered: int = Field(3, ge=1, description="a switch is dropped after this "
                                     "many unanswered echo requests")
    barrier_timeout: float = Field(10.0, ge=0.5, le=600, description="seconds a switch may "
                                   "leave a barrier unanswered while it is sent entries; "
                                   "then its session is ended (reconciled when it "
                                   "reconnects)")
    send_queue: int = Field(4096, ge=64, le=1 << 20, description="messages queued for one "
                            "switch; a switch whose queue is full and that has read nothing "
                            "for a second is dropped")
    send_buffer: int = Field(1 << 20, ge=1 << 16, le=64 << 20, description="kernel send "
                             "buffer per switch session, bytes")
    punt_backlog: int = Field(4096, ge=16, le=1 << 20, description="frames from hosts "
                              "(packet-ins) waiting for the controller, in all; more are "
                              "dropped and counted (aifabric_intake_dropped_total)")
    punt_backlog_per_switch: int = Field(512, ge=1, le=1 << 20, description="frames from "
                                         "hosts waiting for the controller from one switch")
    message_backlog_per_switch: int = Field(20_000, ge=64, le=1 << 22, description="other "
                                            "messages of one switch waiting for the "
                                            "controller; beyond it the session is ended "
                                            "(reconciled when it reconnects)")
    allowed_dpids: list[int] | None = Field(None, max_length=100_000, description="the "
                                            "only datapath ids that may connect (a "
                                            "switch with another is refused, logged and "
                                            "counted); unset: any",
                                            examples=[[1001, 1002, 2001, 2002]])
    tls: OpenFlowTlsConfig | None = Field(None, description="switches connect over TLS "
                                          "(Open vSwitch: ssl:HOST:PORT targets and "
                                          "ovs-vsctl set-ssl) with certificates signed by "
                                          "ca; unset: plain TCP",
                                          examples=[{"cert": "controller.pem",
                                                     "key": "controller.key",
                                                     "ca": "switch-ca.pem"}])
    claim_timeout: float = Field(1.0, ge=0.1, le=30, description="a second connection "
                                 "claiming the dpid of a connected switch waits this long "
                                 "for the switch to answer an echo: if it answers, the "
                                 "newcomer is refused; if not, the newcomer takes its "
                                 "place (a switch reconnecting over a dead session)")

    @field_validator("allowed_dpids")
    @classmethod
    def _dpids(cls, v: list[int] | None) -> list[int] | None:
        bad = [d for d in v or () if not 0 <= d < 1 << 64]
        if bad:
            raise ValueError(f"a datapath id is 0..2^64-1, got {bad[0]}")
        return v

    @field_validator("listen_host")
    @classmethod
    def _ip(cls, v: str) -> str:
        ipaddress.ip_address(v)
        return v


class TokenConfig(Strict):
    """One API token: who it stands for and what it may do."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.@-]{1,64}$")
    role: Literal["reader", "admin"]
    token: str = Field(min_length=16, max_length=256, pattern=r"^[\x21-\x7e]+$")


class TlsConfig(Strict):
    cert: str = Field(description="server certificate chain (PEM)")
    key: str = Field(description="its private key (PEM)")
    client_ca: str | None = Field(None, description="CA of client certificates; set: "
                                                    "clients must present one")

    @model_validator(mode="after")
    def _readable(self) -> TlsConfig:
        _files_exist(self, "cert", "key", "client_ca")
        _load_tls(self.cert, self.key, self.client_ca)
        return self


class ApiConfig(Strict):
    """The gRPC management API (fabricctl, schedulers)."""

    address: str = Field("127.0.0.1:50051", description="where it listens (fabricctl "
                         "--server)")
    tokens: list[TokenConfig] = Field(
        default_factory=list, description="who may call: a reader may get, list and "
        "watch; an admin may also set, drain and pin. None listed: one admin token is "
        "read from token_file, or generated there (mode 0600) on first start; fabricctl "
        "on the same machine reads the same file",
        examples=[[{"name": "ops", "role": "admin", "token": "use-at-least-16-characters"},
                   {"name": "grafana", "role": "reader",
                    "token": "another-long-random-string"}]])
    token_file: str = Field(DEFAULT_TOKEN_FILE, description="the local admin token (when "
                            "no tokens are listed)")
    tls: TlsConfig | None = Field(None, description="serve TLS (client_ca: require client "
                                  "certificates signed by it)",
                                  examples=[{"cert": "server.pem", "key": "server.key",
                                             "client_ca": "ca.pem"}])
    audit_log: str | None = Field(None, description="JSON lines of every mutation; "
                                                    "None: the daemon's log only")
    allow_insecure: bool = Field(False, description="serve a non-loopback address "
                                                    "without TLS")
    max_watchers: int = Field(64, ge=1, le=4096, description="WatchEvents streams at "
                              "once (each holds a server thread)")
    max_watchers_per_token: int = Field(32, ge=1, le=4096, description="WatchEvents "
                                        "streams one token may hold")

    @field_validator("address")
    @classmethod
    def _addr(cls, v: str) -> str:
        parse_host_port(v)
        return v

    @field_validator("tokens")
    @classmethod
    def _unique(cls, v: list[TokenConfig]) -> list[TokenConfig]:
        seen: set[str] = set()
        for t in v:
            if t.token in seen:
                raise ValueError(f"token of {t.name!r} is used twice")
            seen.add(t.token)
        return v

    @model_validator(mode="after")
    def _exposed(self) -> ApiConfig:
        if not self.loopback and self.tls is None and not self.allow_insecure:
            raise ValueError(f"serving {self.address} (not loopback) without TLS needs "
                             "api.tls, or api.allow_insecure / --insecure-api")
        return self

    @property
    def loopback(self) -> bool:
        host, _ = parse_host_port(self.address)
        return host == "localhost" or (host != "*" and ipaddress.ip_address(host).is_loopback)


class MetricsConfig(Strict):
    """Prometheus metrics over HTTP (``/metrics``)."""

    enabled: bool = Field(True, description="GET http://ADDRESS/metrics (--metrics-addr)")
    address: str = "127.0.0.1:9464"

    @field_validator("address")
    @classmethod
    def _addr(cls, v: str) -> str:
        parse_host_port(v)
        return v


def etcd_endpoint(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) of an etcd client URL ``http(s)://HOST:PORT``; ValueError
    saying what is expected otherwise."""
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = None
    if parts.scheme not in ("http", "https") or not parts.hostname or not port:
        raise ValueError(f"expected http(s)://HOST:PORT, got {url!r}")
    return parts.scheme, parts.hostname, port


class ClusterConfig(Strict):
    """Cluster mode (docs/cluster.md): several fabricd on one etcd, each switch mastered
    by one of them. Off without ``etcd`` endpoints."""

    etcd: list[str] = Field(default_factory=list, description="etcd client URLs, "
                            "http(s)://HOST:PORT; empty: fabricd runs alone")
    node_id: str | None = Field(None, pattern=r"^[A-Za-z0-9_.-]{1,64}$",
                                description="this instance's name, unique in the cluster")
    name: str = Field("default", pattern=r"^[A-Za-z0-9_.-]{1,64}$",
                      description="the cluster's name: its keys in etcd")
    lease_ttl: int = Field(1, ge=1, le=60, description="seconds an instance's lease "
                           "lives without a keepalive (etcd raises it to 1.5 x its "
                           "election timeout)")
    etcd_timeout: float = Field(0.5, gt=0, le=30, description="seconds one etcd request "
                                "may take")
    peer_address: str = Field("127.0.0.1:0", description="where the other instances "
                              "connect to see this process end (HOST:PORT, port 0: any "
                              "free port; a routable address when they run on other "
                              "machines; empty: no fast failure detection, the lease "
                              "TTL only)")
    etcd_ca: str | None = Field(None, description="CA of etcd's certificate (https)")
    etcd_cert: str | None = Field(None, description="client certificate for etcd (PEM)")
    etcd_key: str | None = Field(None, description="its private key (PEM)")
    secret_file: str | None = Field(None, description="a file every instance is given "
                                    "(mode 0600, at least 32 characters, e.g. openssl rand "
                                    "-hex 32): the LLDP key and the peer port's key are "
                                    "derived from it and nothing secret is kept in etcd; "
                                    "unset: the LLDP key is kept in etcd, readable by "
                                    "whoever reads etcd")
    insecure_etcd: bool = Field(False, description="accept etcd over plain http://, or "
                                "https:// without a client certificate: whoever reaches "
                                "etcd then controls the cluster (drains, jobs, "
                                "mastership); a test bench only")

    @field_validator("etcd")
    @classmethod
    def _endpoints(cls, v: list[str]) -> list[str]:
        for i, url in enumerate(v):
            try:
                etcd_endpoint(url)
            except ValueError as exc:
                raise ValueError(f"entry {i}: {exc}") from None
        return v

    @field_validator("peer_address")
    @classmethod
    def _peer(cls, v: str) -> str:
        if v:
            parse_host_port(v, any_port=True)
        return v

    @model_validator(mode="after")
    def _complete(self) -> ClusterConfig:
        if self.etcd and not self.node_id:
            raise ValueError("node_id is needed with etcd endpoints (--node-id NAME)")
        if bool(self.etcd_cert) != bool(self.etcd_key):
            raise ValueError("etcd_cert and etcd_key go together")
        plain = [u for u in self.etcd if u.startswith("http://")]
        if plain and (self.etcd_ca or self.etcd_cert):
            raise ValueError(f"etcd_ca, etcd_cert and etcd_key apply to https:// endpoints; "
                             f"{plain[0]} is plain http")
        if self.etcd and not self.insecure_etcd:
            if plain:
                raise ValueError(f"{plain[0]} is plain http: whoever reaches it controls "
                                 "the cluster; use https:// with etcd_ca, etcd_cert and "
                                 "etcd_key (docs/cluster.md), or insecure_etcd "
                                 "(--insecure-etcd) on a test bench")
            if not self.etcd_cert:
                raise ValueError("etcd needs this instance's client certificate (etcd_cert "
                                 "and etcd_key, --etcd-cert/--etcd-key), or insecure_etcd "
                                 "(--insecure-etcd) on a test bench")
        _files_exist(self, "etcd_ca", "etcd_cert", "etcd_key", "secret_file")
        return self

    @property
    def enabled(self) -> bool:
        return bool(self.etcd)
