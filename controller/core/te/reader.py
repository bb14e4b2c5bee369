"""What traffic engineering reads of the rest of the core: the fabric through a narrow
interface (:class:`FabricReader`), and the core settings it uses (:class:`CoreTeSettings`,
which ``controller.core.settings.CoreSettings`` satisfies). Protocols, so that TE
imports nothing of the core that holds it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from controller.core.fabric.fabric_view import FabricView
    from controller.core.model.fabric_model import Fabric
    from controller.core.model.job_spec import JobLimits


class FabricReader(Protocol):
    """What traffic engineering reads of the rest of the core."""

    fabric: Fabric

    def view(self) -> FabricView: ...

    def is_settled(self, dpid: int, now: float) -> bool: ...

    def is_host_port(self, dpid: int, port: int, now: float) -> bool: ...

    def port_speed(self, dpid: int, port: int) -> float: ...


class CoreTeSettings(Protocol):
    """The core settings traffic engineering uses (read-only)."""

    @property
    def link_speed_bps(self) -> float: ...  # overrides what switches report (0: trust them)

    @property
    def new_flow_rate(self) -> float: ...  # new flows per second per host port TE places

    @property
    def declined_flow_timeout(self) -> int: ...  # seconds a declined flow is not copied

    @property
    def max_flows_per_port(self) -> int: ...  # TE-tracked flows one host port may hold

    @property
    def job_limits(self) -> JobLimits: ...  # registered training jobs
