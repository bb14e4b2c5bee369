"""A fabric cabled wrong: a leaf-to-leaf cable and a missing uplink are reported (with a
cabling plan: as missing/unexpected links too), and forwarding still works."""

from __future__ import annotations

import json
import subprocess
import sys

from mininet_topos.spine_leaf import FabricSpec
from tests.e2e.conftest import all_pairs_ok, running_fabric


def clean_plan(spines: int, leaves: int) -> list[list[str]]:
    return [[f"{2000 + j}:{i}", f"{1000 + i}:{j}"]
            for j in range(1, leaves + 1) for i in range(1, spines + 1)]


def test_miswired_fabric_is_reported_and_still_forwards(controller_factory, tmp_path):
    cfg = tmp_path / "fabricd.yaml"
    cfg.write_text(json.dumps({"cabling": clean_plan(2, 4)}))  # JSON is YAML
    ctl = controller_factory("--config", str(cfg))
    spec = FabricSpec(spines=2, leaves=4, hosts_per_leaf=2, bw=10,
                      extra_links=(("l1", "l2"),), omit_links=(("l4", "s2"),))
    with running_fabric(ctl, spec) as (net, topo):
        out = subprocess.run(
            [sys.executable, "-m", "controller.cli.fabricctl", "--server", ctl.grpc_addr,
             "--json", "topology"], capture_output=True, text=True, check=True).stdout
        warnings = set(json.loads(out)["warnings"])
        assert warnings == {
            "leaf-to-leaf link 2001:5 <-> 2002:5 (not a two-tier Clos)",
            "leaf 2004 has no link to spine(s) 1002",
            "missing link 1002:4 <-> 2004:2 (in the cabling plan, not found)",
            "unexpected link 2001:5 <-> 2002:5 (not in the cabling plan)",
        }
        roles = {s["dpid"]: s["role"] for s in json.loads(out)["switches"]}
        assert roles == {1001: "spine", 1002: "spine", 2001: "leaf", 2002: "leaf",
                         2003: "leaf", 2004: "leaf"}
        human = subprocess.run(
            [sys.executable, "-m", "controller.cli.fabricctl", "--server", ctl.grpc_addr,
             "topology"], capture_output=True, text=True, check=True).stdout
        assert "Warnings (4)" in human and "! leaf 2004 has no link to spine(s) 1002" in human
        all_pairs_ok(net)
