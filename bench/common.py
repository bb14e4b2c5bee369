"""What the Mininet benchmarks share: the fabricd arguments of each mode, and a fabric
that is discovered and whose hosts are known before a scenario starts."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

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
