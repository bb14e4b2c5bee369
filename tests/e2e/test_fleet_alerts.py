"""The shipped alerting rules (config/alerts.yml) evaluated by a real Prometheus that
scrapes a real fabricd driving a fake 2x4 fleet: nothing fires on a healthy fabric, and
a spine-leaf cable cut fires AifabricLinkDown (each rule's logic is unit-tested by
promtool: tests/alerts/alerts_test.yml)."""

from __future__ import annotations

import json
import shutil
import subprocess
import urllib.parse
import urllib.request
from pathlib import Path

from mininet_topos.controller_proc import free_port, start_logged
from tests.e2e import fleet_support as fs
from tests.e2e.fleet_support import start_fleet
from tests.fakes.layout import spine_leaf

# fixtures, by name
_environment, start_fabricd, fabricd, fleets = fs.FIXTURES

ROOT = Path(__file__).resolve().parents[2]


def firing(web: str) -> dict[str, list[dict]]:
    with urllib.request.urlopen(f"http://{web}/api/v1/alerts", timeout=2) as r:
        alerts = json.loads(r.read())["data"]["alerts"]
    out: dict[str, list[dict]] = {}
    for a in alerts:
        if a["state"] == "firing":
            out.setdefault(a["labels"]["alertname"], []).append(a["labels"])
    return out


def query(web: str, expr: str) -> list[str]:
    """The values of an instant query's result."""
    url = f"http://{web}/api/v1/query?query={urllib.parse.quote(expr)}"
    with urllib.request.urlopen(url, timeout=2) as r:
        return [v["value"][1] for v in json.loads(r.read())["data"]["result"]]


def test_prometheus_fires_the_shipped_link_down_alert_on_a_cut(fabricd, fleets, tmp_path):
    prometheus = shutil.which("prometheus")
    assert prometheus, "prometheus is missing: make setup installs Debian's prometheus"
    fleet, _ = start_fleet(fabricd, fleets, spine_leaf(2, 4, 1))
    shutil.copy(ROOT / "config/alerts.yml", tmp_path / "alerts.yml")
    (tmp_path / "prometheus.yml").write_text(json.dumps({
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": ["alerts.yml"],
        "scrape_configs": [{"job_name": "aifabric", "static_configs": [
            {"targets": [fabricd.metrics_addr]}]}]}))
    web = f"127.0.0.1:{free_port()}"

    def ready() -> bool:
        try:
            with urllib.request.urlopen(f"http://{web}/-/ready", timeout=1) as r:
                return r.status == 200
        except OSError:
            return False

    proc = start_logged([prometheus, f"--config.file={tmp_path / 'prometheus.yml'}",
                         f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                         f"--web.listen-address={web}"], tmp_path / "prometheus.log",
                        ready, 30, "prometheus")
    try:
        # a few scrapes and evaluations of the healthy fabric: all 16 link directions
        assert fs.wait_until(lambda: query(web, "min_over_time(aifabric_links[3s])")
                             == ["16"], timeout=20, interval=0.5), "not scraped"
        # (the fleet's fabricd has no OVSDB to reach: its QoS worker fails, and says so)
        assert set(firing(web)) <= {"AifabricQosErrors"}, firing(web)
        fleet.link_down((2001, 1))  # l1's uplink to s1
        assert fs.wait_until(lambda: "AifabricLinkDown" in firing(web), timeout=20,
                             interval=0.5), firing(web)
        [down] = firing(web)["AifabricLinkDown"]
        assert down["instance"] == fabricd.metrics_addr and down["severity"] == "critical"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
