"""The cluster side of one fabricd instance, on a thread of its own.

Every ``interval`` it keeps the instance's lease alive, tells the store which switches
it is connected to, reads who masters what and the operator intent the instances share,
hands the fabric app the intent that changed, asks :class:`Mastership` what to do,
claims and releases master keys, and hands the role requests to the fabric app (which
applies and sends both on its own thread: one writer). It also keeps the TE leadership:
claims the te-leader key when it is free, tells the app whether it leads, writes the
leader's moves the app hands it (``publish_moves``) and hands the app the leader's moves
another instance wrote. When etcd cannot be reached it
does nothing but count the time: once its lease may have expired it asks for the slave
role on every switch, so that it never acts as a master another instance may have
replaced.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace

from apps import clock
from apps.cluster_peers import PeerWatch
from apps.cluster_store import EtcdStore, StoreUnavailable
from controller.core.intent.kinds import Intent
from controller.core.intent.mastership import (
    Claim,
    ClaimLeader,
    Clear,
    Mastership,
    Release,
    RoleRequest,
    StoreView,
    Yield,
)

log = logging.getLogger("aifabric.cluster")


@dataclass(frozen=True)
class ClusterStatus:
    """What the API shows of the cluster (replaced whole on every step)."""

    node: str
    members: tuple[str, ...] = ()
    masters: tuple[tuple[int, str], ...] = ()  # (dpid, node) for every held switch
    etcd_ok: bool = False
    etcd_error: str = ""
    checked_at: float = 0.0
    te_leader: str = ""  # who holds the te-leader key ("" none)
    leading: bool = False  # this instance leads TE now (its key, and its lease holds)
    ignored: int = 0  # keys under the prefix ignored at the last reading (StoreView's)


class ClusterAgent:
    def __init__(self, store: EtcdStore, mastership: Mastership,
                 connected: Callable[[], Mapping[int, int]],
                 send_roles: Callable[[list[RoleRequest | Yield]], None],
                 interval: float,
                 apply_intents: Callable[[list[Intent]], None] = lambda _: None,
                 peer_key: Callable[[], bytes | None] | None = None,
                 set_leader: Callable[[bool], None] = lambda _: None,
                 apply_moves: Callable[[list[tuple[int, Intent]]], None] = lambda _: None
                 ) -> None:
        self.store = store
        self.mastership = mastership
        self._connected = connected
        self._send_roles = send_roles
        self._apply_intents = apply_intents
        self._intents_sent: dict[str, int] = {}  # kind -> revision handed to the app
        self.interval = interval
        self.status = ClusterStatus(mastership.node)
        self._announced: frozenset[int] | None = None
        self._connections: Mapping[int, int] = {}  # dpid -> connection, as last seen
        self._stop = threading.Event()
        self._wake = threading.Event()  # set: step now (a peer's process ended)
        # (peer_key: watch the other members' peer ports, authenticated with it)
        self.peers = None if peer_key is None else PeerWatch(self._peer_gone, peer_key,
                                                              mastership.node)
        self._unavailable_since: float | None = None
        self._ignored_said: set[str] = set()  # ignored keys logged already
        self._set_leader = set_leader
        self._apply_moves = apply_moves
        self._leading: bool | None = None  # as last told to the app
        self._moves_sent: dict[int, int] = {}  # leaf -> revision of te/<leaf> handed on
        self._to_publish: dict[int, str] = {}  # leaf -> moves to write (the app's thread)
        self._publish_lock = threading.Lock()

    def start(self) -> threading.Thread:
        thread = threading.Thread(target=self._run, name="aifabric-cluster", daemon=True)
        thread.start()
        return thread

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.step(time.monotonic())
            except Exception:  # (a bug here must not end the thread: mastership stops)
                log.exception("cluster step failed")
            self._wake.wait(self.interval)
            self._wake.clear()

    def publish_moves(self, moves: dict[int, str]) -> None:
        """The leader's moves of leaves other instances write (any thread): written at
        once, on this agent's thread."""
        with self._publish_lock:
            self._to_publish.update(moves)
        self._wake.set()

    def _write_moves(self) -> None:
        with self._publish_lock:
            moves, self._to_publish = self._to_publish, {}
        for leaf, value in sorted(moves.items()):
            try:
                if not self.store.write_moves(leaf, value):
                    log.info("cluster: not the TE leader any more: moves of leaf %d not "
                             "shared", leaf)
            except StoreUnavailable as exc:
                log.warning("cluster: moves of leaf %d not shared: %s", leaf, exc)

    def _tell_leader(self, leading: bool) -> None:
        self.status = replace(self.status, leading=leading)
        if leading != self._leading:
            self._leading = leading
            log.info("cluster: %s %s the TE leader", self.mastership.node,
                     "is" if leading else "is not")
            self._set_leader(leading)

    def _peer_gone(self, node: str, lease: int) -> None:
        """A member's process ended (apps/cluster_peers.py): revoke its lease, so that
        its master keys go now rather than when the lease expires, and step at once."""
        try:
            if self.store.revoke(lease):
                log.warning("cluster: revoked the lease of %s: its switches are taken over",
                            node)
        except StoreUnavailable as exc:
            log.warning("cluster: could not revoke the lease of %s: %s", node, exc)
        self._wake.set()

    def step(self, now: float) -> None:
        connections = self._connected()
        for dpid, number in self._connections.items():
            if connections.get(dpid) != number:  # gone, or reconnected: a new session
                self.mastership.forget(dpid)  # (whose role must be asked for again)
        self._connections = connections
        switches = frozenset(connections)
        view: StoreView | None = None
        if self._leading:
            self._write_moves()
        else:  # (moves the app made as leader just before it heard it no longer is)
            with self._publish_lock:
                self._to_publish.clear()
        try:
            if self.store.lease_id is None or not self.store.keepalive():
                log.warning("cluster: lease of %s expired or missing: stepping down, "
                            "joining again", self.mastership.node)
                down = self.mastership.step_down()
                if down:  # (before anything else: another instance may master them)
                    self._send_roles(down)
                # (a join that fails after taking the lease is announced at the next
                # step: what is claimed under the lease counts only with its member key)
                self._announced = None
                self.store.join(self.mastership_ttl(), switches)
                self._announced = switches
            self.mastership.keepalive(now)
            if switches != self._announced:
                self.store.announce(switches)
                self._announced = switches
            view = self.store.view()
        except StoreUnavailable as exc:
            if self._unavailable_since is None:
                self._unavailable_since = now
                log.error("cluster: %s; switches keep forwarding, mastership is kept "
                          "until the lease may have expired", exc)
            self.status = replace(self.status, etcd_ok=False, etcd_error=str(exc),
                                  checked_at=clock.now())
        if view is None:
            if self.mastership.lease_holds(now):
                return
            self._tell_leader(False)
            actions = self.mastership.decide(StoreView(frozenset(), {}), switches, now)
        else:
            if self._unavailable_since is not None:
                log.warning("cluster: etcd reachable again after %.1f s",
                            now - self._unavailable_since)
                self._unavailable_since = None
            # the shared intent first: the app applies it before any role this step asks
            # for, so a new master writes what the cluster wants
            fresh = [i for i in view.intents.values()
                     if i.revision > self._intents_sent.get(i.kind, 0)]
            if fresh:
                self._apply_intents(sorted(fresh, key=lambda i: i.revision))
                self._intents_sent.update((i.kind, i.revision) for i in fresh)
            moves = [(leaf, i) for leaf, i in sorted(view.te_moves.items())
                     if i.revision > self._moves_sent.get(leaf, 0)]
            if moves:
                self._apply_moves(moves)
                self._moves_sent.update((leaf, i.revision) for leaf, i in moves)
            if self.peers is not None:
                self.peers.update({n: p for n, p in view.peers.items()
                                   if n != self.mastership.node and n in view.members})
            actions = self.mastership.decide(view, switches, now)
            if set(view.ignored) - self._ignored_said:
                log.error("cluster: %d key(s) under the prefix are ignored: unreadable, "
                          "or master, TE leader or TE move keys no live instance wrote "
                          "(written by something other than fabricd?): %s",
                          len(view.ignored), ", ".join(view.ignored[:5]))
            self._ignored_said = set(view.ignored)
            self.status = ClusterStatus(
                self.mastership.node, tuple(sorted(view.members)),
                tuple(sorted((d, h.node) for d, h in view.holders.items())), True, "",
                clock.now(), view.te_leader or "", self.status.leading,
                len(view.ignored))
        roles: list[RoleRequest | Yield] = []
        won = False
        for action in actions:
            if isinstance(action, RoleRequest | Yield):
                roles.append(action)
                continue
            try:
                if isinstance(action, Claim):
                    gen = self.store.claim(action.dpid)
                    if gen is not None:
                        won = True
                        log.info("cluster: %s won switch %d (generation %d)",
                                 self.mastership.node, action.dpid, gen)
                elif isinstance(action, Clear):
                    if self.store.clear(action.key, action.revision):
                        log.warning("cluster: removed %s%s (revision %d), which no live "
                                    "instance wrote", self.store.prefix, action.key,
                                    action.revision)
                elif isinstance(action, Release):
                    if self.store.release(action.dpid):
                        log.info("cluster: %s released switch %d to its preferred "
                                 "instance", self.mastership.node, action.dpid)
                elif isinstance(action, ClaimLeader) and self.store.claim_leader():
                    view = replace(view, te_leader=self.mastership.node) if view else view
                    self.status = replace(self.status, te_leader=self.mastership.node)
            except StoreUnavailable as exc:
                log.warning("cluster: %s", exc)
        if won:  # ask for the master role now, not a step later
            try:
                roles += [a for a in self.mastership.decide(self.store.view(), switches, now)
                          if isinstance(a, RoleRequest | Yield)]
            except StoreUnavailable as exc:
                log.warning("cluster: %s", exc)
        if roles:
            self._send_roles(roles)
        if view is not None:
            self._tell_leader(self.mastership.leads(view, now))

    def mastership_ttl(self) -> int:
        return max(1, round(self.mastership.ttl))
