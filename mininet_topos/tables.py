"""What Open vSwitch bridges hold, compared with what the controller wants them to hold.

The controller says what it wants through the API (``GetSwitchEntries``: ovs-ofctl
lines). Those lines are loaded into a scratch bridge and dumped back, so both sides are
written by OVS itself and compared as text: nothing here parses OpenFlow. Entries the
controller installs outside its desired state on purpose (self-expiring "declined flow"
entries) are left out of the comparison.
"""

from __future__ import annotations

import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from controller.cli.client import FabricClient
from controller.core import constants as C

SCRATCH = "afcheck"  # a bridge with no ports and no controller: OVS's own normal form
_COUNTERS = ("duration=", "n_packets=", "n_bytes=", "idle_age=", "hard_age=")


def ofctl(bridge: str, command: str, *args: str) -> str:
    got = subprocess.run(["ovs-ofctl", "-O", "OpenFlow13", "--no-names", command, bridge,
                          *args], capture_output=True, text=True)
    if got.returncode:
        detail = Path(args[0]).read_text() if args and Path(args[0]).is_file() else args
        raise RuntimeError(f"ovs-ofctl {command} {bridge}: {got.stderr.strip()}\n{detail}")
    return got.stdout


def _outside_desired(entry: str) -> bool:
    """A declined-flow entry: installed with a hard timeout, never part of the desired state."""
    cookie = int(entry.split("cookie=", 1)[1].split(",", 1)[0], 16) if "cookie=" in entry else 0
    return C.is_ours(cookie) and C.cookie_kind(cookie) == C.KIND_NOCOPY


def held(bridge: str) -> dict[str, set[str]]:
    """The bridge's flow entries, groups and meters as normalized lines (no counters)."""
    flows = set()
    for line in ofctl(bridge, "dump-flows").splitlines()[1:]:
        parts = [p for p in line.strip().split(", ") if not p.startswith(_COUNTERS)]
        entry = ", ".join(parts)
        if not _outside_desired(entry):
            flows.add(entry)
    groups = {g.strip() for g in ofctl(bridge, "dump-groups").splitlines()[1:] if g.strip()}
    meters = set()
    for block in ofctl(bridge, "dump-meters").split("\n\n"):
        lines = [ln.strip() for ln in block.splitlines() if ln.strip()]
        lines = [ln for ln in lines if not ln.startswith("OFPST_")]
        if lines:
            meters.add(" ".join(lines))
    return {"flows": flows, "groups": groups, "meters": meters}


def normalized(entries) -> dict[str, set[str]]:
    """The lines of a ``SwitchEntries`` reply as OVS writes them, through the scratch bridge."""
    subprocess.run(["ovs-vsctl", "--may-exist", "add-br", SCRATCH, "--", "set", "bridge",
                    SCRATCH, "datapath_type=netdev", "fail_mode=secure",
                    "protocols=OpenFlow13"], check=True, capture_output=True)
    for what in ("del-flows", "del-groups", "del-meters"):
        ofctl(SCRATCH, what)
    for meter in entries.meters:
        ofctl(SCRATCH, "add-meter", meter)
    with tempfile.TemporaryDirectory() as tmp:
        for what, lines in (("add-groups", entries.groups), ("add-flows", entries.flows)):
            path = Path(tmp) / what
            path.write_text("\n".join(lines) + "\n")
            if lines:
                ofctl(SCRATCH, what, str(path))
    return held(SCRATCH)


def remove_scratch() -> None:
    subprocess.run(["ovs-vsctl", "--if-exists", "del-br", SCRATCH], capture_output=True)


@dataclass
class Drift:
    """How one switch differs from what the controller wants."""

    switch: str
    complete: bool = True
    pending: int = 0
    kept_groups: tuple[int, ...] = ()
    stale: dict[str, list[str]] = field(default_factory=dict)  # held, not wanted
    missing: dict[str, list[str]] = field(default_factory=dict)  # wanted, not held

    @property
    def none(self) -> bool:
        return (self.complete and not self.pending and not self.kept_groups
                and not self.stale and not self.missing)

    def __str__(self) -> str:
        out = [f"{self.switch}: complete={self.complete} pending={self.pending} "
               f"kept_groups={list(self.kept_groups)}"]
        for kind, lines in self.stale.items():
            out += [f"  stale {kind}: {ln}" for ln in lines]
        for kind, lines in self.missing.items():
            out += [f"  missing {kind}: {ln}" for ln in lines]
        return "\n".join(out)


def drift(client: FabricClient, switches: dict[str, int]) -> list[Drift]:
    """Every switch (bridge name -> dpid) that does not hold exactly what the controller
    wants, with the entries that differ; an empty list when all are in sync."""
    out = []
    try:
        for name, dpid in switches.items():
            entries = client.switch_entries(dpid)
            want = normalized(entries)
            have = held(name)
            d = Drift(name, entries.complete, entries.pending, tuple(entries.kept_groups))
            for kind in ("flows", "groups", "meters"):
                if have[kind] - want[kind]:
                    d.stale[kind] = sorted(have[kind] - want[kind])
                if want[kind] - have[kind]:
                    d.missing[kind] = sorted(want[kind] - have[kind])
            if not d.none:
                out.append(d)
    finally:
        remove_scratch()
    return out


def dpids(net) -> dict[str, int]:
    """Bridge name -> datapath id of a Mininet network's switches."""
    return {sw.name: int(sw.dpid, 16) for sw in net.switches}
