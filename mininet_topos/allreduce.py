"""Emulated ring all-reduce over TCP, run on every Mininet host of the ring at once.

  python3 allreduce.py RANK IP0,IP1,... CHUNK_BYTES [--tos N] [--port P]

Each of the 2(N-1) steps sends one chunk to the next rank while receiving one from the
previous (reduce-scatter then all-gather, as NCCL's ring does). Prints one JSON line:
{"rank": r, "seconds": time from the first step to the last}. Stdlib only: it runs
with the hosts' system Python.
"""

import argparse
import json
import socket
import sys
import threading
import time


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("rank", type=int)
    p.add_argument("ips")
    p.add_argument("chunk", type=int)
    p.add_argument("--tos", type=int, default=0)
    p.add_argument("--port", type=int, default=7100)
    p.add_argument("--timeout", type=float, default=60.0)
    a = p.parse_args()
    ips = a.ips.split(",")
    n = len(ips)
    nxt = ips[(a.rank + 1) % n]
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # accepted sockets inherit it: the ACKs travel in the same class as the data
    srv.setsockopt(socket.IPPROTO_IP, socket.IP_TOS, a.tos)
    srv.bind(("0.0.0.0", a.port))
    srv.listen(1)
    srv.settimeout(a.timeout)
    out = socket.socket()
    out.setsockopt(socket.IPPROTO_IP, socket.IP_TOS, a.tos)
    deadline = time.monotonic() + a.timeout
    while True:
        try:
            out.connect((nxt, a.port))
            break
        except OSError:
            if time.monotonic() > deadline:
                print(json.dumps({"rank": a.rank, "error": "connect timeout"}))
                return 1
            time.sleep(0.05)
            out.close()
            out = socket.socket()
            out.setsockopt(socket.IPPROTO_IP, socket.IP_TOS, a.tos)
    inc, _ = srv.accept()
    inc.settimeout(a.timeout)
    out.settimeout(a.timeout)
    # a one-byte handshake around the ring: every rank starts the steps together
    out.sendall(b"r")
    assert inc.recv(1) == b"r"
    payload = b"\0" * a.chunk
    t0 = time.monotonic()
    for _ in range(2 * (n - 1)):
        sender = threading.Thread(target=out.sendall, args=(payload,))
        sender.start()
        got = 0
        while got < a.chunk:
            data = inc.recv(min(65536, a.chunk - got))
            if not data:
                print(json.dumps({"rank": a.rank, "error": "peer closed"}))
                return 1
            got += len(data)
        sender.join()
    print(json.dumps({"rank": a.rank, "seconds": time.monotonic() - t0}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
