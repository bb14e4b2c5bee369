"""Benchmark: hash ECMP vs traffic engineering vs an oracle placement, in one invocation,
on a 2-spine/4-leaf fabric with 2 hosts per leaf and 5 Mbit/s links (shaped; see
ENVIRONMENT.md for why the emulation stays small).

Modes:
  ecmp     fabricd --no-te: select groups only (per-flow hash)
  te       fabricd with traffic engineering (defaults)
  oracle   fabricd with TE, but every flow pinned in advance through PinFlow to the
           placement computed offline here (exhaustive search for the most max-min fair
           throughput); rebalancing off, so nothing moves: the best this emulation carries

Scenarios, each in every mode:
  permutation, stride, random   8 long TCP flows (iperf3, first seconds omitted):
                                aggregate throughput / non-blocking and / oracle
  allreduce                     ring all-reduce among the 8 hosts (persistent TCP to the
                                next rank, 2 ranks per leaf): bus bandwidth / link rate
  reroute (te)                  a TCP flow, then background UDP pinned to its spine:
                                time from the background's start to the reroute event
  failover (ecmp, te)           a 100 packet/s UDP stream (which TE places) and a 10 ms
                                ping; the spine link to the destination leaf is cut:
                                outage = lost packets x 10 ms

Results: bench/results/te.json and docs/bench-te.md.
"""

from __future__ import annotations

import argparse
import itertools
import json
import platform
import tempfile
import threading
import time
from pathlib import Path

from bench.common import discovered_fabric, mode_args
from controller.cli.client import flow_match
from mininet_topos import patterns as P
from mininet_topos import traffic as T
from mininet_topos.controller_proc import FabricdProcess
from mininet_topos.network import cleanup, wait_until
from mininet_topos.spine_leaf import FabricSpec

ROOT = Path(__file__).resolve().parent.parent
BW = 5.0  # Mbit/s
SPEC = FabricSpec(spines=2, leaves=4, hosts_per_leaf=2, bw=BW)
N_HOSTS = 8
PER_LEAF = 2
SPINES = (1001, 1002)
MEASURE_S = 12
OMIT_S = 5
CHUNK = 256 * 1024
MATRICES = {
    "permutation": P.permutation(N_HOSTS, PER_LEAF, seed=3),
    "stride": P.stride(N_HOSTS, PER_LEAF),
    "random": P.random_pairs(N_HOSTS, PER_LEAF, seed=5),
}
RING = [0, 2, 4, 6, 1, 3, 5, 7]  # host indices: every step crosses to the next leaf


def leaf(i: int) -> int:
    return i // PER_LEAF


def max_min_total(pairs: list[tuple[int, int]], spines: tuple[int, ...]) -> float:
    """Max-min fair aggregate (Mbit/s) of TCP flows on given spines (index per flow)."""
    res: list[list[tuple]] = []
    for (a, b), s in zip(pairs, spines, strict=True):
        res.append([("tx", a), ("rx", b), ("up", leaf(a), s), ("down", s, leaf(b))])
    cap: dict = {r: BW for rs in res for r in rs}
    rate = [0.0] * len(pairs)
    active = set(range(len(pairs)))
    while active:
        users: dict = {}
        for f in active:
            for r in res[f]:
                users.setdefault(r, []).append(f)
        share = min(cap[r] / len(fs) for r, fs in users.items())
        for f in active:
            rate[f] += share
        for r, fs in users.items():
            cap[r] -= share * len(fs)
        active -= {f for r, fs in users.items() if cap[r] <= 1e-9 for f in fs}
    return sum(rate)


def oracle(pairs: list[tuple[int, int]]) -> tuple[tuple[int, ...], float]:
    """The spine choice per flow with the best max-min fair aggregate (all 2^8 tried)."""
    best = max(itertools.product(range(len(SPINES)), repeat=len(pairs)),
               key=lambda c: (round(max_min_total(pairs, c), 6), -sum(c)))
    return best, max_min_total(pairs, best)


class Events:
    def __init__(self, client) -> None:
        self.items: list = []
        self.stream = client.watch_events(["reroute", "congestion"])
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        import grpc

        try:
            for e in self.stream:
                self.items.append((e.time, e.kind, dict(e.fields)))
        except grpc.RpcError:
            pass


QUIET_S = 4.0  # between scenarios: the last one's flows end and the counters settle


def throughput(net, ctl, mode: str, pairs, port: int) -> dict:
    time.sleep(QUIET_S)
    hosts = [net.get(f"h{i + 1}") for i in range(N_HOSTS)]
    ports = [port + k for k in range(len(pairs))]
    placement, best = oracle(pairs)
    if mode == "oracle":
        with ctl.client() as c:
            for (a, b), s, p in zip(pairs, placement, ports, strict=True):
                c.pin_flow(flow_match(hosts[a].IP(), hosts[b].IP(), "tcp", 0, p), SPINES[s])
    for (_, b), p in zip(pairs, ports, strict=True):
        T.start_servers(hosts[b], [p])
    with ctl.client() as c:
        ev = Events(c)
        t0 = time.time()
        procs = [T.tcp_flow(hosts[a], hosts[b].IP(), p, MEASURE_S, omit=OMIT_S)
                 for (a, b), p in zip(pairs, ports, strict=True)]
        results = [T.result(pr, timeout=MEASURE_S + OMIT_S + 40) for pr in procs]
        ev.stream.cancel()
    moves = [t - t0 for t, kind, _ in ev.items if kind == "reroute"]
    total = sum(r.received_mbps for r in results)
    if mode == "oracle":
        with ctl.client() as c:
            for (a, b), p in zip(pairs, ports, strict=True):
                c.unpin_flow(flow_match(hosts[a].IP(), hosts[b].IP(), "tcp", 0, p))
    nonblocking = P.receiver_limited_rate(pairs, BW)
    return {"aggregate_mbps": round(total, 3), "non_blocking_mbps": round(nonblocking, 3),
            "oracle_model_mbps": round(best, 3),
            "fraction_of_non_blocking": round(total / nonblocking, 3),
            "reroutes_while_omitted": sum(1 for t in moves if t < OMIT_S),
            "reroutes_while_measured": sum(1 for t in moves if t >= OMIT_S),
            "flows_mbps": [round(r.received_mbps, 3) for r in results]}


def allreduce(net, ctl, mode: str, port: int) -> dict:
    time.sleep(QUIET_S)
    hosts = [net.get(f"h{i + 1}") for i in RING]
    pairs = [(RING[k], RING[(k + 1) % len(RING)]) for k in range(len(RING))]
    if mode == "oracle":
        placement, _ = oracle(pairs)
        with ctl.client() as c:
            for (a, b), s in zip(pairs, placement, strict=True):
                c.pin_flow(flow_match(f"10.0.0.{a + 1}", f"10.0.0.{b + 1}", "tcp", 0, port),
                           SPINES[s])
    seconds = T.ring_allreduce(hosts, CHUNK, port=port, timeout=120)
    n = len(hosts)
    busbw = 2 * (n - 1) * CHUNK * 8 / seconds / 1e6
    return {"ranks": n, "chunk_bytes": CHUNK, "seconds": round(seconds, 3),
            "bus_bandwidth_mbps": round(busbw, 3),
            "bus_bandwidth_fraction_of_link": round(busbw / BW, 3)}


def reroute(net, ctl) -> dict:
    time.sleep(QUIET_S)
    h1, h2, h3, h4 = net.get("h1", "h2", "h3", "h4")
    T.start_servers(h3, [5301])
    T.start_servers(h4, [5302])
    with ctl.client() as c:
        ev = Events(c)
        tcp = T.tcp_flow(h1, h3.IP(), 5301, 20)

        def mine():
            return [f for f in c.flows(large_only=True).flows if f.flow.dst_port == 5301]

        wait_until(lambda: bool(mine()), timeout=10)
        first = mine()[0]
        spine = first.spine
        key = f"tcp {h1.IP()}:{first.flow.src_port} -> "
        c.pin_flow(flow_match(h2.IP(), h4.IP(), "udp", 0, 5302), spine)
        t0 = time.time()
        udp = T.udp_flow(h2, h4.IP(), 5302, 0.9 * BW, 10)
        moved = wait_until(lambda: any(f.spine != spine for f in mine()), timeout=12,
                           interval=0.1)
        mine_moved = [(t, f) for t, kind, f in ev.items if kind == "reroute"
                      and f.get("flow", "").startswith(key) and t >= t0]
        times = [t for t, _ in mine_moved]
        T.result(udp, timeout=30)
        T.result(tcp, timeout=40)
        ev.stream.cancel()
    return {"rerouted": bool(moved and times),
            "seconds_from_onset": round(times[0] - t0, 3) if times else None,
            "reason": mine_moved[0][1]["reason"] if mine_moved else None}


def failover(net, ctl, mode: str) -> dict:
    h1, h3 = net.get("h1", "h3")
    T.start_servers(h3, [5401])
    udp = T.udp_flow(h1, h3.IP(), 5401, 0.08, 8, length=100)  # 100 packets/s
    pinger = h1.popen(["ping", "-n", "-q", "-i", "0.01", "-w", "7", h3.IP()], text=True,
                      stdout=-1, stderr=-2)
    time.sleep(2.0)
    spine = 1001
    if mode != "ecmp":
        with ctl.client() as c:
            got = [f for f in c.flows().flows if f.flow.dst_port == 5401
                   and f.flow.src_ip == h1.IP()]
            spine = got[0].spine if got else spine
    else:  # the spine the select group hashed it to: its downlink counter moves
        before = {s: _tx(f"s{s - 1000}-eth2") for s in SPINES}
        time.sleep(0.5)
        spine = max(SPINES, key=lambda s: _tx(f"s{s - 1000}-eth2") - before[s])
    net.configLinkStatus(f"s{spine - 1000}", "l2", "down")
    out, _ = pinger.communicate(timeout=20)
    res = T.result(udp, timeout=30)
    net.configLinkStatus(f"s{spine - 1000}", "l2", "up")
    sent = int(out.split(" packets transmitted")[0].split()[-1])
    received = int(out.split(" received")[0].split()[-1])
    return {"udp_lost_packets": res.lost_packets, "udp_outage_ms": res.lost_packets * 10,
            "ping_lost": sent - received, "ping_outage_ms": (sent - received) * 10}


def _tx(dev: str) -> int:
    return int(Path(f"/sys/class/net/{dev}/statistics/tx_packets").read_text())


def run_mode(mode: str, workdir: Path) -> dict:
    cleanup()
    extra = mode_args(mode, workdir, ["--link-speed", str(BW), "--no-qos"])
    out: dict = {"mode": mode}
    with FabricdProcess(workdir / f"fabricd-{mode}.log", extra_args=extra) as ctl:
        with discovered_fabric(SPEC, ctl) as net:
            for k, (name, pairs) in enumerate(MATRICES.items()):
                out[name] = throughput(net, ctl, mode, pairs, 6000 + 100 * k)
                print(mode, name, out[name]["aggregate_mbps"], flush=True)
            out["allreduce"] = allreduce(net, ctl, mode, 7200)
            if mode == "te":
                out["reroute"] = reroute(net, ctl)
            if mode != "oracle":
                out["failover"] = failover(net, ctl, mode)
    return out


def write_docs(res: dict, path: Path) -> None:
    e, t, o = res["ecmp"], res["te"], res["oracle"]
    lines = [
        "# Traffic-engineering benchmark: ECMP vs TE vs oracle",
        "",
        f"Produced by `python -m bench.te` on {platform.node()} ({time.strftime('%Y-%m-%d')}): "
        f"2 spines, 4 leaves, 2 hosts per leaf, {BW:g} Mbit/s links, userspace Open vSwitch, "
        f"QoS off. 8 long TCP flows per matrix, {MEASURE_S} s measured after {OMIT_S} s "
        f"omitted, {QUIET_S:g} s of quiet between scenarios. All three columns come from the "
        "same invocation; the oracle pins every flow in advance to the placement with the "
        "best max-min fair throughput.",
        "",
        "| matrix | non-blocking (Mbit/s) | ECMP | TE | oracle | TE / oracle | "
        "TE / non-blocking | ECMP / non-blocking |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name in MATRICES:
        nb = t[name]["non_blocking_mbps"]
        lines.append(
            f"| {name} | {nb:g} | {e[name]['aggregate_mbps']:.2f} | "
            f"{t[name]['aggregate_mbps']:.2f} | {o[name]['aggregate_mbps']:.2f} | "
            f"{t[name]['aggregate_mbps'] / o[name]['aggregate_mbps']:.0%} | "
            f"{t[name]['fraction_of_non_blocking']:.0%} | "
            f"{e[name]['fraction_of_non_blocking']:.0%} |")
    lines += [
        "",
        "TE moves (reroute events) per matrix, during the omitted start / the measured "
        "window: " + ", ".join(
            f"{n} {t[n]['reroutes_while_omitted']}/{t[n]['reroutes_while_measured']}"
            for n in MATRICES) + ".",
        "",
        "| measure | ECMP | TE | oracle |",
        "| --- | --- | --- | --- |",
        f"| ring all-reduce, 8 ranks, bus bandwidth / link rate | "
        f"{e['allreduce']['bus_bandwidth_fraction_of_link']:.0%} | "
        f"{t['allreduce']['bus_bandwidth_fraction_of_link']:.0%} | "
        f"{o['allreduce']['bus_bandwidth_fraction_of_link']:.0%} |",
        f"| outage after a spine link cut, 100 pkt/s UDP (ms) | "
        f"{e['failover']['udp_outage_ms']} | {t['failover']['udp_outage_ms']} | - |",
        f"| outage after a spine link cut, 10 ms ping (ms) | "
        f"{e['failover']['ping_outage_ms']} | {t['failover']['ping_outage_ms']} | - |",
        f"| congestion onset to reroute (s) | - | {t['reroute']['seconds_from_onset']} | - |",
        "",
        f"Reroute reason: {t['reroute']['reason']}.",
        "",
        "Targets (issue 4): TE >= 95% of the oracle and >= 90% of non-blocking on "
        "permutation traffic; reroute within two control intervals (2 s); failover outage "
        "<= 100 ms.",
    ]
    path.write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default=str(ROOT / "bench" / "results" / "te.json"))
    p.add_argument("--doc", default=str(ROOT / "docs" / "bench-te.md"))
    args = p.parse_args(argv)
    res = {}
    with tempfile.TemporaryDirectory(prefix="aifabric-bench-") as tmp:
        for mode in ("ecmp", "te", "oracle"):
            res[mode] = run_mode(mode, Path(tmp))
            print(json.dumps(res[mode]), flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"benchmark": "te", **res}, indent=2) + "\n")
    write_docs(res, Path(args.doc))
    print(f"wrote {out} and {args.doc}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
