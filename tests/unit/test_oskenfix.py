"""A switch that stops reading its session cannot stall the controller's thread."""

import queue
import socket
import threading
import time

from apps import oskenfix


class StuckDatapath:
    """What bounded_send touches of an os-ken Datapath, with its queue already full."""

    def __init__(self) -> None:
        self.id, self.address = 2001, ("127.0.0.1", 40000)
        self.send_q: queue.Queue | None = queue.Queue(1)
        self._send_q_sem = threading.BoundedSemaphore(1)
        self.socket, self.peer = socket.socketpair()
        self.send_q.put((b"x", False))
        self._send_q_sem.acquire()


def test_a_full_queue_costs_at_most_the_send_wait_then_nothing():
    dp = StuckDatapath()
    t0 = time.monotonic()
    assert oskenfix.bounded_send(dp, b"hello") is False
    assert time.monotonic() - t0 < oskenfix.SEND_WAIT + 0.5
    t1 = time.monotonic()
    for _ in range(1000):  # every later send returns at once
        assert oskenfix.bounded_send(dp, b"more") is False
    assert time.monotonic() - t1 < 0.1
    assert dp.peer.recv(10) == b""  # the session was shut down: the switch reconnects


def test_a_healthy_queue_takes_the_message():
    dp = StuckDatapath()
    dp.send_q.get()
    dp._send_q_sem.release()
    assert oskenfix.bounded_send(dp, b"flow-mod") is True
    assert dp.send_q.get() == (b"flow-mod", False)


def test_the_patch_is_installed_on_os_ken():
    from os_ken.controller import controller

    oskenfix.apply()
    assert controller.Datapath.send is oskenfix.bounded_send
