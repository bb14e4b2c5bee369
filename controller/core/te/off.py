"""Traffic engineering switched off (``--no-te``): the component the core holds in
place of :class:`~controller.core.te.fabric.FabricTE`. It wants nothing (no pins, no
tracked flows, no jobs, no TE topology) and refuses the operator's TE commands with
FailedPrecondition, so that neither the core nor its callers check for None.
"""

from __future__ import annotations

from collections.abc import Mapping

from controller.core.effects import Effects
from controller.core.errors import FailedPrecondition
from controller.core.model.job_spec import JobLimits, JobSpec
from controller.core.snapshot import FlowInfo, JobInfo
from controller.core.southbound.openflow import FlowRule, Match
from controller.core.te.engine import TrafficEngineer
from controller.core.te.flows import FlowKey
from controller.core.te.job_book import JobBook
from controller.core.te.rebalance import RebalancePass, RebalancePlan
from controller.core.te.topology import TeTopology

OFF = "traffic engineering is off (--no-te)"
NO_JOBS = OFF + ": jobs cannot be placed"


class TeOff:
    """FabricTE's interface, answering as traffic engineering that is off."""

    def __init__(self) -> None:
        self.te: TrafficEngineer | None = None  # (FabricTE: the traffic engineer)
        self.jobs = JobBook(JobLimits(), lambda *_, **__: None)  # none registered

    @property
    def shared_pins(self) -> dict[FlowKey, int] | None:
        return None

    @property
    def unmet_pins(self) -> dict[FlowKey, str]:
        return {}

    # --- steps and reads: nothing to do, nothing to show ------------------------------------
    def invalidate(self, reason: str) -> None:
        pass

    def hosts_changed(self) -> None:
        pass

    def refresh(self, now: float) -> set[int]:
        return set()

    def flow_seen(self, dpid: int, in_port: int, data: bytes, now: float) -> Effects:
        return Effects()

    def te_pass(self, port_bps: dict[tuple[int, int], float], now: float,
                rebalance: bool = True) -> Effects:
        return Effects()

    def rebalance_job(self, now: float) -> RebalancePass | None:
        return None

    def rebalanced(self, plan: RebalancePlan, now: float,
                   limit: int | None = None) -> tuple[Effects, RebalancePlan | None]:
        return Effects(), None

    def pin_counters(self, dpid: int, counters: list[tuple[Match, int, int]],
                     now: float, all_pins: bool = False) -> None:
        pass

    def recover_pins(self, dpid: int, flows: list[FlowRule]) -> None:
        pass

    def set_cluster_role(self, writes: frozenset[int] | None, leader: bool) -> None:
        pass

    def take_shared_moves(self) -> dict[int, dict[FlowKey, tuple[int, str]]]:
        return {}

    def apply_leader_moves(self, leaf: int, moves: Mapping[FlowKey, tuple[int, str]],
                           leader: str, now: float) -> Effects:
        return Effects()

    def flows(self, now: float) -> tuple[FlowInfo, ...]:
        return ()

    def job_infos(self) -> tuple[JobInfo, ...]:
        return ()

    def te_topology(self) -> TeTopology | None:
        return None

    def pins_of(self, leaf: int) -> dict[tuple[int, int, Match], FlowRule]:
        return {}

    # --- the operator's commands: refused ----------------------------------------------------
    def jobs_with(self, spec: JobSpec) -> list[JobSpec]:
        raise FailedPrecondition(NO_JOBS)

    def jobs_without(self, job_id: str) -> list[JobSpec]:
        raise FailedPrecondition(NO_JOBS)

    def set_jobs(self, specs: list[JobSpec], now: float) -> Effects:
        raise FailedPrecondition(NO_JOBS)

    def restore_jobs(self, specs: list[JobSpec], now: float) -> None:
        raise FailedPrecondition(NO_JOBS)

    def pins_with(self, key: FlowKey, spine: int) -> dict[FlowKey, int]:
        raise FailedPrecondition(OFF)

    def pins_without(self, key: FlowKey) -> dict[FlowKey, int]:
        raise FailedPrecondition(OFF)

    def set_pins(self, pins: Mapping[FlowKey, int], now: float) -> Effects:
        raise FailedPrecondition(OFF)
