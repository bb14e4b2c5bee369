"""Text in and out of the command-line tools: tables, and the documents they read."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

from controller import documents

MAX_DOCUMENT_BYTES = 64 << 20  # a file fabricctl reads


def read_document(path: str) -> Any:
    """A YAML (or JSON) file's content (``-``: standard input); ValueError saying why it
    cannot be read."""
    try:
        text = sys.stdin.read() if path == "-" else open(path).read()
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror}") from None
    try:
        return documents.load(text, MAX_DOCUMENT_BYTES)
    except documents.DocumentError as exc:
        raise ValueError(f"{path} is not YAML or JSON: {exc}") from None


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A plain aligned text table."""
    cells = [[str(h) for h in headers]] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
