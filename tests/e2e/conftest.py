"""Fixtures for end-to-end tests: a real fabricd process, real Open vSwitch, real Mininet.

These tests need root. They fail (never skip) without it: a skipped end-to-end test
must not pass for a green run.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import pytest

from controller.core import constants as C
from mininet_topos import tables
from mininet_topos.controller_proc import FabricdProcess
from mininet_topos.discovery import wait_discovered
from mininet_topos.network import (
    cleanup,
    ensure_ovs,
    fabric_network,
    reachability,
    replies_between,
    wait_qos_provisioned,
    wait_until,
)
from mininet_topos.spine_leaf import FabricSpec
from tests.ecmp import ecmp_towards

HERE = Path(__file__).resolve().parent


@pytest.hookimpl(tryfirst=True)  # (before ``-m`` deselects by marker)
def pytest_collection_modifyitems(config, items):
    """Mark every test under tests/e2e ``e2e``, so that ``-m e2e`` / ``-m "not e2e"``
    select them. (A ``pytestmark`` in a conftest marks nothing: it applies only to the
    module that sets it. This hook sees every item of the session: only ours are marked.)"""
    for item in items:
        if item.path.resolve().is_relative_to(HERE):
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session", autouse=True)
def _environment(request):
    """Root; and Open vSwitch started and Mininet's leftovers removed, before and after,
    when the session has a test marked ``mininet`` (the other lane of
    scripts/run_tests.py runs beside a network: it must not clean it away)."""
    assert os.geteuid() == 0, "end-to-end tests need root (Mininet, Open vSwitch)"
    mininet = any(item.get_closest_marker("mininet") for item in request.session.items)
    if mininet:
        ensure_ovs()
        cleanup()
    yield
    if mininet:
        cleanup()


@pytest.fixture
def controller_factory(tmp_path, request):
    """Start fabricd processes (launched, not waited for: their first client, or
    ``wait_serving``, waits); their logs are printed when a test fails."""
    started: list[FabricdProcess] = []

    def make(*extra: str, of_port: int | None = None, grpc_port: int | None = None,
             start: bool = True) -> FabricdProcess:
        ctl = FabricdProcess(tmp_path / f"fabricd-{len(started)}.log", of_port=of_port,
                             grpc_port=grpc_port, extra_args=list(extra))
        started.append(ctl)
        if start:
            # (not waited for here: ``running_fabric`` builds the network meanwhile;
            # its first client, or ``wait_serving``, waits for it)
            ctl.launch()
        return ctl

    yield make
    for ctl in started:
        ctl.stop()
        if ctl.stop_timed_out:  # (past pytest's capture: CI shows it)
            print(f"--- {ctl.log_path.name}: did not stop on SIGTERM ---\n"
                  f"{ctl.log_path.read_text()[-12000:]}", file=sys.__stderr__)
    if request.node.rep_call_failed if hasattr(request.node, "rep_call_failed") else False:
        for log in sorted(Path(tmp_path).glob("fabricd-*.log")):
            print(f"--- {log.name} ---\n{log.read_text()[-6000:]}")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.when == "call" and rep.failed:
        item.rep_call_failed = True


@contextmanager
def running_fabric(ctl: FabricdProcess, spec: FabricSpec, timeout: float = 60.0):
    """A Mininet fabric against ``ctl``, discovered and settled (hosts may speak)."""
    with fabric_network(spec, ctl.controller, before_start=ctl.wait_serving) as net:
        with ctl.client() as client:
            topo = wait_discovered(client, spec, timeout=timeout)
            if client.status().qos_enabled:
                wait_qos_provisioned(net)
        yield net, topo


@pytest.fixture
def fabric_2x4(controller_factory):
    ctl = controller_factory()
    spec = FabricSpec(spines=2, leaves=4, hosts_per_leaf=2, bw=10)
    with running_fabric(ctl, spec) as (net, topo):
        yield ctl, net, spec


def assert_switches_hold_desired(ctl: FabricdProcess, net, timeout: float = 15.0) -> None:
    """Every switch holds exactly what the controller wants (flows, groups, meters, as
    OVS dumps them), within ``timeout``: no stale, no missing entry, nothing pending."""
    last: list = []

    def in_sync() -> bool:
        nonlocal last
        with ctl.client() as c:
            last = tables.drift(c, tables.dpids(net))
        return not last

    assert wait_until(in_sync, timeout, interval=0.5), (
        "switches differ from the controller's desired state:\n"
        + "\n".join(str(d) for d in last))


def all_pairs_ok(net) -> None:
    result = reachability(net, count=1, timeout=2)
    failed = [pair for pair, ok in result.items() if not ok]
    assert failed == []
    # and then with several packets each, not one lost (every source at once)
    got = replies_between(net.hosts, count=3, timeout=1, interval=0.05)
    lost = [(a, ip, n) for (a, ip), n in sorted(got.items()) if n != 3]
    assert lost == []


def wait_qos_ready(net) -> None:
    """Queues are in place (the fixture waited for them); every host pair has exchanged a
    packet (ARP resolved, hosts learned), as in a running job."""
    wait_qos_provisioned(net)
    reachability(net, count=1, timeout=2)


def scrape(ctl) -> dict:
    """The controller's /metrics, parsed by prometheus_client (families by name)."""
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    ctl.wait_serving()
    with urllib.request.urlopen(f"http://{ctl.metrics_addr}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    return {f.name: f for f in text_string_to_metric_families(text)}


def ofctl(switch: str, *args: str) -> str:
    return subprocess.run(["ovs-ofctl", "-O", "OpenFlow13", *args, switch], check=True,
                          capture_output=True, text=True).stdout


def queue_rates(port: str) -> dict[int, int]:
    """queue -> min-rate, as OVSDB holds it for ``port`` ({} while the port has no QoS,
    as between a controller clearing it and making it again)."""
    def get(*args: str) -> str | None:
        res = subprocess.run(["ovs-vsctl", "get", *args], capture_output=True, text=True)
        return res.stdout.strip() if res.returncode == 0 else None

    qos = get("port", port, "qos")
    if not qos or qos == "[]":
        return {}
    queues = get("qos", qos, "queues")
    if queues is None:
        return {}  # (replaced meanwhile)
    out = {}
    for item in queues.strip("{}").split(", "):
        if not item:
            continue
        q, uuid = item.split("=")
        rate = get("queue", uuid, "other_config:min-rate")
        if rate is None:
            return {}
        out[int(q)] = int(rate.strip('"'))
    return out


def marking(switch: str) -> dict[str, str]:
    return {k: v["actions"] for k, v in flow_table(switch).items()
            if k.startswith(f"{C.TABLE_CLASSIFY}/5")}


def group_buckets(switch: str, kind: str = "select") -> dict[int, list[int]]:
    """ECMP (``select``, the default): where the switch sends towards each leaf, as
    route id -> the output ports of the buckets of the group it uses (a leaf's route
    entries in table 3 lead to its shared groups; a spine's group ids are route ids).
    ``ff``: TE's per-uplink groups, group id -> ports."""
    groups = _groups(switch, kind)
    if kind != "select":
        return groups
    routes = []
    for line in ofctl(switch, "dump-flows").splitlines():
        m = re.search(rf"table={C.TABLE_ROUTE}, .*metadata=(0x[0-9a-f]+).*group:(\d+)", line)
        if m:
            routes.append((int(m.group(1), 16), int(m.group(2))))
    return ecmp_towards(routes, groups)


def _groups(switch: str, kind: str) -> dict[int, list[int]]:
    """group id -> output ports of its buckets, for the switch's groups of one type."""
    out: dict[int, list[int]] = {}
    for line in ofctl(switch, "dump-groups").splitlines():
        line = line.strip()
        if not line.startswith("group_id=") or f",type={kind}," not in line:
            continue
        gid = int(line.split(",")[0].split("=")[1])
        ports = []
        for part in line.split("bucket=")[1:]:
            for item in part.split(","):
                if item.startswith("actions=output:") or item.startswith("output:"):
                    ports.append(int(item.rsplit(":", 1)[1]))
        out[gid] = sorted(ports)
    return out


def audit_entries(ctl: FabricdProcess) -> list[tuple[str, str, str]]:
    """(who, method, result) of every audit line in the controller's log."""
    return [(a["who"], a["method"], a["result"]) for a in (
        json.loads(line.split("audit: ", 1)[1]) for line in ctl.log_path.read_text()
        .splitlines() if "aifabric.api: audit: " in line)]


__all__ = ["running_fabric", "assert_switches_hold_desired", "all_pairs_ok", "scrape",
           "wait_qos_ready", "ofctl", "group_buckets",
           "wait_until", "audit_entries", "flow_table", "assert_kept", "qos_rows",
           "replay_events"]


def flow_table(switch: str) -> dict[str, dict]:
    """The switch's entries keyed by 'table/priority/match', with cookie, duration, packets."""
    import re

    flows = {}
    pat = re.compile(
        r"cookie=(0x[0-9a-f]+), duration=([\d.]+)s, table=(\d+), n_packets=(\d+), "
        r"n_bytes=\d+, (?:.*?)priority=(\d+)(?:,(\S+))? actions=(\S+)"
    )
    for line in ofctl(switch, "dump-flows").splitlines():
        m = pat.search(line)
        if m:
            cookie, dur, table, pkts, prio, match, actions = m.groups()
            flows[f"{table}/{prio}/{match or ''}"] = {
                "cookie": int(cookie, 16), "duration": float(dur), "packets": int(pkts),
                "actions": actions,
            }
    return flows


def assert_kept(before: dict[str, dict], after: dict[str, dict], elapsed: float) -> None:
    """Every entry (of :func:`flow_table`) is still there with the same actions, and was
    never re-added (``elapsed`` seconds after ``before`` was read)."""
    assert set(after) == set(before)
    for key, old in before.items():
        new = after[key]
        assert new["actions"] == old["actions"], key
        assert new["duration"] >= old["duration"] + elapsed - 0.5, f"{key} was re-installed"


def qos_rows() -> dict[str, str]:
    """Port name -> the uuid of its QoS row, for every port that has one."""
    out = json.loads(subprocess.run(
        ["ovs-vsctl", "--format=json", "--columns=name,qos", "list", "port"],
        capture_output=True, text=True, check=True).stdout)
    rows = {}
    for name, qos in out["data"]:
        if isinstance(qos, list) and qos[0] == "uuid":
            rows[name] = qos[1]
    return rows


def replay_events(ctl: FabricdProcess, *kinds: str) -> list:
    """Every event of ``kinds`` so far (a replayed watch, read for a second)."""
    import grpc

    got = []
    with ctl.client() as c:
        try:
            for e in c.watch_events(list(kinds), replay=True, timeout=1.0):
                got.append(e)
        except grpc.RpcError as exc:
            if exc.code() != grpc.StatusCode.DEADLINE_EXCEEDED:
                raise
    return got
