"""TE's rebalancing passes, searched on a worker thread.

The search (:func:`controller.core.te.search`, pure and possibly long) runs on a
thread of its own, one pass at a time, so that packet-ins, LLDP and port status never
wait for it. Its plan comes back to the fabric app as an event and is applied there
(only if the fabric did not change meanwhile: the core judges), in slices of whole
leaves with other events served between them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from apps import clock
from controller.core.fabric_core import Effects, FabricCore
from controller.core.te import search as te_search

log = logging.getLogger("aifabric.fabric")

# moves of a rebalancing pass applied per event (whole leaves): a pass that moves
# thousands of flows is applied in slices, other events served between them
REBALANCE_SLICE = 256


class Rebalancer:
    """``back(plan)`` hands a searched plan to the app's thread (from the worker);
    ``later(fn)`` runs ``fn`` there after what is queued; ``apply(eff, now)`` sends
    effects; ``done(now)`` is called when a pass is applied whole."""

    def __init__(self, core: FabricCore, back: Callable[[Any], Any],
                 later: Callable[[Callable[[], None]], None],
                 apply: Callable[[Effects, float], None], done: Callable[[float], None],
                 share_moves: Callable[[], None]) -> None:
        self.core = core
        self._back, self._later, self._apply = back, later, apply
        self._done, self._share_moves = done, share_moves
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="aifabric-te")
        self.busy = False  # a pass is being searched or applied

    def start(self, now: float) -> None:
        """Search a pass if one is worth it and none is in flight (the app's thread)."""
        if self.busy:
            return
        job = self.core.traffic.rebalance_job(now)
        if job is not None:
            self.busy = True
            self._worker.submit(self._search, job)

    def _search(self, job) -> None:
        """On the worker thread: the pure search, then the result back to the app."""
        try:
            plan = te_search(job)
        except Exception:  # (a bug must not leave rebalancing stuck "in flight")
            log.exception("rebalancing search failed; the flows stay where they are")
            plan = None
        self._back(plan)

    def finish(self, plan, now: float) -> None:
        """Apply a searched plan's next slice (the app's thread); None: it failed."""
        if plan is None:
            self.busy = False
            return
        eff, rest = self.core.traffic.rebalanced(plan, now, REBALANCE_SLICE)
        self._apply(eff, now)
        self._share_moves()
        if rest is not None:  # the next slice after whatever else is waiting
            self._later(lambda: self.finish(rest, clock.now()))
            return
        self.busy = False
        self._done(now)

    def close(self) -> None:
        self._worker.shutdown(wait=False, cancel_futures=True)
