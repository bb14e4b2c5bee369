"""A fake data plane for unit tests: switches that hold what the core's plans install
(flow tables, select / fast-failover / all groups, meters) and a tracer that follows a
packet from a host through tables 0-2 and the groups, hop by hop, to where it leaves
the fabric, with the queue and DSCP it carries on each link.

The core is synced exactly as the fabric app syncs a real switch, through the core's
``SwitchSync``: each switch is read back when it connects, then sent only the plans
that bring it to the desired state. OpenFlow 1.3 semantics as far as the core uses
them: highest priority first, apply-actions at once (outputs included), write-actions
into the action set, which runs when the pipeline ends; set_queue holds for later
outputs; a select group hashes the 5-tuple over its live buckets (seeded per switch, as
switch ASICs do: else every tier would choose alike); a fast-failover group
takes its first live bucket.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from typing import Any

from controller.core.southbound.openflow import FlowRule, GroupRule, SwitchMirror, SyncPlan
from controller.core.southbound.sync import SwitchSync
from tests.unit.fakefabric import FakeFabric

CONTROLLER = "controller"


@dataclass
class Switch(SwitchMirror):
    """What one fake switch holds: its entries (a plan is applied the way the
    controller's mirror applies it), and which of its ports are down."""

    dpid: int = 0
    down: set[int] = field(default_factory=set)  # ports whose link is down

    def lookup(self, table: int, pkt: dict[str, Any]) -> FlowRule | None:
        best = None
        for rule in self.flows.values():
            if rule.table == table and _matches(rule.match, pkt) and (
                    best is None or rule.priority > best.priority):
                best = rule
        return best


def _mac(value: str) -> int:
    return int(value.replace(":", ""), 16)


def _matches(match: tuple, pkt: dict[str, Any]) -> bool:
    for name, want in match:
        have = pkt.get(name)
        if have is None:
            return False
        if isinstance(want, tuple):  # (value, mask): MAC addresses here
            value, mask = want
            if _mac(have) & _mac(mask) != _mac(value) & _mac(mask):
                return False
        elif have != want:
            return False
    return True


@dataclass(frozen=True)
class Hop:
    """The packet leaving switch ``dpid`` by ``port`` (or to the controller)."""

    dpid: int
    in_port: int
    out_port: int | str
    queue: int
    dscp: int | None


@dataclass
class Trace:
    hops: list[Hop]
    delivered: list[tuple[int, int]]  # (leaf, host port) the packet came out of
    to_controller: list[int]  # switches that sent it (or a copy) to the controller

    @property
    def spines(self) -> list[int]:
        """Switches crossed between the first and the last (copies to the controller
        aside)."""
        return [h.dpid for h in self.hops if h.out_port != CONTROLLER][1:-1]

    def queues(self) -> list[int]:
        return [h.queue for h in self.hops if h.out_port != CONTROLLER]


class DataPlane:
    """Fake switches for every switch of a ``FakeFabric``, synced from its core."""

    def __init__(self, fab: FakeFabric, hashing: str = "asic") -> None:
        """Fake switches for ``fab``'s (already connected) switches, read back empty.
        ``hashing``: how select groups pick a bucket, "asic" (seeded per switch) or
        "ovs" (Open vSwitch's dp_hash: one hash for every switch, leaving UDP ports
        out; bucket = slot mod buckets, slot = the hash's low bits)."""
        self.fab = fab
        self.hashing = hashing
        self.switches = {d: Switch(dpid=d) for d in fab.switches}
        self.sync_engine = SwitchSync(fab.core)
        for dpid in self.switches:
            self.read_back(dpid)

    def read_back(self, dpid: int) -> None:
        """A session for the switch, read back as the fabric app reads a switch, then
        probed (as the app probes it once it holds its LLDP entry)."""
        sw, fab = self.switches[dpid], self.fab
        self.sync_engine.connect(dpid, sw, fab.now)
        got = None
        for part, items in (("flows", list(sw.flows.values())),
                            ("groups", list(sw.groups.values())),
                            ("meters", list(sw.meters.values()))):
            got = self.sync_engine.read(dpid, sw, part, items, last=True)
        assert got is not None
        fab.core.traffic.recover_pins(dpid, got.flows)
        fab.core.recover_layout(dpid, got.flows, got.groups)
        fab.deliver(fab.core.edge.recover_hosts(dpid, got.flows, fab.now))
        fab.deliver(fab.core.discovery.probe(dpid, fab.now))

    def sync(self) -> dict[int, SyncPlan]:
        """Bring every switch to the core's desired state, as the fabric app does."""
        plans = dict(self.sync_engine.plans(self.fab.now))
        for dpid, plan in plans.items():
            self.switches[dpid].apply(plan)
        return plans

    def controller_restarted(self, fab: FakeFabric, present: list[int] | None = None) -> None:
        """A fresh controller (``fab``'s core) to which the switches in ``present`` (all
        by default) connect: each is read back, as the fabric app does, then probed."""
        self.fab = fab
        self.sync_engine = SwitchSync(fab.core)
        for dpid in self.switches if present is None else present:
            fab.deliver(fab.core.switch_connected(dpid, fab.ports(dpid), fab.now))
            self.read_back(dpid)

    def restart_changes_nothing(self, again: FakeFabric, hosts: dict[int, tuple]) -> None:
        """A controller restart (``again``'s core, every switch back at once): a few
        rounds of syncs delete and change nothing, every switch settles, the tables
        end as they were, and sample pairs take the paths they took."""
        tables = {d: (dict(s.flows), dict(s.groups), dict(s.meters))
                  for d, s in self.switches.items()}
        pairs = [(a, b) for a in list(hosts)[:4] for b in list(hosts)[-4:] if a != b]
        paths = {(a, b): self.send(hosts, a, b).hops for a, b in pairs}
        again.now = self.fab.now + 10
        self.controller_restarted(again)
        for _ in range(3):
            again.advance(0.5)
            for plan in self.sync().values():
                assert plan.flow_dels == [] and plan.group_dels == [] and plan.group_mods == []
        # (those syncs were of the complete state, which may delete, not additive ones)
        assert all(again.core.is_settled(d, again.now) for d in self.switches)
        assert {d: (dict(s.flows), dict(s.groups), dict(s.meters))
                for d, s in self.switches.items()} == tables
        assert {(a, b): self.send(hosts, a, b).hops for a, b in pairs} == paths

    def link_down(self, a: tuple[int, int]) -> None:
        """The cable at ``a`` fails: both ends see their port down (the switches'
        fast-failover reacts at once; the core hears of it as port status)."""
        b = self.fab.wires[a]
        for dpid, port in (a, b):
            self.switches[dpid].down.add(port)

    def send(self, hosts: dict[int, tuple], a: int, b: int, **kw) -> Trace:
        """Trace an IPv4 packet from host ``a`` to host ``b`` (``hosts`` as
        :func:`with_hosts` gives them; ``kw``: :func:`ip_packet`'s fields)."""
        src, dst = hosts[a], hosts[b]
        return self.trace(src[2], src[3], ip_packet(src[:2], dst[:2], **kw))

    def every_pair(self, hosts: dict[int, tuple]):
        """(a, b, trace) for every ordered pair of distinct hosts, each delivered to its
        destination's port."""
        for a in hosts:
            for b in hosts:
                if a != b:
                    t = self.send(hosts, a, b)
                    assert t.delivered == [hosts[b][2:]], (a, b, t.hops)
                    yield a, b, t

    def trace(self, leaf: int, port: int, pkt: dict[str, Any], ttl: int = 8) -> Trace:
        """Send ``pkt`` (header fields by OpenFlow name) into ``leaf`` at host ``port``."""
        out = Trace([], [], [])
        pending = [(leaf, port, dict(pkt, in_port=port), ttl)]
        while pending:
            dpid, in_port, p, left = pending.pop(0)
            if left == 0:
                raise AssertionError(f"loop: still forwarding after {ttl} hops: {out.hops}")
            for out_port, q in self._switch(self.switches[dpid], dict(p, in_port=in_port)):
                dscp = q.get("ip_dscp")
                out.hops.append(Hop(dpid, in_port, out_port, q.get("_queue", 0), dscp))
                if out_port == CONTROLLER:
                    out.to_controller.append(dpid)
                    continue
                if out_port in self.switches[dpid].down:
                    continue  # lost on a dead link
                peer = self.fab.wires.get((dpid, out_port))
                if peer is None:
                    out.delivered.append((dpid, out_port))
                else:
                    nxt = {k: v for k, v in q.items() if k != "_queue"}
                    pending.append((peer[0], peer[1], nxt, left - 1))
        return out

    # --- one switch's pipeline --------------------------------------------------------------
    def _switch(self, sw: Switch, pkt: dict[str, Any]) -> list[tuple[int | str, dict]]:
        emitted: list[tuple[int | str, dict]] = []
        action_set: dict[str, tuple] = {}
        table = 0
        pkt = {**pkt, "metadata": 0}  # (each switch's pipeline starts with none)
        while True:
            rule = sw.lookup(table, pkt)
            if rule is None:
                return emitted  # table miss: dropped (we install no miss-to-controller)
            goto = None
            for ins in rule.instructions:
                if ins[0] == "apply":
                    for action in ins[1]:
                        pkt = self._act(sw, action, pkt, emitted)
                elif ins[0] == "clear":
                    action_set.clear()
                elif ins[0] == "write":
                    for action in ins[1]:
                        action_set[action[0]] = action
                elif ins[0] == "write_metadata":
                    _, value, mask = ins
                    pkt = {**pkt, "metadata": (pkt["metadata"] & ~mask) | (value & mask)}
                elif ins[0] == "goto":
                    goto = ins[1]
            if goto is None:
                break
            table = goto
        # the action set: queue and fields first, then the group, else the output
        for kind in ("set_field", "set_queue"):
            if kind in action_set:
                pkt = self._act(sw, action_set[kind], pkt, emitted)
        if "group" in action_set:
            self._act(sw, action_set["group"], pkt, emitted)
        elif "output" in action_set:
            self._act(sw, action_set["output"], pkt, emitted)
        return emitted

    def _act(self, sw: Switch, action: tuple, pkt: dict, emitted: list) -> dict:
        kind = action[0]
        if kind == "output":
            emitted.append((action[1], dict(pkt)))
        elif kind in ("controller", "meter_controller"):
            emitted.append((CONTROLLER, dict(pkt)))
        elif kind == "set_field":
            pkt = dict(pkt, **{action[1]: action[2]})
        elif kind == "set_queue":
            pkt = dict(pkt, _queue=action[1])
        elif kind == "group":
            group = sw.groups.get(action[1])
            if group is None:
                raise AssertionError(f"switch {sw.dpid} sends to group {action[1]} it lacks")
            for bucket in self._buckets(sw, group, pkt):
                for a in bucket.actions:
                    self._act(sw, a, pkt, emitted)
        else:
            raise AssertionError(f"the fake data plane does not know action {action!r}")
        return pkt

    def _buckets(self, sw: Switch, group: GroupRule, pkt: dict) -> list:
        live = [b for b in group.buckets if b.watch_port is None or b.watch_port not in sw.down]
        if not live:
            return []
        if group.group_type == "all":
            return live
        if group.group_type == "ff":
            return live[:1]
        if self.hashing == "ovs":
            fields = ("ipv4_src", "ipv4_dst", "ip_proto", "tcp_src", "tcp_dst")
            h = zlib.crc32(repr(tuple(pkt.get(f) for f in fields)).encode())
            slots = max(16, 1 << (len(live) - 1).bit_length())
            return [live[(h & (slots - 1)) % len(live)]]
        fields = ("ipv4_src", "ipv4_dst", "ip_proto", "tcp_src", "tcp_dst", "udp_src",
                  "udp_dst", "eth_src", "eth_dst")
        key = repr((sw.dpid, *(pkt.get(f) for f in fields)))
        return [live[zlib.crc32(key.encode()) % len(live)]]


def with_hosts(fab: FakeFabric, per_leaf: int) -> tuple[DataPlane, dict[int, tuple]]:
    """``fab`` connected and discovered, with ``per_leaf`` hosts learnt on every leaf
    (host n: MAC 00:..:n, address 10.0.n>>8.n&255), synced into fake switches; host n ->
    (mac, ip, leaf, port)."""
    from tests.unit.fakefabric import learn

    fab.connect_all()
    hosts = {}
    for i, leaf in enumerate(fab.leaves):
        for j in range(per_leaf):
            n = i * per_leaf + j + 1
            port = fab.host_port(leaf, j + 1)
            learn(fab, leaf, port, host(n))
            hosts[n] = (*host(n), leaf, port)
    fab.advance(0.1)
    dp = DataPlane(fab)
    dp.sync()
    return dp, hosts


def host(n: int) -> tuple[str, str]:
    """(MAC, address) of host n."""
    return (f"00:00:00:00:{n >> 8:02x}:{n & 0xFF:02x}", f"10.0.{n >> 8}.{n & 0xFF}")


def ip_packet(src: tuple[str, str], dst: tuple[str, str], proto: int = 6, sport: int = 40000,
              dport: int = 5201, dscp: int = 0) -> dict[str, Any]:
    """Header fields of an IPv4 TCP/UDP packet between two (mac, ip) hosts."""
    l4 = "tcp" if proto == 6 else "udp"
    return {"eth_src": src[0], "eth_dst": dst[0], "eth_type": 0x0800, "ipv4_src": src[1],
            "ipv4_dst": dst[1], "ip_proto": proto, "ip_dscp": dscp, f"{l4}_src": sport,
            f"{l4}_dst": dport}


__all__ = ["DataPlane", "Trace", "Hop", "ip_packet", "CONTROLLER", "with_hosts", "host"]
