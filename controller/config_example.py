"""The example configuration, written from the config model itself.

``config/fabricd.example.yaml`` is this module's output (``make config-example``): every
key with its built-in default and its description, each section with its docstring,
examples as comments. A unit test fails when the shipped file differs, so the example
cannot drift from what fabricd accepts.
"""

from __future__ import annotations

import sys
import textwrap
from typing import Any

import yaml
from pydantic import BaseModel

from controller.config import FabricdConfig

HEADER = """\
# fabricd configuration: every key is optional, and the values below are the built-in
# defaults. Flags given on the command line override what is here (fabricd --help).
# Written from the config model (controller/config.py) by `make config-example`.
"""
WIDTH = 88


def _comment(text: str, indent: str) -> list[str]:
    words = " ".join(text.replace("``", "`").split())
    return [f"{indent}# {line}" for line in textwrap.wrap(words, WIDTH - len(indent) - 2)]


def _scalar(value: Any) -> str:
    """A value as one line of YAML (lists and mappings in flow style)."""
    text = yaml.safe_dump(value, default_flow_style=True, width=10_000, sort_keys=False)
    return text.strip().removesuffix("\n...").removesuffix("...").strip()


def _doc(cls: type[BaseModel]) -> str:
    doc = (cls.__doc__ or "").strip()
    return doc.split("\n\n")[0]


def _section(model: BaseModel, indent: str) -> list[str]:
    out: list[str] = []
    data = model.model_dump(mode="json")
    for name, info in type(model).model_fields.items():
        value = getattr(model, name)
        if isinstance(value, BaseModel):
            out.append("")
            out += _comment(info.description or _doc(type(value)), indent)
            out.append(f"{indent}{name}:")
            out += _section(value, indent + "  ")
            continue
        if not indent and out and out[-1]:
            out.append("")  # (top-level keys stand apart)
        if info.description:
            out += _comment(info.description, indent)
        out.append(f"{indent}{name}: {_scalar(data[name])}")
        for example in info.examples or ():
            for line in yaml.safe_dump({name: example}, default_flow_style=None,
                                       width=WIDTH, sort_keys=False).splitlines():
                out.append(f"{indent}# {line}")
    return out


def render() -> str:
    """The example file's text."""
    lines = [*HEADER.splitlines(), "", *_section(FabricdConfig(), "")]
    return "\n".join(lines).replace("\n\n\n", "\n\n") + "\n"


if __name__ == "__main__":
    sys.stdout.write(render())
