"""A wire-level simulation of a spine-leaf fabric around the pure core, for unit tests.

Switch ports are numbered like the Mininet topology: on a leaf, ports 1..S go to the
spines and S+1.. to hosts; on a spine, port j goes to leaf j. Packet-outs of LLDP probes
are delivered to the far end of the wire, as a switch would punt them. :func:`three_tier`
wires pods of leaves and spines under spine planes of super-spines.
"""

from __future__ import annotations

import struct

from controller.core import constants as C
from controller.core.fabric.frames import (
    ARP_REPLY,
    ARP_REQUEST,
    Arp,
    build_arp_frame,
    build_ethernet,
)
from controller.core.fabric_core import Effects, FabricCore
from controller.core.model.fabric_model import Port
from controller.core.settings import CoreSettings
from tests.fakes import layout

SPINE0, LEAF0 = 1000, 2000
SECRET = b"k" * 32


class FakeFabric:
    def __init__(self, spines: int = 2, leaves: int = 4, hosts_per_leaf: int = 2,
                 settings: CoreSettings | None = None) -> None:
        self.spines = [SPINE0 + i for i in range(1, spines + 1)]
        self.leaves = [LEAF0 + j for j in range(1, leaves + 1)]
        self.hosts_per_leaf = hosts_per_leaf
        self.core = FabricCore(settings or CoreSettings(), SECRET)
        self.wires: dict[tuple[int, int], tuple[int, int]] = {}
        for j, leaf in enumerate(self.leaves, start=1):
            for i, spine in enumerate(self.spines, start=1):
                self.wire((leaf, i), (spine, j))
        self.now = 100.0
        self.outputs: list = []  # packet-outs that left towards hosts
        self.supers: list[int] = []  # super-spines (three tiers)
        self.host_ports: dict[int, list[int]] = {}  # leaf -> host ports, when not the rule

    @property
    def switches(self) -> list[int]:
        return self.spines + self.leaves + self.supers

    def wire(self, a: tuple[int, int], b: tuple[int, int]) -> None:
        self.wires[a] = b
        self.wires[b] = a

    def unwire(self, a: tuple[int, int]) -> None:
        b = self.wires.pop(a)
        del self.wires[b]

    def ports(self, dpid: int) -> list[Port]:
        if self.host_ports:  # (wired by three_tier or planes)
            wired = [p for d, p in self.wires if d == dpid]
            return [Port(p, f"p{p}") for p in sorted(wired + self.host_ports.get(dpid, []))]
        n = len(self.leaves) if dpid in self.spines else len(self.spines) + self.hosts_per_leaf
        return [Port(p, f"p{p}") for p in range(1, n + 1)]

    def host_port(self, leaf: int, host_index: int) -> int:
        """Port of the ``host_index``-th host (from 1) of ``leaf``."""
        if leaf in self.host_ports:
            return self.host_ports[leaf][host_index - 1]
        return len(self.spines) + host_index

    def deliver(self, eff: Effects) -> None:
        """Carry packet-outs across wires (LLDP), recursively; the rest is recorded."""
        pending = list(eff.packet_outs)
        while pending:
            po = pending.pop(0)
            for port in po.ports:
                peer = self.wires.get((po.dpid, port))
                if peer is None:
                    self.outputs.append((po.dpid, port, po.data))
                    continue
                if po.data[12:14] == b"\x88\xcc":
                    pending += self.core.packet_in(peer[0], peer[1], po.data, self.now).packet_outs

    def connect_all(self) -> None:
        for dpid in self.switches:
            self.deliver(self.core.switch_connected(dpid, self.ports(dpid), self.now))
            self.deliver(self.core.discovery.probe(dpid, self.now))
        self.advance(self.core.settings.settle_time + 0.1)

    def advance(self, seconds: float) -> None:
        self.now += seconds
        self.deliver(self.core.tick(self.now))

    def maintain(self, action: str, dpid: int, port: int = 0) -> tuple[Effects, str]:
        """An operator's drain or undrain as fabricd applies it: the change computed and
        checked (``maintenance_change``), then the drain set put in force."""
        drains, message = self.core.maintenance_change(action, dpid, port)
        return self.core.set_drains(drains), message


def three_tier(pods: int = 2, leaves: int = 2, spines: int = 2, supers: int = 2,
               hosts_per_leaf: int = 2, settings: CoreSettings | None = None) -> FakeFabric:
    """A three-tier Clos, wired and numbered as the fleet's (and Mininet's) are
    (:func:`tests.fakes.layout.three_tier`): ``pods`` pods of ``leaves`` leaves and
    ``spines`` spines under ``spines`` spine planes of ``supers`` super-spines."""
    return from_layout(layout.three_tier(pods, spines, leaves, supers, hosts_per_leaf),
                       hosts_per_leaf, settings)


def from_layout(lay: layout.Layout, hosts_per_leaf: int,
                settings: CoreSettings | None = None) -> FakeFabric:
    """A fake fabric wired as ``lay``."""
    fab = FakeFabric(0, 0, hosts_per_leaf, settings)
    fab.spines, fab.leaves, fab.supers = list(lay.spines), list(lay.leaves), list(lay.supers)
    fab.host_ports = {d: list(p) for d, p in lay.host_ports.items()}
    for a, b in lay.cables:
        fab.wire(a, b)
    return fab


def planes(n: int = 2, spines: int = 2, leaves: int = 2, hosts_per_leaf: int = 1,
           settings: CoreSettings | None = None) -> FakeFabric:
    """``n`` disconnected spine-leaf fabrics under one controller, numbered on: plane q
    has spines 1000+q*spines+i and leaves 2000+q*leaves+j, wired as FakeFabric wires one."""
    fab = FakeFabric(0, 0, hosts_per_leaf, settings)
    for q in range(n):
        sp = [SPINE0 + q * spines + i for i in range(1, spines + 1)]
        lv = [LEAF0 + q * leaves + j for j in range(1, leaves + 1)]
        fab.spines += sp
        fab.leaves += lv
        for j, leaf in enumerate(lv, start=1):
            fab.host_ports[leaf] = list(range(spines + 1, spines + hosts_per_leaf + 1))
            for i, spine in enumerate(sp, start=1):
                fab.wire((leaf, i), (spine, j))
    return fab


# --- frames a host sends ---------------------------------------------------------------
def arp_request(src, target_ip):
    arp = Arp(ARP_REQUEST, src[0], src[1], "00:00:00:00:00:00", target_ip)
    return build_arp_frame("ff:ff:ff:ff:ff:ff", src[0], arp)


def arp_reply(src, dst):
    return build_arp_frame(dst[0], src[0], Arp(ARP_REPLY, src[0], src[1], dst[0], dst[1]))


def learn(fab, leaf, port, host):
    return fab.core.packet_in(leaf, port, arp_request(host, "10.0.0.250"), fab.now)


def ip_frame(src: tuple[str, str], dst: tuple[str, str], sport: int, dport: int,
             proto: int = 6, dscp: int = 0) -> bytes:
    """An Ethernet/IPv4 TCP or UDP frame between two (mac, ip) hosts (header only)."""
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, dscp << 2, 40, 0, 0, 64, proto, 0,
                     bytes(int(x) for x in src[1].split(".")),
                     bytes(int(x) for x in dst[1].split(".")))
    l4 = struct.pack("!HH", sport, dport) + b"\0" * 16
    return build_ethernet(dst[0], src[0], C.ETH_TYPE_IP, ip + l4)
