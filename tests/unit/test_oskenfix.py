"""A switch that stops reading its session cannot stall the controller's thread."""

import socket
import threading
import time

import pytest

from apps import oskenfix

# (wall-clock windows of a tenth of a second: off the idle lane, scripts/run_tests.py)
pytestmark = pytest.mark.serial


class FullDatapath:
    """What bounded_send touches of an os-ken Datapath, with its send queue full and its
    send thread last seen taking a message ``idle`` seconds ago."""

    def __init__(self, idle: float) -> None:
        self.id, self.address = 2001, ("127.0.0.1", 40000)
        self.send_q: oskenfix.ProgressQueue | None = oskenfix.ProgressQueue(1)
        self._send_q_sem = threading.BoundedSemaphore(1)
        self.socket, self.peer = socket.socketpair()
        self.send_q.put((b"x", False))
        self._send_q_sem.acquire()
        self.send_q.taken_at = time.monotonic() - idle

    def take_one_after(self, delay: float) -> threading.Thread:
        """The send thread, reading again ``delay`` seconds from now."""
        def run() -> None:
            time.sleep(delay)
            self.send_q.get()
            self._send_q_sem.release()

        t = threading.Thread(target=run)
        t.start()
        return t


def test_a_full_queue_of_a_switch_that_stopped_reading_is_dropped_at_once():
    dp = FullDatapath(idle=oskenfix.SEND_WAIT + 0.5)
    t0 = time.monotonic()
    assert oskenfix.bounded_send(dp, b"hello") is False
    assert time.monotonic() - t0 < 0.1  # no wait at all: it has been stuck long enough
    for _ in range(1000):  # every later send returns at once
        assert oskenfix.bounded_send(dp, b"more") is False
    assert time.monotonic() - t0 < 0.2
    assert dp.peer.recv(10) == b""  # the session was shut down: the switch reconnects


def test_a_full_queue_of_a_reading_switch_waits_for_room():
    dp = FullDatapath(idle=0.0)
    reader = dp.take_one_after(0.3)
    t0 = time.monotonic()
    assert oskenfix.bounded_send(dp, b"flow-mod") is True
    assert 0.2 < time.monotonic() - t0 < oskenfix.SEND_WAIT
    reader.join()
    assert dp.send_q.get() == (b"flow-mod", False)


def test_a_switch_that_stops_reading_while_we_wait_costs_at_most_the_send_wait():
    dp = FullDatapath(idle=0.4)
    t0 = time.monotonic()
    assert oskenfix.bounded_send(dp, b"flow-mod") is False
    took = time.monotonic() - t0
    assert oskenfix.SEND_WAIT - 0.4 - 0.1 < took < oskenfix.SEND_WAIT - 0.4 + 0.3


def test_a_queue_with_room_takes_the_message_without_waiting():
    dp = FullDatapath(idle=60.0)
    dp.send_q.get()
    dp._send_q_sem.release()
    assert oskenfix.bounded_send(dp, b"flow-mod") is True
    assert dp.send_q.get() == (b"flow-mod", False)


def session():
    """An os-ken Datapath (patched) on one end of a loopback TCP session, and the other
    end (the switch's)."""
    from os_ken.controller import controller

    oskenfix.apply()
    server = socket.create_server(("127.0.0.1", 0))
    switch = socket.create_connection(server.getsockname())
    ours, _ = server.accept()
    server.close()
    return controller.Datapath(ours, ("127.0.0.1", 1)), switch


def test_the_patch_is_installed_on_os_ken_with_a_deep_queue():
    from os_ken.controller import controller

    dp, b = session()
    assert controller.Datapath.send is oskenfix.bounded_send
    assert isinstance(dp.send_q, oskenfix.ProgressQueue)
    assert dp.send_q.maxsize == oskenfix.SEND_QUEUE
    for n in range(oskenfix.SEND_QUEUE):  # a burst as long as the queue never waits
        assert dp.send(b"m%d" % n) is True
    dp.socket.close()
    b.close()


def test_why_the_openflow_listener_stopped_is_kept_for_the_daemon(monkeypatch):
    """os-ken's native hub drops the exception that ends its listener thread."""
    from os_ken.controller import controller

    oskenfix.apply()
    monkeypatch.setattr(oskenfix, "listener_error", None)
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        port = taken.getsockname()[1]
        try:
            controller.OpenFlowController.server_loop(object(), port, None)
        except OSError:
            pass
    assert isinstance(oskenfix.listener_error, OSError)
    assert oskenfix.listener_error.errno == 98  # EADDRINUSE


def test_loading_the_apps_installs_the_fixes():
    """fabricd loads its apps by module name: loading them alone must patch os-ken (a
    refactor once dropped the call, and a switch leaving went unnoticed for seconds)."""
    import subprocess
    import sys

    code = ("import apps.fabric_app\n"
            "from os_ken.controller import controller\n"
            "from apps import oskenfix\n"
            "assert controller.Datapath.send is oskenfix.bounded_send\n"
            "assert getattr(controller.Datapath._recv_loop, '_aifabric_patched', False)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr


def test_a_message_is_stamped_when_the_kernel_received_it():
    """A busy controller's receive threads wait for the interpreter lock: a message read
    0.3 s after it arrived is dated by its arrival (the LLDP probes it judges by age)."""
    from os_ken.controller import ofp_event
    from os_ken.ofproto import ofproto_v1_3_parser as parser

    dp, b = session()
    assert isinstance(dp.socket, oskenfix.StampedSocket)
    # the kernel turns timestamping on a moment after the first socket asks for it (a
    # deferred work item): until then reads carry no stamp, and messages are dated when
    # read; wait for it
    deadline = time.monotonic() + 5.0
    while True:
        b.sendall(b"w")
        assert dp.socket.recv(1) == b"w"
        if dp.socket.arrived is not None or time.monotonic() > deadline:
            break
        time.sleep(0.01)
    assert dp.socket.arrived is not None, "no receive timestamps from the kernel"
    before = time.time()
    b.sendall(b"x" * 20)  # (on loopback the kernel delivers it within the call)
    after = time.time()
    time.sleep(0.3)
    assert dp.socket.recv(8) == b"x" * 8 and dp.socket.recv(12) == b"x" * 12
    assert before - 0.01 <= dp.socket.arrived <= after + 0.01, (before, after)
    ev = ofp_event.EventOFPPacketIn(parser.OFPPacketIn(dp))
    assert ev.timestamp == dp.socket.arrived and time.time() - ev.timestamp >= 0.3
    dp.socket.close()
    b.close()


def test_the_openflow_listener_takes_a_storm_of_connections():
    """os-ken listens with a backlog of 50: after a controller restart a fabric's
    switches all connect at once, and those beyond it were lost (64 of 168 in
    bench.scale's storm). The listener's queue holds LISTEN_BACKLOG (as ss shows it)."""
    import subprocess

    from os_ken.controller import controller

    oskenfix.apply()
    server = controller.StreamServer(("127.0.0.1", 0))
    try:
        port = server.server.getsockname()[1]
        out = subprocess.run(["ss", "-ltnH", f"sport = :{port}"], capture_output=True,
                             text=True, check=True).stdout.split()
        # State Recv-Q Send-Q(= the backlog of a listening socket) Local Peer
        expected = min(oskenfix.LISTEN_BACKLOG, int(open(
            "/proc/sys/net/core/somaxconn").read()))
        assert int(out[2]) == expected > 50, out
    finally:
        server.server.close()
