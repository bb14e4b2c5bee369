"""fabricd configuration: a YAML file validated by pydantic, overridden by flags.

Every problem is reported as one :class:`ConfigError` naming the key and the reason.
Here: the whole (:class:`FabricdConfig`), its loading, and the sections the core's
settings are made of (``apps/runtime.py`` maps them, each setting once); the daemon's
own sections (listeners, TLS, etcd) are in ``controller/config_daemon.py``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator

from controller import documents
from controller.config_daemon import (
    ApiConfig,
    ClusterConfig,
    MetricsConfig,
    OpenFlowConfig,
    Strict,
    parse_host_port,
)
from controller.config_servers import ServerConfig, ServerNamesConfig, ServerRuleConfig
from controller.core.errors import InvalidArgument
from controller.core.fabric.hosts import host_address, unicast_mac
from controller.core.fabric.qos import QosPolicy, profile_policy
from controller.core.model.cabling import make_cable, parse_end
from controller.core.model.roles import ROLES
from controller.core.model.servers import Server, check_apart

MAX_CONFIG_BYTES = 16 << 20  # a config file larger than this is refused


class ConfigError(Exception):
    """Invalid configuration: ``key`` is dotted (``api.address``), ``reason`` says why."""

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(f"{key}: {reason}" if key else reason)
        self.key, self.reason = key, reason


_ANY_HOST = {"*", "0.0.0.0", "::"}


def _hosts_overlap(a: str, b: str) -> bool:
    """Whether listening on ``a`` and ``b`` with one port collides (a wildcard address
    takes the port on every address; localhost is 127.0.0.1)."""
    a, b = (("127.0.0.1" if h == "localhost" else h) for h in (a, b))
    return a == b or a in _ANY_HOST or b in _ANY_HOST


class DampingConfig(Strict):
    """Link-flap dampening (RFC 2439 style): each down of a fabric port earns a penalty
    that halves every half_life seconds; from suppress on, its link is held down until
    the penalty is below reuse."""

    enabled: bool = True
    half_life: float = Field(2.0, gt=0, le=3600, description="seconds in which a penalty "
                             "halves")
    suppress: float = Field(2.5, gt=1, le=100, description="penalty (1 per flap) that "
                            "holds a link down")
    reuse: float = Field(0.5, gt=0, le=100, description="penalty below which a held link "
                         "is used again")
    max_penalty: float = Field(8.0, gt=1, le=1000, description="bounds the hold time")

    @model_validator(mode="after")
    def _order(self) -> DampingConfig:
        if not self.reuse < self.suppress <= self.max_penalty:
            raise ValueError("need reuse < suppress <= max_penalty")
        return self


class DiscoveryConfig(Strict):
    """Finding switches, links and roles (authenticated LLDP)."""

    lldp_interval: float = Field(1.0, gt=0, le=60, description="seconds between LLDP "
                                 "probes on every port")
    link_timeout: float = Field(3.5, gt=0, le=600, description="a link not confirmed by "
                                "LLDP for this long is removed")
    probe_budget: float = Field(5000.0, ge=0, le=1_000_000, description="LLDP probes per "
                                "second at most, over all switches (0: no limit); a fabric "
                                "with more ports is probed in turns, each port every "
                                "ports/budget seconds, and its links are kept that much "
                                "longer (failures are seen by port status at once); "
                                "fewer while fabricd's event loop lags")
    settle_time: float = Field(1.0, ge=0, le=60, description="a new switch is only probed "
                               "(not programmed) this long")
    absent_timeout: float = Field(30.0, ge=0, le=3600, description="after a restart, how "
                                  "long entries towards a leaf not back yet are kept")
    dampening: DampingConfig = DampingConfig()

    @model_validator(mode="after")
    def _timeout_after_interval(self) -> DiscoveryConfig:
        if self.link_timeout <= self.lldp_interval:
            raise ValueError(
                f"link_timeout ({self.link_timeout}) must be longer than lldp_interval "
                f"({self.lldp_interval})"
            )
        return self


class TeConfig(Strict):
    """Traffic engineering (docs/traffic-engineering.md)."""

    enabled: bool = Field(True, description="--no-te: ECMP select groups only")
    poll_interval: float = Field(1.0, gt=0, le=60,
                                 description="port and flow statistics, seconds")
    poll_budget: float = Field(10_000.0, ge=0, le=10_000_000,
                               description="port counters read per second at most: a "
                               "larger fabric is polled less often (0: no limit)")
    smoothing: float = Field(0.5, gt=0, le=1, description="EWMA weight of the newest sample")
    large_flow_fraction: float = Field(0.10, gt=0, le=1,
                                       description="a flow is large from this share of a link")
    congestion_threshold: float = Field(0.80, gt=0, le=1.5,
                                        description="link utilization that is congestion")
    congestion_intervals: int = Field(2, ge=1, le=100,
                                      description="readings in a row above the threshold")
    hysteresis: float = Field(0.05, ge=0, le=1,
                              description="least improvement (of a link rate) worth a move")
    min_move_interval: float = Field(5.0, ge=0, le=3600,
                                     description="seconds a moved flow stays put")
    flow_idle_timeout: float = Field(10.0, gt=0, le=86400,
                                     description="seconds without traffic before a flow "
                                                 "is forgotten")
    max_flows: int = Field(100_000, ge=1, le=10_000_000, description="flows tracked at "
                           "once; beyond, new flows stay on ECMP")
    max_flows_per_port: int = Field(4096, ge=1, le=10_000_000, description="flows one host "
                                    "port may have tracked (its share of max_flows)")
    new_flow_rate: float = Field(2000.0, gt=0, description="new flows per second a host "
                                                           "port may start (beyond: ECMP)")
    rebalance: bool = Field(True, description="periodic rebalancing of large flows")
    rebalance_floor: float = Field(0.5, ge=0, le=1.5, description="without overload, "
                                   "rebalance only for a worst link this busy")
    rebalance_cooldown: float = Field(5.0, ge=0, le=3600, description="seconds after a "
                                      "rebalancing pass that moved flows before the next")


class JobsConfig(Strict):
    """Training jobs registered through the API (RegisterJob, docs/jobs.md)."""

    max_jobs: int = Field(64, ge=1, le=10_000, description="jobs registered at once")
    max_members: int = Field(512, ge=2, le=100_000, description="hosts in one job")
    max_pairs: int = Field(20_000, ge=1, le=10_000_000, description="directed host pairs "
                           "one job's pattern may imply")


class EdgeConfig(Strict):
    """What one host (edge port) may make the controller hold or do."""

    max_hosts_per_port: int = Field(32, ge=1, le=4096, description="MACs one edge port "
                                    "may have; beyond, new ones are ignored")
    host_idle_timeout: float = Field(300.0, gt=0, le=86400, description="seconds without "
                                     "a frame to the controller before a host is probed")
    probe_timeout: float = Field(1.0, gt=0, le=60, description="seconds a probed host has "
                                 "to answer before its binding is released")
    packet_in_rate: int = Field(100, ge=1, le=100_000, description="packets/s one edge "
                                "port may send to the controller (switch meter)")
    packet_in_burst: int = Field(200, ge=1, le=1_000_000, description="burst of that "
                                 "meter, packets")
    te_copy_rate: int = Field(200, ge=1, le=100_000, description="new-flow copies/s one "
                              "edge port may send to the controller (switch meter)")
    lldp_rate: int = Field(1000, ge=1, le=100_000, description="LLDP packets/s a switch "
                           "may send to the controller (its own meter)")
    declined_flow_timeout: int = Field(10, ge=1, le=3600, description="seconds a flow TE "
                                       "declined to place is no longer copied")
    source_guard: bool = Field(True, description="IPv4 from a host port goes on only "
                               "from a MAC and address bound there; anything else goes "
                               "to the controller (metered), which learns a new host "
                               "from it or drops it")


class StaticHostConfig(Strict):
    """A host bound by the operator: nothing a frame claims can move it."""

    mac: str = Field(pattern=r"^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$")
    ip: str
    leaf: int = Field(ge=1, le=2**64 - 1, description="dpid of its leaf")
    port: int = Field(ge=1, le=0xFFFFFF00)

    @field_validator("ip")
    @classmethod
    def _ip(cls, v: str) -> str:
        if host_address(v) is None:
            raise ValueError(f"{v!r} is not a unicast IPv4 address a host may own")
        return v

    @field_validator("mac")
    @classmethod
    def _mac(cls, v: str) -> str:
        if not unicast_mac(v.lower()):
            raise ValueError(f"{v} is not a unicast MAC address")
        return v.lower()




class QosConfig(Strict):
    """Traffic classes: marking at the leaf edge, queues on every port."""

    enabled: bool = Field(True, description="--no-qos: provision and mark nothing")
    profile: Literal["default", "cumulus", "cisco", "sonic"] = Field(
        "default", description="the built-in policy (default: CNP strict 5%, RoCE 50%, "
        "collective 20%, storage 10%) or one after NVIDIA Cumulus, Cisco or SONiC practice")
    policy: QosPolicy | None = Field(
        None, description="overrides the profile when given; the shape of `fabricctl qos "
        "set FILE`", examples=[{"classes": [{"name": "roce", "dscp": 26, "queue": 3,
                                             "share": 0.5, "match": {"udp_dst": [4791],
                                                                     "dscp": [26]}}],
                                "trust_unclassified_dscp": False}])
    ovsdb: str | None = Field(None, description="OVSDB to provision (default: the local one)")
    queue_limit_packets: int = Field(32, ge=2, le=10000,
                                     description="per-queue FIFO length (userspace datapath)")

    def effective_policy(self) -> QosPolicy:
        return self.policy if self.policy is not None else profile_policy(self.profile)


class FabricdConfig(Strict):
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        "info", description="debug, info, warning or error")
    link_speed_mbps: float | None = Field(
        None, gt=0, le=1_000_000, description="fabric-wide link rate in Mbit/s, overriding "
        "the speed switches report (wrong for Mininet's veths: 10 Gbit/s whatever they "
        "are shaped to); null: as reported")
    openflow: OpenFlowConfig = OpenFlowConfig()
    api: ApiConfig = ApiConfig()
    metrics: MetricsConfig = MetricsConfig()
    discovery: DiscoveryConfig = DiscoveryConfig()
    qos: QosConfig = QosConfig()
    te: TeConfig = TeConfig()
    jobs: JobsConfig = JobsConfig()
    edge: EdgeConfig = EdgeConfig()
    cluster: ClusterConfig = ClusterConfig()
    hosts: list[StaticHostConfig] = Field(
        default_factory=list, description="static host bindings: nothing a frame claims "
        "can move, age or take them over",
        examples=[[{"mac": "00:00:00:00:00:01", "ip": "10.0.0.1", "leaf": 2001, "port": 3}]])
    state_file: str = Field("/var/lib/aifabric/state.json", min_length=1, description=""
                            "alone: where the operator intent (QoS policy, drains, pins, "
                            "registered jobs) is kept across restarts; rewritten atomically "
                            "on every change (a cluster keeps it in etcd)")
    watchdog_seconds: float = Field(5.0, gt=0, le=3600, description="health turns "
                                    "NOT_SERVING when the event loop processed no tick "
                                    "for this long")
    watchdog_exit_seconds: float = Field(60.0, ge=0, le=86400, description="fabricd ends "
                                         "(exit 3, a clear log line) when the event loop "
                                         "processed no tick for this long, so that a "
                                         "service manager or a standby instance takes "
                                         "over; 0: never")
    roles: dict[int, Literal["spine", "leaf", "super-spine"]] = Field(
        default_factory=dict, description="roles are inferred from the wiring; pin them "
        "here if needed (dpid: leaf, spine or super-spine; dpids in decimal or 0x hex)",
        examples=[{1001: "spine", 2001: "leaf"}])
    servers: list[ServerConfig] = Field(
        default_factory=list, description="servers and their NICs in rail order: "
        "fabricctl servers shows where each NIC is, a NIC on a leaf of another rail is a "
        "warning, and jobs may name a NIC as SERVER:RAIL",
        examples=[[{"name": "gpu01", "nics": ["10.0.0.1", "10.0.1.1"]}]])
    server_rule: ServerRuleConfig | None = Field(
        None, description="servers numbered by their addresses, beside servers:",
        examples=[{"servers": 32, "rails": 8, "first": "10.0.0.1", "rail_stride": 256}])
    server_names: ServerNamesConfig | None = Field(
        None, description="servers grouped from their NICs' host names in a hosts file, "
        "beside servers:", examples=[{"hosts_file": "/etc/hosts",
                                      "pattern": "(?P<server>.+)-rail(?P<rail>[0-9]+)"}])
    spine_uplink_repeats: Literal["auto", "off"] = Field(
        "auto", description="three tiers: auto repeats each of a spine's up-buckets as "
        "many times as its leaves have spines (within 64 buckets), so that Open vSwitch, "
        "which hashes alike at every switch, spreads a spine's traffic over its "
        "super-spines; off: one bucket per uplink (switches that seed their hash per "
        "switch, or whose ECMP member table is small)")
    cabling: list[tuple[str, str]] = Field(
        default_factory=list, description="the cabling plan: the cables the fabric should "
        "have, as pairs of DPID:PORT ends; links LLDP does not find, or finds but are not "
        "listed, are warnings (fabricctl topology). Empty: no cabling validation",
        examples=[[["2001:1", "1001:1"], ["2001:2", "1002:1"]]])

    @model_validator(mode="after")
    def _watchdog_order(self) -> FabricdConfig:
        if 0 < self.watchdog_exit_seconds < self.watchdog_seconds:
            raise ValueError(f"watchdog_exit_seconds ({self.watchdog_exit_seconds:g}) must "
                             f"be 0 (never) or at least watchdog_seconds "
                             f"({self.watchdog_seconds:g})")
        return self

    @model_validator(mode="after")
    def _listeners_apart(self) -> FabricdConfig:
        """The sockets fabricd listens on must not take one another's port: the one
        started later would fail with the daemon half up."""
        taken: list[tuple[str, str, int]] = [
            ("openflow.port", self.openflow.listen_host, self.openflow.port),
            ("api.address", *parse_host_port(self.api.address)),
        ]
        if self.metrics.enabled:
            taken.append(("metrics.address", *parse_host_port(self.metrics.address)))
        if self.cluster.enabled and self.cluster.peer_address:
            taken.append(("cluster.peer_address",
                          *parse_host_port(self.cluster.peer_address, any_port=True)))
        for i, (key, host, port) in enumerate(taken):
            for other, other_host, other_port in taken[:i]:
                if port and port == other_port and _hosts_overlap(host, other_host):
                    raise ValueError(f"{key} {host}:{port} takes the port of {other} "
                                     f"{other_host}:{other_port}")
        return self

    def all_servers(self) -> list[ServerConfig]:
        """``servers`` and those of ``server_rule`` and ``server_names``."""
        return [*self.servers, *(self.server_rule.expand() if self.server_rule else []),
                *(self.server_names.expand() if self.server_names else [])]

    @model_validator(mode="after")
    def _servers_apart(self) -> FabricdConfig:
        """No two servers share a name or a NIC; NICs within the limit."""
        try:
            check_apart(Server(s.name, tuple(s.nics)) for s in self.all_servers())
        except InvalidArgument as exc:
            raise ValueError(str(exc)) from None
        return self

    @field_validator("cabling")
    @classmethod
    def _cabling(cls, v: list[tuple[str, str]]) -> list[tuple[str, str]]:
        seen: set = set()
        for i, (a, b) in enumerate(v):
            try:
                cable = make_cable(parse_end(a), parse_end(b))
            except ValueError as exc:
                raise ValueError(f"entry {i}: {exc}") from None
            if cable.a.dpid == cable.b.dpid:
                raise ValueError(f"entry {i}: both ends on switch {cable.a.dpid}")
            for end in (cable.a, cable.b):
                if end in seen:
                    raise ValueError(f"entry {i}: port {end.dpid}:{end.port} cabled twice")
                seen.add(end)
        return v

    @field_validator("hosts")
    @classmethod
    def _hosts(cls, v: list[StaticHostConfig]) -> list[StaticHostConfig]:
        macs: set[str] = set()
        ips: set[str] = set()
        for i, h in enumerate(v):
            if h.mac in macs:
                raise ValueError(f"entry {i}: MAC {h.mac} is listed twice")
            if h.ip in ips:
                raise ValueError(f"entry {i}: address {h.ip} is listed twice")
            macs.add(h.mac)
            ips.add(h.ip)
        return v

    @field_validator("roles", mode="before")
    @classmethod
    def _dpid_keys(cls, v: Any) -> Any:
        if not isinstance(v, dict):
            return v
        out = {}
        for key, role in v.items():
            try:  # (an integer, or its text; not a float, a bool or null)
                if isinstance(key, bool) or not isinstance(key, int | str):
                    raise ValueError
                dpid = int(key, 0) if isinstance(key, str) else key
            except ValueError:
                raise ValueError(f"dpid {str(key)[:40]!r} is not an integer (use 42 or "
                                 "0x2a)") from None
            if not 0 <= dpid < 1 << 64:
                raise ValueError(f"dpid {str(key)[:40]} is not in 0..2^64-1")
            if role not in ROLES:
                raise ValueError(f"role of {key} must be one of {', '.join(ROLES)}, "
                                 f"got {role!r}")
            out[dpid] = role
        return out


def first_error(exc: ValidationError, unknown: str = "unknown key") -> tuple[str, str]:
    """The dotted key and the reason of the error to show first: a misspelt key explains
    a "missing" one, so unknown keys (reported as ``unknown``) come first."""
    err = sorted(exc.errors(), key=lambda e: e["type"] != "extra_forbidden")[0]
    key = ".".join(str(p) for p in err["loc"])
    msg = unknown if err["type"] == "extra_forbidden" else err["msg"]
    return key, msg.removeprefix("Value error, ")


def _first_error(exc: ValidationError, prefix: str = "") -> ConfigError:
    key, msg = first_error(exc)
    if prefix:
        key = f"{prefix}.{key}" if key else prefix
    return ConfigError(key, msg)


def load_config(path: str | Path | None, overrides: dict[str, Any] | None = None) -> FabricdConfig:
    """Read ``path`` (or the built-in defaults) and apply dotted-key ``overrides``."""
    data: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        try:
            text = p.read_text()
        except OSError as exc:
            raise ConfigError("--config", f"cannot read {p}: {exc.strerror}") from None
        try:
            loaded = documents.load(text, MAX_CONFIG_BYTES)
        except documents.DocumentError as exc:
            raise ConfigError("--config", f"{p} is not valid YAML: {exc}") from None
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ConfigError("--config", f"{p} must hold a mapping at the top level")
        data = loaded
    for dotted, value in (overrides or {}).items():
        node = data
        *parents, leaf = dotted.split(".")
        for part in parents:
            child = node.get(part)
            if not isinstance(child, dict):
                child = node[part] = {}
            node = child
        node[leaf] = value
    try:
        return FabricdConfig.model_validate(data)
    except ValidationError as exc:
        raise _first_error(exc) from None
