"""What the management API may ask of the fabric app: one typed interface.

The API's handlers run on gRPC's threads; everything that reads the core or changes
operator intent runs on the fabric app's thread instead (one writer). A handler hands
``ControllerHandle.call`` a function of a :class:`FabricCommands` (its named methods
are all the API can reach of the app), and the call runs it on the app's thread.

Refusals are the domain errors of :mod:`controller.core.errors` (``NotFound``,
``FailedPrecondition``...), which the API maps to gRPC status codes in one place.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from controller.core.errors import Unavailable
from controller.core.fabric.qos import QosPolicy
from controller.core.intent.kinds import Intent
from controller.core.model.job_spec import JobSpec
from controller.core.model.servers import Server
from controller.core.snapshot import FlowInfo, JobInfo, SwitchEntries
from controller.core.te import FlowKey


@dataclass(frozen=True)
class Change:
    """A change of one kind of operator intent, computed and checked but not applied:
    the kind's new value as the store keeps it (None: nothing to change), what it does
    in words, and the revision of the kind it was computed from (the compare-and-swap
    the API writes it with)."""

    value: str | None
    message: str
    revision: int


class NotAnswered(Unavailable):
    """A command the controller did not run: it is starting, too many calls wait, or
    it was not started before the caller's deadline (then it never runs)."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"the controller did not answer: {reason}")


class FabricCommands(Protocol):
    """The fabric app's side of the API (``apps.commands.Commands``). Every method runs
    on the app's thread; the ``*_change`` methods compute a :class:`Change` and change
    nothing; :meth:`apply_intent` makes what the store holds this instance's own."""

    @abstractmethod
    def drain_change(self, action: str, dpid: int, port: int) -> Change:
        """The drains after ``drain_link``, ``drain_switch`` or ``undrain`` (a port for
        a link, 0 for a switch): NotFound, FailedPrecondition."""

    @abstractmethod
    def qos_change(self, policy: QosPolicy) -> Change:
        """The QoS policy replaced by ``policy`` (validated already)."""

    @abstractmethod
    def pin_change(self, key: FlowKey, spine: int) -> Change:
        """The pins with ``key`` pinned to ``spine``: NotFound (host, switch),
        FailedPrecondition (no path through that spine, TE off)."""

    @abstractmethod
    def unpin_change(self, key: FlowKey) -> Change:
        """The pins without ``key``: NotFound if it is not pinned."""

    @abstractmethod
    def job_register_change(self, spec: JobSpec) -> Change:
        """The jobs with ``spec`` registered: InvalidArgument (JobError, naming the
        field), AlreadyExists (JobExists), FailedPrecondition (TE off)."""

    @abstractmethod
    def job_delete_change(self, job_id: str) -> Change:
        """The jobs without ``job_id``: NotFound if it is not registered."""

    @abstractmethod
    def servers_change(self, servers: tuple[Server, ...]) -> Change:
        """The servers set through the API replaced by ``servers``: InvalidArgument if
        they clash with the configured ones."""

    @abstractmethod
    def apply_intent(self, intent: Intent) -> bool:
        """Make a kind's value as the store holds it this instance's own (False: that
        revision or a later one is applied already)."""

    @abstractmethod
    def flow_info(self, key: FlowKey) -> FlowInfo:
        """A tracked flow as published: NotFound if TE does not track it."""

    @abstractmethod
    def job_info(self, job_id: str) -> JobInfo:
        """A registered job with its placement: NotFound for an unknown id."""

    @abstractmethod
    def switch_entries(self, dpid: int) -> SwitchEntries:
        """What switch ``dpid`` should hold: NotFound if it is not connected."""


# Runs ``command(commands)`` on the fabric app's thread, waiting at most ``timeout``
# seconds for it to start; returns its result or raises what it raised (NotAnswered
# when it did not run).
CallCommand = Callable[..., Any]  # (command, timeout, must_run=False) -> its result


def not_started(command: Callable[[FabricCommands], Any], timeout: float = 10.0,
                must_run: bool = False) -> Any:
    """The call of a handle whose controller has no fabric app yet."""
    raise NotAnswered("the controller is still starting")
