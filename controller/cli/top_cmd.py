"""``fabricctl top``: live link utilization and queue drops, refreshed in place."""

from __future__ import annotations

import argparse
import json
import sys
import time

from controller.cli.client import FabricClient, links_list, qos_stats_list
from controller.cli.text import table


def _bar(fraction: float, width: int = 20) -> str:
    filled = max(0, min(width, round(fraction * width)))
    return "#" * filled + "." * (width - filled)


def top_frame(links: list[dict], queues: list[dict], prev: dict, elapsed: float,
              flows: int, rows: int) -> str:
    """One screen of ``fabricctl top``: the busiest link directions, then the queues
    that dropped packets since the previous frame."""
    busiest = sorted(links, key=lambda r: -r["utilization"])[:rows]
    out = [f"aifabric top  {time.strftime('%H:%M:%S')}  {len(links)} link directions, "
           f"{flows} tracked flows", ""]
    out.append(table(["LINK", "MBIT/S", "UTIL", "", "DROPS/S"],
                     [[f"{r['src_dpid']}:{r['src_port']} -> {r['dst_dpid']}:{r['dst_port']}",
                       f"{r['rate_bps'] / 1e6:.2f}", f"{r['utilization']:.0%}",
                       _bar(r["utilization"]), f"{r['drops_per_second']:.1f}"]
                      for r in busiest]))
    dropping = []
    for q in queues:
        key = (q["dpid"], q["port"], q["queue"])
        before = prev.get(key)
        if before is not None and q["tx_errors"] > before and elapsed > 0:
            dropping.append((q, (q["tx_errors"] - before) / elapsed))
    out.append("")
    if dropping:
        out.append(table(["QUEUE", "PORT", "DROPS/S"],
                         [[f"{q['dpid']}:{q['port']} q{q['queue']}", q["port_name"],
                           f"{rate:.1f}"] for q, rate in sorted(dropping, key=lambda x: -x[1])
                          [:rows]]))
    else:
        out.append("no queue dropped packets since the last refresh")
    return "\n".join(out)


def cmd_top(client: FabricClient, args) -> int:
    prev: dict = {}
    last = time.monotonic()
    shown = 0
    clear = sys.stdout.isatty() and not args.json
    try:
        while True:
            links = links_list(client.links())
            queues = qos_stats_list(client.qos_stats())
            flows = len(client.flows().flows)
            now = time.monotonic()
            if args.json:
                print(json.dumps({"time": time.time(), "links": links, "queues": queues,
                                  "flows": flows}), flush=True)
            else:
                frame = top_frame(links, queues, prev, now - last, flows, args.rows)
                print(("\x1b[H\x1b[2J" if clear else "") + frame, flush=True)
                if not clear:
                    print()
            prev = {(q["dpid"], q["port"], q["queue"]): q["tx_errors"] for q in queues}
            last = now
            shown += 1
            if args.count and shown >= args.count:
                return 0
            time.sleep(args.interval)
    except KeyboardInterrupt:
        return 0


def add_top_parser(sub) -> argparse.ArgumentParser:
    """``top`` and its options; returns its parser (it takes --json)."""
    tp = sub.add_parser("top", help="live link utilization and queue drops, refreshed in "
                                    "place (Ctrl-C to leave)")
    tp.add_argument("--interval", type=float, default=1.0, metavar="SECONDS",
                    help="refresh period (default 1)")
    tp.add_argument("--count", type=int, default=0, help="stop after this many refreshes")
    tp.add_argument("--rows", type=int, default=16, help="rows per table (default 16)")
    tp.set_defaults(func=cmd_top)
    return tp
