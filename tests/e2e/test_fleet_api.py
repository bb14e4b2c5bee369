"""Operator commands through fabricctl against a real fabricd and a fake 2x4 fleet
(tests/fakes), judged by what the fake switches hold and carry and by what the hosts
behind them receive: a flow pinned to a spine (its frames cross that spine, its
counters are the pin's), pins refused with a clear error; a training job registered,
its pairs' packets marked into its class at the first leaf (and a forged sender's not),
bad job input refused with nothing applied, the job deleted. Every mutation audited.
Without TE: no TE table, nothing tracked, pins refused.

Moved from Mininet (tests/e2e/test_te.py's pins and errors and its no-TE test,
tests/e2e/test_jobs.py's job through fabricctl): nothing there needed a real rate or a
real process; the frames here go through the very entries the controller installed.
"""

from __future__ import annotations

import json
import threading
import time

from controller.cli.client import flow_dict
from tests.e2e import fleet_support as fs
from tests.e2e.conftest import scrape
from tests.e2e.fleet_support import assert_synced, audit_entries, fabricctl, start_fleet
from tests.fakes.hosts import FakeHost, HostNet
from tests.fakes.layout import spine_leaf

# fixtures, by name
_environment, start_fabricd, fabricd, fleets = fs.FIXTURES

LAYOUT = spine_leaf(2, 4, 2)


def flows(ctl, **match) -> list[dict]:
    with ctl.client() as c:
        rows = [flow_dict(f) for f in c.flows().flows]
    return [r for r in rows if all(r[k] == v for k, v in match.items())]


def ctl_json(ctl, *args: str):
    res = fabricctl(ctl, "--json", *args)
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)


def tx(fleet, dpid: int, port: int) -> int:
    return fleet.switch(dpid).ports()[port]["tx_packets"]


def test_flows_pins_and_errors_through_fabricctl(start_fabricd, fleets):
    ctl = start_fabricd("--link-speed", "5")
    fleet, hosts = start_fleet(ctl, fleets, LAYOUT)
    h1, h2, h3 = hosts["h1"], hosts["h2"], hosts["h3"]
    for h in (h3, h2):
        assert hosts.ping(h1, h) == 1  # pins name hosts the controller knows
    pin = ctl_json(ctl, "pin", "udp", h1.ip, h3.ip, "--dport", "5201", "--spine", "1002")
    assert (pin["spine"], pin["pinned_by"], pin["src_port"]) == (1002, "operator", 0)

    # 2 Mbit/s of UDP for 4 s (1,000-byte datagrams, 250 a second)
    via_s1, via_s2 = tx(fleet, 1001, 2), tx(fleet, 1002, 2)  # (the spines' ports to l2)
    sent = [0]
    rates: list[float] = []

    def send() -> None:
        t0 = time.monotonic()
        while time.monotonic() - t0 < 4.0:
            hosts.udp(h1, h3, 40000, 5201, size=1000, count=5)
            sent[0] += 5
            time.sleep(0.02)

    sender = threading.Thread(target=send)
    sender.start()

    def fast() -> bool:
        rows = flows(ctl, protocol="udp", src_ip=h1.ip)
        rates.extend(r["rate_bps"] for r in rows)
        return len(rows) == 1 and rows[0]["spine"] == 1002 and rows[0]["rate_bps"] > 1e6

    counted = fs.wait_until(fast, timeout=8, interval=0.5)
    sender.join(10)
    (row,) = flows(ctl, protocol="udp", src_ip=h1.ip)
    assert counted, (rates, row)  # its counters: the pin's
    assert row["spine"] == 1002
    got = hosts.received(h3, lambda s: s.dport == 5201)
    assert sent[0] >= 600 and got >= 0.95 * sent[0], (got, sent)
    # the frames crossed spine 1002, not spine 1001
    assert tx(fleet, 1002, 2) - via_s2 >= got
    assert tx(fleet, 1001, 2) - via_s1 < 0.05 * got

    bad = fabricctl(ctl, "pin", "udp", h1.ip, "10.9.9.9", "--spine", "1001")
    assert bad.returncode == 1 and "NOT_FOUND" in bad.stderr and "10.9.9.9" in bad.stderr
    bad = fabricctl(ctl, "pin", "udp", h1.ip, h2.ip, "--spine", "1001")
    assert bad.returncode == 3 and "same leaf" in bad.stderr
    bad = fabricctl(ctl, "pin", "udp", "1.2.3", h3.ip, "--spine", "1001")
    assert bad.returncode == 2 and "src_ip" in bad.stderr
    bad = fabricctl(ctl, "pin", "udp", h1.ip, h3.ip, "--spine", "2001")
    assert bad.returncode == 3 and "no path" in bad.stderr
    assert fabricctl(ctl, "unpin", "udp", h1.ip, h3.ip, "--dport", "5201").returncode == 0
    again = fabricctl(ctl, "unpin", "udp", h1.ip, h3.ip, "--dport", "5201")
    assert again.returncode == 1 and "NOT_FOUND" in again.stderr
    listed = fabricctl(ctl, "events", "--replay", "--kind", "pin", "--kind", "unpin",
                       "--count", "2", "--duration", "5")
    assert listed.returncode == 0 and "pinned to spine 1002" in listed.stdout
    assert "unpinned" in listed.stdout
    # every mutation is audited (here in the daemon's log: no audit file configured)
    audit = [json.loads(line.split("audit: ", 1)[1]) for line in
             ctl.log_path.read_text().splitlines() if "aifabric.api: audit: " in line]
    got_audit = [(a["who"], a["method"], a["result"]) for a in audit]
    assert got_audit[0] == ("local-admin", "PinFlow", "OK")
    assert audit[0]["request"]["flow"]["dst_port"] == 5201
    for entry in (("PinFlow", "NOT_FOUND"), ("PinFlow", "FAILED_PRECONDITION"),
                  ("PinFlow", "INVALID_ARGUMENT"), ("UnpinFlow", "OK"),
                  ("UnpinFlow", "NOT_FOUND")):
        assert ("local-admin", *entry) in got_audit, (entry, got_audit)
    assert_synced(ctl, fleet)


RING = ("h1", "h3", "h5", "h7", "h2", "h4", "h6", "h8")  # rank r on leaf r mod 4


def job_json(ctl, job_id: str) -> dict:
    return ctl_json(ctl, "job", "show", job_id)


def pair(job: dict, src_ip: str, dst_ip: str) -> dict:
    return next(p for p in job["pairs"] if (p["src_ip"], p["dst_ip"]) == (src_ip, dst_ip))


def dscp_seen(hosts: HostNet, receiver: FakeHost, sender_ip: str, send, proto: int,
              want: int = 3, wait: float = 3.0) -> set[int]:
    """DSCP values of the packets (IP protocol ``proto``) from ``sender_ip`` that reach
    ``receiver`` while ``send()`` runs (waiting up to ``wait`` s for ``want`` of them)."""
    def mine(s) -> bool:
        return s.ip_src == sender_ip and s.proto == proto

    before = len(receiver.captured(mine))
    send()
    hosts.wait(lambda: len(receiver.captured(mine)) >= before + want, wait)
    return {s.dscp for s in receiver.captured(mine)[before:]}


def test_a_job_through_fabricctl_marks_its_class_and_refuses_bad_input(start_fabricd,
                                                                        fleets, tmp_path):
    ctl = start_fabricd(qos=True)  # (marking entries; OVSDB unreachable: no queues)
    fleet, hosts = start_fleet(ctl, fleets, LAYOUT)
    assert hosts.all_pairs() == []  # (the controller knows every host)
    h1, h2, h3 = hosts["h1"], hosts["h2"], hosts["h3"]

    def ping3() -> None:
        assert hosts.ping(h1, h3, count=3) == 3

    # before: best effort, whatever the job would say
    assert dscp_seen(hosts, h3, h1.ip, ping3, 1) == {0}
    doc = {"id": "ring8", "members": [hosts[h].ip for h in RING], "pattern": "ring",
           "traffic_class": "collective", "priority": 5}
    (tmp_path / "ring8.yaml").write_text(json.dumps(doc))  # (JSON is YAML too)
    job = ctl_json(ctl, "job", "register", "--file", str(tmp_path / "ring8.yaml"))
    assert job["state"] == "placed" and len(job["pairs"]) == 16
    assert {p["state"] for p in job["pairs"]} == {"placed"}
    # 2 spines: each direction of the ring has an uplink per pair (two per uplink in all)
    assert job["worst_link_pairs"] == 1
    uplinks: dict = {}
    for p in job["pairs"]:
        key = (p["src_leaf"], p["uplink_port"])
        uplinks[key] = uplinks.get(key, 0) + 1
    assert sorted(uplinks.values()) == [2] * 8
    # packets between two members are marked into the class at the first leaf
    assert fs.wait_until(lambda: dscp_seen(hosts, h3, h1.ip, ping3, 1) == {34}, 5)
    # h2, h1's leaf neighbour, sending as h1 gets neither the class nor the pair's path;
    # the same frame from h1's own port does (so the frames themselves are fine)
    with ctl.client() as c:
        guarded = c.status().counters.get("source_guard_dropped", 0)

    def as_h1(sender: FakeHost) -> set[int]:
        return dscp_seen(hosts, h3, h1.ip, lambda: hosts.udp(
            sender, h3, 40000, 9, size=32, count=3, src_ip=h1.ip), 17, wait=1.5)

    assert as_h1(h2) == set()  # (the source guard stops it at h2's port)
    with ctl.client() as c:
        assert c.status().counters.get("source_guard_dropped", 0) > guarded
    assert as_h1(h1) == {34}
    # and counted by the pair's entry
    assert fs.wait_until(lambda: pair(job_json(ctl, "ring8"), h1.ip, h3.ip)["bytes"] > 0,
                         timeout=5)
    metrics = scrape(ctl)
    (worst,) = metrics["aifabric_job_worst_link_pairs"].samples
    assert worst.labels == {"job": "ring8"} and worst.value == 1
    (carried,) = metrics["aifabric_job_bytes"].samples
    assert carried.value > 0
    listed = fabricctl(ctl, "job", "list")
    assert listed.returncode == 0 and "ring8" in listed.stdout and "placed" in listed.stdout
    shown = fabricctl(ctl, "job", "show", "ring8")
    assert shown.returncode == 0 and "worst link" in shown.stdout

    # bad input: a clear error, a non-zero exit, nothing applied
    bad = fabricctl(ctl, "job", "register", "x1", "--members", f"{h1.ip},10.9.9.9",
                    "--pattern", "ring")
    # (well formed, but no such host is known yet: the fabric's state refuses it)
    assert bad.returncode == 3 and "FAILED_PRECONDITION: members[1]" in bad.stderr
    assert "10.9.9.9" in bad.stderr
    bad = fabricctl(ctl, "job", "register", "x2", "--members", f"{h1.ip},{h1.ip}",
                    "--pattern", "ring")
    assert bad.returncode == 2 and "members[1]" in bad.stderr and "rank 0" in bad.stderr
    bad = fabricctl(ctl, "job", "register", "x3", "--members", f"{h1.ip},{h3.ip}",
                    "--pattern", "ring", "--class", "gold")
    assert bad.returncode == 2 and "traffic_class" in bad.stderr
    bad = fabricctl(ctl, "job", "register", "ring8", "--members", f"{h1.ip},{h3.ip}",
                    "--pattern", "ring")
    assert bad.returncode == 1 and "ALREADY_EXISTS" in bad.stderr
    bad = fabricctl(ctl, "job", "register", "--file", "-", stdin="id: x4\nmembers: 3\n")
    assert bad.returncode == 2 and "members" in bad.stderr
    bad = fabricctl(ctl, "job", "register", "--file", str(tmp_path / "absent.yaml"))
    assert bad.returncode == 2 and "cannot read" in bad.stderr
    bad = fabricctl(ctl, "job", "show", "nope")
    assert bad.returncode == 1 and "NOT_FOUND" in bad.stderr
    assert [j["id"] for j in ctl_json(ctl, "job", "list")] == ["ring8"]
    # deleted: its pairs go back to ECMP and TE, best effort again
    assert fabricctl(ctl, "job", "delete", "ring8").returncode == 0
    assert fabricctl(ctl, "job", "delete", "ring8").returncode == 1
    assert ctl_json(ctl, "job", "list") == []
    assert fs.wait_until(lambda: dscp_seen(hosts, h3, h1.ip, ping3, 1) == {0}, 5)
    assert hosts.all_pairs(count=3) == []
    assert_synced(ctl, fleet)
    audit = [json.loads(line.split("audit: ", 1)[1]) for line in
             ctl.log_path.read_text().splitlines() if "aifabric.api: audit: " in line]
    got = [(a["method"], a["result"]) for a in audit]
    assert got[0] == ("RegisterJob", "OK") and audit[0]["request"]["id"] == "ring8"
    for entry in (("RegisterJob", "FAILED_PRECONDITION"), ("RegisterJob", "INVALID_ARGUMENT"),
                  ("RegisterJob", "ALREADY_EXISTS"),
                  ("DeleteJob", "OK"), ("DeleteJob", "NOT_FOUND")):
        assert entry in got, (entry, got)
    assert ("local-admin", "RegisterJob", "OK") in audit_entries(ctl)


def test_no_te_keeps_plain_ecmp(start_fabricd, fleets):
    """With ``--no-te``: no TE table on any leaf, nothing tracked while traffic flows
    (it is delivered by ECMP), and a pin refused with exit 3 naming the flag. (Moved
    from Mininet: nothing in it needs a real rate.)"""
    from controller.core import constants as C

    ctl = start_fabricd("--no-te")
    fleet, hosts = start_fleet(ctl, fleets, LAYOUT)
    h1, h3 = hosts["h1"], hosts["h3"]
    hosts.udp(h1, h3, 40000, 5201, count=50)
    assert hosts.wait(lambda: hosts.received(
        h3, lambda s: s.dport == 5201) == 50, timeout=5)
    assert ctl_json(ctl, "flows") == {"te_enabled": False, "flows": []}
    for leaf in (2001, 2002, 2003, 2004):
        assert not [f for f in fleet.switch(leaf).flows() if f["table"] == C.TABLE_TE]
    bad = fabricctl(ctl, "pin", "udp", h1.ip, h3.ip, "--spine", "1001")
    assert bad.returncode == 3 and "--no-te" in bad.stderr
