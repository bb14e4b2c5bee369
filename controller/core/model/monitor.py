"""Port counters in, per-port rates and link utilization out (smoothed). Pure: the
caller passes the counters and the time they were read."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from controller.core.snapshot import LinkInfo, LinkStat


@dataclass(frozen=True)
class PortCounters:
    tx_bytes: int
    rx_bytes: int
    tx_dropped: int
    rx_dropped: int
    tx_errors: int
    rx_errors: int


@dataclass
class PortLoad:
    """Smoothed rates of one port (bit/s, packets dropped per second)."""

    tx_bps: float = 0.0
    rx_bps: float = 0.0
    drops_per_s: float = 0.0
    errors_per_s: float = 0.0
    last: PortCounters | None = None
    last_at: float = 0.0
    samples: int = 0


@dataclass
class LoadMonitor:
    """Per-port load from successive counter readings, smoothed with an EWMA."""

    alpha: float = 0.5  # weight of the newest sample
    ports: dict[tuple[int, int], PortLoad] = field(default_factory=dict)

    def update(self, dpid: int, port: int, c: PortCounters, now: float) -> None:
        load = self.ports.setdefault((dpid, port), PortLoad())
        prev, prev_at = load.last, load.last_at
        load.last, load.last_at = c, now
        if prev is None or now <= prev_at:
            return
        if c.tx_bytes < prev.tx_bytes or c.rx_bytes < prev.rx_bytes:
            return  # counters were reset (switch restarted): start again from here
        dt = now - prev_at
        sample = (
            (c.tx_bytes - prev.tx_bytes) * 8 / dt,
            (c.rx_bytes - prev.rx_bytes) * 8 / dt,
            max(0, c.tx_dropped + c.rx_dropped - prev.tx_dropped - prev.rx_dropped) / dt,
            max(0, c.tx_errors + c.rx_errors - prev.tx_errors - prev.rx_errors) / dt,
        )
        a = self.alpha if load.samples else 1.0
        load.tx_bps = a * sample[0] + (1 - a) * load.tx_bps
        load.rx_bps = a * sample[1] + (1 - a) * load.rx_bps
        load.drops_per_s = a * sample[2] + (1 - a) * load.drops_per_s
        load.errors_per_s = a * sample[3] + (1 - a) * load.errors_per_s
        load.samples += 1

    def forget_switch(self, dpid: int) -> None:
        for key in [k for k in self.ports if k[0] == dpid]:
            del self.ports[key]

    def tx_bps(self, dpid: int, port: int) -> float:
        load = self.ports.get((dpid, port))
        return load.tx_bps if load else 0.0

    def load(self, dpid: int, port: int) -> PortLoad | None:
        return self.ports.get((dpid, port))


def utilization(bps: float, speed_bps: float) -> float:
    """Fraction of the link rate in use (0 when the rate is unknown)."""
    return bps / speed_bps if speed_bps > 0 else 0.0


def link_stats(links: Iterable[LinkInfo], monitor: LoadMonitor,
               speed_of: Callable[[int, int], float]) -> tuple[LinkStat, ...]:
    """Each link direction's load, from its source port: rate, utilization of the link's
    speed (``speed_of(dpid, port)``, 0 when unknown), drops and errors per second."""
    rows = []
    for lk in links:
        load = monitor.load(lk.src_dpid, lk.src_port)
        bps = load.tx_bps if load else 0.0
        rows.append(LinkStat(lk.src_dpid, lk.src_port, lk.dst_dpid, lk.dst_port, bps,
                             utilization(bps, speed_of(lk.src_dpid, lk.src_port)),
                             load.drops_per_s if load else 0.0,
                             load.errors_per_s if load else 0.0))
    return tuple(rows)
