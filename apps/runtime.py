"""The configuration the daemon hands to the os-ken apps it starts.

os-ken instantiates apps itself, without arguments of ours; the daemon sets the
validated configuration here first, and the apps read it in their constructors.
"""

from __future__ import annotations

from controller.core.config import FabricdConfig
from controller.core.jobs import JobSpec

_config: FabricdConfig | None = None
_jobs: list[JobSpec] = []
_secret: bytes | None = None


def set_config(config: FabricdConfig) -> None:
    global _config
    _config = config


def config() -> FabricdConfig:
    return _config if _config is not None else FabricdConfig()


def set_jobs(specs: list[JobSpec]) -> None:
    """The jobs read from the state file, for the fabric app to restore."""
    global _jobs
    _jobs = list(specs)


def jobs() -> list[JobSpec]:
    return list(_jobs)


def set_secret(secret: bytes) -> None:
    """The LLDP key shared by a cluster's instances (alone: each run makes its own)."""
    global _secret
    _secret = secret


def secret() -> bytes | None:
    return _secret
