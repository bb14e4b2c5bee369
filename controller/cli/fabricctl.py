"""``fabricctl``: command-line client of the aifabric management API.

Tables for people by default, ``--json`` for scripts. Exit status: 0 success,
1 the server could not be reached or refused the call (NOT_FOUND, ...), 2 usage error or
invalid input, 3 the fabric's state forbids it, 4 not authenticated or not permitted.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

import grpc

from controller import __version__
from controller.cli.args import OneLineParser
from controller.cli.client import (
    DEFAULT_SERVER,
    FabricClient,
    default_token,
    event_dict,
    links_list,
    local_target,
    message_dict,
    policy_dict,
    qos_stats_list,
    status_dict,
    topology_dict,
)
from controller.cli.flows_cmd import add_flows_parsers
from controller.cli.job_cmd import add_job_parser
from controller.cli.servers_cmd import add_servers_parser
from controller.cli.text import table
from controller.cli.top_cmd import add_top_parser
from controller.core.constants import ANSWERED_KEY, DEFAULT_TOKEN_FILE
from controller.core.events import KINDS
from controller.core.model.cabling import parse_end

ENV_SERVER = "AIFABRIC_SERVER"


def _ago(ts: float) -> str:
    if not ts:
        return "-"
    secs = max(0.0, time.time() - ts)
    if secs < 120:
        return f"{secs:.0f}s ago"
    if secs < 7200:
        return f"{secs / 60:.0f}m ago"
    return f"{secs / 3600:.1f}h ago"


def show_topology(topo: dict[str, Any]) -> str:
    out = []
    sw = topo["switches"]
    out.append(f"Switches ({len(sw)})")
    # (pods and spine planes only for a fabric with three tiers)
    tiers3 = any(s.get("pod") or s.get("spine_plane") for s in sw)
    out.append(table(
        ["DPID", "ROLE", "PLANE", *(["POD", "SPINE PLANE"] if tiers3 else []), "STATE",
         "PORTS", "SINCE"],
        [[s["dpid"], s["role"], s.get("plane") or "-",
          *([s.get("pod") or "-", s.get("spine_plane") or "-"] if tiers3 else []),
          ("drained" if s["drained"] else "connected") if s["connected"] else "down", s["ports"],
          _ago(s["connected_since"]) if s["connected"] else "-"] for s in sw],
    ))
    links = topo["links"]
    out.append(f"\nLinks ({len(links)} directions)")
    out.append(table(
        ["SRC DPID", "SRC PORT", "DST DPID", "DST PORT", "STATE"],
        [[lk["src_dpid"], lk["src_port"], lk["dst_dpid"], lk["dst_port"],
          "drained" if lk["drained"] else "up"] for lk in links],
    ))
    hosts = topo["hosts"]
    out.append(f"\nHosts ({len(hosts)})")
    out.append(table(
        ["MAC", "IP", "LEAF DPID", "PORT"],
        [[h["mac"], h["ip"] or "-", h["dpid"], h["port"]] for h in hosts],
    ))
    warnings = topo["warnings"]
    out.append(f"\nWarnings ({len(warnings)})")
    out.extend(f"  ! {w}" for w in warnings)
    if not warnings:
        out.append("  none: the wiring is a clean Clos")
    return "\n".join(out)


def show_hosts(hosts: list[dict[str, Any]]) -> str:
    return table(
        ["MAC", "IP", "LEAF DPID", "PORT", "STATE", "LAST SEEN", "FIRST SEEN"],
        [[h["mac"], h["ip"] or "-", h["dpid"], h["port"], h["state"],
          _ago(h["last_seen"]) if h["last_seen"] else "-", _ago(h["first_seen"])]
         for h in hosts],
    )


def cmd_hosts(client: FabricClient, args) -> int:
    hosts = topology_dict(client.topology())["hosts"]
    if args.state:
        hosts = [h for h in hosts if h["state"] == args.state]
    print(json.dumps(hosts, indent=2) if args.json else
          f"Hosts ({len(hosts)})\n" + show_hosts(hosts))
    return 0


def cmd_topology(client: FabricClient, args) -> int:
    topo = topology_dict(client.topology())
    if args.output:
        return write_picture(topo, links_list(client.links()), args.output)
    print(json.dumps(topo, indent=2) if args.json else show_topology(topo))
    return 0


def cmd_entries(client: FabricClient, args) -> int:
    got = client.switch_entries(args.dpid)
    sections = {"flows": list(got.flows), "groups": list(got.groups),
                "meters": list(got.meters)}
    if args.json:
        print(json.dumps(message_dict(got), indent=2))
        return 0
    if args.only:  # bare lines, for ovs-ofctl add-flows/add-groups/diff-flows
        print("\n".join(sections[args.only]))
        return 0
    state = "complete" if got.complete else "settling (only its LLDP entry is required yet)"
    print(f"# switch {got.dpid}: {state}; {got.pending} changes not sent yet"
          + (f"; groups kept as held: {', '.join(map(str, got.kept_groups))}"
             if got.kept_groups else ""))
    for name, lines in sections.items():
        print(f"# {name} ({len(lines)})")
        print("\n".join(lines))
    return 0


def write_picture(topo: dict, links: list[dict], path: str) -> int:
    """SVG, or PNG through rsvg-convert (Debian: librsvg2-bin)."""
    import shutil
    import subprocess

    from controller.cli.picture import render_svg

    svg = render_svg(topo, links)
    kind = path.rsplit(".", 1)[-1].lower()
    if kind not in ("svg", "png"):
        print(f"fabricctl: error: --output must end in .svg or .png, got {path!r}",
              file=sys.stderr)
        return 2
    try:
        if kind == "svg":
            with open(path, "w") as f:
                f.write(svg)
        else:
            tool = shutil.which("rsvg-convert")
            if tool is None:
                print("fabricctl: error: PNG needs rsvg-convert (apt install librsvg2-bin); "
                      "SVG works without it", file=sys.stderr)
                return 2
            subprocess.run([tool, "-f", "png", "-o", path], input=svg.encode(), check=True)
    except OSError as exc:
        print(f"fabricctl: cannot write {path}: {exc.strerror}", file=sys.stderr)
        return 1
    print(f"wrote {path} ({len(topo['switches'])} switches, {len(topo['hosts'])} hosts)")
    return 0


def cmd_status(client: FabricClient, args) -> int:
    st = status_dict(client.status())
    if args.json:
        print(json.dumps(st, indent=2))
        return 0
    print(f"fabricd {st['version']}, up {_ago(st['started_at']).replace(' ago', '')}")
    print(f"OpenFlow port {st['openflow_port']}; QoS {'on' if st['qos_enabled'] else 'off'}; "
          f"TE {'on' if st['te_enabled'] else 'off'}; link speed "
          + (f"{st['link_speed_mbps']:g} Mbit/s" if st["link_speed_mbps"] else "as reported"))
    if st["counters"]:
        print(table(["COUNTER", "VALUE"], sorted(st["counters"].items())))
    return 0


def cmd_cluster(client: FabricClient, args) -> int:
    c = status_dict(client.status())["cluster"]
    if args.json:
        print(json.dumps(c, indent=2))
        return 0 if c is not None else 1
    if c is None:
        print("fabricd runs alone (no cluster: start it with --etcd and --node-id)")
        return 1
    etcd = "etcd ok" if c["etcd_ok"] else f"etcd UNREACHABLE: {c['etcd_error']}"
    print(f"cluster {c['name']}: this is {c['node_id']}; {etcd}; read "
          f"{_ago(c['checked_at']) if c['checked_at'] else 'never'}")
    print(f"TE leader (rebalances the fabric): {c['te_leader'] or 'none yet'}")
    held: dict[str, list[str]] = {m: [] for m in c["members"]}
    for dpid, node in sorted(c["masters"].items(), key=lambda kv: int(kv[0])):
        held.setdefault(node, []).append(dpid)
    rows = [[node, "yes" if node in c["members"] else "no (lease expired)", len(dpids),
             " ".join(dpids) or "-"] for node, dpids in sorted(held.items())]
    print(table(["INSTANCE", "LIVE", "SWITCHES", "MASTERS"], rows))
    return 0


def _match_text(match: dict) -> str:
    parts = [f"{k} {','.join(map(str, v))}" for k, v in match.items()]
    return "; ".join(parts)


def show_policy(p: dict) -> str:
    head = "QoS " + ("on" if p["enabled"] else "off (--no-qos)")
    if not p["classes"]:
        return head
    rows = [[c["name"], c["dscp"], c["queue"], c["scheduling"], f"{c['share']:.0%}",
             _match_text(c["match"])] for c in p["classes"]]
    rows.append(["best-effort", 0, 0, "share", f"{p['best_effort_share']:.0%}",
                 "everything else" + ("" if p["trust_unclassified_dscp"] else
                                      " (re-marked to DSCP 0 at the edge)")])
    return head + "\n" + table(["CLASS", "DSCP", "QUEUE", "SCHEDULING", "SHARE", "MATCH"], rows)


def cmd_qos(client: FabricClient, args) -> int:
    if args.qos_command == "show":
        p = policy_dict(client.qos_policy())
        print(json.dumps(p, indent=2) if args.json else show_policy(p))
    elif args.qos_command == "set":
        try:
            text = sys.stdin.read() if args.file == "-" else open(args.file).read()
        except OSError as exc:
            print(f"fabricctl: cannot read {args.file}: {exc.strerror}", file=sys.stderr)
            return 2
        p = policy_dict(client.set_qos_document(text))
        print(json.dumps(p, indent=2) if args.json else "policy applied\n" + show_policy(p))
    else:
        rows = qos_stats_list(client.qos_stats(args.dpid))
        if args.json:
            print(json.dumps(rows, indent=2))
        else:
            print(table(["DPID", "PORT", "NAME", "QUEUE", "TX BYTES", "TX PACKETS", "DROPS"],
                        [[r["dpid"], r["port"], r["port_name"], r["queue"], r["tx_bytes"],
                          r["tx_packets"], r["tx_errors"]] for r in rows]))
    return 0


def cmd_links(client: FabricClient, args) -> int:
    rows = links_list(client.links())
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(table(["SRC DPID", "SRC PORT", "DST DPID", "DST PORT", "MBIT/S", "UTIL", "DROPS/S"],
                [[r["src_dpid"], r["src_port"], r["dst_dpid"], r["dst_port"],
                  f"{r['rate_bps'] / 1e6:.2f}", f"{r['utilization']:.0%}",
                  f"{r['drops_per_second']:.1f}"] for r in rows]))
    return 0


def _dpid_port(text: str) -> tuple[int, int]:
    try:
        end = parse_end(text)
    except ValueError as exc:
        print(f"fabricctl: error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    return end.dpid, end.port


def cmd_maintenance(client: FabricClient, args) -> int:
    if args.what == "link":
        dpid, port = _dpid_port(args.target)
    else:
        try:
            dpid, port = int(args.target, 0), 0
        except ValueError:
            print(f"fabricctl: error: expected a dpid, got {args.target!r}", file=sys.stderr)
            return 2
    if args.command == "undrain":
        message = client.undrain(dpid, port)
    elif args.what == "link":
        message = client.drain_link(dpid, port)
    else:
        message = client.drain_switch(dpid)
    print(json.dumps({"message": message}) if args.json else message)
    return 0


def cmd_events(client: FabricClient, args) -> int:
    stream = client.watch_events(args.kind, args.replay, args.duration)
    shown = 0
    try:
        for e in stream:
            if args.json:
                print(json.dumps(event_dict(e)), flush=True)
            else:
                stamp = time.strftime("%H:%M:%S", time.localtime(e.time))
                print(f"{stamp}.{int(e.time * 1000) % 1000:03d}  {e.kind:<18} {e.message}",
                      flush=True)
            shown += 1
            if args.count and shown >= args.count:
                stream.cancel()
                break
    except grpc.RpcError as exc:
        if exc.code() not in (grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.CANCELLED):
            raise
    except KeyboardInterrupt:
        stream.cancel()
    return 0


def cmd_health(client: FabricClient, args) -> int:
    status = client.health(args.service)
    if args.json:
        print(json.dumps({"status": status}))
    else:
        print(status)
    return 0 if status == "SERVING" else 1


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="fabricctl", description="Client of the aifabric controller's gRPC API.")
    p.add_argument("--server", default=os.environ.get(ENV_SERVER, DEFAULT_SERVER),
                   metavar="HOST:PORT",
                   help=f"API address (default ${ENV_SERVER} or {DEFAULT_SERVER})")
    p.add_argument("--token", default=None,
                   help="API token (default $AIFABRIC_TOKEN, else the file "
                   f"$AIFABRIC_TOKEN_FILE or {DEFAULT_TOKEN_FILE} a local fabricd "
                   "writes)")
    p.add_argument("--ca", default=os.environ.get("AIFABRIC_CA"), metavar="PEM",
                   help="use TLS, trusting this CA (default $AIFABRIC_CA)")
    p.add_argument("--cert", default=os.environ.get("AIFABRIC_CERT"), metavar="PEM",
                   help="client certificate for TLS (default $AIFABRIC_CERT)")
    p.add_argument("--key", default=os.environ.get("AIFABRIC_KEY"), metavar="PEM",
                   help="its private key (default $AIFABRIC_KEY)")
    p.add_argument("--insecure-api", action="store_true",
                   help="send the token without TLS to a server that is not this host "
                   "(refused otherwise: anyone on the path could read it)")
    p.add_argument("--timeout", type=float, default=5.0, metavar="SECONDS",
                   help="per-call deadline (default 5)")
    p.add_argument("--json", action="store_true", help="machine-readable JSON output")
    p.add_argument("--version", action="version", version=f"fabricctl {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    t = sub.add_parser("topology", help="switches, links, hosts and wiring warnings")
    t.add_argument("--output", "-o", metavar="FILE",
                   help="draw the fabric instead: FILE.svg (or .png with rsvg-convert), "
                   "links coloured by utilization, drained ones dashed")
    t.set_defaults(func=cmd_topology)
    ho = sub.add_parser("hosts", help="hosts bound at leaf edge ports, with their state "
                                      "(bound, static, recovered, probing)")
    ho.add_argument("--state", choices=["bound", "static", "recovered", "probing"],
                    help="only hosts in this state")
    ho.set_defaults(func=cmd_hosts)
    en = sub.add_parser(
        "entries", help="what the controller wants one switch to hold, in ovs-ofctl syntax",
        description="Print the flow entries, groups and meters the controller wants switch "
        "DPID to hold, one ovs-ofctl line each (OpenFlow 1.3). To compare with the switch: "
        "fabricctl entries DPID --only flows > want.txt; "
        "ovs-ofctl -O OpenFlow13 diff-flows BRIDGE want.txt")
    en.add_argument("dpid", type=lambda v: int(v, 0), help="the switch's datapath id")
    en.add_argument("--only", choices=["flows", "groups", "meters"],
                    help="print only these lines, with no comments")
    en.set_defaults(func=cmd_entries)
    s = sub.add_parser("status", help="controller version, settings and counters")
    s.set_defaults(func=cmd_status)
    cl = sub.add_parser("cluster", help="cluster mode: the instances, which switches each "
                        "masters, etcd's health")
    cl.set_defaults(func=cmd_cluster)
    h = sub.add_parser("health", help="exit 0 when the controller is serving")
    h.add_argument("--service", default="", help="service name (default: the whole server)")
    h.set_defaults(func=cmd_health)
    maint = []
    for verb, text in (("drain", "take a link or spine out of service (traffic moves away)"),
                       ("undrain", "put a drained link or switch back in service")):
        mp = sub.add_parser(verb, help=text)
        mp.add_argument("what", choices=["link", "switch"])
        mp.add_argument("target", help="DPID:PORT (either end) for a link, DPID for a switch")
        mp.set_defaults(func=cmd_maintenance)
        maint.append(mp)
    lk = sub.add_parser("links", help="link directions with measured rate and utilization")
    lk.set_defaults(func=cmd_links)
    fl, *pins = add_flows_parsers(sub)
    ev = sub.add_parser("events", help="stream fabric events (link down, congestion, "
                                       "reroute, drain...) until interrupted")
    ev.add_argument("--kind", action="append", default=[], metavar="KIND",
                    help="only this kind (repeatable): " + ", ".join(KINDS))
    ev.add_argument("--replay", action="store_true", help="start with recent events")
    ev.add_argument("--count", type=int, default=0, help="stop after this many events")
    ev.add_argument("--duration", type=float, default=None, metavar="SECONDS",
                    help="stop after this long")
    ev.set_defaults(func=cmd_events)
    tp = add_top_parser(sub)
    sv = add_servers_parser(sub)
    q = sub.add_parser("qos", help="QoS policy and queue statistics")
    qsub = q.add_subparsers(dest="qos_command", required=True, metavar="ACTION")
    qs = qsub.add_parser("show", help="the policy in force")
    qset = qsub.add_parser("set", help="replace the policy (validated in full first)")
    qset.add_argument("file", help="policy file, YAML or JSON ('-' for stdin)")
    qst = qsub.add_parser("stats", help="per-port, per-queue counters and drops")
    qst.add_argument("--dpid", type=int, default=0, help="one switch only")
    q.set_defaults(func=cmd_qos)
    jobs = add_job_parser(sub)
    for sp in (t, ho, en, s, h, lk, qs, qset, qst, fl, ev, tp, sv, *maint, *pins, *jobs):
        sp.add_argument("--json", action="store_true", default=argparse.SUPPRESS,
                        help="machine-readable JSON output")
    return p


def refusal_text(exc: grpc.RpcError, server: str) -> str:
    """What a failed call says: the controller's own status and message when it answered
    (UNAVAILABLE too: etcd down, a write not in force yet), else that none answered."""
    code = exc.code()
    answered = any(k == ANSWERED_KEY for k, _ in exc.trailing_metadata() or ())
    if code == grpc.StatusCode.UNAVAILABLE and not answered:
        return f"cannot reach the controller at {server} (unavailable)"
    if code == grpc.StatusCode.DEADLINE_EXCEEDED and not answered:
        return f"no answer from the controller at {server} in time (see --timeout)"
    return f"{code.name}: {exc.details()}"


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    token = args.token if args.token is not None else default_token()
    if token and args.ca is None and not args.insecure_api and not local_target(args.server):
        print(f"fabricctl: not sending the API token in clear to {args.server}, which is "
              "not this host: use --ca for TLS, or --insecure-api to send it anyway",
              file=sys.stderr)
        return 2
    try:
        with FabricClient(args.server, args.timeout, token=args.token, ca=args.ca,
                          cert=args.cert, key=args.key) as client:
            return args.func(client, args)
    except OSError as exc:  # a --ca/--cert/--key file
        print(f"fabricctl: cannot read {exc.filename or ''}: {exc.strerror or exc}",
              file=sys.stderr)
        return 2
    except grpc.RpcError as exc:
        code = exc.code()
        print(f"fabricctl: {refusal_text(exc, args.server)}", file=sys.stderr)
        if code == grpc.StatusCode.INVALID_ARGUMENT:
            return 2
        if code in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED):
            return 4
        return 3 if code == grpc.StatusCode.FAILED_PRECONDITION else 1


if __name__ == "__main__":
    sys.exit(main())
