"""Emulated traffic on Mininet hosts with iperf3 (JSON results): RoCE-like UDP on 4791,
bulk floods, TCP flows. Every helper is bounded in time."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class FlowResult:
    sent_mbps: float
    received_mbps: float
    lost_percent: float
    packets: int
    lost_packets: int

    @property
    def delivered_mbps(self) -> float:
        """The sending rate times the fraction of packets that arrived (UDP). The
        receiver's own rate estimate also counts its idle wait at the end."""
        return self.sent_mbps * (1 - self.lost_percent / 100)


def start_servers(host, ports: list[int], settle: float = 0.3) -> None:
    """iperf3 servers (one test each) on ``host``, listening after ``settle`` seconds
    (0: the caller waits once for several hosts')."""
    for port in ports:
        host.cmd(f"iperf3 -s -p {port} -D -1 >/dev/null 2>&1")
    time.sleep(settle)


def stop_servers(*hosts) -> None:
    for h in hosts:
        h.cmd("pkill -9 iperf3 >/dev/null 2>&1")


def udp_flow(src, dst_ip: str, port: int, mbps: float, seconds: float, tos: int = 0,
             length: int = 1200) -> subprocess.Popen:
    """Start a constant-rate UDP flow (iperf3 client) from ``src``; collect with ``result``."""
    cmd = (f"iperf3 -c {dst_ip} -p {port} -u -b {mbps}M -t {seconds} -l {length} "
           f"--tos {tos} -J --connect-timeout 5000")
    return src.popen(cmd.split(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                     text=True)


def tcp_flow(src, dst_ip: str, port: int, seconds: float, tos: int = 0,
             streams: int = 1, omit: int = 0) -> subprocess.Popen:
    """A TCP flow (iperf3 client); ``omit`` leaves the first seconds (slow start, the
    controller placing the flow) out of the result."""
    # a SYN into a congested best-effort queue may need its 1 s and 3 s retransmissions
    cmd = (f"iperf3 -c {dst_ip} -p {port} -t {seconds} --tos {tos} -P {streams} -J "
           f"--connect-timeout 15000 -O {omit}")
    return src.popen(cmd.split(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                     text=True)


def result(proc: subprocess.Popen, timeout: float = 60) -> FlowResult:
    out, _ = proc.communicate(timeout=timeout)
    try:
        data = json.loads(out)
    except json.JSONDecodeError:
        raise RuntimeError(f"iperf3 gave no JSON: {out[-500:]}") from None
    if "error" in data:
        raise RuntimeError(f"iperf3: {data['error']}")
    end = data["end"]
    if "sum" in end:  # UDP: the receiver's view is in sum (lost/jitter from the server)
        s = end["sum"]
        recv = end.get("sum_received", {}).get("bits_per_second")
        sent = s["bits_per_second"] / 1e6
        received = (recv / 1e6) if recv else sent * (1 - s["lost_percent"] / 100)
        return FlowResult(sent, received, s["lost_percent"], s["packets"], s["lost_packets"])
    # TCP: bytes the receiver got over the sender's test time (the receiver's own
    # clock may start late and inflate its rate)
    sent_s = end["sum_sent"]["seconds"] or 1.0
    sent = end["sum_sent"]["bytes"] * 8 / sent_s / 1e6
    received = end["sum_received"]["bytes"] * 8 / sent_s / 1e6
    return FlowResult(sent, received, 0.0, 0, 0)


def interrupt(proc: subprocess.Popen, timeout: float = 10) -> list[tuple[float, float]]:
    """Stop an iperf3 client early (SIGINT, as ^C would) and return its sender's one-second
    intervals so far, as (start s, Mbit/s): interrupted, iperf3 gives no receiver totals."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=timeout)
    try:
        data = json.loads(out)
    except json.JSONDecodeError:
        raise RuntimeError(f"iperf3 gave no JSON: {out[-500:]}") from None
    if "interrupt" not in data.get("error", "interrupt"):
        raise RuntimeError(f"iperf3: {data['error']}")
    return [(i["sum"]["start"], i["sum"]["bits_per_second"] / 1e6)
            for i in data.get("intervals", [])]


def ring_allreduce(hosts: list, chunk_bytes: int, tos: int = 0, port: int = 7100,
                   timeout: float = 60.0) -> float:
    """Run one emulated ring all-reduce among ``hosts``; its completion time in seconds
    (the slowest rank)."""
    from pathlib import Path

    script = Path(__file__).with_name("allreduce.py")
    ips = ",".join(h.IP() for h in hosts)
    procs = [h.popen(["python3", str(script), str(r), ips, str(chunk_bytes), "--tos",
                      str(tos), "--port", str(port), "--timeout", str(timeout)],
                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for r, h in enumerate(hosts)]
    times = []
    for p in procs:
        out, _ = p.communicate(timeout=timeout + 10)
        try:
            data = json.loads(out.strip().splitlines()[-1])
        except (IndexError, json.JSONDecodeError):
            raise RuntimeError(f"all-reduce rank gave no result: {out[-300:]!r}") from None
        if "error" in data:
            raise RuntimeError(f"all-reduce rank {data['rank']}: {data['error']}")
        times.append(data["seconds"])
    return max(times)


def mark_tcp_dscp(hosts, dscp: int, ports: range | None = None) -> None:
    """Every host in ``hosts`` marks the TCP it sends into the fabric (10.0.0.0/8) with
    ``dscp``, through iptables in its own namespace: how a cluster puts a collective
    library that sets no DSCP of its own (OpenMPI over TCP) into a QoS class. With
    ``ports``, only connections with one end in that range (e.g. OpenMPI's transport,
    ``mininet_topos.mpi.BTL_PORTS``: its data, both ways), not the hosts' other TCP."""
    match = ""
    if ports is not None:
        if not ports or ports.step != 1:
            raise ValueError(f"ports must be a non-empty range with step 1, not {ports!r}")
        match = f"-m multiport --ports {ports.start}:{ports.stop - 1} "
    for h in hosts:
        out = h.cmd(f"iptables -t mangle -A OUTPUT -p tcp -d 10.0.0.0/8 {match}-j DSCP "
                    f"--set-dscp {dscp} && echo ok")
        if "ok" not in out:
            raise RuntimeError(f"{h.name}: cannot mark DSCP with iptables: {out.strip()}")


def ping_rtts(src, dst_ip: str, count: int, interval: float = 0.05, tos: int = 0) -> list[float]:
    """Round-trip times (ms) of ``count`` pings; lost ones are left out."""
    out = src.cmd(f"ping -n -c {count} -i {interval} -W 1 -Q {tos} {dst_ip}")
    return [float(line.split("time=")[1].split()[0]) for line in out.splitlines()
            if "time=" in line]
