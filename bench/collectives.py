"""Benchmark: collective traffic under hash ECMP, TE without registration, TE with the
job registered, and an oracle, in one invocation, on a 2-spine/4-leaf fabric with 2
hosts per leaf and 5 Mbit/s links; 8 ranks, rank r on leaf r mod 4.

Modes (each a fresh fabricd and fabric; QoS on, the hosts mark the collectives' packets
DSCP 34, the collective class, as a cluster would):
  ecmp     fabricd --no-te: select groups only (per-flow hash)
  te       traffic engineering, nothing registered (first fit of collective flows)
  job      TE with each collective registered as a job (RegisterJob) before it runs
  oracle   TE with rebalancing off, every host pair pinned (PinFlow, any ports) to the
           placement an exhaustive search finds for each step of the schedule: the best
           this emulation carries for that schedule

Scenarios, each in every mode:
  mpi-allreduce   OpenMPI's ring MPI_Allreduce (mpi4py), 1 MiB, bus bandwidth
  mpi-alltoall    OpenMPI's pairwise MPI_Alltoall, 256 KiB per rank
  emulated-ring   mininet_topos/allreduce.py: 2(n-1) steps of 256 KiB chunks
  two-jobs        two 4-rank MPI all-reduces at once (odd and even hosts), mean
  job+bulk        the MPI all-reduce while two bulk TCP flows cross the fabric

The OpenMPI scenarios run ``--repeats`` separate mpiruns (new connections, so new
hashes under ECMP) and report the mean. Results: bench/results/collectives.json and
docs/bench-collectives.md (shares of the link rate and of the oracle).
"""

from __future__ import annotations

import argparse
import itertools
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

from aifabric.v1 import fabric_pb2
from bench.common import discovered_fabric, mode_args
from controller.cli.client import flow_match
from mininet_topos import traffic as T
from mininet_topos.controller_proc import FabricdProcess
from mininet_topos.mpi import run_collective
from mininet_topos.network import cleanup
from mininet_topos.spine_leaf import FabricSpec

ROOT = Path(__file__).resolve().parent.parent
BW = 5.0  # Mbit/s
SPEC = FabricSpec(spines=2, leaves=4, hosts_per_leaf=2, bw=BW)
SPINES = (1001, 1002)
RING = ["h1", "h3", "h5", "h7", "h2", "h4", "h6", "h8"]  # rank r on leaf r mod 4
ODD, EVEN = RING[:4], RING[4:]
MODES = ("ecmp", "te", "job", "oracle")
ALLREDUCE_BYTES = 1 << 20
ALLTOALL_BYTES = 256 << 10
CHUNK = 256 << 10
DSCP = 34
QUIET_S = 3.0


def leaf(host: str) -> int:
    return (int(host[1:]) - 1) // 2


def ring_steps(hosts: list[str]) -> list[list[tuple[str, str]]]:
    n = len(hosts)
    fwd = [(hosts[r], hosts[(r + 1) % n]) for r in range(n)]
    return [fwd, [(b, a) for a, b in fwd]]


def alltoall_steps(hosts: list[str]) -> list[list[tuple[str, str]]]:
    n = len(hosts)
    return [[(hosts[r], hosts[(r + k) % n]) for r in range(n)] for k in range(1, n)]


def oracle(steps: list[list[tuple[str, str]]]) -> dict[tuple[str, str], int]:
    """Per step, the spine of every inter-leaf pair that minimizes the most pairs on one
    link, then the sum of squares (all 2^k choices tried); a pair in several steps keeps
    its first choice."""
    chosen: dict[tuple[str, str], int] = {}
    for step in steps:
        free = [p for p in dict.fromkeys(step) if leaf(p[0]) != leaf(p[1]) and p not in chosen]

        def cost(choice, free=free, step=step) -> tuple[int, int]:
            count: dict = {}
            spines = {**chosen, **dict(zip(free, choice, strict=True))}
            for a, b in step:
                if (a, b) in spines:
                    s = spines[(a, b)]
                    for r in (("up", leaf(a), s), ("down", s, leaf(b))):
                        count[r] = count.get(r, 0) + 1
            return max(count.values(), default=0), sum(v * v for v in count.values())

        best = min(itertools.product(SPINES, repeat=len(free)), key=cost)
        chosen.update(zip(free, best, strict=True))
    return chosen


class Run:
    """One mode: its controller and fabric, and how it prepares a collective."""

    def __init__(self, mode: str, net, ctl) -> None:
        self.mode, self.net, self.ctl = mode, net, ctl
        self.retries = 0  # mpiruns launched again (OpenMPI lost a daemon at launch)

    def ip(self, h: str) -> str:
        return self.net.get(h).IP()

    def prepare(self, job_id: str, hosts: list[str], pattern: str) -> None:
        steps = ring_steps(hosts) if pattern == "ring" else alltoall_steps(hosts)
        with self.ctl.client() as c:
            if self.mode == "job":
                c.register_job(fabric_pb2.JobSpec(id=job_id, members=[self.ip(h) for h in hosts],
                                                  pattern=pattern))
            elif self.mode == "oracle":
                for (a, b), spine in oracle(steps).items():
                    c.pin_flow(flow_match(self.ip(a), self.ip(b), "tcp", 0, 0), spine)

    def finish(self, job_id: str, hosts: list[str], pattern: str) -> None:
        steps = ring_steps(hosts) if pattern == "ring" else alltoall_steps(hosts)
        with self.ctl.client() as c:
            if self.mode == "job":
                c.delete_job(job_id)
            elif self.mode == "oracle":
                for a, b in oracle(steps):
                    c.unpin_flow(flow_match(self.ip(a), self.ip(b), "tcp", 0, 0))


def mpi(run: Run, collective: str, nbytes: int, repeats: int, hosts=RING) -> dict:
    pattern = "ring" if collective == "allreduce" else "all_to_all"
    values = []
    for k in range(repeats):
        time.sleep(QUIET_S)
        run.prepare(f"{collective}-{k}", hosts, pattern)
        try:
            r = run_collective(run.net, hosts, collective, nbytes, iters=3, timeout=150)
            run.retries += r["attempts_made"] - 1
        finally:
            run.finish(f"{collective}-{k}", hosts, pattern)
        values.append(r["busbw_bps"] / (BW * 1e6))
    return {"busbw_fraction_of_link": round(statistics.mean(values), 3),
            "runs": [round(v, 3) for v in values]}


def emulated_ring(run: Run) -> dict:
    time.sleep(QUIET_S)
    run.prepare("emulated", RING, "ring")
    try:
        seconds = T.ring_allreduce([run.net.get(h) for h in RING], CHUNK, tos=DSCP << 2,
                                   port=7300, timeout=120)
    finally:
        run.finish("emulated", RING, "ring")
    busbw = 2 * (len(RING) - 1) * CHUNK * 8 / seconds / 1e6
    return {"busbw_fraction_of_link": round(busbw / BW, 3), "seconds": round(seconds, 3)}


def two_jobs(run: Run) -> dict:
    import threading

    time.sleep(QUIET_S)
    results: dict = {}
    for name, hosts in (("odd", ODD), ("even", EVEN)):
        run.prepare(name, hosts, "ring")

    def go(name: str, hosts: list[str]) -> None:
        results[name] = run_collective(run.net, hosts, "allreduce", ALLREDUCE_BYTES, iters=3,
                                       timeout=150)
        run.retries += results[name]["attempts_made"] - 1

    try:
        threads = [threading.Thread(target=go, args=a) for a in (("odd", ODD), ("even", EVEN))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        for name, hosts in (("odd", ODD), ("even", EVEN)):
            run.finish(name, hosts, "ring")
    if len(results) != 2:
        raise RuntimeError("a job of the pair failed (see above)")
    values = [results[n]["busbw_bps"] / (BW * 1e6) for n in ("odd", "even")]
    return {"busbw_fraction_of_link": round(statistics.mean(values), 3),
            "jobs": [round(v, 3) for v in values]}


def with_bulk(run: Run) -> dict:
    time.sleep(QUIET_S)
    pairs = [("h2", "h6"), ("h8", "h4")]  # across the fabric, on the ring's links
    for k, (_, b) in enumerate(pairs):
        T.start_servers(run.net.get(b), [5500 + k])
    procs = [T.tcp_flow(run.net.get(a), run.ip(b), 5500 + k, 40)
             for k, (a, b) in enumerate(pairs)]
    time.sleep(4.0)  # the bulk flows are placed and measured first
    try:
        got = mpi(run, "allreduce", ALLREDUCE_BYTES, 1)
    finally:
        bulk = [T.result(p, timeout=90).received_mbps for p in procs]
    return {**got, "bulk_mbps": [round(b, 3) for b in bulk]}


def mark_collectives(net) -> None:
    """Every host marks its TCP towards the fabric DSCP 34 (the collective class)."""
    for h in net.hosts:
        out = h.cmd(f"iptables -t mangle -A OUTPUT -p tcp -d 10.0.0.0/8 -j DSCP "
                    f"--set-dscp {DSCP} && echo ok")
        if "ok" not in out:
            raise RuntimeError(f"{h.name}: cannot mark DSCP with iptables: {out.strip()}")


def run_mode(mode: str, workdir: Path, repeats: int) -> dict:
    cleanup()
    extra = mode_args(mode, workdir, ["--link-speed", str(BW),
                                      "--jobs-file", str(workdir / f"jobs-{mode}.json")])
    out: dict = {"mode": mode}
    with FabricdProcess(workdir / f"fabricd-{mode}.log", extra_args=extra) as ctl:
        with discovered_fabric(SPEC, ctl) as net:
            mark_collectives(net)
            run = Run(mode, net, ctl)
            out["mpi-allreduce"] = mpi(run, "allreduce", ALLREDUCE_BYTES, repeats)
            print(mode, "mpi-allreduce", out["mpi-allreduce"], flush=True)
            out["mpi-alltoall"] = mpi(run, "alltoall", ALLTOALL_BYTES, repeats)
            print(mode, "mpi-alltoall", out["mpi-alltoall"], flush=True)
            out["emulated-ring"] = emulated_ring(run)
            print(mode, "emulated-ring", out["emulated-ring"], flush=True)
            out["two-jobs"] = two_jobs(run)
            print(mode, "two-jobs", out["two-jobs"], flush=True)
            out["job+bulk"] = with_bulk(run)
            print(mode, "job+bulk", out["job+bulk"], flush=True)
            out["mpirun_retries"] = run.retries
    return out


SCENARIOS = ("mpi-allreduce", "mpi-alltoall", "emulated-ring", "two-jobs", "job+bulk")


def write_docs(result: dict, path: Path) -> None:
    modes = {m["mode"]: m for m in result["modes"]}
    lines = [
        "# Collectives benchmark: ECMP vs TE vs registered jobs vs oracle", "",
        f"Produced by `python -m bench.collectives` on {platform.node()} "
        f"({time.strftime('%Y-%m-%d')}): 2 spines, 4 leaves, 2 hosts per leaf, "
        f"{BW:g} Mbit/s links, 8 ranks with rank r on leaf r mod 4, every mode in the same "
        f"invocation. OpenMPI scenarios: mean of {result['repeats']} separate runs. "
        "Bus bandwidth as a share of the link rate, and (in brackets) of the oracle.", "",
        "| scenario | " + " | ".join(m for m in MODES if m in modes) + " |",
        "| --- |" + " --- |" * len([m for m in MODES if m in modes]),
    ]
    for s in SCENARIOS:
        o = modes.get("oracle", {}).get(s, {}).get("busbw_fraction_of_link")
        cells = []
        for m in MODES:
            if m not in modes:
                continue
            v = modes[m][s]["busbw_fraction_of_link"]
            cells.append(f"{v:.0%}" + (f" ({v / o:.0%})" if o else ""))
        lines.append(f"| {s} | " + " | ".join(cells) + " |")
    lines += ["", "Targets (issue 11): every registered collective at least 95% of the oracle; "
              "the emulated ring at least 85% of the link rate; unregistered collectives "
              "(te) at least 90% of the oracle.", "",
              "The oracle pins every host pair (any TCP ports) to the placement an "
              "exhaustive search finds for each step of the collective's schedule, so it "
              "is what this emulation carries for that schedule; OpenMPI over TCP in "
              "Mininet does not reach the nominal link rate even on one non-blocking "
              "switch.", "", "Raw numbers: bench/results/collectives.json."]
    path.write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--modes", default=",".join(MODES), help="comma-separated subset")
    p.add_argument("--repeats", type=int, default=2, help="separate runs per MPI scenario")
    p.add_argument("--out", default=str(ROOT / "bench" / "results" / "collectives.json"))
    p.add_argument("--doc", default=str(ROOT / "docs" / "bench-collectives.md"))
    args = p.parse_args(argv)
    modes = [m for m in args.modes.split(",") if m]
    unknown = [m for m in modes if m not in MODES]
    if unknown:
        p.error(f"unknown mode {unknown[0]!r} (modes: {', '.join(MODES)})")
    result = {"benchmark": "collectives", "repeats": args.repeats, "modes": []}
    with tempfile.TemporaryDirectory(prefix="aifabric-bench-") as tmp:
        for mode in modes:
            result["modes"].append(run_mode(mode, Path(tmp), args.repeats))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    write_docs(result, Path(args.doc))
    print(f"wrote {out} and {args.doc}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
