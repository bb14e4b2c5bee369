"""Cluster-mode test helpers: which instance masters which switch, as Open vSwitch and
as the instances say, and ``fabricctl cluster`` read as JSON."""

from __future__ import annotations

import json
import subprocess
import sys

from mininet_topos.controller_proc import FabricdProcess

FABRICCTL = [sys.executable, "-m", "controller.cli.fabricctl"]


def bridge_of(dpid: int) -> str:
    return f"s{dpid - 1000}" if dpid < 2000 else f"l{dpid - 2000}"


def dpid_of(bridge: str) -> int:
    return (1000 if bridge[0] == "s" else 2000) + int(bridge[1:])


def cluster_json(ctl: FabricdProcess) -> dict:
    res = subprocess.run([*FABRICCTL, "--server", ctl.grpc_addr, "--json", "cluster"],
                         capture_output=True, text=True, timeout=30)
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)


def ovsdb_rows(table: str, columns: str) -> list[dict]:
    out = subprocess.run(["ovs-vsctl", "-f", "json", f"--columns={columns}", "list", table],
                         capture_output=True, text=True, check=True).stdout
    doc = json.loads(out)
    return [dict(zip(doc["headings"], row, strict=True)) for row in doc["data"]]


def roles() -> dict[str, dict[int, str]]:
    """bridge -> {OpenFlow port of the controller: role}, as Open vSwitch reports them."""
    by_uuid = {}
    for row in ovsdb_rows("Controller", "_uuid,target,role,is_connected"):
        role = row["role"] if isinstance(row["role"], str) else ""
        if row["is_connected"] is True:
            by_uuid[row["_uuid"][1]] = (int(row["target"].rsplit(":", 1)[1]), role)
    out = {}
    for row in ovsdb_rows("Bridge", "name,controller"):
        ref = row["controller"]
        uuids = [ref[1]] if ref[0] == "uuid" else [u[1] for u in ref[1]]
        out[row["name"]] = dict(by_uuid[u] for u in uuids if u in by_uuid)
    return out


def api_masters(ctls: list[FabricdProcess]) -> dict[str, str]:
    """bridge -> the node id of its master, as the instances say (bridges one claims)."""
    out: dict[str, str] = {}
    for ctl in ctls:
        with ctl.client() as c:
            out |= {bridge_of(d): ctl.node for d in c.status().cluster.mastered_here}
    return out


def masters(ctls: list[FabricdProcess]) -> dict[str, str]:
    """bridge -> the node id of its master (only bridges with exactly one master)."""
    node_of = {c.of_port: c.node for c in ctls}
    out = {}
    for bridge, got in roles().items():
        held = [port for port, role in got.items() if role == "master"]
        if len(held) == 1:
            out[bridge] = node_of[held[0]]
    return out


def reachable_or_explained(net, ctls: list[FabricdProcess]) -> None:
    """Every ordered host pair answers one ping (as ``all_pairs_ok`` checks first); when
    one does not, what would tell why is printed before the assertion fails: each
    instance's counters and hosts, the pair's neighbour tables and every switch's
    entries with their packet counts. (A first ping lost in a fresh cluster was seen
    twice in many runs, never with debug logs on.)"""
    from mininet_topos.network import reachability

    result = reachability(net, count=1, timeout=2)
    failed = [pair for pair, ok in result.items() if not ok]
    if failed:
        again = reachability(net, count=1, timeout=2)
        print("unreachable at first:", failed, "then:",
              [p for p, ok in again.items() if not ok])
        for ctl in ctls:
            with ctl.client() as c:
                print(f"--- {ctl.node}: counters {dict(c.status().counters)}")
                print("    hosts:", sorted((h.ip, h.dpid, h.port)
                                           for h in c.topology().hosts))
        for a, b in failed:
            for h in {a, b}:
                print(f"--- {h}: ip neigh\n{net.get(h).cmd('ip neigh')}")
        for sw in net.switches:
            print(f"--- {sw.name}\n" + subprocess.run(
                ["ovs-ofctl", "-O", "OpenFlow13", "dump-flows", sw.name],
                capture_output=True, text=True).stdout)
    assert failed == []
