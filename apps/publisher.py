"""What other threads see of the fabric app: one immutable value, replaced whole.

Readers (the API's handlers, the metrics endpoint, the watchdog) take
:attr:`Publisher.value` once and never touch the core; the fabric app's thread replaces
it (``dataclasses.replace``, then one assignment), so a timestamp is always read with
the data it belongs to. Fabric events go to the event bus (``WatchEvents``).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Mapping

from apps.api.event_bus import EventBus
from apps.guard import handler_errors
from controller.core.events import FabricEvent
from controller.core.fabric_core import FabricCore
from controller.core.snapshot import Published, TopologySnapshot

log = logging.getLogger("aifabric.fabric")

LOGGED_KINDS = ("reroute", "congestion", "congestion_cleared", "pin", "unpin")
# when TE's flows change (placed, moved, new rates: flows_changed), the flows list is
# republished at most this often (seconds): rebuilding it costs a pass over every
# tracked flow, per packet-in batch, and capped new-flow setup at ~500 flows/s; and at
# most FLOWS_SHARE of the app's time (with tens of thousands of flows, less often).
# An operator's change, or a sync of every switch, publishes it at once.
FLOWS_INTERVAL = 0.25
FLOWS_SHARE = 0.05


class Publisher:
    """See the module docstring; every method but the reads runs on the app's thread."""

    def __init__(self, core: FabricCore) -> None:
        self.core = core
        self.value = Published(TopologySnapshot.empty(), qos_policy=core.qos)
        self.bus = EventBus()  # (thread-safe)
        self._errors_seen: dict[str, int] = {}
        self._flows_at: float | None = None  # when the flows were last published
        self._flows_stale = False  # placed since then: :meth:`refresh` publishes them
        self._flows_interval = FLOWS_INTERVAL  # (grows with what a publication costs)

    def set(self, **changes) -> None:
        """Replace fields of the published value (readers see before or after)."""
        self.value = dataclasses.replace(self.value, **changes)

    def topology(self, now: float) -> None:
        self.set(topology=self.core.snapshot(now))

    def flows(self, now: float) -> None:
        """TE's flows and jobs (nothing with TE off)."""
        traffic = self.core.traffic
        self._flows_at, self._flows_stale = now, False
        if traffic.te is not None:
            started = time.monotonic()
            self.set(flows=traffic.flows(now), flows_at=now, jobs=traffic.job_infos(),
                     jobs_at=now)
            cost = time.monotonic() - started
            self._flows_interval = max(FLOWS_INTERVAL, cost / FLOWS_SHARE)

    def flows_changed(self, now: float) -> None:
        """TE's flows changed (placed, moved, new rates): published now, or by
        :meth:`refresh` if they were published less than ``FLOWS_INTERVAL`` ago (or,
        when publishing them costs more than ``FLOWS_SHARE`` of that, that many times
        what it costs). An operator's change is published at once (:meth:`flows`)."""
        if self._flows_at is not None and 0 <= now - self._flows_at < self._flows_interval:
            self._flows_stale = True
            return
        self.flows(now)

    def synced(self, now: float, everything: bool) -> None:
        """After a sync (``everything``: the whole fabric was recomputed, published at
        once; else only the switches TE touched)."""
        if everything:
            self.topology(now)
            self.flows(now)
        else:
            self.flows_changed(now)

    def refresh(self, now: float) -> None:
        """Publish the flows if changes wait and their interval has passed (every tick)."""
        if self._flows_stale:
            self.flows_changed(now)

    def events(self, now: float) -> None:
        """The core's events since the last call, to the bus (a host's change also to
        the topology)."""
        events = self.core.take_events()
        if any(e.kind.startswith("host_") for e in events):
            self.topology(now)
        for e in events:
            if e.kind in LOGGED_KINDS:
                log.info("%s: %s", e.kind, e.message)
        self.bus.publish(events, now)

    def counters(self, now: float, counts: Mapping[str, int]) -> None:
        """The app's counters with the core's, TE's and the handler errors' (a handler
        that failed since the last call is announced as an event)."""
        errors = handler_errors()
        if errors != self._errors_seen:  # (counted in guard; announced from here)
            self.bus.publish([FabricEvent(
                "handler_error", f"handler {name} failed {n - self._errors_seen.get(name, 0)} "
                f"time(s) ({n} in all); the events were dropped, the app goes on (see the "
                "log for the traceback)", (("handler", name), ("total", str(n))))
                for name, n in sorted(errors.items())
                if n != self._errors_seen.get(name, 0)], now)
            self._errors_seen = errors
        self.set(counters={**counts, **self.core.counters,
                           **(self.core.traffic.te.stats if self.core.traffic.te else {}),
                           **{f"handler_errors.{k}": v for k, v in errors.items()}})
