"""The core's modules import each other without a circle (counting imports inside
functions and under TYPE_CHECKING: a circle hidden there is still one concern that
cannot be read, or loaded, without the other)."""

from __future__ import annotations

import ast
from pathlib import Path

import networkx as nx

ROOT = Path(__file__).resolve().parents[2]


def import_graph(package: str) -> nx.DiGraph:
    """Module -> the modules of ``package`` it imports. Importing ``a.b.c`` from outside
    the package ``a.b`` also runs ``a.b`` (its __init__), so it depends on it too."""
    files = {}
    for path in (ROOT / package.replace(".", "/")).rglob("*.py"):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        files[".".join(parts)] = path
    graph = nx.DiGraph()
    for module, path in files.items():
        graph.add_node(module)
        here = module if path.name == "__init__.py" else module.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = here.split(".")[:len(here.split(".")) - (node.level - 1)]
                    base = ".".join(up + ([base] if base else []))
                # (``from pkg import sub`` imports the submodule)
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in files else base
                           for a in node.names]
            else:
                continue
            for target in targets:
                parts = target.split(".")
                for n in range(1, len(parts) + 1):
                    dep = ".".join(parts[:n])
                    inside = module == dep or module.startswith(dep + ".")
                    if dep in files and (n == len(parts) or not inside) and dep != module:
                        graph.add_edge(module, dep)
    return graph


def test_the_core_has_no_import_circle():
    graph = import_graph("controller.core")
    assert "controller.core.te.engine" in graph and graph.number_of_edges() > 100
    assert list(nx.simple_cycles(graph)) == []
