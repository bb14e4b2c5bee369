"""Emulated traffic on Mininet hosts with iperf3 (JSON results): RoCE-like UDP on 4791,
bulk floods, TCP flows. Every helper is bounded in time."""

from __future__ import annotations

import json
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


def start_servers(host, ports: list[int]) -> None:
    for port in ports:
        host.cmd(f"iperf3 -s -p {port} -D -1 >/dev/null 2>&1")
    time.sleep(0.3)


def stop_servers(*hosts) -> None:
    for h in hosts:
        h.cmd("pkill -9 iperf3 >/dev/null 2>&1")


def udp_flow(src, dst_ip: str, port: int, mbps: float, seconds: float, tos: int = 0,
             length: int = 1200) -> subprocess.Popen:
    """Start a constant-rate UDP flow (iperf3 client) from ``src``; collect with ``result``."""
    cmd = (f"iperf3 -c {dst_ip} -p {port} -u -b {mbps}M -t {seconds} -l {length} "
           f"--tos {tos} -J --connect-timeout 3000")
    return src.popen(cmd, shell=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                     text=True)


def tcp_flow(src, dst_ip: str, port: int, seconds: float, tos: int = 0) -> subprocess.Popen:
    cmd = f"iperf3 -c {dst_ip} -p {port} -t {seconds} --tos {tos} -J --connect-timeout 3000"
    return src.popen(cmd, shell=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
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
    sent = end["sum_sent"]["bits_per_second"] / 1e6
    received = end["sum_received"]["bits_per_second"] / 1e6
    return FlowResult(sent, received, 0.0, 0, 0)
