"""Link shaping for the Mininet fabrics: each link end's HTB rate (Mininet's TCLink),
applied in batch.

Mininet shapes each end of a TCLink as the link is made and again as its switch
starts, three or four ``tc`` commands through a node's shell each time: 1.3 s of a 2x4
fabric's 2.6 s bring-up. Here a link end is configured like any interface when it is
made (MAC, address, up) and shaped later, with the same qdisc and class Mininet makes
(its own ``bwCmds``): every switch-side end in one ``tc -batch``, each host's ends in
another, the hosts' at once. (TCLink's ``ethtool`` call is left out: it asks a veth for
what it has already, GRO off and checksum offload on; the hosts' offload is turned off
by ``network.prepare_interfaces``.)
"""

from __future__ import annotations

import logging
import re
import subprocess

from mininet.link import Intf, TCIntf, TCLink

log = logging.getLogger("aifabric.mininet")

HANDLES = ("5:", "1:")  # Mininet's HTB, or OVS's own (a controller's QoS: it carries the rate)


class LaterShapedIntf(TCIntf):
    """A TCLink end configured now and shaped by :func:`shape` (a link given only a rate;
    any other tc option, as Mininet's own TCIntf does: at once)."""

    def config(self, bw=None, **params):  # noqa: D102 - Mininet's API
        tc_options = set(params) & {"delay", "jitter", "loss", "max_queue_size", "speedup",
                                    "use_hfsc", "use_tbf", "enable_ecn", "enable_red"}
        if tc_options:
            return super().config(bw=bw, **params)
        return Intf.config(self, **params)

    def shaping_commands(self) -> list[str]:
        """``tc -batch`` lines giving this end its rate (none if it has no rate)."""
        bw = self.params.get("bw")
        if not bw:
            return []
        cmds, _ = self.bwCmds(bw=bw)
        return [f"qdisc del dev {self.name} root"] + [
            (c % ("tc", self.name)).removeprefix("tc ") for c in cmds]


class LaterShapedLink(TCLink):
    """TCLink whose two ends are :class:`LaterShapedIntf`."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("cls1", LaterShapedIntf)
        kwargs.setdefault("cls2", LaterShapedIntf)
        super().__init__(*args, **kwargs)


def _ends(intfs) -> list[LaterShapedIntf]:
    return [i for i in intfs if isinstance(i, LaterShapedIntf) and i.params.get("bw")]


def shape(intfs) -> None:
    """Give each of ``intfs`` (link ends, in any node) its rate: one ``tc -batch`` in the
    root namespace, one per host, the hosts' at once. A failure is an error naming the
    interfaces."""
    by_node: dict = {}
    for intf in _ends(intfs):
        by_node.setdefault(intf.node, []).append(intf)
    root = [i for node, ends in by_node.items() if not node.inNamespace for i in ends]
    procs = []
    for node, ends in by_node.items():
        if node.inNamespace:
            procs.append((ends, node.popen(["tc", "-force", "-batch", "-"],
                                           stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                           stderr=subprocess.PIPE, text=True)))
    if root:
        _check(root, subprocess.run(["tc", "-force", "-batch", "-"], input=_batch(root),
                                    capture_output=True, text=True, timeout=60))
    for ends, proc in procs:
        out, err = proc.communicate(_batch(ends), timeout=60)
        _check(ends, subprocess.CompletedProcess(proc.args, proc.returncode, out, err))


def _batch(ends: list[LaterShapedIntf]) -> str:
    return "".join(f"{line}\n" for i in ends for line in i.shaping_commands())


def _check(ends: list[LaterShapedIntf], res: subprocess.CompletedProcess) -> None:
    # (the first ``qdisc del`` of a fresh veth fails: it has no root qdisc to delete)
    errors = [line for line in res.stderr.splitlines()
              if line.strip() and "Cannot delete qdisc with handle of zero" not in line
              and "Cannot find specified qdisc" not in line
              and not line.startswith("Command failed")]
    if errors:
        names = ", ".join(i.name for i in ends)
        raise RuntimeError(f"tc could not shape {names}: {'; '.join(errors[:5])}")


_ROOT_QDISC = re.compile(r"^qdisc (\S+) (\S+) dev (\S+) root", re.M)


def shaped_devices(tc_output: str) -> set[str]:
    """Devices of ``tc qdisc show`` output whose root qdisc is an HTB with one of
    :data:`HANDLES`."""
    return {dev for kind, handle, dev in _ROOT_QDISC.findall(tc_output)
            if kind == "htb" and handle in HANDLES}


def unshaped(net) -> list[LaterShapedIntf]:
    """Link ends with a rate whose root qdisc is neither Mininet's HTB nor OVS's (one
    ``tc qdisc show`` in the root namespace, one per host)."""
    ends = _ends(i for node in net.hosts + net.switches for i in node.intfList())
    shaped = shaped_devices(subprocess.run(["tc", "qdisc", "show"], capture_output=True,
                                           text=True, timeout=60).stdout)
    for host in net.hosts:
        shaped |= {f"{host.name}\0{dev}" for dev in shaped_devices(host.cmd("tc qdisc show"))}
    return [i for i in ends if (f"{i.node.name}\0{i.name}" if i.node.inNamespace
                                else i.name) not in shaped]
