"""One fake OpenFlow 1.3 switch's agent: what it answers to each controller message,
independent of sockets (the fleet carries the bytes).

It owns the switch's state (:class:`SwitchTables`, kept across sessions, as a switch in
fail-secure mode keeps its entries when its controller goes away), its pipeline, its
role (equal, master, slave; a stale generation is refused; a slave's writes are
refused with ``OFPBRC_IS_SLAVE``), its asynchronous configuration (which packet-ins,
port status and flow-removed messages the session gets), and counters of what it
received. Requests it cannot apply are answered with ``OFPT_ERROR`` (the offending
message's first 64 bytes) and change nothing.

Messages handled: hello, echo, features, get/set config, barrier, role, get/set async,
flow-mod, group-mod, meter-mod, port-mod, table-mod (accepted, ignored: deprecated in
1.3), packet-out, queue config, and multipart: desc, flow, aggregate, table, port stats,
port desc, queue (no queues: empty), group, group desc, group features, meter, meter
config, meter features. Anything else: ``OFPBRC_BAD_TYPE`` / ``OFPBRC_BAD_MULTIPART``.
"""

from __future__ import annotations

import struct
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from os_ken.ofproto import ofproto_v1_3 as ofp

from tests.fakes import ofwire as w
from tests.fakes import view
from tests.fakes.fields import OFError
from tests.fakes.oftables import Port, SwitchTables
from tests.fakes.pipeline import Output, Pipeline, ToController

NAMES = {v: k[5:].lower() for k, v in vars(ofp).items()
         if k.startswith("OFPT_") and isinstance(v, int)}
MP_NAMES = {v: k[6:].lower() for k, v in vars(ofp).items()
            if k.startswith("OFPMP_") and isinstance(v, int) and k != "OFPMP_EXPERIMENTER"}
_WRITES = {ofp.OFPT_FLOW_MOD, ofp.OFPT_GROUP_MOD, ofp.OFPT_PORT_MOD, ofp.OFPT_TABLE_MOD,
           ofp.OFPT_METER_MOD, ofp.OFPT_PACKET_OUT}
_ALL_PORT_STATUS = (1 << ofp.OFPPR_ADD) | (1 << ofp.OFPPR_DELETE) | (1 << ofp.OFPPR_MODIFY)
_ALL_REMOVED = sum(1 << r for r in (ofp.OFPRR_IDLE_TIMEOUT, ofp.OFPRR_HARD_TIMEOUT,
                                    ofp.OFPRR_DELETE, ofp.OFPRR_GROUP_DELETE))
# [master/equal, slave] masks: Open vSwitch's defaults for OpenFlow 1.3
DEFAULT_ASYNC = ([(1 << ofp.OFPR_NO_MATCH) | (1 << ofp.OFPR_ACTION), 0],
                 [_ALL_PORT_STATUS, _ALL_PORT_STATUS], [_ALL_REMOVED, 0])

Frames = list[Output]


class FakeSwitch:
    """A switch's agent and state. Every method expects the caller to hold ``lock``
    (the fleet's I/O thread does); the accessors below take it themselves."""

    def __init__(self, dpid: int, ports: list[Port], lock: threading.RLock | None = None,
                 reply_limit: int = w.MAX_MSG) -> None:
        self.dpid = dpid
        self.lock = lock or threading.RLock()
        self.reply_limit = reply_limit
        self.tables = SwitchTables()
        self.tables.ports = {p.port_no: p for p in ports}
        self.pipeline = Pipeline(self.tables)
        self.received: Counter[str] = Counter()  # message kinds, "multipart_request.flow"
        self.errors: list[tuple[int, int, str]] = []  # (type, code, why) sent, last 100
        self.generation: int | None = None  # (kept across sessions, as a switch does)
        self.role = ofp.OFPCR_ROLE_EQUAL
        self.async_masks = [list(m) for m in DEFAULT_ASYNC]
        self.miss_send_len = 128
        self.config_flags = 0
        self.answers_barriers = True  # False: reads them and never answers (a wedged agent)
        self.answers_echo = True  # False: echo requests go unanswered (a session that died)
        # called (on the fleet's I/O thread) with every flow-mod the switch applied
        self.on_flow_mod: Callable[[int, w.FlowMod], None] | None = None

    # --- sessions ---------------------------------------------------------------------------
    def session_started(self) -> bytes:
        """A new controller session: it starts as an equal, with the default async
        configuration. What to send first: HELLO."""
        self.role = ofp.OFPCR_ROLE_EQUAL
        self.async_masks = [list(m) for m in DEFAULT_ASYNC]
        self.received.clear()
        return w.hello(1)

    def _wants(self, kind: int, bit: int) -> bool:
        slave = self.role == ofp.OFPCR_ROLE_SLAVE
        return bool(self.async_masks[kind][1 if slave else 0] & (1 << bit))

    # --- frames -----------------------------------------------------------------------------
    def receive_frame(self, port_no: int, data: bytes, now: float) -> tuple[list[bytes], Frames]:
        """A frame arrives on a port: (messages to the controller, frames out)."""
        port = self.tables.ports.get(port_no)
        if port is None or not port.up:
            return [], []
        port.counters["rx_packets"] += 1
        port.counters["rx_bytes"] += len(data)
        return self._emit(self.pipeline.receive(port_no, data, now))

    def _emit(self, results: list) -> tuple[list[bytes], Frames]:
        msgs, frames = [], []
        for r in results:
            if isinstance(r, ToController):
                if self._wants(0, r.reason):
                    msgs.append(w.packet_in(r))
            elif isinstance(r, Output):
                port = self.tables.ports.get(r.port)
                if port is None:
                    continue
                if not port.up:
                    port.counters["tx_dropped"] += 1
                    continue
                port.counters["tx_packets"] += 1
                port.counters["tx_bytes"] += len(r.data)
                frames.append(r)
        return msgs, frames

    def set_port(self, port_no: int, up: bool) -> list[bytes]:
        """The port's link goes up or down (carrier): port status, if it changed."""
        port = self.tables.ports[port_no]
        state = (port.state & ~(ofp.OFPPS_LINK_DOWN | ofp.OFPPS_LIVE)) | (
            ofp.OFPPS_LIVE if up else ofp.OFPPS_LINK_DOWN)
        if state == port.state:
            return []
        port.state = state
        return self._port_status(ofp.OFPPR_MODIFY, port)

    def _port_status(self, reason: int, port: Port) -> list[bytes]:
        return [w.port_status(reason, port)] if self._wants(1, reason) else []

    def tick(self, now: float) -> list[bytes]:
        """Entries that time out are removed (flow-removed where asked for)."""
        return self._removed(self.tables.expire(now), now)

    def _removed(self, gone: list, now: float) -> list[bytes]:
        return [w.flow_removed(e, reason, now) for e, reason in gone
                if e.flags & ofp.OFPFF_SEND_FLOW_REM and self._wants(2, reason)]

    # --- messages ---------------------------------------------------------------------------
    def handle(self, data: bytes, now: float) -> tuple[list[bytes], Frames]:
        """One message from the controller: (messages back, frames out of ports)."""
        version, mtype, _, xid = struct.unpack_from("!BBHI", data)
        name = NAMES.get(mtype, str(mtype))
        self.received[name] += 1
        try:
            if version != w.VERSION and mtype != ofp.OFPT_HELLO:
                raise w.bad(ofp.OFPBRC_BAD_VERSION, f"version {version}")
            if mtype in _WRITES and self.role == ofp.OFPCR_ROLE_SLAVE:
                raise w.bad(ofp.OFPBRC_IS_SLAVE, name)
            handler = getattr(self, f"_on_{name}", None)
            if handler is None:
                raise w.bad(ofp.OFPBRC_BAD_TYPE, name)
            return handler(data, xid, now)
        except OFError as exc:
            self.errors = [*self.errors[-99:], (exc.type, exc.code, exc.why)]
            return [w.error(xid, exc.type, exc.code, data)], []

    def _on_hello(self, data: bytes, xid: int, now: float) -> tuple[list[bytes], Frames]:
        return [], []

    def _on_echo_request(self, data: bytes, xid: int, now: float):
        if not self.answers_echo:
            return [], []
        return [w.msg(ofp.OFPT_ECHO_REPLY, xid, data[8:])], []

    def _on_echo_reply(self, data: bytes, xid: int, now: float):
        return [], []

    def _on_features_request(self, data: bytes, xid: int, now: float):
        return [w.features_reply(xid, self.dpid)], []

    def _on_get_config_request(self, data: bytes, xid: int, now: float):
        body = struct.pack("!HH", self.config_flags, self.miss_send_len)
        return [w.msg(ofp.OFPT_GET_CONFIG_REPLY, xid, body)], []

    def _on_set_config(self, data: bytes, xid: int, now: float):
        self.config_flags, self.miss_send_len = struct.unpack_from("!HH", data, 8)
        return [], []

    def _on_barrier_request(self, data: bytes, xid: int, now: float):
        return ([w.msg(ofp.OFPT_BARRIER_REPLY, xid)] if self.answers_barriers else []), []

    def _on_role_request(self, data: bytes, xid: int, now: float):
        role, gen = struct.unpack_from("!I4xQ", data, 8)
        if role not in (ofp.OFPCR_ROLE_NOCHANGE, ofp.OFPCR_ROLE_EQUAL,
                        ofp.OFPCR_ROLE_MASTER, ofp.OFPCR_ROLE_SLAVE):
            raise OFError(ofp.OFPET_ROLE_REQUEST_FAILED, ofp.OFPRRFC_BAD_ROLE, str(role))
        if role in (ofp.OFPCR_ROLE_MASTER, ofp.OFPCR_ROLE_SLAVE):
            if self.generation is not None and ((gen - self.generation) & (1 << 64) - 1) \
                    >= 1 << 63:
                raise OFError(ofp.OFPET_ROLE_REQUEST_FAILED, ofp.OFPRRFC_STALE, str(gen))
            self.generation = gen
        if role != ofp.OFPCR_ROLE_NOCHANGE:
            self.role = role
        gen_out = self.generation if self.generation is not None else (1 << 64) - 1
        return [w.msg(ofp.OFPT_ROLE_REPLY, xid, struct.pack("!I4xQ", self.role, gen_out))], []

    def _on_get_async_request(self, data: bytes, xid: int, now: float):
        flat = [m for pair in self.async_masks for m in pair]
        return [w.msg(ofp.OFPT_GET_ASYNC_REPLY, xid, struct.pack("!6I", *flat))], []

    def _on_set_async(self, data: bytes, xid: int, now: float):
        m = struct.unpack_from("!6I", data, 8)
        self.async_masks = [[m[0], m[1]], [m[2], m[3]], [m[4], m[5]]]
        return [], []

    def _on_flow_mod(self, data: bytes, xid: int, now: float):
        fm = w.flow_mod(data)
        removed = self._removed(self.tables.flow_mod(fm, fm.match, now), now)
        if self.on_flow_mod is not None:
            self.on_flow_mod(self.dpid, fm)
        return removed, []

    def _on_group_mod(self, data: bytes, xid: int, now: float):
        return self._removed(self.tables.group_mod(*w.group_mod(data)), now), []

    def _on_meter_mod(self, data: bytes, xid: int, now: float):
        return self._removed(self.tables.meter_mod(*w.meter_mod(data)), now), []

    def _on_port_mod(self, data: bytes, xid: int, now: float):
        port_no, hw, config, mask = struct.unpack_from("!I4x6s2xIII", data, 8)
        port = self.tables.ports.get(port_no)
        if port is None:
            raise OFError(ofp.OFPET_PORT_MOD_FAILED, ofp.OFPPMFC_BAD_PORT, str(port_no))
        if hw != bytes.fromhex(port.hw_addr.replace(":", "")):
            raise OFError(ofp.OFPET_PORT_MOD_FAILED, ofp.OFPPMFC_BAD_HW_ADDR, str(port_no))
        new = (port.config & ~mask) | (config & mask)
        if new == port.config:
            return [], []
        port.config = new
        return self._port_status(ofp.OFPPR_MODIFY, port), []

    def _on_table_mod(self, data: bytes, xid: int, now: float):
        return [], []

    def _on_packet_out(self, data: bytes, xid: int, now: float):
        buffer_id, in_port, actions, frame = w.packet_out(data)
        if buffer_id != ofp.OFP_NO_BUFFER:
            raise w.bad(ofp.OFPBRC_BUFFER_UNKNOWN, str(buffer_id))
        if not (0 < in_port <= ofp.OFPP_MAX or in_port in (
                ofp.OFPP_CONTROLLER, ofp.OFPP_LOCAL, ofp.OFPP_ANY)):
            raise w.bad(ofp.OFPBRC_BAD_PORT, f"in_port {in_port:#x}")
        self.tables.check_actions(actions, None)
        return self._emit(self.pipeline.packet_out(in_port, actions, frame, now))

    def _on_queue_get_config_request(self, data: bytes, xid: int, now: float):
        (port_no,) = struct.unpack_from("!I4x", data, 8)
        body = struct.pack("!I4x", port_no)  # (no queues configured)
        return [w.msg(ofp.OFPT_QUEUE_GET_CONFIG_REPLY, xid, body)], []

    def _on_multipart_request(self, data: bytes, xid: int, now: float):
        mp_type, _flags = struct.unpack_from("!HH", data, 8)
        kind = MP_NAMES.get(mp_type)
        self.received[f"multipart_request.{kind or mp_type}"] += 1
        handler = getattr(view, f"mp_{kind}", None) if kind else None
        if handler is None:
            raise w.bad(ofp.OFPBRC_BAD_MULTIPART, str(mp_type))
        if mp_type in (ofp.OFPMP_FLOW, ofp.OFPMP_AGGREGATE, ofp.OFPMP_METER):
            self.tables.expire(now)
        items, head = handler(self, bytes(data[16:]), now)
        return w.multipart(xid, mp_type, items, self.reply_limit, head), []

    # --- accessors for tests (plain data; take the lock) -----------------------------------
    def flows(self) -> list[dict[str, Any]]:
        with self.lock:
            return [view.flow_dict(e) for e in self.tables.entries()]

    def groups(self) -> dict[int, dict[str, Any]]:
        with self.lock:
            return {g.group_id: view.group_dict(g, self.tables)
                    for g in sorted(self.tables.groups.values(), key=lambda g: g.group_id)}

    def meters(self) -> dict[int, dict[str, Any]]:
        with self.lock:
            return {m.meter_id: view.meter_dict(m)
                    for m in sorted(self.tables.meters.values(), key=lambda m: m.meter_id)}

    def ports(self) -> dict[int, dict[str, Any]]:
        with self.lock:
            return {p.port_no: {"name": p.name, "up": p.up, **p.counters}
                    for p in self.tables.ports.values()}

    def counters(self) -> Counter[str]:
        """Messages received in the current session, by kind."""
        with self.lock:
            return Counter(self.received)

    def local_write(self, data: bytes) -> None:
        """A write from the switch's own command line (``ovs-ofctl add-flow``, behind the
        controller's back): an OpenFlow message applied outside any session, its replies
        to nobody; OFError if the switch refuses it."""
        with self.lock:
            _, mtype, _, _ = struct.unpack_from("!BBHI", data)
            handler = getattr(self, f"_on_{NAMES.get(mtype, '')}", None)
            if mtype not in _WRITES or handler is None:
                raise ValueError(f"not a write: message type {mtype}")
            handler(data, 0, time.monotonic())

    def inject(self, port_no: int, data: bytes) -> tuple[list[bytes], Frames]:
        """For a single switch without a fleet: a frame into a port, now."""
        with self.lock:
            return self.receive_frame(port_no, data, time.monotonic())
