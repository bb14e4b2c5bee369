"""The configuration the daemon hands to the os-ken apps it starts.

os-ken instantiates apps itself, without arguments of ours; the daemon sets the
validated configuration here first, and the apps read it in their constructors.
"""

from __future__ import annotations

from controller.config import FabricdConfig
from controller.core.fabric_core import CoreSettings
from controller.core.qos import QosPolicy
from controller.core.shared import Intent, IntentError, decode_policy

_config: FabricdConfig | None = None
_intents: list[Intent] = []
_secret: bytes | None = None


def set_config(config: FabricdConfig) -> None:
    global _config
    _config = config


def config() -> FabricdConfig:
    return _config if _config is not None else FabricdConfig()


def set_intents(intents: list[Intent]) -> None:
    """The operator intent read from the state file (standalone), for the apps to put
    in force before any switch connects."""
    global _intents
    _intents = list(intents)


def intents() -> list[Intent]:
    return list(_intents)


def qos_policy(cfg: FabricdConfig) -> QosPolicy | None:
    """The QoS policy in force at start: the one kept in the state file, else the
    configuration's (None: QoS off)."""
    if not cfg.qos.enabled:
        return None
    for intent in _intents:
        if intent.kind == "qos":
            try:
                return decode_policy(intent.value)
            except IntentError:  # (checked when read: not reached)
                break
    return cfg.qos.effective_policy()


def set_secret(secret: bytes) -> None:
    """The LLDP key shared by a cluster's instances (alone: each run makes its own)."""
    global _secret
    _secret = secret


def secret() -> bytes | None:
    return _secret


def core_settings(cfg: FabricdConfig) -> CoreSettings:
    """The core's settings from the configuration."""
    disc = cfg.discovery
    return CoreSettings(
        lldp_interval=disc.lldp_interval,
        link_timeout=disc.link_timeout,
        settle_time=disc.settle_time,
        absent_timeout=disc.absent_timeout,
        damping=disc.dampening.settings(),
        role_overrides=dict(cfg.roles),
        cabling=cfg.cabling_plan(),
        qos=qos_policy(cfg),
        te=cfg.te.settings() if cfg.te.enabled else None,
        link_speed_bps=(cfg.link_speed_mbps or 0) * 1_000_000,
        new_flow_rate=cfg.te.new_flow_rate,
        hosts=cfg.host_settings(),
        punt=cfg.punt_limits(),
        declined_flow_timeout=cfg.edge.declined_flow_timeout,
        max_flows_per_port=cfg.te.max_flows_per_port,
        job_limits=cfg.jobs.limits(),
        source_guard=cfg.edge.source_guard,
    )
