"""The alerting rules shipped in config/alerts.yml: valid for Prometheus (promtool check
rules), firing as their unit tests say (promtool test rules tests/alerts/), and naming
only metrics fabricd exports; the Grafana dashboard likewise queries only those."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
METRIC = re.compile(r"\baifabric_[a-z_]+")


def promtool() -> str:
    path = shutil.which("promtool")
    assert path, "promtool is missing: make setup installs Debian's prometheus"
    return path


def exported() -> set[str]:
    """Every metric family fabricd defines (its name as written in apps/)."""
    names: set[str] = set()
    for py in (ROOT / "apps").rglob("*.py"):
        names |= set(re.findall(r'"(aifabric_[a-z_]+)"', py.read_text()))
    return names


def named(text: str) -> set[str]:
    """Metric families a query names (a counter's ``_total`` and a histogram's
    ``_bucket``/``_sum``/``_count`` are its family)."""
    return {re.sub(r"_(total|bucket|sum|count)$", "", m) for m in METRIC.findall(text)}


def test_the_rules_are_valid_and_their_unit_tests_pass():
    check = subprocess.run([promtool(), "check", "rules", str(ROOT / "config/alerts.yml")],
                           capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, check.stdout + check.stderr
    test = subprocess.run([promtool(), "test", "rules", "alerts_test.yml"],
                          cwd=ROOT / "tests/alerts", capture_output=True, text=True, timeout=60)
    assert test.returncode == 0, test.stdout + test.stderr


def test_rules_and_dashboard_name_only_metrics_fabricd_exports():
    have = exported()
    assert {"aifabric_links", "aifabric_switch_connected"} <= have  # (the scan works)
    for path in ("config/alerts.yml", "docs/grafana-dashboard.json"):
        missing = named((ROOT / path).read_text()) - have
        assert missing == set(), f"{path} names metrics fabricd does not export: {missing}"
