"""``fabricd``'s reload (SIGHUP): the config read again, its live settings applied, the
others named as needing a restart; an invalid config changes nothing."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from controller.config import ConfigError, FabricdConfig

log = logging.getLogger("aifabric.daemon")

LIVE_SETTINGS = ("log_level", "api.tokens")  # applied by a reload (SIGHUP), no restart
_RELOADING = threading.Lock()  # (two signals in a row: one reload after the other)


def changed_settings(old: FabricdConfig, new: FabricdConfig) -> list[str]:
    """The dotted keys whose values differ between two configs (leaves only)."""
    def flat(d: Any, prefix: str = "") -> dict[str, Any]:
        if isinstance(d, dict):
            out: dict[str, Any] = {}
            for k, v in d.items():
                out.update(flat(v, f"{prefix}{k}."))
            return out
        return {prefix[:-1]: d}

    a, b = flat(old.model_dump()), flat(new.model_dump())
    return sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))


def reload_config(read: Callable[[], FabricdConfig], current: list[FabricdConfig],
                  server: Any = None) -> None:
    """SIGHUP: ``read()`` the config again (the same file and flags). An invalid one changes
    nothing; of a valid one, the live settings are applied (the log level; the API's
    tokens, on ``server``) and the others named: they need a restart and are not
    applied (nothing half-applied)."""
    with _RELOADING:
        _reload(read, current, server)


def _reload(read: Callable[[], FabricdConfig], current: list[FabricdConfig],
            server: Any) -> None:
    try:
        new = read()
    except ConfigError as exc:
        log.error("reload (SIGHUP): config error: %s; nothing changed", exc)
        return
    changed = changed_settings(current[0], new)
    if not changed:
        log.info("reload (SIGHUP): the config has not changed")
        return
    live = [k for k in changed if k in LIVE_SETTINGS]
    later = [k for k in changed if k not in LIVE_SETTINGS]
    if "api.tokens" in live:
        from apps.api.server import reload_tokens

        try:
            if server is not None:
                reload_tokens(server, new.api)
        except RuntimeError as exc:
            log.error("reload (SIGHUP): the API's tokens: %s; nothing changed", exc)
            return
    if "log_level" in live:
        logging.getLogger().setLevel(getattr(logging, new.log_level.upper()))
    current[0] = current[0].model_copy(update={
        "log_level": new.log_level,
        "api": current[0].api.model_copy(update={"tokens": new.api.tokens})})
    if live:
        log.warning("reload (SIGHUP): applied %s", ", ".join(live))
    if later:
        log.warning("reload (SIGHUP): %s changed and need a restart: not applied",
                    ", ".join(later[:20]) + (f" (and {len(later) - 20} more)"
                                              if len(later) > 20 else ""))
