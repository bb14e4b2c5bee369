"""Refusals that cross a boundary: why the controller will not do what it was asked.

The core and the apps raise these where a request meets the fabric's state (an unknown
switch, a spine with no path, a job registered twice, traffic engineering off); the
management API maps each kind to one gRPC status code, in one place
(``apps/api/server.py``), and sends the message as it is. Any other exception that
escapes a command is a defect: the API logs it and answers ``INTERNAL``, so a stray
``KeyError`` is never mistaken for "not found".

Each kind also subclasses the built-in exception its callers caught before these
types existed (``LookupError`` for :class:`NotFound`, ``ValueError`` for
:class:`InvalidArgument` and :class:`FailedPrecondition`), so code inside the core that
catches those (the shared pins' reconciliation) keeps working; the API never relies on
the built-in side.
"""

from __future__ import annotations


class FabricError(Exception):
    """A refusal; ``str(error)`` is the message for the operator."""


class NotFound(FabricError, LookupError):
    """What the request names does not exist (a switch, a link, a host, a pin, a job)."""


class InvalidArgument(FabricError, ValueError):
    """The request itself is malformed, whatever the fabric's state."""


class FailedPrecondition(FabricError, ValueError):
    """The request is well formed but the fabric's state forbids it now (draining would
    cut two leaves apart, a spine has no path in service, traffic engineering is off)."""


class AlreadyExists(FabricError):
    """What the request would create exists already."""


class ResourceExhausted(FabricError):
    """A limit is reached (registered jobs, ...); freeing one makes room."""


class Unavailable(FabricError):
    """The controller (or the store it keeps intent in) cannot answer now; a retry may
    succeed."""


class Aborted(FabricError):
    """The change raced others and was not applied; a retry may succeed."""
