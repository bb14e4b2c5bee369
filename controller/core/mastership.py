"""Which instance of a cluster masters which switch, decided from what the store says.

Pure: the cluster's store (etcd) is read by an adapter into :class:`StoreView` values, and
the decisions come back as actions for the adapter to carry out (claim or release a
switch's master key, send an OpenFlow role request). See ``docs/cluster.md``.

- Every switch has a preferred instance among the live members, by rendezvous hashing
  (highest hash of switch and member wins): the switches spread evenly, and a member
  joining or leaving moves only the switches it wins or held.
- An instance claims the master key of a switch it is connected to when it is the
  preferred live member, or when the key has stayed empty for ``takeover_after``
  seconds (the preferred member is not connected to that switch, or not yet). A claim
  is a create-if-absent bound to the instance's lease: etcd lets one claim win.
- The winner's generation id is the revision at which its key was created: revisions
  only grow, so a later master always has a larger generation, and a switch refuses a
  deposed master's late role request (OFPRRFC_STALE).
- A master releases a switch another live member prefers and is connected to (the new
  master's role request demotes it on the switch: no moment without a master).
- An instance whose lease may have expired (no keepalive confirmed for ``ttl`` less a
  margin) masters nothing: it asks every switch for the slave role at once.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

MASTER, SLAVE = "master", "slave"


def preference(dpid: int, member: str) -> int:
    """The rendezvous weight of ``member`` for switch ``dpid`` (stable across processes)."""
    digest = hashlib.blake2b(f"{dpid:016x}/{member}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def preferred(dpid: int, members: Iterable[str]) -> str | None:
    """The live member that should master ``dpid`` (None when there is none)."""
    return max(members, key=lambda m: (preference(dpid, m), m), default=None)


@dataclass(frozen=True)
class Holder:
    """Who holds a switch's master key, and the generation id that gives them."""

    node: str
    generation: int


@dataclass(frozen=True)
class StoreView:
    """What the store says now: the live members (those whose lease holds), who holds
    each switch's master key, and which switches each member is connected to."""

    members: frozenset[str]
    holders: Mapping[int, Holder]
    connected: Mapping[str, frozenset[int]] = field(default_factory=dict)


@dataclass(frozen=True)
class Claim:
    dpid: int


@dataclass(frozen=True)
class Release:
    dpid: int


@dataclass(frozen=True)
class RoleRequest:
    dpid: int
    role: str  # MASTER or SLAVE
    generation: int


Action = Claim | Release | RoleRequest


@dataclass
class Mastership:
    """One instance's side of the decisions (one writer: the cluster app's thread)."""

    node: str
    ttl: float  # the lease's time to live, seconds
    takeover_after: float = -1.0  # an empty key is claimed by anyone after this long
    # (default: one ttl, so the preferred member claims first)
    margin: float = 0.25  # of the ttl: step down this much before the lease can expire
    roles: dict[int, tuple[str, int]] = field(default_factory=dict)  # sent: (role, gen)
    _empty_since: dict[int, float] = field(default_factory=dict)
    _seen: dict[int, int] = field(default_factory=dict)  # highest generation seen
    _last_keepalive: float | None = None

    def __post_init__(self) -> None:
        if self.takeover_after < 0:
            self.takeover_after = self.ttl

    def keepalive(self, now: float) -> None:
        """The store confirmed this instance's lease at ``now``."""
        self._last_keepalive = now

    def lease_holds(self, now: float) -> bool:
        """False once the lease may have expired (or was never confirmed)."""
        return (self._last_keepalive is not None
                and now - self._last_keepalive < self.ttl * (1 - self.margin))

    def may_write(self, dpid: int, now: float) -> bool:
        """True if this instance masters ``dpid`` and its lease still holds."""
        return self.roles.get(dpid, ("", 0))[0] == MASTER and self.lease_holds(now)

    def forget(self, dpid: int) -> None:
        """The switch disconnected from this instance: its role must be sent again."""
        self.roles.pop(dpid, None)

    def decide(self, view: StoreView, switches: Iterable[int], now: float) -> list[Action]:
        """The actions for the switches this instance is connected to, given ``view``."""
        mine = sorted(set(switches))
        for dpid, holder in view.holders.items():
            self._seen[dpid] = max(self._seen.get(dpid, 0), holder.generation)
        if not self.lease_holds(now):  # partitioned (or not started): master nothing
            return [self._role(d, SLAVE, self._seen.get(d, 0)) for d in mine
                    if self._sent(d) != SLAVE]
        out: list[Action] = []
        for dpid in mine:
            holder = view.holders.get(dpid)
            if holder is None:
                self._empty_since.setdefault(dpid, now)
                if self._may_claim(dpid, view, now):
                    out.append(Claim(dpid))
                if self._sent(dpid) is None:  # first contact: not a master yet
                    out.append(self._role(dpid, SLAVE, self._seen.get(dpid, 0)))
                # (a master whose key is empty keeps its role until the next master's
                # role request demotes it on the switch: never a moment without one)
                continue
            self._empty_since.pop(dpid, None)
            if holder.node == self.node:
                if self.roles.get(dpid) != (MASTER, holder.generation):
                    out.append(self._role(dpid, MASTER, holder.generation))
                if self._successor(dpid, view) is not None:
                    out.append(Release(dpid))
            elif self._sent(dpid) != SLAVE:
                out.append(self._role(dpid, SLAVE, holder.generation))
        return out

    def _sent(self, dpid: int) -> str | None:
        got = self.roles.get(dpid)
        return got[0] if got else None

    def _may_claim(self, dpid: int, view: StoreView, now: float) -> bool:
        """The preferred live member claims at once; any other once the key has been
        empty for ``takeover_after`` (the preferred one may not reach the switch, or
        not yet: instances starting together connect to the switches one by one)."""
        if preferred(dpid, view.members | {self.node}) == self.node:
            return True
        return now - self._empty_since[dpid] >= self.takeover_after

    def _eligible(self, dpid: int, view: StoreView) -> set[str]:
        """Live members connected to ``dpid`` (this one counts as connected)."""
        return {m for m in view.members
                if m == self.node or dpid in view.connected.get(m, frozenset())}

    def _successor(self, dpid: int, view: StoreView) -> str | None:
        """Another live, connected member that this switch now prefers, if any."""
        best = preferred(dpid, self._eligible(dpid, view))
        return best if best is not None and best != self.node else None

    def _role(self, dpid: int, role: str, generation: int) -> RoleRequest:
        self.roles[dpid] = (role, generation)
        return RoleRequest(dpid, role, generation)
