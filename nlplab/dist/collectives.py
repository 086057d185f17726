"""Collective operations written with point-to-point messages only (`torch.distributed.isend` / `recv`), and what
each one costs.

p ranks each hold a vector x_r of n elements (any shape; the collectives work on its flattened view), cut into p
chunks of nearly equal size (the first n mod p chunks one element longer, as `torch.tensor_split`).

    all-reduce:      every rank ends with Σ_r x_r
    reduce-scatter:  rank r ends with chunk r of Σ_r x_r
    all-gather:      every rank ends with [chunk_0, …, chunk_{p−1}], rank r contributing chunk r
    broadcast:       every rank ends with the root's x

Three all-reduce algorithms, and their time in the α–β model (α: latency of one message, β: seconds per byte,
n here in bytes), counting the messages and bytes one rank sends one after the other (`COSTS`):

    naive (gather to the root, the root sends the sum back):  2(p−1)·α + 2(p−1)·n·β   (at the root)
    ring (reduce-scatter, then all-gather, around a ring):     2(p−1)·α + 2(p−1)/p·n·β
    recursive halving-doubling (Rabenseifner):                 2·log₂p·α + 2(p−1)/p·n·β   (p a power of two)

The ring's bandwidth term 2(p−1)/p·n stays below 2n however many ranks join: each rank sends p−1 chunks of n/p
in each half. Halving-doubling sends the same bytes in log₂p rounds instead of p−1. When p is not a power of two
it first folds the extra ranks in (an even rank of the first 2(p−q) hands its vector to the next odd one, q the
largest power of two ≤ p) and hands them the result at the end: two more messages of n.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor

from nlplab.errors import ConfigError

ALGORITHMS = ("ring", "halving_doubling", "naive", "torch")


class Group:
    """The ranks a collective runs over, in ring order, and the messages and bytes this process sent to them.

    ranks: global ranks (default: every rank of the default process group). `rank` is this process's index in
    `ranks` and `size` their number; point-to-point helpers take indices in the group. `torch_group` is the
    `torch.distributed` process group over the same ranks, for the reference path (None: the default group).
    """

    def __init__(self, ranks: Sequence[int] | None = None, torch_group: Any = None) -> None:
        self.ranks = list(range(dist.get_world_size())) if ranks is None else list(ranks)
        self.rank = self.ranks.index(dist.get_rank())
        self.size = len(self.ranks)
        self.torch_group = torch_group
        self.bytes_sent = 0
        self.messages_sent = 0

    def exchange(self, send: Tensor | None = None, to: int | None = None, recv: Tensor | None = None,
                 source: int | None = None) -> None:
        """Send `send` to member `to` while receiving into `recv` (contiguous) from member `source`; either may be
        None, and empty tensors are not sent (both sides know the sizes). Sending without waiting first lets every
        rank of a ring send and receive at once."""
        payload = send.contiguous() if send is not None and send.numel() else None
        request = self.isend(payload, to) if payload is not None else None
        if recv is not None and recv.numel():
            dist.recv(recv, self.ranks[source])
        if request is not None:
            request.wait()

    def isend(self, tensor: Tensor, to: int) -> Any:
        """Start sending `tensor` (contiguous, kept alive by the caller until the returned request's wait()) to
        member `to`, counted."""
        self.bytes_sent += tensor.numel() * tensor.element_size()
        self.messages_sent += 1
        return dist.isend(tensor, self.ranks[to])

    def reset_counts(self) -> None:
        self.bytes_sent = self.messages_sent = 0


def chunk_sizes(n: int, p: int) -> list[int]:
    """Sizes of p nearly equal chunks of n elements, the first n mod p one longer (as `torch.tensor_split`)."""
    return [n // p + (i < n % p) for i in range(p)]


def reduce_scatter(x: Tensor, group: Group, sizes: Sequence[int] | None = None) -> Tensor:
    """Ring reduce-scatter: chunk `group.rank` of Σ_r x_r (1-D), the chunks of x.flatten() being `sizes` long
    (default `chunk_sizes`). In step s = 0 … p−2, rank r passes its running sum of chunk r−s−1 to rank r+1 and adds
    the running sum of chunk r−s−2 coming from rank r−1; after p−1 steps chunk r holds all p contributions."""
    p, r = group.size, group.rank
    chunks = list(x.flatten().split(list(sizes or chunk_sizes(x.numel(), p))))
    for s in range(p - 1):
        send, recv = (r - s - 1) % p, (r - s - 2) % p
        incoming = torch.empty_like(chunks[recv])
        group.exchange(chunks[send], (r + 1) % p, incoming, (r - 1) % p)
        chunks[recv] = chunks[recv] + incoming
    return chunks[r].clone()


def all_gather(shard: Tensor, group: Group, sizes: Sequence[int] | None = None) -> Tensor:
    """Ring all-gather: the 1-D concatenation of every rank's `shard` in rank order; `sizes` are their lengths
    (default: all as long as this one). In step s rank r passes chunk r−s to rank r+1 and receives chunk r−s−1."""
    p, r = group.size, group.rank
    sizes = list(sizes or [shard.numel()] * p)
    chunks: list[Tensor] = [shard.flatten() if i == r else shard.new_empty(sizes[i]) for i in range(p)]
    for s in range(p - 1):
        group.exchange(chunks[(r - s) % p], (r + 1) % p, chunks[(r - s - 1) % p], (r - 1) % p)
    return torch.cat(chunks)


def ring_all_reduce(x: Tensor, group: Group) -> Tensor:
    """Σ_r x_r by reduce-scatter then all-gather around the ring; shaped like x."""
    sizes = chunk_sizes(x.numel(), group.size)
    return all_gather(reduce_scatter(x, group, sizes), group, sizes).view_as(x)


def halving_doubling_all_reduce(x: Tensor, group: Group) -> Tensor:
    """Σ_r x_r by recursive halving (reduce-scatter) then recursive doubling (all-gather), Rabenseifner's algorithm.

    Over q = 2^k virtual ranks v: in the halving rounds (d = q/2, q/4, …, 1) v and its partner v xor d split the
    chunks both still hold, each keeps one half and sends the other, adding what it receives; after k rounds v
    holds the sum of chunk v. The doubling rounds (d = 1, 2, …, q/2) swap the summed parts back until everyone has
    all. p not a power of two: see the module docstring."""
    p, r = group.size, group.rank
    q = 1 << (p.bit_length() - 1)
    extra = p - q
    flat = x.flatten().clone()
    if r < 2 * extra:
        if r % 2 == 0:
            group.exchange(send=flat, to=r + 1)
            group.exchange(recv=flat, source=r + 1)
            return flat.view_as(x)
        incoming = torch.empty_like(flat)
        group.exchange(recv=incoming, source=r - 1)
        flat += incoming
    v = r // 2 if r < 2 * extra else r - extra

    def member(virtual: int) -> int:
        return 2 * virtual + 1 if virtual < extra else virtual + extra

    bounds = [0, *torch.tensor(chunk_sizes(flat.numel(), q)).cumsum(0).tolist()]

    def part(lo: int, hi: int) -> slice:
        return slice(bounds[lo], bounds[hi])

    lo, hi, d = 0, q, q // 2
    while d >= 1:
        mid = (lo + hi) // 2
        keep, give = ((mid, hi), (lo, mid)) if v & d else ((lo, mid), (mid, hi))
        incoming = torch.empty_like(flat[part(*keep)])
        group.exchange(flat[part(*give)], member(v ^ d), incoming, member(v ^ d))
        flat[part(*keep)] += incoming
        (lo, hi), d = keep, d // 2
    d = 1
    while d < q:
        theirs = (lo - (hi - lo), lo) if v & d else (hi, hi + (hi - lo))
        incoming = torch.empty_like(flat[part(*theirs)])
        group.exchange(flat[part(lo, hi)], member(v ^ d), incoming, member(v ^ d))
        flat[part(*theirs)] = incoming
        lo, hi, d = min(lo, theirs[0]), max(hi, theirs[1]), d * 2
    if r < 2 * extra:
        group.exchange(send=flat, to=r - 1)
    return flat.view_as(x)


def naive_all_reduce(x: Tensor, group: Group, root: int = 0) -> Tensor:
    """Σ_r x_r the naive way: every rank sends x to the root, the root adds them up and sends the sum to each."""
    if group.rank != root:
        group.exchange(send=x.flatten(), to=root)
        total = torch.empty_like(x.flatten())
        group.exchange(recv=total, source=root)
        return total.view_as(x)
    total = x.flatten().clone()
    incoming = torch.empty_like(total)
    for member in range(group.size):
        if member != root:
            group.exchange(recv=incoming, source=member)
            total += incoming
    for member in range(group.size):
        if member != root:
            group.exchange(send=total, to=member)
    return total.view_as(x)


def broadcast(x: Tensor, group: Group, root: int = 0) -> Tensor:
    """The root's x on every rank (x on the others only gives shape and dtype), along a binomial tree: in round
    k = 0, 1, … the 2^k ranks (counted from the root) that have it send it 2^k places further; ⌈log₂p⌉ rounds."""
    v = (group.rank - root) % group.size
    out = x.clone() if v == 0 else torch.empty_like(x)
    mask = 1
    while mask < group.size:
        if v < mask and v + mask < group.size:
            group.exchange(send=out, to=(v + mask + root) % group.size)
        elif mask <= v < 2 * mask:
            group.exchange(recv=out, source=(v - mask + root) % group.size)
        mask *= 2
    return out


def all_reduce(x: Tensor, group: Group, algorithm: str = "ring") -> Tensor:
    """Σ_r x_r, shaped like x, by `algorithm`: "ring", "halving_doubling", "naive" (by hand) or "torch"
    (`torch.distributed.all_reduce` on group.torch_group, the reference)."""
    if algorithm == "ring":
        return ring_all_reduce(x, group)
    if algorithm == "halving_doubling":
        return halving_doubling_all_reduce(x, group)
    if algorithm == "naive":
        return naive_all_reduce(x, group)
    if algorithm == "torch":
        out = x.clone()
        dist.all_reduce(out, group=group.torch_group)
        return out
    raise ConfigError(f"unknown all-reduce algorithm {algorithm!r}; choose one of {', '.join(ALGORITHMS)}")


def cost_terms(algorithm: str, p: int) -> tuple[int, float]:
    """The coefficients of α and of n·β in the time of an all-reduce over p ranks (see the module docstring): the
    messages and bytes per byte of x that pass one after the other through the busiest rank's link (the root's
    receives and sends for "naive"; the folded ranks' transfers for halving-doubling with p not a power of two).
    "torch" is not modelled."""
    if p == 1:
        return 0, 0.0
    if algorithm == "ring":
        return 2 * (p - 1), 2 * (p - 1) / p
    if algorithm == "naive":
        return 2 * (p - 1), 2.0 * (p - 1)
    if algorithm == "halving_doubling":
        q = 1 << (p.bit_length() - 1)
        fold = 2 if q < p else 0
        return 2 * int(math.log2(q)) + fold, 2 * (q - 1) / q + fold
    raise ConfigError(f"no cost model for all-reduce algorithm {algorithm!r}")


def busiest_sent(algorithm: str, p: int) -> float:
    """Bytes the busiest rank sends per byte of x in one all-reduce over p ranks: ring 2(p−1)/p, halving-doubling
    2(q−1)/q (+1 for the result handed back to a folded rank, q < p), naive p − 1 (the root)."""
    if algorithm == "ring":
        return 2 * (p - 1) / p
    if algorithm == "naive":
        return float(p - 1)
    if algorithm == "halving_doubling":
        q = 1 << (p.bit_length() - 1)
        return 2 * (q - 1) / q + (q < p)
    raise ConfigError(f"no byte count for all-reduce algorithm {algorithm!r}")
