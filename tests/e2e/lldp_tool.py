"""Run inside a Mininet host: capture or inject raw frames (used by the LLDP tests).

  python3 lldp_tool.py capture IFACE OUTFILE TIMEOUT   save the first LLDP frame seen
  python3 lldp_tool.py send IFACE HEXFILE              send the frame stored (hex) in a file
"""

import socket
import sys
import time

ETH_P_ALL = 0x0003


def capture(iface: str, out: str, timeout: float) -> int:
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    s.bind((iface, 0))
    s.settimeout(0.2)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            frame = s.recv(2048)
        except TimeoutError:
            continue
        if frame[12:14] == b"\x88\xcc":
            with open(out, "w") as f:
                f.write(frame.hex())
            return 0
    return 1


def send(iface: str, hexfile: str) -> int:
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    s.bind((iface, 0))
    with open(hexfile) as f:
        s.send(bytes.fromhex(f.read().strip()))
    return 0


if __name__ == "__main__":
    if sys.argv[1] == "capture":
        sys.exit(capture(sys.argv[2], sys.argv[3], float(sys.argv[4])))
    sys.exit(send(sys.argv[2], sys.argv[3]))
