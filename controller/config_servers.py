"""The servers of a rail-optimized fabric in the configuration: listed
(:class:`ServerConfig`), numbered by their addresses (:class:`ServerRuleConfig`) or
grouped from their NICs' names in a hosts file (:class:`ServerNamesConfig`). The
checks across all of them (names and NICs apart, the limits) are the core's
(:mod:`controller.core.model.servers`), run by :class:`controller.config.FabricdConfig`.
"""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path

from pydantic import Field, PrivateAttr, ValidationError, field_validator, model_validator

from controller.config_daemon import Strict
from controller.core.errors import InvalidArgument
from controller.core.model.servers import MAX_NICS, MAX_RAILS, server_of

MAX_HOSTS_FILE = 16 << 20  # bytes of a hosts file read for server names


class ServerConfig(Strict):
    """A server and its NICs, one per rail (rail-optimized: NIC r on rail r's leaves)."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$",
                      description="its name (jobs name a NIC as NAME:RAIL)")
    nics: list[str] = Field(min_length=1, max_length=64, description="its NICs in rail "
                            "order, each an IPv4 address or a MAC")

    @field_validator("nics")
    @classmethod
    def _nics(cls, v: list[str]) -> list[str]:
        try:
            return list(server_of("x", v).nics)
        except InvalidArgument as exc:  # ("nics[i]: ...", as the API says it)
            raise ValueError(str(exc)) from None


class ServerRuleConfig(Strict):
    """Servers numbered by their addresses: NIC r of server n (from 1) is ``first`` +
    (n - 1) x ``server_stride`` + r x ``rail_stride``, named ``name`` with {n}."""

    servers: int = Field(ge=1, le=16_384, description="how many servers")
    rails: int = Field(ge=1, le=64, description="NICs (rails) per server")
    first: str = Field(description="the address of server 1's NIC on rail 0")
    server_stride: int = Field(1, ge=1, description="addresses from a server's NIC to "
                               "the next server's on the same rail")
    rail_stride: int | None = Field(None, ge=1, description="addresses from a server's "
                                    "NIC to its NIC on the next rail (default: servers "
                                    "x server_stride, as hosts numbered leaf by leaf)")
    name: str = Field("server{n}", description="the servers' names, {n} their number")

    def expand(self) -> list[ServerConfig]:
        """The servers this rule makes (ValueError if an address leaves IPv4)."""
        first = int(ipaddress.IPv4Address(self.first))
        rail = self.rail_stride or self.servers * self.server_stride
        last = first + (self.servers - 1) * self.server_stride + (self.rails - 1) * rail
        if last > 0xFFFFFFFF:
            raise ValueError(f"the last address, {last - first} after {self.first}, is "
                             "past 255.255.255.255")
        return [ServerConfig(
            name=self.name.format(n=n),
            nics=[str(ipaddress.IPv4Address(first + (n - 1) * self.server_stride + r * rail))
                  for r in range(self.rails)]) for n in range(1, self.servers + 1)]

    @model_validator(mode="after")
    def _valid(self) -> ServerRuleConfig:
        if self.servers * self.rails > MAX_NICS:
            raise ValueError(f"{self.servers} servers of {self.rails} NICs is over the "
                             f"limit of {MAX_NICS} NICs")
        try:
            ipaddress.IPv4Address(self.first)
            names = self.expand()
        except (KeyError, IndexError) as exc:
            raise ValueError(f"name {self.name!r} may use {{n}} only, not {exc}") from None
        except ValueError as exc:
            raise ValueError(str(exc)) from None
        if len({s.name for s in names}) != len(names):
            raise ValueError(f"name {self.name!r} gives the servers the same name: "
                             "put {n} in it")
        return self


class ServerNamesConfig(Strict):
    """Servers grouped from host names: every line of ``hosts_file`` (``ADDRESS NAME
    [ALIAS...]``, as /etc/hosts) with an IPv4 address and a name or alias that
    ``pattern`` matches whole makes that address the NIC of server ``server`` (the
    pattern's group) on rail ``rail`` (its group, a number; rails counted from
    ``first_rail``). Lines that match nothing are left alone; a server must have a NIC
    on every rail up to its last."""

    hosts_file: str = Field(description="a file of ADDRESS NAME [ALIAS...] lines, as "
                            "/etc/hosts, read when the configuration is")
    pattern: str = Field(r"(?P<server>.+)-rail(?P<rail>[0-9]+)", description="a regular "
                         "expression a whole name must match, with the groups server "
                         "and rail (digits)")
    first_rail: int = Field(0, ge=0, le=1_000_000, description="the number the names "
                            "give rail 0")
    _servers: list[ServerConfig] = PrivateAttr(default_factory=list)

    @field_validator("pattern")
    @classmethod
    def _pattern(cls, v: str) -> str:
        try:
            groups = re.compile(v).groupindex
        except re.error as exc:
            raise ValueError(f"{v!r} is not a regular expression: {exc}") from None
        if not {"server", "rail"} <= set(groups):
            raise ValueError(f"{v!r} needs the groups (?P<server>...) and (?P<rail>...)")
        return v

    @model_validator(mode="after")
    def _read(self) -> ServerNamesConfig:
        self._servers = self._parse(self._text())
        return self

    def _text(self) -> str:
        path = Path(self.hosts_file).expanduser()
        try:
            with path.open("rb") as f:
                data = f.read(MAX_HOSTS_FILE + 1)
        except OSError as exc:
            raise ValueError(f"hosts_file {self.hosts_file}: {exc.strerror or exc}") from None
        if len(data) > MAX_HOSTS_FILE:
            raise ValueError(f"hosts_file {self.hosts_file} is over {MAX_HOSTS_FILE} bytes")
        return data.decode("utf-8", errors="replace")

    def _parse(self, text: str) -> list[ServerConfig]:
        match = re.compile(self.pattern).fullmatch
        where = f"hosts_file {self.hosts_file}"
        rails: dict[str, dict[int, tuple[str, int]]] = {}  # server -> rail -> (NIC, line)
        nics = 0
        for lineno, line in enumerate(text.splitlines(), start=1):
            words = line.split("#", 1)[0].split()
            if len(words) < 2:
                continue
            try:
                ipaddress.IPv4Address(words[0])
            except ValueError:
                continue  # (IPv6 and the like: not a NIC this fabric knows)
            m = next((m for m in map(match, words[1:]) if m), None)
            if m is None:
                continue
            server, rail = m["server"], m["rail"]
            if not server or rail is None:
                raise ValueError(f"{where} line {lineno}: the pattern matched {m[0]!r} "
                                 "without a server or a rail")
            if not rail.isdigit() or len(rail) > 7:
                raise ValueError(f"{where} line {lineno}: rail {rail!r} is not a number")
            r = int(rail) - self.first_rail
            if not 0 <= r < MAX_RAILS:
                raise ValueError(f"{where} line {lineno}: rail {rail} is not one of the "
                                 f"{MAX_RAILS} from first_rail ({self.first_rail})")
            held = rails.setdefault(server, {})
            if r in held:
                raise ValueError(f"{where} line {lineno}: server {server} rail {rail} is "
                                 f"{held[r][0]} already (line {held[r][1]})")
            nics += 1
            if nics > MAX_NICS:
                raise ValueError(f"{where}: more than {MAX_NICS} NICs")
            held[r] = (words[0], lineno)
        out = []
        for server, held in rails.items():
            first_line = min(n for _, n in held.values())
            missing = [r for r in range(max(held) + 1) if r not in held]
            if missing:
                raise ValueError(f"{where} line {first_line}: server {server} has no NIC "
                                 f"on rail {missing[0] + self.first_rail} (its names go up "
                                 f"to rail {max(held) + self.first_rail})")
            try:
                out.append(ServerConfig(name=server,
                                        nics=[held[r][0] for r in range(len(held))]))
            except ValidationError as exc:
                err = exc.errors()[0]
                why = str(err["msg"]).removeprefix("Value error, ")
                raise ValueError(f"{where} line {first_line}: server {server!r}: "
                                 f"{why}") from None
        return out

    def expand(self) -> list[ServerConfig]:
        """The servers the hosts file gave (read when the configuration was)."""
        return list(self._servers)
