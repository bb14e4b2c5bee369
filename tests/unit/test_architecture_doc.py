"""docs/architecture.md is a newcomer's map: every module of the core and the apps is on
it, and every subpackage it lists exists."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "architecture.md").read_text()


def test_every_module_of_the_core_and_the_apps_is_named_in_the_architecture_doc():
    modules = [p for pkg in ("controller/core", "apps") for p in (ROOT / pkg).rglob("*.py")
               if p.name != "__init__.py"]
    assert len(modules) > 60
    missing = [str(p.relative_to(ROOT)) for p in modules
               if not re.search(rf"(?<![\w/]){re.escape(p.name)}", DOC)]
    assert missing == []


def test_the_subpackages_the_doc_lists_exist():
    core = DOC[DOC.index("controller/core/   the pure core"):DOC.index("controller/config.py")]
    listed = re.findall(r"^  (\w+)/ {3,}", core, re.M)
    assert {"model", "fabric", "te", "southbound", "intent"} <= set(listed)
    for name in listed:
        assert (ROOT / "controller" / "core" / name / "__init__.py").exists(), name
