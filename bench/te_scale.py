"""Benchmark: the traffic-engineering core alone (no Mininet, no OpenFlow).

For each fabric size, build N tracked flows between random hosts on different leaves
(16 hosts per leaf, 100 Gbit/s links), give them measured rates (every flow large: 11-60%
of a link, the worst case for a pass), and time:

  first placement   new_flow() per flow, as when the flows start (microseconds)
  rebalancing pass  one TrafficEngineer.rebalance() over all of them (milliseconds;
                    demand estimation, placement, local search and the moves included)
  as fabricd runs it  job and moves on an event loop (in slices), the search on a
                    worker, with the loop's lateness measured throughout

Each pass is timed on a fresh copy of the same state, several times; the median is
reported. Results: bench/results/te-scale.json and docs/bench-te-scale.md.
Target (issue 4): one pass of the 32x64 / 4,000-flow case under 200 ms. The three-tier
case (issue 24): 8 pods of 16 leaves and 16 spines under 64 super-spines (spine plane i:
super-spines 4i+1..4i+4 over the i-th spine of every pod), flows between any two leaves
(7 in 8 between pods: four links each).
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import random
import statistics
import threading
import time
from pathlib import Path

from controller.core.te import (
    TCP,
    FlowKey,
    TeTopology,
    TrafficEngineer,
    down,
    resources,
    search,
    up,
)

ROOT = Path(__file__).resolve().parent.parent
RATE = 100e9
HOSTS_PER_LEAF = 16
# (spines, leaves (of a pod), flows, pods, super-spines)
CASES = ((32, 64, 4_000, 1, 0), (64, 256, 20_000, 1, 0), (16, 16, 20_000, 8, 64))
SLICE = 256  # moves applied per event, as fabricd (apps/rebalancer.py REBALANCE_SLICE)


def fabric(spines: int, leaves: int) -> TeTopology:
    uplinks, reach, cap = {}, {}, {}
    for j in range(leaves):
        leaf = 2000 + j
        uplinks[leaf] = tuple((i + 1, 1000 + i) for i in range(spines))
        for i in range(spines):
            cap[up(leaf, i + 1)] = RATE
            cap[down(1000 + i, leaf)] = RATE
    for i in range(spines):
        reach[1000 + i] = frozenset(2000 + j for j in range(leaves))
    return TeTopology(uplinks, reach, cap, host_rate=RATE)


def three_tier(pods: int, spines: int, leaves: int, supers: int) -> TeTopology:
    """Pod p: leaves 2000+p*leaves+j, spines 1000+p*spines+i; super-spine 3000+k sits in
    spine plane k // (supers // spines) over spine i of every pod."""
    per_plane = supers // spines
    uplinks, reach, cap, spine_ups, descent = {}, {}, {}, {}, {}
    for pod in range(pods):
        ls = [2000 + pod * leaves + j for j in range(leaves)]
        ss = [1000 + pod * spines + i for i in range(spines)]
        for leaf in ls:
            uplinks[leaf] = tuple((i + 1, s) for i, s in enumerate(ss))
            for i, s in enumerate(ss):
                cap[up(leaf, i + 1)] = cap[down(s, leaf)] = RATE
        for i, s in enumerate(ss):
            reach[s] = frozenset(ls)
            tops = [3000 + i * per_plane + k for k in range(per_plane)]
            spine_ups[s] = tuple((leaves + 1 + k, x) for k, x in enumerate(tops))
            for k, x in enumerate(tops):
                cap[up(s, leaves + 1 + k)] = cap[down(x, s)] = RATE
                for leaf in ls:
                    descent.setdefault(x, {})[leaf] = (s,)
    return TeTopology(uplinks, reach, cap, RATE, spine_ups, descent)


def populate(topo: TeTopology, leaves: int, n_flows: int, seed: int):
    rnd = random.Random(seed)
    hosts = [(f"10.{j // 256}.{j % 256}.{k + 1}", 2000 + j)
             for j in range(leaves) for k in range(HOSTS_PER_LEAF)]
    te = TrafficEngineer()
    t0 = time.perf_counter()
    while len(te.flows) < n_flows:
        (a, la), (b, lb) = rnd.sample(hosts, 2)
        if la == lb:
            continue
        te.new_flow(FlowKey(a, b, TCP, rnd.randint(1024, 65535), rnd.randint(1, 65535)),
                    la, lb, topo, {}, 0.0)
    placing = time.perf_counter() - t0
    for f in te.flows.values():
        f.rate_bps = rnd.uniform(0.11, 0.6) * RATE
    loads: dict = {}
    for f in te.flows.values():
        for r in resources(f.path, f.dst_leaf):
            loads[r] = loads.get(r, 0.0) + f.rate_bps
    return te, loads, placing


def pass_as_fabricd_runs_it(te: TrafficEngineer, topo: TeTopology, loads: dict,
                            slice_moves: int) -> dict:
    """One pass the way fabricd runs it: this thread plays the controller's event loop
    (it wakes every millisecond) and takes the job, the worker searches, then the loop
    applies the moves in slices of ``slice_moves``, one slice per wake-up. Returns the
    times of each step and how late every wake-up of the loop was (seconds)."""
    found: list = []
    lags: list[float] = []
    t0 = time.perf_counter()
    job = te.rebalance_job(topo, loads, 100.0)
    t1 = time.perf_counter()
    lags.append(t1 - t0)  # (the loop was busy with the job for this long)
    worker = threading.Thread(target=lambda: found.append(search(job)))
    worker.start()
    plan, applying, moves = None, 0.0, 0
    quality: dict = {}
    searching = applied = 0.0
    while True:
        t = time.perf_counter()
        if plan is None and found:
            plan = found.pop()
            searching = t - t1
            quality = {"before": plan.before, "after": plan.after}
        if plan is not None:
            moved, plan = te.finish_rebalance(plan, topo, 100.0, slice_moves)
            moves += len(moved)
            applying += time.perf_counter() - t
            if plan is None:
                applied = time.perf_counter()
                break
        time.sleep(0.001)
        lags.append(time.perf_counter() - t - 0.001)
    worker.join()
    return {"job": t1 - t0, "search": searching, "apply": applying, "moves": moves,
            "total": applied - t0, "lags": lags, **quality}


def run_case(spines: int, leaves: int, n_flows: int, repeats: int, pods: int = 1,
             supers: int = 0) -> dict:
    topo = three_tier(pods, spines, leaves, supers) if supers else fabric(spines, leaves)
    te, loads, placing = populate(topo, pods * leaves, n_flows, seed=spines * leaves)
    times, moves = [], 0
    for _ in range(repeats):
        fresh = copy.deepcopy(te)
        t0 = time.perf_counter()
        moved = fresh.rebalance(topo, loads, 100.0)
        times.append(time.perf_counter() - t0)
        moves = len(moved)
    runs = [pass_as_fabricd_runs_it(copy.deepcopy(te), topo, loads, SLICE)
            for _ in range(repeats)]
    lags = sorted(x for r in runs for x in r["lags"])
    slice_max = max(r["apply"] for r in runs)

    def med(k: str) -> float:
        return round(statistics.median(r[k] for r in runs) * 1e3, 1)

    return {
        "spines": spines, "leaves": leaves, "flows": n_flows, "pods": pods,
        "super_spines": supers,
        "first_placement_us_per_flow": round(placing / n_flows * 1e6, 1),
        # (the first pass also builds the topology's caches: it has its own column)
        "rebalance_pass_ms_median": round(statistics.median(times[1:] or times) * 1e3, 1),
        "rebalance_pass_ms_min": round(min(times[1:] or times) * 1e3, 1),
        "rebalance_pass_ms_max": round(max(times[1:] or times) * 1e3, 1),
        "first_pass_after_topology_change_ms": round(times[0] * 1e3, 1),
        "repeats": repeats,
        "flows_moved": moves,
        # (overload in link rates, worst link utilization) with the demands the pass
        # estimated: where the flows are, and where the pass puts them
        "overload_worst_before": runs[0]["before"],
        "overload_worst_after": runs[0]["after"],
        "job_on_loop_ms_median": med("job"),
        "search_on_worker_ms_median": med("search"),
        "moves_on_loop_ms_median": med("apply"),
        "moves_on_loop_ms_max": round(slice_max * 1e3, 1),
        "pass_as_run_ms_median": med("total"),
        "slice_moves": SLICE,
        "loop_lag_during_pass_ms_p99": round(lags[int(0.99 * (len(lags) - 1))] * 1e3, 2),
        "loop_lag_during_pass_ms_max": round(lags[-1] * 1e3, 2),
    }


def write_docs(rows: list[dict], path: Path) -> None:
    lines = [
        "# Traffic-engineering core at scale",
        "",
        f"Produced by `python -m bench.te_scale` on {platform.node()} "
        f"({platform.python_implementation()} {platform.python_version()}, "
        f"{time.strftime('%Y-%m-%d')}): the pure decision core, no Mininet. "
        f"{HOSTS_PER_LEAF} hosts per leaf, 100 Gbit/s links, random flows between leaves, "
        "every flow large (11-60% of a link).",
        "",
        "| fabric | flows | first placement (us/flow) | rebalancing pass in one go, "
        "median of the passes after the first (ms) | min-max (ms) "
        "| first pass after a topology change (ms) "
        "| flows moved | worst link before -> after | as fabricd runs it: job on the "
        "loop / search on the worker / moves on the loop (ms, medians) | whole pass (ms) "
        "| event loop's lag during the pass, p99 / max (ms) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        shape = (f"{r['pods']} pods x ({r['spines']} spines x {r['leaves']} leaves), "
                 f"{r['super_spines']} super-spines" if r.get("super_spines") else
                 f"{r['spines']} spines x {r['leaves']} leaves")
        lines.append(f"| {shape} | {r['flows']:,} | "
                     f"{r['first_placement_us_per_flow']} | {r['rebalance_pass_ms_median']} | "
                     f"{r['rebalance_pass_ms_min']}-{r['rebalance_pass_ms_max']} | "
                     f"{r['first_pass_after_topology_change_ms']} | "
                     f"{r['flows_moved']:,} | {r['overload_worst_before'][1]:.2f} -> "
                     f"{r['overload_worst_after'][1]:.2f} | {r['job_on_loop_ms_median']} / "
                     f"{r['search_on_worker_ms_median']} / {r['moves_on_loop_ms_median']} | "
                     f"{r['pass_as_run_ms_median']} | "
                     f"{r['loop_lag_during_pass_ms_p99']} / "
                     f"{r['loop_lag_during_pass_ms_max']} |")
    lines += ["", "The first pass after a topology change also numbers the resources and "
              "paths of the new topology (cached until the next change); the passes after "
              "it reuse them. A pass moves only the flows that buy its gain: a flow whose "
              "old path is as good as the one the search found stays on it. The worst link "
              "column is the most loaded link's utilization with the demands the pass "
              "estimated, where the flows were and where the pass puts them.", "",
              "The search's greedy step chooses each flow's path in turn, but in waves: a "
              "flow's choice depends only on the flows before it that share a leaf with it, "
              "so each wave (flows with no leaf in common) is one array operation over all "
              "its flows' paths (numpy). It chooses exactly as one flow at a time would "
              "(a unit test holds it to that); so does the array form of the demand "
              "estimation. The rest of a pass works in columns too: the flows are read once "
              "each (attribute getters in C) and chosen in arrays, a flow's current path is "
              "found by its uplink, the local search tries only the flows on the hottest "
              "links as each round starts.", "",
              "fabricd runs a pass in three steps: the job (copies of the large flows, as "
              "tuples) on the controller's event loop, the search (demands, placement) on "
              "a worker thread, and the moves back on the loop, in slices of "
              f"{SLICE} moves (whole ingress leaves) with other events served between them; "
              "a result is applied only if the fabric did not change meanwhile. The bench "
              "plays that loop on its main thread: it wakes every millisecond and applies "
              "one slice per wake-up; the last column is how late its wake-ups were during "
              "the whole pass (the GIL is shared with the search: Python switches threads "
              "every 5 ms). It covers the TE core only: in fabricd each slice also rewrites "
              "its leaves' entries (a diff per leaf). The worst wake-ups (the max column) "
              "are CPython's full garbage collections, which hold the GIL: they come after "
              "a topology change fills the path tables of a large fabric (100-300 ms at "
              "64x256 on this machine); fabricd freezes its start-up heap so that these "
              "passes do not also walk os-ken's and gRPC's objects.", "",
              "The three-tier case is issue 24's example: 8 pods of 16 leaves and 16 "
              "spines, each spine with 4 uplinks to the 4 super-spines of its spine plane "
              "(64 in all), so 64 paths join two leaves of different pods, as in the "
              "64x256 case, but each loads four links (leaf and spine uplinks, the "
              "super-spine's and the egress spine's links down). That wiring is 4:1 "
              "oversubscribed between pods, and 20,000 flows of 11-60% of a link on 2,048 "
              "leaf uplinks load them 3.5 times over: a pass finds little to gain (it moves "
              "nothing that would not come back) and its time is the search's cost alone. "
              "Its greedy step goes in two steps (controller/core/te/greedy.py): every "
              "flow on the spine plane whose leaf links end up least loaded (weighing the "
              "spine-tier links as the pass found them), then every flow between pods on "
              "the super-spine of its plane whose links end up least loaded. Each step is "
              "exact in batched waves, about 560 and 360 here; choosing both at once took "
              "about 2,500, because every flow from or into a pod may take any of its "
              "spines' uplinks (the pass took 885-926 ms that way against 758-783 ms in "
              "alternating runs on 2026-12-07, and left a worst link of 14.5 link rates "
              "against 13.5). The local search weighs a flow's options in one array "
              "operation, within a quarter of the evaluation budget. What is left of a "
              "pass (about 0.9 s here): the greedy's ~920 waves (~0.2 s), the demands and "
              "the copies of the flows (~0.2 s), the local search and keep-in-place "
              "(~0.2 s), the option table (~0.1 s).", "",
              "Targets: issue 4, one pass of the 32x64 case with 4,000 flows under 200 ms; "
              "issue 10, the event loop's lag under 10 ms at p99 during a pass of that "
              "case, and a 64x256 / 20,000-flow pass under 300 ms (met at the median and "
              "the slowest of the passes measured; the machine's own noise moves single "
              "passes by about 20%); issue 24, the three-tier case under 300 ms with the "
              "loop's lag under 10 ms at p99."]
    path.write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--out", default=str(ROOT / "bench" / "results" / "te-scale.json"))
    p.add_argument("--doc", default=str(ROOT / "docs" / "bench-te-scale.md"))
    args = p.parse_args(argv)
    rows = []
    for spines, leaves, n, pods, supers in CASES:
        rows.append(run_case(spines, leaves, n, args.repeats, pods, supers))
        print(json.dumps(rows[-1]), flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"benchmark": "te-scale", "cases": rows}, indent=2) + "\n")
    write_docs(rows, Path(args.doc))
    print(f"wrote {out} and {args.doc}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
