"""Cluster mode in the fabric app: which switches this instance masters, and whether it
is the TE leader.

The cluster agent (:mod:`apps.cluster_agent`, its own thread) decides; what it decides
is carried out here, on the fabric app's thread: role requests sent to the switches
(a slave request takes effect at once, a master request when the switch accepts it),
mastership lost on a refused write or a newer generation, and the TE leader's moves
made on the leaves this instance masters. Alone, this instance writes to every switch.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from os_ken.base import app_manager
from os_ken.ofproto import ofproto_v1_3 as ofp

from apps import ofmsg
from controller.core.fabric_core import Effects, FabricCore
from controller.core.intent.kinds import Intent, IntentError, decode_moves, encode_moves
from controller.core.intent.mastership import Yield

log = logging.getLogger("aifabric.fabric")


class ClusterRole:
    """See the module docstring. ``publish(**fields)`` replaces published fields;
    ``apply(eff, now)`` sends the core's effects."""

    def __init__(self, core: FabricCore, clustered: bool, node_id: str,
                 publish: Callable[..., None],
                 apply: Callable[[Effects, float], None]) -> None:
        self.core = core
        self.clustered = clustered
        self.node_id = node_id
        self.masters: set[int] = set()
        self.te_leader = False  # this instance relieves and rebalances
        self.agent: Any = None  # set by the daemon once the app runs
        self._connections: dict[int, int] = {}  # dpid -> number of its current connection
        self._count = 0
        self._publish, self._apply = publish, apply
        self._publish(masters=frozenset() if clustered else None)
        if clustered:
            core.traffic.set_cluster_role(frozenset(), leader=False)

    def writable(self, dpid: int) -> bool:
        """True if this instance may write to ``dpid`` (alone: always)."""
        return not self.clustered or dpid in self.masters

    def written(self) -> set[int] | None:
        """The switches this instance writes (None: every switch)."""
        return self.masters if self.clustered else None

    def connected(self) -> dict[int, int]:
        """The switches connected to this instance, each with the number of its current
        connection (a reconnected switch has a new one: its role must be asked for
        again). Any thread: one copy of a dict."""
        return dict(self._connections)

    # --- connections ----------------------------------------------------------------------
    def switch_up(self, dp) -> None:
        if self.clustered:
            self.lose_master(dp.id)  # (a new connection starts as an equal)
            self._count += 1
            self._connections[dp.id] = self._count
            dp.send_msg(ofmsg.async_all_roles(dp))

    def switch_down(self, dpid: int) -> None:
        if self.clustered:
            self.lose_master(dpid)
            self._connections.pop(dpid, None)

    # --- roles ---------------------------------------------------------------------------
    def set_roles(self, requests, dps: dict[int, Any]) -> None:
        """Send the role requests the cluster agent decided (see the module docstring)."""
        for req in requests:
            if isinstance(req, Yield):  # another instance holds it: stop writing, quietly
                self.lose_master(req.dpid)
                continue
            dp = dps.get(req.dpid)
            if dp is None:
                continue
            if req.role != "master":
                self.lose_master(req.dpid)
            dp.send_msg(ofmsg.role_request(dp, req.role, req.generation))
            log.info("switch %d: asking for the %s role (generation %d)", req.dpid, req.role,
                     req.generation)

    def role_reply(self, dp, msg) -> bool:
        """A switch answered a role request; True when this instance became its master
        (another instance wrote to it meanwhile: it must be read back)."""
        if msg.role != ofp.OFPCR_ROLE_MASTER:
            self.lose_master(dp.id)
            return False
        if dp.id in self.masters:
            return False
        self.masters.add(dp.id)
        self._changed()
        log.info("switch %d: this instance is its master (generation %d)", dp.id,
                 msg.generation_id)
        return True

    def refused(self, dp, msg) -> bool:
        """An OpenFlow error that says another instance masters ``dp`` (True: handled)."""
        if not self.clustered or not (
                (msg.type, msg.code) == (ofp.OFPET_BAD_REQUEST, ofp.OFPBRC_IS_SLAVE)
                or msg.type == ofp.OFPET_ROLE_REQUEST_FAILED):
            return False
        stale = msg.type == ofp.OFPET_ROLE_REQUEST_FAILED
        log.log(logging.INFO if stale else logging.WARNING,
                "switch %s: not its master (%s)", dp.id,
                "a newer master's generation is in force" if stale
                else "the switch refused a write: another instance masters it")
        self.lose_master(dp.id)
        return True

    def lose_master(self, dpid: int) -> None:
        if dpid in self.masters:
            self.masters.discard(dpid)
            self._changed()

    def _changed(self) -> None:
        masters = frozenset(self.masters)
        self.core.traffic.set_cluster_role(masters, self.te_leader)
        self._publish(masters=masters)
        qos_app = app_manager.lookup_service_brick("QosApp")
        if qos_app is not None:
            qos_app.set_masters(masters)

    # --- the TE leader -------------------------------------------------------------------
    def set_te_leader(self, leading: bool) -> None:
        """The cluster agent says whether this instance is the TE leader now."""
        self.te_leader = leading
        self.core.traffic.set_cluster_role(frozenset(self.masters), leading)

    def share_moves(self) -> None:
        """The leader's moves of leaves other instances master, to the agent to write."""
        moves = self.core.traffic.take_shared_moves()
        if moves and self.agent is not None:
            self.agent.publish_moves(
                {leaf: encode_moves(self.node_id, m) for leaf, m in moves.items()})

    def apply_leader_moves(self, moves: list[tuple[int, Intent]], now: float) -> None:
        """The TE leader's latest moves of leaves (as the agent read them): those of the
        leaves this instance masters are made."""
        for leaf, intent in moves:
            if leaf not in self.masters:
                continue
            try:
                leader, got = decode_moves(intent.value)
            except IntentError as exc:
                log.error("cluster: TE moves of leaf %d not made: %s", leaf, exc)
                continue
            self._apply(self.core.traffic.apply_leader_moves(leaf, got, leader, now), now)
