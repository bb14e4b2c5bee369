"""The audit log of the management API: one JSON line per call of a mutating method
(when, who: token name and peer address, what: method and request, the result), and
refused calls (no valid token, not allowed) aggregated.

Both are bounded: a request's strings and lists are cut (a 2.5 MB job id made a 2.5 MB
line), and refusals are written at most once per ``interval`` per (peer host, method,
result), the calls held back counted in the next line of that key or in a line of
their own once the interval has passed (5,250 unauthenticated calls in 5 s from one
client wrote 672 KB here and 950 KB to the daemon's log).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from pathlib import Path
from typing import Any

log = logging.getLogger("aifabric.api")

MAX_TEXT = 200  # characters of one string of a request kept in its line
MAX_ITEMS = 16  # items of one list kept (the first ones say enough)
MAX_KEYS = 1024  # refusal keys held at once (a flood from many addresses: counted in all)


def bounded(value: Any, depth: int = 0) -> Any:
    """``value`` (a request as a dict) with long strings and lists cut, saying so."""
    if isinstance(value, str):
        return value if len(value) <= MAX_TEXT else (
            f"{value[:MAX_TEXT]}... ({len(value)} characters)")
    if depth > 8:
        return "..."
    if isinstance(value, dict):
        return {bounded(k, depth + 1): bounded(v, depth + 1)
                for k, v in list(value.items())[:MAX_ITEMS * 4]}
    if isinstance(value, list):
        out = [bounded(v, depth + 1) for v in value[:MAX_ITEMS]]
        return out if len(value) <= MAX_ITEMS else [*out, f"... ({len(value)} in all)"]
    return value


def peer_host(peer: str) -> str:
    """gRPC's peer (``ipv4:10.0.0.1:51234``, ``ipv6:[::1]:5``, ``unix:...``) without
    the client's port: refusals from one host aggregate across its connections."""
    kind, _, rest = peer.partition(":")
    if kind in ("ipv4", "ipv6") and ":" in rest:
        return f"{kind}:{rest.rpartition(':')[0]}"
    return peer or "-"


class AuditLog:
    """Append-only JSON lines; one writer lock, flushed per line."""

    def __init__(self, path: str | Path | None, interval: float = 10.0,
                 clock=time.monotonic) -> None:
        self.path = Path(path) if path else None
        self.interval = interval
        self._clock = clock
        self._lock = threading.Lock()
        # refusal key -> (when its last line was written, calls held back since)
        self._refused: dict[tuple[str, str, str], list] = {}
        self.refusals = 0  # refused calls, in all
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)

    def record(self, who: str, peer: str, method: str, request: dict, result: str,
               detail: str = "") -> None:
        entry = {"who": who, "peer": peer, "method": method, "request": bounded(request),
                 "result": result}
        if detail:
            entry["detail"] = bounded(detail)
        with self._lock:
            self._flush_held(self._clock())
            self._write(entry)

    def refused(self, who: str, peer: str, method: str, result: str) -> None:
        """A call refused before it ran (no valid token, or not allowed): a line, unless
        one of the same host, method and result went out less than ``interval`` ago."""
        key = (peer_host(peer), method, result)
        now = self._clock()
        with self._lock:
            self.refusals += 1
            self._flush_held(now)
            held = self._refused.get(key)
            if held is not None and now - held[0] < self.interval:
                held[1] += 1
                return
            if held is None and len(self._refused) >= MAX_KEYS:
                return  # (counted in ``refusals``; lines resume as keys age out)
            self._refused[key] = [now, 0]
            self._write({"who": who, "peer": peer, "method": method, "request": {},
                         "result": result}, warn=True)

    def _flush_held(self, now: float) -> None:
        """Lines for the refusals held back whose interval has passed (caller locks)."""
        for key, (since, n) in list(self._refused.items()):
            if now - since < self.interval:
                continue
            del self._refused[key]
            if n:
                host, method, result = key
                self._write({"who": "-", "peer": host, "method": method, "request": {},
                             "result": result, "repeats": n,
                             "detail": f"{n} more calls like it in {self.interval:g} s"},
                            warn=True)

    def _write(self, entry: dict, warn: bool = False) -> None:
        now = time.time()
        entry = {"time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now))
                 + f".{int(now * 1000) % 1000:03d}Z", **entry}
        line = json.dumps(entry, sort_keys=True)
        log.log(logging.WARNING if warn else logging.INFO, "audit: %s", line)
        if self.path is not None:
            with self.path.open("a") as f:
                f.write(line + "\n")
