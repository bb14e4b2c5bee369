"""How soon the fabric answers, timed from inside a Mininet host (bench/cluster.py).

    python -m mininet_topos.probe IFACE SRC_MAC SRC_IP TARGET_IP [--interval S] [--timeout S]

sends an ARP request for TARGET_IP from SRC_MAC/SRC_IP every interval until a reply
comes (the fabric answers ARP from its controller: a packet-in handled, a packet-out
sent), then an ICMP echo request to the target every interval until its reply comes
(the source is then a host the fabric delivers to). SRC may be an address the fabric
has never seen: a new host. Prints one JSON line: the CLOCK_MONOTONIC times (shared by
every process on the machine) of the first ARP reply and the first echo reply, null
for what did not come within the timeout.
"""

from __future__ import annotations

import argparse
import json
import select
import socket
import struct
import sys
import time

ETH_P_ALL = 0x0003
ETH_ARP, ETH_IP = 0x0806, 0x0800


def _mac(text: str) -> bytes:
    return bytes.fromhex(text.replace(":", ""))


def internet_checksum(data: bytes) -> int:
    """RFC 1071's checksum (IPv4 header, ICMP, TCP/UDP with their pseudo-header)."""
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def arp_request(src_mac: bytes, src_ip: bytes, target_ip: bytes) -> bytes:
    return (b"\xff" * 6 + src_mac + struct.pack("!H", ETH_ARP)
            + struct.pack("!HHBBH", 1, ETH_IP, 6, 4, 1) + src_mac + src_ip
            + b"\0" * 6 + target_ip)


def echo_request(src_mac: bytes, dst_mac: bytes, src_ip: bytes, dst_ip: bytes,
                 seq: int) -> bytes:
    icmp = struct.pack("!BBHHH", 8, 0, 0, 0x4242, seq & 0xFFFF) + b"aifabric-probe"
    icmp = icmp[:2] + struct.pack("!H", internet_checksum(icmp)) + icmp[4:]
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(icmp), seq & 0xFFFF, 0, 64, 1, 0,
                     src_ip, dst_ip)
    ip = ip[:10] + struct.pack("!H", internet_checksum(ip)) + ip[12:]
    return dst_mac + src_mac + struct.pack("!H", ETH_IP) + ip + icmp


def arp_reply_from(frame: bytes, src_mac: bytes, target_ip: bytes) -> bytes | None:
    """The target's MAC if ``frame`` is an ARP reply for it sent to ``src_mac``."""
    if len(frame) < 42 or frame[12:14] != struct.pack("!H", ETH_ARP):
        return None
    op = struct.unpack("!H", frame[20:22])[0]
    if op != 2 or frame[28:32] != target_ip or frame[0:6] != src_mac:
        return None
    return frame[22:28]


def is_echo_reply(frame: bytes, src_mac: bytes, src_ip: bytes, target_ip: bytes) -> bool:
    if len(frame) < 42 or frame[0:6] != src_mac or frame[12:14] != struct.pack("!H", ETH_IP):
        return False
    ihl = (frame[14] & 0x0F) * 4
    return (frame[23] == 1 and frame[26:30] == target_ip and frame[30:34] == src_ip
            and frame[14 + ihl] == 0)


def probe(iface: str, src_mac: str, src_ip: str, target_ip: str, interval: float,
          timeout: float, start_at: float = 0.0) -> dict[str, float | None]:
    mac, sip, tip = _mac(src_mac), socket.inet_aton(src_ip), socket.inet_aton(target_ip)
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    sock.bind((iface, 0))
    sock.setblocking(False)
    time.sleep(max(0.0, start_at - time.monotonic()))
    while True:  # (what arrived before the start does not count)
        try:
            sock.recv(2048)
        except BlockingIOError:
            break
    deadline = time.monotonic() + timeout
    out: dict[str, float | None] = {"arp_reply": None, "echo_reply": None}
    target_mac: bytes | None = None
    seq, next_send = 0, 0.0
    while time.monotonic() < deadline:
        now = time.monotonic()
        if now >= next_send:
            seq += 1
            sock.send(arp_request(mac, sip, tip) if target_mac is None
                      else echo_request(mac, target_mac, sip, tip, seq))
            next_send = now + interval
        ready, _, _ = select.select([sock], [], [], max(0.0, next_send - time.monotonic()))
        if not ready:
            continue
        while True:
            try:
                frame = sock.recv(2048)
            except BlockingIOError:
                break
            at = time.monotonic()
            if target_mac is None:
                target_mac = arp_reply_from(frame, mac, tip)
                if target_mac is not None:
                    out["arp_reply"] = at
                    next_send = 0.0
            elif is_echo_reply(frame, mac, sip, tip):
                out["echo_reply"] = at
                return out
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("iface")
    p.add_argument("src_mac")
    p.add_argument("src_ip")
    p.add_argument("target_ip")
    p.add_argument("--interval", type=float, default=0.005, help="seconds between tries")
    p.add_argument("--timeout", type=float, default=5.0, help="seconds in all")
    p.add_argument("--start-at", type=float, default=0.0, help="CLOCK_MONOTONIC time to "
                   "start at (the process is started ahead, so its own start-up is not "
                   "counted)")
    args = p.parse_args(argv)
    got = probe(args.iface, args.src_mac, args.src_ip, args.target_ip, args.interval,
                args.timeout, args.start_at)
    print(json.dumps(got), flush=True)
    return 0 if got["echo_reply"] is not None else 1


if __name__ == "__main__":
    sys.exit(main())
