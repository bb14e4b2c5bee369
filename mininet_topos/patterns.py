"""Traffic matrices between the hosts of a spine-leaf fabric, as (source, destination)
host-index pairs (0-based, hosts numbered leaf by leaf). Every pair crosses a spine."""

from __future__ import annotations

import random


def _leaf(i: int, per_leaf: int) -> int:
    return i // per_leaf


def permutation(n_hosts: int, per_leaf: int, seed: int = 1) -> list[tuple[int, int]]:
    """Each host sends to one host and receives from one, on another leaf."""
    rnd = random.Random(seed)
    hosts = list(range(n_hosts))
    for _ in range(10_000):
        dst = hosts[:]
        rnd.shuffle(dst)
        if all(_leaf(a, per_leaf) != _leaf(b, per_leaf) for a, b in zip(hosts, dst, strict=True)):
            return list(zip(hosts, dst, strict=True))
    raise ValueError("no permutation across leaves (one leaf only?)")


def stride(n_hosts: int, per_leaf: int, step: int | None = None) -> list[tuple[int, int]]:
    """Host i sends to host i + step (default: one leaf further), modulo the hosts."""
    step = per_leaf if step is None else step
    pairs = [(i, (i + step) % n_hosts) for i in range(n_hosts)]
    if any(_leaf(a, per_leaf) == _leaf(b, per_leaf) for a, b in pairs):
        raise ValueError(f"stride {step} keeps some pairs on one leaf")
    return pairs


def random_pairs(n_hosts: int, per_leaf: int, seed: int = 1) -> list[tuple[int, int]]:
    """Each host sends to a random host on another leaf (receivers may collide)."""
    rnd = random.Random(seed)
    out = []
    for a in range(n_hosts):
        choices = [b for b in range(n_hosts) if _leaf(b, per_leaf) != _leaf(a, per_leaf)]
        out.append((a, rnd.choice(choices)))
    return out


def receiver_limited_rate(pairs: list[tuple[int, int]], rate: float) -> float:
    """The non-blocking aggregate of a matrix: every flow gets a fair share of its
    sender's and receiver's NIC (max-min fair, host links only)."""
    flows = list(range(len(pairs)))
    alloc = dict.fromkeys(flows, 0.0)
    active = set(flows)
    cap = {("s", a): rate for a, _ in pairs} | {("r", b): rate for _, b in pairs}
    while active:
        users: dict = {}
        for f in active:
            a, b = pairs[f]
            users.setdefault(("s", a), []).append(f)
            users.setdefault(("r", b), []).append(f)
        share, tight = min((cap[k] / len(v), k) for k, v in users.items())
        for f in list(active):
            alloc[f] += share
        for k, v in users.items():
            cap[k] -= share * len(v)
        done = set(users[tight])
        for k, v in users.items():
            if cap[k] <= 1e-9:
                done |= set(v)
        active -= done
    return sum(alloc.values())
