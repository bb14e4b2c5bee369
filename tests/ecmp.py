"""Where a switch's ECMP sends towards each leaf, read one way from every form tests see
a switch in (the core's desired state, a fake switch's tables, ovs-ofctl's text): route
id -> the output ports of the buckets of the select group it uses. A leaf's route
entries (table 3, matching the route id in the metadata) lead to its shared groups; a
switch without route entries (a spine) names its select groups by route id."""

from __future__ import annotations

from collections.abc import Iterable, Mapping


def ecmp_towards(routes: Iterable[tuple[int, int | None]],
                 select: Mapping[int, list[int]]) -> dict[int, list[int]]:
    """``routes``: the switch's route entries as (route id, the group it sends to, or
    None); ``select``: its select groups as group id -> output ports of the buckets."""
    towards = {rid: list(select.get(gid, [])) if gid is not None else []
               for rid, gid in routes}
    return towards or {gid: list(ports) for gid, ports in select.items()}
