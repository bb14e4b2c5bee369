"""What an intruder on the management network achieves against fabricd (issue 26), each
attack run for real and measured: the "before" column is what the issue measured
against the fabricd of 2026-12-06, the "now" column is this run.

- OpenFlow: a second connection claiming a connected leaf's dpid (a fake 2x4 fleet
  with hosts behind its leaves, tests/fakes); twenty made-up dpids that connect and
  leave; a plain session to a TLS listener.
- The API: 5,000 calls with no token; a YAML alias bomb and a 5,000-deep document
  through SetQosPolicy; a 1 MB job id.
- A three-instance cluster on etcd over https with client certificates (as
  docs/cluster.md deploys it): the drains key written without a certificate, and 300
  connections held to an instance's peer port.

No Mininet: everything runs against real fabricd processes, a real etcd and OpenFlow
switches emulated over real TCP. Results: bench/results/intruder.json and
docs/bench-intruder.md.
"""

from __future__ import annotations

import argparse
import base64
import json
import socket
import ssl
import tempfile
import time
import urllib.request
from pathlib import Path

import grpc

from aifabric.v1 import fabric_pb2
from bench.common import save
from mininet_topos.certs import make_test_certs
from mininet_topos.controller_proc import FabricdProcess
from mininet_topos.etcd_proc import fabricd_cluster
from tests.e2e.fleet_support import wait_links
from tests.fakes.fleet import Fleet
from tests.fakes.hosts import HostNet
from tests.fakes.layout import Layout, spine_leaf

ROOT = Path(__file__).resolve().parent.parent
LEAF = 2001
BOMB = "\n".join(["a: &a [x, x, x, x, x, x, x, x, x]"] + [
    f"{chr(98 + i)}: &{chr(98 + i)} [" + ", ".join([f"*{chr(97 + i)}"] * 9) + "]"
    for i in range(8)]) + "\nprofile: *i\n"


def rss_mb(ctl: FabricdProcess) -> float:
    for line in Path(f"/proc/{ctl.proc.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def size(path: Path) -> int:
    return path.stat().st_size if path.exists() else 0


def standalone(work: Path, extra: list[str] = ()) -> FabricdProcess:
    token = work / "token"
    ctl = FabricdProcess(work / "fabricd.log", extra_args=[
        "--no-qos", "--token-file", str(token), "--audit-log", str(work / "audit.log"),
        *extra])
    ctl.token_file = token
    ctl.start()
    return ctl


def openflow_attacks(work: Path) -> dict:
    """A dpid claim on a connected leaf, and twenty made-up dpids."""
    out: dict = {}
    ctl = standalone(work)
    fleets: list[Fleet] = []
    try:
        lay = spine_leaf(2, 4, 2)
        hosts = HostNet(lay)
        fleet = Fleet(ctl.of_port, lay, on_host_frame=hosts.on_frame)
        fleets.append(fleet)
        hosts.attach(fleet)
        fleet.connect_all()
        assert wait_links(ctl, lay.directed_links(), 30)[0], "fleet not discovered"
        time.sleep(2.0)
        assert hosts.all_pairs(count=1) == [], "pairs unreachable before the attack"
        claim = Layout()
        claim.add_switch(LEAF, "claim", lay.ports[LEAF])
        impostor = Fleet(ctl.of_port, claim)
        fleets.append(impostor)
        impostor.connect_all()
        time.sleep(3.0)
        got = impostor.switch(LEAF).received
        out["claim_writes"] = got["flow_mod"] + got["group_mod"] + got["meter_mod"]
        out["claim_refused"] = LEAF in impostor.closed_by_peer()
        impostor.close()
        time.sleep(1.0)
        pairs = len(hosts.hosts) * (len(hosts.hosts) - 1)
        out["pairs_unreachable_after"] = len(hosts.all_pairs(count=1)) / pairs
        # twenty made-up dpids that connect and leave
        junk = Layout()
        for d in range(9001, 9021):
            junk.add_switch(d, f"j{d}", [1])
        made_up = Fleet(ctl.of_port, junk)
        fleets.append(made_up)
        made_up.connect_all()
        time.sleep(2.0)
        made_up.close()

        def listed() -> int:
            with ctl.client() as c:
                return sum(s.dpid >= 9001 for s in c.topology().switches)

        out["made_up_listed"] = listed()
        time.sleep(63.0)  # (a switch without a link is forgotten 60 s after it left)
        out["made_up_listed_after_60s"] = listed()
    finally:
        for f in fleets:
            f.close()
        ctl.stop()
    return out


def tls_listener(work: Path) -> dict:
    certs = make_test_certs(work)
    cfg = work / "tls.yaml"
    cfg.write_text(json.dumps({"openflow": {"tls": {
        "cert": str(certs["server.pem"]), "key": str(certs["server.key"]),
        "ca": str(certs["ca.pem"])}}}))
    ctl = standalone(work, ["--config", str(cfg)])
    try:
        with socket.create_connection(("127.0.0.1", ctl.of_port), timeout=5) as s:
            s.sendall(bytes.fromhex("0400000800000001"))  # an OpenFlow HELLO
            try:
                answered = s.recv(64) != b""
            except OSError:
                answered = False
        return {"plain_session_answered": answered}
    finally:
        ctl.stop()


def api_attacks(work: Path) -> dict:
    out: dict = {}
    ctl = standalone(work)
    audit, log = work / "audit.log", ctl.log_path
    try:
        with grpc.insecure_channel(ctl.grpc_addr) as ch:
            drain = ch.unary_unary("/aifabric.v1.Fabric/DrainSwitch",
                                   request_serializer=fabric_pb2.DrainSwitchRequest
                                   .SerializeToString)
            a0, l0, t0 = size(audit), size(log), time.monotonic()
            for _ in range(5000):
                try:
                    drain(fabric_pb2.DrainSwitchRequest(dpid=1001), timeout=5)
                except grpc.RpcError:
                    pass
            out["flood_calls"], out["flood_seconds"] = 5000, time.monotonic() - t0
            time.sleep(0.5)
            out["flood_audit_kb"] = (size(audit) - a0) / 1024
            out["flood_log_kb"] = (size(log) - l0) / 1024
        with ctl.client(timeout=30) as c:
            for name, doc in (("bomb", BOMB), ("deep", "[" * 5000)):
                r0, l0, t0 = rss_mb(ctl), size(log), time.monotonic()
                try:
                    c.stub.SetQosPolicy(fabric_pb2.SetQosPolicyRequest(document=doc),
                                        timeout=30)
                    code = "OK"
                except grpc.RpcError as exc:
                    code = exc.code().name
                out[f"{name}_status"] = code
                out[f"{name}_seconds"] = time.monotonic() - t0
                out[f"{name}_rss_growth_mb"] = max(0.0, rss_mb(ctl) - r0)
                out[f"{name}_log_kb"] = (size(log) - l0) / 1024
            a0 = size(audit)
            try:
                c.stub.DeleteJob(fabric_pb2.DeleteJobRequest(id="j" * 1_000_000), timeout=30)
            except grpc.RpcError:
                pass
            out["long_id_audit_kb"] = (size(audit) - a0) / 1024
    finally:
        ctl.stop()
    return out


def cluster_attacks(work: Path) -> dict:
    out: dict = {}
    with fabricd_cluster(work, 3, ["--no-qos"]) as (etcd, ctls):
        time.sleep(2.0)
        # the drains key, written as the issue did, but without a client certificate
        key = base64.b64encode(b"/aifabric/default/intent/drains").decode()
        value = base64.b64encode(json.dumps({"cables": [], "switches": [1001]}).encode())
        body = json.dumps({"key": key, "value": value.decode()}).encode()
        ctx = ssl.create_default_context(cafile=str(etcd.certs["ca.pem"]))
        try:
            req = urllib.request.Request(etcd.url + "/v3/kv/put", data=body)
            with urllib.request.urlopen(req, timeout=3, context=ctx) as resp:
                out["etcd_write_without_certificate"] = f"accepted ({resp.status})"
        except (OSError, ssl.SSLError) as exc:
            out["etcd_write_without_certificate"] = f"refused ({type(exc).__name__})"
        try:
            plain = etcd.url.replace("https://", "http://") + "/v3/kv/put"
            with urllib.request.urlopen(urllib.request.Request(plain, data=body),
                                        timeout=3) as resp:
                out["etcd_write_plain_http"] = f"accepted ({resp.status})"
        except OSError as exc:
            out["etcd_write_plain_http"] = f"refused ({type(exc).__name__})"
        # 300 connections held to n1's peer port for 5 s
        target = next(ctl for ctl in ctls if ctl.node == "n1")
        address = peer_address(target)
        host, port = address.rsplit(":", 1)
        before = revocations(ctls)
        flood = []
        for _ in range(300):
            try:
                flood.append(socket.create_connection((host, int(port)), timeout=2))
            except OSError:
                break
        out["peer_flood_connections"] = len(flood)
        time.sleep(5.0)
        for s in flood:
            s.close()
        time.sleep(1.0)
        out["peer_flood_leases_revoked"] = revocations(ctls) - before
        with ctls[0].client() as c:
            members = list(c.status().cluster.members)
        out["members_after_flood"] = sorted(members)
    return out


def peer_address(ctl: FabricdProcess) -> str:
    for line in ctl.log_path.read_text().splitlines():
        if "joined as" in line and "peer port " in line:
            return line.rsplit("peer port ", 1)[1].rstrip(")")
    raise RuntimeError("no peer port in the log")


def revocations(ctls: list[FabricdProcess]) -> int:
    return sum(ctl.log_path.read_text().count("revoked the lease of") for ctl in ctls)


BEFORE = {  # measured by the issue against the fabricd of 2026-12-06
    "claim_writes": "19 flow-mods, 3 group-mods, 2 meter-mods",
    "pairs_unreachable_after": "46%",
    "made_up_listed_after_60s": "20 (never forgotten)",
    "plain_session_answered": "no TLS option",
    "flood": "672 KB audit, 950 KB log for 5,250 calls",
    "bomb": "3.1 s, 560 MB, 62 MB error in the logs",
    "deep": "UNKNOWN, a 3,000-line traceback per request",
    "long_id_audit_kb": "a line as long as the id (2.5 MB for a 2.5 MB id)",
    "etcd": "drained a spine at once",
    "peer": "a live instance's lease revoked for as long as the flood lasted",
}


def write_docs(r: dict, path: Path) -> None:
    o, a, c = r["openflow"], r["api"], r["cluster"]
    rows = [
        ("OpenFlow: a 2nd connection claims a connected leaf", BEFORE["claim_writes"],
         f"{o['claim_writes']} writes, refused: {o['claim_refused']}"),
        ("... and leaves", BEFORE["pairs_unreachable_after"],
         f"{o['pairs_unreachable_after']:.0%} of host pairs unreachable"),
        ("OpenFlow: 20 made-up dpids connect and leave", BEFORE["made_up_listed_after_60s"],
         f"{o['made_up_listed']} listed, {o['made_up_listed_after_60s']} after 60 s"),
        ("OpenFlow: a plain session to the TLS listener", BEFORE["plain_session_answered"],
         "answered" if r["tls"]["plain_session_answered"] else "refused at the handshake"),
        ("API: 5,000 calls without a token", BEFORE["flood"],
         f"{a['flood_audit_kb']:.1f} KB audit, {a['flood_log_kb']:.1f} KB log "
         f"({a['flood_seconds']:.1f} s)"),
        ("API: a YAML alias bomb (SetQosPolicy)", BEFORE["bomb"],
         f"{a['bomb_status']} in {a['bomb_seconds'] * 1000:.0f} ms, "
         f"+{a['bomb_rss_growth_mb']:.0f} MB, {a['bomb_log_kb']:.1f} KB of log"),
        ("API: a 5,000-deep document", BEFORE["deep"],
         f"{a['deep_status']}, {a['deep_log_kb']:.1f} KB of log"),
        ("API: a 1 MB job id (DeleteJob; larger requests are refused before any handler)",
         BEFORE["long_id_audit_kb"],
         f"{a['long_id_audit_kb']:.1f} KB of audit"),
        ("etcd: the drains key written without a client certificate", BEFORE["etcd"],
         f"https: {c['etcd_write_without_certificate']}; http: "
         f"{c['etcd_write_plain_http']}"),
        ("peer port: 300 connections held for 5 s", BEFORE["peer"],
         f"{c['peer_flood_connections']} held, {c['peer_flood_leases_revoked']} leases "
         f"revoked, members {', '.join(c['members_after_flood'])}"),
    ]
    lines = ["# Benchmark: what an intruder on the management network achieves", "",
             "Generated by `python -m bench.intruder` (raw figures: "
             "`bench/results/intruder.json`). Each attack of issue 26 run for real "
             "against fabricd processes, a fake OpenFlow fleet and a three-instance "
             "cluster on etcd over https with client certificates (docs/cluster.md). "
             "\"Before\": what the issue measured against the fabricd of 2026-12-06.", "",
             "| attack | before | now |", "|---|---|---|"]
    lines += [f"| {a_} | {b} | {n} |" for a_, b, n in rows]
    path.write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default=str(ROOT / "bench" / "results" / "intruder.json"))
    p.add_argument("--doc", default=str(ROOT / "docs" / "bench-intruder.md"))
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="aifabric-intruder-") as tmp:
        work = Path(tmp)
        result = {"benchmark": "intruder"}
        for name, run in (("openflow", openflow_attacks), ("tls", tls_listener),
                          ("api", api_attacks), ("cluster", cluster_attacks)):
            d = work / name
            d.mkdir()
            print(f"intruder: {name}...", flush=True)
            result[name] = run(d)
            print(f"  {result[name]}", flush=True)
    save(result, args.out, args.doc, write_docs)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
