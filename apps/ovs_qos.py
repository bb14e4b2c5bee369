"""Queues on switch ports through OVSDB (``ovs-vsctl``) and, on the userspace datapath,
the DSCP -> queue map as tc u32 filters.

Only rows aifabric made (``external_ids:aifabric=qos``) are changed or removed; a port
with somebody else's QoS row is left alone. With the kernel datapath ``set_queue``
would pick the queue; the userspace datapath ignores it, so every port gets one u32
filter per class DSCP, pointing at the HTB class OVS made for the queue (``1:(q+1)``).
"""

from __future__ import annotations

import json
import logging
import subprocess
from dataclasses import dataclass

from controller.core.fabric.qos import PortQosPlan

log = logging.getLogger("aifabric.qos.ovs")

OWNER_KEY = "aifabric"
OWNER_VALUE = "qos"
TIMEOUT = 10


class OvsError(RuntimeError):
    pass


def _run(cmd: list[str]) -> str:
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise OvsError(f"{cmd[0]} failed: {exc}") from None
    if res.returncode != 0:
        raise OvsError(f"{' '.join(cmd[:4])}...: {res.stderr.strip() or res.returncode}")
    return res.stdout


def _ovsdb_value(v):
    """Decode OVSDB JSON notation into Python values."""
    if isinstance(v, list) and len(v) == 2 and v[0] in ("uuid", "set", "map"):
        kind, body = v
        if kind == "uuid":
            return body
        if kind == "set":
            return [_ovsdb_value(x) for x in body]
        return {_ovsdb_value(k): _ovsdb_value(val) for k, val in body}
    return v


@dataclass(frozen=True)
class PortQosState:
    """What OVSDB holds for one port's QoS."""

    qos_uuid: str | None
    ours: bool
    max_rate: int | None
    queues: dict[int, tuple[int, int, int]]  # queue -> (min, max, priority)
    queue_uuids: tuple[str, ...]


NODE_KEY = "aifabric-node"  # cluster mode: the instance that made a row


class OvsQos:
    def __init__(self, vsctl: str = "ovs-vsctl", db: str | None = None,
                 node: str | None = None) -> None:
        self.vsctl = [vsctl, "--timeout=5"] + ([f"--db={db}"] if db else [])
        # cluster mode: rows are marked with the instance that made them, and only this
        # instance's unreferenced rows are removed here (switches that share one OVSDB
        # may be mastered by several instances: another's row may be a moment from use)
        self.node = node
        self.remote = bool(db) and not db.startswith("unix:")
        self._dp_type: dict[str, str] = {}

    def _list(self, table: str, columns: str) -> list[dict]:
        out = json.loads(_run([*self.vsctl, "--format=json", f"--columns={columns}", "list",
                               table]))
        heads = out["headings"]
        return [{h: _ovsdb_value(v) for h, v in zip(heads, row, strict=True)}
                for row in out["data"]]

    def datapath_type(self, bridge: str) -> str:
        if bridge not in self._dp_type:
            self._dp_type[bridge] = _run(
                [*self.vsctl, "get", "bridge", bridge, "datapath_type"]).strip().strip('"')
        return self._dp_type[bridge]

    def read(self) -> tuple[dict[str, PortQosState], list[str], list[str]]:
        """Port name -> state, plus our QoS and Queue rows no port refers to."""
        queues = {q["_uuid"]: q for q in self._list("queue", "_uuid,other_config,external_ids")}
        qos_rows = {q["_uuid"]: q for q in
                    self._list("qos", "_uuid,type,other_config,queues,external_ids")}
        ports = self._list("port", "_uuid,name,qos")
        state: dict[str, PortQosState] = {}
        used_qos: set[str] = set()
        used_queues: set[str] = set()
        for p in ports:
            ref = p["qos"]
            qos_uuid = ref if isinstance(ref, str) else None
            if qos_uuid is None or qos_uuid not in qos_rows:
                state[p["name"]] = PortQosState(None, False, None, {}, ())
                continue
            row = qos_rows[qos_uuid]
            used_qos.add(qos_uuid)
            qmap = row["queues"] if isinstance(row["queues"], dict) else {}
            used_queues |= set(qmap.values())
            specs = {}
            for qid, quuid in qmap.items():
                oc = queues.get(quuid, {}).get("other_config", {}) or {}
                specs[int(qid)] = (int(oc.get("min-rate", 0)), int(oc.get("max-rate", 0)),
                                   int(oc.get("priority", 0)))
            oc = row["other_config"] or {}
            state[p["name"]] = PortQosState(
                qos_uuid,
                (row["external_ids"] or {}).get(OWNER_KEY) == OWNER_VALUE,
                int(oc["max-rate"]) if "max-rate" in oc else None,
                specs,
                tuple(qmap.values()),
            )
        orphan_qos = [u for u, r in qos_rows.items() if u not in used_qos
                      and self._removable(r["external_ids"])]
        orphan_queues = [u for u, r in queues.items() if u not in used_queues
                         and self._removable(r["external_ids"])]
        return state, orphan_qos, orphan_queues

    def _removable(self, ids: dict | None) -> bool:
        """An unreferenced row this instance may remove: one aifabric made, and in
        cluster mode this instance (or an aifabric that ran alone)."""
        ids = ids or {}
        return ids.get(OWNER_KEY) == OWNER_VALUE and ids.get(NODE_KEY) in (None, self.node)

    @staticmethod
    def matches(state: PortQosState, plan: PortQosPlan) -> bool:
        want = {q.queue: (q.min_rate, q.max_rate, q.priority) for q in plan.queues}
        return state.ours and state.max_rate == plan.rate and state.queues == want

    def apply(self, plans: dict[str, PortQosPlan], clear: list[str],
              old: dict[str, PortQosState], orphans: tuple[list[str], list[str]]) -> None:
        """One transaction: point ports at new rows, clear others, destroy what we replaced."""
        args: list[str] = []
        destroy_qos, destroy_queues = list(orphans[0]), list(orphans[1])
        mark = [f"external-ids:{OWNER_KEY}={OWNER_VALUE}"]
        if self.node:
            mark.append(f"external-ids:{NODE_KEY}={self.node}")
        for i, (port, plan) in enumerate(sorted(plans.items())):
            qrefs = " ".join(f"queues:{q.queue}=@p{i}q{q.queue}" for q in plan.queues)
            args += ["--", "set", "port", port, f"qos=@p{i}"]
            args += ["--", f"--id=@p{i}", "create", "qos", "type=linux-htb",
                     f"other-config:max-rate={plan.rate}", *mark, *qrefs.split()]
            for q in plan.queues:
                args += ["--", f"--id=@p{i}q{q.queue}", "create", "queue",
                         f"other-config:min-rate={q.min_rate}",
                         f"other-config:max-rate={q.max_rate}",
                         f"other-config:priority={q.priority}", *mark]
        for port in sorted(clear):
            args += ["--", "clear", "port", port, "qos"]
        for port in list(plans) + list(clear):
            st = old.get(port)
            if st is not None and st.ours and st.qos_uuid:
                destroy_qos.append(st.qos_uuid)
                destroy_queues += list(st.queue_uuids)
        for u in destroy_qos:
            args += ["--", "destroy", "qos", u]
        for u in destroy_queues:
            args += ["--", "destroy", "queue", u]
        if args:
            _run([*self.vsctl, *args])


# --- tc filters (userspace datapath) -----------------------------------------------------
FILTER_PRIO = 1


def ovs_htb_devices() -> set[str]:
    """Interfaces whose root qdisc is the HTB OVS installs for linux-htb QoS (handle 1:)."""
    out = _run(["tc", "qdisc", "show"])
    return {line.split(" dev ")[1].split()[0] for line in out.splitlines()
            if line.startswith("qdisc htb 1: dev ") and " root " in line}


def tc_filters(dev: str) -> dict[int, int]:
    """DSCP -> queue filters on ``dev`` under the HTB root 1:."""
    out = _run(["tc", "filter", "show", "dev", dev, "parent", "1:"])
    found: dict[int, int] = {}
    flow = None
    for line in out.splitlines():
        line = line.strip()
        if "flowid 1:" in line:
            flow = int(line.split("flowid 1:")[1].split()[0], 16)
        elif line.startswith("match ") and flow is not None:
            value_mask = line.split()[1]
            value, mask = value_mask.split("/")
            if int(mask, 16) == 0x00FC0000:
                found[int(value, 16) >> 18] = flow - 1
            flow = None
    return found


def leaf_fifos(dev: str) -> dict[int, int]:
    """Queue -> packet limit of the pfifo under each HTB class OVS made on ``dev``."""
    out = _run(["tc", "qdisc", "show", "dev", dev])
    found = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 7 and parts[1] == "pfifo" and parts[3] == "parent" \
                and parts[4].startswith("1:") and parts[5] == "limit":
            found[int(parts[4][2:], 16) - 1] = int(parts[6].rstrip("p"))
    return found


def set_leaf_fifo(dev: str, queue: int, limit: int) -> None:
    """A short FIFO under the queue's HTB class. On the userspace datapath the switch
    writes to the port through a packet socket whose send buffer (about 90 full-size
    frames) is shared by all classes: with HTB's default 1000-packet class queues, a
    flooding class fills that buffer and every class loses packets before HTB can tell
    them apart. Class queues shorter than the buffer make the drops land in the class
    that overflows."""
    _run(["tc", "qdisc", "replace", "dev", dev, "parent", f"1:{queue + 1:x}", "handle",
          f"{queue + 0x11:x}:", "pfifo", "limit", str(limit)])


def set_tc_filters(dev: str, dscp_to_queue: tuple[tuple[int, int], ...]) -> None:
    """Replace the DSCP filters of ``dev`` with exactly ``dscp_to_queue``."""
    subprocess.run(["tc", "filter", "del", "dev", dev, "parent", "1:", "prio",
                    str(FILTER_PRIO)], capture_output=True, timeout=TIMEOUT, check=False)
    for dscp, queue in dscp_to_queue:
        _run(["tc", "filter", "add", "dev", dev, "parent", "1:", "protocol", "ip", "prio",
              str(FILTER_PRIO), "u32", "match", "ip", "tos", hex(dscp << 2), "0xfc",
              "flowid", f"1:{queue + 1:x}"])
