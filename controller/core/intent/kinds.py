"""Operator intent a cluster shares through its store: what every instance must apply
alike, in the store's order.

Each kind is one value in the store (``intent/<kind>``), replaced whole by a write that
names the revision it was computed from (compare-and-swap), so two instances changing
the same kind at once cannot lose one change: the second write is refused, and its
instance applies the first and computes its change again. Every instance applies each
kind's latest value as a whole (a set of drains, a policy), never a delta, so one that
missed changes (started late, cut off from the store) converges on the next reading.

Kinds:

- ``qos``: the QoS policy in force (the policy's JSON).
- ``drains``: the cables and switches out of service.
- ``jobs``: the registered training jobs, in registration order (each job's spec as the
  API and the state file write it).
- ``pins``: the operator pins, each flow (its 5-tuple, ports 0 for any) and its spine.
- ``servers``: the servers set through the API (beside the configuration's), each a
  name and its NICs in rail order.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from controller.core.errors import FailedPrecondition, InvalidArgument
from controller.core.fabric.qos import QosPolicy
from controller.core.model.fabric_model import Cable, LinkEnd
from controller.core.model.job_spec import JobError, JobSpec
from controller.core.model.servers import Server, check_apart, server_of
from controller.core.te import FlowKey

KINDS = ("qos", "drains", "jobs", "pins", "servers")
TITLES = {"qos": "the QoS policy", "drains": "the drains", "jobs": "the registered jobs",
          "pins": "the operator pins", "servers": "the servers"}  # (in messages)


@dataclass(frozen=True)
class Intent:
    """One kind's value as the store holds it: ``revision`` is the store revision that
    last changed it (0: never written), ``value`` its text."""

    kind: str
    revision: int
    value: str


class IntentError(FailedPrecondition):
    """A stored value that cannot be read (the message says which kind and why)."""


@dataclass(frozen=True)
class Drains:
    """The cables and switches out of service."""

    cables: frozenset[Cable] = frozenset()
    switches: frozenset[int] = frozenset()

    def encode(self) -> str:
        cables = sorted([c.a.dpid, c.a.port, c.b.dpid, c.b.port] for c in self.cables)
        return json.dumps({"cables": cables, "switches": sorted(self.switches)})

    @staticmethod
    def decode(text: str) -> Drains:
        try:
            data = json.loads(text)
            cables = frozenset(
                Cable(LinkEnd(int(a), int(pa)), LinkEnd(int(b), int(pb)))
                for a, pa, b, pb in data["cables"])
            switches = frozenset(int(d) for d in data["switches"])
        except (ValueError, KeyError, TypeError, RecursionError) as exc:
            raise IntentError(f"drains: not a drain set ({type(exc).__name__}: "
                              f"{str(exc)[:120]})") from None
        return Drains(cables, switches)


def encode_policy(policy: QosPolicy) -> str:
    return policy.model_dump_json()


def decode_policy(text: str) -> QosPolicy:
    try:
        return QosPolicy.model_validate_json(text)
    except ValueError as exc:  # (pydantic's ValidationError is one)
        raise IntentError(f"qos: not a valid policy ({str(exc)[:200]})") from None


def encode_jobs(specs: list[JobSpec]) -> str:
    return json.dumps([s.to_dict() for s in specs])


def decode_jobs(text: str) -> list[JobSpec]:
    try:
        data = json.loads(text) if text else []
        if not isinstance(data, list):
            raise ValueError("not a list")
        specs = [JobSpec.from_dict(d) for d in data]
    except (ValueError, JobError, RecursionError) as exc:
        raise IntentError(f"jobs: not a job list ({str(exc)[:200]})") from None
    if len({s.job_id for s in specs}) != len(specs):
        raise IntentError("jobs: a job is listed twice")
    return specs


def encode_pins(pins: dict[FlowKey, int]) -> str:
    return json.dumps([{"flow": [k.src_ip, k.dst_ip, k.proto, k.src_port, k.dst_port],
                        "spine": spine} for k, spine in sorted(pins.items())])


def decode_pins(text: str) -> dict[FlowKey, int]:
    try:
        data = json.loads(text) if text else []
        pins = {FlowKey(str(a), str(b), int(proto), int(sp), int(dp)): int(d["spine"])
                for d in data for a, b, proto, sp, dp in [d["flow"]]}
    except (ValueError, KeyError, TypeError, RecursionError) as exc:
        raise IntentError(f"pins: not a pin list ({type(exc).__name__}: "
                          f"{str(exc)[:160]})") from None
    if len(pins) != len(data):
        raise IntentError("pins: a flow is listed twice")
    return pins


def encode_servers(servers: tuple[Server, ...]) -> str:
    return json.dumps([{"name": s.name, "nics": list(s.nics)} for s in servers])


def decode_servers(text: str) -> tuple[Server, ...]:
    """The servers as stored, checked as strictly as an API request."""
    try:
        data = json.loads(text) if text else []
        if not isinstance(data, list):
            raise ValueError("not a list")
        servers = tuple(server_of(str(d["name"]), [str(n) for n in d["nics"]],
                                  f"servers[{i}]") for i, d in enumerate(data))
        check_apart(servers)
    except (ValueError, KeyError, TypeError, InvalidArgument, RecursionError) as exc:
        raise IntentError(f"servers: not a server list ({type(exc).__name__}: "
                          f"{str(exc)[:160]})") from None
    return servers


def encode_moves(leader: str, moves: dict[FlowKey, tuple[int, str]]) -> str:
    """The TE leader's moves of one leaf's flows (``te/<leaf>``): flow -> (spine, why)."""
    return json.dumps({"leader": leader, "moves": [
        [k.src_ip, k.dst_ip, k.proto, k.src_port, k.dst_port, spine, reason]
        for k, (spine, reason) in sorted(moves.items())]})


def decode_moves(text: str) -> tuple[str, dict[FlowKey, tuple[int, str]]]:
    """The inverse of :func:`encode_moves`: (the leader, its moves)."""
    try:
        data = json.loads(text)
        moves = {FlowKey(str(a), str(b), int(proto), int(sp), int(dp)): (int(spine),
                                                                         str(reason)[:300])
                 for a, b, proto, sp, dp, spine, reason in data["moves"]}
        leader = str(data["leader"])
    except (ValueError, KeyError, TypeError, RecursionError) as exc:
        raise IntentError(f"TE moves: not a move list ({type(exc).__name__}: "
                          f"{str(exc)[:160]})") from None
    return leader, moves


# every kind's decoder: its stored text -> its value (IntentError when unreadable)
DECODERS = {"qos": decode_policy, "drains": Drains.decode, "jobs": decode_jobs,
            "pins": decode_pins, "servers": decode_servers}
assert set(DECODERS) == set(KINDS)


class Applied:
    """Which revision of each kind an instance has applied: a value is applied once, and
    never one older than the last (the store's readings may arrive out of order)."""

    def __init__(self) -> None:
        self.revisions: dict[str, int] = {}

    def revision(self, kind: str) -> int:
        return self.revisions.get(kind, 0)

    def is_new(self, intent: Intent) -> bool:
        return intent.revision > self.revision(intent.kind)

    def mark(self, intent: Intent) -> None:
        self.revisions[intent.kind] = max(self.revision(intent.kind), intent.revision)
