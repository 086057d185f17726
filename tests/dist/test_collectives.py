"""Hand-written collectives (send/recv only) against torch.distributed's on float64 tensors of awkward sizes (not
multiples of the world size, fewer elements than ranks, 2-D) for world sizes 2, 3 and 4; bytes each rank sends."""

import pytest
import torch
import torch.distributed as dist

from nlplab.dist import collectives as C
from nlplab.dist.launch import spawn
from nlplab.errors import ConfigError

SHAPES = [(1001,), (2,), (7, 13), (12,)]
TOL = {"rtol": 1e-12, "atol": 1e-12}


def collectives_on_every_rank() -> dict:
    """Per shape: the hand-written results and torch's, and the bytes sent by each all-reduce."""
    group = C.Group()
    r, p = group.rank, group.size
    out = {}
    for shape in SHAPES:
        x = torch.randn(shape, generator=torch.Generator().manual_seed(100 * r + len(shape)), dtype=torch.float64)
        n = x.numel()
        reference = x.clone()
        dist.all_reduce(reference)
        row = {"reference": reference, "x": x}
        for algorithm in ("ring", "halving_doubling", "naive"):
            group.reset_counts()
            row[algorithm] = C.all_reduce(x, group, algorithm)
            row[algorithm + "_bytes"], row[algorithm + "_messages"] = group.bytes_sent, group.messages_sent
        sizes = C.chunk_sizes(n, p)
        row["reduce_scatter"] = C.reduce_scatter(x, group, sizes)
        mine = x.flatten()[: sizes[r]] * (r + 1)
        row["all_gather"] = C.all_gather(mine, group, sizes)
        padded = [torch.zeros(max(sizes), dtype=torch.float64) for _ in range(p)]
        dist.all_gather(padded, torch.cat([mine, mine.new_zeros(max(sizes) - sizes[r])]))
        row["torch_all_gather"] = torch.cat([t[:size] for t, size in zip(padded, sizes)])
        root = p - 1
        row["broadcast"] = C.broadcast(x, group, root)
        row["torch_broadcast"] = x.clone()
        dist.broadcast(row["torch_broadcast"], root)
        out[shape] = row
    even = torch.randn(4 * p, generator=torch.Generator().manual_seed(r), dtype=torch.float64)
    torch_piece = torch.empty(4, dtype=torch.float64)
    dist.reduce_scatter_single(torch_piece, even.clone())
    out["even"] = (C.reduce_scatter(even, group), torch_piece)
    return out


@pytest.mark.parametrize("world", [2, 3, 4])
def test_collectives_equal_torch_distributed(world):
    ranks = spawn(collectives_on_every_rank, world)
    for shape in SHAPES:
        rows = [ranks[r][shape] for r in range(world)]
        total = sum(row["x"] for row in rows)
        sizes = C.chunk_sizes(total.numel(), world)
        for r, row in enumerate(rows):
            for algorithm in ("ring", "halving_doubling", "naive"):
                torch.testing.assert_close(row[algorithm], row["reference"], **TOL)
            torch.testing.assert_close(row["reference"], total, **TOL)
            torch.testing.assert_close(row["reduce_scatter"], total.flatten().split(sizes)[r], **TOL)
            assert torch.equal(row["all_gather"], row["torch_all_gather"])
            assert torch.equal(row["broadcast"], row["torch_broadcast"])
            assert torch.equal(row["broadcast"], rows[-1]["x"])
        ring = [row["ring_bytes"] for row in rows]
        n_bytes = total.numel() * 8
        assert sum(ring) == 2 * (world - 1) * n_bytes, "every chunk is sent by p−1 ranks in each half"
        assert max(ring) - min(ring) <= 2 * 8 * (max(sizes) - min(sizes))
        if total.numel() % world == 0:
            assert ring == [2 * (world - 1) / world * n_bytes] * world
        naive = [row["naive_bytes"] for row in rows]
        assert naive == [(world - 1) * n_bytes] + [n_bytes] * (world - 1)
        if total.numel() % 4 == 0:
            for algorithm in ("ring", "halving_doubling", "naive"):
                assert max(row[algorithm + "_bytes"] for row in rows) == C.busiest_sent(algorithm, world) * n_bytes
        messages, _ = C.cost_terms("ring", world)
        assert all(row["ring_messages"] == messages for row in rows) or total.numel() < world
    for r in range(world):
        ours, theirs = ranks[r]["even"]
        torch.testing.assert_close(ours, theirs, **TOL)


def halving_doubling_cost() -> tuple[int, int]:
    group = C.Group()
    C.halving_doubling_all_reduce(torch.ones(64, dtype=torch.float64), group)
    return group.messages_sent, group.bytes_sent


def test_halving_doubling_sends_log_p_messages_of_the_ring_bytes():
    messages, factor = C.cost_terms("halving_doubling", 4)
    assert spawn(halving_doubling_cost, 4) == [(messages, factor * 64 * 8)] * 4 == [(4, 768)] * 4


def test_cost_terms():
    assert C.cost_terms("ring", 4) == (6, 1.5)
    assert C.cost_terms("naive", 4) == (6, 6.0)
    assert C.cost_terms("halving_doubling", 8) == (6, 1.75)
    assert C.cost_terms("halving_doubling", 3) == (4, 3.0)
    assert C.chunk_sizes(10, 4) == [3, 3, 2, 2]
    with pytest.raises(ConfigError, match="no cost model"):
        C.cost_terms("torch", 2)
