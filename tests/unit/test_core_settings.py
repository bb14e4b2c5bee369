"""The core's settings made from the configuration (``apps/runtime.py``): every setting
of the sections the core uses reaches it, and the core's own defaults are the
configuration's."""

from __future__ import annotations

from dataclasses import fields, is_dataclass, replace
from operator import attrgetter

from pydantic import BaseModel

from apps.runtime import core_settings, job_limits
from controller.config import ConfigError, FabricdConfig, load_config
from controller.core.model.job_spec import JobLimits
from controller.core.settings import CoreSettings
from controller.core.te import TeSettings

# the sections of the configuration that are the core's (api, metrics, cluster... are
# the daemon's; qos is the policy, made by ``qos_policy``)
CORE_SECTIONS = ["discovery", "discovery.dampening", "te", "edge", "jobs"]


def test_the_core_defaults_are_the_configurations():
    """The core's dataclasses have defaults of their own (tests build the core without
    a config file): they must be the configuration's."""
    settings = core_settings(FabricdConfig())
    assert replace(settings, qos=None, te=None) == CoreSettings()
    assert settings.te == TeSettings()
    assert job_limits(FabricdConfig()) == JobLimits()


def _changed(key: str, value: object) -> FabricdConfig:
    """The default configuration with ``key`` set to a valid value other than ``value``."""
    if isinstance(value, bool):
        candidates: list[object] = [not value]
    else:
        assert isinstance(value, int | float), key
        candidates = [value * 2, value / 2, value + 1, value - 1]
        if isinstance(value, int):
            candidates = [int(c) for c in candidates]
    for candidate in candidates:
        if candidate == value:
            continue
        try:
            return load_config(None, {key: candidate})
        except ConfigError:
            continue
    raise AssertionError(f"no other valid value for {key}")


def _flat(value: object, path: str = "") -> dict[str, object]:
    """Every leaf setting of a (nested) settings dataclass, by its dotted path."""
    if not is_dataclass(value):
        return {path: value}
    out: dict[str, object] = {}
    for f in fields(value):
        out |= _flat(getattr(value, f.name), f"{path}.{f.name}" if path else f.name)
    return out


# config keys whose setting in the core has another name (the rest: the same name)
RENAMED = {"discovery.link_speed_mbps": "link_speed_bps",
           "discovery.source_guard": "source_guard",
           "te.enabled": "te",  # (off: no TE settings at all)
           "te.poll_interval": "te.fresh_window",
           "edge.max_hosts_per_port": "hosts.max_per_port",
           "edge.host_idle_timeout": "hosts.idle_timeout",
           "edge.packet_in_rate": "punt.host_pps",
           "edge.packet_in_burst": "punt.host_burst",
           "edge.te_copy_rate": "punt.te_pps",
           "edge.lldp_rate": "punt.lldp_pps"}


def test_every_setting_of_the_core_sections_reaches_its_own_setting_in_the_core():
    """Changing one key of the configuration changes one setting of the core: the
    same-named one (or the one RENAMED says), and nothing else."""
    default = _flat(core_settings(FabricdConfig()))
    checked = []
    for section in CORE_SECTIONS:
        model = attrgetter(section)(FabricdConfig())
        for name in type(model).model_fields:
            value = getattr(model, name)
            if isinstance(value, BaseModel):
                continue  # (a section of its own)
            key = f"{section}.{name}"
            got = _flat(core_settings(_changed(key, value)))
            moved = sorted(p for p in got.keys() | default.keys()
                           if got.get(p) != default.get(p))
            if key in RENAMED:  # that setting (or, for a section, what is in it)
                ok = all(p == RENAMED[key] or p.startswith(f"{RENAMED[key]}.")
                         for p in moved)
            else:  # the same-named one, wherever the core keeps it
                ok = all(p == name or p.endswith(f".{name}") for p in moved)
            assert moved and ok, f"{key} changed {moved}"
            checked.append(key)
    assert len(checked) > 30 and "te.smoothing" in checked
