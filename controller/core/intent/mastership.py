"""Which instance of a cluster masters which switch, decided from what the store says.

Pure: the cluster's store (etcd) is read by an adapter into :class:`StoreView` values, and
the decisions come back as actions for the adapter to carry out (claim or release a
switch's master key, send an OpenFlow role request). See ``docs/cluster.md``.

- Every switch has a preferred instance among the live members connected to it, by
  rendezvous hashing with bounded loads (:func:`assignment`): the switches spread evenly,
  and a member joining or leaving moves few of them.
- An instance claims the master key of a switch it is connected to when it is the
  preferred member, or when the key has stayed empty for ``takeover_after`` seconds
  (the preferred member has not claimed it). A claim is a create-if-absent bound to the
  instance's lease: etcd lets one claim win.
- The winner's generation id is the revision at which its key was created: revisions
  only grow, so a later master always has a larger generation, and a switch refuses a
  deposed master's late role request (OFPRRFC_STALE).
- A master releases a switch another live member prefers and is connected to (the new
  master's role request demotes it on the switch: no moment without a master).
- An instance whose lease may have expired (no keepalive confirmed for ``ttl`` less a
  margin) masters nothing: it asks every switch for the slave role at once.
- One instance is the TE leader, which alone relieves congestion and rebalances (over
  every leaf, as the switches hold them): whoever creates the ``te-leader`` key, bound
  to its lease, when it is absent; it leads while that key is its and its lease holds.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from controller.core.intent.kinds import Intent

MASTER, SLAVE = "master", "slave"


def preference(dpid: int, member: str) -> int:
    """The rendezvous weight of ``member`` for switch ``dpid`` (stable across processes)."""
    digest = hashlib.blake2b(f"{dpid:016x}/{member}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def assignment(members: Iterable[str],
               connected: Mapping[str, Iterable[int]]) -> dict[int, str]:
    """Which member should master each switch some member is connected to: rendezvous
    hashing with bounded loads (each switch, in dpid order, goes to the member it ranks
    highest among those connected to it that hold fewer than their even share), so a few
    switches spread evenly too, and a member joining or leaving moves few of them. Every
    instance computes the same answer from the same store view."""
    live = sorted(set(members))
    reach = {m: set(connected.get(m, ())) for m in live}
    switches = sorted(set().union(*reach.values())) if live else []
    if not switches:
        return {}
    base, extra = divmod(len(switches), len(live))  # each gets base, `extra` one more
    load = dict.fromkeys(live, 0)
    full = 0  # members holding base + 1 already
    out: dict[int, str] = {}
    for dpid in switches:
        ranked = sorted((m for m in live if dpid in reach[m]),
                        key=lambda m: (-preference(dpid, m), m))
        chosen = next((m for m in ranked if load[m] < base or
                       (load[m] == base and full < extra)), ranked[0])
        if load[chosen] == base:
            full += 1
        out[dpid] = chosen
        load[chosen] += 1
    return out


@dataclass(frozen=True)
class Holder:
    """Who holds a switch's master key, and the generation id that gives them."""

    node: str
    generation: int


@dataclass(frozen=True)
class StoreView:
    """What the store says now: the live members (those whose lease holds), who holds
    each switch's master key, which switches each member is connected to, and the
    operator intent the instances share (by kind)."""

    members: frozenset[str]
    holders: Mapping[int, Holder]
    connected: Mapping[str, frozenset[int]] = field(default_factory=dict)
    intents: Mapping[str, Intent] = field(default_factory=dict)  # shared operator intent
    # member -> (its peer port's address, its lease): for fast failure detection
    peers: Mapping[str, tuple[str, int]] = field(default_factory=dict)
    te_leader: str | None = None  # who holds the te-leader key
    # leaf -> the TE leader's latest moves of that leaf's flows (kind "te/<leaf>")
    te_moves: Mapping[int, Intent] = field(default_factory=dict)
    # keys under the prefix that are ignored: not UTF-8, not the shape their kind has,
    # master and te-leader keys in ``forged``, TE moves not under the te-leader key's
    # lease; each named (escaped, cut short) for the log and the metrics
    ignored: tuple[str, ...] = ()
    # master and te-leader keys no live member wrote (their lease is not the lease of
    # the member they name): key below the prefix -> the revision it was last modified
    # at. Not counted as held: an instance clears them (only while still that version)
    forged: Mapping[str, int] = field(default_factory=dict)


LEADER_KEY = "te-leader"  # the TE leader's key, below the cluster's prefix


def master_key(dpid: int) -> str:
    """The switch's master key, below the cluster's prefix."""
    return f"master/{dpid:016x}"


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


@dataclass(frozen=True)
class Clear:
    """Delete ``key`` (below the prefix) if it is still the version modified at
    ``revision``: a master or te-leader key no live member wrote, which would otherwise
    block every claim."""

    key: str
    revision: int


@dataclass(frozen=True)
class ClaimLeader:
    """Create the te-leader key for this instance (it is absent)."""


@dataclass(frozen=True)
class Yield:
    """Stop writing to ``dpid`` now, without a message: another instance holds its key,
    and its own role request demotes this one on the switch (asking for the slave role
    first would leave the switch without a master until then)."""

    dpid: int


Action = Claim | Release | RoleRequest | Yield | ClaimLeader | Clear


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

    def step_down(self) -> list[RoleRequest]:
        """The lease is gone (found expired): the slave role for every switch this
        instance masters, with the generation it last knew (a switch that has a newer
        master refuses it as stale: it is the slave already)."""
        return [self._role(d, SLAVE, self._seen.get(d, gen))
                for d, (role, gen) in sorted(self.roles.items()) if role == MASTER]

    def leads(self, view: StoreView, now: float) -> bool:
        """True if this instance is the TE leader (its key, and its lease holds)."""
        return view.te_leader == self.node and self.lease_holds(now)

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
        if view.te_leader is None:
            if LEADER_KEY in view.forged:
                out.append(Clear(LEADER_KEY, view.forged[LEADER_KEY]))
            out.append(ClaimLeader())
        reach = {m: set(view.connected.get(m, ())) for m in view.members}
        reach[self.node] = reach.get(self.node, set()) | set(mine)
        wanted = assignment(reach, reach)
        for dpid in mine:
            holder = view.holders.get(dpid)
            if holder is None:
                forged = master_key(dpid)
                if forged in view.forged:  # (cleared first: it would block the claim)
                    out.append(Clear(forged, view.forged[forged]))
                self._empty_since.setdefault(dpid, now)
                if wanted.get(dpid) == self.node or \
                        now - self._empty_since[dpid] >= self.takeover_after:
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
                if wanted.get(dpid, self.node) != self.node:  # (another live member,
                    out.append(Release(dpid))  # connected to it, should have it)
            elif self._sent(dpid) == MASTER:
                self.roles[dpid] = (SLAVE, holder.generation)
                out.append(Yield(dpid))
            elif self._sent(dpid) is None:  # first contact
                out.append(self._role(dpid, SLAVE, holder.generation))
        return out

    def _sent(self, dpid: int) -> str | None:
        got = self.roles.get(dpid)
        return got[0] if got else None

    def _role(self, dpid: int, role: str, generation: int) -> RoleRequest:
        self.roles[dpid] = (role, generation)
        return RoleRequest(dpid, role, generation)
