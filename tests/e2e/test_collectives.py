"""A real collective library on Mininet (OpenMPI through mpi4py on 8 hosts, rank r on
leaf r mod 4, 5 Mbit/s links): a ring all-reduce registered as a job, on the links and
entries the job holds; an all-to-all nobody registered, in the collective
class because the hosts mark it, spread host by host; an all-reduce nobody registered
beside bulk transfers, which TE must leave in place once placed."""

from __future__ import annotations

import re
import statistics
import time
from collections import Counter

import pytest

from aifabric.v1 import fabric_pb2
from controller.cli.client import flow_dict
from mininet_topos import traffic as T
from mininet_topos.mpi import BTL_PORTS, run_collective
from mininet_topos.network import reachability, wait_until
from mininet_topos.spine_leaf import FabricSpec
from tests.e2e.conftest import running_fabric, wait_qos_ready
from tests.e2e.test_te import EventRecorder

pytestmark = pytest.mark.mininet  # (scripts/run_tests.py: the serial lane)

SPEC = FabricSpec(spines=2, leaves=4, hosts_per_leaf=2, bw=5)
RATE = 5e6
RING = ["h1", "h3", "h5", "h7", "h2", "h4", "h6", "h8"]
MESSAGE = 512 << 10  # bytes all-reduced, per iteration


def test_an_openmpi_allreduce_registered_as_a_job_runs_on_its_own_links(controller_factory):
    """Registered as a job, a ring all-reduce's pairs each get an uplink of their own
    (worst_link_pairs 1) and OpenMPI's data goes through the pair entries the job
    installed (their byte counters), correctly and at a generous bound of the link rate.
    How much that beats hash ECMP is measured by bench/collectives.py (ECMP 44%, the job
    69%), in the same invocation: a baseline run here doubled the test's time."""
    ctl = controller_factory("--link-speed", "5", "--no-qos")
    with running_fabric(ctl, SPEC) as (net, _):
        assert all(reachability(net, count=1, timeout=2).values())
        with ctl.client() as c:
            job = c.register_job(fabric_pb2.JobSpec(
                id="allreduce", members=[net.get(h).IP() for h in RING], pattern="ring"))
        assert job.state == "placed" and job.worst_link_pairs == 1, job
        run = run_collective(net, RING, "allreduce", MESSAGE, iters=3, timeout=90)

        ips = [net.get(h).IP() for h in RING]
        forward = {(a, b) for a, b in zip(ips, ips[1:] + ips[:1], strict=True)}

        def pair_bytes() -> dict[tuple[str, str], int]:
            """Bytes through the job's entries of the forward ring (rank r to r+1; the
            backward pairs, placed for two-way rings, carry OpenMPI's acks here)."""
            with ctl.client() as c:
                return {(p.src_ip, p.dst_ip): p.bytes for p in c.job("allreduce").pairs
                        if p.state == "placed" and (p.src_ip, p.dst_ip) in forward}

        # every forward pair carried its share: a ring step sends 1/8 of the message,
        # 14 steps an iteration, a warm-up and 3 iterations: at least a message's worth
        assert wait_until(lambda: len(got := pair_bytes()) == 8 and min(
            got.values()) >= MESSAGE, timeout=6), pair_bytes()
    assert run["correct"], run
    assert run["busbw_bps"] / RATE >= 0.40, run


def test_an_unregistered_all_to_all_marked_collective_leaves_each_leaf_host_by_host(
        controller_factory):
    """QoS and TE on, nothing registered: the hosts mark their TCP DSCP 34 (the default
    profile's collective class) with iptables, as a cluster would for a library that
    sets none, and run OpenMPI's pairwise all-to-all. Every connection carries data both
    ways at different steps; TE places each direction at its first packet by who sends
    and receives priority traffic on each link (PriorityUse), so each host's data
    flows leave its leaf by one spine and the two hosts of a leaf by different spines:
    no uplink carries two hosts' collectives, whatever steps run at once (hash ECMP
    spreads each host's 12 flows over both spines)."""
    ctl = controller_factory("--link-speed", "5")
    with running_fabric(ctl, SPEC) as (net, _):
        wait_qos_ready(net)
        assert all(reachability(net, count=1, timeout=2).values())
        T.mark_tcp_dscp(net.hosts, 34)
        events = EventRecorder(ctl)
        try:
            result = run_collective(net, RING, "alltoall", 256 << 10, iters=2, timeout=90)
            with ctl.client() as c:
                listed = c.flows()
        finally:
            events.close()
        rows = [r for r in map(flow_dict, listed.flows) if r["src_leaf"] != r["dst_leaf"]]
        ips = {net.get(h).IP() for h in RING}
        moves = events.of("reroute")
    assert rows and {r["src_ip"] for r in rows} == ips, rows
    # every flow between the ranks is in the collective class (the hosts' marking)
    assert {(r["traffic_class"], r["priority"]) for r in rows} == {("collective", True)}, rows
    # the collective's data connections (the ranks' TCP transport listens in BTL_PORTS);
    # the launch's control connections, every daemon to mpirun on h1, go first and
    # carry next to nothing: they share one receiver, and may share a spine
    data = [r for r in rows if r["src_port"] in BTL_PORTS or r["dst_port"] in BTL_PORTS]
    first = [r for r in data if not r["moves"]]  # (as placed at their first packet)
    assert len(data) >= 40 and len(first) >= 0.8 * len(data), data
    # Rails are judged on the placements made before TE first moved a flow: a move
    # (rebalancing reads the ring's bursts as an overloaded downlink now and then: one
    # run in eight locally) puts some of a host's flows on its other spine, and its
    # next flows are then rightly placed by the other concerns, off its former rail
    first_move = min((e["time"] for e in moves), default=float("inf"))
    print("moves:", *(f"{e['time']:.3f} {e['message']}" for e in moves), sep="\n")
    judged = [r for r in first if listed.collected_at - r["age_seconds"] < first_move]
    assert len(judged) >= 0.5 * len(data), (len(judged), len(data))
    spines: dict[str, Counter[int]] = {}
    for r in judged:
        spines.setdefault(r["src_ip"], Counter())[r["spine"]] += 1
    placed = sorted((-r["age_seconds"], r["src_ip"], r["dst_ip"], r["src_port"],
                     r["dst_port"], r["spine"]) for r in judged)
    print("data flows as placed (age, src, dst, sport, dport, spine):", *placed, sep="\n")
    # Each host's flows leave by one spine (hash ECMP puts about half of them on the
    # other)
    strays = sum(sum(c.values()) - max(c.values()) for c in spines.values())
    assert strays == 0, spines
    rail = {ip: c.most_common(1)[0][0] for ip, c in spines.items()}
    uplinks: dict[int, set[tuple[str, int]]] = {}  # leaf -> its (host, spine)
    for r in judged:
        uplinks.setdefault(r["src_leaf"], set()).add((r["src_ip"], rail[r["src_ip"]]))
    assert set(uplinks) == {2001, 2002, 2003, 2004}, uplinks  # every leaf's two ranks sent
    assert all(len({s for _, s in u}) == len(u) == 2 for u in uplinks.values()), uplinks
    # and the data arrived: OpenMPI checked every rank's buffer; a generous bound on the
    # rate (bench/collectives.py measures it: 42% of the link rate, ECMP 29%; the
    # placement itself is asserted above. CI measured 23% once, with other tests'
    # processes sharing its two cores)
    assert result["correct"] and result["busbw_bps"] / RATE >= 0.12, result


def test_an_unregistered_allreduce_beside_bulk_transfers_is_not_churned(controller_factory):
    """QoS and TE on, nothing registered: OpenMPI's transport marked into the collective
    class, two best-effort bulk transfers across the fabric on the ring's links. The
    ring's connections pause between steps and share their receivers with the bulk
    flows, so their readings swing and links run full because receivers are: a TE that
    moved them for that moved them back and forth (8 moves of one connection, 100 in two
    minutes of bench.collectives). Placed flows keep their paths: a few corrections in
    all, none undone over and over, and the collective completes correctly."""
    ctl = controller_factory("--link-speed", "5")
    with running_fabric(ctl, SPEC) as (net, _):
        wait_qos_ready(net)
        assert all(reachability(net, count=1, timeout=2).values())
        T.mark_tcp_dscp(net.hosts, 34, ports=BTL_PORTS)  # (the bulk flows: not)
        pairs = [("h2", "h6"), ("h8", "h4")]  # across the fabric, on the ring's links
        for k, (_, b) in enumerate(pairs):
            T.start_servers(net.get(b), [5500 + k])
        bulk = [T.tcp_flow(net.get(a), net.get(b).IP(), 5500 + k, 300)
                for k, (a, b) in enumerate(pairs)]
        events = EventRecorder(ctl)
        try:
            time.sleep(4.0)  # the bulk flows are placed and measured first
            result = run_collective(net, RING, "allreduce", 1 << 20, iters=3, timeout=120)
            moved = [e["fields"] for e in events.of("reroute")]
        finally:
            events.close()
        intervals = [T.interrupt(p) for p in bulk]  # (they ran for the collectives')
        # each bulk flow's mean rate while the collectives ran (from 5 s on)
        got = [statistics.mean([r for start, r in iv if start >= 5.0] or [0.0])
               for iv in intervals]
    ports = [tuple(int(p) for p in re.findall(r":(\d+)", m["flow"])) for m in moved]
    ring_moves = Counter(m["flow"] for m, pp in zip(moved, ports, strict=True)
                         if any(p in BTL_PORTS for p in pp))
    print("reroutes:", *(f"{m['flow']}: {m['reason']}" for m in moved), sep="\n")
    assert result["correct"], result
    # Measured over two such runs: 0 to 8 moves in all, at most 2 of one 5-tuple (a
    # correction as a run starts, or as the other run's connections end); the churn
    # this test is about moved the ring's connections 29 times in two runs, one of them
    # 5 times. One run is enough to see it: it runs ~20 s, its connections pause and
    # resume 14 times an iteration
    assert max(ring_moves.values(), default=0) <= 3, ring_moves
    # (16 data connections; one run here moved 5 of them once each)
    assert sum(ring_moves.values()) <= 10, ring_moves
    # and the bulk transfers were not starved (best effort, beside a priority class)
    assert min(got) > 0.1 * RATE / 1e6, got
