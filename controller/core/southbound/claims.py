"""Who may hold a switch's dpid: the allow-list, and a second connection claiming the
dpid of a switch that is connected.

A switch that reconnects while its old session still looks open (the TCP connection
died without a FIN) must get its dpid back; a peer that merely claims a connected
switch's dpid must not: it would be sent that switch's state, and once it left, the
switch would be taken for gone (tried on Mininet: 46% of host pairs unreachable). So the
holder is asked, with an OpenFlow echo, whether it still lives: if it answers within
``timeout`` it keeps the dpid and the newcomer is refused; if it does not, or its
session ends meanwhile, the newcomer takes the dpid. One claim per dpid is pending at a
time: a further one is refused at once, so a flood of claims costs one echo.

Pure: connections are opaque objects (compared by identity); the caller says what time
it is, sends the echo and ends the sessions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

ECHO_DATA = b"aifabric: do you still hold this dpid?"

ASK = "ask"  # echo the holder; the claim waits for its answer
REFUSE = "refuse"  # end the newcomer's session (a claim is already pending)


@dataclass(eq=False)
class Claim:
    dpid: int
    holder: Any
    newcomer: Any
    deadline: float
    xid: int | None = None  # the echo's transaction id, once sent (its reply must match)


class DpidClaims:
    def __init__(self, timeout: float, allowed: frozenset[int] | None = None) -> None:
        """``timeout``: seconds the holder has to answer; ``allowed``: the dpids that may
        connect at all (None: any)."""
        self.timeout = timeout
        self.allowed = allowed
        self._by_dpid: dict[int, Claim] = {}
        self.refused = 0  # connections refused: a claim the holder answered, or a 2nd one
        self.taken_over = 0  # claims that took the dpid from a holder that did not answer
        self.not_allowed = 0  # connections whose dpid is not on the allow-list

    def admits(self, dpid: int) -> bool:
        """Whether ``dpid`` may connect at all (counted when not)."""
        if self.allowed is None or dpid in self.allowed:
            return True
        self.not_allowed += 1
        return False

    def claim(self, dpid: int, holder: Any, newcomer: Any, now: float) -> str:
        """``newcomer`` claims the dpid ``holder`` holds: :data:`ASK` (echo the holder
        with :data:`ECHO_DATA`) or :data:`REFUSE`."""
        if dpid in self._by_dpid:
            self.refused += 1
            return REFUSE
        self._by_dpid[dpid] = Claim(dpid, holder, newcomer, now + self.timeout)
        return ASK

    def pending(self, dpid: int) -> Claim | None:
        return self._by_dpid.get(dpid)

    def answered(self, holder: Any, data: bytes, xid: int) -> Claim | None:
        """An echo reply from ``holder``: the claim it settles (its newcomer is refused),
        if it answers this claim's echo (a late reply to an earlier one does not)."""
        if data != ECHO_DATA:
            return None
        claim = next((c for c in self._by_dpid.values() if c.holder is holder
                      and c.xid == xid), None)
        if claim is not None:
            del self._by_dpid[claim.dpid]
            self.refused += 1
        return claim

    def ended(self, conn: Any) -> Claim | None:
        """A session ended. A newcomer's: its claim is dropped (None). A holder's: the
        claim it leaves, whose newcomer takes the dpid now."""
        for dpid, c in list(self._by_dpid.items()):
            if c.newcomer is conn:
                del self._by_dpid[dpid]
                return None
            if c.holder is conn:
                del self._by_dpid[dpid]
                self.taken_over += 1
                return c
        return None

    def expired(self, now: float) -> list[Claim]:
        """Claims whose holder did not answer in time: each newcomer takes the dpid (the
        caller ends the holder's session)."""
        out = [c for c in self._by_dpid.values() if now >= c.deadline]
        for c in out:
            del self._by_dpid[c.dpid]
        self.taken_over += len(out)
        return out
