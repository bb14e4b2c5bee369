"""The takeover probe's frames (mininet_topos/probe.py): an ARP request and an echo
request as a host sends them, and only the right answers recognised."""

from __future__ import annotations

import socket
import struct

from mininet_topos.probe import (
    arp_reply_from,
    arp_request,
    echo_request,
    internet_checksum,
    is_echo_reply,
)

ME, HIM = bytes.fromhex("020000000b01"), bytes.fromhex("000000000008")
MY_IP, HIS_IP = socket.inet_aton("10.0.0.101"), socket.inet_aton("10.0.0.8")


def test_an_arp_reply_for_the_target_to_us_gives_its_mac():
    req = arp_request(ME, MY_IP, HIS_IP)
    assert req[:6] == b"\xff" * 6 and req[12:14] == b"\x08\x06" and req[38:42] == HIS_IP
    reply = (ME + HIM + b"\x08\x06" + struct.pack("!HHBBH", 1, 0x0800, 6, 4, 2)
             + HIM + HIS_IP + ME + MY_IP)
    assert arp_reply_from(reply, ME, HIS_IP) == HIM
    assert arp_reply_from(req, ME, HIS_IP) is None  # our own request is no answer
    other = HIM + HIM + reply[12:]  # an answer to someone else
    assert arp_reply_from(other, ME, HIS_IP) is None


def test_echo_request_is_well_formed_and_only_its_reply_counts():
    req = echo_request(ME, HIM, MY_IP, HIS_IP, 7)
    ip = req[14:34]
    assert internet_checksum(ip) == 0 and internet_checksum(req[34:]) == 0  # both checksums hold
    # the target's reply: addresses swapped, ICMP type 0
    body = bytearray(req[34:])
    body[0] = 0
    reply = ME + HIM + b"\x08\x00" + ip[:12] + HIS_IP + MY_IP + bytes(body)
    assert is_echo_reply(reply, ME, MY_IP, HIS_IP)
    assert not is_echo_reply(req, ME, MY_IP, HIS_IP)  # (an echo request)
    assert not is_echo_reply(reply, HIM, MY_IP, HIS_IP)  # not to us
