"""Files that hold a secret (the API's admin token, the cluster's secret): refused when
other users may read them, as ssh refuses such a private key."""

from __future__ import annotations

from pathlib import Path


def read_private(path: str | Path, what: str, min_length: int) -> str:
    """The stripped text of ``path``; RuntimeError in one line (naming the file, its
    mode and the mend) if others may open it, it cannot be read, or it is shorter than
    ``min_length`` characters."""
    p = Path(path).expanduser()
    try:
        mode = p.stat().st_mode & 0o777
        if mode & 0o077:
            raise RuntimeError(f"{p}: {what} is open to other users (mode {mode:o}); run: "
                               f"chmod 600 {p}")
        text = p.read_text().strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise RuntimeError(f"{p}: cannot read {what}: {exc}") from None
    if len(text) < min_length:
        raise RuntimeError(f"{p}: {what} in it is shorter than {min_length} characters")
    return text
