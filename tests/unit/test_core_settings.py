"""The core's settings made from the configuration (``apps/runtime.py``): every setting
of the sections the core uses reaches it, and the core's own defaults are the
configuration's."""

from __future__ import annotations

from dataclasses import replace
from operator import attrgetter

from pydantic import BaseModel

from apps.runtime import core_settings, job_limits
from controller.config import ConfigError, FabricdConfig, load_config
from controller.core.settings import CoreSettings
from controller.core.te import TeSettings
from controller.core.te.jobs import JobLimits

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


def test_every_setting_of_the_core_sections_reaches_the_core():
    default = core_settings(FabricdConfig())
    checked = []
    for section in CORE_SECTIONS:
        model = attrgetter(section)(FabricdConfig())
        for name in type(model).model_fields:
            value = getattr(model, name)
            if isinstance(value, BaseModel):
                continue  # (a section of its own)
            key = f"{section}.{name}"
            assert core_settings(_changed(key, value)) != default, f"{key} is not mapped"
            checked.append(key)
    assert len(checked) > 30 and "te.smoothing" in checked
