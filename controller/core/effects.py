"""What the core asks of the apps after an event, and a token bucket it rate-limits with."""

from __future__ import annotations

from dataclasses import dataclass, field

from controller.core.southbound.openflow import FlowRule


@dataclass(frozen=True)
class PacketOut:
    dpid: int
    ports: tuple[int, ...]
    data: bytes
    # waits for the sync of the change it came with (an ARP answer: the asker sends at
    # once and its packets should find the new entries); an LLDP probe relies on
    # nothing new and goes at once (a probe held behind a long sync would arrive stale)
    held: bool = True


@dataclass
class Effects:
    """What one event asks of the apps."""

    packet_outs: list[PacketOut] = field(default_factory=list)
    changed: bool = False  # forwarding state must be recomputed and pushed
    # hosts came, went or moved: only host entries change (``FabricCore.host_delta``)
    hosts: bool = False
    touched: set[int] = field(default_factory=set)  # switches whose TE pins changed
    # entries outside the desired state that expire on the switch by themselves:
    # (dpid, rule, hard timeout in seconds)
    ephemeral: list[tuple[int, FlowRule, int]] = field(default_factory=list)

    def merge(self, other: Effects) -> Effects:
        self.packet_outs += other.packet_outs
        self.ephemeral += other.ephemeral
        self.changed = self.changed or other.changed
        self.hosts = self.hosts or other.hosts
        self.touched |= other.touched
        return self


class TokenBucket:
    def __init__(self, rate: float, burst: float, now: float) -> None:
        self.rate, self.burst, self.tokens, self.stamp = rate, burst, burst, now

    def take(self, now: float) -> bool:
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False
