"""A fake switch's OpenFlow 1.3 state: flow tables, groups, meters and ports, changed
by flow-mods, group-mods and meter-mods with the protocol's semantics (and Open
vSwitch's where the protocol leaves a choice), and the counters kept for statistics.

Flow-mods: ``add`` replaces an entry with the same match and priority (counters reset),
refuses an overlap with ``OFPFF_CHECK_OVERLAP``; ``modify``/``modify_strict`` change the
instructions of the entries selected (never the cookie, never add one: OpenFlow 1.3);
``delete``/``delete_strict`` select by table (or all), cookie under its mask,
``out_port``/``out_group``; non-strict selection takes every entry at least as specific
as the request's match. Each request is checked before anything changes, with the
error a switch gives (match prerequisites, goto to an earlier table, a group or meter
that does not exist, ``set_field`` whose header the match does not guarantee).
Deleting a group removes the entries that output to it, deleting a meter those that
use it (its ``meter`` instruction). Hard and idle timeouts expire entries.

Packets through this state: :mod:`tests.fakes.pipeline`.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from os_ken.ofproto import nx_actions  # noqa: F401 - registers the Nicira actions
from os_ken.ofproto import ofproto_v1_3 as ofp
from os_ken.ofproto import ofproto_v1_3_parser as parser

from tests.fakes.fields import PREREQS, Match, OFError
from tests.fakes.packet import SETTABLE

N_TABLES = 254
MAX_BANDS = 8  # (Open vSwitch's userspace datapath)
NX_CONTROLLER_ACTIONS = (parser.NXActionController, parser.NXActionController2)


@dataclass
class Port:
    port_no: int
    name: str
    hw_addr: str
    config: int = 0
    state: int = ofp.OFPPS_LIVE
    curr_speed: int = 10_000_000  # kbit/s (what a Mininet veth reports)
    counters: dict[str, int] = field(default_factory=lambda: dict.fromkeys(
        ("rx_packets", "tx_packets", "rx_bytes", "tx_bytes", "rx_dropped", "tx_dropped"), 0))
    since: float = field(default_factory=time.monotonic)

    @property
    def up(self) -> bool:
        return not self.state & ofp.OFPPS_LINK_DOWN and not self.config & ofp.OFPPC_PORT_DOWN


@dataclass
class FlowEntry:
    table_id: int
    priority: int
    match: Match
    instructions: list[Any]  # os-ken instruction objects, as received
    cookie: int = 0
    idle_timeout: int = 0
    hard_timeout: int = 0
    flags: int = 0
    installed: float = field(default_factory=time.monotonic)
    last_hit: float = field(default_factory=time.monotonic)
    packet_count: int = 0
    byte_count: int = 0

    def actions(self) -> Iterable[Any]:
        for ins in self.instructions:
            if isinstance(ins, parser.OFPInstructionActions):
                yield from ins.actions

    def outputs_to(self, port: int) -> bool:
        return any(isinstance(a, parser.OFPActionOutput) and a.port == port
                   for a in self.actions())

    def groups(self) -> set[int]:
        return {a.group_id for a in self.actions() if isinstance(a, parser.OFPActionGroup)}

    def meter(self) -> int | None:
        return next((i.meter_id for i in self.instructions
                     if isinstance(i, parser.OFPInstructionMeter)), None)


@dataclass
class Group:
    group_id: int
    type: int
    buckets: list[Any]  # os-ken OFPBucket objects
    installed: float = field(default_factory=time.monotonic)
    packet_count: int = 0
    byte_count: int = 0
    bucket_counts: list[list[int]] = field(default_factory=list)  # [packets, bytes] each


@dataclass
class Meter:
    meter_id: int
    flags: int
    bands: list[Any]  # os-ken drop bands
    installed: float = field(default_factory=time.monotonic)
    packet_in: int = 0
    byte_in: int = 0
    band_counts: list[list[int]] = field(default_factory=list)  # [packets, bytes] each
    tokens: list[float] = field(default_factory=list)  # each band's bucket
    refilled: float = field(default_factory=time.monotonic)

    def reset(self) -> None:
        self.band_counts = [[0, 0] for _ in self.bands]
        self.tokens = [self._capacity(b) for b in self.bands]
        self.refilled = time.monotonic()

    def _capacity(self, band: Any) -> float:
        burst = band.burst_size if self.flags & ofp.OFPMF_BURST else 0
        return float(burst or band.rate)

    def admit(self, length: int, now: float) -> bool:
        """Token buckets, one per drop band (a band's rate refills it, its burst -- else
        its rate -- bounds it): True if the packet passes. Over several bands' rates,
        the band with the highest of them applies (OpenFlow 1.3)."""
        self.packet_in += 1
        self.byte_in += length
        cost = 1.0 if self.flags & ofp.OFPMF_PKTPS else length * 8 / 1000.0
        elapsed, self.refilled = max(0.0, now - self.refilled), now
        over = None
        for i, band in enumerate(self.bands):
            self.tokens[i] = min(self._capacity(band), self.tokens[i] + elapsed * band.rate)
            if self.tokens[i] < cost and (over is None or band.rate > self.bands[over].rate):
                over = i
        if over is None:
            for i in range(len(self.bands)):
                self.tokens[i] -= cost
            return True
        self.band_counts[over][0] += 1
        self.band_counts[over][1] += length
        return False


def _err(t: int, c: int, why: str) -> OFError:
    return OFError(t, c, why)


class SwitchTables:
    """Everything one switch holds. Not thread-safe: its owner serialises access."""

    def __init__(self) -> None:
        self.tables: dict[int, dict[tuple, FlowEntry]] = {}
        self.groups: dict[int, Group] = {}
        self.meters: dict[int, Meter] = {}
        self.ports: dict[int, Port] = {}
        self.lookups = [0] * N_TABLES
        self.matched = [0] * N_TABLES
        self._sorted: dict[int, list[FlowEntry]] = {}

    # --- reading ----------------------------------------------------------------------------
    def entries(self, table_id: int = ofp.OFPTT_ALL) -> list[FlowEntry]:
        ids = sorted(self.tables) if table_id == ofp.OFPTT_ALL else [table_id]
        return [e for t in ids for e in self.ordered(t)]

    def ordered(self, table_id: int) -> list[FlowEntry]:
        """A table's entries, highest priority first (what lookup walks)."""
        got = self._sorted.get(table_id)
        if got is None:
            got = sorted(self.tables.get(table_id, {}).values(),
                         key=lambda e: (-e.priority, e.installed))
            self._sorted[table_id] = got
        return got

    def select(self, table_id: int, match: Match, cookie: int, cookie_mask: int,
               out_port: int = ofp.OFPP_ANY, out_group: int = ofp.OFPG_ANY,
               priority: int | None = None) -> list[FlowEntry]:
        """Entries a non-strict request selects (strict: give ``priority``)."""
        got = []
        for e in self.entries(table_id):
            if priority is not None:
                if e.priority != priority or e.match != match:
                    continue
            elif not e.match.within(match):
                continue
            if (e.cookie ^ cookie) & cookie_mask:
                continue
            if out_port != ofp.OFPP_ANY and not e.outputs_to(out_port):
                continue
            if out_group != ofp.OFPG_ANY and out_group not in e.groups():
                continue
            got.append(e)
        return got

    # --- flow-mod ---------------------------------------------------------------------------
    def flow_mod(self, m: Any, match: Match, now: float) -> list[tuple[FlowEntry, int]]:
        """Apply an ``OFPFlowMod`` (os-ken, parsed) whose match is ``match``. Returns the
        entries removed with the reason (for flow-removed messages); OFError if refused."""
        cmd = m.command
        if cmd in (ofp.OFPFC_DELETE, ofp.OFPFC_DELETE_STRICT):
            if m.table_id != ofp.OFPTT_ALL and m.table_id >= N_TABLES:
                raise _err(ofp.OFPET_FLOW_MOD_FAILED, ofp.OFPFMFC_BAD_TABLE_ID, "table")
            strict = cmd == ofp.OFPFC_DELETE_STRICT
            gone = self.select(m.table_id, match, m.cookie, m.cookie_mask, m.out_port,
                               m.out_group, m.priority if strict else None)
            self._remove(gone)
            return [(e, ofp.OFPRR_DELETE) for e in gone]
        if cmd not in (ofp.OFPFC_ADD, ofp.OFPFC_MODIFY, ofp.OFPFC_MODIFY_STRICT):
            raise _err(ofp.OFPET_FLOW_MOD_FAILED, ofp.OFPFMFC_BAD_COMMAND, f"command {cmd}")
        if m.table_id >= N_TABLES:
            raise _err(ofp.OFPET_FLOW_MOD_FAILED, ofp.OFPFMFC_BAD_TABLE_ID, "table")
        if m.buffer_id != ofp.OFP_NO_BUFFER:
            raise _err(ofp.OFPET_BAD_REQUEST, ofp.OFPBRC_BUFFER_UNKNOWN, "no buffers")
        match.check_prereqs()
        self.check_instructions(m.table_id, match, m.instructions)
        if cmd == ofp.OFPFC_ADD:
            table = self.tables.setdefault(m.table_id, {})
            key = (m.priority, match)
            if m.flags & ofp.OFPFF_CHECK_OVERLAP and any(
                    e.priority == m.priority and e.match.overlaps(match) and k != key
                    for k, e in table.items()):
                raise _err(ofp.OFPET_FLOW_MOD_FAILED, ofp.OFPFMFC_OVERLAP, "overlap")
            table[key] = FlowEntry(m.table_id, m.priority, match, list(m.instructions),
                                   m.cookie, m.idle_timeout, m.hard_timeout, m.flags,
                                   now, now)
            self._sorted.pop(m.table_id, None)
            return []
        strict = cmd == ofp.OFPFC_MODIFY_STRICT
        for e in self.select(m.table_id, match, m.cookie, m.cookie_mask,
                             priority=m.priority if strict else None):
            e.instructions = list(m.instructions)
            if m.flags & ofp.OFPFF_RESET_COUNTS:
                e.packet_count = e.byte_count = 0
        return []

    def _remove(self, gone: Iterable[FlowEntry]) -> None:
        for e in gone:
            self.tables[e.table_id].pop((e.priority, e.match), None)
            self._sorted.pop(e.table_id, None)

    def check_instructions(self, table_id: int, match: Match, instructions: list) -> None:
        seen: set[type] = set()
        for ins in instructions:
            kind = (type(ins), getattr(ins, "type", None))
            if kind in seen:
                raise _err(ofp.OFPET_BAD_INSTRUCTION, ofp.OFPBIC_UNSUP_INST, "twice")
            seen.add(kind)
            if isinstance(ins, parser.OFPInstructionGotoTable):
                if not table_id < ins.table_id < N_TABLES:
                    raise _err(ofp.OFPET_BAD_INSTRUCTION, ofp.OFPBIC_BAD_TABLE_ID,
                               f"goto {ins.table_id} from {table_id}")
            elif isinstance(ins, parser.OFPInstructionMeter):
                if ins.meter_id not in self.meters:
                    raise _err(ofp.OFPET_METER_MOD_FAILED, ofp.OFPMMFC_UNKNOWN_METER,
                               f"meter {ins.meter_id}")
            elif isinstance(ins, parser.OFPInstructionActions):
                self.check_actions(ins.actions, match)
            elif not isinstance(ins, parser.OFPInstructionWriteMetadata):
                raise _err(ofp.OFPET_BAD_INSTRUCTION, ofp.OFPBIC_UNKNOWN_INST, repr(ins))

    def check_actions(self, actions: list, match: Match | None) -> None:
        """Refuse what this switch cannot do, as a switch does at flow-mod time.
        ``match`` None: a group's bucket (no match to check ``set_field`` against)."""
        for a in actions:
            if isinstance(a, parser.OFPActionOutput):
                ok = 0 < a.port <= ofp.OFPP_MAX or a.port in (
                    ofp.OFPP_IN_PORT, ofp.OFPP_ALL, ofp.OFPP_FLOOD, ofp.OFPP_CONTROLLER,
                    ofp.OFPP_LOCAL, ofp.OFPP_TABLE)
                if not ok:
                    raise _err(ofp.OFPET_BAD_ACTION, ofp.OFPBAC_BAD_OUT_PORT, f"{a.port:#x}")
            elif isinstance(a, parser.OFPActionGroup):
                if a.group_id not in self.groups:
                    raise _err(ofp.OFPET_BAD_ACTION, ofp.OFPBAC_BAD_OUT_GROUP,
                               f"group {a.group_id}")
            elif isinstance(a, parser.OFPActionSetField):
                if a.key not in SETTABLE:
                    raise _err(ofp.OFPET_BAD_ACTION, ofp.OFPBAC_BAD_SET_TYPE, a.key)
                if match is not None:
                    for need, values in PREREQS.get(a.key, ()):
                        if match.exact(need) not in values:
                            raise _err(ofp.OFPET_BAD_ACTION, ofp.OFPBAC_MATCH_INCONSISTENT,
                                       f"set_field {a.key} needs {need} in {values}")
            elif not isinstance(a, (parser.OFPActionSetQueue, *NX_CONTROLLER_ACTIONS)):
                raise _err(ofp.OFPET_BAD_ACTION, ofp.OFPBAC_BAD_TYPE,
                           f"{type(a).__name__} is not supported by the fake switch")

    def expire(self, now: float) -> list[tuple[FlowEntry, int]]:
        """Entries whose hard or idle timeout has run out, removed."""
        gone = []
        for e in self.entries():
            if e.hard_timeout and now - e.installed >= e.hard_timeout:
                gone.append((e, ofp.OFPRR_HARD_TIMEOUT))
            elif e.idle_timeout and now - e.last_hit >= e.idle_timeout:
                gone.append((e, ofp.OFPRR_IDLE_TIMEOUT))
        self._remove(e for e, _ in gone)
        return gone

    # --- group-mod --------------------------------------------------------------------------
    def group_mod(self, command: int, gtype: int, group_id: int,
                  buckets: list) -> list[tuple[FlowEntry, int]]:
        if command == ofp.OFPGC_DELETE:
            ids = list(self.groups) if group_id == ofp.OFPG_ALL else [group_id]
            gone = [e for e in self.entries() if e.groups() & set(ids)]
            self._remove(gone)
            for gid in ids:
                self.groups.pop(gid, None)
            return [(e, ofp.OFPRR_GROUP_DELETE) for e in gone]
        if command not in (ofp.OFPGC_ADD, ofp.OFPGC_MODIFY):
            raise _err(ofp.OFPET_GROUP_MOD_FAILED, ofp.OFPGMFC_BAD_COMMAND, str(command))
        if group_id > ofp.OFPG_MAX:
            raise _err(ofp.OFPET_GROUP_MOD_FAILED, ofp.OFPGMFC_INVALID_GROUP, str(group_id))
        if command == ofp.OFPGC_ADD and group_id in self.groups:
            raise _err(ofp.OFPET_GROUP_MOD_FAILED, ofp.OFPGMFC_GROUP_EXISTS, str(group_id))
        if command == ofp.OFPGC_MODIFY and group_id not in self.groups:
            raise _err(ofp.OFPET_GROUP_MOD_FAILED, ofp.OFPGMFC_UNKNOWN_GROUP, str(group_id))
        if gtype not in (ofp.OFPGT_ALL, ofp.OFPGT_SELECT, ofp.OFPGT_INDIRECT, ofp.OFPGT_FF):
            raise _err(ofp.OFPET_GROUP_MOD_FAILED, ofp.OFPGMFC_BAD_TYPE, str(gtype))
        if gtype == ofp.OFPGT_INDIRECT and len(buckets) != 1:
            raise _err(ofp.OFPET_GROUP_MOD_FAILED, ofp.OFPGMFC_INVALID_GROUP,
                       "an indirect group has one bucket")
        for b in buckets:
            if gtype != ofp.OFPGT_SELECT and b.weight:
                raise _err(ofp.OFPET_GROUP_MOD_FAILED, ofp.OFPGMFC_WEIGHT_UNSUPPORTED,
                           "weight outside a select group")
            if gtype == ofp.OFPGT_FF and b.watch_port == ofp.OFPP_ANY and \
                    b.watch_group == ofp.OFPG_ANY:
                raise _err(ofp.OFPET_GROUP_MOD_FAILED, ofp.OFPGMFC_BAD_WATCH,
                           "a fast-failover bucket watches nothing")
            if b.watch_group != ofp.OFPG_ANY and b.watch_group not in self.groups:
                raise _err(ofp.OFPET_GROUP_MOD_FAILED, ofp.OFPGMFC_BAD_WATCH, "watch_group")
            if any(isinstance(a, parser.OFPActionGroup) and a.group_id == group_id
                   for a in b.actions):
                raise _err(ofp.OFPET_GROUP_MOD_FAILED, ofp.OFPGMFC_LOOP, "itself")
            self.check_actions(b.actions, None)
        old = self.groups.get(group_id)
        group = Group(group_id, gtype, list(buckets),
                      bucket_counts=[[0, 0] for _ in buckets])
        if old is not None:  # (a modified group keeps its counters, not its buckets')
            group.installed, group.packet_count, group.byte_count = \
                old.installed, old.packet_count, old.byte_count
        self.groups[group_id] = group
        return []

    def bucket_live(self, bucket: Any, depth: int = 0) -> bool:
        """OpenFlow's liveness: a bucket that watches nothing is live; else the port it
        watches is up, or the group it watches has a live bucket."""
        if bucket.watch_port == ofp.OFPP_ANY and bucket.watch_group == ofp.OFPG_ANY:
            return True
        port = self.ports.get(bucket.watch_port)
        if port is not None and port.up:
            return True
        group = self.groups.get(bucket.watch_group)
        return group is not None and depth < 8 and any(
            self.bucket_live(b, depth + 1) for b in group.buckets)

    # --- meter-mod --------------------------------------------------------------------------
    def meter_mod(self, command: int, flags: int, meter_id: int,
                  bands: list) -> list[tuple[FlowEntry, int]]:
        if command == ofp.OFPMC_DELETE:
            ids = list(self.meters) if meter_id == ofp.OFPM_ALL else [meter_id]
            gone = [e for e in self.entries() if e.meter() in ids]
            self._remove(gone)
            for mid in ids:
                self.meters.pop(mid, None)
            return [(e, ofp.OFPRR_DELETE) for e in gone]
        if command not in (ofp.OFPMC_ADD, ofp.OFPMC_MODIFY):
            raise _err(ofp.OFPET_METER_MOD_FAILED, ofp.OFPMMFC_BAD_COMMAND, str(command))
        if not 0 < meter_id <= ofp.OFPM_MAX:
            raise _err(ofp.OFPET_METER_MOD_FAILED, ofp.OFPMMFC_INVALID_METER, str(meter_id))
        if command == ofp.OFPMC_ADD and meter_id in self.meters:
            raise _err(ofp.OFPET_METER_MOD_FAILED, ofp.OFPMMFC_METER_EXISTS, str(meter_id))
        if command == ofp.OFPMC_MODIFY and meter_id not in self.meters:
            raise _err(ofp.OFPET_METER_MOD_FAILED, ofp.OFPMMFC_UNKNOWN_METER, str(meter_id))
        if bool(flags & ofp.OFPMF_KBPS) == bool(flags & ofp.OFPMF_PKTPS):
            raise _err(ofp.OFPET_METER_MOD_FAILED, ofp.OFPMMFC_BAD_FLAGS, "kbps or pktps")
        if len(bands) > MAX_BANDS:
            raise _err(ofp.OFPET_METER_MOD_FAILED, ofp.OFPMMFC_OUT_OF_BANDS, "bands")
        for band in bands:
            if not isinstance(band, parser.OFPMeterBandDrop):  # (userspace: drop only)
                raise _err(ofp.OFPET_METER_MOD_FAILED, ofp.OFPMMFC_BAD_BAND, repr(band))
            if band.rate == 0:
                raise _err(ofp.OFPET_METER_MOD_FAILED, ofp.OFPMMFC_BAD_RATE, "rate 0")
        old = self.meters.get(meter_id)
        meter = Meter(meter_id, flags, list(bands))
        meter.reset()
        if old is not None:
            meter.installed, meter.packet_in, meter.byte_in = \
                old.installed, old.packet_in, old.byte_in
        self.meters[meter_id] = meter
        return []

    def flow_counts(self) -> collections.Counter[int]:
        """meter id -> entries that use it (by instruction or metered controller
        action), all meters in one pass over the entries."""
        counts: collections.Counter[int] = collections.Counter()
        for e in self.entries():
            used = {a.meter_id for a in e.actions() if isinstance(a, NX_CONTROLLER_ACTIONS)
                    and getattr(a, "meter_id", None) is not None}
            m = e.meter()
            if m is not None:
                used.add(m)
            counts.update(used)
        return counts

    def group_refs(self, group_id: int) -> int:
        return sum(1 for e in self.entries() if group_id in e.groups())
