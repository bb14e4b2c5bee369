"""Cabling validation: compare the links LLDP found with an operator's cabling plan."""

from __future__ import annotations

from collections.abc import Iterable

from controller.core.model.fabric_model import Cable, LinkEnd


def parse_end(text: str) -> LinkEnd:
    """``"DPID:PORT"`` (dpid in decimal or 0x-hex) -> LinkEnd; ValueError with a reason."""
    dpid, sep, port = str(text).strip().rpartition(":")
    if not sep:
        raise ValueError(f"{text!r} is not DPID:PORT")
    try:
        end = LinkEnd(int(dpid, 0), int(port))
    except ValueError:
        raise ValueError(f"{text!r} is not DPID:PORT with integers") from None
    if end.dpid < 0 or not 0 < end.port < 0xFFFFFF00:
        raise ValueError(f"{text!r} has an out-of-range dpid or port")
    return end


def make_cable(a: LinkEnd, b: LinkEnd) -> Cable:
    return Cable(min(a, b), max(a, b))


def _fmt(c: Cable) -> str:
    return f"{c.a.dpid}:{c.a.port} <-> {c.b.dpid}:{c.b.port}"


def cabling_warnings(expected: Iterable[Cable], found: Iterable[Cable]) -> list[str]:
    """Missing and unexpected cables, when a plan is given (an empty plan checks nothing)."""
    plan = set(expected)
    if not plan:
        return []
    have = set(found)
    out = [f"missing link {_fmt(c)} (in the cabling plan, not found)" for c in sorted(plan - have)]
    out += [f"unexpected link {_fmt(c)} (not in the cabling plan)" for c in sorted(have - plan)]
    return out
