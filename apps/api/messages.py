"""The API's messages from the core's values and back: one shape on each side.

The snapshots the fabric app publishes (:mod:`controller.core.snapshot`) have the
fields of the API's messages, by name; :func:`to_message` copies one into the other
for any pair, so a field added to both needs no code here (and a field on one side
only fails the unit test that compares the two shapes). What remains by hand is where
the shapes really differ: a request validated into the core's types (a flow, a job, a
QoS policy), a job's spec (``id`` and its rank pairs), an event (stamped by the app).
"""

from __future__ import annotations

import ipaddress
from typing import Any, TypeVar

from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass
from pydantic import ValidationError

from aifabric.v1 import fabric_pb2
from controller import documents
from controller.config import first_error
from controller.core.errors import InvalidArgument
from controller.core.events import StampedEvent
from controller.core.fabric.qos import PROFILES, QosPolicy, profile_policy
from controller.core.model.job_spec import JobSpec
from controller.core.model.servers import MAX_NICS, Server, check_apart, server_of
from controller.core.snapshot import FlowInfo, JobInfo
from controller.core.te import PROTO_NUMBERS, FlowKey

M = TypeVar("M", bound=Message)
MAX_DOCUMENT = 256 * 1024


# message fields a snapshot value carries flattened in (FlowInfo: the 5-tuple of ``flow``)
FLATTENED = frozenset({"flow"})


def to_message(value: Any, cls: type[M], **given: Any) -> M:
    """A ``cls`` message with each field taken from ``value``'s attribute of the same
    name (a snapshot dataclass), except the fields ``given``: a repeated message field
    from a tuple of such values, a message field from the attribute or, for the
    fields named in FLATTENED when ``value`` has no such attribute, from ``value``
    itself (as FlowInfo's 5-tuple is FlowStatus's ``flow``). A field ``value`` lacks
    raises AttributeError: the two shapes drifted apart."""
    fields: dict[str, Any] = {}
    for f in cls.DESCRIPTOR.fields:
        if f.name in given:
            fields[f.name] = given[f.name]
        elif f.message_type is None:
            fields[f.name] = getattr(value, f.name)
        elif f.message_type.GetOptions().map_entry:
            fields[f.name] = dict(getattr(value, f.name))
        else:
            sub = GetMessageClass(f.message_type)
            got = (value if f.name in FLATTENED and not hasattr(value, f.name)
                   else getattr(value, f.name))
            fields[f.name] = ([to_message(v, sub) for v in got]
                              if isinstance(got, (tuple, list)) else to_message(got, sub))
    return cls(**fields)


# --- snapshots -> messages (what is not a plain to_message) ---------------------------------
def job_message(j: JobInfo) -> fabric_pb2.JobStatus:
    """A job: its spec as registered (the core calls the id ``job_id`` and keeps the
    rank pairs apart from the placed pairs), the rest by name."""
    spec = to_message(j, fabric_pb2.JobSpec, id=j.job_id,
                      pairs=[fabric_pb2.RankPair(src=a, dst=b) for a, b in j.rank_pairs])
    return to_message(j, fabric_pb2.JobStatus, spec=spec)


def flow_message(f: FlowInfo) -> fabric_pb2.FlowStatus:
    return to_message(f, fabric_pb2.FlowStatus)


def event_message(e: StampedEvent) -> fabric_pb2.Event:
    return to_message(e.event, fabric_pb2.Event, seq=e.seq, time=e.at)


def policy_message(policy: QosPolicy | None, enabled: bool) -> fabric_pb2.QosPolicy:
    """The policy in force (port ranges as their text, as the config file has them)."""
    if policy is None:
        return fabric_pb2.QosPolicy(enabled=enabled)
    return fabric_pb2.QosPolicy(
        classes=[
            fabric_pb2.TrafficClass(
                name=c.name, dscp=c.dscp, queue=c.queue, scheduling=c.scheduling,
                share=c.share,
                match=fabric_pb2.ClassMatch(
                    udp_dst=[str(p) for p in c.match.udp_dst],
                    tcp_dst=[str(p) for p in c.match.tcp_dst],
                    tcp_src=[str(p) for p in c.match.tcp_src],
                    dscp=list(c.match.dscp), with_dscp=list(c.match.with_dscp),
                ),
            )
            for c in policy.classes
        ],
        trust_unclassified_dscp=policy.trust_unclassified_dscp,
        enabled=enabled,
        best_effort_share=policy.best_effort_share,
    )


# --- requests -> the core's values (InvalidArgument naming the field) ------------------------
def flow_key(msg: fabric_pb2.FlowMatch) -> FlowKey:
    """A FlowKey from a request, InvalidArgument naming the field that is wrong."""
    if not msg.src_ip or not msg.dst_ip:
        raise InvalidArgument("flow.src_ip and flow.dst_ip: required")
    proto = PROTO_NUMBERS.get(msg.protocol.lower())
    if proto is None:
        raise InvalidArgument(f"flow.protocol: must be tcp or udp, not {msg.protocol!r}")
    for name in ("src_port", "dst_port"):
        if getattr(msg, name) > 0xFFFF:
            raise InvalidArgument(f"flow.{name}: {getattr(msg, name)} is out of range "
                                  "0-65535")
    for name in ("src_ip", "dst_ip"):
        try:
            ipaddress.IPv4Address(getattr(msg, name))
        except ValueError:
            raise InvalidArgument(f"flow.{name}: {getattr(msg, name)!r} is not an IPv4 "
                                  "address") from None
    return FlowKey(msg.src_ip, msg.dst_ip, proto, msg.src_port, msg.dst_port)


def job_spec(msg: fabric_pb2.JobSpec) -> JobSpec:
    """The API's JobSpec as the core's (validated by the core)."""
    return JobSpec(msg.id, tuple(msg.members), msg.pattern,
                   tuple((p.src, p.dst) for p in msg.pairs), msg.transport or "any",
                   msg.traffic_class, msg.priority)


def policy_data(msg: fabric_pb2.QosPolicy) -> dict:
    """The structured policy as plain data for validation (read-only fields left out)."""
    return {
        "classes": [
            {
                "name": c.name, "dscp": c.dscp, "queue": c.queue,
                "scheduling": c.scheduling or "share", "share": c.share,
                "match": {k: list(getattr(c.match, k)) for k in
                          ("udp_dst", "tcp_dst", "tcp_src", "dscp", "with_dscp")
                          if len(getattr(c.match, k))},
            }
            for c in msg.classes
        ],
        "trust_unclassified_dscp": msg.trust_unclassified_dscp,
    }


def validate_servers(request: fabric_pb2.SetServersRequest) -> tuple[Server, ...]:
    """The servers of a SetServers request, each checked as the configuration checks
    it (InvalidArgument naming the field: ``servers[i].nics[r]``...)."""
    if len(request.servers) > MAX_NICS:
        raise InvalidArgument(f"servers: more than {MAX_NICS} servers")
    servers = tuple(server_of(s.name, s.nics, f"servers[{i}]")
                    for i, s in enumerate(request.servers))
    check_apart(servers)
    return servers


def validate_policy(request: fabric_pb2.SetQosPolicyRequest) -> QosPolicy:
    """The request's policy, validated in full; InvalidArgument with a message naming
    the problem (field path and reason) otherwise."""
    which = request.WhichOneof("source")
    if which is None:
        raise InvalidArgument("give a policy or a document")
    if which == "document":
        try:
            data = documents.load(request.document, MAX_DOCUMENT)
        except documents.DocumentError as exc:
            raise InvalidArgument(f"document: {exc}") from None
        if not isinstance(data, dict):
            raise InvalidArgument("document: must be a mapping with a 'classes' list")
        if set(data) == {"profile"}:
            try:
                return profile_policy(str(data["profile"]))
            except KeyError:
                raise InvalidArgument(f"profile: unknown profile {str(data['profile'])[:80]!r} "
                                      f"(known: default, {', '.join(PROFILES)})") from None
    else:
        data = policy_data(request.policy)
    try:
        return QosPolicy.model_validate(data)
    except ValidationError as exc:
        where, msg = first_error(exc, unknown="unknown field")
        raise InvalidArgument(f"{where or 'policy'}: {msg}") from None
