"""Run an MPI program across Mininet hosts with OpenMPI (Debian's openmpi-bin).

The hosts share one kernel and hostname, so ``mpirun`` runs inside the first host and
starts the other ranks through OpenMPI's rsh launcher with an agent script that enters
a host's namespaces (``mnexec -a PID``); transport is TCP only (``btl tcp,self``: no
shared memory between "machines"), on the fabric's 10.0.0.0/8 addresses. Rank order is
the order of the hosts given (``-H 10.0.0.1:1,10.0.0.3:1,...``).

What sharing one hostname and one /tmp calls for: OpenMPI keeps a session directory
per machine (``$TMPDIR/ompi.HOSTNAME.UID``) with the files its daemon and local ranks
share: hwloc's topology in shared memory, PMIx's data store, a directory per job. Eight
daemons with one name shared it, and about one launch in ten lost a daemon (a
segmentation fault in ``hwloc_shmem_topology_write``, a job directory another daemon had
just removed). So:

- every host gets its own ``TMPDIR`` (the agent sets it; mpirun's is the first host's);
- ``rtc_hwloc_vmhole none``: no topology in shared memory (the ranks read it
  themselves: one machine, the same answer);
- ``orte_leave_session_attached 1``: the daemons stay attached to the agent that
  started them instead of daemonizing, so a daemon that fails says so in mpirun's
  output and mpirun stops at once (a daemonized one died silently and mpirun waited
  for it until its timeout).

What sharing two cores with the switches calls for: OpenMPI's ranks busy-poll while
they wait, and each "machine" has one slot, so none thinks it is oversubscribed. Two
spinning ranks took both cores, and ovs-vswitchd's forwarding thread, runnable, got 3 ms
of CPU in 11.5 s (its log: "Unreasonably long 11532ms poll interval (3ms user)"): every
switch stopped forwarding, new connections' SYNs were held for seconds and arrived
together, LLDP probes came back 11 s stale, and now and then a launch lost a daemon's
TCP connection ("unable to complete a TCP connection"). ``mpi_yield_when_idle`` made it
worse (stalls of 38 s). So mpirun, its daemons and its ranks run under ``SCHED_IDLE``
(``chrt --idle 0``): they get the CPU the switches and the controller leave, as hosts on
machines of their own would (measured, marked all-to-all: 30 of 30 launches in 3.9-4.9 s
and no stall of ovs-vswitchd; before, 5 of 30 took 16-91 s).
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

# the ports the ranks' TCP transport listens on (the first free one; each host has its
# own namespace, and the connections of an earlier run may hold one in TIME_WAIT): a
# collective's data connections have one at one end, the launch's control connections
# (ephemeral ports at both ends) do not
BTL_PORTS = range(1024, 1124)
# OpenMPI's tuned collectives: the algorithm numbers of Open MPI 4.1
ALLREDUCE_RING = 4
ALLTOALL_PAIRWISE = 2


class MpiError(RuntimeError):
    """mpirun failed (the message has its output)."""


def agent_script(net, hosts: list[str], directory: Path) -> Path:
    """The rsh agent: ``agent ADDRESS CMD...`` runs CMD in the Mininet host with that
    address (mpirun is given addresses, not names: a name would cost it a DNS lookup
    that times out, per host), with ``TMPDIR`` a directory of that host's own under
    ``directory``."""
    pids = {net.get(h).IP(): net.get(h).pid for h in hosts}
    cases = "\n".join(f"    {h}) pid={pid} ;;" for h, pid in pids.items())
    path = directory / "mn-agent.sh"
    path.write_text(f"""#!/bin/sh
# OpenMPI rsh agent for Mininet hosts (written by mininet_topos.mpi)
while [ "${{1#-}}" != "$1" ]; do shift; done  # (options an ssh would take)
host="$1"; shift
case "$host" in
{cases}
    *) echo "mn-agent: unknown host $host" >&2; exit 1 ;;
esac
TMPDIR="{directory}/tmp-$host"; export TMPDIR
mkdir -p "$TMPDIR" || exit 1
exec mnexec -a "$pid" chrt --idle 0 /bin/sh -c "$*"
""")
    path.chmod(0o755)
    return path


def mpirun_command(addresses: list[str], program: list[str], agent: Path,
                   mca: dict[str, str | int] | None = None) -> list[str]:
    cmd = ["mpirun", "--allow-run-as-root", "-np", str(len(addresses)),
           "-H", ",".join(f"{a}:1" for a in addresses),
           "--mca", "plm_rsh_agent", str(agent),
           "--mca", "btl", "tcp,self",
           "--mca", "btl_tcp_if_include", "10.0.0.0/8",
           "--mca", "btl_tcp_port_min_v4", str(BTL_PORTS.start),
           "--mca", "btl_tcp_port_range_v4", str(len(BTL_PORTS)),
           "--mca", "oob_tcp_if_include", "10.0.0.0/8",
           "--mca", "rtc_hwloc_vmhole", "none",
           "--mca", "orte_leave_session_attached", "1"]
    for k, v in (mca or {}).items():
        cmd += ["--mca", k, str(v)]
    return cmd + program


def collective_mca(collective: str) -> dict[str, str | int]:
    """Force the schedule a job registration assumes: OpenMPI's ring all-reduce, or its
    pairwise-exchange all-to-all."""
    if collective == "allreduce":
        return {"coll_tuned_use_dynamic_rules": 1,
                "coll_tuned_allreduce_algorithm": ALLREDUCE_RING}
    return {"coll_tuned_use_dynamic_rules": 1,
            "coll_tuned_alltoall_algorithm": ALLTOALL_PAIRWISE}


def run_collective(net, hosts: list[str], collective: str, nbytes: int, iters: int = 5,
                   warmup: int = 1, timeout: float = 300, attempts: int = 2) -> dict:
    """Run :mod:`mininet_topos.mpi_collective` on ``hosts`` (rank order); its JSON, with
    ``attempts_made``. An attempt that fails (mpirun's exit status, its output in the
    error) is retried up to ``attempts`` times in all, and the result says how many it
    took: a retry is a failure of the emulation to report, not to hide."""
    last: MpiError | None = None
    for attempt in range(1, attempts + 1):
        try:
            result = _run_once(net, hosts, collective, nbytes, iters, warmup, timeout)
        except MpiError as exc:
            last = exc
            continue
        result["attempts_made"] = attempt
        return result
    assert last is not None
    raise last


def _session(sid: int) -> str:
    """The processes of session ``sid``: pid, state, command (for an error message)."""
    out = subprocess.run(["ps", "-s", str(sid), "-o", "pid=,stat=,etimes=,args="],
                         capture_output=True, text=True, check=False).stdout
    return "\n".join(line[:160] for line in out.splitlines())


def _run_once(net, hosts: list[str], collective: str, nbytes: int, iters: int,
              warmup: int, timeout: float) -> dict:
    root = Path(__file__).resolve().parent.parent
    program = [sys.executable, "-m", "mininet_topos.mpi_collective", collective,
               "--bytes", str(nbytes), "--iters", str(iters), "--warmup", str(warmup)]
    with tempfile.TemporaryDirectory(prefix="aifabric-mpi-") as tmp:
        agent = agent_script(net, hosts, Path(tmp))
        cmd = mpirun_command([net.get(h).IP() for h in hosts], program, agent,
                             collective_mca(collective))
        first = net.get(hosts[0])
        own_tmp = Path(tmp) / f"tmp-{first.IP()}"
        own_tmp.mkdir()
        env = {"OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1",
               "PYTHONPATH": str(root), "HOME": tmp, "TMPDIR": str(own_tmp),
               "OMPI_MCA_plm_rsh_no_tree_spawn": "1"}
        line = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items())
        # (exec: the process we hold is mpirun itself, the leader of a session of its own
        # (mnexec -d) that its agents, daemons and ranks stay in; its own --timeout
        # aborts a job that hangs, and the session is killed if even that does not end
        # it. Output goes to a file: a pipe would stay open as long as any of them)
        cmd[1:1] = ["--timeout", str(int(timeout))]
        output = Path(tmp) / "mpirun.out"
        with output.open("w") as sink:
            proc = first.popen(["/bin/sh", "-c", f"cd {shlex.quote(str(root))} && exec "
                                f"chrt --idle 0 env {line} " + shlex.join(cmd)],
                               stdout=sink, stderr=subprocess.STDOUT)
        hung = None
        try:
            proc.wait(timeout=timeout + 15)
        except subprocess.TimeoutExpired:
            hung = _session(proc.pid)
        subprocess.run(["pkill", "-KILL", "-s", str(proc.pid)], check=False)  # (strays)
        proc.wait(timeout=10)
        out = output.read_text(errors="replace")
        if hung is not None:
            raise MpiError(f"mpirun did not finish in {timeout + 15:g} s; its session "
                           f"held:\n{hung}\n{out[-3000:]}")
    for line in reversed(out.splitlines()):
        if line.startswith("{"):
            result = json.loads(line)
            if proc.returncode != 0 or not result.get("correct"):
                break
            return result
    raise MpiError(f"mpirun exited with {proc.returncode}:\n{out[-3000:]}")
