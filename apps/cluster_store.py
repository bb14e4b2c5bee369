"""The cluster's store: etcd, through its JSON gateway (HTTP, the standard library).

What :class:`~controller.core.intent.mastership.Mastership` reads and asks for, as etcd keys
under ``/aifabric/<cluster>/``:

- ``members/<node>``: one per live instance, bound to its lease; the value (JSON) says
  which switches it is connected to, and where its peer port is (apps/cluster_peers.py).
- ``master/<dpid>``: the node that masters the switch, bound to that node's lease; the
  revision at which the key was created is the master's OpenFlow generation id.
- ``intent/<kind>``: operator intent every instance applies (controller/core/intent/kinds.py),
  replaced whole by compare-and-swap on its revision.
- ``te-leader``: the TE leader, bound to its lease; ``te/<dpid>``: the leader's latest
  moves of that leaf's flows, for the leaf's master to make (bound to the leader's lease:
  a leader's advice goes with it).

Every call is one HTTP request with a timeout, tried on each endpoint in turn; a store
that cannot be reached raises :class:`StoreUnavailable` (with the reason). A request
etcd answers with an error of its own (a lease it does not have, a permission) raises
:class:`StoreRefused` at once: another endpoint of the same cluster would answer alike.

Why no client library: ``etcd3`` (gRPC) is unmaintained and breaks with current
protobuf; ``etcd3gw`` (the gateway) pulls in futurist, which imports eventlet into the
process, and fabricd runs os-ken on native threads (eventlet and gRPC do not mix). The
six gateway calls used here are a page of code.
"""

from __future__ import annotations

import base64
import http.client
import json
import ssl
import threading
from collections.abc import Iterable
from dataclasses import dataclass

from controller.config_daemon import etcd_endpoint
from controller.core.intent.kinds import Intent
from controller.core.intent.mastership import LEADER_KEY, Holder, StoreView, master_key


class StoreUnavailable(Exception):
    """No endpoint of the store answered (the message says why)."""


class StoreRefused(StoreUnavailable):
    """etcd answered the request with an error (``code``: its gRPC status code).

    A subclass of :class:`StoreUnavailable`, so that callers that refuse a write while
    the store cannot take it do so for this too, with etcd's message."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"etcd refused the request: {message} (gRPC code {code})")
        self.code = code
        self.message = message


# gRPC status codes in etcd's answers: the ones that say the endpoint cannot serve now
# (another may: no leader, shutting down, too many requests) rather than that the request
# itself is refused
_ENDPOINT_CODES = {1, 4, 8, 10, 13, 14}  # cancelled, deadline, exhausted, aborted,
#                                          internal, unavailable
NOT_FOUND = 5


def _refusal(status: int, body: bytes) -> StoreRefused | None:
    """etcd's error answer as a refusal of the request, or None when it says the
    endpoint cannot serve (or is not etcd's gateway's JSON)."""
    try:
        doc = json.loads(body)
        code, message = int(doc["code"]), str(doc.get("message") or doc.get("error"))
    except (ValueError, KeyError, TypeError, RecursionError):
        return None
    if code in _ENDPOINT_CODES or status >= 500 and code == 2:  # (2: unknown)
        return None
    return StoreRefused(code, message[:300])


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _unb64(text: str) -> str:
    """A key or value as the gateway gives it (base64), as text: ValueError if it is
    not base64 of UTF-8."""
    return base64.b64decode(text).decode()


def _lenient(text: str) -> tuple[str, bool]:
    """A value as text whatever its bytes (undecodable ones escaped), and whether it was
    clean UTF-8: what cannot be read is then refused by the reader of its kind, as any
    other malformed value, rather than raising here."""
    try:
        raw = base64.b64decode(text)
    except ValueError:
        return "", False
    try:
        return raw.decode(), True
    except UnicodeDecodeError:
        return raw.decode("utf-8", "backslashreplace"), False


def _escaped(b64: object) -> str:
    """A key as etcd's gateway gave it (base64), readable in a log line whatever its
    bytes: escaped, at most 80 characters."""
    try:
        raw = base64.b64decode(str(b64))
    except ValueError:
        return repr(str(b64)[:80])
    return raw.decode("utf-8", "backslashreplace")[:80]


def _prefix_end(prefix: str) -> str:
    """The end of etcd's range for every key starting with ``prefix``."""
    raw = prefix.encode()
    return (raw[:-1] + bytes([raw[-1] + 1])).decode()


@dataclass(frozen=True)
class Endpoint:
    host: str
    port: int
    protocol: str = "http"

    @staticmethod
    def parse(url: str) -> Endpoint:
        """``http(s)://HOST:PORT``; ValueError naming what is wrong."""
        scheme, host, port = etcd_endpoint(url)
        return Endpoint(host, port, scheme)


class EtcdStore:
    """One instance's connection to the cluster's etcd (one writer: its owner's thread)."""

    def __init__(self, endpoints: Iterable[str], cluster: str, node: str,
                 timeout: float = 1.0, ca_cert: str | None = None,
                 cert: tuple[str, str] | None = None, peer_address: str = "") -> None:
        self.endpoints = [Endpoint.parse(e) for e in endpoints]
        if not self.endpoints:
            raise ValueError("at least one etcd endpoint is needed")
        self.prefix = f"/aifabric/{cluster}/"
        self.node = node
        self.peer_address = peer_address  # announced: where peers see this process end
        self.timeout = timeout
        self._tls: ssl.SSLContext | None = None
        if any(e.protocol == "https" for e in self.endpoints):
            self._tls = ssl.create_default_context(cafile=ca_cert)
            if cert is not None:
                self._tls.load_cert_chain(*cert)
        self._conns: dict[int, http.client.HTTPConnection] = {}
        self._lock = threading.Lock()  # (the agent's thread and the API's share it)
        self._current = 0
        self.lease_id: int | None = None

    # --- transport ------------------------------------------------------------------------------
    def _connection(self, i: int) -> http.client.HTTPConnection:
        conn = self._conns.get(i)
        if conn is None:
            e = self.endpoints[i]
            conn = (http.client.HTTPSConnection(e.host, e.port, timeout=self.timeout,
                                                context=self._tls)
                    if e.protocol == "https"
                    else http.client.HTTPConnection(e.host, e.port, timeout=self.timeout))
            self._conns[i] = conn
        return conn

    def _post(self, i: int, path: str, payload: dict) -> dict:
        reused = i in self._conns
        conn = self._connection(i)
        try:
            conn.request("POST", "/v3" + path, body=json.dumps(payload),
                         headers={"Content-Type": "application/json"})
            resp = conn.getresponse()
            body = resp.read()
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            del self._conns[i]
            # a kept-alive connection the server closed meanwhile (etcd restarted): the
            # request never reached it, so it is sent once more on a new connection
            if reused and isinstance(exc, BrokenPipeError | ConnectionResetError |
                                     http.client.RemoteDisconnected):
                return self._post(i, path, payload)
            raise
        if resp.status != 200:
            refused = _refusal(resp.status, body)
            if refused is not None:
                raise refused
            raise OSError(f"HTTP {resp.status}: {body[:200].decode(errors='replace')}")
        return json.loads(body)

    def _call(self, path: str, payload: dict) -> dict:
        """POST ``payload`` to the gateway, trying each endpoint from the last good one."""
        errors = []
        with self._lock:
            for k in range(len(self.endpoints)):
                i = (self._current + k) % len(self.endpoints)
                try:
                    result = self._post(i, path, payload)
                except (OSError, http.client.HTTPException, ValueError, RecursionError) as exc:
                    e = self.endpoints[i]
                    errors.append(f"{e.host}:{e.port}: {type(exc).__name__}: "
                                  f"{str(exc)[:160]}")
                    continue
                self._current = i
                return result
        raise StoreUnavailable("etcd unreachable: " + "; ".join(errors))

    def close(self) -> None:
        for conn in self._conns.values():
            conn.close()
        self._conns.clear()

    # --- lease and membership -------------------------------------------------------------------
    def join(self, ttl: int, connected: Iterable[int] = ()) -> None:
        """Take a lease of ``ttl`` seconds and register this node as a member under it."""
        got = self._call("/lease/grant", {"TTL": ttl, "ID": 0})
        self.lease_id = int(got["ID"])
        self.announce(connected)

    def announce(self, connected: Iterable[int]) -> None:
        """Say (again) which switches this node is connected to."""
        value = json.dumps({"node": self.node, "connected": sorted(connected),
                            "peer": self.peer_address})
        self._call("/kv/put", {"key": _b64(f"{self.prefix}members/{self.node}"),
                               "value": _b64(value), "lease": str(self.lease_id)})

    def keepalive(self) -> bool:
        """Refresh the lease; False if it has expired (the node must join again)."""
        got = self._call("/lease/keepalive", {"ID": str(self.lease_id)})
        result = got.get("result") if isinstance(got, dict) else None
        if not isinstance(result, dict):  # (the gateway streams an error as a 200 with
            # "error": not an answer about the lease, which may well be alive)
            raise StoreUnavailable(f"etcd did not answer the keepalive: {str(got)[:200]}")
        return int(result.get("TTL", 0)) > 0

    def revoke(self, lease_id: int) -> bool:
        """Revoke another member's lease (its process ended): its keys go at once.
        False if etcd no longer has that lease."""
        try:
            self._call("/kv/lease/revoke", {"ID": str(lease_id)})
        except StoreRefused as exc:
            if exc.code == NOT_FOUND:
                return False
            raise
        return True

    def leave(self) -> None:
        """Revoke the lease: this node's member and master keys go at once."""
        if self.lease_id is not None:
            self._call("/kv/lease/revoke", {"ID": str(self.lease_id)})
            self.lease_id = None

    # --- reading ----------------------------------------------------------------------------------
    def view(self) -> StoreView:
        """Members and master keys as the store holds them now (one range request)."""
        got = self._call("/kv/range", {"key": _b64(self.prefix),
                                       "range_end": _b64(_prefix_end(self.prefix))})
        members: set[str] = set()
        connected: dict[str, frozenset[int]] = {}
        holders: dict[int, Holder] = {}
        intents: dict[str, Intent] = {}
        peers: dict[str, tuple[str, int]] = {}
        te_leader: str | None = None
        te_moves: dict[int, Intent] = {}
        leader_lease = 0  # the te-leader key's lease: the leader's moves are under it
        leader_key: tuple[str, int, int, str] | None = None  # (value, lease, mod rev, key)
        move_leases: dict[int, tuple[int, str]] = {}  # leaf -> (its key's lease, key)
        member_lease: dict[str, int] = {}
        # (dpid, holder, lease, mod revision, key)
        masters: list[tuple[int, Holder, int, int, str]] = []
        ignored: list[str] = []
        for kv in got.get("kvs", []) if isinstance(got.get("kvs"), list) else ():
            # (anyone who can write to etcd can put anything under the prefix: a key or
            # value that is not what its kind holds is skipped and named, never applied
            # and never an exception out of here)
            try:
                key = _unb64(kv["key"])[len(self.prefix):]
                value, clean = _lenient(kv.get("value", ""))
            except (ValueError, KeyError, TypeError, AttributeError, RecursionError):
                ignored.append(_escaped(kv.get("key") if isinstance(kv, dict) else None))
                continue
            kind, _, name = key.partition("/")
            if not clean:
                ignored.append(_escaped(kv["key"]))
                # (an intent's reader refuses it, and says so; a master or te-leader key
                # names no member, so it is cleared below: it would block every claim)
                if kind not in ("intent", "master", LEADER_KEY):
                    continue
            try:
                if kind == "members":
                    members.add(name)
                    member_lease[name] = int(kv.get("lease", 0))
                    try:
                        doc = json.loads(value)
                        connected[name] = frozenset(int(d) for d in doc["connected"])
                    except (ValueError, KeyError, TypeError, RecursionError):
                        connected[name] = frozenset()
                        continue
                    if isinstance(doc.get("peer"), str) and doc["peer"] and kv.get("lease"):
                        peers[name] = (doc["peer"], int(kv["lease"]))
                elif kind == "intent":
                    intents[name] = Intent(name, int(kv.get("mod_revision", 0)), value)
                elif kind == LEADER_KEY:
                    leader_key = (value, int(kv.get("lease", 0)),
                                  int(kv["mod_revision"]), kv["key"])
                elif kind == "te":
                    leaf = int(name, 16)
                    te_moves[leaf] = Intent(key, int(kv.get("mod_revision", 0)), value)
                    move_leases[leaf] = (int(kv.get("lease", 0)), kv["key"])
                elif kind == "master":
                    dpid = int(name, 16)
                    if name != f"{dpid:016x}":  # (not a name an instance writes: it
                        raise ValueError(name)  # blocks no claim, and is only named)
                    masters.append((dpid, Holder(value, int(kv["create_revision"])),
                                    int(kv.get("lease", 0)), int(kv["mod_revision"]),
                                    kv["key"]))
            except (ValueError, KeyError, TypeError, RecursionError):
                ignored.append(_escaped(kv.get("key")))
        # a master or te-leader key counts only under the lease of the live member it
        # names (an instance writes it so); any other is cleared by an instance, as
        # long as it is still the version read here
        forged: dict[str, int] = {}
        for dpid, holder, lease, revision, raw in masters:
            if lease and member_lease.get(holder.node) == lease:
                holders[dpid] = holder
            else:
                forged[master_key(dpid)] = revision
                ignored.append(_escaped(raw))
        if leader_key is not None:
            value, lease, revision, raw = leader_key
            if lease and member_lease.get(value) == lease:
                te_leader, leader_lease = value, lease
            else:
                forged[LEADER_KEY] = revision
                ignored.append(_escaped(raw))
        # moves count only under the te-leader key's own lease: the leader writes them
        # so (``write_moves``); others were written by someone else, or by a leader
        # that is no more
        for leaf, (lease, raw) in move_leases.items():
            if not leader_lease or lease != leader_lease:
                del te_moves[leaf]
                ignored.append(_escaped(raw))
        return StoreView(frozenset(members), holders, connected, intents, peers, te_leader,
                         te_moves, tuple(dict.fromkeys(ignored)), forged)

    # --- mastership -------------------------------------------------------------------------------
    def _master_key(self, dpid: int) -> str:
        return f"{self.prefix}{master_key(dpid)}"

    def clear(self, key: str, revision: int) -> bool:
        """Delete ``key`` (below the prefix) if it is still the version last modified at
        ``revision``: a key no live member wrote. False if it changed or went meanwhile
        (nothing deleted: another instance may have cleared it and claimed)."""
        k = _b64(f"{self.prefix}{key}")
        got = self._call("/kv/txn", {
            "compare": [{"key": k, "result": "EQUAL", "target": "MOD",
                         "mod_revision": str(revision)}],
            "success": [{"request_delete_range": {"key": k}}],
            "failure": []})
        return bool(got.get("succeeded"))

    def claim(self, dpid: int) -> int | None:
        """Create the switch's master key for this node if it is absent: the generation
        id (the key's create revision) when this node won, else None."""
        got = self._create_mine(self._master_key(dpid))
        return int(got["header"]["revision"]) if got.get("succeeded") else None

    def _create_mine(self, key: str) -> dict:
        """Create ``key`` holding this node's name, bound to its lease, if it is absent
        (the transaction's answer: ``succeeded`` when this node created it)."""
        k = _b64(key)
        return self._call("/kv/txn", {
            "compare": [{"key": k, "result": "EQUAL", "target": "CREATE",
                         "create_revision": 0}],
            "success": [{"request_put": {"key": k, "value": _b64(self.node),
                                         "lease": str(self.lease_id)}}],
            "failure": []})

    def release(self, dpid: int) -> bool:
        """Delete the switch's master key if this node holds it."""
        key = _b64(self._master_key(dpid))
        got = self._call("/kv/txn", {
            "compare": [{"key": key, "result": "EQUAL", "target": "VALUE",
                         "value": _b64(self.node)}],
            "success": [{"request_delete_range": {"key": key}}],
            "failure": []})
        return bool(got.get("succeeded"))

    # --- the TE leader ---------------------------------------------------------------------------
    def claim_leader(self) -> bool:
        """Create the te-leader key for this node if it is absent (True: it won)."""
        return bool(self._create_mine(f"{self.prefix}{LEADER_KEY}").get("succeeded"))

    def write_moves(self, leaf: int, value: str) -> bool:
        """The leader's latest moves of ``leaf``'s flows, if this node still holds the
        te-leader key (False: it does not; nothing written)."""
        leader = _b64(f"{self.prefix}{LEADER_KEY}")
        got = self._call("/kv/txn", {
            "compare": [{"key": leader, "result": "EQUAL", "target": "VALUE",
                         "value": _b64(self.node)}],
            "success": [{"request_put": {"key": _b64(f"{self.prefix}te/{leaf:016x}"),
                                         "value": _b64(value),
                                         "lease": str(self.lease_id)}}],
            "failure": []})
        return bool(got.get("succeeded"))

    # --- shared operator intent -------------------------------------------------------------------
    def write_intent(self, kind: str, value: str, expect: int) -> tuple[bool, Intent]:
        """Replace ``kind``'s value if the store still holds the revision ``expect`` of it
        (0: never written): (True, the new intent), or (False, what the store holds now,
        for the caller to apply before it computes its change again)."""
        key = _b64(f"{self.prefix}intent/{kind}")
        got = self._call("/kv/txn", {
            "compare": [{"key": key, "result": "EQUAL", "target": "MOD",
                         "mod_revision": str(expect)}],
            "success": [{"request_put": {"key": key, "value": _b64(value)}}],
            "failure": [{"request_range": {"key": key}}]})
        if got.get("succeeded"):
            return True, Intent(kind, int(got["header"]["revision"]), value)
        kvs = got["responses"][0]["response_range"].get("kvs", [])
        if not kvs:
            return False, Intent(kind, 0, "")
        return False, Intent(kind, int(kvs[0]["mod_revision"]),
                             _lenient(kvs[0].get("value", ""))[0])

    # --- shared settings --------------------------------------------------------------------------
    def shared_secret(self, fresh: bytes) -> bytes:
        """The cluster's LLDP key: ``fresh`` if this node is the first to set it, else
        the one already there (every instance must sign and check probes alike)."""
        key = _b64(f"{self.prefix}lldp-secret")
        got = self._call("/kv/txn", {
            "compare": [{"key": key, "result": "EQUAL", "target": "CREATE",
                         "create_revision": 0}],
            "success": [{"request_put": {"key": key, "value": _b64(fresh.hex())}}],
            "failure": [{"request_range": {"key": key}}]})
        if got.get("succeeded"):
            return fresh
        kvs = got["responses"][0]["response_range"].get("kvs", [])
        try:
            return bytes.fromhex(_unb64(kvs[0]["value"]))
        except (ValueError, KeyError) as exc:
            raise StoreRefused(0, f"the cluster's LLDP key in etcd ({self.prefix}lldp-"
                                  "secret) is not what an instance writes (hex)") from exc
