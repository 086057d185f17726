"""Data parallelism by hand equals single-process training on the whole batch and DistributedDataParallel
(float64, after several Adam steps, 1e-10); batches are sharded as tensor_split does; buckets hold whole tensors."""

import pytest
import torch
import torch.distributed as dist
from torch import nn

from nlplab.dist.collectives import Group
from nlplab.dist.data_parallel import DataParallel, buckets, shard_batch
from nlplab.dist.launch import spawn


def test_shard_batch_cuts_every_tensor_along_the_batch():
    batch = {"ids": torch.arange(14).view(7, 2), "lengths": torch.arange(7), "pair": (torch.arange(7), "name"),
             "note": "kept"}
    shards = [shard_batch(batch, r, 3) for r in range(3)]
    assert [len(s["ids"]) for s in shards] == [3, 2, 2]
    assert torch.equal(torch.cat([s["ids"] for s in shards]), batch["ids"])
    assert torch.equal(shards[1]["pair"][0], torch.tensor([3, 4])) and shards[1]["pair"][1] == "name"
    assert shards[2]["note"] == "kept"


def test_buckets_fill_in_reverse_order_up_to_the_cap():
    params = [nn.Parameter(torch.zeros(n, dtype=torch.float64)) for n in (4, 4, 10, 1, 1)]
    cut = buckets(params, bucket_bytes=64)
    assert [[p.numel() for p in b] for b in cut] == [[1, 1], [10], [4, 4]]


def train_three_ways(algorithm: str, gpt) -> tuple[int, float, float]:
    """(buckets, hand-written DP vs one process, DDP vs one process): max weight differences after 3 Adam steps."""
    rank, world = dist.get_rank(), dist.get_world_size()
    reference = gpt.train_single(lambda params: torch.optim.Adam(params, lr=0.01))
    results: list = []
    for engine in ("manual", "ddp"):
        model = gpt.tiny()
        if rank and engine == "manual":
            with torch.no_grad():
                for p in model.parameters():
                    p.add_(1.0)  # another start on rank 1: step 1 (the broadcast) must undo it
        wrapped = DataParallel(model, Group(), bucket_bytes=2048, algorithm=algorithm) if engine == "manual" \
            else nn.parallel.DistributedDataParallel(model)
        optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
        for ids in gpt.batches():
            optimizer.zero_grad()
            gpt.loss(wrapped, shard_batch(ids, rank, world)).backward()
            if engine == "manual":
                wrapped.sync_gradients()
            optimizer.step()
        results.append(gpt.max_difference(model.state_dict(), reference))
        if engine == "manual":
            results.insert(0, len(wrapped.buckets))
    return tuple(results)


@pytest.mark.parametrize("world, algorithm", [(2, "ring"), (3, "halving_doubling")])
def test_data_parallel_equals_one_process_and_ddp(world, algorithm, gpt):
    for n_buckets, manual, ddp in spawn(train_three_ways, world, algorithm, gpt):
        assert n_buckets > 1
        assert manual < 1e-10 and ddp < 1e-10
