"""The API's health service, kept true: NOT_SERVING until the apps run, then SERVING
while the fabric app's event loop answers (the watchdog: a stalled loop turns it
NOT_SERVING, with an event and a log line, until the loop answers again)."""

from __future__ import annotations

import logging
import time

from grpc_health.v1 import health, health_pb2

from aifabric.v1 import fabric_pb2
from apps import clock
from apps.guard import WATCHDOG_TRIPS
from controller.core.events import FabricEvent

log = logging.getLogger("aifabric.api")

SERVICE_NAME = fabric_pb2.DESCRIPTOR.services_by_name["Fabric"].full_name
WATCHDOG_POLL_SECONDS = 0.5


def watch_health(handle, health_servicer: health.HealthServicer) -> None:
    """The health service's state, for ever: NOT_SERVING until the apps run, then
    SERVING while the fabric app's event loop answers (an event and a log line each
    time it stops)."""
    # SERVING means the controller answers, not just that the port is open; the
    # watchdog turns it NOT_SERVING while the fabric app's event loop is stalled.
    while handle.published() is None or not handle.listening():
        time.sleep(0.05)
    serving = None
    tripped = False
    while True:
        try:
            why = handle.stalled()
        except Exception:  # the watchdog itself must not die
            log.exception("watchdog: cannot read the fabric app's heartbeat")
            why = "the fabric app's heartbeat cannot be read"
        if (why is None) != serving:
            serving = why is None
            state = (health_pb2.HealthCheckResponse.SERVING if serving
                     else health_pb2.HealthCheckResponse.NOT_SERVING)
            for name in ("", SERVICE_NAME):
                health_servicer.set(name, state)
            if why is not None:
                log.error("watchdog: NOT_SERVING: %s", why)
                WATCHDOG_TRIPS.inc()
                tripped = True
                bus = handle.event_bus()
                if bus is not None:
                    bus.publish([FabricEvent("watchdog", f"health NOT_SERVING: {why}")],
                                clock.now())
            elif tripped:
                log.warning("watchdog: the fabric app answers again; SERVING")
        time.sleep(WATCHDOG_POLL_SECONDS)
