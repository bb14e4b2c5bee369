"""Registered training jobs as a component of traffic engineering: the jobs, where their
host pairs go (:func:`controller.core.te.jobs.place_jobs`), the pair entries each ingress
leaf holds for them, their byte counters, and their recovery after a restart.

A job's pair entry matches every packet between two hosts (or only the job's transport)
in the TE table of the source's leaf, above TE's per-flow pins and below operator pins,
and sends it through the chosen uplink's fast-failover group; with a traffic class it
also sets the class's DSCP, so hosts need not mark their collectives themselves. A pair
between pods of a three-tier fabric has a second entry in its ingress spine's forwarding
table, which sends it up to the chosen super-spine.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass

from controller.core import constants as C
from controller.core.errors import AlreadyExists, NotFound, ResourceExhausted
from controller.core.model.job_spec import JobError, JobLimits, JobRefused, JobSpec, Pair
from controller.core.snapshot import JobInfo, JobPairInfo
from controller.core.southbound.openflow import FlowRule, make_match
from controller.core.te.flows import TCP, UDP, FlowKey
from controller.core.te.jobs import (
    JobPlacement,
    job_order,
    place_jobs,
)
from controller.core.te.topology import (
    Resource,
    SpinePath,
    TeTopology,
    resource_text,
    resources,
)

log = logging.getLogger("aifabric.core")

ROCE_PORT = 4791
MOVE_EVENTS = 16  # a re-placement reports this many moved pairs one by one, then a sum
HostPort = tuple[int, int]  # (leaf, port) a host is attached at


class JobExists(AlreadyExists):
    """A job with that id is registered already."""


@dataclass
class PairCounter:
    bytes: int = 0
    at: float = 0.0
    rate_bps: float = 0.0


# what a job's pair entry matches beyond the two addresses, by the job's transport
TRANSPORT_FIELDS: dict[str, dict[str, int]] = {
    "any": {}, "tcp": {"ip_proto": TCP}, "udp": {"ip_proto": UDP},
    "roce": {"ip_proto": UDP, "udp_dst": ROCE_PORT},  # RoCEv2
}


def pair_match(pair: Pair, transport: str, in_port: int) -> tuple:
    """What a job's pair entry matches: every packet from one host to the other, or only
    the job's transport, and only as it enters from the source member's own port (a
    neighbour forging the member's address gets neither the path nor the class)."""
    src, dst = pair
    return make_match(in_port=in_port, eth_type=C.ETH_TYPE_IP, ipv4_src=src, ipv4_dst=dst,
                      **TRANSPORT_FIELDS[transport])


def pair_rule(pair: Pair, transport: str, in_port: int, port: int,
              dscp: int | None) -> FlowRule:
    """The entry that sends ``pair`` (entering at ``in_port``) up the uplink ``port``."""
    actions: tuple = (("group", C.FF_GROUP_BASE + port),)
    if dscp is not None:
        actions = (("set_field", "ip_dscp", dscp), *actions)
    return FlowRule(C.TABLE_TE, C.PRIO_JOB, pair_match(pair, transport, in_port),
                    (("apply", actions), ("clear",)), C.make_cookie(C.KIND_JOB, port))


def spine_pair_rule(pair: Pair, transport: str, port: int) -> FlowRule:
    """The ingress spine's entry that sends ``pair`` (between pods) up its uplink
    ``port``, ahead of its host entries."""
    return FlowRule(C.TABLE_FORWARD, C.PRIO_JOB,
                    make_match(eth_type=C.ETH_TYPE_IP, ipv4_src=pair[0], ipv4_dst=pair[1],
                               **TRANSPORT_FIELDS[transport]),
                    (("apply", (("group", C.FF_GROUP_BASE + port),)),),
                    C.make_cookie(C.KIND_JOB, port))


def pair_of(match) -> Pair | None:
    m = dict(match)
    src, dst = m.get("ipv4_src"), m.get("ipv4_dst")
    return (str(src), str(dst)) if src and dst else None


class JobBook:
    """The registered jobs, their placement, entries and counters. Every method runs on
    the controller's thread; readers get :meth:`infos`."""

    def __init__(self, limits: JobLimits, event: Callable[..., None]) -> None:
        self.limits = limits
        self._event = event
        self._jobs: dict[str, tuple[int, JobSpec, float]] = {}  # id -> (seq, spec, when)
        self._seq = 0
        self.placements: dict[str, JobPlacement] = {}
        self._placed_with: dict[str, HostPort] = {}  # member -> where when last placed
        self.dirty = False
        self._recovered: dict[Pair, tuple[int, FlowRule]] = {}  # pair -> its read-back entry
        self._recovered_up: dict[Pair, tuple[int, FlowRule]] = {}  # and its spine's entry
        self.counters: dict[Pair, PairCounter] = {}
        self._rules: dict[int, dict] = {}  # leaf -> its pair entries, as last placed
        self.waiting_on: frozenset[int] = frozenset()  # leaves some job waits for
        self._covered: dict[Pair, str] = {}  # pair with an entry -> the transport it takes
        self._held: dict[Pair, SpinePath] = {}  # paths of placed jobs that now wait

    # --- registration ------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._jobs)

    def registered(self) -> list[JobSpec]:
        """The jobs in registration order (what a cluster shares)."""
        return [spec for _, spec, _ in sorted(self._jobs.values(), key=lambda v: v[0])]

    def specs(self) -> list[JobSpec]:
        """The jobs in placement order (priority, then registration)."""
        return job_order([(seq, spec) for seq, spec, _ in self._jobs.values()])

    def check(self, spec: JobSpec, leaf_of: Mapping[str, int],
              classes: Mapping[str, int] | None) -> None:
        """Unless ``spec`` can be registered now: JobError (malformed, naming the field),
        JobExists, ResourceExhausted (the job limit) or JobRefused (a member not known,
        QoS off)."""
        spec.validate(self.limits)
        if spec.job_id in self._jobs:
            raise JobExists(f"job {spec.job_id!r} is registered already (delete it first)")
        if len(self._jobs) >= self.limits.max_jobs:
            raise ResourceExhausted(f"{self.limits.max_jobs} jobs are registered, the limit "
                                    "(jobs.max_jobs): delete one first")
        for i, ip in enumerate(spec.members):
            if ip not in leaf_of:
                raise JobRefused(f"members[{i}]", f"no host with address {ip} is known")
        if spec.traffic_class:
            if classes is None:
                raise JobRefused("traffic_class", "QoS is off: there are no classes")
            if spec.traffic_class not in classes:
                raise JobError("traffic_class", f"{spec.traffic_class!r} is not a class of "
                               f"the QoS policy (classes: {', '.join(sorted(classes))})")

    def add(self, spec: JobSpec, now: float) -> None:
        """Register a checked job (placed at the next :meth:`place`)."""
        self._seq += 1
        self._jobs[spec.job_id] = (self._seq, spec, now)
        self.dirty = True
        self._event("job_registered", f"job {spec.job_id} registered: {spec.pattern} over "
                    f"{len(spec.members)} hosts", job=spec.job_id)

    def restore(self, specs: list[JobSpec], now: float) -> None:
        """Jobs from the state file at start-up, in their registration order (members not
        known yet leave a job pending until they are)."""
        for spec in specs:
            spec.validate(self.limits)
            self._seq += 1
            self._jobs[spec.job_id] = (self._seq, spec, now)
        self.dirty = bool(specs)

    def delete(self, job_id: str) -> None:
        if job_id not in self._jobs:
            raise NotFound(f"no job {job_id!r}")
        del self._jobs[job_id]
        self.placements.pop(job_id, None)
        self.dirty = True
        self._event("job_deleted", f"job {job_id} deleted: its pairs return to ECMP and "
                    "traffic engineering", job=job_id)

    # --- placement -----------------------------------------------------------------------------
    def needs_placing(self, where: Mapping[str, HostPort]) -> bool:
        """A job was added or removed, waits for a leaf to settle, or a member host
        appeared or moved (to another leaf or port)."""
        if self.dirty or self.waiting_on:
            return True
        return any(where.get(ip) != self._placed_with.get(ip)
                   for _, spec, _ in self._jobs.values() for ip in spec.members)

    def place(self, topo: TeTopology, where: Mapping[str, HostPort],
              background: Mapping[Resource, float], reason: str,
              settled: Collection[int], dscp_of: Mapping[str, int] | None) -> set[int]:
        """Place every job again (the pairs whose paths hold stay) and build the pair
        entries; ``where`` has each known host's (leaf, port). Returns the leaves whose
        entries changed. A job waits (its entries read back after a restart kept as they
        are) until the leaves of its members are settled: before that their uplinks may
        not be known yet, and a guess would move pairs that are fine. It then goes back
        on the paths it had (switches wiped and back) where every one still holds."""
        self.dirty = False
        leaf_of = {ip: leaf for ip, (leaf, _) in where.items()}
        specs = self.specs()
        ready, waiting = [], {}
        for spec in specs:
            unsettled = sorted({leaf_of[ip] for ip in spec.members
                                if ip in leaf_of and leaf_of[ip] not in settled})
            if unsettled:
                waiting[spec.job_id] = unsettled
            else:
                ready.append(spec)
        self.waiting_on = frozenset(d for leaves in waiting.values() for d in leaves)
        for job in waiting:  # (switches wiped and back: put back where they were)
            self._held.update(self.placements.get(job, JobPlacement()).paths)
        self._placed_with = {ip: where[ip] for spec in ready for ip in spec.members
                             if ip in where}
        # where pairs were before (held while their job waited, read back after a
        # restart), then where they are placed now
        earlier = {**self._held, **self._read_back(topo, leaf_of)}
        current = dict(earlier)
        for pl in self.placements.values():
            current.update(pl.paths)
        # (a job placed for the first time since a restart keeps what the switches hold)
        fresh = {spec.job_id for spec in ready
                 if not self.placements.get(spec.job_id, JobPlacement()).paths}
        fresh_pairs = {s.host_pair(rp) for s in ready if s.job_id in fresh
                       for rp in s.rank_pairs()}
        adopt = {pair: path for pair, path in earlier.items() if pair in fresh_pairs}
        self.placements = place_jobs(ready, topo, leaf_of,
                                     self._background(background, leaf_of), current, adopt)
        for spec in specs:
            if spec.job_id in waiting:
                self.placements[spec.job_id] = JobPlacement(
                    waiting=tuple(waiting[spec.job_id]),
                    steps=tuple(tuple(spec.host_pair(rp) for rp in step)
                                for step in spec.steps()))
        # pairs left with no path in service (every spine's session ended at once) go
        # back where they were once there is one again, like a waiting job's
        unplaced = {pair for pl in self.placements.values() for pair in pl.unplaced}
        self._held.update({pair: current[pair] for pair in unplaced if pair in current})
        owners = self._owners()
        self._covered = {pair: spec.transport for pair, (spec, _) in owners.items()}
        # read-back entries: kept while their job waits (for a leaf, for its hosts),
        # dropped once placed or when no registered job has the pair
        wanted = unplaced | {spec.host_pair(rp) for spec in specs
                             if spec.job_id in waiting or self.placements[spec.job_id].pending
                             for rp in spec.rank_pairs()}
        self._recovered = {pair: got for pair, got in self._recovered.items()
                           if pair in wanted and pair not in self._covered}
        self._recovered_up = {pair: got for pair, got in self._recovered_up.items()
                              if pair in wanted and pair not in self._covered}
        self._held = {pair: path for pair, path in self._held.items()
                      if pair in wanted and pair not in self._covered}
        before = self._rules
        after = self._rules = self._build_rules(owners, where, dscp_of)
        moved = [(job, pair, current[pair], p) for job, pl in self.placements.items()
                 for pair, p in pl.paths.items() if pair in current and current[pair] != p]
        for n, (job, pair, old, new) in enumerate(moved):
            if n < MOVE_EVENTS:
                self._event("job_reroute", f"job {job}: {pair[0]} -> {pair[1]} moved from "
                            f"{old} to {new}: {reason}", job=job, src=pair[0],
                            dst=pair[1], spine=new.spine, reason=reason)
        if len(moved) > MOVE_EVENTS:
            self._event("job_reroute", f"{len(moved)} job pairs moved in all: {reason}",
                        pairs=len(moved), reason=reason)
        return {leaf for leaf in set(before) | set(after)
                if before.get(leaf) != after.get(leaf)}

    def _read_back(self, topo: TeTopology, leaf_of: Mapping[str, int]
                   ) -> dict[Pair, SpinePath]:
        """The pairs' paths read back from the switches after a restart (when that
        uplink still leads to a spine; between pods, with the super-spine its spine's
        entry names)."""
        out: dict[Pair, SpinePath] = {}
        for pair, (leaf, rule) in self._recovered.items():
            port = C.cookie_low(rule.cookie)
            spine = next((s for p, s in topo.uplinks.get(leaf, ()) if p == port), None)
            if spine is None:
                continue
            out[pair] = SpinePath(leaf, port, spine)
            up = self._recovered_up.get(pair)
            dst = leaf_of.get(pair[1])
            if up is not None and up[0] == spine and dst is not None:
                sport = C.cookie_low(up[1].cookie)
                out[pair] = next((p for p in topo.paths(leaf, dst)
                                  if p[:4] == (leaf, port, spine, sport)), out[pair])
        return out

    def _background(self, loads: Mapping[Resource, float],
                    leaf_of: Mapping[str, int]) -> dict[Resource, float]:
        """Measured load without the jobs' own pairs (they are placed anew)."""
        out = dict(loads)
        for pl in self.placements.values():
            for pair, path in pl.paths.items():
                c = self.counters.get(pair)
                dst = leaf_of.get(pair[1])
                if c is None or dst is None:
                    continue
                for r in resources(path, dst):
                    if r in out:
                        out[r] = max(0.0, out[r] - c.rate_bps)
        return out

    # --- entries -------------------------------------------------------------------------------
    def _owners(self) -> dict[Pair, tuple[JobSpec, SpinePath]]:
        specs = {s.job_id: s for s in self.specs()}
        out: dict[Pair, tuple[JobSpec, SpinePath]] = {}
        for job, pl in self.placements.items():
            spec = specs.get(job)
            if spec is not None:
                for pair, path in pl.paths.items():
                    out[pair] = (spec, path)
        return out

    def _build_rules(self, owners: Mapping[Pair, tuple[JobSpec, SpinePath]],
                     where: Mapping[str, HostPort],
                     dscp_of: Mapping[str, int] | None) -> dict[int, dict]:
        by_leaf: dict[int, dict] = {}
        for pair, (spec, path) in owners.items():
            cls = spec.traffic_class
            dscp = dscp_of.get(cls) if cls and dscp_of else None
            rule = pair_rule(pair, spec.transport, where[pair[0]][1], path.port, dscp)
            by_leaf.setdefault(path.leaf, {})[rule.key] = rule
            if path.super_spine:
                rule = spine_pair_rule(pair, spec.transport, path.spine_port)
                by_leaf.setdefault(path.spine, {})[rule.key] = rule
        # (their jobs wait for a leaf)
        for dpid, rule in [*self._recovered.values(), *self._recovered_up.values()]:
            by_leaf.setdefault(dpid, {})[rule.key] = rule
        return by_leaf

    def rules_of(self, dpid: int) -> dict:
        """The pair entries a leaf (or a spine, between pods) should hold (keyed like the
        rest of its flows)."""
        return self._rules.get(dpid, {})

    def covers(self, key: FlowKey) -> bool:
        """True when a job's pair entry holds the flow ``key`` (the pair has an entry and
        the flow is of its transport)."""
        transport = self._covered.get((key.src_ip, key.dst_ip))
        if transport is None:
            return False
        fields = {"ip_proto": key.proto, "udp_dst": key.dst_port if key.proto == UDP else None}
        return all(fields[f] == v for f, v in TRANSPORT_FIELDS[transport].items())

    def recover(self, dpid: int, rules: list[FlowRule]) -> None:
        """A switch's pair entries read back after a restart (a leaf's, a spine's between
        pods): the jobs (from the state file) keep those paths where they still hold."""
        for rule in rules:
            pair = pair_of(rule.match)
            if pair is not None:
                into = self._recovered if rule.table == C.TABLE_TE else self._recovered_up
                into[pair] = (dpid, rule)
        if rules:
            self.dirty = True

    # --- counters and status -------------------------------------------------------------------
    def update_counters(self, counters: Mapping[Pair, int], now: float,
                        smoothing: float = 0.5) -> None:
        for pair, count in counters.items():
            c = self.counters.get(pair)
            if c is None:
                self.counters[pair] = PairCounter(count, now, 0.0)
                continue
            if count < c.bytes or now <= c.at:  # the entry was re-made
                c.bytes, c.at = count, now
                continue
            sample = (count - c.bytes) * 8 / (now - c.at)
            c.rate_bps = smoothing * sample + (1 - smoothing) * c.rate_bps
            c.bytes, c.at = count, now
        placed = {pair for pl in self.placements.values() for pair in pl.paths}
        for pair in [p for p in self.counters if p not in placed]:
            del self.counters[pair]

    def infos(self, leaf_of: Mapping[str, int], loads: Mapping[Resource, float],
              topo: TeTopology | None) -> tuple[JobInfo, ...]:
        out = []
        for spec in self.specs():
            seq, _, registered = self._jobs[spec.job_id]
            pl = self.placements.get(spec.job_id) or JobPlacement()
            pairs = []
            for k, step in enumerate(spec.steps()):
                for a, b in step:
                    pair = spec.host_pair((a, b))
                    path = pl.paths.get(pair)
                    state = "placed" if path else (
                        "pending" if pl.pending or pl.waiting
                        or spec.job_id not in self.placements else
                        "local" if pair in pl.local else
                        f"shared:{pl.shared[pair]}" if pair in pl.shared else "no path")
                    if pair in pl.shared:  # it follows the other job's entry
                        path = next((o.paths[pair] for o in self.placements.values()
                                     if pair in o.paths), None)
                    c = self.counters.get(pair) or PairCounter()
                    pairs.append(JobPairInfo(
                        a, b, pair[0], pair[1], leaf_of.get(pair[0], 0),
                        leaf_of.get(pair[1], 0), path.spine if path else 0,
                        path.port if path else 0, k, state, c.bytes, c.rate_bps,
                        path.super_spine if path else 0))
            worst, count = pl.worst
            util = 0.0
            if worst is not None and topo is not None and worst in topo.capacity:
                util = loads.get(worst, 0.0) / topo.cap(worst)
            if pl.pending:
                state = f"pending: {', '.join(pl.pending)} not known as hosts yet"
            elif pl.waiting:
                state = ("pending: waiting for leaf "
                         f"{', '.join(map(str, pl.waiting))} to settle")
            elif spec.job_id not in self.placements:
                state = "pending"
            elif pl.unplaced:
                state = f"partly placed: {len(pl.unplaced)} pairs have no path in service"
            else:
                state = "placed"
            out.append(JobInfo(spec.job_id, spec.members, spec.pattern, spec.transport,
                               spec.traffic_class, spec.priority, registered, state,
                               tuple(pairs), resource_text(worst) if worst else "", count,
                               util, spec.pairs))
        return tuple(out)
