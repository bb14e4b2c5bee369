"""What the Mininet benchmarks share: the fabricd arguments of each mode, and a fabric
that is discovered and whose hosts are known before a scenario starts."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from mininet_topos.controller_proc import FabricdProcess
from mininet_topos.discovery import wait_discovered
from mininet_topos.network import fabric_network, reachability
from mininet_topos.spine_leaf import FabricSpec

# the oracle modes pin every flow themselves: nothing may move them
ORACLE_CONFIG = "te:\n  rebalance: false\n  congestion_threshold: 1.5\n"


def mode_args(mode: str, workdir: Path, base: list[str]) -> list[str]:
    """fabricd's arguments for ``mode``: ``ecmp`` (--no-te), ``oracle`` (TE that never
    moves a flow), anything else as ``base``."""
    extra = list(base)
    if mode == "ecmp":
        extra.append("--no-te")
    if mode == "oracle":
        cfg = workdir / "oracle.yaml"
        cfg.write_text(ORACLE_CONFIG)
        extra += ["--config", str(cfg)]
    return extra


def metric_samples(metrics_addr: str, timeout: float = 10.0) -> dict[str, list]:
    """fabricd's /metrics in one read: each family's samples by the family's name
    (parsed by prometheus_client: a counter's family is named without ``_total``)."""
    with urllib.request.urlopen(f"http://{metrics_addr}/metrics", timeout=timeout) as r:
        text = r.read().decode()
    return {f.name: f.samples for f in text_string_to_metric_families(text)}


LOOP_LAG = "aifabric_event_loop_lag_seconds"


def lag_sum_count(samples: dict[str, list]) -> tuple[float, float]:
    """(sum, count) of the event-loop lag histogram, of :func:`metric_samples`."""
    lag = samples.get(LOOP_LAG, [])
    total = next((s.value for s in lag if s.name.endswith("_sum")), 0.0)
    count = next((s.value for s in lag if s.name.endswith("_count")), 0.0)
    return total, count


@contextmanager
def discovered_fabric(spec: FabricSpec, ctl: FabricdProcess) -> Iterator:
    """A Mininet fabric against ``ctl``, discovered, every host known (one ping each)."""
    with fabric_network(spec, ctl.controller) as net:
        with ctl.client() as c:
            wait_discovered(c, spec, timeout=60)
        reachability(net)
        yield net


def save(result: dict, out: str, doc: str, write_docs: Callable[[dict, Path], None]) -> None:
    """Write a benchmark's JSON and its page in docs/."""
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n")
    write_docs(result, Path(doc))
    print(f"wrote {path} and {doc}")
