"""Servers and rails: the rail check, SERVER:RAIL job members, the configuration's
servers and numbering rule, and the core's snapshot of them."""

from __future__ import annotations

import re

import pytest

from controller.config import FabricdConfig
from controller.core.errors import FailedPrecondition, InvalidArgument
from controller.core.model.servers import Located, Server, rail_check, resolve_member
from controller.core.settings import CoreSettings
from tests.unit.fakefabric import FakeFabric, learn


def at(ip: str, leaf: int, port: int) -> Located:
    n = int(ip.rsplit(".", 1)[1])
    return Located(f"00:00:00:00:00:{n:02x}", ip, leaf, port)


# two servers with two rails each: rail 0 on leaf 2001, rail 1 on leaf 2002
SERVERS = (Server("gpu1", ("10.0.0.1", "10.0.0.3")), Server("gpu2", ("10.0.0.2", "10.0.0.4")))
WIRED = [at("10.0.0.1", 2001, 3), at("10.0.0.2", 2001, 4), at("10.0.0.3", 2002, 3),
         at("10.0.0.4", 2002, 4)]


def test_a_rail_optimized_group_passes_the_rail_check():
    rows, warnings = rail_check(SERVERS, WIRED)
    assert warnings == ()
    assert [(r.server, r.rail, r.dpid, r.state) for r in rows] == [
        ("gpu1", 0, 2001, "ok"), ("gpu1", 1, 2002, "ok"),
        ("gpu2", 0, 2001, "ok"), ("gpu2", 1, 2002, "ok")]


def test_a_nic_on_a_leaf_of_another_rail_is_warned_and_an_unseen_one_shown():
    servers = SERVERS + (Server("gpu3", ("10.0.0.5", "00:00:00:00:00:06", "10.0.0.9")),)
    hosts = WIRED + [at("10.0.0.5", 2002, 5), at("10.0.0.6", 2002, 6)]  # rail 0 on 2002
    rows, warnings = rail_check(servers, hosts)
    assert warnings == ("server gpu3 rail 0 NIC 10.0.0.5 is on leaf 2002 port 5, a leaf "
                        "of rail 1",)
    state = {(r.server, r.rail): r.state for r in rows}
    assert state[("gpu3", 0)] == "off-rail" and state[("gpu3", 1)] == "ok"
    assert state[("gpu3", 2)] == "unseen"


def test_job_members_name_a_servers_nic():
    servers = {s.name: s for s in SERVERS + (Server("gpu9", ("aa:bb:cc:dd:ee:01",)),)}
    assert resolve_member("gpu2:1", servers, {}, 0) == "10.0.0.4"
    assert resolve_member("10.0.0.7", servers, {}, 0) == "10.0.0.7"
    assert resolve_member("gpu9:0", servers, {"aa:bb:cc:dd:ee:01": "10.1.0.1"}, 0) == "10.1.0.1"
    with pytest.raises(InvalidArgument, match=r"members\[3\]: no server 'gpu7'"):
        resolve_member("gpu7:0", servers, {}, 3)
    with pytest.raises(InvalidArgument, match="has rails 0-1, not 2"):
        resolve_member("gpu1:2", servers, {}, 0)
    with pytest.raises(FailedPrecondition, match="not been seen with an address"):
        resolve_member("gpu9:0", servers, {}, 0)


def test_the_configuration_numbers_servers_by_rule_and_refuses_clashes():
    cfg = FabricdConfig.model_validate({
        "servers": [{"name": "head", "nics": ["10.9.0.1"]}],
        "server_rule": {"servers": 2, "rails": 4, "first": "10.0.0.1", "name": "gpu{n}"}})
    got = {s.name: s.nics for s in cfg.all_servers()}
    assert got == {"head": ["10.9.0.1"],
                   "gpu1": ["10.0.0.1", "10.0.0.3", "10.0.0.5", "10.0.0.7"],
                   "gpu2": ["10.0.0.2", "10.0.0.4", "10.0.0.6", "10.0.0.8"]}
    for bad, why in (
            ({"servers": [{"name": "a", "nics": ["10.0.0.1"]},
                          {"name": "b", "nics": ["10.0.0.1"]}]}, "NIC 10.0.0.1 is server a"),
            ({"servers": [{"name": "a", "nics": ["nope"]}]}, "neither an IPv4 address"),
            ({"servers": [{"name": "a", "nics": ["224.0.0.1"]}]}, "not an address a host"),
            ({"servers": [{"name": "a", "nics": ["ff:ff:ff:ff:ff:ff"]}]},
             "not an address a host"),
            ({"server_rule": {"servers": 2, "rails": 1, "first": "10.0.0.1",
                              "name": "x"}}, "the same name"),
            ({"server_rule": {"servers": 2, "rails": 2, "first": "255.255.255.254"}},
             "past 255.255.255.255")):
        with pytest.raises(ValueError, match=why):
            FabricdConfig.model_validate(bad)


def test_the_core_shows_each_nic_where_it_is_and_resolves_members():
    by_mac = Server("gpu9", ("00:00:00:00:00:05",))  # (a NIC named by its MAC)
    fab = FakeFabric(2, 2, 3, settings=CoreSettings(servers=SERVERS + (by_mac,)))
    fab.connect_all()
    hosts = {n: (f"00:00:00:00:00:{n:02x}", f"10.0.0.{n}") for n in range(1, 5)}
    # gpu1's and gpu2's rail-0 NICs on leaf 2001; their rail-1 NICs on 2002, but one
    # cabled to 2001
    hosts[5] = ("00:00:00:00:00:05", "10.0.0.5")
    where = {1: (2001, 3), 2: (2001, 4), 3: (2002, 3), 4: (2001, 5), 5: (2002, 4)}
    for n, (leaf, port) in where.items():
        fab.deliver(learn(fab, leaf, port, hosts[n]))
    snap = fab.core.snapshot(fab.now)
    state = {(r.server, r.rail): (r.dpid, r.state) for r in snap.server_nics}
    assert state[("gpu2", 1)] == (2001, "off-rail")
    assert state[("gpu9", 0)][0] == 2002  # (found by its MAC)
    assert any(w.startswith("server gpu2 rail 1 NIC 10.0.0.4 is on leaf 2001") for w in
               snap.warnings)
    assert fab.core.job_members(["gpu1:1", "gpu2:0"]) == ("10.0.0.3", "10.0.0.2")


@pytest.mark.parametrize(("name", "nics", "says"), [
    ("gpu1", ["10.0.0.1", "02:00:00:00:00:01"], None),
    ("-gpu", ["10.0.0.1"], "s.name: '-gpu' must be"),
    ("g" * 65, ["10.0.0.1"], "s.name"),
    ("gpu1", [], "s.nics: a server has 1 to 64 NICs, not 0"),
    ("gpu1", ["10.0.0.1"] * 65, "s.nics: a server has 1 to 64 NICs, not 65"),
    ("gpu1", ["10.0.0.1", "nope"], "s.nics[1]: 'nope' is neither"),
    ("gpu1", ["224.0.0.5"], "s.nics[0]: 224.0.0.5 is not an address a host may own"),
    ("gpu1", ["ff:ff:ff:ff:ff:ff"], "s.nics[0]: ff:ff:ff:ff:ff:ff is not an address"),
])
def test_a_server_is_checked_field_by_field(name, nics, says):
    from controller.core.model.servers import server_of

    if says is None:
        assert server_of(name, nics, "s") == Server("gpu1", ("10.0.0.1", "02:00:00:00:00:01"))
        return
    with pytest.raises(InvalidArgument) as err:
        server_of(name, nics, "s")
    assert says in str(err.value)


def test_servers_set_through_the_api_stand_beside_the_configured_ones_or_not_at_all():
    from controller.core.intent.kinds import (
        DECODERS,
        KINDS,
        IntentError,
        decode_servers,
        encode_servers,
    )
    from controller.core.model.servers import ServerBook

    book = ServerBook(SERVERS[:1])
    api = (Server("gpu2", ("10.0.0.2", "10.0.0.4")),)
    book.check(api)
    book.api = api
    assert book.all == SERVERS and set(book.by_name()) == {"gpu1", "gpu2"}
    for clash, says in (((Server("gpu1", ("10.0.0.9",)),), "two servers named 'gpu1'"),
                        ((Server("gpu3", ("10.0.0.3",)),), "NIC 10.0.0.3 is server gpu1"),
                        ((Server("a", ("10.0.0.8",)), Server("a", ("10.0.0.9",))),
                         "servers: two servers named 'a'")):
        with pytest.raises(InvalidArgument, match=says):
            book.check(clash)
    assert book.api == api  # (checked, not changed)
    # as a store keeps them: read back as strictly as a request
    assert decode_servers(encode_servers(SERVERS)) == SERVERS
    assert decode_servers("") == ()
    for stored in ('{"name": "a"}', '[{"name": "a"}]', '[{"name": "a", "nics": ["x"]}]',
                   '[{"name": "a", "nics": ["10.0.0.1"]}, {"name": "a", "nics": '
                   '["10.0.0.2"]}]', "\xff", '[{"name": "", "nics": ["10.0.0.1"]}]'):
        with pytest.raises(IntentError, match="servers: not a server list"):
            decode_servers(stored)
    assert set(DECODERS) == set(KINDS)


def test_fabricctl_reads_a_servers_file_in_either_shape(tmp_path):
    from controller.cli.servers_cmd import servers_from_file

    f = tmp_path / "s.yaml"
    f.write_text("- name: gpu1\n  nics: [10.0.0.1, 10.0.0.3]\n")
    assert servers_from_file(str(f)) == [("gpu1", ["10.0.0.1", "10.0.0.3"])]
    f.write_text('{"servers": [{"name": "gpu1", "nics": ["10.0.0.1"]}]}')
    assert servers_from_file(str(f)) == [("gpu1", ["10.0.0.1"])]
    f.write_text("")
    assert servers_from_file(str(f)) == []
    for text, says in (("gpu1: [10.0.0.1]", "expected a list"),
                       ("- name: gpu1\n", r"servers\[0\] must be"),
                       ("- {name: a, nics: x}", r"servers\[0\] must be"),
                       ("[", "not YAML or JSON")):
        f.write_text(text)
        with pytest.raises(ValueError, match=says):
            servers_from_file(str(f))
    with pytest.raises(ValueError, match="cannot read"):
        servers_from_file(str(tmp_path / "missing.yaml"))


def test_servers_are_grouped_from_their_nics_host_names(tmp_path):
    hosts = tmp_path / "hosts"
    hosts.write_text(
        "127.0.0.1 localhost\n"
        "::1 localhost ip6-localhost   # (IPv6: left alone)\n"
        "10.0.0.1 gpu01-rail0 gpu01\n"
        "10.0.1.1 gpu01-rail1\n"
        "10.0.0.2 node2 gpu02-rail0   # (an alias matches)\n"
        "10.0.1.2 gpu02-rail1\n"
        "10.9.9.9 storage01           # (no match: not a server)\n")
    cfg = FabricdConfig.model_validate({
        "servers": [{"name": "head", "nics": ["10.9.0.1"]}],
        "server_names": {"hosts_file": str(hosts)}})
    assert {s.name: s.nics for s in cfg.all_servers()} == {
        "head": ["10.9.0.1"], "gpu01": ["10.0.0.1", "10.0.1.1"],
        "gpu02": ["10.0.0.2", "10.0.1.2"]}
    # rails counted from 1, another pattern
    hosts.write_text("10.0.0.1 n1.nic1\n10.0.1.1 n1.nic2\n")
    cfg = FabricdConfig.model_validate({"server_names": {
        "hosts_file": str(hosts), "pattern": r"(?P<server>n\d+)\.nic(?P<rail>\d)",
        "first_rail": 1}})
    assert [(s.name, s.nics) for s in cfg.all_servers()] == [("n1", ["10.0.0.1",
                                                                      "10.0.1.1"])]


@pytest.mark.parametrize(("text", "extra", "says"), [
    ("10.0.0.1 a-rail0\n10.0.0.2 a-rail0\n", {}, "line 2: server a rail 0 is 10.0.0.1 "
     "already (line 1)"),
    ("10.0.0.1 a-rail0\n10.0.2.1 a-rail2\n", {}, "line 1: server a has no NIC on rail 1"),
    ("10.0.0.1 a-rail9999999\n", {}, "line 1: rail 9999999 is not one of the 64"),
    ("10.0.0.1 a-rail\n", {"pattern": "(?P<server>.+)-rail(?P<rail>[0-9]+)?"},
     "line 1: the pattern matched 'a-rail' without a server or a rail"),
    ("10.0.0.1 a-rail0\n", {"pattern": "(?P<server>x)?a-rail(?P<rail>[0-9]+)"},
     "without a server or a rail"),
    ("0.0.0.0 a-rail0\n", {}, "line 1: server 'a': nics[0]: 0.0.0.0 is not an address"),
    ("10.0.0.1 a-rail0\n", {"first_rail": 1},
     "line 1: rail 0 is not one of the 64 from first_rail (1)"),
    ("10.0.0.1 -a-rail0\n", {}, "line 1: server '-a'"),
    ("10.0.0.1 a-rail0\n10.0.0.1 b-rail0\n", {}, "NIC 10.0.0.1 is server a"),
    ("10.0.0.1 a-railx\n", {"pattern": "(?P<server>a)-rail(?P<rail>.+)"},
     "line 1: rail 'x' is not a number"),
    ("", {"pattern": "(?P<server>.+)"}, "needs the groups"),
    ("", {"pattern": "(?P<server>"}, "is not a regular expression"),
])
def test_a_bad_hosts_file_or_pattern_is_refused_with_the_line(tmp_path, text, extra, says):
    hosts = tmp_path / "hosts"
    hosts.write_text(text)
    with pytest.raises(ValueError, match=re.escape(says)):
        FabricdConfig.model_validate({"server_names": {"hosts_file": str(hosts), **extra}})


def test_a_missing_hosts_file_is_a_one_line_config_error(tmp_path):
    from controller.config import ConfigError, load_config

    cfg = tmp_path / "fabricd.yaml"
    cfg.write_text(f"server_names: {{hosts_file: {tmp_path / 'nope'}}}\n")
    with pytest.raises(ConfigError) as err:
        load_config(str(cfg))
    assert str(err.value).startswith("server_names: ")
    assert "No such file" in str(err.value) and "\n" not in str(err.value)
