"""Chaos run: a random sequence of faults on one fabric, with traffic, in one invocation.

A 2-spine/4-leaf fabric (10 Mbit/s links) carries 10 ms pings between four host pairs
that span every leaf, and two long TCP flows (which share queues with the pings: the
first window has no fault and gives the loss they cause by themselves). Faults are then
drawn at random (seeded) from:

  link_flap        a leaf uplink down for 2 s, then up
  switch_session   a leaf's OpenFlow session lost for 3 s (its tables stay)
  spine_loss       every link of a spine down for 3 s, then up
  controller_kill  fabricd killed with SIGKILL, restarted 2 s later
  vswitchd_restart ovs-vswitchd killed and started again (tables, groups, meters gone)
  qos_change       a QoS policy change through the API, and back
  drain            a spine drained, then undrained

For each fault: the pings lost during it (over all pairs), the time from the end of the
fault (the link back up, the controller started again...) until every pair answers and
the fabric is whole (16 link directions), and afterwards how far the switches are from
what the controller wants them to hold (its desired state through the API, compared
with what OVS dumps: stale and missing flow entries, groups and meters).
At the end the controller is restarted cleanly and must change nothing: the end state
equals what a fresh controller installs (no stale and no missing entries).

Results: bench/results/chaos.json and docs/reliability.md (between the markers).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from controller.cli.client import policy_dict
from controller.core import constants as C
from mininet_topos import tables
from mininet_topos.attack import ping_result, start_ping
from mininet_topos.controller_proc import FabricdProcess
from mininet_topos.discovery import wait_discovered
from mininet_topos.network import (
    REPO,
    cleanup,
    fabric_network,
    reachability,
    wait_qos_provisioned,
    wait_until,
)
from mininet_topos.spine_leaf import FabricSpec

ROOT = Path(__file__).resolve().parent.parent
SPEC = FabricSpec(spines=2, leaves=4, hosts_per_leaf=2, bw=10)
PAIRS = (("h1", "h3"), ("h4", "h6"), ("h5", "h7"), ("h8", "h2"))  # every leaf, both ways
FAULTS = ("link_flap", "switch_session", "spine_loss", "controller_kill",
          "vswitchd_restart", "qos_change", "drain")
PIN_COOKIE = f"{C.make_cookie(C.KIND_PIN):#x}"[:6]  # "0xaf03"
BEGIN, END = "<!-- bench:chaos:begin -->", "<!-- bench:chaos:end -->"


def entries(net) -> dict[str, set[str]]:
    """Every switch's flow entries, groups and meters (TE pins aside: they come and go
    with the traffic), as OVS dumps them."""
    out = {}
    for sw in net.switches:
        held = tables.held(sw.name)
        out[sw.name] = {f for f in held["flows"] if f"cookie={PIN_COOKIE}" not in f} | \
            held["groups"] | held["meters"]
    return out


def changed(before: dict[str, set[str]], after: dict[str, set[str]]) -> tuple[int, int]:
    """(entries only in after, entries only in before), over all switches."""
    return (sum(len(after.get(sw, set()) - old) for sw, old in before.items()),
            sum(len(old - after.get(sw, set())) for sw, old in before.items()))


def drift_after(ctl: FabricdProcess, net, timeout: float = 10.0) -> tuple[int, int, float]:
    """(stale, missing) entries against the controller's desired state once the switches
    have caught up, or at ``timeout``; and how long catching up took."""
    t0 = time.monotonic()
    while True:
        with ctl.client() as c:
            found = tables.drift(c, tables.dpids(net))
        took = time.monotonic() - t0
        if not found or took >= timeout:
            return (sum(len(v) for d in found for v in d.stale.values()),
                    sum(len(v) for d in found for v in d.missing.values())
                    + sum(1 for d in found if not d.complete or d.pending), took)
        time.sleep(0.5)


class Chaos:
    def __init__(self, ctl: FabricdProcess, net, rng: random.Random, workdir: Path) -> None:
        self.ctl, self.net, self.rng, self.workdir = ctl, net, rng, workdir

    def whole(self) -> bool:
        try:
            with self.ctl.client(timeout=2) as c:
                topo = c.topology()
        except Exception:
            return False
        return len(topo.links) == 16 and sum(s.connected for s in topo.switches) == 6

    def pairs_ok(self) -> bool:
        return all(self.net.get(a).cmd(f"ping -n -c 1 -W 0.5 {self.net.get(b).IP()}")
                   .count(" 0% packet loss") for a, b in PAIRS)

    # --- the faults -----------------------------------------------------------------------
    def none(self) -> str:
        time.sleep(2.0)
        return "nothing (baseline)"

    def link_flap(self) -> str:
        leaf, spine = f"l{self.rng.randint(1, 4)}", f"s{self.rng.randint(1, 2)}"
        self.net.configLinkStatus(leaf, spine, "down")
        time.sleep(2.0)
        self.net.configLinkStatus(leaf, spine, "up")
        return f"{leaf}-{spine}"

    def switch_session(self) -> str:
        leaf = f"l{self.rng.randint(1, 4)}"
        target = subprocess.run(["ovs-vsctl", "get-controller", leaf], capture_output=True,
                                text=True, check=True).stdout.split()
        subprocess.run(["ovs-vsctl", "set-controller", leaf, "tcp:127.0.0.1:1"], check=True)
        time.sleep(3.0)
        subprocess.run(["ovs-vsctl", "set-controller", leaf, *target], check=True)
        return leaf

    def spine_loss(self) -> str:
        spine = f"s{self.rng.randint(1, 2)}"
        for j in range(1, 5):
            self.net.configLinkStatus(f"l{j}", spine, "down")
        time.sleep(3.0)
        for j in range(1, 5):
            self.net.configLinkStatus(f"l{j}", spine, "up")
        return spine

    def controller_kill(self) -> str:
        self.ctl.proc.kill()
        self.ctl.proc.wait(5)
        time.sleep(2.0)
        self.ctl.start()
        return "SIGKILL"

    def vswitchd_restart(self) -> str:
        pid = int(subprocess.run(["pgrep", "-x", "ovs-vswitchd"], capture_output=True,
                                 text=True, check=True).stdout.split()[0])
        os.kill(pid, signal.SIGKILL)
        time.sleep(1.0)  # (ovs-start.sh waits for the old one to be gone)
        subprocess.run(["bash", str(REPO / "scripts" / "ovs-start.sh")], check=True)
        return "SIGKILL"

    def qos_change(self) -> str:
        doc = ("classes:\n  - {name: roce, dscp: 26, queue: 3, share: 0.4, "
               "match: {udp_dst: [4791], dscp: [26]}}\n")
        with self.ctl.client(timeout=15) as c:
            old = c.qos_policy()
            c.set_qos_document(doc)
            time.sleep(2.0)
            c.set_qos_document(json.dumps({k: v for k, v in policy_dict(old).items()
                                           if k in ("classes", "trust_unclassified_dscp")}))
        return "roce 40% and back"

    def drain(self) -> str:
        spine = 1000 + self.rng.randint(1, 2)
        with self.ctl.client(timeout=15) as c:
            c.drain_switch(spine)
            time.sleep(2.0)
            c.undrain(spine)
        return f"spine {spine}"


def run(seconds: float, seed: int, workdir: Path) -> dict:
    cleanup()
    rng = random.Random(seed)
    results = []
    with FabricdProcess(workdir / "fabricd-chaos.log",
                        extra_args=["--link-speed", "10"]) as ctl:
        with fabric_network(SPEC, ctl.controller) as net:
            with ctl.client() as c:
                wait_discovered(c, SPEC, timeout=60)
            wait_qos_provisioned(net)
            reachability(net, count=1)
            chaos = Chaos(ctl, net, rng, workdir)
            for h in ("h3", "h6"):
                net.get(h).cmd("iperf3 -s -D -p 5201 >/dev/null 2>&1")
            tcp = [net.get("h1").popen(["iperf3", "-c", net.get("h3").IP(), "-t",
                                        str(int(seconds + 120)), "-p", "5201"],
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
                   net.get("h8").popen(["iperf3", "-c", net.get("h6").IP(), "-t",
                                        str(int(seconds + 120)), "-p", "5201"],
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
            time.sleep(3.0)
            deadline = time.monotonic() + seconds
            first = True
            try:
                while time.monotonic() < deadline:
                    # the first window has no fault: the loss the traffic itself causes
                    # (the pings share queues with the TCP flows) is the baseline
                    fault = "none" if first else rng.choice(FAULTS)
                    first = False
                    pingers = [start_ping(net.get(a), net.get(b).IP(), 30) for a, b in PAIRS]
                    time.sleep(1.0)
                    what = getattr(chaos, fault)()
                    t0 = time.monotonic()  # the fault is over (the link is back...)
                    healed = wait_until(lambda: chaos.whole() and chaos.pairs_ok(),
                                        timeout=30, interval=0.2)
                    recovery = time.monotonic() - t0
                    for p in pingers:
                        p.send_signal(signal.SIGINT)  # ping prints its summary and ends
                    pings = [ping_result(p) for p in pingers]
                    stale, missing, in_sync = drift_after(ctl, net)
                    row = {"fault": fault, "what": what, "healed": healed,
                           "recovery_s": round(recovery, 2),
                           "pings_sent": sum(p.sent for p in pings),
                           "pings_lost": sum(p.sent - p.received for p in pings),
                           "lost_by_pair": {f"{a}-{b}": p.sent - p.received
                                            for (a, b), p in zip(PAIRS, pings, strict=True)},
                           "at": round(time.time(), 1),
                           "stale_entries": stale, "missing_entries": missing,
                           "in_sync_s": round(in_sync, 2)}
                    results.append(row)
                    print(json.dumps(row), flush=True)
            finally:
                for p in tcp:
                    p.kill()
            # the end state must be what a fresh controller installs
            time.sleep(12.0)  # the TCP flows' pins idle out
            before = entries(net)
            ctl.stop()
            ctl.start()
            with ctl.client() as c:
                wait_discovered(c, SPEC, timeout=60)
            time.sleep(3.0)
            stale, missing = changed(before, entries(net))
    return {"faults": results, "fresh_controller_changes": {"stale": stale,
                                                           "missing": missing}}


def table(res: dict) -> str:
    by: dict[str, list[dict]] = {}
    for r in res["faults"]:
        by.setdefault(r["fault"], []).append(r)
    rows = ["| fault | times | pings lost (of sent, 4 pairs at 10 ms) | recovery s after it "
            "ends (max) | "
            "entries differing from the desired state after (stale / missing) | "
            "in sync s after healed (max) |",
            "| --- | --- | --- | --- | --- | --- |"]
    for fault in ("none", *FAULTS):
        rs = by.get(fault)
        if not rs:
            continue
        lost = sum(r["pings_lost"] for r in rs)
        sent = sum(r["pings_sent"] for r in rs)
        rows.append(f"| {fault} | {len(rs)} | {lost} of {sent} | "
                    f"{max(r['recovery_s'] for r in rs):.1f} | "
                    f"{sum(r['stale_entries'] for r in rs)} / "
                    f"{sum(r['missing_entries'] for r in rs)} | "
                    f"{max(r.get('in_sync_s', 0.0) for r in rs):.1f} |")
    f = res["fresh_controller_changes"]
    rows.append(f"\nA fresh controller started on the end state changed {f['stale']} stale and "
                f"{f['missing']} missing entries.")
    return "\n".join(rows)


def write_docs(res: dict, path: Path, seconds: float, seed: int) -> None:
    text = path.read_text() if path.exists() else f"{BEGIN}\n{END}\n"
    if BEGIN not in text:
        text += f"\n{BEGIN}\n{END}\n"
    start, end = text.index(BEGIN) + len(BEGIN), text.index(END)
    body = (f"\n\nMeasured {time.strftime('%Y-%m-%d')} on {platform.node()} "
            f"({platform.machine()}), `python -m bench.chaos --seconds {seconds:g} "
            f"--seed {seed}`:\n\n" + table(res) + "\n\n")
    path.write_text(text[:start] + body + text[end:])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=240.0, help="how long faults are drawn")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--out", default=str(ROOT / "bench" / "results" / "chaos.json"))
    p.add_argument("--doc", default=str(ROOT / "docs" / "reliability.md"))
    p.add_argument("--keep-logs", metavar="DIR",
                   help="keep fabricd's logs in DIR (default: a temporary directory)")
    args = p.parse_args(argv)
    if args.keep_logs:
        Path(args.keep_logs).mkdir(parents=True, exist_ok=True)
        res = run(args.seconds, args.seed, Path(args.keep_logs))
    else:
        with tempfile.TemporaryDirectory(dir="/var/tmp") as tmp:
            res = run(args.seconds, args.seed, Path(tmp))
    Path(args.out).write_text(json.dumps({"benchmark": "chaos", "seconds": args.seconds,
                                          "seed": args.seed, **res}, indent=2) + "\n")
    write_docs(res, Path(args.doc), args.seconds, args.seed)
    print(table(res))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
