"""YAML (and JSON, a subset of it) documents from outside, read within bounds: the
config file, an API request's QoS policy document, the files fabricctl reads.

PyYAML's ``safe_load`` is safe from code execution, not from cost: a 314-byte document
of nested aliases (a "billion laughs") took 3.1 s and 560 MB through SetQosPolicy, a
5,000-deep list raised ``RecursionError`` (an uncaught traceback per request), and a
5,000-digit integer a ``ValueError`` that is not a ``YAMLError``. Here aliases are
refused (anchors alone are harmless), nesting is bounded, every failure is a
:class:`DocumentError` with a one-line reason, and the caller bounds the size.
"""

from __future__ import annotations

from typing import Any

import yaml
from yaml.composer import ComposerError

MAX_DEPTH = 32  # nesting of mappings and lists; any document of ours needs under 8


class DocumentError(ValueError):
    """A document that cannot be read: the reason, in one line."""


class BoundedLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` without aliases, and with a nesting bound."""

    max_depth = MAX_DEPTH

    def __init__(self, stream) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent, index):  # noqa: D102 - PyYAML's API
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise ComposerError(None, None, "aliases (*name) are not accepted",
                                event.start_mark)
        self._depth += 1
        try:
            if self._depth > self.max_depth:
                raise ComposerError(None, None, f"nested deeper than {self.max_depth} levels",
                                    self.peek_event().start_mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def load(text: str | bytes, max_bytes: int) -> Any:
    """The document in ``text``; DocumentError (a one-line reason with the line where
    the parser stopped, when it says) if it is larger than ``max_bytes``, not YAML or
    JSON, uses aliases, is nested too deep, or holds a value Python refuses (an integer
    of thousands of digits)."""
    if len(text) > max_bytes:
        raise DocumentError(f"larger than {max_bytes} bytes")
    try:
        return yaml.load(text, Loader=BoundedLoader)  # noqa: S506 - a SafeLoader
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f" at line {mark.line + 1}" if mark else ""
        raise DocumentError(f"{exc.problem or exc.context or 'not valid YAML'}{where}") \
            from None
    except yaml.YAMLError as exc:
        raise DocumentError(f"not valid YAML or JSON ({str(exc).splitlines()[0][:200]})") \
            from None
    except (ValueError, RecursionError) as exc:
        raise DocumentError(f"a value cannot be read: {str(exc)[:160]}") from None
