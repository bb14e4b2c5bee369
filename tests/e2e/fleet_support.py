"""What the end-to-end tests against the fake fleet (tests/e2e/test_fleet*.py) share: a
real fabricd that touches nothing on the machine, a fleet of fake OpenFlow 1.3 switches
cabled as a fabric (tests/fakes), hosts behind its host ports, and the checks: links
as the controller sees them, and every switch holding exactly what the controller
wants (its session complete, nothing pending; every entry, group and meter whole: match,
instructions, buckets, bands). What the fake holds is read from its own decoding of the
controller's messages (tests/fakes: its match fields and actions), not the controller's
read-back, and written in the ovs-ofctl syntax ``GetSwitchEntries`` answers in.

No root is needed and nothing on the machine is touched: the conftest's session fixture
(Open vSwitch start, ``mn -c``) is replaced by :func:`_environment` (import it into the
test module), and fabricd's QoS worker is pointed at an OVSDB that does not exist (with
QoS off it still reconciles OVSDB rows of the ports it sees, by name; with QoS on it
installs its marking entries and fails, harmlessly, to reach OVSDB).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable

import grpc
import pytest

from controller.core import constants as C
from controller.core.southbound import ofctl_text
from controller.core.southbound.openflow import Bucket, FlowRule, GroupRule, MeterRule
from mininet_topos.network import wait_until
from tests.fakes.fleet import Fleet
from tests.fakes.hosts import HostNet
from tests.fakes.layout import Layout, spine_leaf

FABRICCTL = [sys.executable, "-m", "controller.cli.fabricctl"]

__all__ = ["FIXTURES", "wait_until", "bring_up",
           "start_fleet", "wait_links", "wait_synced", "drift", "fabricctl",
           "links_of", "audit_entries", "connected"]


@pytest.fixture(scope="session", autouse=True)
def _environment():
    """Replaces tests/e2e/conftest.py's: no Open vSwitch, no Mininet clean-up here."""
    yield


@pytest.fixture
def start_fabricd(controller_factory, tmp_path) -> Callable:
    """``start(*args, qos=False, config={}, **factory_kw)``: a fabricd with its own API
    token and a QoS worker that cannot reach any OVSDB (``qos``: marking on)."""
    count = [0]

    def start(*extra: str, qos: bool = False, config: dict | None = None, **kw):
        count[0] += 1
        cfg = tmp_path / f"fabricd-{count[0]}.yaml"
        doc = dict(config or {})
        doc["qos"] = {**doc.get("qos", {}), "enabled": qos,
                      "ovsdb": f"unix:{tmp_path}/no-ovsdb-here.sock"}
        cfg.write_text(json.dumps(doc))  # (JSON is YAML)
        token = tmp_path / "api-token"
        args = [*([] if qos else ["--no-qos"]), "--config", str(cfg), "--token-file",
                str(token), *extra]
        ctl = controller_factory(*args, start=False, **kw)
        ctl.token_file = token
        ctl.start()
        return ctl

    return start


@pytest.fixture
def fabricd(start_fabricd):
    return start_fabricd()


@pytest.fixture
def fleets():
    """Fleets made by a test, closed after it whatever happened."""
    made: list[Fleet] = []
    yield made
    for fleet in made:
        fleet.close()


# what a test module takes over (``_environment, start_fabricd, fabricd, fleets =
# FIXTURES``): pytest finds fixtures by their name in the test's module
FIXTURES = (_environment, start_fabricd, fabricd, fleets)


def links_of(client) -> set[tuple[int, int, int, int]]:
    return {(lk.src_dpid, lk.src_port, lk.dst_dpid, lk.dst_port)
            for lk in client.topology().links}


def connected(client) -> set[int]:
    return {s.dpid for s in client.topology().switches if s.connected}


def wait_links(ctl, want: set, timeout: float, absent: set = frozenset()) -> tuple[bool, str]:
    """Until the controller's links are ``want`` (and none of ``absent``); the last
    view, in words."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    with ctl.client(timeout=5) as c:
        while time.monotonic() < deadline:
            try:
                got = links_of(c)
            except grpc.RpcError as exc:
                last = f"API: {exc.code()} {exc.details()}"
            else:
                if got == want and not got & absent:
                    return True, ""
                last = (f"{len(got & want)}/{len(want)} links, {len(got - want)} unexpected: "
                        f"{sorted(got - want)[:5]}, missing {sorted(want - got)[:5]}")
            time.sleep(0.2)
    return False, last


def held_text(sw) -> tuple[Counter, Counter, Counter]:
    """A fake switch's flows (but the declined flows' expiring copies), groups and
    meters, each in the ovs-ofctl syntax of ``GetSwitchEntries``."""
    flows = Counter(ofctl_text.flow_text(FlowRule(
        f["table"], f["priority"], tuple(sorted(
            (k, tuple(v) if isinstance(v, list) else v) for k, v in f["match"].items())),
        f["instructions"], f["cookie"])) for f in sw.flows()
        if not (C.is_ours(f["cookie"]) and C.cookie_kind(f["cookie"]) == C.KIND_NOCOPY))
    groups = Counter(ofctl_text.group_text(GroupRule(gid, g["type"], tuple(
        Bucket(b["actions"], b["weight"] if g["type"] == "select" else 1, b["watch_port"])
        for b in g["buckets"]))) for gid, g in sw.groups().items())
    meters = Counter(ofctl_text.meter_text(MeterRule(mid, *m["bands"][0]))
                     for mid, m in sw.meters().items() if len(m["bands"]) == 1)
    return flows, groups, meters


def drift(client, fleet: Fleet, dpid: int) -> str | None:
    """How the fake switch differs from what the controller wants (None: in sync)."""
    e = client.switch_entries(dpid)
    sw = fleet.switch(dpid)
    held = held_text(sw)
    want = (Counter(e.flows), Counter(e.groups), Counter(e.meters))
    problems = []
    if not e.complete or e.pending:
        problems.append(f"complete={e.complete} pending={e.pending}")
    for what, h, w in zip(("flows", "groups", "meters"), held, want, strict=True):
        if h != w:
            problems.append(f"{what}: held-not-wanted {sorted((h - w).elements())[:4]}"
                            f" wanted-not-held {sorted((w - h).elements())[:4]}")
    if sw.errors:
        problems.append(f"errors sent to the controller: {sw.errors[:3]}")
    return f"switch {dpid}: " + "; ".join(problems) if problems else None


def wait_synced(ctl, fleet: Fleet, dpids: list[int], timeout: float) -> tuple[bool, list]:
    deadline = time.monotonic() + timeout
    last: list = ["not checked"]
    with ctl.client(timeout=5) as c:
        while time.monotonic() < deadline:
            try:
                last = [d for d in (drift(c, fleet, dpid) for dpid in dpids) if d]
            except grpc.RpcError as exc:
                last = [f"API: {exc.code()} {exc.details()}"]
            if not last:
                return True, []
            time.sleep(0.5)
    return False, last


def assert_synced(ctl, fleet: Fleet, timeout: float = 20.0) -> None:
    """Every switch of the fleet holds exactly what the controller wants (the fleet's
    own ``assert_switches_hold_desired``), and the fake found no bug in itself."""
    ok, problems = wait_synced(ctl, fleet, fleet.layout.dpids, timeout)
    assert ok, "switches not in sync:\n" + "\n".join(problems[:10])
    assert fleet.failures == [], fleet.failures[0]


def start_fleet(ctl, made: list, lay: Layout, discover_s: float = 30, sync_s: float = 30,
                links: set | None = None) -> tuple[Fleet, HostNet]:
    """A fleet cabled as ``lay`` with hosts on its host ports, connected all at once;
    asserts that ``links`` (default: every cable, both ways) are discovered and every
    switch synced."""
    hosts = HostNet(lay)
    fleet = Fleet(ctl.of_port, lay, on_host_frame=hosts.on_frame)
    hosts.attach(fleet)
    made.append(fleet)
    fleet.connect_all()
    want = lay.directed_links() if links is None else links
    found, why = wait_links(ctl, want, discover_s)
    assert found, (f"not every link discovered in {discover_s:.0f} s ({why}); fleet "
                   f"{dict(fleet.stats)}, controller process "
                   f"{'alive' if ctl.proc.poll() is None else ctl.proc.returncode}")
    assert_synced(ctl, fleet, sync_s)
    return fleet, hosts


def bring_up(ctl, made: list, spines: int, leaves: int, hosts: int, discover_s: float,
             sync_s: float):
    """A spine-leaf fleet connected all at once; asserts discovery and sync, reports the
    times."""
    lay = spine_leaf(spines, leaves, hosts)
    fleet = Fleet(ctl.of_port, lay)
    made.append(fleet)
    start = time.monotonic()
    fleet.connect_all()
    found, why = wait_links(ctl, lay.directed_links(), discover_s)
    discovered = time.monotonic() - start
    assert found, (f"{spines}x{leaves}: not every link discovered in {discover_s:.0f} s "
                   f"({why}); fleet {dict(fleet.stats)}, controller process "
                   f"{'alive' if ctl.proc.poll() is None else ctl.proc.returncode}")
    synced, problems = wait_synced(ctl, fleet, lay.dpids, sync_s)
    assert synced, f"{spines}x{leaves}: switches not in sync:\n" + "\n".join(problems[:10])
    print(f"{spines}x{leaves} ({len(lay.dpids)} switches, {len(lay.directed_links())} "
          f"links): discovered in {discovered:.1f} s, synced in "
          f"{time.monotonic() - start:.1f} s")
    assert fleet.failures == [], fleet.failures[0]
    return fleet, lay


def fabricctl(ctl, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    """fabricctl as an operator runs it, with this fabricd's token."""
    env = dict(os.environ)
    env.pop("AIFABRIC_TOKEN", None)
    if ctl.token_file is not None:
        env["AIFABRIC_TOKEN_FILE"] = str(ctl.token_file)
    return subprocess.run([*FABRICCTL, "--server", ctl.grpc_addr, *args], input=stdin,
                          capture_output=True, text=True, timeout=30, env=env)


def audit_entries(ctl) -> list[tuple[str, str, str]]:
    """(who, method, result) of every audit line in the controller's log."""
    return [(a["who"], a["method"], a["result"]) for a in (
        json.loads(line.split("audit: ", 1)[1]) for line in ctl.log_path.read_text()
        .splitlines() if "aifabric.api: audit: " in line)]
