"""``fabricctl servers``: each configured server's NICs, rail by rail, with the leaf and
port each is on and the rail check's verdict (ok, off-rail, unseen)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from controller.cli.client import FabricClient, topology_dict
from controller.cli.text import table


def show_servers(nics: list[dict[str, Any]], warnings: list[str]) -> str:
    """The NICs as a table (a server's rows together), then the rail warnings."""
    servers = sorted({n["server"] for n in nics})
    out = [f"Servers ({len(servers)}, {len(nics)} NICs)"]
    out.append(table(["SERVER", "RAIL", "NIC", "IP", "MAC", "LEAF", "PORT", "STATE"],
                     [[n["server"], n["rail"], n["nic"], n["ip"] or "-", n["mac"] or "-",
                       n["dpid"] or "-", n["port"] or "-", n["state"]]
                      for n in sorted(nics, key=lambda n: (n["server"], n["rail"]))]))
    off = [w for w in warnings if w.startswith("server ")]
    out.append(f"\nRail check ({len(off)} NICs off their rail)")
    out.extend(f"  ! {w}" for w in off)
    if not off and nics:
        out.append("  every NIC seen is on a leaf of its rail")
    if not nics:
        out.append("  no servers configured (servers: or server_rule: in fabricd's "
                   "configuration)")
    return "\n".join(out)


def cmd_servers(client: FabricClient, args) -> int:
    topo = topology_dict(client.topology())
    nics = topo["server_nics"]
    if args.name:
        nics = [n for n in nics if n["server"] == args.name]
        if not nics:
            print(f"fabricctl: no server {args.name!r}", file=sys.stderr)
            return 1
    if args.json:
        print(json.dumps(nics, indent=2))
    else:
        print(show_servers(nics, topo["warnings"]))
    return 0


def add_servers_parser(sub) -> argparse.ArgumentParser:
    """``servers`` and its options; returns its parser (it takes --json)."""
    sv = sub.add_parser("servers", help="servers and their NICs by rail: where each is, "
                                        "and the rail check")
    sv.add_argument("name", nargs="?", metavar="NAME", help="one server only")
    sv.set_defaults(func=cmd_servers)
    return sv
