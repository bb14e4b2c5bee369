"""``fabricctl job``: register, list, show and delete training jobs.

A job is given on the command line (``job register ID --members A,B,C --pattern ring``)
or as a YAML/JSON file a scheduler's prolog writes (``job register --file job.yaml``)::

    id: llama-7b-run3
    members: [10.0.0.1, 10.0.0.3, 10.0.0.5, 10.0.0.7]   # rank order
    pattern: ring            # ring | all_to_all | tree | pairs
    # pairs: [[0, 2], [2, 0]]   (pattern pairs: rank pairs)
    transport: any           # any | tcp | udp | roce
    traffic_class: collective
    priority: 10
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from controller.cli.client import FabricClient, job_dict, job_spec_message
from controller.cli.text import read_document, table
from controller.core.model.job_spec import PATTERNS, TRANSPORTS, JobError, JobSpec


def _usage(message: str) -> int:
    print(f"fabricctl: error: {message}", file=sys.stderr)
    return 2


def _pairs(text: str) -> list[list[int]]:
    out = []
    for item in filter(None, (t.strip() for t in text.split(","))):
        a, sep, b = item.partition(":")
        if not sep or not a.strip().isdigit() or not b.strip().isdigit():
            raise JobError("pairs", f"expected SRC:DST rank pairs, got {item!r}")
        out.append([int(a), int(b)])
    return out


def spec_from_args(args) -> dict[str, Any]:
    """The job as a dict (JobSpec.to_dict shape), from --file or the flags; JobError
    naming the field, ValueError for an unreadable file."""
    if args.file:
        spec = JobSpec.from_dict(read_document(args.file))
    else:
        if not args.id or not args.members or not args.pattern:
            raise ValueError("give ID, --members and --pattern, or --file")
        members = [m.strip() for m in args.members.split(",") if m.strip()]
        spec = JobSpec.from_dict({
            "id": args.id, "members": members, "pattern": args.pattern,
            "pairs": _pairs(args.pairs or ""), "transport": args.transport,
            "traffic_class": args.traffic_class, "priority": args.priority})
    return spec.to_dict()


def show_job(j: dict[str, Any]) -> str:
    lines = [f"job {j['id']}: {j['pattern']} over {len(j['members'])} hosts, "
             f"transport {j['transport'] or 'any'}, class {j['traffic_class'] or '-'}, "
             f"priority {j['priority']}",
             f"state: {j['state']}"]
    if j["worst_link"]:
        lines.append(f"worst link: {j['worst_link']} carries {j['worst_link_pairs']} of its "
                     f"concurrent pairs, {j['worst_link_utilization']:.0%} busy")
    lines.append("")
    tiers = any(p["super_spine"] for p in j["pairs"])  # (three tiers: and super-spines)
    lines.append(table(
        ["STEP", "RANKS", "SOURCE", "DESTINATION", "LEAVES", "SPINE", "UPLINK",
         *(["SUPER-SPINE"] if tiers else []), "STATE", "MBIT/S", "BYTES"],
        [[p["step"], f"{p['src_rank']}->{p['dst_rank']}", p["src_ip"], p["dst_ip"],
          f"{p['src_leaf']}->{p['dst_leaf']}", p["spine"] or "-", p["uplink_port"] or "-",
          *([p["super_spine"] or "-"] if tiers else []),
          p["state"], f"{p['rate_bps'] / 1e6:.2f}", p["bytes"]] for p in j["pairs"]]))
    return "\n".join(lines)


def cmd_job(client: FabricClient, args) -> int:
    if args.job_command == "register":
        try:
            d = spec_from_args(args)
        except (JobError, ValueError) as exc:
            return _usage(str(exc))
        j = job_dict(client.register_job(job_spec_message(d)))
        print(json.dumps(j, indent=2) if args.json else "registered\n" + show_job(j))
    elif args.job_command == "list":
        rows = [job_dict(j) for j in client.jobs().jobs]
        if args.json:
            print(json.dumps(rows, indent=2))
        else:
            print(table(["ID", "PATTERN", "HOSTS", "PRIORITY", "CLASS", "WORST LINK",
                         "PAIRS", "STATE"],
                        [[r["id"], r["pattern"], len(r["members"]), r["priority"],
                          r["traffic_class"] or "-", r["worst_link"] or "-",
                          r["worst_link_pairs"], r["state"]] for r in rows]))
    elif args.job_command == "show":
        j = job_dict(client.job(args.id))
        print(json.dumps(j, indent=2) if args.json else show_job(j))
    else:
        message = client.delete_job(args.id)
        print(json.dumps({"message": message}) if args.json else message)
    return 0


def add_job_parser(sub) -> list[argparse.ArgumentParser]:
    """``job`` and its actions; returns the parsers that take --json."""
    jp = sub.add_parser("job", help="training jobs: their hosts' pairs placed together",
                        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    jsub = jp.add_subparsers(dest="job_command", required=True, metavar="ACTION")
    reg = jsub.add_parser("register", help="register a job (from flags or --file)")
    reg.add_argument("id", nargs="?", help="job id (1-64 of A-Z a-z 0-9 . _ -)")
    reg.add_argument("--file", "-f", metavar="FILE",
                     help="the job as YAML or JSON ('-' for stdin), instead of the flags")
    reg.add_argument("--members", metavar="IP,IP,...", help="member hosts in rank order: "
                     "IPv4 addresses, or SERVER:RAIL for a configured server's NIC")
    reg.add_argument("--pattern", choices=PATTERNS, help="communication pattern")
    reg.add_argument("--pairs", metavar="S:D,S:D", help="rank pairs (pattern pairs)")
    reg.add_argument("--transport", choices=TRANSPORTS, default="any",
                     help="which traffic between members follows the placement (default any)")
    reg.add_argument("--class", dest="traffic_class", default="", metavar="CLASS",
                     help="QoS class to mark the job's traffic into at the edge")
    reg.add_argument("--priority", type=int, default=0, help="higher is placed first")
    ls = jsub.add_parser("list", help="registered jobs")
    sh = jsub.add_parser("show", help="one job: its pairs, paths and traffic")
    sh.add_argument("id")
    de = jsub.add_parser("delete", help="remove a job (its pairs go back to ECMP and TE)")
    de.add_argument("id")
    jp.set_defaults(func=cmd_job)
    return [reg, ls, sh, de]
