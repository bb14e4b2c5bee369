"""Benchmark: QoS off vs on, in one invocation, on a 2-spine/4-leaf fabric with 5 Mbit/s
links (shaped; see ENVIRONMENT.md for why the emulation stays small).

Scenarios, each run with ``--no-qos`` and with the default policy:
  roce        a RoCE-like UDP 4791 flow (3 Mbit/s, within its 50% guarantee) and a bulk
              UDP flood towards the same host: priority goodput / demand, and loss
  latency     ping marked DSCP 26 across the fabric while the flood runs: RTT (and the
              idle RTT of the same run as baseline)
  allreduce   an emulated ring all-reduce (TCP, DSCP 26) among one host per leaf, with
              the other host of every leaf flooding the next leaf: completion time as a
              ratio to the same all-reduce on the idle fabric
Results: bench/results/qos.json and docs/bench-qos.md.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

from mininet_topos import traffic as T
from mininet_topos.controller_proc import FabricdProcess
from mininet_topos.discovery import wait_discovered
from mininet_topos.network import cleanup, fabric_network, reachability, wait_qos_provisioned
from mininet_topos.spine_leaf import FabricSpec

ROOT = Path(__file__).resolve().parent.parent
BW = 5.0  # Mbit/s: the userspace datapath must not run out of CPU (ENVIRONMENT.md)
SPEC = FabricSpec(spines=2, leaves=4, hosts_per_leaf=2, bw=BW)
ROCE_MBPS = 0.3 * BW
DSCP_ROCE_TOS = 26 << 2
CHUNK = 128 * 1024


def p99(values: list[float]) -> float:
    return sorted(values)[max(0, int(len(values) * 0.99) - 1)] if values else float("nan")


def run_mode(qos: bool, workdir: Path) -> dict:
    cleanup()
    # TE off in both runs: this compares queues, not paths (bench/te.py does paths)
    extra = ["--link-speed", str(BW), "--no-te"] + ([] if qos else ["--no-qos"])
    out: dict = {"qos": qos}
    with FabricdProcess(workdir / f"fabricd-qos-{qos}.log", extra_args=extra) as ctl:
        with fabric_network(SPEC, ctl.controller) as net:
            with ctl.client() as c:
                wait_discovered(c, SPEC, timeout=60)
            reachability(net)
            if qos:
                wait_qos_provisioned(net)
            h = {n: net.get(n) for n in ("h1", "h2", "h3", "h4", "h5", "h6", "h7", "h8")}

            # roce + latency: flood h5 -> h1, RoCE h3 -> h1, marked ping h3 -> h1
            idle = T.ping_rtts(h["h3"], h["h1"].IP(), 40, tos=DSCP_ROCE_TOS)
            T.start_servers(h["h1"], [4791, 5201])
            flood = T.udp_flow(h["h5"], h["h1"].IP(), 5201, 2 * BW, 10)
            time.sleep(1.5)
            roce = T.udp_flow(h["h3"], h["h1"].IP(), 4791, ROCE_MBPS, 4)
            r = T.result(roce)
            loaded = T.ping_rtts(h["h3"], h["h1"].IP(), 40, tos=DSCP_ROCE_TOS)
            T.result(flood)
            T.stop_servers(h["h1"])
            delivered = r.delivered_mbps
            out["roce"] = {
                "demand_mbps": ROCE_MBPS,
                "goodput_mbps": round(delivered, 3),
                "goodput_fraction": round(delivered / ROCE_MBPS, 3),
                "receiver_reported_mbps": round(r.received_mbps, 3),
                "loss_percent": round(r.lost_percent, 2),
            }
            out["latency"] = {
                "idle_avg_ms": round(statistics.mean(idle), 3),
                "loaded_avg_ms": round(statistics.mean(loaded), 3) if loaded else None,
                "loaded_p99_ms": round(p99(loaded), 3) if loaded else None,
                "loaded_lost": 40 - len(loaded),
            }

            # all-reduce among h1, h3, h5, h7; floods h2->h4->h6->h8->h2
            ring = [h["h1"], h["h3"], h["h5"], h["h7"]]
            idle_s = T.ring_allreduce(ring, CHUNK, tos=DSCP_ROCE_TOS, port=7100)
            others = [h["h2"], h["h4"], h["h6"], h["h8"]]
            for dst in others:
                T.start_servers(dst, [5202])
            floods = [T.udp_flow(src, dst.IP(), 5202, 2 * BW, 30)
                      for src, dst in zip(others, others[1:] + others[:1], strict=True)]
            time.sleep(1.5)
            loaded_s = T.ring_allreduce(ring, CHUNK, tos=DSCP_ROCE_TOS, port=7101)
            for f in floods:
                f.kill()
            T.stop_servers(*others)
            out["allreduce"] = {
                "ranks": len(ring),
                "chunk_bytes": CHUNK,
                "idle_s": round(idle_s, 3),
                "loaded_s": round(loaded_s, 3),
                "loaded_over_idle": round(loaded_s / idle_s, 3),
                "bus_bandwidth_fraction_idle": round(
                    2 * (len(ring) - 1) * CHUNK * 8 / idle_s / (BW * 1e6), 3),
            }
    return out


def write_docs(off: dict, on: dict, path: Path) -> None:
    def row(name, key, fmt="{}"):
        return f"| {name} | {fmt.format(off[key[0]][key[1]])} | {fmt.format(on[key[0]][key[1]])} |"

    lines = [
        "# QoS benchmark: off vs on",
        "",
        f"Produced by `python -m bench.qos` on {platform.node()} ({time.strftime('%Y-%m-%d')}): "
        f"2 spines, 4 leaves, 2 hosts per leaf, {BW:g} Mbit/s links, userspace Open vSwitch, "
        "default policy (RoCE = UDP 4791 or DSCP 26, 50% of every port), traffic "
        "engineering off in both runs (plain ECMP). Both columns come from the same "
        "invocation.",
        "",
        "| measure | QoS off | QoS on |",
        "| --- | --- | --- |",
        row(f"RoCE goodput / demand ({ROCE_MBPS:g} Mbit/s vs a UDP flood to the same host)",
            ("roce", "goodput_fraction")),
        row("RoCE loss (%)", ("roce", "loss_percent")),
        row("RTT idle, DSCP 26 ping (ms)", ("latency", "idle_avg_ms")),
        row("RTT under the flood, avg (ms)", ("latency", "loaded_avg_ms")),
        row("RTT under the flood, p99 (ms)", ("latency", "loaded_p99_ms")),
        row("pings lost of 40 under the flood", ("latency", "loaded_lost")),
        row("ring all-reduce idle (s)", ("allreduce", "idle_s")),
        row("ring all-reduce with bulk floods (s)", ("allreduce", "loaded_s")),
        row("all-reduce loaded / idle (target <= 1.2 with QoS)",
            ("allreduce", "loaded_over_idle")),
        "",
        "Targets (issue 3): priority goodput >= 95% of demand with QoS on; all-reduce under "
        "load within 1.2x of idle.",
    ]
    path.write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default=str(ROOT / "bench" / "results" / "qos.json"))
    p.add_argument("--doc", default=str(ROOT / "docs" / "bench-qos.md"))
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="aifabric-bench-") as tmp:
        off = run_mode(False, Path(tmp))
        print(json.dumps(off), flush=True)
        on = run_mode(True, Path(tmp))
        print(json.dumps(on), flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"benchmark": "qos", "off": off, "on": on}, indent=2) + "\n")
    write_docs(off, on, Path(args.doc))
    print(f"wrote {out} and {args.doc}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
