"""QoS policy for AI traffic: traffic classes, their validation, edge-marking entries and
per-port queue plans. Pure: no OVSDB, no tc, no clock.

A class is recognised at the leaf edge (host ports) by its match, marked with its DSCP,
and queued on every port of the fabric by that DSCP ("trust DSCP" inside the fabric).
Inside a port, each class has a queue with a guaranteed share of the port rate
(``min-rate``), the port rate as ceiling, and a priority for borrowing spare bandwidth:
strict classes borrow first. Best effort (queue 0) gets what is left.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from controller.core import constants as C
from controller.core.southbound.openflow import FlowRule, make_match

MAX_QUEUE = 7
MIN_BEST_EFFORT_SHARE = 0.05


def parse_port_range(value: int | str) -> tuple[int, int]:
    """``4791`` or ``"5000-5099"`` -> (low, high); ValueError with a reason."""
    text = str(value).strip()
    low, sep, high = text.partition("-")
    try:
        lo, hi = (int(low), int(high)) if sep else (int(text), int(text))
    except ValueError:
        raise ValueError(f"port {value!r} is not a number or a LOW-HIGH range") from None
    if not 1 <= lo <= hi <= 65535:
        raise ValueError(f"port range {value!r} must be within 1-65535 and LOW <= HIGH")
    return lo, hi


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ClassMatch(_Strict):
    """How the leaf recognises a class on a host port. Every entry is an alternative:
    a UDP/TCP port (or ``LOW-HIGH`` range), or a DSCP the host set (``dscp``).
    ``with_dscp`` narrows the port alternatives to packets carrying one of those DSCPs
    (CNP: UDP 4791 with DSCP 48)."""

    udp_dst: tuple[int | str, ...] = ()
    tcp_dst: tuple[int | str, ...] = ()
    tcp_src: tuple[int | str, ...] = ()
    dscp: tuple[int, ...] = ()
    with_dscp: tuple[int, ...] = ()

    @field_validator("udp_dst", "tcp_dst", "tcp_src")
    @classmethod
    def _ports(cls, v: tuple) -> tuple:
        for p in v:
            parse_port_range(p)
        return v

    @field_validator("dscp", "with_dscp")
    @classmethod
    def _dscp(cls, v: tuple[int, ...]) -> tuple[int, ...]:
        for d in v:
            if not 0 <= d <= 63:
                raise ValueError(f"DSCP {d} is outside 0-63")
        return v

    @model_validator(mode="after")
    def _not_empty(self) -> ClassMatch:
        ports = self.udp_dst or self.tcp_dst or self.tcp_src
        if not (ports or self.dscp):
            raise ValueError("a match needs at least one of udp_dst, tcp_dst, tcp_src, dscp")
        if self.with_dscp and not ports:
            raise ValueError("with_dscp narrows port matches: give udp_dst, tcp_dst or tcp_src")
        return self


class TrafficClass(_Strict):
    name: str = Field(pattern=r"^[a-z][a-z0-9_-]{0,31}$")
    dscp: int = Field(ge=1, le=63, description="DSCP the edge marks; queues classify by it")
    queue: int = Field(ge=1, le=MAX_QUEUE)
    scheduling: Literal["strict", "share"] = "share"
    share: float = Field(gt=0, lt=1, description="guaranteed fraction of the port rate")
    match: ClassMatch


class QosPolicy(_Strict):
    """The whole policy. Classes are tried most specific first (ports and DSCP, then
    ports, then DSCP alone); everything else is best effort, re-marked to DSCP 0 at the
    edge unless ``trust_unclassified_dscp`` is set."""

    classes: tuple[TrafficClass, ...]
    trust_unclassified_dscp: bool = False

    @model_validator(mode="after")
    def _consistent(self) -> QosPolicy:
        seen_names, seen_dscp, seen_queue = set(), {}, {}
        for c in self.classes:
            if c.name in seen_names:
                raise ValueError(f"class name {c.name!r} used twice")
            seen_names.add(c.name)
            if c.dscp in seen_dscp:
                raise ValueError(f"DSCP {c.dscp} is marked by both {seen_dscp[c.dscp]!r} "
                                 f"and {c.name!r}")
            seen_dscp[c.dscp] = c.name
            if c.queue in seen_queue:
                raise ValueError(f"queue {c.queue} is used by both {seen_queue[c.queue]!r} "
                                 f"and {c.name!r}")
            seen_queue[c.queue] = c.name
        total = sum(c.share for c in self.classes)
        if total > 1 - MIN_BEST_EFFORT_SHARE + 1e-9:
            raise ValueError(
                f"shares add up to {total:.0%}; at most {1 - MIN_BEST_EFFORT_SHARE:.0%} "
                f"(best effort keeps at least {MIN_BEST_EFFORT_SHARE:.0%})"
            )
        clauses = [(c.name, cl) for c in self.classes for cl in match_clauses(c.match)]
        for i, (name_a, a) in enumerate(clauses):
            for name_b, b in clauses[i + 1 :]:
                if name_a != name_b and a.overlaps(b):
                    raise ValueError(f"classes {name_a!r} and {name_b!r} have overlapping "
                                     f"matches ({a.describe()} / {b.describe()})")
        return self

    @property
    def best_effort_share(self) -> float:
        return 1.0 - sum(c.share for c in self.classes)


# --- match clauses ------------------------------------------------------------------------
@dataclass(frozen=True)
class Clause:
    """One OpenFlow-expressible alternative of a class match."""

    field: str | None  # "udp_dst" | "tcp_dst" | "tcp_src" | None (DSCP only)
    ports: tuple[int, int] | None
    dscp: frozenset[int] | None

    @property
    def specificity(self) -> int:
        return (2 if self.field else 0) + (1 if self.dscp else 0)

    def overlaps(self, other: Clause) -> bool:
        """Ambiguous: one packet could match both at the same specificity."""
        if self.specificity != other.specificity or self.field != other.field:
            return False
        if self.ports and other.ports:
            if self.ports[1] < other.ports[0] or other.ports[1] < self.ports[0]:
                return False
        if self.dscp and other.dscp and not self.dscp & other.dscp:
            return False
        return True

    def describe(self) -> str:
        parts = []
        if self.field:
            lo, hi = self.ports  # type: ignore[misc]
            parts.append(f"{self.field} {lo}" + (f"-{hi}" if hi != lo else ""))
        if self.dscp:
            parts.append("dscp " + ",".join(map(str, sorted(self.dscp))))
        return " ".join(parts)


def match_clauses(m: ClassMatch) -> list[Clause]:
    narrow = frozenset(m.with_dscp) or None
    out = [
        Clause(name, parse_port_range(p), narrow)
        for name, ports in (("udp_dst", m.udp_dst), ("tcp_dst", m.tcp_dst),
                            ("tcp_src", m.tcp_src))
        for p in ports
    ]
    if m.dscp:
        out.append(Clause(None, None, frozenset(m.dscp)))
    return out


def range_to_masks(lo: int, hi: int) -> list[tuple[int, int]]:
    """Cover [lo, hi] with (value, mask) pairs, as OpenFlow masked port matches."""
    out = []
    while lo <= hi:
        size = lo & -lo if lo else 1 << 16
        while size > hi - lo + 1:
            size >>= 1
        out.append((lo, 0xFFFF & ~(size - 1)))
        lo += size
    return out


# --- edge marking -------------------------------------------------------------------------
def marking_rules(policy: QosPolicy, host_ports: list[int]) -> list[FlowRule]:
    """Table-0 entries of a leaf: classify traffic from host ports and set its DSCP."""
    cookie = C.make_cookie(C.KIND_QOS)
    goto = ("goto", C.TABLE_FORWARD)
    rules: list[FlowRule] = []
    for port in host_ports:
        for cls in policy.classes:
            mark = ("apply", (("set_field", "ip_dscp", cls.dscp), ("set_queue", cls.queue)))
            for clause in match_clauses(cls.match):
                prio = C.PRIO_QOS_CLASS + clause.specificity
                dscps = sorted(clause.dscp) if clause.dscp else [None]
                if clause.field is None:
                    matches = [make_match(in_port=port, eth_type=C.ETH_TYPE_IP, ip_dscp=d)
                               for d in dscps]
                else:
                    proto = 17 if clause.field.startswith("udp") else 6
                    matches = [
                        make_match(in_port=port, eth_type=C.ETH_TYPE_IP, ip_proto=proto,
                                   ip_dscp=d, **{clause.field: value if mask == 0xFFFF
                                                 else (value, mask)})
                        for d in dscps
                        for value, mask in range_to_masks(*clause.ports)  # type: ignore[misc]
                    ]
                rules += [FlowRule(C.TABLE_CLASSIFY, prio, m, (mark, goto), cookie)
                          for m in matches]
        if not policy.trust_unclassified_dscp:
            rules.append(FlowRule(
                C.TABLE_CLASSIFY, C.PRIO_QOS_DEFAULT,
                make_match(in_port=port, eth_type=C.ETH_TYPE_IP),
                (("apply", (("set_field", "ip_dscp", 0),)), goto), cookie,
            ))
    return rules


def queue_rules(policy: QosPolicy) -> list[FlowRule]:
    """Table-0 entries of every switch: DSCP -> ``set_queue``. The kernel datapath picks
    the egress queue from it; the userspace datapath ignores it (the tc filters of
    ``apps.ovs_qos`` classify there), so these are installed everywhere, harmlessly."""
    cookie = C.make_cookie(C.KIND_QOS)
    return [
        FlowRule(
            C.TABLE_CLASSIFY, C.PRIO_QOS_QUEUE,
            make_match(eth_type=C.ETH_TYPE_IP, ip_dscp=cls.dscp),
            (("apply", (("set_queue", cls.queue),)), ("goto", C.TABLE_FORWARD)), cookie,
        )
        for cls in policy.classes
    ]


# --- queue plans --------------------------------------------------------------------------
@dataclass(frozen=True)
class QueueSpec:
    queue: int
    min_rate: int  # bit/s
    max_rate: int
    priority: int  # HTB priority: lower borrows spare bandwidth first


@dataclass(frozen=True)
class PortQosPlan:
    rate: int  # bit/s: the port's ceiling (keeps a shaped link shaped)
    queues: tuple[QueueSpec, ...]
    dscp_to_queue: tuple[tuple[int, int], ...]


def port_plan(policy: QosPolicy, rate_bps: int) -> PortQosPlan:
    """Queues of one port from its rate and the class shares.

    A shared class may borrow up to the port rate; a strict class is capped at its own
    share (its ceiling), since hosts can mark traffic into it (UDP 4791 with DSCP 48
    is CNP): served first, it would otherwise take the whole port from everyone."""
    queues = [QueueSpec(0, int(policy.best_effort_share * rate_bps), rate_bps, 2)]
    for c in sorted(policy.classes, key=lambda c: c.queue):
        strict = c.scheduling == "strict"
        share = int(c.share * rate_bps)
        queues.append(QueueSpec(c.queue, share, share if strict else rate_bps,
                                0 if strict else 1))
    return PortQosPlan(
        rate_bps,
        tuple(queues),
        tuple(sorted((c.dscp, c.queue) for c in policy.classes)),
    )


_CNP = {"name": "cnp", "dscp": 48, "queue": 6, "scheduling": "strict", "share": 0.05,
        "match": {"udp_dst": [4791], "with_dscp": [48]}}

PROFILES: dict[str, dict] = {
    # NVIDIA Cumulus "RoCE lossless": DSCP 26 -> priority 3 with 50%, CNP (DSCP 48) strict.
    "cumulus": {"classes": [
        _CNP,
        {"name": "roce", "dscp": 26, "queue": 3, "share": 0.5,
         "match": {"udp_dst": [4791], "dscp": [26]}},
    ]},
    # Cisco's AI/ML fabric guide: RoCEv2 on DSCP 24 -> queue 3 with 60%, CNP strict.
    "cisco": {"classes": [
        {**_CNP, "queue": 7},
        {"name": "roce", "dscp": 24, "queue": 3, "share": 0.6,
         "match": {"udp_dst": [4791], "dscp": [24]}},
    ]},
    # SONiC: lossless DSCP 3 and 4 on queues 3 and 4, DWRR 15:14 between them.
    "sonic": {"classes": [
        _CNP,
        {"name": "lossless3", "dscp": 3, "queue": 3, "share": 0.45,
         "match": {"udp_dst": [4791], "dscp": [3]}},
        {"name": "lossless4", "dscp": 4, "queue": 4, "share": 0.42, "match": {"dscp": [4]}},
    ]},
}


def profile_policy(name: str) -> QosPolicy:
    """A named profile ("default", "cumulus", "cisco", "sonic"); KeyError if unknown."""
    if name == "default":
        return default_policy()
    return QosPolicy.model_validate(PROFILES[name])


def default_policy() -> QosPolicy:
    """Industry-style defaults (after NVIDIA's "RoCE lossless" and Cisco's AI fabric guide):
    CNP strict, RoCEv2 (UDP 4791, or DSCP 26/24 from the host) with half of every port,
    collectives (host-marked DSCP 34; add your NCCL/Gloo port ranges) and storage
    (NVMe/TCP, iSCSI) with guaranteed shares; best effort keeps 15%."""
    return QosPolicy.model_validate({
        "classes": [
            _CNP,
            {"name": "roce", "dscp": 26, "queue": 3, "share": 0.5,
             "match": {"udp_dst": [4791], "dscp": [26, 24]}},
            {"name": "collective", "dscp": 34, "queue": 4, "share": 0.2,
             "match": {"dscp": [34]}},
            {"name": "storage", "dscp": 10, "queue": 2, "share": 0.1,
             "match": {"tcp_dst": [4420, 3260], "tcp_src": [4420, 3260]}},
        ],
    })
