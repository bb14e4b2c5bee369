"""Benchmark: what a hostile host achieves, attack off vs on, in one invocation.

One 2-spine/4-leaf fabric (10 Mbit/s links, default config). For every attack, the same
bystander measurement runs twice, without and with the attack: a 10 ms ping between two
other leaves (loss, median and p99 RTT) and the fabric app's event-loop lag (from its
Prometheus histogram over the window). Then what the attack was after is checked:

  malformed_lldp  1,000 LLDP frames in aifabric's format with out-of-range chassis IDs
                  (dpid:-1 stopped the controller before): still serving, all pairs reach
  arp_hijack      gratuitous ARP (request and reply) claiming another host's address,
                  repeated: who the victim's address resolves to afterwards
  mac_flood       20,000 ARP frames from random source MACs at 2,000/s: hosts learned,
                  links kept, meter drops
  flow_flood      2,000 new UDP 5-tuples/s for 10 s: flows tracked, meter drops
  spoof_flood     2,000 UDP frames/s for 10 s from forged source addresses (random
                  10.77/16, the attacker's own MAC): how many reached their destination
  cnp_flood       a flood marked as CNP (the strict class) against an honest RoCE flow to
                  the same host: RoCE delivered over its demand

Results: bench/results/hostile.json and docs/security.md (the table between the markers).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from bench.common import lag_sum_count, metric_samples
from mininet_topos import traffic as T
from mininet_topos.attack import gratuitous_arp, malformed_lldp, ping_result, start_ping
from mininet_topos.attack import run as attack
from mininet_topos.controller_proc import FabricdProcess
from mininet_topos.discovery import wait_discovered
from mininet_topos.network import (
    cleanup,
    cold_reachability,
    fabric_network,
    reachability,
    wait_qos_provisioned,
)
from mininet_topos.spine_leaf import FabricSpec

ROOT = Path(__file__).resolve().parent.parent
BW = 10.0
SPEC = FabricSpec(spines=2, leaves=4, hosts_per_leaf=2, bw=BW)
WINDOW = 12.0  # seconds of bystander ping per measurement
ROCE_MBPS = 3.0
BEGIN, END = "<!-- bench:hostile:begin -->", "<!-- bench:hostile:end -->"


def loop_lag(ctl) -> tuple[float, float]:
    """(sum, count) of the event-loop lag histogram."""
    return lag_sum_count(metric_samples(ctl.metrics_addr))


def bystander(ctl, net, action=None) -> dict:
    """A 10 ms ping h2 -> h6 for WINDOW seconds while ``action`` runs (None: idle)."""
    lag0 = loop_lag(ctl)
    pinger = start_ping(net.get("h2"), net.get("h6").IP(), WINDOW)
    time.sleep(1.0)
    extra = action() if action else {}
    p = ping_result(pinger)
    lag1 = loop_lag(ctl)
    ticks = lag1[1] - lag0[1]
    rtts = sorted(p.rtts_ms)
    return {
        "ping_sent": p.sent, "ping_lost": p.sent - p.received,
        "ping_loss": round(p.loss, 4),
        "rtt_median_ms": round(statistics.median(rtts), 3) if rtts else None,
        "rtt_p99_ms": round(rtts[max(0, int(len(rtts) * 0.99) - 1)], 3) if rtts else None,
        "loop_lag_mean_ms": round(1000 * (lag1[0] - lag0[0]) / ticks, 3) if ticks else None,
        **extra,
    }


def counters(ctl) -> dict[str, int]:
    with ctl.client() as c:
        return dict(c.status().counters)


def all_pairs(net) -> float:
    result = cold_reachability(net)
    return sum(result.values()) / len(result)


def run(workdir: Path) -> dict:
    cleanup()
    out: dict = {}
    with FabricdProcess(workdir / "fabricd-hostile.log",
                        extra_args=["--link-speed", str(BW)]) as ctl:
        with fabric_network(SPEC, ctl.controller) as net:
            with ctl.client() as c:
                wait_discovered(c, SPEC, timeout=60)
            wait_qos_provisioned(net)
            reachability(net, count=1)
            h = {n: net.get(n) for n in ("h1", "h2", "h3", "h4", "h5", "h6", "h7", "h8")}

            def do_malformed_lldp() -> dict:
                frames = [f.hex() for f in malformed_lldp()]
                for _ in range(40):
                    attack(h["h1"], "send", "h1-eth0", *(frames * 4))
                return {}

            def do_arp_hijack() -> dict:
                frames = gratuitous_arp(h["h3"].MAC(), h["h1"].IP())
                for _ in range(20):
                    attack(h["h3"], "send", "h3-eth0", *(f.hex() for f in frames))
                    time.sleep(0.25)
                return {}

            def do_mac_flood() -> dict:
                attack(h["h8"], "macflood", "h8-eth0", "20000", "2000")
                return {}

            def do_flow_flood() -> dict:
                attack(h["h7"], "flowflood", h["h3"].IP(), "10", "2000")
                return {}

            def do_spoof_flood() -> dict:
                cap = h["h3"].popen(["tcpdump", "-l", "-n", "-i", "h3-eth0", "udp and src "
                                     "net 10.77.0.0/16"], stdout=subprocess.PIPE,
                                    stderr=subprocess.DEVNULL, text=True)
                time.sleep(1.0)
                sent = attack(h["h7"], "spoofflood", "h7-eth0", h["h7"].MAC(), h["h3"].MAC(),
                              h["h3"].IP(), "10", "2000", "0")
                time.sleep(1.0)
                cap.terminate()
                got, _ = cap.communicate(timeout=10)
                return {"forged_sent": int(sent.split()[1]),
                        "forged_delivered": sum(1 for ln in got.splitlines() if " IP " in ln)}

            attacks = {"malformed_lldp": do_malformed_lldp, "arp_hijack": do_arp_hijack,
                       "mac_flood": do_mac_flood, "flow_flood": do_flow_flood,
                       "spoof_flood": do_spoof_flood}
            for name, fn in attacks.items():
                before = counters(ctl)
                off = bystander(ctl, net)
                on = bystander(ctl, net, fn)
                after = counters(ctl)
                topo = c_topology(ctl)
                achieved = {
                    "links": len(topo.links),
                    "hosts": len(topo.hosts),
                    "serving": health(ctl) == "SERVING",
                    "meter_drops": after.get("meter_drops", 0) - before.get("meter_drops", 0),
                    "handler_errors": sum(v for k, v in after.items()
                                          if k.startswith("handler_errors.")),
                    "rejected_lldp": after.get("rejected_lldp", 0)
                    - before.get("rejected_lldp", 0),
                    "host_conflicts": after.get("host_conflicts", 0)
                    - before.get("host_conflicts", 0),
                    "hosts_refused": after.get("hosts_refused", 0)
                    - before.get("hosts_refused", 0),
                    "source_guard_dropped": after.get("source_guard_dropped", 0)
                    - before.get("source_guard_dropped", 0),
                }
                if name == "arp_hijack":
                    h["h5"].cmd("ip neigh flush all")
                    reachability(net, count=1)
                    neigh = h["h5"].cmd(f"ip neigh show {h['h1'].IP()}")
                    achieved["victim_resolves_to_victim"] = h["h1"].MAC() in neigh
                if name == "flow_flood":
                    with ctl.client() as c:
                        achieved["attacker_flows_tracked"] = sum(
                            1 for f in c.flows().flows if f.flow.src_ip == h["h7"].IP())
                achieved["all_pairs_reachable"] = all_pairs(net)
                out[name] = {"off": off, "on": on, "achieved": achieved}
                print(json.dumps({name: out[name]}), flush=True)

            # the CNP-marked flood against an honest RoCE flow to the same host
            T.start_servers(h["h1"], [5202])
            roce_alone = T.result(T.udp_flow(h["h3"], h["h1"].IP(), 5202, ROCE_MBPS, 5,
                                             tos=26 << 2))
            T.start_servers(h["h1"], [4791, 5202])  # (each iperf3 server answers one test)
            flood = T.udp_flow(h["h5"], h["h1"].IP(), 4791, 2 * BW, 8, tos=48 << 2)
            time.sleep(1.5)
            roce = T.result(T.udp_flow(h["h3"], h["h1"].IP(), 5202, ROCE_MBPS, 5,
                                       tos=26 << 2))
            f = T.result(flood)
            T.stop_servers(h["h1"])
            out["cnp_flood"] = {
                "roce_alone_delivered_mbps": round(roce_alone.delivered_mbps, 3),
                "roce_under_flood_delivered_mbps": round(roce.delivered_mbps, 3),
                "roce_loss_percent": round(roce.lost_percent, 2),
                "flood_received_mbps": round(f.received_mbps, 3),
                "roce_demand_mbps": ROCE_MBPS,
            }
            print(json.dumps({"cnp_flood": out["cnp_flood"]}), flush=True)
    return out


def c_topology(ctl):
    with ctl.client() as c:
        return c.topology()


def health(ctl) -> str:
    with ctl.client() as c:
        return c.health()


def table(res: dict) -> str:
    rows = ["| attack | bystander ping loss (off / on) | RTT p99 ms (off / on) | "
            "event-loop lag ms (off / on) | what the attack achieved |",
            "| --- | --- | --- | --- | --- |"]
    for name in ("malformed_lldp", "arp_hijack", "mac_flood", "flow_flood", "spoof_flood"):
        r = res[name]
        off, on, a = r["off"], r["on"], r["achieved"]
        got = [f"links {a['links']}/16", f"reachable {a['all_pairs_reachable']:.0%}",
               "serving" if a["serving"] else "NOT SERVING"]
        if name == "arp_hijack":
            got.append("victim's address " + ("kept" if a["victim_resolves_to_victim"]
                                              else "HIJACKED"))
        if name == "mac_flood":
            got.append(f"hosts {a['hosts']} ({a['hosts_refused']} MACs refused)")
        if name == "flow_flood":
            got.append(f"{a['attacker_flows_tracked']} of ~20,000 flows tracked")
        if name == "spoof_flood":
            on_ = r["on"]
            got.append(f"{on_['forged_delivered']} of {on_['forged_sent']} forged frames "
                       f"delivered, {a['source_guard_dropped']} dropped by the controller")
        if a["meter_drops"]:
            got.append(f"{a['meter_drops']} dropped at the switch")
        rows.append(f"| {name} | {off['ping_loss']:.1%} / {on['ping_loss']:.1%} | "
                    f"{off['rtt_p99_ms']} / {on['rtt_p99_ms']} | "
                    f"{off['loop_lag_mean_ms']} / {on['loop_lag_mean_ms']} | "
                    + ", ".join(got) + " |")
    c = res["cnp_flood"]
    rows.append(f"| cnp_flood | - | - | - | honest RoCE {c['roce_under_flood_delivered_mbps']}"
                f" of {c['roce_demand_mbps']} Mbit/s delivered ({c['roce_loss_percent']}% "
                f"loss; alone: {c['roce_alone_delivered_mbps']}), the CNP-marked flood got "
                f"{c['flood_received_mbps']} Mbit/s |")
    return "\n".join(rows)


def write_docs(res: dict, path: Path) -> None:
    text = path.read_text() if path.exists() else f"{BEGIN}\n{END}\n"
    start, end = text.index(BEGIN) + len(BEGIN), text.index(END)
    when = time.strftime("%Y-%m-%d")
    body = (f"\n\nMeasured {when} on {platform.node() or 'this machine'} "
            f"({platform.machine()}), `make bench` / `python -m bench.hostile`:\n\n"
            + table(res) + "\n\n")
    path.write_text(text[:start] + body + text[end:])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=str(ROOT / "bench" / "results" / "hostile.json"))
    p.add_argument("--doc", default=str(ROOT / "docs" / "security.md"))
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(dir="/var/tmp") as tmp:
        res = run(Path(tmp))
    out = Path(args.out)
    out.write_text(json.dumps({"benchmark": "hostile", "bandwidth_mbps": BW, **res},
                              indent=2) + "\n")
    write_docs(res, Path(args.doc))
    print(table(res))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
