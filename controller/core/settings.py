"""The core's settings: one frozen value, built by the daemon from its configuration
(``core_settings`` in ``apps/runtime.py``) and handed to :class:`FabricCore`, which
hands each component its part. The defaults are the configuration's (a unit test
compares them), so that tests can build the core without a config file."""

from __future__ import annotations

from dataclasses import dataclass, field

from controller.core.fabric.dampening import DampingSettings
from controller.core.fabric.fabric_view import PuntLimits
from controller.core.fabric.hosts import HostSettings
from controller.core.fabric.qos import QosPolicy
from controller.core.model.fabric_model import Cable
from controller.core.model.job_spec import JobLimits
from controller.core.model.servers import Server
from controller.core.te import TeSettings


@dataclass(frozen=True)
class CoreSettings:
    lldp_interval: float = 1.0  # seconds between probes on every port
    link_timeout: float = 3.5  # a link not re-confirmed for this long is gone
    probe_budget: float = 5000.0  # LLDP probes per second at most (0: no limit)
    settle_time: float = 1.0  # after connecting, a switch is left this long to be discovered
    # after a controller restart, entries towards a leaf that has not reconnected are
    # kept (frozen) this long, counted from the first switch back
    absent_timeout: float = 30.0
    damping: DampingSettings = field(default_factory=DampingSettings)  # link flaps
    flood_rate: float = 50.0  # broadcast/unknown frames per second per host port
    flood_burst: float = 100.0
    role_overrides: dict[int, str] = field(default_factory=dict)
    spine_uplink_repeats: bool = True  # a spine's up-buckets repeated (ecmp._spread)
    cabling: tuple[Cable, ...] = ()  # the operator's cabling plan, if any
    servers: tuple[Server, ...] = ()  # servers and their NICs in rail order (rail check)
    qos: QosPolicy | None = None  # edge marking policy; None with --no-qos
    te: TeSettings | None = None  # traffic engineering; None with --no-te
    link_speed_bps: float = 0.0  # overrides what switches report (0: trust them)
    new_flow_rate: float = 2000.0  # new flows per second per host port that TE places
    hosts: HostSettings = field(default_factory=HostSettings)  # identity rules at the edge
    punt: PuntLimits = field(default_factory=PuntLimits)  # switch meters towards us
    declined_flow_timeout: int = 10  # seconds a flow TE declined is not copied again
    max_flows_per_port: int = 4096  # TE-tracked flows one host port may hold
    job_limits: JobLimits = field(default_factory=JobLimits)  # registered training jobs
    source_guard: bool = True  # IPv4 from a host port only from what is bound there
