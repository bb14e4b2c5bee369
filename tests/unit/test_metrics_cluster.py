"""The cluster's metrics: each instance serves its own view (nothing when alone)."""

from __future__ import annotations

from apps.api.metrics import FabricCollector
from apps.cluster_agent import ClusterStatus
from controller.core.snapshot import Published, TopologySnapshot


def families(collector: FabricCollector) -> dict:
    return {f.name: f for f in collector.collect()}


def value(fams: dict, name: str) -> float:
    (sample,) = fams[name].samples
    return sample.value


def test_an_instance_shows_its_share_of_the_cluster():
    pub = Published(TopologySnapshot.empty(), masters=frozenset({2001, 2002}))
    status = ClusterStatus("n1", ("n0", "n1", "n2"), ((2001, "n1"), (2002, "n1")), True,
                           "", 1.0, te_leader="n1", leading=True, ignored=2)
    fams = families(FabricCollector(lambda: pub, lambda: status))
    assert value(fams, "aifabric_cluster_members") == 3
    assert value(fams, "aifabric_cluster_switches_mastered") == 2
    assert value(fams, "aifabric_cluster_etcd_reachable") == 1
    assert value(fams, "aifabric_cluster_te_leader") == 1
    assert value(fams, "aifabric_cluster_store_ignored_keys") == 2
    cut_off = ClusterStatus("n1", ("n0", "n1", "n2"), (), False, "etcd unreachable", 1.0,
                            te_leader="n1", leading=False)
    fams = families(FabricCollector(lambda: pub, lambda: cut_off))
    assert value(fams, "aifabric_cluster_etcd_reachable") == 0
    assert value(fams, "aifabric_cluster_te_leader") == 0


def test_alone_there_are_no_cluster_metrics():
    pub = Published(TopologySnapshot.empty())
    fams = families(FabricCollector(lambda: pub))
    assert not any(name.startswith("aifabric_cluster") for name in fams)
    assert "aifabric_controller_ready" in fams
