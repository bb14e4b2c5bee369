"""ECMP at every tier: the route ids of the leaves, a leaf's shared select groups and
route table, a spine's and a super-spine's group towards each leaf, and the
fast-failover uplink groups TE pins send through.

Up-down only (never leaf -> spine -> leaf -> spine): a leaf spreads traffic for another
leaf over the spines that reach it; a spine sends it down its links to the leaf, or up
to the super-spines over the leaf's pod; a super-spine sends it down to the spines
with a link to the leaf. Every group's buckets watch their port, so a dead link is
skipped by the switch before the controller hears of it.
"""

from __future__ import annotations

import zlib
from collections import Counter
from collections.abc import Callable, Mapping
from functools import lru_cache

from controller.core import constants as C
from controller.core.fabric.fabric_view import FabricView
from controller.core.model.roles import LEAF, SPINE, SUPER_SPINE
from controller.core.southbound.openflow import (
    Bucket,
    FlowRule,
    GroupRule,
    SwitchDesired,
    apply_actions,
    make_match,
    uses_groups,
)


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
    three_tiers = bool(view.tiers_above[0])

    def key(dest: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """(the spines that reach ``dest``, those with no way on to it in service)"""
        reaching = view.reach(dest)[0]
        via = tuple(s for s in spines if s in reaching)
        if not view.draining:
            return (via, ())
        if not three_tiers:  # (a spine's way on is its links to dest)
            return (via, tuple(s for s in via if all((s, p) in drained
                                                     for p in towards.get((s, dest), ()))))
        return (via, tuple(s for s in via if not view.serves(s, dest) and not any(
            view.in_service(s, x) and view.serves(x, dest) for x in view.onward(s, dest)
            if x != dest)))

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

    # Every destination's key, worked out once per view for every leaf wired to the
    # same spines (all leaves of a healthy fabric: 1,000 leaves each asked it of 1,000
    # destinations); this leaf's own is left out below.
    memo = view.leaf_keys.get(tuple(spines))
    if memo is None:
        memo = view.leaf_keys[tuple(spines)] = _keys_of(view, key, bool(drained))
    key_of, counts = memo
    own_rid = view.group_ids.get(leaf)
    keys = set(counts)
    if own_rid is not None and counts[key_of[own_rid]] == 1:
        keys.discard(key_of[own_rid])
    gid_of = shared_group_ids(keys)
    groups = [GroupRule(gid, "select", buckets(key))
              for key, gid in sorted(gid_of.items(), key=lambda kv: kv[1])]
    return groups, {rid: gid_of[key] for rid, key in key_of.items() if rid != own_rid}


def _keys_of(view: FabricView, key: Callable[[int], tuple], drained: bool
             ) -> tuple[dict[int, tuple], Counter]:
    """route id -> the key of its leaf (see :func:`leaf_ecmp`), for every leaf, and
    how many have each. (A key depends only on the spines that reach the destination,
    which most destinations share, and with drained switches on those with a link to
    it (a pod's leaves share them): worked out once per set of them; with drained
    links, per destination.)"""
    key_of: dict[int, tuple] = {}
    memo: dict[tuple[int, ...], tuple] = {}
    for dest, rid in view.group_ids.items():
        if drained:
            key_of[rid] = key(dest)
            continue
        by = view.reached_by.get(dest, ()) if view.draining else view.reach(dest)[0]
        k = memo.get(by)
        if k is None:
            k = memo[by] = key(dest)
        key_of[rid] = k
    return key_of, Counter(key_of.values())


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
    """Groups of a spine: one per leaf (its id is the leaf's route id), over the
    spine's links to that leaf, or (a leaf of another pod) over its uplinks to the
    super-spines that reach it (:meth:`FabricView.next_ports`), each bucket repeated
    (:func:`_spread`). A spine sends what reaches it down its own links, drained or
    not: nothing in flight is lost."""
    groups = []
    memo: dict[tuple, tuple[Bucket, ...]] = {}  # (super-spines, what else counts) -> buckets
    repeat = _spread(view, spine)
    for dest, gid in sorted(view.group_ids.items()):
        ports = view.ports_towards(spine, dest)
        if ports:
            buckets = _buckets(ports)
        else:  # (first the super-spines whose ways down are in service: with drained
            # switches that depends on the spines with a link to dest, with drained
            # links on dest itself)
            up = view.onward(spine, dest)
            key = (up, dest if view.drained_ends else
                   view.reached_by.get(dest, ()) if view.draining else ())
            buckets = memo.get(key)
            if buckets is None:
                buckets = memo[key] = _buckets(view.next_ports(
                    spine, up, [x for x in up if view.serves(x, dest)]), repeat)
        groups.append(GroupRule(gid, "select", buckets))
    return groups


# Open vSwitch hashes every select group of every switch alike (dp_hash: the same
# symmetric L3/L4 hash, basis 0; a bucket per slot of the low 4-6 bits, in turn): a
# spine's choice among n super-spines would repeat the leaf's among its spines,
# taking the same bits (polarized: with 2 and 2, each spine uses one super-spine of
# its plane). Repeating each up-bucket as many times as the leaves' spines makes the
# spine's choice fall on the bits above the leaf's. Switch ASICs seed their hash per
# switch; to them the repeats are equal weights.
DP_HASH_SLOTS = 64  # (beyond that many buckets OVS hashes another way)


def _spread(view: FabricView, spine: int) -> int:
    """How many times a spine repeats each up-bucket: as many as the spines its leaves
    spread over (1 when that would make too many buckets for OVS's dp_hash, or when the
    operator turned repeats off)."""
    if not view.repeat_up:
        return 1
    ups = sum(len(view.ports_towards(spine, x)) for x in view.tiers_above[0].get(spine, ()))
    if not ups:
        return 1
    leaves = [d for d in view.reached_by.get(spine, ()) if view.roles.get(d) == LEAF]
    width = max((len(view.neighbours(d, SPINE)) for d in leaves), default=1)
    return width if width * ups <= DP_HASH_SLOTS else 1


def super_spine_groups(view: FabricView, dpid: int) -> list[GroupRule]:
    """Groups of a super-spine: one per leaf (its id is the leaf's route id), over its
    links to the spines with a link to that leaf (:meth:`FabricView.next_ports`)."""
    groups = []
    memo: dict[tuple, tuple[Bucket, ...]] = {}  # (spines, what else counts) -> buckets
    for dest, gid in sorted(view.group_ids.items()):
        down = view.down_to(dpid, dest)
        # (first the spines whose links to the leaf are in service: the same for the
        # same spines, but with drained links)
        key = (down, dest if view.drained_ends else ())
        buckets = memo.get(key)
        if buckets is None:
            buckets = memo[key] = _buckets(view.next_ports(
                dpid, down, [s for s in down if view.serves(s, dest)]))
        groups.append(GroupRule(gid, "select", buckets))
    return groups


def _buckets(ports, repeat: int = 1) -> tuple[Bucket, ...]:
    """A bucket per port (each ``repeat`` times, in a row), watching it."""
    return tuple(Bucket((("output", p),), 1, p) for p in ports for _ in range(repeat))


def uplinks(view: FabricView, dpid: int) -> list[tuple[int, int]]:
    """(port, switch above) of every uplink of a leaf (to spines) or a spine (to
    super-spines), in service first."""
    above = SPINE if view.roles.get(dpid) == LEAF else SUPER_SPINE
    ups = [(lp, pd) for lp, pd, _ in view.adjacency.get(dpid, ())
           if view.roles.get(pd) == above]
    return sorted(ups, key=lambda u: ((dpid, u[0]) in view.drained_ends
                                      or u[1] in view.drained_switches, u))


def uplink_groups(view: FabricView, dpid: int) -> list[GroupRule]:
    """One fast-failover group per uplink of a leaf or a spine, which TE pins output
    through: the uplink itself while it is up, else the next live uplink (until the
    controller re-places the flow, its packets keep moving)."""
    return list(_ff_groups(tuple(p for p, _ in uplinks(view, dpid))))


@lru_cache(maxsize=1024)
def _ff_groups(ports: tuple[int, ...]) -> tuple[GroupRule, ...]:
    """The fast-failover groups over uplink ``ports`` (in order of preference): made
    once for every switch wired alike (16 groups of 16 buckets each on every leaf of a
    16-spine fabric)."""
    groups = []
    for port in sorted(ports):
        order = [port] + [p for p in ports if p != port]
        groups.append(GroupRule(C.FF_GROUP_BASE + port, "ff",
                                tuple(Bucket((("output", p),), 1, p) for p in order)))
    return tuple(groups)
