"""Benchmark: management API read latency and throughput, plain TCP vs TLS, and the
controller's event-loop lag under API load vs idle, on a 2-spine/4-leaf Mininet fabric.

For 1, 10 and 50 concurrent clients (threads in this process, one channel each), each
client calls GetTopology, ListLinks and ListFlows in turn for a fixed time; reported:
calls per second, p50 and p99 latency. The event-loop lag is the time the fabric app's
periodic tick waits in its queue (the aifabric_event_loop_lag_seconds histogram): its
mean and the share of ticks over 10 ms, idle vs during the 50-client run.
Results: bench/results/api.json and docs/bench-api.md.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import threading
import time
from pathlib import Path

from bench.common import LOOP_LAG, lag_sum_count, metric_samples
from controller.cli.client import FabricClient, default_token
from mininet_topos.certs import make_test_certs
from mininet_topos.controller_proc import FabricdProcess
from mininet_topos.discovery import wait_discovered
from mininet_topos.network import cleanup, fabric_network, reachability
from mininet_topos.spine_leaf import FabricSpec

ROOT = Path(__file__).resolve().parent.parent
SPEC = FabricSpec(spines=2, leaves=4, hosts_per_leaf=2, bw=10)
SECONDS = 8.0
CLIENTS = (1, 10, 50)


def lag(metrics_addr: str) -> tuple[float, float, float]:
    """(sum, count, count over 10 ms) of the event-loop lag histogram."""
    samples = metric_samples(metrics_addr)
    total, count = lag_sum_count(samples)
    fast = next(s.value for s in samples[LOOP_LAG]
                if s.name.endswith("_bucket") and s.labels["le"] == "0.01")
    return total, count, count - fast


def lag_between(a, b) -> dict:
    n = b[1] - a[1]
    return {"ticks": int(n), "mean_ms": round((b[0] - a[0]) / n * 1e3, 3) if n else None,
            "share_over_10ms": round((b[2] - a[2]) / n, 4) if n else None}


def load(ctl: FabricdProcess, clients: int, tls: dict) -> dict:
    latencies: list[list[float]] = [[] for _ in range(clients)]
    errors: list[str] = []
    stop = threading.Event()
    token = default_token()

    def run(i: int) -> None:
        with FabricClient(ctl.grpc_addr, timeout=10, token=token, **tls) as c:
            ops = (c.topology, c.links, c.flows)
            k = 0
            while not stop.is_set():
                t0 = time.perf_counter()
                try:
                    ops[k % 3]()
                except Exception as exc:
                    errors.append(repr(exc))
                    return
                latencies[i].append(time.perf_counter() - t0)
                k += 1

    threads = [threading.Thread(target=run, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    time.sleep(SECONDS)
    stop.set()
    for t in threads:
        t.join(20)
    flat = sorted(x for lst in latencies for x in lst)
    return {"clients": clients, "calls": len(flat), "errors": len(errors),
            "calls_per_second": round(len(flat) / SECONDS, 1),
            "p50_ms": round(statistics.median(flat) * 1e3, 3) if flat else None,
            "p99_ms": round(flat[int(len(flat) * 0.99) - 1] * 1e3, 3) if flat else None}


def run_mode(tls: bool, workdir: Path) -> dict:
    cleanup()
    extra = ["--no-qos", "--link-speed", "10"]
    client_tls: dict = {}
    if tls:
        certs = make_test_certs(workdir)
        extra += ["--tls-cert", str(certs["server.pem"]), "--tls-key", str(certs["server.key"])]
        client_tls = {"ca": str(certs["ca.pem"])}
    ctl = FabricdProcess(workdir / f"fabricd-tls-{tls}.log", extra_args=extra)
    ctl.tls = client_tls
    out: dict = {"tls": tls}
    with ctl:
        with fabric_network(SPEC, ctl.controller) as net:
            with ctl.client() as c:
                wait_discovered(c, SPEC, timeout=60)
            reachability(net)
            a = lag(ctl.metrics_addr)
            time.sleep(SECONDS)
            b = lag(ctl.metrics_addr)
            out["loop_idle"] = lag_between(a, b)
            out["load"] = []
            for n in CLIENTS:
                a = lag(ctl.metrics_addr)
                out["load"].append(load(ctl, n, client_tls))
                b = lag(ctl.metrics_addr)
                out["load"][-1]["loop"] = lag_between(a, b)
                print(json.dumps(out["load"][-1]), flush=True)
    return out


def write_docs(plain: dict, tls: dict, path: Path) -> None:
    lines = [
        "# Management API benchmark",
        "",
        f"Produced by `python -m bench.api` on {platform.node()} ({time.strftime('%Y-%m-%d')}):"
        f" fabricd with a 2-spine, 4-leaf Mininet fabric (8 hosts); clients are threads in "
        f"one Python process on the same 2-core machine, each calling GetTopology, ListLinks "
        f"and ListFlows in turn for {SECONDS:g} s. Both transports in the same invocation.",
        "",
        "| clients | transport | calls/s | p50 (ms) | p99 (ms) | errors | event-loop lag, mean "
        "(ms) | ticks over 10 ms |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for mode in (plain, tls):
        name = "TLS" if mode["tls"] else "TCP"
        idle = mode["loop_idle"]
        lines.append(f"| 0 (idle) | {name} | - | - | - | - | {idle['mean_ms']} | "
                     f"{idle['share_over_10ms']:.1%} |")
        for r in mode["load"]:
            lines.append(f"| {r['clients']} | {name} | {r['calls_per_second']} | {r['p50_ms']} | "
                         f"{r['p99_ms']} | {r['errors']} | {r['loop']['mean_ms']} | "
                         f"{r['loop']['share_over_10ms']:.1%} |")
    lines += ["", "Reads are served from snapshots the fabric app publishes; the API threads "
              "never wait on the app, so the event-loop lag measures the CPU they take from it."]
    path.write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default=str(ROOT / "bench" / "results" / "api.json"))
    p.add_argument("--doc", default=str(ROOT / "docs" / "bench-api.md"))
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="aifabric-bench-") as tmp:
        plain = run_mode(False, Path(tmp))
        tls = run_mode(True, Path(tmp))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"benchmark": "api", "plain": plain, "tls": tls}, indent=2) + "\n")
    write_docs(plain, tls, Path(args.doc))
    print(f"wrote {out} and {args.doc}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
