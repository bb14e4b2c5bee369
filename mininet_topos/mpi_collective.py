"""An MPI collective benchmark, run on Mininet hosts by :mod:`mininet_topos.mpi`.

Each rank times ``--iters`` calls of one collective on a buffer of ``--bytes`` (after
``--warmup`` untimed ones, with a barrier before each) and rank 0 prints one JSON line:
the median time of a call and the bus bandwidth in the usual convention, so that it
compares with the link rate whatever the number of ranks:

  allreduce   busbw = 2 (n-1)/n * bytes / time
  alltoall    busbw = (n-1)/n * bytes / time   (bytes: what each rank sends in all)

Runs with Debian's python3-mpi4py and no numpy (array buffers).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from array import array


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("collective", choices=["allreduce", "alltoall"])
    p.add_argument("--bytes", type=int, default=2 << 20, help="buffer per rank")
    p.add_argument("--iters", type=int, default=5)
    p.add_argument("--warmup", type=int, default=1)
    args = p.parse_args(argv)
    from mpi4py import MPI

    comm = MPI.COMM_WORLD
    n, rank = comm.Get_size(), comm.Get_rank()
    count = max(n, args.bytes // 8 // n * n)  # doubles, a multiple of n
    send = array("d", [float(rank + 1)]) * count
    recv = array("d", [0.0]) * count
    times = []
    for i in range(args.warmup + args.iters):
        comm.Barrier()
        t0 = MPI.Wtime()
        if args.collective == "allreduce":
            comm.Allreduce([send, MPI.DOUBLE], [recv, MPI.DOUBLE], op=MPI.SUM)
        else:
            comm.Alltoall([send, MPI.DOUBLE], [recv, MPI.DOUBLE])
        t = comm.allreduce(MPI.Wtime() - t0, op=MPI.MAX)  # the slowest rank's time
        if i >= args.warmup:
            times.append(t)
    # the result is checked, so that a broken run cannot pass for a fast one
    if args.collective == "allreduce":
        ok = recv[0] == n * (n + 1) / 2 and recv[count - 1] == recv[0]
    else:
        per = count // n
        ok = all(recv[r * per] == float(r + 1) for r in range(n))
    ok = comm.allreduce(1 if ok else 0, op=MPI.MIN) == 1
    if rank == 0:
        size = count * 8
        t = statistics.median(times)
        factor = 2 * (n - 1) / n if args.collective == "allreduce" else (n - 1) / n
        print(json.dumps({"collective": args.collective, "ranks": n, "bytes": size,
                          "iters": len(times), "seconds": t, "times": times,
                          "busbw_bps": factor * size * 8 / t, "correct": ok}), flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
