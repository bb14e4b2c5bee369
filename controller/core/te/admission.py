"""Admission of new flows: a copy of a flow's first packet, from a leaf's TE table, is
checked before TE places the flow. It must come from a host port, be IPv4 TCP or UDP, be
sent by the host bound at that port (a forged address would weigh as another host in
the priority use and escape the port's share of the table), between settled leaves,
within the port's rate of new flows and its share of the table. A declined flow stays
on ECMP, and a short-lived entry stops its packets being copied, so a host opening
flows faster than TE takes them costs one copy per flow.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from controller.core import constants as C
from controller.core.effects import Effects, TokenBucket
from controller.core.fabric.forwarding import nocopy_rule
from controller.core.fabric.frames import FrameError, parse_ethernet, parse_transport
from controller.core.te.flows import Flow, FlowKey
from controller.core.te.reader import CoreTeSettings, FabricReader

log = logging.getLogger("aifabric.core")

HostPort = tuple[int, int]  # (leaf, port) a host is attached at


@dataclass(frozen=True)
class Admitted:
    """A new flow that may be placed: its key, its leaves, the host port it enters by
    and its traffic class (a priority class or not)."""

    key: FlowKey
    src_leaf: int
    dst_leaf: int
    where: HostPort
    cls: str
    priority: bool


class Admission:
    """The checks, and what they keep: each host port's token bucket of new flows and
    how many tracked flows it holds."""

    def __init__(self, settings: CoreTeSettings, reader: FabricReader,
                 count: Callable[[str], None]) -> None:
        self.settings = settings
        self.reader = reader
        self.fabric = reader.fabric
        self._count = count
        self._flow_buckets: dict[HostPort, TokenBucket] = {}
        self._port_flows: dict[HostPort, int] = {}

    def admit(self, dpid: int, in_port: int, data: bytes, now: float,
              known: Callable[[FlowKey], bool]) -> Admitted | Effects:
        """The flow of a copied packet if it may be placed, else what its copy asks of
        the apps (nothing, or a no-copy entry); ``known`` says whether a pin (or a job's
        pair entry) holds the flow already."""
        if not self.fabric.is_connected(dpid):
            return Effects()
        if not self.reader.is_host_port(dpid, in_port, now):
            self._count("te_ignored_non_edge")
            return Effects()
        try:
            eth = parse_ethernet(data)
            if eth.ethertype != C.ETH_TYPE_IP:
                raise FrameError("not IPv4")
            t = parse_transport(eth.payload)
        except FrameError as exc:
            self._count("bad_frames")
            log.debug("TE copy from %d:%d not placed: %s", dpid, in_port, exc)
            return Effects()
        key = FlowKey(t.src_ip, t.dst_ip, t.proto, t.src_port, t.dst_port)
        if known(key):
            self._count("te_copies_after_placement")  # the pin is on its way
            return Effects()
        dst = self.fabric.hosts.get(eth.dst)
        if dst is None or dst.dpid == dpid:
            return Effects()
        src = self.fabric.hosts.get(eth.src)
        if src is None or (src.dpid, src.port) != (dpid, in_port) or src.ip != t.src_ip:
            return self.decline(dpid, key, "te_declined_unbound_source")
        where = (dpid, in_port)
        if not (self.reader.is_settled(dpid, now) and self.reader.is_settled(dst.dpid, now)):
            return self.decline(dpid, key, "te_declined_unsettled")
        bucket = self._flow_buckets.get(where)
        if bucket is None:
            rate = self.settings.new_flow_rate
            bucket = self._flow_buckets[where] = TokenBucket(rate, rate, now)
        if not bucket.take(now):
            return self.decline(dpid, key, "te_new_flows_rate_limited")
        if self._port_flows.get(where, 0) >= self.settings.max_flows_per_port:
            return self.decline(dpid, key, "te_port_share_full")
        cls, priority = self._class_of(t.dscp)
        return Admitted(key, dpid, dst.dpid, where, cls, priority)

    def _class_of(self, dscp: int) -> tuple[str, bool]:
        qos = self.reader.view().qos
        if qos is not None:
            for c in qos.classes:
                if c.dscp == dscp:
                    return c.name, True
        return "best-effort", False

    def decline(self, dpid: int, key: FlowKey, why: str) -> Effects:
        """The flow stays on ECMP; a short-lived entry stops its packets being copied."""
        self._count(why)
        return Effects(ephemeral=[(dpid, nocopy_rule(key.match()),
                                   self.settings.declined_flow_timeout)])

    def placed(self, flow: Admitted) -> None:
        """An admitted flow was placed: it takes its part of the port's share."""
        self._port_flows[flow.where] = self._port_flows.get(flow.where, 0) + 1

    def recount(self, flows: Iterable[Flow], where: Mapping[str, HostPort]) -> None:
        """Tracked flows per ingress host port (the per-port share of the table), from
        the tracked ``flows`` and where each host address is attached."""
        counts: dict[HostPort, int] = {}
        for f in flows:
            at = where.get(f.key.src_ip)
            if at is not None and not f.operator:
                counts[at] = counts.get(at, 0) + 1
        self._port_flows = counts
