"""Prometheus metrics (``/metrics`` over HTTP), read from what the fabric app publishes.

The collector runs on the HTTP server's thread at scrape time and only reads immutable
values the fabric app has published (snapshots, statistics tuples, counter copies);
it never touches the core, a datapath or os-ken.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily
from prometheus_client.registry import Collector

from apps.guard import HANDLER_ERRORS, WATCHDOG_TRIPS
from apps.intake import INTAKE_DROPPED, INTAKE_QUEUED, SESSIONS_OVERFLOWED
from apps.loop import SLOW_WORK, SLOW_WORK_SECONDS
from apps.qos_app import QOS_ERRORS
from controller import __version__
from controller.config_daemon import parse_host_port
from controller.core.snapshot import Published

log = logging.getLogger("aifabric.metrics")

LINK_LABELS = ["src_dpid", "src_port", "dst_dpid", "dst_port"]
# OpenFlow messages the fabric app counts, and the metric label each one gets
MESSAGE_COUNTERS = {"packet_in": "packet_in", "packet_out": "packet_out",
                    "flow_mods": "flow_mod", "group_mods": "group_mod"}

# Event-loop latency: how long a tick waited in the fabric app's queue before it ran.
LOOP_LAG = Histogram(
    "aifabric_event_loop_lag_seconds",
    "Time a periodic tick waited in the fabric app's event queue before it ran",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
    registry=None,
)


class FabricCollector(Collector):
    def __init__(self, published: Callable[[], Published | None],
                 cluster: Callable[[], Any] = lambda: None) -> None:
        self.published = published
        self.cluster = cluster  # cluster mode: the agent's ClusterStatus (None: alone)

    def _cluster(self, pub: Published) -> Iterator:
        """Cluster mode: this instance's view of the cluster (each instance serves its
        own; nothing when alone)."""
        status = self.cluster()
        if pub.masters is None or status is None:
            return
        yield _gauge("aifabric_cluster_etcd_reachable",
                     "1 if etcd answered the cluster agent's last reading", int(status.etcd_ok))
        yield _gauge("aifabric_cluster_members", "Live instances, as etcd last said",
                     len(status.members))
        yield _gauge("aifabric_cluster_switches_mastered",
                     "Switches this instance is the OpenFlow master of", len(pub.masters))
        yield _gauge("aifabric_cluster_te_leader",
                     "1 while this instance is the TE leader", int(status.leading))
        yield _gauge("aifabric_cluster_store_ignored_keys",
                     "Keys under the cluster's etcd prefix ignored at the last reading: "
                     "unreadable, or master, TE leader and TE move keys no live instance "
                     "wrote",
                     status.ignored)

    def collect(self) -> Iterator:
        yield InfoMetricFamily("aifabric_build", "aifabric version",
                               value={"version": __version__})
        pub = self.published()  # one value: every family below is from the same instant
        up = GaugeMetricFamily("aifabric_controller_ready",
                               "1 once the fabric app runs and publishes state")
        up.add_metric([], 0 if pub is None else 1)
        yield up
        if pub is None:
            return
        yield from self._cluster(pub)
        snap = pub.topology
        switches = GaugeMetricFamily("aifabric_switch_connected",
                                     "1 while the switch holds an OpenFlow session",
                                     labels=["dpid", "role"])
        for s in snap.switches:
            switches.add_metric([str(s.dpid), s.role], 1 if s.connected else 0)
        yield switches
        for name, doc, value in (
            ("aifabric_links", "Link directions discovered", len(snap.links)),
            ("aifabric_hosts", "Hosts learned at leaf edge ports", len(snap.hosts)),
            ("aifabric_wiring_warnings", "Wiring warnings (not a clean Clos, cabling)",
             len(snap.warnings)),
        ):
            g = GaugeMetricFamily(name, doc)
            g.add_metric([], value)
            yield g

        util = GaugeMetricFamily("aifabric_link_utilization_ratio",
                                 "Transmit rate over the link rate, smoothed", labels=LINK_LABELS)
        rate = GaugeMetricFamily("aifabric_link_transmit_bits_per_second",
                                 "Transmit rate of the link's source port, smoothed",
                                 labels=LINK_LABELS)
        drops = GaugeMetricFamily("aifabric_link_drops_per_second",
                                  "Packets dropped per second at both ends' ports, smoothed",
                                  labels=LINK_LABELS)
        errors = GaugeMetricFamily("aifabric_link_errors_per_second",
                                   "Errors per second, smoothed", labels=LINK_LABELS)
        for s in pub.links:
            labels = [str(s.src_dpid), str(s.src_port), str(s.dst_dpid), str(s.dst_port)]
            util.add_metric(labels, s.utilization)
            rate.add_metric(labels, s.rate_bps)
            drops.add_metric(labels, s.drops_per_second)
            errors.add_metric(labels, s.errors_per_second)
        yield from (util, rate, drops, errors)

        qlabels = ["dpid", "port", "port_name", "queue"]
        qbytes = CounterMetricFamily("aifabric_queue_transmit_bytes",
                                     "Bytes sent from the queue", labels=qlabels)
        qpkts = CounterMetricFamily("aifabric_queue_transmit_packets",
                                    "Packets sent from the queue", labels=qlabels)
        qdrops = CounterMetricFamily("aifabric_queue_dropped_packets",
                                     "Packets the queue dropped (OpenFlow tx_errors)",
                                     labels=qlabels)
        for q in pub.queues:
            labels = [str(q.dpid), str(q.port), q.port_name, str(q.queue)]
            qbytes.add_metric(labels, q.tx_bytes)
            qpkts.add_metric(labels, q.tx_packets)
            qdrops.add_metric(labels, q.tx_errors)
        yield from (qbytes, qpkts, qdrops)

        meters = CounterMetricFamily(
            "aifabric_meter_dropped_packets",
            "Packets a switch meter dropped on their way to the controller",
            labels=["dpid", "meter", "kind", "port"])
        for m in pub.meters:
            meters.add_metric([str(m.dpid), str(m.meter_id), m.kind, str(m.port)], m.dropped)
        yield meters

        flows = pub.flows
        tracked = GaugeMetricFamily("aifabric_flows", "Flows traffic engineering tracks",
                                    labels=["placed_by", "large"])
        counts: dict[tuple[str, str], int] = {}
        for f in flows:
            key = (f.pinned_by, "true" if f.large else "false")
            counts[key] = counts.get(key, 0) + 1
        for (by, large), n in sorted(counts.items()):
            tracked.add_metric([by, large], n)
        yield tracked

        # registered jobs: how evenly they are placed, how busy their worst link is,
        # what their pairs carry (one series per job: bounded by jobs.max_jobs)
        worst = GaugeMetricFamily("aifabric_job_worst_link_pairs",
                                  "Most of a job's concurrent pairs on one link",
                                  labels=["job"])
        util = GaugeMetricFamily("aifabric_job_worst_link_utilization",
                                 "Measured utilization of a job's worst link",
                                 labels=["job"])
        carried = CounterMetricFamily("aifabric_job_bytes",
                                      "Bytes a job's pair entries counted", labels=["job"])
        for j in pub.jobs:
            worst.add_metric([j.job_id], j.worst_link_pairs)
            util.add_metric([j.job_id], j.worst_link_utilization)
            carried.add_metric([j.job_id], sum(p.bytes for p in j.pairs))
        yield from (worst, util, carried)

        counters = pub.counters
        messages = CounterMetricFamily("aifabric_openflow_messages",
                                       "OpenFlow messages by type", labels=["type"])
        for key, label in MESSAGE_COUNTERS.items():
            messages.add_metric([label], counters.get(key, 0))
        yield messages
        for name, key, doc in (
            ("aifabric_reroutes", "reroutes", "Flows moved by traffic engineering"),
            ("aifabric_congestion_events", "congestions", "Links found congested"),
            ("aifabric_flows_placed", "flows_placed", "Flows placed at their first packet"),
            ("aifabric_flows_expired", "flows_expired", "Idle flows forgotten"),
            ("aifabric_te_passes", "te_passes", "Traffic-engineering passes"),
            ("aifabric_floods", "floods", "Frames flooded to host ports"),
            ("aifabric_arp_proxied", "arp_proxied", "ARP requests answered by the controller"),
            ("aifabric_lldp_rejected", "rejected_lldp", "LLDP frames refused"),
            ("aifabric_bad_frames", "bad_frames", "Malformed frames from hosts dropped"),
            ("aifabric_source_guard_dropped", "source_guard_dropped",
             "IPv4 frames from a host port dropped for a source not bound there"),
            ("aifabric_host_conflicts", "host_conflicts",
             "Frames refused for claiming a MAC or address bound to another host"),
            ("aifabric_hosts_refused", "hosts_refused",
             "New MACs ignored on ports at their host limit"),
            ("aifabric_hosts_moved", "hosts_moved",
             "Bindings released to a new location after the old one stopped answering"),
            ("aifabric_hosts_aged_out", "hosts_aged_out", "Idle hosts forgotten"),
            ("aifabric_host_probes", "host_probes", "ARP probes sent to bound hosts"),
            ("aifabric_te_declined", "te_new_flows_rate_limited",
             "New flows left on ECMP by the per-port rate limit"),
            ("aifabric_switch_sessions_stalled", "sessions_stalled",
             "Switch sessions ended for not answering barriers, or for too much waiting"),
            ("aifabric_switch_connections_refused", "switches_refused",
             "OpenFlow connections refused: a dpid not in openflow.allowed_dpids, or one "
             "a connected switch that answers its echo holds"),
            ("aifabric_openflow_tls_failures", "openflow_tls_failures",
             "OpenFlow connections whose TLS handshake failed (no or a wrong certificate)"),
            ("aifabric_switch_takeovers", "switch_takeovers",
             "Connections that took a dpid from a session that no longer answered"),
        ):
            c = CounterMetricFamily(name, doc)
            c.add_metric([], counters.get(key, 0))
            yield c
        yield _gauge("aifabric_openflow_messages_waiting",
                     "Messages waiting for a switch's window (unanswered barriers)",
                     counters.get("messages_waiting", 0))


def _gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    g = GaugeMetricFamily(name, doc)
    g.add_metric([], value)
    return g


def start_metrics_server(address: str, published: Callable[[], Published | None],
                         cluster: Callable[[], Any] = lambda: None) -> CollectorRegistry:
    """Serve ``/metrics`` on ``address``; RuntimeError with a reason if it cannot bind."""
    host, port = parse_host_port(address)
    registry = CollectorRegistry()
    registry.register(FabricCollector(published, cluster))
    registry.register(LOOP_LAG)
    registry.register(HANDLER_ERRORS)
    registry.register(WATCHDOG_TRIPS)
    for metric in (INTAKE_DROPPED, INTAKE_QUEUED, SESSIONS_OVERFLOWED, SLOW_WORK,
                   SLOW_WORK_SECONDS):
        registry.register(metric)
    registry.register(QOS_ERRORS)
    try:
        start_http_server(port, addr=host, registry=registry)
    except OSError as exc:
        raise RuntimeError(f"cannot serve metrics on {address}: {exc.strerror}") from None
    log.info("Prometheus metrics on http://%s/metrics", address)
    return registry
