"""A real fabricd against a fleet of fake OpenFlow 1.3 switches (tests/fakes), each on
its own TCP session, cabled as a spine-leaf fabric: no Mininet, no Open vSwitch, so a
fabric of hundreds of switches fits on one machine.

Checked through the gRPC API: every directed link is discovered (the controller's LLDP
probes go out of one fake switch and come back as packet-ins from its peer only through
the LLDP entry the controller installed there), and every switch is synced (its session
complete, nothing pending, and the fake holds exactly the entries, groups and meters
the controller says it wants, compared by table/priority/cookie, group id/type/buckets,
meter id/rate/burst).

No root is needed and nothing on the machine is touched: the conftest's session fixture
(Open vSwitch start, ``mn -c``) is replaced here, and fabricd's QoS worker is pointed at
an OVSDB that does not exist (with ``--no-qos`` it still reconciles OVSDB rows of the
ports it sees, by name).
"""

from __future__ import annotations

import re
import time
from collections import Counter

import grpc
import pytest

from controller.core import constants as C
from tests.fakes.fleet import Fleet
from tests.fakes.layout import spine_leaf


@pytest.fixture(scope="session", autouse=True)
def _environment():
    """Replaces tests/e2e/conftest.py's: no Open vSwitch, no Mininet clean-up here."""
    yield


@pytest.fixture
def fabricd(controller_factory, tmp_path):
    cfg = tmp_path / "fabricd.yaml"
    cfg.write_text("qos:\n  enabled: false\n"
                   f"  ovsdb: unix:{tmp_path}/no-ovsdb-here.sock\n")
    token = tmp_path / "api-token"
    ctl = controller_factory("--no-qos", "--config", str(cfg), "--token-file", str(token))
    ctl.token_file = token
    return ctl


def _links(client) -> set[tuple[int, int, int, int]]:
    return {(lk.src_dpid, lk.src_port, lk.dst_dpid, lk.dst_port)
            for lk in client.topology().links}


def wait_links(ctl, want: set, timeout: float, absent: set = frozenset()) -> tuple[bool, str]:
    """Until the controller's links are ``want`` (and none of ``absent``); the last
    view, in words."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    with ctl.client(timeout=5) as c:
        while time.monotonic() < deadline:
            try:
                got = _links(c)
            except grpc.RpcError as exc:
                last = f"API: {exc.code()} {exc.details()}"
            else:
                if got == want and not got & absent:
                    return True, ""
                last = (f"{len(got & want)}/{len(want)} links, {len(got - want)} unexpected: "
                        f"{sorted(got - want)[:5]}, missing {sorted(want - got)[:5]}")
            time.sleep(0.5)
    return False, last


def _flow_key(line: str) -> tuple[int, int, int]:
    f = dict(re.findall(r"(table|priority|cookie)=(0x[0-9a-f]+|\d+)", line))
    return int(f["table"]), int(f["priority"]), int(f["cookie"], 0)


def _group_key(line: str) -> tuple[int, str, tuple[int | None, ...]]:
    gid = int(re.search(r"group_id=(\d+)", line).group(1))
    kind = re.search(r"type=(\w+)", line).group(1).replace("fast_failover", "ff")
    watches = tuple(int(w) if w else None for w in re.findall(
        r"bucket=(?:weight:\d+,)?(?:watch_port:(\d+),)?", line))
    return gid, kind, watches


def _meter_key(line: str) -> tuple[int, int, int]:
    m = re.search(r"meter=(\d+).*rate=(\d+),burst_size=(\d+)", line)
    return int(m.group(1)), int(m.group(2)), int(m.group(3))


def drift(client, fleet: Fleet, dpid: int) -> str | None:
    """How the fake switch differs from what the controller wants (None: in sync)."""
    e = client.switch_entries(dpid)
    sw = fleet.switch(dpid)
    held_flows = Counter((f["table"], f["priority"], f["cookie"]) for f in sw.flows()
                         if not (C.is_ours(f["cookie"])
                                 and C.cookie_kind(f["cookie"]) == C.KIND_NOCOPY))
    want_flows = Counter(_flow_key(line) for line in e.flows)
    held_groups = {(gid, g["type"], tuple(b["watch_port"] for b in g["buckets"]))
                   for gid, g in sw.groups().items()}
    want_groups = {_group_key(line) for line in e.groups}
    held_meters = {(mid, *m["bands"][0]) for mid, m in sw.meters().items()}
    want_meters = {_meter_key(line) for line in e.meters}
    problems = []
    if not e.complete or e.pending:
        problems.append(f"complete={e.complete} pending={e.pending}")
    for what, held, want in (("flows", held_flows, want_flows),
                             ("groups", Counter(held_groups), Counter(want_groups)),
                             ("meters", Counter(held_meters), Counter(want_meters))):
        if held != want:
            problems.append(f"{what}: held-not-wanted {sorted((held - want).elements())[:4]}"
                            f" wanted-not-held {sorted((want - held).elements())[:4]}")
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
            time.sleep(1.0)
    return False, last


@pytest.fixture
def fleets():
    """Fleets made by a test, closed after it whatever happened."""
    made: list[Fleet] = []
    yield made
    for fleet in made:
        fleet.close()


def bring_up(ctl, made: list, spines: int, leaves: int, hosts: int, discover_s: float,
             sync_s: float):
    """A fleet connected all at once; asserts discovery and sync, reports the times."""
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


@pytest.mark.parametrize(("spines", "leaves"), [(2, 4), (4, 8)])
def test_fleet_is_discovered_and_synced(fabricd, fleets, spines, leaves):
    fleet, _ = bring_up(fabricd, fleets, spines, leaves, hosts=2, discover_s=30, sync_s=30)
    assert fleet.closed_by_peer() == set()


def test_link_down_and_a_switch_reconnecting_are_followed(fabricd, fleets):
    fleet, lay = bring_up(fabricd, fleets, 2, 4, hosts=2, discover_s=30, sync_s=30)
    want = lay.directed_links()
    cable = {(2001, 1, 1001, 1), (1001, 1, 2001, 1)}
    fleet.link_down((2001, 1))
    ok, why = wait_links(fabricd, want - cable, 15)
    assert ok, f"the link down is not seen: {why}"
    synced, problems = wait_synced(fabricd, fleet, lay.dpids, 20)
    assert synced, "\n".join(problems)
    assert not fleet.switch(2001).ports()[1]["up"]
    assert not fleet.switch(1001).ports()[1]["up"]
    fleet.link_up((2001, 1))
    ok, why = wait_links(fabricd, want, 20)
    assert ok, f"the link is not found again: {why}"
    fleet.disconnect(2003)
    with fabricd.client() as c:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and any(
                s.connected for s in c.topology().switches if s.dpid == 2003):
            time.sleep(0.2)
        assert not any(s.connected for s in c.topology().switches if s.dpid == 2003)
    fleet.reconnect(2003)  # (it kept its entries: reconciled in place)
    ok, why = wait_links(fabricd, want, 30)
    assert ok, f"links of the reconnected switch: {why}"
    synced, problems = wait_synced(fabricd, fleet, lay.dpids, 30)
    assert synced, "\n".join(problems)
    assert fleet.failures == []


def test_many_switches_connecting_at_once_are_all_discovered_and_synced(fabricd, fleets):
    """80 switches (8 spines, 72 leaves, 1,152 directed links) connect at the same
    moment, as a fabric does after a controller restart."""
    bring_up(fabricd, fleets, 8, 72, hosts=2, discover_s=120, sync_s=90)
