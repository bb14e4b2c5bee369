"""The API's audit log (apps/api/audit.py): lines bounded, refusals aggregated."""

from __future__ import annotations

import json

from apps.api.audit import MAX_ITEMS, MAX_TEXT, AuditLog, bounded, peer_host


def lines(path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines()]


def test_a_requests_long_strings_and_lists_are_cut():
    req = {"id": "j" * 2_500_000, "members": [f"10.0.0.{i}" for i in range(40)],
           "nested": {"document": "x" * 5000}}
    got = bounded(req)
    assert got["id"].startswith("j" * MAX_TEXT) and "(2500000 characters)" in got["id"]
    assert len(got["members"]) == MAX_ITEMS + 1 and got["members"][-1] == "... (40 in all)"
    assert len(json.dumps(got)) < 2000
    assert bounded({"dpid": "4242"}) == {"dpid": "4242"}  # (short ones as they are)


def test_peer_host_drops_the_clients_port():
    assert peer_host("ipv4:10.0.0.1:51234") == "ipv4:10.0.0.1"
    assert peer_host("ipv6:[::1]:5") == "ipv6:[::1]"
    assert peer_host("unix:/run/x.sock") == "unix:/run/x.sock" and peer_host("") == "-"


def test_refusals_are_one_line_per_host_method_and_result_per_interval(tmp_path):
    now = [0.0]
    audit = AuditLog(tmp_path / "audit.log", interval=10.0, clock=lambda: now[0])
    for i in range(5000):  # a client hammering with a wrong token, from new ports
        audit.refused("-", f"ipv4:10.9.9.9:{40000 + i % 20000}", "DrainSwitch",
                      "UNAUTHENTICATED")
    audit.refused("-", "ipv4:10.8.8.8:1", "DrainSwitch", "UNAUTHENTICATED")  # another host
    audit.refused("bob", "ipv4:10.9.9.9:2", "DrainSwitch", "PERMISSION_DENIED")
    assert [(e["peer"], e["result"]) for e in lines(tmp_path / "audit.log")] == [
        ("ipv4:10.9.9.9:40000", "UNAUTHENTICATED"), ("ipv4:10.8.8.8:1", "UNAUTHENTICATED"),
        ("ipv4:10.9.9.9:2", "PERMISSION_DENIED")]
    # once the interval has passed, the calls held back are counted in a line
    now[0] = 10.5
    audit.record("alice", "ipv4:127.0.0.1:3", "Undrain", {"dpid": "1"}, "OK")
    got = lines(tmp_path / "audit.log")
    held = [e for e in got if e.get("repeats")]
    assert [(e["peer"], e["method"], e["repeats"]) for e in held] == [
        ("ipv4:10.9.9.9", "DrainSwitch", 4999)]
    assert got[-1]["who"] == "alice" and len(got) == 5
    assert audit.refusals == 5002
    assert (tmp_path / "audit.log").stat().st_size < 3000
