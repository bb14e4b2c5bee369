"""``fabricctl flows``, ``pin`` and ``unpin``: the flows traffic engineering tracks with
their paths (between pods of a three-tier fabric, the super-spine too), and the
operator's pins."""

from __future__ import annotations

import argparse
import json
from typing import Any

from controller.cli.client import FabricClient, flow_dict, flow_match
from controller.cli.text import table


def show_flows(rows: list[dict[str, Any]]) -> str:
    """The flows as a table, the busiest first (a SUPER-SPINE column when any crosses
    one)."""
    def end(ip: str, port: int) -> str:
        return f"{ip}:{port or '*'}"

    tiers = any(r["super_spine"] for r in rows)
    head = ["PROTO", "SOURCE", "DESTINATION", "LEAVES", "SPINE", "UPLINK"]
    head += ["SUPER-SPINE"] if tiers else []
    out = []
    for r in sorted(rows, key=lambda r: -r["rate_bps"]):
        row = [r["protocol"], end(r["src_ip"], r["src_port"]), end(r["dst_ip"], r["dst_port"]),
               f"{r['src_leaf']}->{r['dst_leaf']}", r["spine"] or "ECMP",
               r["uplink_port"] or "-"]
        if tiers:
            row.append(f"{r['super_spine']} (port {r['spine_uplink_port']})"
                       if r["super_spine"] else "-")
        out.append(row + [f"{r['rate_bps'] / 1e6:.2f}", r["traffic_class"],
                          "yes" if r["large"] else "", r["pinned_by"], r["moves"]])
    return table(head + ["MBIT/S", "CLASS", "LARGE", "BY", "MOVES"], out)


def cmd_flows(client: FabricClient, args) -> int:
    got = client.flows(large_only=args.large)
    rows = [flow_dict(f) for f in got.flows]
    if args.json:
        print(json.dumps({"te_enabled": got.te_enabled, "flows": rows}, indent=2))
    elif not got.te_enabled:
        print("traffic engineering is off (fabricd --no-te): ECMP groups carry every flow")
    else:
        print(show_flows(rows))
    return 0


def _flow_arg(args) -> Any:
    return flow_match(args.src, args.dst, args.protocol, args.sport, args.dport)


def cmd_pin(client: FabricClient, args) -> int:
    f = client.pin_flow(_flow_arg(args), args.spine)
    row = flow_dict(f)
    if args.json:
        print(json.dumps(row, indent=2))
        return 0
    via = (f"spine {row['spine']} port {row['spine_uplink_port']} -> super-spine "
           f"{row['super_spine']}" if row["super_spine"] else f"spine {row['spine']}")
    print(f"{row['protocol']} {row['src_ip']}:{row['src_port'] or '*'} -> "
          f"{row['dst_ip']}:{row['dst_port'] or '*'} pinned to {via} "
          f"(leaf {row['src_leaf']} port {row['uplink_port']})")
    return 0


def cmd_unpin(client: FabricClient, args) -> int:
    message = client.unpin_flow(_flow_arg(args))
    print(json.dumps({"message": message}) if args.json else message)
    return 0


def add_flows_parsers(sub) -> list[argparse.ArgumentParser]:
    """``flows``, ``pin`` and ``unpin``; returns their parsers (they take --json)."""
    fl = sub.add_parser("flows", help="flows traffic engineering tracks, with their paths")
    fl.add_argument("--large", action="store_true", help="only large flows")
    fl.set_defaults(func=cmd_flows)
    out = [fl]
    for verb, text in (("pin", "hold a flow on one spine or super-spine (TE leaves it "
                               "there)"),
                       ("unpin", "hand a pinned flow back to traffic engineering")):
        pp = sub.add_parser(verb, help=text)
        pp.add_argument("protocol", choices=["tcp", "udp"])
        pp.add_argument("src", help="source IPv4 address")
        pp.add_argument("dst", help="destination IPv4 address")
        pp.add_argument("--sport", type=int, default=0, help="source port (default: any)")
        pp.add_argument("--dport", type=int, default=0, help="destination port (default: any)")
        if verb == "pin":
            pp.add_argument("--spine", type=lambda v: int(v, 0), required=True,
                            help="dpid of the spine the flow must cross; between pods of a "
                                 "three-tier fabric, a spine of the source's pod or a "
                                 "super-spine")
        pp.set_defaults(func=cmd_pin if verb == "pin" else cmd_unpin)
        out.append(pp)
    return out
