"""A pure, comparable description of OpenFlow flow and group entries, and the diff
that reconciles what a switch holds with what the controller wants it to hold.

Matches are sorted tuples of ``(field, value)`` (a masked value is ``(value, mask)``);
instructions are tuples such as ``("apply", (("output", 3),))``, ``("goto", 1)`` or
``("write_metadata", value, mask)``;
actions are ``("output", port)``, ``("controller", max_len)``, ``("group", id)``,
``("set_field", field, value)``, ``("meter_controller", max_len, meter_id)`` (to the
controller through a meter). Meters are ``MeterRule`` (packets per second, drop band).
The apps translate these to and from os-ken messages.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from controller.core.constants import cookie_kind
from controller.core.indexed_dict import IndexedDict

Match = tuple[tuple[str, Any], ...]
Action = tuple[Any, ...]
Instruction = tuple[Any, ...]


def make_match(**fields: Any) -> Match:
    """A canonical match from keyword fields (None values are left out)."""
    return tuple(sorted((k, v) for k, v in fields.items() if v is not None))


def apply_actions(*actions: Action) -> tuple[Instruction, ...]:
    return (("apply", tuple(actions)),)


@dataclass(frozen=True)
class FlowRule:
    table: int
    priority: int
    match: Match
    instructions: tuple[Instruction, ...]
    cookie: int

    @property
    def key(self) -> tuple[int, int, Match]:
        """What identifies an entry in a switch: OpenFlow's strict match."""
        return (self.table, self.priority, self.match)


@dataclass(frozen=True)
class Bucket:
    actions: tuple[Action, ...]
    weight: int = 1
    watch_port: int | None = None


@dataclass(frozen=True)
class GroupRule:
    group_id: int
    group_type: str  # "select" | "all" | "indirect" | "ff"
    buckets: tuple[Bucket, ...]


@dataclass(frozen=True)
class MeterRule:
    """A packets-per-second meter with one drop band."""

    meter_id: int
    rate_pps: int
    burst: int


@dataclass(frozen=True)
class SwitchDesired:
    """Everything aifabric wants one switch to hold."""

    flows: Mapping[tuple[int, int, Match], FlowRule]
    groups: Mapping[int, GroupRule]
    meters: Mapping[int, MeterRule] = field(default_factory=dict)

    @staticmethod
    def build(flows: Iterable[FlowRule], groups: Iterable[GroupRule],
              meters: Iterable[MeterRule] = ()) -> SwitchDesired:
        flow_map: dict[tuple[int, int, Match], FlowRule] = {}
        for rule in flows:  # (the key inline: ~100,000 rules per pass at 320 switches)
            key = (rule.table, rule.priority, rule.match)
            held = flow_map.setdefault(key, rule)
            if held is not rule and held != rule:
                raise ValueError(f"two different rules for one match: {key}")
        return SwitchDesired(flow_map, {g.group_id: g for g in groups},
                             {m.meter_id: m for m in meters})


@dataclass
class SyncPlan:
    """Messages that bring a switch from its current state to the desired one, in the
    order they must be sent: groups before the flows that use them, flows deleted
    before the groups they used."""

    meter_adds: list[MeterRule] = field(default_factory=list)
    meter_mods: list[MeterRule] = field(default_factory=list)
    group_adds: list[GroupRule] = field(default_factory=list)
    group_mods: list[GroupRule] = field(default_factory=list)
    flow_adds: list[FlowRule] = field(default_factory=list)
    flow_mods: list[FlowRule] = field(default_factory=list)
    flow_dels: list[FlowRule] = field(default_factory=list)
    group_dels: list[int] = field(default_factory=list)
    meter_dels: list[int] = field(default_factory=list)

    def __len__(self) -> int:
        return sum(
            len(x)
            for x in (
                self.group_adds,
                self.group_mods,
                self.flow_adds,
                self.flow_mods,
                self.flow_dels,
                self.group_dels,
                self.meter_adds,
                self.meter_mods,
                self.meter_dels,
            )
        )

    def add_flows(self, other: SyncPlan) -> SyncPlan:
        """This plan with ``other``'s entries too (plans of different entries of one
        switch: TE's pins and host entries)."""
        for mine, theirs in ((self.flow_adds, other.flow_adds),
                             (self.flow_mods, other.flow_mods),
                             (self.flow_dels, other.flow_dels)):
            if theirs:
                mine += theirs
                mine.sort(key=lambda r: _sort_key(r.key))
        return self

    def summary(self) -> str:
        return (
            f"groups +{len(self.group_adds)} ~{len(self.group_mods)} -{len(self.group_dels)}, "
            f"flows +{len(self.flow_adds)} ~{len(self.flow_mods)} -{len(self.flow_dels)}"
            + (f", meters +{len(self.meter_adds)} ~{len(self.meter_mods)} "
               f"-{len(self.meter_dels)}"
               if self.meter_adds or self.meter_mods or self.meter_dels else "")
        )


def _kind(rule: FlowRule) -> int:
    return cookie_kind(rule.cookie)


@dataclass
class SwitchMirror:
    """What the controller believes one switch holds among aifabric's own entries.

    It is loaded from the switch's flow and group statistics when the switch connects
    (so a reconnecting switch is reconciled, not wiped) and updated with every plan sent.
    """

    # (grouped by cookie kind: a sync of only TE's pins reads only those; a plain dict
    # given is made one)
    flows: IndexedDict[tuple[int, int, Match], FlowRule] = field(
        default_factory=lambda: IndexedDict(_kind))
    groups: dict[int, GroupRule] = field(default_factory=dict)
    meters: dict[int, MeterRule] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.flows, IndexedDict):
            self.flows = IndexedDict(_kind, self.flows)

    def plan(self, desired: SwitchDesired, additive: bool = False,
             keep_groups: frozenset[int] = frozenset()) -> SyncPlan:
        """The difference to ``desired``; ``additive`` plans only adds and changes (used
        before a switch is settled, when what it holds must not be removed yet).

        ``keep_groups`` are frozen: ids of groups and routes towards a switch the
        controller cannot judge yet (a leaf not back after a restart). They are neither
        removed nor changed (a route: an entry that matches the id in the metadata), nor
        are the entries that send to them or write them, unless ``desired`` says
        otherwise for such an entry, nor the groups a kept entry sends to."""
        out = SyncPlan()
        protected: set[int] = set()  # groups that entries left in place send to
        for mid, meter in sorted(desired.meters.items()):
            have_meter = self.meters.get(mid)
            if have_meter is None:
                out.meter_adds.append(meter)
            elif have_meter != meter:
                out.meter_mods.append(meter)
        # (A leaf with thousands of TE pins is planned after every placement, and almost
        # nothing differs each time: an entry the mirror holds as the very object wanted
        # is not compared, one found equal is held as that object from then on, and the
        # mirror is searched for entries to delete only if it holds more than is wanted.)
        for gid, group in sorted(desired.groups.items()):
            have = self.groups.get(gid)
            if have is group:
                continue
            if have is None:
                out.group_adds.append(group)
            elif have == group:
                self.groups[gid] = group
            elif not additive and gid not in keep_groups:
                # (additive: a group is not rewritten on a partial view of the fabric, e.g.
                # while the spines are still reconnecting after a controller restart)
                out.group_mods.append(group)
        held = self._plan_flows(desired.flows, out, keep_groups, protected)
        if additive:
            return out
        if len(self.flows) > held:  # (else every entry held is wanted)
            dels = []
            for key, rule in self.flows.items():
                if key in desired.flows:
                    continue
                if keep_groups and refs(rule) & keep_groups:
                    protected |= uses_groups(rule)
                else:
                    dels.append(rule)
            out.flow_dels = sorted(dels, key=lambda r: _sort_key(r.key))
        out.group_dels = sorted(gid for gid in self.groups
                                if gid not in desired.groups and gid not in keep_groups
                                and gid not in protected)
        out.meter_dels = sorted(mid for mid in self.meters if mid not in desired.meters)
        return out

    def _plan_flows(self, wanted: Mapping[tuple[int, int, Match], FlowRule], out: SyncPlan,
                    keep_groups: frozenset[int], protected: set[int]) -> int:
        """Adds and changes towards ``wanted`` into ``out`` (in table and priority
        order); how many wanted entries the switch holds already (with any cookie)."""
        held = 0
        for key, rule in wanted.items():
            have = self.flows.get(key)
            if have is rule:
                held += 1
                continue
            if have is None:
                out.flow_adds.append(rule)
                continue
            held += 1
            if keep_groups and routes_matched(have) & keep_groups:
                protected |= uses_groups(have)  # (a frozen route: left as it is)
                continue
            if have.cookie != rule.cookie:
                out.flow_adds.append(rule)  # an add replaces an entry with the same match
            elif have.instructions != rule.instructions:
                out.flow_mods.append(rule)
            else:
                self.flows[key] = rule
        out.flow_adds.sort(key=lambda r: _sort_key(r.key))
        out.flow_mods.sort(key=lambda r: _sort_key(r.key))
        return held

    def plan_part(self, wanted: Mapping[tuple[int, int, Match], FlowRule],
                  kinds: Collection[int], keep_groups: frozenset[int] = frozenset()
                  ) -> SyncPlan:
        """What :meth:`plan` would send for the entries of cookie kinds ``kinds``, when
        ``wanted`` is every such entry the switch should hold and nothing else of it
        changed, in a time that grows with those entries alone (a leaf's TE pins after
        a placement, beside hundreds of host entries and routes)."""
        return self.plan_keys(wanted, [key for kind in kinds for key in self.flows.group(kind)],
                              keep_groups)

    def plan_keys(self, wanted: Mapping[tuple[int, int, Match], FlowRule],
                  keys: Iterable[tuple[int, int, Match]],
                  keep_groups: frozenset[int] = frozenset()) -> SyncPlan:
        """What :meth:`plan` would send for the entries at ``keys``, when ``wanted`` is
        those of them the switch should hold and nothing else of it changed (a host's
        entry on every switch, in a time that grows with the hosts that changed)."""
        out = SyncPlan()
        self._plan_flows(wanted, out, keep_groups, set())
        dels = [rule for key in keys if key not in wanted
                and (rule := self.flows.get(key)) is not None
                and not (keep_groups and refs(rule) & keep_groups)]
        out.flow_dels = sorted(dels, key=lambda r: _sort_key(r.key))
        return out

    def apply(self, plan: SyncPlan) -> None:
        for group in plan.group_adds + plan.group_mods:
            self.groups[group.group_id] = group
        for rule in plan.flow_adds + plan.flow_mods:
            self.flows[rule.key] = rule
        for rule in plan.flow_dels:
            self.flows.pop(rule.key, None)
        for gid in plan.group_dels:
            self.groups.pop(gid, None)
        for meter in plan.meter_adds + plan.meter_mods:
            self.meters[meter.meter_id] = meter
        for mid in plan.meter_dels:
            self.meters.pop(mid, None)


def uses_groups(rule: FlowRule) -> set[int]:
    """Groups an entry sends to (applied or written)."""
    return {a[1] for ins in rule.instructions if ins[0] in ("apply", "write")
            for a in ins[1] if a[0] == "group"}


def routes_matched(rule: FlowRule) -> set[int]:
    """Route ids an entry matches (the metadata a leaf's route entry looks for)."""
    return {v[0] if isinstance(v, tuple) else v for k, v in rule.match if k == "metadata"}


def refs(rule: FlowRule) -> set[int]:
    """What an entry relies on: the groups it sends to, the route ids it writes into the
    metadata or matches."""
    return (uses_groups(rule) | routes_matched(rule)
            | {ins[1] for ins in rule.instructions if ins[0] == "write_metadata"})


def _sort_key(key: tuple[int, int, Match]) -> tuple[int, int, str]:
    table, priority, match = key
    return (table, -priority, repr(match))
