"""Benchmark: fabricd's control plane at hundreds to a thousand switches.

A real fabricd (one process, its own OpenFlow and API ports) against a fleet of fake
OpenFlow 1.3 switches (tests/fakes, docs/fleet.md), each on its own TCP session and
cabled as a two-tier Clos (``SxL``: S spines, L leaves) or a three-tier one (``PpSxL/X``:
P pods of S spines and L leaves, under S spine planes of X super-spines). For each size
it measures, on this machine:

- connect to every link discovered, and connect to every switch synced (each fake holds
  exactly the entries, groups and meters the controller wants, read from the fake's own
  tables, and the controller has nothing pending);
- steady state over a window: fabricd's CPU (share of one core), RSS, the event loop's
  lag (p50/p99 of ``aifabric_event_loop_lag_seconds``), OpenFlow messages per second;
- the API at that size: GetTopology, ListLinks, ListFlows (median and worst of a few);
- last, new-flow setup (:mod:`bench.flow_setup`): new UDP 5-tuples from every fake host at an
  offered rate, the first packet of each copied to fabricd, which pins it on its leaf:
  flows handled per second and the latency from the frame to the entry on the switch
  (p50/p99), the loop's lag meanwhile;
- a sync storm: every switch's session dropped and reopened at once (switches keep their
  tables): time until all are synced again, messages sent to re-install (ideally none),
  the loop's lag during it.

A size that does not get there within its time limit is reported with how far it got
(links found, switches synced) rather than dropped. Results go to
bench/results/scale.json and docs/bench-scale.md.

  python -m bench.scale [--sizes 4x96,16x304,16x984,16p8x48/4] [--window 20] [--limit 300]
                        [--hosts-per-leaf 2] [--setup-rates 1000,5000]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import re
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import grpc

from bench import flow_setup
from bench.common import LOOP_LAG, metric_samples, save
from controller.daemon import GC_THRESHOLDS
from mininet_topos.controller_proc import FabricdProcess
from tests.e2e.fleet_support import drift, links_of
from tests.fakes.fleet import Fleet
from tests.fakes.hosts import HostNet
from tests.fakes.layout import Layout, spine_leaf, three_tier

ROOT = Path(__file__).resolve().parent.parent
CLK_TCK = os.sysconf("SC_CLK_TCK")
DEFAULT_SIZES = "4x96,16x304,16x984"
ANALYSIS = "<!-- analysis: kept when the tables above are regenerated -->"


# --- the process ------------------------------------------------------------------------------
ECHO_MAX_UNANSWERED = 30  # (x 2 s: see measure)


def cpu_seconds(pid: int) -> float:
    """user + system CPU time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def scrape(ctl: FabricdProcess) -> dict[str, float]:
    """The metrics this benchmark reads: loop-lag histogram buckets, OpenFlow message
    counters."""
    samples = metric_samples(ctl.metrics_addr)
    out = {f"lag_le_{s.labels['le']}": s.value for s in samples.get(LOOP_LAG, [])
           if s.name.endswith("_bucket")}
    out.update({f"msg_{s.labels['type']}": s.value
                for s in samples.get("aifabric_openflow_messages", [])
                if s.name.endswith("_total")})
    out.update({f"dropped_{s.labels['app']}_{s.labels['lane']}": s.value
                for s in samples.get("aifabric_intake_dropped", [])
                if s.name.endswith("_total")})
    return out


def lag_quantile(before: dict, after: dict, q: float) -> float | None:
    """The ``q`` quantile of the loop lag between two scrapes (the upper bound of the
    histogram bucket it falls in; None when no tick ran)."""
    bounds = sorted((float(k[7:]) if k[7:] != "+Inf" else float("inf"), k)
                    for k in after if k.startswith("lag_le_"))
    total = after.get("lag_le_+Inf", 0) - before.get("lag_le_+Inf", 0)
    if total <= 0:
        return None
    for bound, key in bounds:
        if after[key] - before.get(key, 0) >= q * total:
            return bound
    return float("inf")


def messages(before: dict, after: dict) -> dict[str, float]:
    return {k[4:]: after[k] - before.get(k, 0) for k in after if k.startswith("msg_")}


# --- waiting ----------------------------------------------------------------------------------
def wait_links(client, want: set, limit: float, t0: float) -> tuple[float | None, int]:
    """Seconds from ``t0`` until the controller knows every link of ``want`` (None if not
    within ``limit``), and how many it knew last."""
    got = 0
    while time.monotonic() - t0 < limit:
        asked = time.monotonic()
        try:
            found = links_of(client)
        except grpc.RpcError:  # (a request that timed out: the last answer stands)
            time.sleep(0.5)
            continue
        got = len(found & want)
        if found == want:
            return round(time.monotonic() - t0, 2), got
        # (every 0.5 s, or less often than the answer takes: at 1,000 switches a
        # topology took fabricd's API thread a fifth of the interpreter's time)
        time.sleep(max(0.5, 4 * (time.monotonic() - asked)))
    return None, got


def wait_synced(client, fleet: Fleet, dpids: list[int], limit: float,
                t0: float) -> tuple[float | None, int, list[str]]:
    """Seconds from ``t0`` until every switch holds what the controller wants (None if
    not within ``limit``), how many did at the last check, and some of the rest."""
    pending = list(dpids)
    problems: list[str] = []
    while time.monotonic() - t0 < limit:
        problems, still = [], []
        for dpid in pending:
            try:
                d = drift(client, fleet, dpid)
            except grpc.RpcError as exc:
                d = f"switch {dpid}: API {exc.code()}"
            if d:
                still.append(dpid)
                problems.append(d)
        if not still:
            return round(time.monotonic() - t0, 2), len(dpids), []
        pending = still
        time.sleep(1.0)
    return None, len(dpids) - len(pending), problems[:3]


def timed(fn: Callable[[], object], n: int = 5) -> dict[str, float]:
    took = []
    for _ in range(n):
        t = time.monotonic()
        fn()
        took.append(time.monotonic() - t)
    return {"median_ms": round(statistics.median(took) * 1000, 1),
            "max_ms": round(max(took) * 1000, 1)}


# --- one size ---------------------------------------------------------------------------------
SIZE = re.compile(r"^(?:(\d+)p)?(\d+)x(\d+)(?:/(\d+))?$")


def parse_size(text: str) -> tuple[int, int, int, int]:
    """``SxL`` or ``PpSxL/X`` -> (pods, spines, leaves, super-spines per spine plane);
    ValueError if it is neither."""
    m = SIZE.match(text.strip())
    if m is None:
        raise ValueError(text)
    pods, spines, leaves, supers = (int(g) if g else 0 for g in m.groups())
    if (pods > 0) != (supers > 0) or min(spines, leaves) < 1 or pods == 1:
        raise ValueError(text)
    return pods, spines, leaves, supers


def layout_of(size: str, hosts_per_leaf: int) -> Layout:
    pods, spines, leaves, supers = parse_size(size)
    if pods:
        return three_tier(pods, spines, leaves, supers, hosts_per_leaf)
    return spine_leaf(spines, leaves, hosts_per_leaf)


def measure(name: str, window: float, limit: float, workdir: Path,
            hosts_per_leaf: int = 2, setup_rates: tuple[float, ...] = (1000.0, 5000.0)
            ) -> dict:
    lay = layout_of(name, hosts_per_leaf)
    want = lay.directed_links()
    file = name.replace("/", "-")
    cfg = workdir / f"fabricd-{file}.yaml"
    # QoS off (no queues to make), its OVSDB pointed nowhere: nothing on the machine is
    # touched; the API's deadline long enough for a thousand switches' answers. Echo
    # requests may go unanswered for a minute: the fleet is one Python thread sharing
    # two cores with fabricd, and from about 160 switches it answers the spines' echo
    # requests seconds late (behind their probes), which ended their sessions (8 s)
    cfg.write_text(json.dumps({"openflow": {"echo_max_unanswered": ECHO_MAX_UNANSWERED},
                               "qos": {"enabled": False,
                                       "ovsdb": f"unix:{workdir}/no-ovsdb.sock"}}))
    ctl = FabricdProcess(workdir / f"fabricd-{file}.log",
                         extra_args=["--no-qos", "--config", str(cfg)])
    row: dict = {"fabric": name, "spines": len(lay.spines), "leaves": len(lay.leaves),
                 "super_spines": len(lay.supers), "switches": len(lay.dpids),
                 "link_directions": len(want), "hosts": hosts_per_leaf * len(lay.leaves)}
    ctl.start()
    pid = ctl.proc.pid
    hosts = HostNet(lay)
    fleet = Fleet(ctl.of_port, lay, on_host_frame=hosts.on_frame)
    hosts.attach(fleet)
    try:
        with ctl.client(timeout=60) as c:
            before = scrape(ctl)
            cpu0, t0 = cpu_seconds(pid), time.monotonic()
            fleet.connect_all()
            row["discovered_s"], row["links_found"] = wait_links(c, want, limit, t0)
            synced, row["switches_synced"], row["sync_problems"] = wait_synced(
                c, fleet, lay.dpids, limit, t0)
            row["roles_right"] = roles_right(c, lay)
            row["synced_s"] = synced
            after = scrape(ctl)
            row["bring_up"] = {
                "cpu_s": round(cpu_seconds(pid) - cpu0, 1),
                "lag_p99_s": lag_quantile(before, after, 0.99),
                "messages": messages(before, after),
            }
            print(f"{name}: discovered {row['discovered_s']} s "
                  f"({row['links_found']}/{len(want)}), synced {synced} s "
                  f"({row['switches_synced']}/{len(lay.dpids)})", flush=True)
            if synced is None:
                return row
            row["steady"] = steady(ctl, pid, window)
            row["api"] = {"GetTopology": timed(c.topology), "ListLinks": timed(c.links),
                          "ListFlows": timed(c.flows)}
            row["storm"] = storm(ctl, c, fleet, lay.dpids, limit)
            print(f"{name}: steady {row['steady']}, storm {row['storm']}", flush=True)
            # (last: its flows, pinned and then expiring, would be the storm's business)
            if hosts_per_leaf and setup_rates:
                row["setup"] = setup(ctl, fleet, hosts, lay.leaves, setup_rates)
                print(f"{name}: setup {row['setup']}", flush=True)
    finally:
        row["fleet_failures"] = fleet.failures[:3]
        fleet.close()
        row["exit_code"] = ctl.stop(timeout=30)
    return row


def roles_right(client, lay: Layout) -> bool:
    """Every switch has the role its place in the wiring gives it."""
    want = ({d: "spine" for d in lay.spines} | {d: "leaf" for d in lay.leaves}
            | {d: "super-spine" for d in lay.supers})
    try:
        return {s.dpid: s.role for s in client.topology().switches} == want
    except grpc.RpcError:
        return False


def steady(ctl: FabricdProcess, pid: int, window: float) -> dict:
    before, cpu0, t0 = scrape(ctl), cpu_seconds(pid), time.monotonic()
    time.sleep(window)
    after, cpu1, t1 = scrape(ctl), cpu_seconds(pid), time.monotonic()
    rate = {k: round(v / (t1 - t0), 1) for k, v in messages(before, after).items()}
    return {"window_s": round(t1 - t0, 1), "cpu_cores": round((cpu1 - cpu0) / (t1 - t0), 3),
            "rss_mb": round(rss_mb(pid), 1), "lag_p50_s": lag_quantile(before, after, 0.5),
            "lag_p99_s": lag_quantile(before, after, 0.99), "messages_per_s": rate}


def setup(ctl: FabricdProcess, fleet: Fleet, hosts: HostNet, leaves: list[int],
          rates: tuple[float, ...], seconds: float = 3.0) -> dict:
    """New-flow setup at each offered rate in turn (bench.flow_setup)."""
    started = time.monotonic()
    pairs, watch = flow_setup.prepare(fleet, hosts, leaves)
    out: dict = {"pairs": len(pairs), "resolve_s": round(time.monotonic() - started, 1),
                 "runs": []}
    if not pairs:
        return out
    flow_setup.run(fleet, pairs, watch, 50.0, 1.0, dport=9000)  # (warm-up: not counted)
    for k, rate in enumerate(rates):
        before, lost = scrape(ctl), fleet.stats["packet_ins_dropped"]
        res = flow_setup.run(fleet, pairs, watch, rate, seconds, dport=9001 + k)
        after = scrape(ctl)
        res["lag_p99_s"] = lag_quantile(before, after, 0.99)
        # where the unanswered went: punts fabricd's intake dropped (over its backlog),
        # packet-ins the switches dropped (their backlog to a slow reader)
        res["intake_dropped"] = sum(v - before.get(m, 0) for m, v in after.items()
                                    if m.startswith("dropped_") and m.endswith("_punt"))
        res["switch_dropped"] = fleet.stats["packet_ins_dropped"] - lost
        out["runs"].append(res)
        time.sleep(2.0)
    return out


def storm(ctl: FabricdProcess, client, fleet: Fleet, dpids: list[int], limit: float) -> dict:
    """Every session dropped and reopened at once; the switches keep their tables."""
    before = scrape(ctl)
    t0 = time.monotonic()
    # all at once: one by one, the spines that go first are avoided by the leaves still
    # connected (a spine without its controller may be dead), which is then undone
    fleet.disconnect_all()
    fleet.connect_all()
    synced, n, problems = wait_synced(client, fleet, dpids, limit, t0)
    after = scrape(ctl)
    sent = messages(before, after)
    return {"synced_s": None if synced is None else round(synced, 2), "switches_synced": n,
            "problems": problems, "lag_p99_s": lag_quantile(before, after, 0.99),
            "flow_mods": sent.get("flow_mod", 0), "group_mods": sent.get("group_mod", 0)}


# --- the page ---------------------------------------------------------------------------------
def _f(v, unit: str = "", scale: float = 1.0) -> str:
    if v is None:
        return "-"
    if isinstance(v, float) and v == float("inf"):
        return "> 2.5 s"
    v = v * scale
    return f"{v:.0f}{unit}" if abs(v) >= 100 or float(v).is_integer() else f"{v:.1f}{unit}"


def _roles(row: dict) -> str:
    got = row.get("roles_right")
    return "-" if got is None else "right" if got else "wrong"


def _per_leaf(rows: list[dict]) -> str:
    return "/".join(sorted({str(r.get("hosts", 0) // r["leaves"]) for r in rows}))


def write_docs(result: dict, path: Path) -> None:
    rows, limit = result["sizes"], result["limit_s"]
    lines = [
        "# Benchmark: the control plane at hundreds to a thousand switches",
        "",
        "Generated by `python -m bench.scale` (raw figures: `bench/results/scale.json`).",
        f"Machine: {result['machine']}. One fabricd against a fleet of fake OpenFlow 1.3",
        "switches (docs/fleet.md) in one process on the same machine, each switch on its own",
        f"TCP session, with {_per_leaf(rows)} fake hosts behind each leaf, QoS off, TE on.",
        "Fabrics: SxL is two tiers (S spines, L leaves); PpSxL/X is three (P pods of S",
        "spines and L leaves, under S spine planes of X super-spines; roles: whether every",
        "switch was given the role its place gives it). Times are from the fleet connecting",
        "all at once; \"synced\": every switch holds exactly what fabricd wants, nothing",
        "pending.",
        "",
        "| fabric | switches | link directions | discovered | synced | roles | bring-up CPU s "
        "| bring-up flow/group-mods |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        b = r["bring_up"]
        disc = (_f(r["discovered_s"], " s") if r["discovered_s"] is not None else
                f"not in {limit:.0f} s ({r['links_found']} at the last look)")
        syn = (_f(r["synced_s"], " s") if r["synced_s"] is not None else
               f"not in {limit:.0f} s ({r['switches_synced']} synced)")
        lines.append(
            f"| {r['fabric']} | {r['switches']} | {r['link_directions']} | {disc} | {syn} "
            f"| {_roles(r)} | {_f(b['cpu_s'])} | {_f(b['messages'].get('flow_mod'))} / "
            f"{_f(b['messages'].get('group_mod'))} |")
    lines += ["", "Once synced: steady state over "
              f"{result['window_s']:.0f} s, then every session dropped and reopened at once "
              "(switches keep their tables):", "",
              "| fabric | CPU (cores) | RSS MB | loop lag p50 / p99 | LLDP packet-ins/s "
              "| storm: synced again | storm: loop lag p99 | storm: flow/group-mods |",
              "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        st, sm = r.get("steady"), r.get("storm")
        if not st or not sm:
            continue
        lines.append(
            f"| {r['fabric']} | {_f(st['cpu_cores'])} | {_f(st['rss_mb'])} "
            f"| {_f(st['lag_p50_s'], ' ms', 1000)} / {_f(st['lag_p99_s'], ' ms', 1000)} "
            f"| {_f(st['messages_per_s'].get('packet_in'))} | {_f(sm['synced_s'], ' s')} "
            f"| {_f(sm['lag_p99_s'], ' ms', 1000)} "
            f"| {_f(sm['flow_mods'])} / {_f(sm['group_mods'])} |")
    lines += ["", "New-flow setup: every fake host sends new UDP 5-tuples to a host on the next "
              "leaf, 3 s at each offered rate; from the frame entering its leaf to the pin "
              "(or the no-copy entry of a declined flow) applied by the switch:", "",
              "| fabric | hosts | offered/s | handled/s | pinned / declined / unanswered "
              "| latency p50 / p99 | loop lag p99 |", "|---|---|---|---|---|---|---|"]
    learned = [f"{r['fabric']}: {r['setup']['pairs']} of {r.get('hosts', 0)} in "
               f"{r['setup']['resolve_s']} s" for r in rows
               if "resolve_s" in (r.get("setup") or {})]
    if learned:  # (one after the other, each waiting for its answer: hosts learned)
        lines[-3:-3] = ["Before the runs, each fake host resolves its partner by ARP, one "
                        "after the other (fabricd learns the hosts): "
                        + "; ".join(learned) + ".", ""]
    for r in rows:
        for run in (r.get("setup") or {}).get("runs", []):
            lines.append(
                f"| {r['fabric']} | {r.get('hosts', '-')} | {_f(run['offered_per_s'])} "
                f"| {_f(run['handled_per_s'])} | {run['pinned']} / {run['declined']} / "
                f"{run['unanswered']} | {_f(run['latency_p50_ms'], ' ms')} / "
                f"{_f(run['latency_p99_ms'], ' ms')} | {_f(run['lag_p99_s'], ' ms', 1000)} |")
    lines += ["", "API at that size (median / worst of 5, ms):", "",
              "| fabric | GetTopology | ListLinks | ListFlows |", "|---|---|---|---|"]
    for r in rows:
        api = r.get("api")
        if api:
            lines.append(f"| {r['fabric']} | " + " | ".join(
                f"{api[k]['median_ms']} / {api[k]['max_ms']}"
                for k in ("GetTopology", "ListLinks", "ListFlows")) + " |")
    # the page's reading of the figures (by hand, below the marker) is kept
    kept = path.read_text().split(ANALYSIS, 1)[1] if path.exists() and ANALYSIS in \
        path.read_text() else "\n"
    path.write_text("\n".join(lines) + "\n\n" + ANALYSIS + kept)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default=DEFAULT_SIZES,
                    help="SPINESxLEAVES (two tiers) or PODSpSPINESxLEAVES/SUPERS (three "
                         f"tiers), comma-separated (default {DEFAULT_SIZES})")
    ap.add_argument("--window", type=float, default=20.0,
                    help="steady-state window, seconds (default 20)")
    ap.add_argument("--limit", type=float, default=300.0,
                    help="seconds each size has to be discovered and synced (default 300)")
    ap.add_argument("--hosts-per-leaf", type=int, default=2,
                    help="fake hosts behind each leaf (default 2; 0: no setup runs)")
    ap.add_argument("--setup-rates", default="1000,5000",
                    help="offered new flows per second of the setup runs, comma-separated "
                         "(default 1000,5000; empty: none)")
    ap.add_argument("--setup-sizes", metavar="SIZES",
                    help="the sizes the setup runs are made at, comma-separated (default: "
                         "the first of --sizes; at 16x304 resolving the 608 pairs one "
                         "after the other takes about five minutes)")
    ap.add_argument("--logs", metavar="DIR", help="keep each size's fabricd log and "
                    "config in DIR (default: a temporary directory, removed)")
    ap.add_argument("--out", default=str(ROOT / "bench/results/scale.json"))
    ap.add_argument("--doc", default=str(ROOT / "docs/bench-scale.md"))
    args = ap.parse_args(argv)
    sizes = [s.strip() for s in args.sizes.split(",")]
    try:
        for size in sizes:
            parse_size(size)
    except ValueError as exc:
        ap.error(f"--sizes wants SPINESxLEAVES or PODSpSPINESxLEAVES/SUPERS[,...] "
                 f"(e.g. 4x96,8p4x24/2), got {exc}")
    try:
        rates = tuple(float(x) for x in args.setup_rates.split(",") if x.strip())
        if any(r <= 0 for r in rates) or args.hosts_per_leaf < 0:
            raise ValueError
    except ValueError:
        ap.error(f"--setup-rates wants positive rates, comma-separated, got "
                 f"{args.setup_rates!r}; --hosts-per-leaf at least 0")
    setup_sizes = [s.strip() for s in (args.setup_sizes or sizes[0]).split(",")]
    if not set(setup_sizes) <= set(sizes):
        ap.error(f"--setup-sizes must be among --sizes ({', '.join(sizes)}), got "
                 f"{args.setup_sizes!r}")
    # (the fleet is one Python thread: its collector tuned as fabricd's, controller/daemon.py)
    gc.set_threshold(*GC_THRESHOLDS)
    rows = []
    with tempfile.TemporaryDirectory(prefix="aifabric-bench-scale-") as tmp:
        workdir = Path(args.logs or tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        for size in sizes:
            rows.append(measure(size, args.window, args.limit, workdir,
                                args.hosts_per_leaf, rates if size in setup_sizes else ()))
    result = {"machine": f"{platform.node()}, {os.cpu_count()} cores",
              "limit_s": args.limit, "window_s": args.window, "sizes": rows}
    save(result, args.out, args.doc, write_docs)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
