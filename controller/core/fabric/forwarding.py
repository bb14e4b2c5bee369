"""Desired flow and group entries of each switch, from an immutable view of the fabric.

Pipeline (see ``constants``): table 0 punts LLDP and ARP to the controller, and at a
leaf's host ports lets IPv4 on only from a MAC and address bound there (the source
guard: anything else goes to the controller, through the port's meter); table 1 marks
QoS classes at host ports; table 2 forwards on the destination MAC. On a leaf, a local
host is an output port; a host behind another leaf is its leaf's route id, written into
the metadata, and table 3 maps each route id to a ``select`` group over the uplinks to
the spines that reach that leaf (ECMP, per-flow hash; leaves reached through the same
spines share one group, as IP fabrics share a next-hop group between prefixes; with TE,
table 4 may pin the flow instead). On a spine or a super-spine, a host is the group
towards its leaf (:mod:`ecmp`). Broadcast and unknown traffic from
hosts goes to the controller, which answers ARP itself and floods only out of edge
ports: the Clos loops never see a flood.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache

from controller.core import constants as C
from controller.core.fabric.ecmp import (
    leaf_ecmp,
    route_rules,
    spine_groups,
    super_spine_groups,
    uplink_groups,
)
from controller.core.fabric.fabric_view import FabricView, HostLocation, PuntLimits
from controller.core.fabric.qos import marking_rules, queue_rules
from controller.core.model.roles import LEAF, SUPER_SPINE
from controller.core.southbound.openflow import (
    FlowRule,
    Match,
    MeterRule,
    SwitchDesired,
    apply_actions,
    make_match,
)


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
    elif role == SUPER_SPINE:
        groups = super_spine_groups(view, dpid)
    else:
        groups = spine_groups(view, dpid)
        if view.te:  # (with three tiers: TE pins between pods leave by these)
            groups += uplink_groups(view, dpid)
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
        rule = _towards_host(view, role, dpid, host)
        if rule is not None:
            rules.append(rule)
    return rules


def host_entries(view: FabricView, dpid: int, macs: Iterable[str]
                 ) -> tuple[dict[tuple[int, int, Match], FlowRule], list[tuple[int, int, Match]]]:
    """:func:`host_rules`' entries towards the hosts ``macs`` only (not the guard's
    passes: a leaf whose own hosts changed is planned whole), and the keys of all of
    them: an entry held at one of those keys and not wanted is to go."""
    role = view.roles.get(dpid, LEAF)
    wanted: dict[tuple[int, int, Match], FlowRule] = {}
    keys = []
    for mac in macs:
        keys.append((C.TABLE_FORWARD, C.PRIO_HOST, make_match(eth_dst=mac)))
        host = view.hosts_by_mac.get(mac)
        rule = None if host is None else _towards_host(view, role, dpid, host)
        if rule is not None:
            wanted[rule.key] = rule
    return wanted, keys


def _towards_host(view: FabricView, role: str, dpid: int, host: HostLocation
                  ) -> FlowRule | None:
    rid = view.group_ids.get(host.dpid)
    if rid is None:
        return None  # its switch is not (or no longer) a connected leaf
    if role != LEAF:
        return _host_entry(host.mac, host.ip, ("group", rid))
    if host.dpid == dpid:
        return _host_entry(host.mac, host.ip, ("output", host.port))
    return _host_entry(host.mac, host.ip, ("route", rid))


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
