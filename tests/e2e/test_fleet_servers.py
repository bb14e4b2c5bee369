"""Rail-optimized servers through fabricctl against a real fabricd and a fake fleet
(tests/fakes): two leaves, one per rail, three servers with a NIC on each (two listed,
one named in a hosts file); one server cabled the wrong way round. fabricctl servers
shows every NIC where it is and the rail check names the two off their rail; a job
names its members as SERVER:RAIL, and its same-rail pairs stay on their leaf."""

from __future__ import annotations

import json

from tests.e2e import fleet_support as fs
from tests.e2e.fleet_support import fabricctl, start_fleet
from tests.fakes.layout import spine_leaf

# fixtures, by name
_environment, start_fabricd, fabricd, fleets = fs.FIXTURES

LAYOUT = spine_leaf(2, 2, 3)  # h1-h3 on leaf 2001 (rail 0), h4-h6 on leaf 2002 (rail 1)
IP = {n: f"10.0.0.{n}" for n in range(1, 7)}
SERVERS = [{"name": "gpu1", "nics": [IP[1], IP[4]]}, {"name": "gpu2", "nics": [IP[2], IP[5]]},
           {"name": "gpu3", "nics": [IP[6], IP[3]]}]  # gpu3: cabled the wrong way round


def test_servers_rail_check_and_a_job_by_server_and_rail(start_fabricd, fleets, tmp_path):
    # gpu1 and gpu2 listed, gpu3 grouped from its NICs' names in a hosts file
    hosts_file = tmp_path / "hosts"
    hosts_file.write_text(f"127.0.0.1 localhost\n{IP[6]} gpu3-rail0\n{IP[3]} gpu3-rail1\n")
    ctl = start_fabricd(config={"servers": SERVERS[:2],
                                "server_names": {"hosts_file": str(hosts_file)}})
    _, hosts = start_fleet(ctl, fleets, LAYOUT)
    assert [h.ip for h in hosts] == list(IP.values())
    assert hosts.all_pairs() == []  # (the controller knows every host)
    res = fabricctl(ctl, "--json", "servers")
    assert res.returncode == 0, res.stderr
    nics = {(n["server"], n["rail"]): (n["ip"], n["dpid"], n["state"])
            for n in json.loads(res.stdout)}
    assert nics == {("gpu1", 0): (IP[1], 2001, "ok"), ("gpu1", 1): (IP[4], 2002, "ok"),
                    ("gpu2", 0): (IP[2], 2001, "ok"), ("gpu2", 1): (IP[5], 2002, "ok"),
                    ("gpu3", 0): (IP[6], 2002, "off-rail"),
                    ("gpu3", 1): (IP[3], 2001, "off-rail")}
    human = fabricctl(ctl, "servers")
    assert human.returncode == 0, human.stderr
    assert "! server gpu3 rail 0 NIC 10.0.0.6 is on leaf 2002 port 5, a leaf of rail 1" \
        in human.stdout
    topo = json.loads(fabricctl(ctl, "--json", "topology").stdout)
    assert sum(w.startswith("server gpu3 ") for w in topo["warnings"]) == 2

    # a job by server and rail: rail 0 of gpu1 and gpu2 (one leaf), then rail 1
    doc = {"id": "rails", "members": ["gpu1:0", "gpu2:0", "gpu1:1", "gpu2:1"],
           "pattern": "pairs", "pairs": [[0, 1], [1, 0], [2, 3], [3, 2]]}
    (tmp_path / "job.json").write_text(json.dumps(doc))
    res = fabricctl(ctl, "--json", "job", "register", "--file", str(tmp_path / "job.json"))
    assert res.returncode == 0, res.stderr
    job = json.loads(res.stdout)
    assert job["members"] == [IP[1], IP[2], IP[4], IP[5]]
    assert {(p["src_leaf"], p["dst_leaf"], p["spine"]) for p in job["pairs"]} == {
        (2001, 2001, 0), (2002, 2002, 0)}  # same-rail pairs take no spine
    bad = dict(doc, id="bad", members=["gpu1:0", "gpu2:0", "gpu1:1", "gpu9:0"])
    (tmp_path / "bad.json").write_text(json.dumps(bad))
    res = fabricctl(ctl, "job", "register", "--file", str(tmp_path / "bad.json"))
    assert res.returncode != 0 and "members[3]: no server 'gpu9'" in res.stderr, res.stderr
    res = fabricctl(ctl, "--json", "job", "list")
    assert [j["id"] for j in json.loads(res.stdout)] == ["rails"]


def test_servers_set_through_the_api_are_checked_kept_and_usable(start_fabricd, fleets,
                                                                tmp_path):
    """Servers beside the configured one, set with fabricctl servers --set: shown with
    the rail check, refused whole when one clashes or is malformed, usable as SERVER:RAIL,
    kept across a restart (the state file), removed with --clear."""
    state = str(tmp_path / "state.json")
    ctl = start_fabricd("--state-file", state, config={"servers": SERVERS[:1]})
    _, hosts = start_fleet(ctl, fleets, LAYOUT)
    assert hosts.all_pairs() == []
    (tmp_path / "servers.yaml").write_text(
        "servers:\n" + "".join(f"- name: {s['name']}\n  nics: [{', '.join(s['nics'])}]\n"
                               for s in SERVERS[1:]))
    res = fabricctl(ctl, "servers", "--set", str(tmp_path / "servers.yaml"))
    assert res.returncode == 0 and "2 servers (4 NICs) set through the API" in res.stdout, \
        (res.stdout, res.stderr)

    def rows(c) -> dict:
        got = fabricctl(c, "--json", "servers")
        assert got.returncode == 0, got.stderr
        return {(n["server"], n["rail"]): n["state"] for n in json.loads(got.stdout)}

    placed = {("gpu1", 0): "ok", ("gpu1", 1): "ok", ("gpu2", 0): "ok", ("gpu2", 1): "ok",
              ("gpu3", 0): "off-rail", ("gpu3", 1): "off-rail"}
    assert rows(ctl) == placed
    for doc, says in (
            ([SERVERS[0]], "two servers named 'gpu1'"),  # (the configuration's)
            ([{"name": "gpu4", "nics": [IP[1]]}], f"NIC {IP[1]} is server gpu1 rail 0"),
            ([{"name": "gpu4", "nics": ["224.0.0.1"]}],
             "servers[0].nics[0]: 224.0.0.1 is not an address a host may own"),
            ([{"name": "-x", "nics": [IP[2]]}], "servers[0].name")):
        (tmp_path / "bad.json").write_text(json.dumps(doc))
        res = fabricctl(ctl, "servers", "--set", str(tmp_path / "bad.json"))
        assert res.returncode == 2 and "INVALID_ARGUMENT" in res.stderr \
            and says in res.stderr, (doc, res.stderr)
    (tmp_path / "odd.json").write_text(json.dumps({"gpu4": [IP[2]]}))
    res = fabricctl(ctl, "servers", "--set", str(tmp_path / "odd.json"))
    assert res.returncode == 2 and "expected a list of servers" in res.stderr, res.stderr
    assert rows(ctl) == placed  # (nothing of the refused ones)
    doc = {"id": "api", "members": ["gpu2:0", "gpu2:1"], "pattern": "ring"}
    (tmp_path / "job.json").write_text(json.dumps(doc))
    res = fabricctl(ctl, "--json", "job", "register", "--file", str(tmp_path / "job.json"))
    assert res.returncode == 0 and json.loads(res.stdout)["members"] == [IP[2], IP[5]], \
        res.stderr

    ctl.proc.kill()  # (SIGKILL: what the state file holds is what was written)
    ctl.proc.wait(5)
    again = start_fabricd("--state-file", state, config={"servers": SERVERS[:1]})
    assert set(rows(again)) == set(placed)
    res = fabricctl(again, "servers", "--clear")
    assert res.returncode == 0 and "0 servers (0 NICs)" in res.stdout, res.stderr
    assert set(rows(again)) == {("gpu1", 0), ("gpu1", 1)}
