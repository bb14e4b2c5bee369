"""Which OpenFlow connections the fabric app takes as switches: the dpid allow-list,
and a second connection claiming a connected switch's dpid (the decision is
``controller.core.southbound.claims``; here its echoes, session ends, log lines and
events). Everything here runs on the fabric app's thread.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from os_ken.ofproto import ofproto_v1_3_parser as parser

from apps import oskenfix
from controller.config_daemon import OpenFlowConfig
from controller.core.events import FabricEvent
from controller.core.fabric.ratelog import RateLimitedLog
from controller.core.southbound.claims import ASK, ECHO_DATA, Claim, DpidClaims

log = logging.getLogger("aifabric.fabric")


class SwitchAdmission:
    def __init__(self, claims: DpidClaims,
                 publish: Callable[[list[FabricEvent], float], None]) -> None:
        self.claims = claims
        self._publish = publish
        self._log = RateLimitedLog(log)  # (whoever reaches the OpenFlow port causes these)

    @classmethod
    def of(cls, of: OpenFlowConfig,
           publish: Callable[[list[FabricEvent], float], None]) -> SwitchAdmission:
        """From the config's ``openflow`` section (``allowed_dpids``, ``claim_timeout``)."""
        allowed = None if of.allowed_dpids is None else frozenset(of.allowed_dpids)
        return cls(DpidClaims(of.claim_timeout, allowed), publish)

    def counts(self) -> dict[str, int]:
        c = self.claims
        return {"switches_refused": c.refused + c.not_allowed,
                "switches_not_allowed": c.not_allowed, "switch_takeovers": c.taken_over}

    def _event(self, now: float, kind: str, message: str, dp: Any, why: str) -> None:
        self._publish([FabricEvent(kind, message, (("dpid", str(dp.id)), ("reason", why),
                                                   ("address", _address(dp))))], now)

    def connected(self, dp: Any, holder: Any | None, now: float) -> bool:
        """A connection reached MAIN with ``dp.id`` (``holder``: the live connection
        that holds that dpid now, if any): whether to take it as the switch now. If
        not, it is refused (session ended) or waits for the holder's answer."""
        if not self.claims.admits(dp.id):
            self._refuse(dp, now, "not allowed",
                         f"switch {dp.id} from {_address(dp)} is not in "
                         "openflow.allowed_dpids: its session is ended")
            return False
        # (a claim pending: that one is decided first, whatever became of the holder)
        pending = self.claims.pending(dp.id) is not None
        if holder is None or holder is dp or (not pending and not holder.is_active):
            return True
        if self.claims.claim(dp.id, holder, dp, now) == ASK:
            self._log.log(logging.WARNING, f"asked {dp.id}", now,
                          "a second connection (%s) claims switch %d, connected from %s: "
                          "asking the switch (echo) whether it still holds it",
                          _address(dp), dp.id, _address(holder))
            echo = parser.OFPEchoRequest(holder, data=ECHO_DATA)
            holder.send_msg(echo)  # (which gives it its xid)
            self.claims.pending(dp.id).xid = echo.xid
            return False
        self._refuse(dp, now, "claim",
                     f"switch {dp.id}: another connection from {_address(dp)} claims it "
                     "while a claim is pending: refused")
        return False

    def echo_reply(self, dp: Any, data: bytes, xid: int, now: float) -> None:
        claim = self.claims.answered(dp, data, xid)
        if claim is not None:
            self._refuse(claim.newcomer, now, "claim",
                         f"switch {claim.dpid} answered from {_address(dp)}: the second "
                         f"connection claiming it from {_address(claim.newcomer)} is refused")

    def ended(self, dp: Any, now: float, holder_of: Callable[[int], Any]) -> Any | None:
        """A session ended: the newcomer that takes its dpid now, if it held one that
        was claimed (``holder_of``: who holds a dpid now, after this end was handled)."""
        claim = self.claims.ended(dp)
        if claim is None:
            return None
        return self._takeover(claim, "its session ended", now, holder_of(claim.dpid) is None)

    def expired(self, now: float, holder_of: Callable[[int], Any]) -> list[Any]:
        """Newcomers whose claim the holder did not answer by ``now`` (the posting time
        of the tick: a reply queued before it has been handled): they take the dpid (the
        holder's session is ended)."""
        out = []
        for claim in self.claims.expired(now):
            still = holder_of(claim.dpid) is claim.holder
            if still:
                oskenfix.end_session(claim.holder)
            newcomer = self._takeover(
                claim, f"it did not answer in {self.claims.timeout:g} s", now, still)
            if newcomer is not None:
                out.append(newcomer)
        return out

    def _takeover(self, claim: Claim, why: str, now: float, free: bool) -> Any | None:
        """The claim's newcomer, which takes the dpid; None (its session ended) if the
        dpid is held by another connection than the claimed one meanwhile (``free``)."""
        if not free or not claim.newcomer.is_active:
            oskenfix.end_session(claim.newcomer)
            return None
        message = (f"switch {claim.dpid}: the connection from {_address(claim.newcomer)} "
                   f"takes its place ({why}): a switch reconnecting over a session that died")
        if self._log.log(logging.WARNING, f"takeover {claim.dpid}", now, "%s", message):
            self._event(now, "switch_takeover", message, claim.newcomer, why)
        return claim.newcomer

    def _refuse(self, dp: Any, now: float, why: str, message: str) -> None:
        if self._log.log(logging.WARNING, f"{why} {dp.id}", now, "%s", message):
            self._event(now, "switch_refused", message, dp, why)  # (bounded as the lines)
        oskenfix.end_session(dp)


def _address(dp: Any) -> str:
    addr = getattr(dp, "address", None)
    return f"{addr[0]}:{addr[1]}" if isinstance(addr, tuple) and len(addr) >= 2 else "?"
