"""Fixes for os-ken 4.x on its native-thread hub.

1. Notice a switch leaving at once. When a switch closes its connection, os-ken's
   ``Datapath.serve`` joins its send thread before it declares the datapath dead; on
   native threads that thread sleeps in ``send_q.get()`` forever, so the switch is only
   declared dead when echo requests time out (seconds later), or never. Here the
   receive loop, once it ends, declares the datapath dead and wakes the send thread so
   that it exits too.
2. A switch that stops reading must not stall the controller. ``Datapath.send`` waits
   for room in a 16-message queue for as long as the socket's timeout; the fabric app
   sends from its only thread, so one stuck switch stopped every other. Here a send
   waits at most ``SEND_WAIT`` seconds; a switch whose queue stays full that long is
   dropped (its socket shut down) and is reconciled when it reconnects.
"""

from __future__ import annotations

import functools
import logging
import socket

from os_ken.base import app_manager  # noqa: F401  (os-ken's own import order needs it first)
from os_ken.controller import controller
from os_ken.controller.handler import DEAD_DISPATCHER

log = logging.getLogger("aifabric.oskenfix")
_MARK = "_aifabric_patched"
SEND_WAIT = 1.0  # seconds a send may wait for room in a switch's queue


def apply() -> None:
    """Patch ``Datapath._recv_loop`` (idempotent)."""
    original = controller.Datapath._recv_loop
    if getattr(original, _MARK, False):
        return

    @functools.wraps(original)
    def recv_loop(self) -> None:
        try:
            original(self)
        finally:
            self.set_state(DEAD_DISPATCHER)
            queue = self.send_q
            if queue is not None and self._send_q_sem.acquire(blocking=False):
                queue.put((b"", True))  # the send loop exits after this (closing) item

    setattr(recv_loop, _MARK, True)
    controller.Datapath._recv_loop = recv_loop
    controller.Datapath.send = bounded_send


def bounded_send(self, buf, close_socket=False) -> bool:
    """``Datapath.send`` that never waits more than SEND_WAIT for a switch."""
    if getattr(self, "_aifabric_stuck", False):
        return False
    if not self._send_q_sem.acquire(timeout=SEND_WAIT):
        self._aifabric_stuck = True
        log.error("switch %s (%s) has not read its OpenFlow session for %g s: its "
                  "connection is dropped; it is reconciled when it reconnects",
                  self.id, self.address, SEND_WAIT)
        try:
            self.socket.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        return False
    queue = self.send_q
    if queue is None:  # terminating
        self._send_q_sem.release()
        return False
    queue.put((buf, close_socket))
    return True
