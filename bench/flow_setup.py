"""New-flow setup through fabricd at scale, against the switch fleet (part of bench.scale).

Every fake host sends UDP datagrams of new 5-tuples, each to its partner on the next
leaf, paced to an offered rate across all host ports (so that no port's meter on
copies to the controller, 200/s by default, is what limits). A new 5-tuple's first
packet is copied by its leaf's TE table to fabricd, which places it and installs a pin
on that leaf, or declines it with a short-lived no-copy entry (admission). Measured per
flow, from the frame entering its leaf to the pin (or no-copy entry) applied by the
fake switch: flows handled per second, and latency at the 50th and 99th percentile;
how many were pinned, declined, or never answered; the event loop's lag meanwhile.
The fleet's own I/O thread carries every frame and message, so its time is included.
"""

from __future__ import annotations

import ipaddress
import statistics
import threading
import time

from os_ken.ofproto import ofproto_v1_3 as ofp

from controller.core import constants as C
from tests.fakes.fleet import Fleet
from tests.fakes.hosts import FakeHost, HostNet, ipv4, udp
from tests.fakes.ofwire import FlowMod

Key = tuple[int, int, int, int]  # (ipv4 src, ipv4 dst, udp src, udp dst) as integers
_ADDS = (ofp.OFPFC_ADD, ofp.OFPFC_MODIFY, ofp.OFPFC_MODIFY_STRICT)


def _ip(ip: str) -> int:
    return int(ipaddress.IPv4Address(ip))


class SetupWatch:
    """When each 5-tuple's pin or no-copy entry reached its switch (fleet I/O thread)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.installed: dict[Key, tuple[float, int]] = {}  # key -> (when, cookie kind)

    def __call__(self, dpid: int, fm: FlowMod) -> None:
        if fm.command not in _ADDS:
            return
        kind = C.cookie_kind(fm.cookie)
        if kind not in (C.KIND_PIN, C.KIND_NOCOPY):
            return
        m = fm.match
        key = (m.exact("ipv4_src"), m.exact("ipv4_dst"), m.exact("udp_src"),
               m.exact("udp_dst"))
        if None in key:
            return
        now = time.monotonic()
        with self.lock:
            self.installed.setdefault(key, (now, kind))  # type: ignore[arg-type]

    def get(self, key: Key) -> tuple[float, int] | None:
        with self.lock:
            return self.installed.get(key)


def partners(hosts: HostNet, leaves: list[int]) -> list[tuple[FakeHost, FakeHost]]:
    """Each host with the host at its place on the next leaf (another leaf: through a
    spine, where TE places it)."""
    by_leaf: dict[int, list[FakeHost]] = {}
    for h in hosts:
        by_leaf.setdefault(h.dpid, []).append(h)
    out = []
    for j, leaf in enumerate(leaves):
        nxt = leaves[(j + 1) % len(leaves)]
        there = by_leaf.get(nxt, [])
        if nxt != leaf and there:
            out += [(h, there[i % len(there)]) for i, h in enumerate(by_leaf.get(leaf, []))]
    return out


def prepare(fleet: Fleet, hosts: HostNet, leaves: list[int]) -> tuple[list, SetupWatch]:
    """Every pair resolved (ARP: fabricd learns both hosts), and the watch on every
    switch; the pairs whose partner answered."""
    pairs = [(a, b, mac) for a, b in partners(hosts, leaves)
             if (mac := hosts.resolve(a, b.ip, timeout=3.0)) is not None]
    watch = SetupWatch()
    for sw in fleet.switches.values():
        sw.on_flow_mod = watch
    return pairs, watch


def run(fleet: Fleet, pairs: list, watch: SetupWatch, rate: float, seconds: float,
        dport: int, wait: float = 5.0) -> dict:
    """``rate`` new flows a second for ``seconds``, round-robin over ``pairs`` (new
    5-tuples: a source port per round, ``dport`` to tell runs apart); what became of
    them within ``wait`` seconds of the last."""
    n = max(1, int(rate * seconds))
    sent: dict[Key, float] = {}
    frames = []
    for i in range(n):
        a, b, mac = pairs[i % len(pairs)]
        sport = 1024 + i // len(pairs)
        key = (_ip(a.ip), _ip(b.ip), sport, dport)
        frames.append((a.dpid, a.port, key,
                       ipv4(a.mac, mac, a.ip, b.ip, 17, udp(sport, dport, bytes(18)))))
    start = time.monotonic()
    i = 0
    while i < n:  # every frame due by now, handed over at once (then a short sleep):
        now = time.monotonic()  # one hand-over per frame offered ~3,000 a second at most
        due = min(n, int((now - start) * rate) + 1)
        if due <= i:
            time.sleep(min(0.002, (i - (now - start) * rate) / rate))
            continue
        batch = frames[i:due]
        for _, _, key, _ in batch:
            sent[key] = now
        fleet.inject_many([(dpid, port, frame) for dpid, port, _, frame in batch])
        i = due
    sent_span = time.monotonic() - start
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline and any(watch.get(k) is None for k in sent):
        time.sleep(0.1)
    took, pinned, declined, last = [], 0, 0, start
    for key, t in sent.items():
        got = watch.get(key)
        if got is None:
            continue
        took.append(got[0] - t)
        last = max(last, got[0])
        if got[1] == C.KIND_PIN:
            pinned += 1
        else:
            declined += 1
    took.sort()

    def pct(q: float) -> float | None:
        return round(took[min(len(took) - 1, int(q * len(took)))] * 1000, 1) if took else None

    return {"offered_per_s": round(n / sent_span, 1), "flows": n, "pinned": pinned,
            "declined": declined, "unanswered": n - pinned - declined,
            "handled_per_s": round((pinned + declined) / max(last - start, 1e-9), 1),
            "latency_p50_ms": pct(0.5), "latency_p99_ms": pct(0.99),
            "latency_mean_ms": round(statistics.fmean(took) * 1000, 1) if took else None}
