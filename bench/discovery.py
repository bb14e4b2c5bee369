"""Benchmark: discovery and reachability time of fabricd on Mininet fabrics.

For each fabric size: start fabricd and the fabric, then measure (on the controller's
clock, from its API) the time from the first switch connecting to the full graph, and
how much of it is the switches' own connection spread (the baseline: the controller
cannot discover a switch before it connects). Then time one all-pairs ping round.
Results go to bench/results/discovery.json and docs/bench-discovery.md.

  python -m bench.discovery [--sizes 2x4x2,4x8x2,8x32x1]
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

from mininet_topos.controller_proc import FabricdProcess
from mininet_topos.discovery import wait_discovered
from mininet_topos.network import cleanup, fabric_network, reachability
from mininet_topos.spine_leaf import FabricSpec

ROOT = Path(__file__).resolve().parent.parent


def measure(spec: FabricSpec, workdir: Path) -> dict:
    cleanup()
    with FabricdProcess(workdir / f"fabricd-{spec.spines}x{spec.leaves}.log") as ctl:
        t0 = time.monotonic()
        with fabric_network(spec, ctl.controller) as net:
            started = time.monotonic() - t0
            with ctl.client(timeout=10) as client:
                topo = wait_discovered(client, spec, timeout=180)
            connects = sorted(s["connected_since"] for s in topo["switches"])
            last_link = max(lk["discovered_at"] for lk in topo["links"])
            time.sleep(1.2)  # let the last switches settle before hosts speak
            t1 = time.monotonic()
            ok = reachability(net, count=1, timeout=2, at_once=False)
            reach = time.monotonic() - t1
            t2 = time.monotonic()
            ok2 = reachability(net, count=1, timeout=2, at_once=False)
            reach_warm = time.monotonic() - t2
    return {
        "fabric": f"{spec.spines}x{spec.leaves}",
        "spines": spec.spines,
        "leaves": spec.leaves,
        "hosts": spec.n_hosts,
        "switches": spec.spines + spec.leaves,
        "link_directions": spec.n_directed_links,
        "mininet_start_s": round(started, 3),
        "connect_spread_s": round(connects[-1] - connects[0], 3),
        "discovery_s": round(last_link - connects[0], 3),
        "discovery_after_last_connect_s": round(last_link - connects[-1], 3),
        "pairs": len(ok),
        "pairs_reachable_first_round": sum(ok.values()),
        "pairs_reachable_second_round": sum(ok2.values()),
        "all_pairs_first_round_s": round(reach, 2),
        "all_pairs_warm_round_s": round(reach_warm, 2),
        "warm_over_first_ratio": round(reach_warm / reach, 3) if reach else None,
    }


def write_docs(results: list[dict], path: Path) -> None:
    lines = [
        "# Discovery and reachability benchmark",
        "",
        "Produced by `python -m bench.discovery` (`make bench`) on "
        f"{platform.node()} ({platform.machine()}, Python {platform.python_version()}), "
        f"{time.strftime('%Y-%m-%d')}. Userspace Open vSwitch, one `ovs-vswitchd` for all "
        "bridges; LLDP interval 1 s, settle time 1 s.",
        "",
        "*Discovery* runs on the controller's clock, from the first switch connecting to the "
        "last link direction found. The baseline is the *connect spread* (first to last "
        "switch connecting), which no controller can beat; *after last connect* is what "
        "fabricd itself adds. *All pairs* is one ping per ordered host pair, run one pair at "
        "a time: the first round includes ARP and entry installation; the warm round "
        "is the same pings once everything is in place.",
        "",
        "| fabric | switches | link dirs | hosts | connect spread (s) | discovery (s) | "
        "after last connect (s) | all pairs, first (s) | all pairs, warm (s) | reachable |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in results:
        lines.append(
            f"| {r['fabric']} | {r['switches']} | {r['link_directions']} | {r['hosts']} | "
            f"{r['connect_spread_s']} | {r['discovery_s']} | "
            f"{r['discovery_after_last_connect_s']} | {r['all_pairs_first_round_s']} | "
            f"{r['all_pairs_warm_round_s']} | {r['pairs_reachable_first_round']}/{r['pairs']} |"
        )
    path.write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="2x4x2,4x8x2,8x32x1",
                   help="comma-separated SPINESxLEAVESxHOSTS_PER_LEAF (default %(default)s)")
    p.add_argument("--out", default=str(ROOT / "bench" / "results" / "discovery.json"))
    p.add_argument("--doc", default=str(ROOT / "docs" / "bench-discovery.md"))
    args = p.parse_args(argv)
    results = []
    with tempfile.TemporaryDirectory(prefix="aifabric-bench-") as tmp:
        for size in args.sizes.split(","):
            n_spines, n_leaves, per_leaf = (int(x) for x in size.lower().split("x"))
            spec = FabricSpec(spines=n_spines, leaves=n_leaves, hosts_per_leaf=per_leaf, bw=10)
            print(f"measuring {size} ...", flush=True)
            r = measure(spec, Path(tmp))
            print(json.dumps(r), flush=True)
            results.append(r)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"benchmark": "discovery", "results": results}, indent=2) + "\n")
    write_docs(results, Path(args.doc))
    print(f"wrote {out} and {args.doc}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
