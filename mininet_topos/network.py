"""Bring a spine-leaf fabric up on Mininet, on Open vSwitch's userspace datapath.

Handles what this environment needs (see ``../shared/ENVIRONMENT.md``): OVS started
without systemd, ``datapath=user`` bridges in fail-mode secure speaking OpenFlow 1.3,
checksum offload off in every host, and clean-up even when something fails.
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from contextlib import contextmanager
from functools import partial
from pathlib import Path

from mininet.log import setLogLevel
from mininet.net import Mininet
from mininet.node import OVSSwitch, RemoteController

from mininet_topos.shaping import LaterShapedLink, shape, unshaped
from mininet_topos.spine_leaf import FabricSpec, SpineLeafTopo

log = logging.getLogger("aifabric.mininet")

REPO = Path(__file__).resolve().parent.parent


def ensure_ovs() -> None:
    """Start Open vSwitch if it is not running (idempotent)."""
    script = REPO / "scripts" / "ovs-start.sh"
    subprocess.run(["bash", str(script)], check=True)


MININET_LOCK = "/var/tmp/aifabric-mininet.lock"  # held while a network of ours is up
_held: list = []  # this process's open lock file, while it holds the lock


@contextmanager
def mininet_lock(timeout: float = 900.0):
    """One Mininet network at a time on this machine: wait (at most ``timeout`` s) for
    another process's network to be gone, and hold the lock while ours is up.
    Refused where ``AIFABRIC_NO_MININET`` is set (a test lane that runs beside the
    Mininet lane, see scripts/run_tests.py: a test building a network belongs there)."""
    if os.environ.get("AIFABRIC_NO_MININET"):
        raise RuntimeError("AIFABRIC_NO_MININET is set: this process builds no Mininet "
                           "network (a test that does is marked `mininet`)")
    if _held:  # (this process holds it already: a network inside a network's test)
        yield
        return
    f = open(MININET_LOCK, "a")  # noqa: SIM115 - closed below
    deadline = time.monotonic() + timeout
    try:
        while True:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"another process has held {MININET_LOCK} for "
                                       f"{timeout:g} s (a Mininet network is up)") from None
                time.sleep(0.5)
        _held.append(f)
        yield
    finally:
        if _held and _held[-1] is f:
            _held.pop()
        f.close()  # (releases the lock)


def cleanup() -> None:
    """Remove leftovers of an earlier Mininet run (bridges, veths, namespaces); not while
    another process's network is up (it cleans up after itself)."""
    mn = shutil.which("mn")
    if not mn:
        return
    with open(MININET_LOCK, "a") as f:
        if not _held:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                log.warning("a Mininet network of another process is up: mn -c skipped")
                return
        subprocess.run([mn, "-c"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       timeout=120, check=False)


def parse_controller(addr: str) -> tuple[str, int, str]:
    """``tcp:HOST:PORT``, ``ssl:HOST:PORT`` (or ``HOST:PORT``) -> (host, port, protocol).
    Over ``ssl`` Open vSwitch needs its key and certificates (``ovs-vsctl set-ssl``)."""
    protocol, _, text = addr.partition(":") if addr[:4] in ("tcp:", "ssl:") else ("tcp", "",
                                                                               addr)
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"controller must be tcp:HOST:PORT or ssl:HOST:PORT, got {addr!r}")
    return host, int(port), protocol


def prepare_interfaces(net: Mininet) -> None:
    """Checksum offload off in hosts (TCP through the userspace datapath times out
    otherwise), and IPv6 off on hosts and on the switch-side veths, whose kernel would
    otherwise chatter (router solicitations, MLD) into the fabric."""
    for host in net.hosts:
        for intf in host.intfList():
            if intf.name != "lo":
                host.cmd(f"ethtool -K {intf.name} tx off rx off >/dev/null 2>&1")
        host.cmd("sysctl -qw net.ipv6.conf.all.disable_ipv6=1")
    for sw in net.switches:
        for intf in sw.intfList():
            if intf.name != "lo":
                subprocess.run(["sysctl", "-qw", f"net.ipv6.conf.{intf.name}.disable_ipv6=1"],
                               check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


class QuietRemoteController(RemoteController):
    """A remote controller Mininet does not probe. Its probe connects with telnet and
    decodes what comes back as UTF-8: OpenFlow's binary HELLO (a random transaction id)
    made that raise UnicodeDecodeError now and then, failing the network's set-up. The
    probe only warns anyway, and a switch retries its controller every second."""

    def checkListening(self) -> None:
        return None


class FabricSwitch(OVSSwitch):
    """Mininet's OVS switch, started in batch with the others (``start_switches``, then
    ``connect_controllers``, not Mininet's ``start``): its controllers are set only once
    every link is shaped. Mininet re-applied each TCLink's qdisc after a switch started
    and again once all had, which replaced the queues a controller connected meanwhile
    had just provisioned (the controller noticed and made them again, seconds later).
    ``start`` (a switch started again alone, as a test does) shapes its links before it
    connects too."""

    def start(self, controllers) -> None:
        super().start([])  # (the bridge and its ports; their shaping re-applied)
        if controllers:
            _run_vsctl(_controller_args(self, controllers))

    @staticmethod
    def TCReapply(intf) -> None:  # noqa: N802 - Mininet's name
        shape([intf])


def _run_vsctl(args: list[str]) -> None:
    if args:
        subprocess.run(["ovs-vsctl", "--timeout=60", *args], check=True, capture_output=True,
                       timeout=90)


def _controller_args(switch: OVSSwitch, controllers) -> list[str]:
    args: list[str] = []
    for c in controllers:
        args += ["--", f"--id=@{switch.name}{c.name}", "create", "Controller",
                 f'target="{c.protocol}:{c.IP()}:{c.port}"']
        if switch.reconnectms:
            args.append(f"max_backoff={switch.reconnectms}")
    ids = ",".join(f"@{switch.name}{c.name}" for c in controllers)
    return args + ["--", "set", "bridge", switch.name, f"controller=[{ids}]"]


def start_switches(net: Mininet) -> None:
    """Every bridge and its ports, in one OVSDB transaction (waited for), no controller
    yet; then every link shaped in batch (``shaping.shape``). What Mininet's ``start``
    does switch by switch, shaping each link end through a shell twice, in a tenth of
    the time."""
    args: list[str] = []
    for sw in net.switches:
        int(sw.dpid, 16)  # (a DPID must be hex, as Mininet checks)
        args += ["--", "--if-exists", "del-br", sw.name, "--", "add-br", sw.name,
                 "--", "set", "bridge", sw.name, *sw.bridgeOpts().split()]
        for intf in sw.intfList():
            if sw.ports[intf] and not intf.IP():
                args += ["--", "add-port", sw.name, intf.name, *sw.intfOpts(intf).split()]
    _run_vsctl(args)
    shape([i for node in net.hosts + net.switches for i in node.intfList()])


def connect_controllers(net: Mininet) -> None:
    """Every switch given ``net``'s controllers, in one OVSDB transaction."""
    if net.controllers:
        _run_vsctl([a for sw in net.switches for a in _controller_args(sw, net.controllers)])


def build_network(spec: FabricSpec, controller: str | list[str]) -> Mininet:
    """The fabric, each switch connected to ``controller`` (several: a cluster's
    instances, every switch connected to each)."""
    targets = [parse_controller(c) for c in ([controller] if isinstance(controller, str)
                                             else controller)]
    switch = partial(FabricSwitch, datapath="user", failMode="secure", protocols="OpenFlow13",
                     reconnectms=1000)
    net = Mininet(
        topo=SpineLeafTopo(spec=spec),
        switch=switch,
        link=LaterShapedLink,
        controller=None,
        autoSetMacs=False,
        build=False,
    )
    for i, (host, port, protocol) in enumerate(targets):
        net.addController(f"c{i}", controller=QuietRemoteController, ip=host, port=port,
                          protocol=protocol)
    net.build()
    return net


def has_qos_row(port: str) -> bool:
    """Whether OVSDB gives ``port`` a QoS (a controller provisioned it: OVS is about to
    install its own root qdisc there, which carries the port's rate)."""
    res = subprocess.run(["ovs-vsctl", "get", "port", port, "qos"], capture_output=True,
                         text=True, check=False)
    return res.returncode == 0 and res.stdout.strip() not in ("", "[]")


def ensure_shaping(net: Mininet, rounds: int = 3, settle: float = 0.0) -> int:
    """Re-apply link shaping where it did not stick. OVS and Mininet fight over a new
    port's root qdisc (OVS may delete the one Mininet just made), which leaves links
    unshaped at random. A port carrying OVS's own HTB (QoS, handle 1:), or about to
    (a controller gave it a QoS row), is left alone. ``settle``: seconds to wait
    before each check. Returns how many interfaces needed it."""
    fixed = 0
    for _ in range(rounds):
        time.sleep(settle)
        missing = [i for i in unshaped(net) if i.node in net.hosts or not has_qos_row(i.name)]
        if not missing:
            return fixed
        shape(missing)
        fixed += len(missing)
        log.warning("re-applied link shaping on %d interfaces: %s", len(missing),
                    ", ".join(i.name for i in missing[:8]))
        settle = max(settle, 0.3)
    return fixed


@contextmanager
def fabric_network(spec: FabricSpec, controller: str | list[str], quiet: bool = True,
                   before_start: Callable[[], None] | None = None):
    """A started Mininet fabric; stopped (and cleaned up) on exit, even on failure.
    ``before_start`` runs once the switches exist and their links are shaped, before
    they connect (to wait for a controller launched meanwhile: a switch that finds no
    controller retries only a second later)."""
    setLogLevel("error" if quiet else "info")
    with mininet_lock():
        ensure_ovs()
        wait_ovs_applied()
        net = build_network(spec, controller)
        try:
            prepare_interfaces(net)
            start_switches(net)
            ensure_shaping(net)
            if before_start is not None:
                before_start()
            connect_controllers(net)
            yield net
        finally:
            try:
                kill_host_processes(net)
                ensure_ovs()  # (a test may have killed ovs-vswitchd: del-br would hang)
                stop_network(net)
            except Exception:  # pragma: no cover - best effort, then the big hammer
                log.exception("net.stop() failed; running mn -c")
                cleanup()


def wait_ovs_applied() -> None:
    """Until ovs-vswitchd has applied every OVSDB change so far (a network stopped
    without waiting for it, see ``stop_network``): a change that waits for it."""
    subprocess.run(["ovs-vsctl", "--timeout=60", "set", "Open_vSwitch", ".",
                    f"external_ids:aifabric-sync={time.monotonic_ns()}"],
                   check=True, capture_output=True, timeout=90)


def stop_network(net: Mininet) -> None:
    """What Mininet's ``stop`` does, in two commands rather than two per link (0.4 s
    instead of 0.85 s for a 2x4 fabric): the bridges deleted in one OVSDB transaction
    that does not wait for ovs-vswitchd to apply it (the next network waits for that
    before it is built: ``wait_ovs_applied``), every interface in one ``ip -batch`` (a
    veth's peer in a host goes with it), then every node's shell ended."""
    bridges = [s.name for s in net.switches]
    if bridges:
        args = ["ovs-vsctl", "--no-wait"]
        for name in bridges:
            args += ["--", "--if-exists", "del-br", name]
        subprocess.run(args, check=True, capture_output=True, timeout=60)
    # (the userspace datapath's tap of each bridge too; names already gone are skipped)
    names = sorted({i.name for s in net.switches for i in s.intfList() if i.name != "lo"}
                   | set(bridges))
    subprocess.run(["ip", "-force", "-batch", "-"], input="".join(
        f"link del {n}\n" for n in names), text=True, capture_output=True, timeout=60)
    for node in net.switches + net.hosts:
        node.terminate()


def kill_host_processes(net: Mininet) -> int:
    """SIGKILL every process left in a host's network namespace (traffic generators a
    failed test did not collect, MPI ranks...) but the host's own shell: once the
    network is gone they would spin on dead sockets and starve the next test of CPU.
    Returns how many were killed."""
    shells = {h.pid for h in net.hosts if h.pid}
    spaces = set()
    for pid in shells:
        try:
            spaces.add(os.readlink(f"/proc/{pid}/ns/net"))
        except OSError:
            continue
    spaces.discard(os.readlink("/proc/self/ns/net"))  # (never the machine's own)
    killed = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) in shells:
            continue
        try:
            if os.readlink(f"/proc/{entry}/ns/net") in spaces:
                os.kill(int(entry), signal.SIGKILL)
                killed += 1
        except OSError:  # (gone meanwhile, or a kernel thread)
            continue
    if killed:
        log.info("killed %d process(es) left on the Mininet hosts", killed)
    return killed


def ping(src, dst_ip: str, count: int = 1, timeout: float = 1.0, interval: float = 0.2) -> int:
    """Replies received by ``count`` pings from Mininet host ``src`` to ``dst_ip``."""
    return replies_from(src, [dst_ip], count, timeout, interval)[dst_ip]


def _ping_script(dst_ips: list[str], count: int, timeout: float, interval: float) -> str:
    """A shell command pinging each of ``dst_ips`` at once (each its own ping process),
    printing "IP N received" for each."""
    jobs = " ".join(
        f"( echo {ip} $(ping -n -q -c {count} -i {interval} -W {timeout} {ip} "
        f"| grep -o '[0-9]* received') ) &" for ip in dst_ips)
    return f"{jobs} wait"


def _replies(out: str, dst_ips: list[str]) -> dict[str, int]:
    got = dict.fromkeys(dst_ips, 0)
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0] in got and parts[2] == "received":
            got[parts[0]] = int(parts[1])
    return got


def replies_from(src, dst_ips: list[str], count: int = 1, timeout: float = 1.0,
                 interval: float = 0.2) -> dict[str, int]:
    """Replies to ``count`` pings from Mininet host ``src`` to each of ``dst_ips``, the
    destinations pinged at once (one shell command; each its own ping process)."""
    return _replies(src.cmd(_ping_script(dst_ips, count, timeout, interval)), dst_ips)


def replies_between(hosts: list, count: int = 1, timeout: float = 1.0,
                    interval: float = 0.2) -> dict[tuple[str, str], int]:
    """Replies to ``count`` pings between every ordered pair of ``hosts``, every source
    pinging at once: (source name, destination IP) -> replies."""
    procs = []
    for src in hosts:
        dsts = [h.IP() for h in hosts if h is not src]
        procs.append((src, dsts, src.popen(["sh", "-c", _ping_script(
            dsts, count, timeout, interval)], stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL, text=True)))
    got = {}
    for src, dsts, proc in procs:
        out, _ = proc.communicate(timeout=60 + count * (interval + timeout))
        got.update({(src.name, ip): n for ip, n in _replies(out, dsts).items()})
    return got


def reachability(net: Mininet, count: int = 1, timeout: float = 1.0,
                 at_once: bool = True) -> dict[tuple[str, str], bool]:
    """Ping every ordered pair of hosts; True where a reply came back. ``at_once``: each
    source pings its destinations together (else one pair after another, as
    bench.discovery times it)."""
    result = {}
    for a in net.hosts:
        others = [b for b in net.hosts if b is not a]
        if at_once:
            got = replies_from(a, [b.IP() for b in others], count, timeout)
        else:
            got = {b.IP(): ping(a, b.IP(), count, timeout) for b in others}
        for b in others:
            result[(a.name, b.name)] = got[b.IP()] > 0
    return result


def cold_reachability(net: Mininet, count: int = 2,
                      timeout: float = 1.0) -> dict[tuple[str, str], bool]:
    """``reachability`` after every host forgot its ARP cache: every pair must be
    resolved again, through the controller, as after an attack or a fault."""
    for h in net.hosts:
        h.cmd("ip neigh flush all")
    return reachability(net, count, timeout)


def wait_until(pred, timeout: float, interval: float = 0.2) -> bool:
    """Poll ``pred`` until it is true or ``timeout`` seconds pass (bounded)."""
    deadline = time.monotonic() + timeout
    while True:
        if pred():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def wait_qos_provisioned(net: Mininet, timeout: float = 30.0) -> None:
    """Until every switch port carries OVS's HTB (handle 1:) with DSCP filters: the state a
    QoS-enabled fabricd converges to. Traffic sent before may see a port's queues made
    again (Mininet's TCLink replaces OVS's qdisc when a switch starts)."""
    ports = [i.name for s in net.switches for i in s.intfList() if i.name != "lo"]
    deadline = time.monotonic() + timeout
    missing = ports
    while time.monotonic() < deadline:
        missing = [p for p in ports if "flowid" not in subprocess.run(
            ["tc", "filter", "show", "dev", p, "parent", "1:"], capture_output=True,
            text=True).stdout]
        if not missing:
            return
        time.sleep(0.3)
    raise TimeoutError(f"QoS not provisioned on {len(missing)} of {len(ports)} ports "
                       f"in {timeout} s: {missing[:5]}")


def is_root() -> bool:
    return os.geteuid() == 0
