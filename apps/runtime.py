"""The configuration the daemon hands to the os-ken apps it starts, and the core's
settings made from it.

os-ken instantiates apps itself, without arguments of ours; the daemon sets the
validated configuration here first, and the apps read it in their constructors. The
configuration model (``controller/config.py``) defines every setting; the core takes
its own frozen values (``CoreSettings``, ``TeSettings``...), which it cannot import
from the model: :func:`core_settings` is the one place that maps one to the other.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from pydantic import BaseModel

from controller.config import FabricdConfig, TeConfig
from controller.core.fabric.dampening import DampingSettings
from controller.core.fabric.fabric_view import PuntLimits
from controller.core.fabric.hosts import HostSettings, StaticHost
from controller.core.fabric.qos import QosPolicy
from controller.core.intent.kinds import Intent, IntentError, decode_policy
from controller.core.model.cabling import make_cable, parse_end
from controller.core.model.fabric_model import Cable
from controller.core.model.job_spec import JobLimits
from controller.core.model.servers import Server
from controller.core.settings import CoreSettings
from controller.core.te import TeSettings

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


# --- the core's settings: each setting of the configuration mapped here, once -------------
def same_named(section: BaseModel, target: type) -> dict[str, Any]:
    """The settings of a configuration section that the core's dataclass ``target``
    takes under the same name. A setting keeps its name from the config file to the
    core, so only those whose name or form changes are mapped by hand below (a unit
    test checks that every setting reaches the core, and that the defaults agree)."""
    names = {f.name for f in fields(target)}
    return {k: getattr(section, k) for k in type(section).model_fields if k in names}


def te_settings(te: TeConfig) -> TeSettings:
    """Traffic engineering's settings (``te:``); a placement counts as load until two
    polls of its counters have measured it."""
    return TeSettings(**same_named(te, TeSettings), fresh_window=2 * te.poll_interval)


def job_limits(cfg: FabricdConfig) -> JobLimits:
    """The limits on registered training jobs (``jobs:``), which the API checks too."""
    return JobLimits(**same_named(cfg.jobs, JobLimits))


def cabling_plan(cfg: FabricdConfig) -> tuple[Cable, ...]:
    return tuple(make_cable(parse_end(a), parse_end(b)) for a, b in cfg.cabling)


def core_settings(cfg: FabricdConfig) -> CoreSettings:
    """The core's settings from the configuration."""
    disc, edge, te = cfg.discovery, cfg.edge, cfg.te
    return CoreSettings(
        **same_named(disc, CoreSettings),
        **same_named(edge, CoreSettings),
        **same_named(te, CoreSettings),
        damping=DampingSettings(**same_named(disc.dampening, DampingSettings)),
        role_overrides=dict(cfg.roles),
        spine_uplink_repeats=cfg.spine_uplink_repeats == "auto",
        cabling=cabling_plan(cfg),
        servers=tuple(Server(s.name, tuple(s.nics)) for s in cfg.all_servers()),
        qos=qos_policy(cfg),
        te=te_settings(te) if te.enabled else None,
        link_speed_bps=(cfg.link_speed_mbps or 0) * 1_000_000,
        hosts=HostSettings(
            **same_named(edge, HostSettings),
            max_per_port=edge.max_hosts_per_port,
            idle_timeout=edge.host_idle_timeout,
            static=tuple(StaticHost(h.mac, h.ip, h.leaf, h.port) for h in cfg.hosts)),
        punt=PuntLimits(host_pps=edge.packet_in_rate, host_burst=edge.packet_in_burst,
                        te_pps=edge.te_copy_rate, lldp_pps=edge.lldp_rate),
        job_limits=job_limits(cfg),
    )
