"""Who may call the management API, and the audit log of every change made through it.

Token authentication with two roles: ``reader`` (get, list, watch) and ``admin`` (also
set, drain, pin). A client sends ``authorization: Bearer <token>`` metadata. Health
checking and reflection stay open, so that generic tools and probes work. Every call of
a mutating method is written to the audit log (:mod:`apps.api.audit`), and every
refused call, aggregated per client host.
"""

from __future__ import annotations

import hmac
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import grpc
from google.protobuf.json_format import MessageToDict

from apps.api.audit import AuditLog
from controller.private_files import read_private

log = logging.getLogger("aifabric.api")

SERVICE_PREFIX = "/aifabric.v1.Fabric/"
MUTATING = frozenset({"SetQosPolicy", "DrainLink", "DrainSwitch", "Undrain", "PinFlow",
                      "UnpinFlow", "RegisterJob", "DeleteJob", "SetServers"})
ROLES = ("reader", "admin")


@dataclass(frozen=True)
class Principal:
    name: str
    role: str


def _abort_handler(code: grpc.StatusCode, message: str, streaming: bool,
                   refused: Callable[[str], None]):
    """A handler that refuses the call (``refused(peer)`` first: the audit)."""
    def unary(request, context):
        refused(context.peer())
        context.abort(code, message)

    def stream(request, context):
        refused(context.peer())
        context.abort(code, message)
        yield  # pragma: no cover - a generator, so that streaming calls fail cleanly

    if streaming:
        return grpc.unary_stream_rpc_method_handler(stream)
    return grpc.unary_unary_rpc_method_handler(unary)


class TokenAuthInterceptor(grpc.ServerInterceptor):
    """Checks the bearer token of every Fabric call and audits mutations."""

    def __init__(self, tokens: dict[str, Principal], audit: AuditLog,
                 max_watchers: int = 64, max_watchers_per_token: int = 32) -> None:
        self.tokens = tokens
        self.audit = audit
        # Each watcher holds a server thread for as long as it watches: capped, so that
        # watchers never take the threads unary calls and health need.
        self.max_watchers, self.max_per_token = max_watchers, max_watchers_per_token
        self._watch_lock = threading.Lock()
        self._watchers: dict[str, int] = {}  # by token name

    def set_tokens(self, tokens: dict[str, Principal]) -> None:
        """Who may call from now on (any thread: one reference, replaced whole)."""
        self.tokens = dict(tokens)

    def _who(self, metadata) -> Principal | None:
        value = ""
        for key, v in metadata or ():
            if key == "authorization":
                value = v
        scheme, _, token = value.partition(" ")
        if scheme.lower() != "bearer" or not token:
            return None
        found = None
        for known, principal in self.tokens.items():  # (one mapping, even if replaced)
            # compare with every token in constant time: no early exit to time
            if hmac.compare_digest(known.encode(), token.strip().encode()):
                found = principal
        return found

    def intercept_service(self, continuation, details):
        method = details.method
        if not method.startswith(SERVICE_PREFIX):
            return continuation(details)  # health checking and reflection stay open
        name = method[len(SERVICE_PREFIX):]
        streaming = name == "WatchEvents"
        who = self._who(details.invocation_metadata)
        if who is None:
            return _abort_handler(grpc.StatusCode.UNAUTHENTICATED,
                                  "a valid token is required (authorization: Bearer TOKEN; "
                                  "fabricctl --token or $AIFABRIC_TOKEN)", streaming,
                                  lambda peer: self.audit.refused("-", peer, name,
                                                                  "UNAUTHENTICATED"))
        if name in MUTATING and who.role != "admin":
            return _abort_handler(grpc.StatusCode.PERMISSION_DENIED,
                                  f"{name} needs the admin role; token {who.name!r} is "
                                  f"{who.role}", streaming,
                                  lambda peer: self.audit.refused(who.name, peer, name,
                                                                  "PERMISSION_DENIED"))
        handler = continuation(details)
        if handler is not None and streaming:
            return grpc.unary_stream_rpc_method_handler(
                self._bounded(handler.unary_stream, who),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler is None or name not in MUTATING:
            return handler
        return grpc.unary_unary_rpc_method_handler(
            self._audited(handler.unary_unary, who, name),
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )

    def _bounded(self, behavior, who: Principal):
        def stream(request, context):
            with self._watch_lock:
                mine = self._watchers.get(who.name, 0)
                total = sum(self._watchers.values())
                refused = (f"{total} watchers already (the limit, api.max_watchers)"
                           if total >= self.max_watchers else
                           f"token {who.name!r} has {mine} watchers already (the limit, "
                           "api.max_watchers_per_token)" if mine >= self.max_per_token
                           else None)
                if refused is None:
                    self._watchers[who.name] = mine + 1
            if refused is not None:
                context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, refused)
            try:
                yield from behavior(request, context)
            finally:
                with self._watch_lock:
                    self._watchers[who.name] -= 1

        return stream

    def _audited(self, behavior, who: Principal, name: str):
        audit = self.audit

        def call(request, context):
            req = MessageToDict(request, preserving_proto_field_name=True)  # (cut: audit)
            try:
                response = behavior(request, context)
            except Exception:
                code = context.code()
                detail = context.details() or b""
                if isinstance(detail, bytes):
                    detail = detail.decode(errors="replace")
                audit.record(who.name, context.peer(), name, req,
                             code.name if code else "UNKNOWN", detail)
                raise
            audit.record(who.name, context.peer(), name, req, "OK")
            return response

        return call


def load_or_create_token(path: str | Path) -> tuple[str, bool]:
    """The admin token kept in ``path``, made (random, mode 0600) if the file is absent;
    and whether it was made now. RuntimeError when the file exists but is unusable."""
    import os
    import secrets

    p = Path(path).expanduser()
    if p.exists():
        return read_private(p, "the admin token", 16), False
    p.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    token = secrets.token_urlsafe(24)
    fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(token + "\n")
    return token, True
