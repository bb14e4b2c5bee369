"""Desired flow and group entries of each switch, from an immutable view of the fabric.

Pipeline (see ``constants``): table 0 punts LLDP and ARP to the controller, and at a
leaf's host ports lets IPv4 on only from a MAC and address bound there (the source
guard: anything else goes to the controller, through the port's meter); table 1 marks
QoS classes at host ports; table 2 forwards on the destination MAC. On a leaf, a local
host is an output port; a host behind another leaf is its leaf's route id, written into
the metadata, and table 3 maps each route id to a ``select`` group over the uplinks to
the spines that reach that leaf (ECMP, per-flow hash; leaves reached through the same
spines share one group, as IP fabrics share a next-hop group between prefixes; with TE,
table 4 may pin the flow instead). On a spine, a host is a group over the spine's links
to the host's leaf. Broadcast and unknown traffic from
hosts goes to the controller, which answers ARP itself and floods only out of edge
ports: the Clos loops never see a flood.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property, lru_cache

from controller.core import constants as C
from controller.core.fabric.qos import QosPolicy, marking_rules, queue_rules
from controller.core.model.roles import LEAF, SPINE
from controller.core.southbound.openflow import (
    Bucket,
    FlowRule,
    GroupRule,
    MeterRule,
    SwitchDesired,
    apply_actions,
    make_match,
    uses_groups,
)


@dataclass(frozen=True)
class HostLocation:
    mac: str
    ip: str | None
    dpid: int
    port: int


@dataclass(frozen=True)
class PuntLimits:
    """Packets per second the switch lets through to the controller (its meters)."""

    host_pps: int = 100  # per edge port: ARP, broadcast, unknown destinations
    host_burst: int = 200
    te_pps: int = 200  # per edge port: TE's new-flow copies
    lldp_pps: int = 1000  # per switch: discovery, apart from everything hosts send

    @property
    def control_pps(self) -> int:
        """Shared by punts from ports that are not (yet) known edge ports."""
        return 5 * self.host_pps


@dataclass(frozen=True)
class FabricView:
    """What forwarding needs to know, frozen at one instant."""

    roles: Mapping[int, str]
    # dpid -> ((local port, peer dpid, peer port), ...) over usable cables
    adjacency: Mapping[int, tuple[tuple[int, int, int], ...]]
    hosts: tuple[HostLocation, ...]
    group_ids: Mapping[int, int]  # leaf dpid -> id of the group that reaches it
    connected: frozenset[int] = frozenset()  # switches with a live OpenFlow session
    edge_ports: Mapping[int, tuple[int, ...]] = field(default_factory=dict)  # leaf -> ports
    qos: QosPolicy | None = None  # None: no marking (--no-qos)
    # maintenance: leaves stop sending over these; spines keep forwarding what still
    # arrives, so nothing in flight is lost
    drained_ends: frozenset[tuple[int, int]] = frozenset()
    drained_switches: frozenset[int] = frozenset()
    te: bool = False  # traffic engineering: leaves send remote traffic through table 4
    punt: PuntLimits = PuntLimits()
    # leaf -> its settled host ports, where the source guard applies (empty: off)
    guarded: Mapping[int, tuple[int, ...]] = field(default_factory=dict)

    def ports_towards(self, dpid: int, peer: int) -> list[int]:
        return list(self._towards.get((dpid, peer), ()))

    @cached_property
    def _towards(self) -> dict[tuple[int, int], tuple[int, ...]]:
        """(switch, neighbour) -> the switch's ports to it, sorted (built once per view)."""
        out: dict[tuple[int, int], list[int]] = {}
        for dpid, adj in self.adjacency.items():
            for lp, pd, _ in adj:
                out.setdefault((dpid, pd), []).append(lp)
        return {k: tuple(sorted(v)) for k, v in out.items()}

    @cached_property
    def reached_by(self) -> dict[int, tuple[int, ...]]:
        """switch -> the switches with a link to it, sorted (built once per view)."""
        return {d: tuple(sorted({pd for _, pd, _ in adj})) for d, adj in self.adjacency.items()}

    def neighbours(self, dpid: int, role: str) -> set[int]:
        return {pd for _, pd, _ in self.adjacency.get(dpid, ()) if self.roles.get(pd) == role}


def assign_group_ids(leaves: list[int]) -> dict[int, int]:
    """Stable route ids per leaf (the id of the spines' groups towards it, and of its
    routes at the other leaves): the dpid below ``SHARED_GROUP_BASE``, probed on a clash.

    Derived from the dpid alone (not from discovery order) so that a restarted
    controller arrives at the ids the switches already hold.
    """
    ids: dict[int, int] = {}
    used: set[int] = set()
    for leaf in sorted(leaves):
        gid = (leaf % C.SHARED_GROUP_BASE) or 1
        while gid in used:
            gid = (gid % (C.SHARED_GROUP_BASE - 1)) + 1
        ids[leaf] = gid
        used.add(gid)
    return ids


def to_controller(meter: int, max_len: int = C.OFPCML_NO_BUFFER) -> tuple:
    """The action that sends a packet to the controller through ``meter``."""
    return ("meter_controller", max_len, meter)


def lldp_rule() -> FlowRule:
    """The one entry a switch gets as soon as it connects, so discovery can start."""
    return FlowRule(
        C.TABLE_INGRESS,
        C.PRIO_LLDP,
        make_match(eth_type=C.ETH_TYPE_LLDP),
        apply_actions(to_controller(C.METER_LLDP)),
        C.make_cookie(C.KIND_CONTROL),
    )


def lldp_meters(limits: PuntLimits) -> list[MeterRule]:
    return [MeterRule(C.METER_LLDP, limits.lldp_pps, limits.lldp_pps)]


def punt_meters(limits: PuntLimits, edge_ports: tuple[int, ...], te: bool) -> list[MeterRule]:
    """Every meter a switch needs: LLDP, the shared one, and per edge port."""
    meters = lldp_meters(limits) + [
        MeterRule(C.METER_CONTROL, limits.control_pps, 2 * limits.control_pps)]
    for p in edge_ports:
        if C.host_meter(p) != C.METER_CONTROL:
            meters.append(MeterRule(C.host_meter(p), limits.host_pps, limits.host_burst))
        if te and C.te_meter(p) != C.METER_CONTROL:
            meters.append(MeterRule(C.te_meter(p), limits.te_pps, limits.te_pps))
    return meters


def control_rules(role: str, edge_ports: tuple[int, ...] = ()) -> list[FlowRule]:
    """Entries every switch holds regardless of hosts: punts and table plumbing. Host
    ports punt through their own meter; every other port through the shared one."""
    cookie = C.make_cookie(C.KIND_CONTROL)
    shared = apply_actions(to_controller(C.METER_CONTROL))
    rules = [
        lldp_rule(),
        FlowRule(C.TABLE_INGRESS, C.PRIO_ARP, make_match(eth_type=C.ETH_TYPE_ARP), shared,
                 cookie),
        FlowRule(C.TABLE_INGRESS, C.PRIO_INGRESS_DEFAULT, make_match(),
                 (("goto", C.TABLE_CLASSIFY),), cookie),
        FlowRule(C.TABLE_CLASSIFY, C.PRIO_CLASSIFY_DEFAULT, make_match(),
                 (("goto", C.TABLE_FORWARD),), cookie),
    ]
    multicast = (C.MULTICAST_BIT_MAC, C.MULTICAST_BIT_MAC)
    if role == LEAF:
        rules += [
            FlowRule(C.TABLE_FORWARD, C.PRIO_MULTICAST, make_match(eth_dst=multicast),
                     shared, cookie),
            FlowRule(C.TABLE_FORWARD, C.PRIO_MISS, make_match(), shared, cookie),
        ]
        for p in edge_ports:
            own = apply_actions(to_controller(C.host_meter(p)))
            rules += [
                FlowRule(C.TABLE_INGRESS, C.PRIO_ARP + 1,
                         make_match(in_port=p, eth_type=C.ETH_TYPE_ARP), own, cookie),
                FlowRule(C.TABLE_FORWARD, C.PRIO_MULTICAST + 1,
                         make_match(in_port=p, eth_dst=multicast), own, cookie),
                FlowRule(C.TABLE_FORWARD, C.PRIO_MISS + 1, make_match(in_port=p), own,
                         cookie),
            ]
    else:
        # A spine never floods and never learns hosts. A miss here is a packet that
        # overtook the entries for its (new) destination: the controller delivers it.
        rules += [
            FlowRule(C.TABLE_FORWARD, C.PRIO_MULTICAST, make_match(eth_dst=multicast), (),
                     cookie),
            FlowRule(C.TABLE_FORWARD, C.PRIO_MISS, make_match(), shared, cookie),
        ]
    return rules


def guard_rules(view: FabricView, leaf: int) -> list[FlowRule]:
    """The source guard of a leaf's settled host ports: IPv4 goes on only from a MAC and
    address bound at the port it came in on (:func:`guard_passes`) and from 0.0.0.0
    (DHCP); any other IPv4 goes
    to the controller through the port's own meter (a host that speaks before it ARPs
    is learnt from it; a forged source is dropped there). ARP is punted before this."""
    ports = view.guarded.get(leaf, ())
    if not ports:
        return []
    cookie = C.make_cookie(C.KIND_GUARD)
    on = (("goto", C.TABLE_CLASSIFY),)
    rules = []
    for p in ports:
        rules += [
            FlowRule(C.TABLE_INGRESS, C.PRIO_GUARD,
                     make_match(in_port=p, eth_type=C.ETH_TYPE_IP),
                     apply_actions(to_controller(C.host_meter(p))), cookie),
            FlowRule(C.TABLE_INGRESS, C.PRIO_GUARD_PASS,
                     make_match(in_port=p, eth_type=C.ETH_TYPE_IP, ipv4_src="0.0.0.0"),
                     on, cookie),
        ]
    return rules


def guard_passes(view: FabricView, leaf: int) -> list[FlowRule]:
    """What the source guard lets on at once: IPv4 from each host bound at one of the
    leaf's guarded ports, with its MAC and address."""
    guarded = set(view.guarded.get(leaf, ()))
    if not guarded:
        return []
    cookie = C.make_cookie(C.KIND_GUARD)
    on = (("goto", C.TABLE_CLASSIFY),)
    return [FlowRule(C.TABLE_INGRESS, C.PRIO_GUARD_PASS,
                     make_match(in_port=h.port, eth_type=C.ETH_TYPE_IP, eth_src=h.mac,
                                ipv4_src=h.ip), on, cookie)
            for h in view.hosts if h.dpid == leaf and h.port in guarded and h.ip]


def leaf_ecmp(view: FabricView, leaf: int) -> tuple[list[GroupRule], dict[int, int]]:
    """A leaf's ECMP: its select groups, one per set of spines that some other leaf is
    reached through (shared by every leaf reached through the same spines: one or a few,
    not one per other leaf), over the uplinks to those spines; and the group for each
    other leaf (its route id -> group id).

    A spine that lost its controller session is used only when no connected spine
    reaches the destination: it may be dead, and nobody can tell until it is back.
    Drained spines and links are used only when nothing else is left. Those are
    choices of buckets: a group is named after the spines that have links to its
    destinations (and those whose links to them are drained), so that a spine losing
    its session, or a drain of the leaf's own uplinks, changes a group in place rather
    than the route of every leaf.
    """
    spines = sorted(view.neighbours(leaf, SPINE))
    drained = view.drained_ends
    towards = view._towards  # (built once per view; read here for every destination)
    uplinks = {s: towards.get((leaf, s), ()) for s in spines}
    # the uplinks of each spine that are in service, but for the spine's own link to a
    # destination (known per destination below): the same for every destination
    own = {s: () if s in view.drained_switches else
           tuple(p for p in uplinks[s] if (leaf, p) not in drained) for s in spines}

    def key(dest: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """(the spines with links to ``dest``, those whose links to it are drained)"""
        via = tuple(s for s in spines if towards.get((s, dest)))
        if not drained:
            return (via, ())
        return (via, tuple(s for s in via if all((s, p) in drained
                                                 for p in towards.get((s, dest), ()))))

    def buckets(key: tuple[tuple[int, ...], tuple[int, ...]]) -> tuple[Bucket, ...]:
        via, off = key
        usable = tuple(s for s in via if own[s] and s not in off)
        live = tuple(s for s in usable if s in view.connected)
        if live or usable:
            ports = [p for s in live or usable for p in own[s]]
        else:  # only drained or silent paths remain: better them than none
            ports = [p for s in tuple(s for s in via if s in view.connected) or via
                     for p in uplinks[s]]
        return tuple(Bucket((("output", p),), 1, p) for p in ports)

    key_of: dict[int, tuple[tuple[int, ...], tuple[int, ...]]] = {}  # route id -> key
    reached_by = view.reached_by
    # (without drained links a destination's key depends only on the spines that reach
    # it, which most destinations share: worked out once per set of them)
    by_reach: dict[tuple[int, ...], tuple[tuple[int, ...], tuple[int, ...]]] = {}
    for dest, rid in view.group_ids.items():
        if dest == leaf:
            continue
        if drained:
            key_of[rid] = key(dest)
            continue
        reach = reached_by.get(dest, ())
        k = by_reach.get(reach)
        if k is None:
            k = by_reach[reach] = key(dest)
        key_of[rid] = k
    gid_of = shared_group_ids(set(key_of.values()))
    groups = [GroupRule(gid, "select", buckets(key))
              for key, gid in sorted(gid_of.items(), key=lambda kv: kv[1])]
    return groups, {rid: gid_of[key] for rid, key in key_of.items()}


def shared_group_ids(keys: set[tuple[tuple[int, ...], tuple[int, ...]]]) -> dict:
    """Stable ids for a leaf's shared ECMP groups: from their keys (see
    :func:`leaf_ecmp`), so that a restarted controller, or another instance of a
    cluster, arrives at the ids the switch holds; probed on a clash, in key order."""
    ids: dict = {}
    used: set[int] = set()
    span = C.FF_GROUP_BASE - C.SHARED_GROUP_BASE
    for key in sorted(keys):
        slot = zlib.crc32(repr(key).encode()) % span
        while C.SHARED_GROUP_BASE + slot in used:
            slot = (slot + 1) % span
        ids[key] = C.SHARED_GROUP_BASE + slot
        used.add(ids[key])
    return ids


def route_rules(routes: Mapping[int, int], te_leaf: bool) -> list[FlowRule]:
    """A leaf's route table: the route id of each other leaf (written into the metadata
    by the host entries of the hosts behind it) -> its ECMP group; on a TE leaf into the
    action set, then the TE table, where a pin may replace it."""
    return [_route_entry(rid, gid, te_leaf) for rid, gid in sorted(routes.items())]


@lru_cache(maxsize=1 << 16)
def _route_entry(rid: int, gid: int, te_leaf: bool) -> FlowRule:
    """One route entry (the same object for every leaf that holds it: leaves with the
    same spines hold the same routes)."""
    action = (("write", (("group", gid),)), ("goto", C.TABLE_TE)) if te_leaf else \
        apply_actions(("group", gid))
    return FlowRule(C.TABLE_ROUTE, C.PRIO_ROUTE, make_match(metadata=rid), action,
                    C.make_cookie(C.KIND_ROUTE, rid))


def group_towards(desired: SwitchDesired, rid: int) -> GroupRule | None:
    """The ECMP group a switch holding ``desired`` sends traffic for the leaf with route
    id ``rid`` through: on a leaf the group of its route entry, on a spine its group of
    that id (None: none)."""
    route = desired.flows.get((C.TABLE_ROUTE, C.PRIO_ROUTE, make_match(metadata=rid)))
    if route is None:
        return desired.groups.get(rid)
    gids = uses_groups(route)
    return desired.groups.get(min(gids)) if gids else None


def spine_groups(view: FabricView, spine: int) -> list[GroupRule]:
    """Groups of a spine: one per leaf, over the spine's links to that leaf (its id is
    the leaf's route id)."""
    groups = []
    for dest, gid in sorted(view.group_ids.items()):
        ports = view.ports_towards(spine, dest)
        buckets = tuple(Bucket((("output", p),), 1, p) for p in ports)
        groups.append(GroupRule(gid, "select", buckets))
    return groups


def uplinks(view: FabricView, leaf: int) -> list[tuple[int, int]]:
    """(port, spine) of every uplink of a leaf, in service first."""
    ups = [(lp, pd) for lp, pd, _ in view.adjacency.get(leaf, ())
           if view.roles.get(pd) == SPINE]
    return sorted(ups, key=lambda u: ((leaf, u[0]) in view.drained_ends
                                      or u[1] in view.drained_switches, u))


def uplink_groups(view: FabricView, leaf: int) -> list[GroupRule]:
    """One fast-failover group per uplink, which TE pins output through: the uplink
    itself while it is up, else the next live uplink (until the controller re-places
    the flow, its packets keep moving)."""
    ups = uplinks(view, leaf)
    groups = []
    for port, _ in sorted(ups):
        order = [port] + [p for p, _ in ups if p != port]
        groups.append(GroupRule(C.FF_GROUP_BASE + port, "ff",
                                tuple(Bucket((("output", p),), 1, p) for p in order)))
    return groups


def te_rules(edge_ports: tuple[int, ...]) -> list[FlowRule]:
    """Table 2 of a leaf with TE: TCP and UDP from a host port that no pin holds are
    copied (header only, through the port's own meter) to the controller, which places
    the flow; everything goes on by its ECMP group."""
    cookie = C.make_cookie(C.KIND_TE)
    rules = [FlowRule(C.TABLE_TE, C.PRIO_TE_MISS, make_match(), (), cookie)]
    for p in edge_ports:
        copy = apply_actions(to_controller(C.te_meter(p), C.TRACK_MAX_LEN))
        rules += [
            FlowRule(C.TABLE_TE, C.PRIO_TRACK,
                     make_match(in_port=p, eth_type=C.ETH_TYPE_IP, ip_proto=proto), copy,
                     cookie)
            for proto in (6, 17)
        ]
    return rules


def nocopy_rule(match) -> FlowRule:
    """A flow TE declined to place (rate limit, table full, fabric unsettled) stays on
    ECMP and stops being copied: the switch expires this entry by itself."""
    return FlowRule(C.TABLE_TE, C.PRIO_NOCOPY, match, (), C.make_cookie(C.KIND_NOCOPY))


def desired_state(view: FabricView, dpid: int) -> SwitchDesired:
    """Every flow and group aifabric wants on switch ``dpid`` (TE pins aside)."""
    return with_hosts(switch_base(view, dpid), host_rules(view, dpid))


def with_hosts(base: SwitchDesired, hosts: list[FlowRule]) -> SwitchDesired:
    """``base`` with the host entries added."""
    flows = dict(base.flows)
    for rule in hosts:
        have = flows.setdefault(rule.key, rule)
        if have is not rule and have != rule:
            raise ValueError(f"two different rules for one match: {rule.key}")
    return SwitchDesired(flows, base.groups, base.meters)


def switch_base(view: FabricView, dpid: int) -> SwitchDesired:
    """What switch ``dpid`` holds whatever hosts there are: its control, guard, marking,
    TE and queue entries, its groups and meters. Hosts come and go far more often than
    links; this part is kept while only they change."""
    role = view.roles.get(dpid, LEAF)
    edge = tuple(view.edge_ports.get(dpid, ())) if role == LEAF else ()
    flows = control_rules(role, edge)
    te_leaf = view.te and role == LEAF
    meters = punt_meters(view.punt, edge, te_leaf)
    if role == LEAF:
        groups, routes = leaf_ecmp(view, dpid)
        flows += route_rules(routes, te_leaf)
        flows += guard_rules(view, dpid)
        if view.qos is not None:
            flows += marking_rules(view.qos, list(edge))
        if te_leaf:
            groups += uplink_groups(view, dpid)
            flows += te_rules(edge)
    else:
        groups = spine_groups(view, dpid)
    if view.qos is not None:
        flows += queue_rules(view.qos)
    return SwitchDesired.build(flows, groups, meters)


def host_rules(view: FabricView, dpid: int) -> list[FlowRule]:
    """A switch's entries for hosts: on a leaf, the source guard's pass for each of its
    own; towards every host, out of the host's port on its own leaf, else on a leaf by
    the route of the host's leaf (table 3), on a spine by the group towards that leaf."""
    role = view.roles.get(dpid, LEAF)
    rules = guard_passes(view, dpid) if role == LEAF else []
    for host in view.hosts:
        rid = view.group_ids.get(host.dpid)
        if rid is None:
            continue  # its switch is not (or no longer) a connected leaf
        if role != LEAF:
            rules.append(_host_entry(host.mac, host.ip, ("group", rid)))
        elif host.dpid == dpid:
            rules.append(_host_entry(host.mac, host.ip, ("output", host.port)))
        else:
            rules.append(_host_entry(host.mac, host.ip, ("route", rid)))
    return rules


@lru_cache(maxsize=1 << 16)
def _host_entry(mac: str, ip: str, action: tuple) -> FlowRule:
    """One host entry (the same object for every switch that holds it: a fabric of
    hundreds of leaves holds each host's entry hundreds of times, rebuilt when a host
    comes or goes). ``("route", id)``: on to the route table with the leaf's route id."""
    cookie = C.make_cookie(C.KIND_HOST, C.ip_to_cookie_low(ip))
    if action[0] == "route":
        return FlowRule(C.TABLE_FORWARD, C.PRIO_HOST, make_match(eth_dst=mac),
                        (("write_metadata", action[1], C.ROUTE_MASK),
                         ("goto", C.TABLE_ROUTE)), cookie)
    return FlowRule(C.TABLE_FORWARD, C.PRIO_HOST, make_match(eth_dst=mac),
                    apply_actions(action), cookie)
