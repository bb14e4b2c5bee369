"""Run inside a Mininet host: what a hostile tenant sends (tests and bench/hostile.py).

  python3 -m mininet_topos.attack send IFACE HEX...          raw frames, once each
  python3 -m mininet_topos.attack macflood IFACE COUNT RATE  ARP from random source MACs
  python3 -m mininet_topos.attack flowflood DST_IP SECONDS RATE   new UDP 5-tuples
  python3 -m mininet_topos.attack udp DST_IP PORT SECONDS MBPS TOS  paced UDP at one port

Stdlib only, paced with sleeps; every loop ends by itself. Prints what it sent.
"""

from __future__ import annotations

import os
import random
import socket
import struct
import sys
import time


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


def flowflood(dst: str, seconds: float, rate: float) -> int:
    """One datagram per new 5-tuple: a fresh source socket port and destination port."""
    socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(64)]
    start = time.monotonic()
    i = 0
    while time.monotonic() - start < seconds:
        sock = socks[i % len(socks)]
        try:
            sock.sendto(b"x" * 32, (dst, 20000 + random.randrange(40000)))
        except OSError:
            pass
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


def main(argv: list[str]) -> int:
    cmd, args = argv[0], argv[1:]
    if cmd == "send":
        return send(args[0], args[1:])
    if cmd == "macflood":
        return macflood(args[0], int(args[1]), float(args[2]))
    if cmd == "flowflood":
        return flowflood(args[0], float(args[1]), float(args[2]))
    if cmd == "udp":
        return udp(args[0], int(args[1]), float(args[2]), float(args[3]), int(args[4]))
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
