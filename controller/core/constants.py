"""Named OpenFlow constants shared by the core and the apps: tables, priorities, cookies."""

from __future__ import annotations

# --- Tables -----------------------------------------------------------------------------
TABLE_INGRESS = 0  # control punts (LLDP, ARP); the source guard at host ports
TABLE_CLASSIFY = 1  # QoS: marking at host ports, DSCP -> queue (every switch)
TABLE_FORWARD = 2  # destination lookup: host MAC -> port, its leaf's route, or a group
TABLE_ROUTE = 3  # leaves: the route towards each other leaf -> a shared ECMP group
TABLE_TE = 4  # leaves, with TE: per-flow pins; new flows are copied to the controller

# --- Priorities (one place, so that the pipeline can be read at a glance) ---------------
PRIO_LLDP = 1000  # table 0: LLDP to the controller, on every port
PRIO_ARP = 900  # table 0: ARP to the controller (proxy ARP)
PRIO_GUARD_PASS = 800  # table 0: IPv4 from a host port whose MAC and address are bound there
PRIO_GUARD = 700  # table 0: any other IPv4 from a host port -> the controller (metered)
PRIO_INGRESS_DEFAULT = 0  # table 0: everything else goes on to classification
PRIO_QOS_CLASS = 500  # table 1: host-port classification (+0..3 by specificity)
PRIO_QOS_DEFAULT = 400  # table 1: unclassified IP from host ports -> DSCP 0
PRIO_QOS_QUEUE = 300  # table 1: DSCP -> set_queue, for the kernel datapath (every switch)
PRIO_CLASSIFY_DEFAULT = 0  # table 1: everything else goes on to forwarding
# (TE pins of flows between pods also sit in table 2 of their ingress spine, with the
# same priorities: ahead of the host entries)
PRIO_PIN_OPERATOR = 300  # table 4: flows pinned through the API (ports may be wildcards)
PRIO_JOB = 250  # table 4: a registered job's host pairs (every connection between two)
PRIO_PIN = 200  # table 4: flows placed by traffic engineering (exact 5-tuple)
PRIO_NOCOPY = 150  # table 4: a flow TE declined to place: ECMP, no more copies (expires)
PRIO_TRACK = 100  # table 4: TCP/UDP not pinned yet -> copy of the header to the controller
PRIO_TE_MISS = 0  # table 4: everything else keeps the ECMP group of table 3
PRIO_HOST = 100  # table 2: eth_dst == known host
PRIO_ROUTE = 100  # table 3: metadata == the destination leaf's route id
PRIO_MULTICAST = 10  # table 2: broadcast/multicast from hosts -> controller (flooded to edges)
PRIO_MISS = 0  # table 2: unknown unicast

# --- Cookies ------------------------------------------------------------------------------
# Top byte marks an entry as aifabric's; the next byte says which kind of entry it is.
# Host entries carry the host's IPv4 address in the low 32 bits, so that a restarted
# controller can recover its host table from what the switches hold.
DEFAULT_TOKEN_FILE = "~/.config/aifabric/api-token"  # where a local fabricd keeps its token
# Trailing metadata on every status the API server ends a call with (a refusal, or
# INTERNAL): fabricctl tells "the controller answered UNAVAILABLE" (etcd down, a write
# not in force yet) from "no controller answered".
ANSWERED_KEY = "aifabric-answered"

COOKIE_OWNER = 0xAF
COOKIE_OWNER_SHIFT = 56
COOKIE_OWNER_MASK = 0xFF << COOKIE_OWNER_SHIFT
COOKIE_KIND_SHIFT = 48
COOKIE_KIND_MASK = 0xFF << COOKIE_KIND_SHIFT
KIND_CONTROL = 0x01
KIND_HOST = 0x02
KIND_PIN = 0x03
KIND_QOS = 0x04
KIND_TE = 0x05  # the TE table's own plumbing (track and miss entries)
KIND_NOCOPY = 0x06  # short-lived entries for flows TE declined (not in the desired state)
KIND_JOB = 0x07  # a registered job's pair entries (TE table of the ingress leaf)
KIND_GUARD = 0x08  # the source guard at host ports (its punts come back with this cookie)
KIND_ROUTE = 0x09  # a leaf's route towards another leaf (low 32 bits: its route id)
PIN_KINDS = frozenset({KIND_PIN, KIND_JOB})  # TE's entries on a leaf (FabricCore.pins)

# --- Meters -------------------------------------------------------------------------------
# Every entry that sends packets to the controller does so through a meter (OVS's
# controller action with meter_id), so that a flood is dropped at the switch: one meter
# per edge port for host traffic, one per edge port for TE's new-flow copies, one for
# LLDP, one shared by every other punt. Ids above these ranges are not aifabric's.
METER_LLDP = 1
METER_CONTROL = 2
METER_HOST_BASE = 0x100  # + edge port number
METER_TE_BASE = 0x20000  # + edge port number
METER_MAX_PORT = 0xFFFF  # ports beyond share METER_CONTROL


def host_meter(port: int) -> int:
    return METER_HOST_BASE + port if port <= METER_MAX_PORT else METER_CONTROL


def te_meter(port: int) -> int:
    return METER_TE_BASE + port if port <= METER_MAX_PORT else METER_CONTROL


def is_our_meter(meter_id: int) -> bool:
    return meter_id in (METER_LLDP, METER_CONTROL) or (
        METER_HOST_BASE <= meter_id <= METER_HOST_BASE + METER_MAX_PORT) or (
        METER_TE_BASE <= meter_id <= METER_TE_BASE + METER_MAX_PORT)

# --- Groups -------------------------------------------------------------------------------
# Every leaf has a route id, below SHARED_GROUP_BASE (derived from its dpid): a spine's
# select group towards that leaf has it as its id, and a leaf's host entries for hosts
# behind it write it into the metadata, which the leaf's route table (table 3) maps to
# one of its ECMP select groups. Those are shared by every destination reached through
# the same spines (one or a few per leaf, not one per other leaf), with ids from
# SHARED_GROUP_BASE (derived from the set of spines); a leaf's fast-failover group for
# uplink port P is FF_GROUP_BASE + P.
SHARED_GROUP_BASE = 0x60000000
FF_GROUP_BASE = 0x70000000
ROUTE_MASK = 0xFFFFFFFF  # the metadata bits a route id takes
TRACK_MAX_LEN = 128  # bytes of a new flow's packet copied to the controller


def make_cookie(kind: int, low: int = 0) -> int:
    """Cookie for an aifabric entry of ``kind``, with ``low`` (32 bits) as payload."""
    return (COOKIE_OWNER << COOKIE_OWNER_SHIFT) | (kind << COOKIE_KIND_SHIFT) | (low & 0xFFFFFFFF)


def is_ours(cookie: int) -> bool:
    """True when an entry's cookie says aifabric installed it."""
    return (cookie >> COOKIE_OWNER_SHIFT) == COOKIE_OWNER


def ip_to_cookie_low(ip: str | None) -> int:
    """A host's IPv4 address as the low 32 bits of its entries' cookie (0: none)."""
    if not ip:
        return 0
    a, b, c, d = (int(x) for x in ip.split("."))
    return (a << 24) | (b << 16) | (c << 8) | d


def ip_from_cookie_low(low: int) -> str | None:
    """The inverse of :func:`ip_to_cookie_low`."""
    low &= 0xFFFFFFFF
    return ".".join(str((low >> s) & 0xFF) for s in (24, 16, 8, 0)) if low else None


def cookie_kind(cookie: int) -> int:
    return (cookie >> COOKIE_KIND_SHIFT) & 0xFF


def cookie_low(cookie: int) -> int:
    return cookie & 0xFFFFFFFF


# --- Ethernet -----------------------------------------------------------------------------
ETH_TYPE_IP = 0x0800
ETH_TYPE_ARP = 0x0806
ETH_TYPE_VLAN = 0x8100
ETH_TYPE_LLDP = 0x88CC
ETH_TYPE_IPV6 = 0x86DD
MULTICAST_BIT_MAC = "01:00:00:00:00:00"
LLDP_MAC_NEAREST_BRIDGE = "01:80:c2:00:00:0e"

# OpenFlow reserved port numbers we need (OF 1.3)
OFPP_MAX = 0xFFFFFF00
OFPP_LOCAL = 0xFFFFFFFE
OFPP_CONTROLLER = 0xFFFFFFFD
OFPCML_NO_BUFFER = 0xFFFF
