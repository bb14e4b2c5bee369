"""Controller restarts with traffic running: the data plane keeps forwarding, and what
the switches hold is reconciled, not wiped. (A switch reconnecting, a reconnect storm,
tampered tables: on the fake fleet, tests/e2e/test_fleet_faults.py.)"""

from __future__ import annotations

import re
import subprocess
import time

import pytest

from mininet_topos.discovery import wait_discovered
from tests.e2e.conftest import (
    all_pairs_ok,
    assert_kept,
    assert_switches_hold_desired,
    flow_table,
    qos_rows,
    wait_until,
)

pytestmark = pytest.mark.mininet  # (scripts/run_tests.py: the serial lane)


def host_entries(switch: str) -> dict[str, dict]:
    return {k: v for k, v in flow_table(switch).items() if (v["cookie"] >> 48) == 0xAF02}


def guard_entries(switch: str) -> dict[str, dict]:
    return {k: v for k, v in flow_table(switch).items() if (v["cookie"] >> 48) == 0xAF08}


def ping_loss(out: str) -> tuple[int, int]:
    m = re.search(r"(\d+) packets transmitted, (\d+) received", out)
    assert m, out
    return int(m.group(1)), int(m.group(2))


def test_controller_restart_loses_no_packet_and_wipes_nothing(fabric_2x4, controller_factory):
    ctl, net, spec = fabric_2x4
    all_pairs_ok(net)
    before = {sw: host_entries(sw) for sw in ("l1", "l4", "s1")}
    assert all(len(v) == 8 for v in before.values())
    guards = {sw: guard_entries(sw) for sw in ("l1", "l4")}
    # per host port: the punt, DHCP's pass and the host's own pass
    assert all(len(v) == 6 for v in guards.values()), guards
    h1, h8 = net.get("h1"), net.get("h8")
    t0 = time.monotonic()
    # (a count, not a deadline: with -w, the last ping's reply may come after ping has
    # stopped waiting, and it is counted lost)
    pinger = h1.popen(["ping", "-n", "-q", "-i", "0.01", "-c", "600", h8.IP()],
                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    time.sleep(1.0)
    assert ctl.stop() == 0, "fabricd did not stop cleanly on SIGTERM"
    time.sleep(1.0)  # the controller is down; the switches keep forwarding
    again = controller_factory(of_port=ctl.of_port, grpc_port=int(ctl.grpc_addr.split(":")[1]))
    with again.client() as client:
        topo = wait_discovered(client, spec, timeout=30)
        assert wait_until(lambda: len(client.topology().hosts) == 8, timeout=10)
        hosts = client.topology().hosts
    assert all(h.recovered for h in hosts), "hosts should come back from the switches' entries"
    out, _ = pinger.communicate(timeout=40)
    sent, received = ping_loss(out)
    assert sent == 600 and received == sent, out
    time.sleep(0.5)  # (settled, see wait_discovered: its reconciliation is sent by now)
    elapsed = time.monotonic() - t0
    for sw, old in before.items():
        assert_kept(old, host_entries(sw), elapsed - 1.0)
    for sw, old in guards.items():
        assert_kept(old, guard_entries(sw), elapsed - 1.0)
    assert len(topo["links"]) == 16
    all_pairs_ok(net)
    assert_switches_hold_desired(again, net)


def test_sigkill_restart_with_a_late_leaf_loses_nothing(fabric_2x4, controller_factory):
    """fabricd is killed; it comes back with one leaf reconnecting 4 s after the others.
    Nothing towards that leaf's hosts may be taken away meanwhile."""
    from mininet_topos.attack import start_ping, stop_ping

    ctl, net, spec = fabric_2x4
    all_pairs_ok(net)
    h1, h3, h5, h7 = net.get("h1", "h3", "h5", "h7")
    before = {sw: host_entries(sw) for sw in ("l1", "l3", "s1")}
    assert {sw: len(v) for sw, v in before.items()} == {"l1": 8, "l3": 8, "s1": 8}, before
    qos_before = qos_rows()
    assert len(qos_before) == 24  # every port of the 2x4 fabric has its queues
    controller = subprocess.run(["ovs-vsctl", "get-controller", "l4"], capture_output=True,
                                text=True, check=True).stdout.split()
    others = start_ping(h1, h3.IP(), 60)  # between two leaves that come back at once
    towards = start_ping(h5, h7.IP(), 60)  # towards a host of the late leaf
    time.sleep(1.0)
    t0 = time.monotonic()  # (the pings began a second before)
    ctl.proc.kill()
    ctl.proc.wait(5)
    subprocess.run(["ovs-vsctl", "set-controller", "l4", "tcp:127.0.0.1:1"], check=True)
    time.sleep(1.0)
    again = controller_factory(of_port=ctl.of_port, grpc_port=int(ctl.grpc_addr.split(":")[1]))
    with again.client() as client:
        def connected() -> set[int]:
            return {s.dpid for s in client.topology().switches if s.connected}

        assert wait_until(lambda: len(connected()) == 5, timeout=10), connected()
        time.sleep(3.0)  # the late leaf stays away while the others settle
        assert 2004 not in connected()
        subprocess.run(["ovs-vsctl", "set-controller", "l4", *controller], check=True)
        assert wait_until(lambda: 2004 in connected(), timeout=10)
        wait_discovered(client, spec, timeout=15)
        assert wait_until(lambda: len(client.topology().hosts) == 8, timeout=5)
        time.sleep(1.0)  # (pinging on with every switch back)
    # both pings ran from before the kill until now, every 10 ms (fewer on a busy
    # machine: ping's timer slips, it does not skip), and not one echo went unanswered
    assert others.poll() is None and towards.poll() is None, "a ping ended early"
    ran = time.monotonic() - t0 + 1.0
    p_others, p_towards = stop_ping(others), stop_ping(towards)
    assert p_others.sent >= 40 * ran and p_others.loss == 0, (ran, p_others)
    assert p_towards.sent >= 40 * ran and p_towards.loss == 0, (ran, p_towards)
    time.sleep(0.5)
    for sw, old in before.items():
        assert_kept(old, host_entries(sw), time.monotonic() - t0 - 1.0)
    # the queues were never removed and re-made: neither by the session drop nor by
    # the restarted controller's first pass, which knew only some switches
    assert qos_rows() == qos_before
    all_pairs_ok(net)
    assert_switches_hold_desired(again, net)
