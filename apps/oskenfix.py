"""A fix for os-ken 4.x on its native-thread hub: notice a switch leaving at once.

When a switch closes its connection, os-ken's ``Datapath.serve`` joins its send thread
before it declares the datapath dead; on native threads that thread sleeps in
``send_q.get()`` forever, so the switch is only declared dead when echo requests time
out (seconds later), or never. Here the receive loop, once it ends, declares the
datapath dead and wakes the send thread so that it exits too.
"""

from __future__ import annotations

import functools
import logging

from os_ken.controller import controller
from os_ken.controller.handler import DEAD_DISPATCHER

log = logging.getLogger("aifabric.oskenfix")
_MARK = "_aifabric_patched"


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
