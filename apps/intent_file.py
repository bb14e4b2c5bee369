"""Operator intent kept in a file: the standalone store, alike to the cluster's etcd.

A standalone fabricd keeps the kinds of :mod:`controller.core.intent.kinds` (the QoS policy,
the drains, the registered jobs, the operator pins) in one JSON file, written whole on
every change (a temporary file, fsync, rename, fsync of the directory: a crash leaves
the old file or the new one, never half of one). Writes are compare-and-swap on a
kind's revision, as in etcd, so the API changes intent the same way in both modes:
compute the new value from the revision applied, write it if the store still holds that
revision, then apply what was written.

At start the file is read and every value checked as an API request would be; a file
that cannot be read, is not this format, or holds a value that does not decode is an
error naming the file and the kind, and nothing of it is applied.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
from pathlib import Path

from apps.cluster_store import StoreUnavailable
from controller.core.intent.kinds import DECODERS, KINDS, Intent, IntentError

FORMAT = 1


class IntentFileError(Exception):
    """The state file cannot be read (the message names the file and why)."""


class IntentFile:
    """The standalone intent store (see the module docstring). Thread-safe."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._revision = 0  # the last revision given (file-wide, like etcd's)
        self._kinds: dict[str, Intent] = {}

    def load(self) -> list[Intent]:
        """Read the file (absent: nothing kept yet); IntentFileError if it cannot be used."""
        try:
            text = self.path.read_bytes().decode()
        except UnicodeDecodeError as exc:
            raise IntentFileError(f"{self.path}: not JSON ({exc}); fix or remove it") from None
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise IntentFileError(f"{self.path}: cannot read the state file: "
                                  f"{exc.strerror}") from None
        try:
            data = json.loads(text)
        except (json.JSONDecodeError, RecursionError) as exc:
            raise IntentFileError(f"{self.path}: not JSON ({exc}); fix or remove it") from None
        if (not isinstance(data, dict) or data.get("format") != FORMAT
                or not isinstance(data.get("revision"), int)
                or not isinstance(data.get("intent"), dict)):
            raise IntentFileError(f"{self.path}: expected {{\"format\": {FORMAT}, "
                                  "\"revision\": N, \"intent\": {KIND: {\"revision\": N, "
                                  "\"value\": TEXT}}}")
        kinds = {}
        for kind, entry in data["intent"].items():
            if kind not in KINDS:
                raise IntentFileError(f"{self.path}: unknown kind {kind!r} (known: "
                                      f"{', '.join(KINDS)})")
            if (not isinstance(entry, dict) or not isinstance(entry.get("value"), str)
                    or not isinstance(entry.get("revision"), int)
                    or not 0 < entry["revision"] <= data["revision"]):
                raise IntentFileError(f"{self.path}: {kind}: expected {{\"revision\": N "
                                      f"(1..{data['revision']}), \"value\": TEXT}}")
            try:
                DECODERS[kind](entry["value"])
            except IntentError as exc:
                raise IntentFileError(f"{self.path}: {exc}; nothing of the file is "
                                      "applied") from None
            kinds[kind] = Intent(kind, entry["revision"], entry["value"])
        with self._lock:
            self._revision, self._kinds = data["revision"], kinds
        return [kinds[k] for k in KINDS if k in kinds]

    def write_intent(self, kind: str, value: str, expect: int) -> tuple[bool, Intent]:
        """Replace ``kind``'s value if the file still holds its revision ``expect`` (0:
        never written): (True, the new intent), or (False, what it holds now).
        StoreUnavailable if the file cannot be written (nothing changed then)."""
        with self._lock:
            held = self._kinds.get(kind, Intent(kind, 0, ""))
            if held.revision != expect:
                return False, held
            new = Intent(kind, self._revision + 1, value)
            kinds = {**self._kinds, kind: new}
            self._save(new.revision, kinds)
            self._revision, self._kinds = new.revision, kinds
            return True, new

    def _save(self, revision: int, kinds: dict[str, Intent]) -> None:
        body = json.dumps({"format": FORMAT, "revision": revision, "intent": {
            k: {"revision": i.revision, "value": i.value} for k, i in sorted(kinds.items())}},
            indent=1)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=self.path.parent)
            try:
                with os.fdopen(fd, "w") as f:
                    f.write(body + "\n")
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(tmp, self.path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
            dirfd = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(dirfd)
            finally:
                os.close(dirfd)
        except OSError as exc:
            raise StoreUnavailable(f"{self.path}: cannot write the state file: "
                                   f"{exc.strerror}") from None
