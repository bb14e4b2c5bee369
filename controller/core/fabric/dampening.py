"""Link-flap dampening: a fabric port that keeps going down is held down until it has
been stable for a while, so that groups, pins and TE do not follow every bounce.

Modelled on BGP route-flap dampening (RFC 2439): every time the port goes down it
earns a penalty; the penalty decays exponentially with a half-life; above the suppress
threshold the port's link is held down (LLDP over it is ignored), and it is let back
once the penalty has decayed below the reuse threshold. The first flap of a stable
link costs nothing extra: one down is handled at once, as always. Pure: time is an
argument.
"""

from __future__ import annotations

from dataclasses import dataclass

from controller.core.model.fabric_model import LinkEnd

SAME_FLAP = 0.1  # seconds: downs of one end this close together are one flap


@dataclass(frozen=True)
class DampingSettings:
    penalty: float = 1.0  # per flap (going down)
    suppress: float = 2.5  # held down from this penalty: the third flap in quick succession
    reuse: float = 0.5  # let back below this
    half_life: float = 2.0  # seconds
    max_penalty: float = 8.0  # bounds how long a link can be held (here about 8 s)
    enabled: bool = True


@dataclass
class _Record:
    penalty: float
    at: float  # when ``penalty`` was last brought up to date
    suppressed: bool = False


class FlapDamper:
    def __init__(self, settings: DampingSettings) -> None:
        self.settings = settings
        self._records: dict[LinkEnd, _Record] = {}

    def _decayed(self, rec: _Record, now: float) -> float:
        return rec.penalty * 0.5 ** (max(0.0, now - rec.at) / self.settings.half_life)

    def knows(self, end: LinkEnd) -> bool:
        """True while ``end`` carries a penalty (it flapped recently)."""
        return end in self._records

    def flap(self, end: LinkEnd, now: float) -> bool:
        """``end`` went down; True when this starts holding it down."""
        if not self.settings.enabled:
            return False
        rec = self._records.get(end)
        if rec is None:
            rec = self._records[end] = _Record(0.0, now)
        elif now - rec.at < SAME_FLAP and rec.penalty > 0:
            return False  # the same bounce, reported by the cable's other end
        rec.penalty = min(self.settings.max_penalty,
                          self._decayed(rec, now) + self.settings.penalty)
        rec.at = now
        if not rec.suppressed and rec.penalty >= self.settings.suppress:
            rec.suppressed = True
            return True
        return False

    def suppressed(self, end: LinkEnd) -> bool:
        rec = self._records.get(end)
        return rec is not None and rec.suppressed

    def release(self, now: float) -> list[LinkEnd]:
        """Ends whose hold ends now (their penalty decayed below reuse); records that
        have decayed to nothing are forgotten."""
        out = []
        for end, rec in list(self._records.items()):
            p = self._decayed(rec, now)
            if rec.suppressed and p < self.settings.reuse:
                rec.suppressed = False
                out.append(end)
            if not rec.suppressed and p < 0.01:
                del self._records[end]
        return sorted(out)
