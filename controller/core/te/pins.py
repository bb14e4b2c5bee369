"""Operator pins: a flow an operator placed through the API, which TE never moves (a pin
with a port of 0 is a wildcard and covers every flow it matches), and in cluster mode the
set of pins the cluster shares, made here as far as this instance can.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

from controller.core.errors import FailedPrecondition, NotFound
from controller.core.te.flows import Flow, FlowKey, FlowTable
from controller.core.te.topology import TeTopology

log = logging.getLogger("aifabric.core")


class OperatorPins:
    """The operator's pins in the flow table, and the wildcard ones among them."""

    def __init__(self, table: FlowTable) -> None:
        self.table = table
        self._wildcards: set[FlowKey] = set()  # operator pins with any-ports

    def pin(self, key: FlowKey, src_leaf: int, dst_leaf: int, spine: int,
            topo: TeTopology, now: float) -> Flow:
        """An operator's placement (``FailedPrecondition`` when the spine offers no path)."""
        path = topo.path_via(src_leaf, dst_leaf, spine)
        if path is None:
            raise FailedPrecondition(f"switch {spine} is on no path in service from leaf "
                                     f"{src_leaf} to leaf {dst_leaf}")
        flows = self.table.flows
        old = flows.get(key)
        flow = Flow(key, src_leaf, dst_leaf, old.cls if old else "best-effort",
                    old.priority if old else False, path, operator=True,
                    first_seen=old.first_seen if old else now, last_active=now,
                    bytes_at=now, moved_at=now)
        flows[key] = flow
        # exact flows the pin now covers follow it
        if not key.exact:
            self._wildcards.add(key)
            for k in [k for k, f in flows.items() if k != key and key.covers(k)
                      and not f.operator]:
                del flows[k]
        return flow

    def unpin(self, key: FlowKey) -> Flow:
        flow = self.table.flows.get(key)
        if flow is None or not flow.operator:
            raise NotFound(f"no operator pin for {key}")
        del self.table.flows[key]
        self._wildcards.discard(key)
        return flow

    def covers(self, key: FlowKey) -> bool:
        return any(k.covers(key) for k in self._wildcards)

    def adopt(self, flow: Flow) -> None:
        """A flow recovered from a switch's entries after a controller restart."""
        self.table.flows.setdefault(flow.key, flow)
        if flow.operator and not flow.key.exact:
            self._wildcards.add(flow.key)


class SharedPins:
    """Cluster mode: the operator pins the cluster shares (``wanted``, flow -> spine;
    None: alone), and those of them not made here yet (their hosts not seen yet), with
    the reason. :meth:`reconcile` makes the operator pins here what is wanted."""

    def __init__(self) -> None:
        self.wanted: dict[FlowKey, int] | None = None
        self.unmet: dict[FlowKey, str] = {}
        self._reconciling = False

    def reconcile(self, pinned: Callable[[], Mapping[FlowKey, int]],
                  pin: Callable[[FlowKey, int], set[int]],
                  unpin: Callable[[FlowKey], set[int]]) -> set[int]:
        """Pin and unpin (``pinned``: the operator pins here, flow -> spine) until the
        pins are the ones wanted, or say in :attr:`unmet` why one cannot be made yet
        (``pin`` raises NotFound or FailedPrecondition); returns the leaves touched."""
        if self.wanted is None or self._reconciling:
            return set()
        self._reconciling = True  # (pinning refreshes, which would come back here)
        try:
            touched: set[int] = set()
            current = pinned()
            for key in current.keys() - self.wanted.keys():
                touched |= unpin(key)
            unmet: dict[FlowKey, str] = {}
            for key, spine in sorted(self.wanted.items()):
                if current.get(key) == spine:
                    continue
                try:
                    touched |= pin(key, spine)
                except (LookupError, ValueError) as exc:
                    unmet[key] = str(exc)
                    if key not in self.unmet:
                        log.warning("shared pin of %s to spine %d not made here yet: %s",
                                    key, spine, exc)
            self.unmet = unmet
            return touched
        finally:
            self._reconciling = False
