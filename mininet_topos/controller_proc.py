"""Run ``fabricd`` as a child process (for the demo, the tests and the benchmarks)."""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import grpc

from controller.cli.client import FabricClient

_given: set[int] = set()


def port_range() -> tuple[int, int]:
    """Where :func:`free_port` picks: ``AIFABRIC_TEST_PORTS`` (``LOW-HIGH``, so that
    processes running at once never pick the same port, see scripts/run_tests.py), else
    20000-32767: below Linux's ephemeral range (32768-60999), where the kernel's own
    pick (port 0) may come back for the next call or for an outgoing connection before
    the caller binds it."""
    text = os.environ.get("AIFABRIC_TEST_PORTS", "")
    low, sep, high = text.partition("-")
    if not text:
        return 20000, 32767
    if not (sep and low.isdigit() and high.isdigit() and 1024 <= int(low) < int(high) < 32768):
        raise ValueError(f"AIFABRIC_TEST_PORTS must be LOW-HIGH within 1024-32767, got {text!r}")
    return int(low), int(high)


def free_port() -> int:
    """A TCP port free on every address, in :func:`port_range`, not handed out before by
    this process."""
    low, high = port_range()
    while True:
        port = random.randrange(low, high + 1)
        if port in _given:
            continue
        with socket.socket() as s:
            try:
                s.bind(("0.0.0.0", port))
            except OSError:
                continue
        _given.add(port)
        return port


def launch_logged(cmd: list[str], log_path: Path) -> subprocess.Popen:
    """Start ``cmd`` with its output appended to ``log_path``; do not wait."""
    log = open(log_path, "ab")  # noqa: SIM115 - owned by the child
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    log.close()
    return proc


def wait_ready(proc: subprocess.Popen, log_path: Path, ready, timeout: float,
               name: str) -> None:
    """Wait until ``ready()``; RuntimeError (with the log's end) if ``proc`` exits or is
    not ready in ``timeout`` s (it is then killed)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited with {proc.returncode}; see {log_path}:\n"
                               + log_path.read_text()[-2000:])
        if ready():
            return
        time.sleep(0.1)
    proc.kill()
    proc.wait(5)
    raise RuntimeError(f"{name} was not ready within {timeout} s; see {log_path}:\n"
                       + log_path.read_text()[-2000:])


def start_logged(cmd: list[str], log_path: Path, ready, timeout: float,
                 name: str) -> subprocess.Popen:
    """Start ``cmd`` with its output appended to ``log_path`` and wait until ``ready()``
    (see ``wait_ready``)."""
    proc = launch_logged(cmd, log_path)
    wait_ready(proc, log_path, ready, timeout, name)
    return proc


class FabricdProcess:
    """A fabricd child process with its own OpenFlow and API ports and log file."""

    def __init__(self, log_path: str | Path, of_port: int | None = None,
                 grpc_port: int | None = None, extra_args: list[str] | None = None) -> None:
        self.of_port = of_port or free_port()
        self.grpc_addr = f"127.0.0.1:{grpc_port or free_port()}"
        self.metrics_addr = f"127.0.0.1:{free_port()}"
        self.log_path = Path(log_path)
        self.extra_args = list(extra_args or [])
        self.proc: subprocess.Popen | None = None
        self.tls: dict[str, str] = {}  # ca/cert/key for clients, when it serves TLS
        self.token_file: Path | None = None  # else the default token file
        self.stop_timed_out = False  # it outlived SIGTERM by the stop timeout (killed)
        self._serving_seen = False  # the process launched last has served
        # operator intent kept beside the log: a restart of this controller finds it,
        # another controller (another test) does not
        self.state_file = self.log_path.with_name(self.log_path.stem + ".state.json")

    @property
    def controller(self) -> str:
        return f"tcp:127.0.0.1:{self.of_port}"

    def start(self, timeout: float = 20.0) -> None:
        """Start fabricd and wait until it serves."""
        self.launch()
        self.wait_serving(timeout)

    def launch(self) -> None:
        """Start fabricd without waiting: a caller has other work meanwhile (a Mininet
        network to build: fabricd takes about a second to import and start). The first
        ``client()`` or ``wait_serving()`` waits for it."""
        cmd = [sys.executable, "-m", "controller.daemon", "--of-port", str(self.of_port),
               "--grpc-addr", self.grpc_addr, "--metrics-addr", self.metrics_addr,
               *([] if "--state-file" in self.extra_args else
                 ["--state-file", str(self.state_file)]),
               *self.extra_args]
        self.proc = launch_logged(cmd, self.log_path)
        self._serving_seen = False

    def wait_serving(self, timeout: float = 20.0) -> None:
        """Wait until the process launched last serves (at once when it was seen to);
        RuntimeError with its log's end if it exits or does not serve in time."""
        if self.proc is None or self._serving_seen:
            return
        wait_ready(self.proc, self.log_path, self._serving, timeout, "fabricd")
        self._serving_seen = True

    def _serving(self) -> bool:
        try:
            with self._client(timeout=1.0) as c:
                return c.health() == "SERVING"
        except grpc.RpcError:
            return False

    def stop(self, timeout: float = 10.0) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                # (fabricd dumps every thread's stack to its log on SIGUSR1: the evidence
                # of why it did not stop)
                print(f"fabricd {self.proc.pid} still running {timeout:g} s after SIGTERM: "
                      f"its threads' stacks go to {self.log_path}", file=sys.stderr)
                self.proc.send_signal(signal.SIGUSR1)
                self.stop_timed_out = True
                time.sleep(1.0)
                self.proc.kill()
                self.proc.wait(5)
        rc = self.proc.returncode
        self.proc = None
        return rc

    def client(self, timeout: float = 5.0) -> FabricClient:
        """An API client (once the process launched last serves)."""
        self.wait_serving()
        return self._client(timeout)

    def _client(self, timeout: float) -> FabricClient:
        token = None
        if self.token_file is not None and self.token_file.exists():
            token = self.token_file.read_text().strip()
        return FabricClient(self.grpc_addr, timeout, token=token, **self.tls)

    def __enter__(self) -> FabricdProcess:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
