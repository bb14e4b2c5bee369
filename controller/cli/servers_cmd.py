"""``fabricctl servers``: each server's NICs, rail by rail, with the leaf and port each
is on and the rail check's verdict (ok, off-rail, unseen); ``--set FILE`` replaces the
servers set through the API (a YAML or JSON list of ``{name, nics}``, or
``{servers: [...]}``), ``--clear`` removes them."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from controller.cli.client import FabricClient, topology_dict
from controller.cli.text import read_document, table


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


def servers_from_file(path: str) -> list[tuple[str, list[str]]]:
    """(name, NICs) of each server a file lists (``-``: standard input); ValueError
    saying what is wrong with its shape (the controller checks names and NICs)."""
    data = read_document(path)
    if isinstance(data, dict) and set(data) == {"servers"}:
        data = data["servers"]
    if data is None:
        data = []
    if not isinstance(data, list):
        raise ValueError(f"{path}: expected a list of servers (or servers: [...])")
    out = []
    for i, s in enumerate(data):
        if not isinstance(s, dict) or set(s) != {"name", "nics"} or not isinstance(
                s["nics"], list):
            raise ValueError(f"{path}: servers[{i}] must be {{name: ..., nics: [...]}}")
        out.append((str(s["name"]), [str(n) for n in s["nics"]]))
    return out


def cmd_servers(client: FabricClient, args) -> int:
    if args.set is not None or args.clear:
        if args.name:
            print("fabricctl: error: --set and --clear take no NAME (they replace every "
                  "server set through the API)", file=sys.stderr)
            return 2
        try:
            servers = [] if args.clear else servers_from_file(args.set)
        except ValueError as exc:
            print(f"fabricctl: error: {exc}", file=sys.stderr)
            return 2
        message = client.set_servers(servers)
        print(json.dumps({"message": message}) if args.json else message)
        return 0
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
    change = sv.add_mutually_exclusive_group()
    change.add_argument("--set", metavar="FILE", help="replace the servers set through "
                        "the API with a YAML or JSON list of {name, nics} (NICs in rail "
                        "order; - for standard input); the configuration's stay")
    change.add_argument("--clear", action="store_true",
                        help="remove the servers set through the API")
    sv.set_defaults(func=cmd_servers)
    return sv
