"""Servers and their NICs, one per rail, and the rail check.

AI clusters are rail-optimized: NIC r of every server of a group is cabled to the leaf
(or leaves) of rail r, so that traffic between the same rail of two servers stays on one
leaf. The operator says which NICs make a server (``servers:`` in the configuration:
a NIC by IPv4 address or MAC, in rail order; or a rule that numbers them); where each NIC
is comes from the host table. The check (as ``ibdiagnet --rail_validation`` does for
InfiniBand) gives every leaf the rail most of its NICs are on, and warns about a NIC on
a leaf of another rail.
"""

from __future__ import annotations

import ipaddress
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from controller.core.errors import FailedPrecondition, InvalidArgument
from controller.core.fabric.hosts import host_address, unicast_mac
from controller.core.snapshot import NicInfo

MAC = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
MAX_NICS = 16_384  # servers' NICs in all (a 16k-GPU cluster; each is a row of GetTopology)
MAX_RAILS = 64  # NICs of one server


@dataclass(frozen=True)
class Server:
    """A server: its name and its NICs in rail order (an IPv4 address or a MAC each)."""

    name: str
    nics: tuple[str, ...]


def nic_key(text: str) -> str:
    """A NIC as the configuration names it, normalized (an IPv4 address, or a MAC in
    lower case); ValueError with a reason otherwise."""
    t = text.strip().lower()
    if MAC.match(t):
        return t
    try:
        return str(ipaddress.IPv4Address(t))
    except ValueError:
        raise ValueError(f"{text!r} is neither an IPv4 address nor a MAC") from None


def server_of(name: str, nics: Iterable[str], where: str = "") -> Server:
    """A server checked as the configuration and the API check it (its NICs
    normalized): InvalidArgument naming the field (``where``: the server's)."""
    at = f"{where}." if where else ""
    if not NAME.match(name):
        raise InvalidArgument(f"{at}name: {name[:80]!r} must be 1-64 letters, digits, '.', "
                              "'_' or '-', starting with a letter or digit")
    given = list(nics)
    if not 1 <= len(given) <= MAX_RAILS:
        raise InvalidArgument(f"{at}nics: a server has 1 to {MAX_RAILS} NICs, "
                              f"not {len(given)}")
    out = []
    for rail, nic in enumerate(given):
        try:
            key = nic_key(nic)
        except ValueError as exc:
            raise InvalidArgument(f"{at}nics[{rail}]: {exc}") from None
        if not (unicast_mac(key) if ":" in key else host_address(key)):
            raise InvalidArgument(f"{at}nics[{rail}]: {nic} is not an address a host may "
                                  "own")
        out.append(key)
    return Server(name, tuple(out))


def check_apart(servers: Iterable[Server], where: str = "servers") -> None:
    """No two servers share a name or a NIC, and their NICs are within
    :data:`MAX_NICS`: InvalidArgument saying which otherwise."""
    names: set[str] = set()
    owner: dict[str, str] = {}
    count = 0
    for s in servers:
        if s.name in names:
            raise InvalidArgument(f"{where}: two servers named {s.name!r}")
        names.add(s.name)
        count += len(s.nics)
        if count > MAX_NICS:
            raise InvalidArgument(f"{where}: more than {MAX_NICS} NICs in all")
        for rail, nic in enumerate(s.nics):
            if nic in owner:
                raise InvalidArgument(f"{where}: NIC {nic} is {owner[nic]} and server "
                                      f"{s.name} rail {rail}")
            owner[nic] = f"server {s.name} rail {rail}"


class ServerBook:
    """The servers in force: the configuration's, and those set through the API (which
    replace each other whole, as the store keeps them)."""

    def __init__(self, configured: tuple[Server, ...] = ()) -> None:
        self.configured = configured
        self.api: tuple[Server, ...] = ()

    @property
    def all(self) -> tuple[Server, ...]:
        return self.configured + self.api

    def by_name(self) -> dict[str, Server]:
        return {s.name: s for s in self.all}

    def check(self, api: tuple[Server, ...]) -> None:
        """InvalidArgument if ``api`` cannot stand beside the configured servers (a name
        or a NIC used twice, too many NICs in all)."""
        check_apart(api)
        check_apart(self.configured + api, "servers (with the configuration's)")


@dataclass(frozen=True)
class Located:
    """Where a host is: what the rail check needs of the host table."""

    mac: str
    ip: str | None
    dpid: int
    port: int


def rail_check(servers: Iterable[Server], hosts: Iterable[Located]
               ) -> tuple[tuple[NicInfo, ...], tuple[str, ...]]:
    """Every NIC of every server where it is ("ok", "off-rail": on a leaf of another
    rail, "unseen": not in the host table), and a warning per NIC off its rail."""
    servers = tuple(servers)
    if not servers:  # (every topology snapshot asks: the host table is not read)
        return (), ()
    hosts = list(hosts)  # (read twice below)
    by_ip = {h.ip: h for h in hosts if h.ip}
    by_mac = {h.mac: h for h in hosts}
    hosts_at = {**by_mac, **by_ip}
    placed: list[tuple[Server, int, str, Located | None]] = [
        (s, rail, nic, hosts_at.get(nic)) for s in servers for rail, nic in enumerate(s.nics)]
    on_leaf: dict[int, Counter[int]] = {}
    for _, rail, _, h in placed:
        if h is not None:
            on_leaf.setdefault(h.dpid, Counter())[rail] += 1
    # a leaf's rail: the one most of its NICs are on (the lowest of a tie)
    rail_of = {leaf: min(c, key=lambda r: (-c[r], r)) for leaf, c in on_leaf.items()}
    rows, warnings = [], []
    for s, rail, nic, h in placed:
        if h is None:
            rows.append(NicInfo(s.name, rail, nic, "", "", 0, 0, "unseen"))
            continue
        state = "ok" if rail_of[h.dpid] == rail else "off-rail"
        rows.append(NicInfo(s.name, rail, nic, h.mac, h.ip or "", h.dpid, h.port, state))
        if state != "ok":
            warnings.append(f"server {s.name} rail {rail} NIC {nic} is on leaf {h.dpid} "
                            f"port {h.port}, a leaf of rail {rail_of[h.dpid]}")
    return tuple(rows), tuple(warnings)


def resolve_member(member: str, servers: Mapping[str, Server],
                   ip_of_mac: Mapping[str, str], index: int) -> str:
    """A job member as given: an IPv4 address, or ``server:rail`` (that server's NIC on
    that rail, by its address: a NIC named by MAC must have been seen with one,
    FailedPrecondition if not yet); InvalidArgument naming ``members[index]`` for an
    unknown server or rail."""
    name, sep, rail_text = member.rpartition(":")
    if not sep or not name:
        return member
    where = f"members[{index}]"
    server = servers.get(name)
    if server is None:
        raise InvalidArgument(f"{where}: no server {name!r} (servers: in the configuration, "
                              "or fabricctl servers --set)")
    try:
        rail = int(rail_text)
    except ValueError:
        raise InvalidArgument(f"{where}: rail {rail_text!r} is not a number") from None
    if not 0 <= rail < len(server.nics):
        raise InvalidArgument(f"{where}: server {name} has rails 0-{len(server.nics) - 1}, "
                              f"not {rail}")
    nic = server.nics[rail]
    if not MAC.match(nic):
        return nic
    ip = ip_of_mac.get(nic)
    if ip is None:
        raise FailedPrecondition(f"{where}: server {name} rail {rail}'s NIC {nic} has not "
                                 "been seen with an address yet")
    return ip
