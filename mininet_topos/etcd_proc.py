"""Run a one-member etcd as a child process on free loopback ports (for the cluster
tests, the demo and the benchmarks), in its own data directory."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import ssl
import subprocess
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from mininet_topos.certs import make_test_certs
from mininet_topos.controller_proc import FabricdProcess, free_port, start_logged

_made: list[dict[str, Path]] = []  # this process's test certificates, made once


def _test_certs(where: Path) -> dict[str, Path]:
    """The test CA and certificates (three RSA keys: made once per process, in the first
    ``where`` asked for, then shared)."""
    if not _made or not all(p.exists() for p in _made[0].values()):
        where.mkdir(parents=True, exist_ok=True)
        _made[:] = [make_test_certs(where)]
    return _made[0]


class EtcdProcess:
    """etcd with tuned timing: ``heartbeat_ms`` and ``election_ms`` set the lease floor
    (etcd raises a lease to 1.5 x the election timeout)."""

    def __init__(self, data_dir: str | Path, heartbeat_ms: int = 50,
                 election_ms: int = 500, tls: bool = False) -> None:
        """``tls``: clients connect over https with a certificate signed by the test CA
        (``client_args``: what fabricd needs to), as a deployment should."""
        self.data_dir = Path(data_dir)
        self.certs: dict[str, Path] | None = None
        if tls:
            self.certs = _test_certs(self.data_dir.with_name(self.data_dir.name + "-certs"))
        self.client_port = free_port()
        self.peer_port = free_port()
        self.heartbeat_ms = heartbeat_ms
        self.election_ms = election_ms
        self.log_path = self.data_dir.with_name(self.data_dir.name + ".log")
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        scheme = "https" if self.certs else "http"
        return f"{scheme}://127.0.0.1:{self.client_port}"

    @property
    def client_args(self) -> list[str]:
        """fabricd's flags to reach this etcd."""
        if not self.certs:
            return ["--insecure-etcd"]
        return ["--etcd-ca", str(self.certs["ca.pem"]), "--etcd-cert",
                str(self.certs["client.pem"]), "--etcd-key", str(self.certs["client.key"])]

    def start(self, timeout: float = 15.0) -> None:
        etcd = shutil.which("etcd")
        if etcd is None:
            raise RuntimeError("etcd is not installed (make setup installs etcd-server)")
        peer = f"http://127.0.0.1:{self.peer_port}"
        cmd = [etcd, "--name", "aifabric-test", "--data-dir", str(self.data_dir),
               "--listen-client-urls", self.url, "--advertise-client-urls", self.url,
               "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
               "--initial-cluster", f"aifabric-test={peer}",
               "--heartbeat-interval", str(self.heartbeat_ms),
               "--election-timeout", str(self.election_ms)]
        if self.certs:  # (clients must present a certificate the test CA signed)
            cmd += ["--cert-file", str(self.certs["server.pem"]), "--key-file",
                    str(self.certs["server.key"]), "--client-cert-auth",
                    "--trusted-ca-file", str(self.certs["ca.pem"])]
        self.proc = start_logged(cmd, self.log_path, self.healthy, timeout, "etcd")

    def healthy(self) -> bool:
        ctx = None
        if self.certs:
            ctx = ssl.create_default_context(cafile=str(self.certs["ca.pem"]))
            ctx.load_cert_chain(str(self.certs["client.pem"]), str(self.certs["client.key"]))
        try:
            with urllib.request.urlopen(self.url + "/health", timeout=1, context=ctx) as resp:
                return json.loads(resp.read()).get("health") == "true"
        except (OSError, ValueError):
            return False

    def pause(self) -> None:
        """Stop answering (SIGSTOP): the store is unreachable, nothing is lost."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGCONT)  # (a paused etcd cannot handle SIGTERM)
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def __enter__(self) -> EtcdProcess:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextmanager
def fabricd_cluster(workdir: Path, n: int, extra: list[str], heartbeat_ms: int = 50,
                    election_ms: int = 500, tls: bool = True) -> Iterator[tuple[EtcdProcess,
                                                                        list[FabricdProcess]]]:
    """An etcd and ``n`` fabricd joined to it (node ids n0, n1, ...; logs in
    ``workdir``), all stopped at the end; over https with client certificates, as a
    deployment should be (``tls=False``: plain http, fabricd told --insecure-etcd)."""
    workdir.mkdir(parents=True, exist_ok=True)
    etcd = EtcdProcess(workdir / "etcd", heartbeat_ms, election_ms, tls=tls)
    secret = workdir / "cluster-secret"  # (the instances' shared secret: none in etcd)
    fd = os.open(secret, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(secrets.token_hex(32) + "\n")
    etcd.start()
    ctls: list[FabricdProcess] = []
    try:
        for i in range(n):
            ctl = FabricdProcess(workdir / f"fabricd-{i}.log", extra_args=[
                "--etcd", etcd.url, *etcd.client_args, "--cluster-secret-file", str(secret),
                "--node-id", f"n{i}", *extra])
            ctl.node = f"n{i}"  # type: ignore[attr-defined]
            ctls.append(ctl)
            ctl.start()
        yield etcd, ctls
    finally:
        for ctl in ctls:
            ctl.stop()
        etcd.stop()
