"""A training job as a scheduler registers it (:class:`JobSpec`: its members in rank
order, its communication pattern and the pairs and steps that pattern implies), its
limits and its errors. Kept apart from the placement (:mod:`controller.core.te.jobs`),
which needs the array search: fabricctl reads and checks jobs without loading it.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from controller.core.errors import FailedPrecondition, InvalidArgument

PATTERNS = ("ring", "all_to_all", "tree", "pairs")
TRANSPORTS = ("any", "tcp", "udp", "roce")
JOB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
FIELDS = ("id", "members", "pattern", "pairs", "transport", "traffic_class", "priority")

Pair = tuple[str, str]  # (source IP, destination IP): every packet between the two hosts


SERVER_RAIL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}:\d{1,3}$")


class JobError(InvalidArgument):
    """A malformed job; ``field`` names the offending part."""

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(f"{field_name}: {message}")
        self.field = field_name


class JobRefused(FailedPrecondition):
    """A well-formed job the fabric's state refuses now (a member not known yet, QoS
    off); ``field`` names the part. A retry may succeed once the state changed."""

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(f"{field_name}: {message}")
        self.field = field_name


@dataclass(frozen=True)
class JobLimits:
    max_jobs: int = 64
    max_members: int = 512
    max_pairs: int = 20_000  # directed pairs of one job (all-to-all on n members: n(n-1))


@dataclass(frozen=True)
class JobSpec:
    """A registered job, as the scheduler described it."""

    job_id: str
    members: tuple[str, ...]  # IPv4 addresses, in rank order
    pattern: str
    pairs: tuple[tuple[int, int], ...] = ()  # (source rank, destination rank): "pairs"
    transport: str = "any"  # which of the pair's traffic follows the placement
    traffic_class: str = ""  # QoS class its traffic is marked into at the edge ("": none)
    priority: int = 0  # higher is placed first

    def validate(self, limits: JobLimits, server_rails: bool = False) -> None:
        """JobError naming the field for anything malformed (hosts are checked apart).
        ``server_rails``: members may name a server's NIC as SERVER:RAIL (a request, not
        yet made addresses; a registered job has addresses only)."""
        if not JOB_ID.match(self.job_id):
            raise JobError("id", f"{self.job_id!r} must be 1-64 letters, digits, '.', '_' "
                           "or '-', starting with a letter or digit")
        n = len(self.members)
        if n < 2:
            raise JobError("members", f"a job needs at least 2 members, got {n}")
        if n > limits.max_members:
            raise JobError("members", f"{n} members is over the limit of "
                           f"{limits.max_members}")
        seen: dict[str, int] = {}
        for i, ip in enumerate(self.members):
            if server_rails and SERVER_RAIL.match(ip):  # (made an address when registered)
                if ip in seen:
                    raise JobError(f"members[{i}]", f"{ip} is already rank {seen[ip]}")
                seen[ip] = i
                continue
            try:
                addr = ipaddress.IPv4Address(ip)
            except ValueError:
                raise JobError(f"members[{i}]", f"{ip!r} is not an IPv4 address"
                               + (" nor SERVER:RAIL" if server_rails else "")) from None
            if addr.is_multicast or addr.is_unspecified or ip == "255.255.255.255":
                raise JobError(f"members[{i}]", f"{ip} is not a host address")
            if ip in seen:
                raise JobError(f"members[{i}]", f"{ip} is already rank {seen[ip]}")
            seen[ip] = i
        if self.pattern not in PATTERNS:
            raise JobError("pattern", f"{self.pattern!r} is not one of "
                           f"{', '.join(PATTERNS)}")
        if self.pattern == "pairs":
            if not self.pairs:
                raise JobError("pairs", "the pairs pattern needs at least one pair")
            for i, (a, b) in enumerate(self.pairs):
                for r in (a, b):
                    if not 0 <= r < n:
                        raise JobError(f"pairs[{i}]", f"rank {r} is not in 0..{n - 1}")
                if a == b:
                    raise JobError(f"pairs[{i}]", f"rank {a} paired with itself")
        elif self.pairs:
            raise JobError("pairs", f"only the pairs pattern takes pairs, not {self.pattern}")
        count = n * (n - 1) if self.pattern == "all_to_all" else len(self.rank_pairs())
        if count > limits.max_pairs:
            raise JobError("members", f"{self.pattern} on {n} members is {count} pairs, "
                           f"over the limit of {limits.max_pairs}")
        if self.transport not in TRANSPORTS:
            raise JobError("transport", f"{self.transport!r} is not one of "
                           f"{', '.join(TRANSPORTS)}")
        if not -1000 <= self.priority <= 1000:
            raise JobError("priority", f"{self.priority} is not in -1000..1000")

    def steps(self) -> tuple[tuple[tuple[int, int], ...], ...]:
        """The directed rank pairs of each step of the schedule (pairs in one step run
        at the same time). A ring's two directions are two steps, and so are a tree's
        (up, then down): a one-way ring (OpenMPI's all-reduce) then gets links of its
        own for every pair, and a two-way one (NCCL's) as few shared as the fabric
        allows, since each step is placed away from the job's other steps when there is
        room."""
        n = len(self.members)
        if self.pattern == "all_to_all":
            return tuple(tuple((r, (r + k) % n) for r in range(n)) for k in range(1, n))
        if self.pattern == "ring":
            fwd = tuple(dict.fromkeys((r, (r + 1) % n) for r in range(n)))
            back = tuple(dict.fromkeys((b, a) for a, b in fwd if (b, a) not in fwd))
            return (fwd, back) if back else (fwd,)
        if self.pattern == "tree":
            up = tuple((r, (r - 1) // 2) for r in range(1, n))
            return (up, tuple((b, a) for a, b in up))
        return (self.rank_pairs(),)

    def rank_pairs(self) -> tuple[tuple[int, int], ...]:
        """Every directed rank pair the pattern implies, each once."""
        if self.pattern == "pairs":
            return tuple(dict.fromkeys(self.pairs))
        return tuple(sorted({p for step in self.steps() for p in step}))

    def host_pair(self, ranks: tuple[int, int]) -> Pair:
        return self.members[ranks[0]], self.members[ranks[1]]

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.job_id, "members": list(self.members),
                               "pattern": self.pattern}
        if self.pairs:
            out["pairs"] = [list(p) for p in self.pairs]
        if self.transport != "any":
            out["transport"] = self.transport
        if self.traffic_class:
            out["traffic_class"] = self.traffic_class
        if self.priority:
            out["priority"] = self.priority
        return out

    @staticmethod
    def from_dict(d: Any) -> JobSpec:
        """From a scheduler's file or the state file (JobError for a malformed one)."""
        if not isinstance(d, Mapping):
            raise JobError("job", f"expected a mapping, got {type(d).__name__}")
        unknown = sorted(set(d) - set(FIELDS))
        if unknown:
            raise JobError(str(unknown[0]), f"unknown field (known: {', '.join(FIELDS)})")

        def text(name: str, default: str | None = None) -> str:
            v = d.get(name, default)
            if not isinstance(v, str):
                raise JobError(name, "required" if v is None else
                               f"expected a string, got {type(v).__name__}")
            return v

        members = d.get("members")
        if not isinstance(members, list) or not all(isinstance(m, str) for m in members):
            raise JobError("members", "expected a list of IPv4 addresses in rank order")
        pairs = d.get("pairs", [])
        if not isinstance(pairs, list) or not all(
                isinstance(p, (list, tuple)) and len(p) == 2
                and all(isinstance(r, int) and not isinstance(r, bool) for r in p)
                for p in pairs):
            raise JobError("pairs", "expected a list of [source rank, destination rank]")
        priority = d.get("priority", 0)
        if not isinstance(priority, int) or isinstance(priority, bool):
            raise JobError("priority", f"expected an integer, got {priority!r}")
        return JobSpec(text("id"), tuple(members), text("pattern"),
                       tuple((int(a), int(b)) for a, b in pairs),
                       text("transport", "any"), text("traffic_class", ""), priority)


