"""Rail-optimized servers through fabricctl against a real fabricd and a fake fleet
(tests/fakes): two leaves, one per rail, three servers with a NIC on each; one server
cabled the wrong way round. fabricctl servers shows every NIC where it is and the rail
check names the two off their rail; a job names its members as SERVER:RAIL, and its
same-rail pairs stay on their leaf."""

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
    ctl = start_fabricd(config={"servers": SERVERS})
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
