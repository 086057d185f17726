"""DeepSpeed's own ZeRO-2, configured as its users configure it, reaches the weights of one process on 2 CPU
processes (float32: DeepSpeed's ZeRO does not take float64) — the reference behind the hand-written stages."""

import os

import torch
import torch.distributed as dist

from nlplab.dist.data_parallel import shard_batch
from nlplab.dist.launch import spawn

LR = 0.01


def zero2_config(world: int) -> dict:
    return {"train_batch_size": 6, "train_micro_batch_size_per_gpu": 6 // world, "zero_optimization": {"stage": 2},
            "optimizer": {"type": "Adam", "params": {"lr": LR, "torch_adam": True, "adam_w_mode": False}}}


def deepspeed_zero2(gpt) -> float:
    import deepspeed

    rank, world = dist.get_rank(), dist.get_world_size()
    os.environ.update(LOCAL_RANK=str(rank), LOCAL_SIZE=str(world), MASTER_ADDR="127.0.0.1", MASTER_PORT="29500")
    model = gpt.tiny().float()
    engine, *_ = deepspeed.initialize(model=model, model_parameters=model.parameters(), config=zero2_config(world),
                                      dist_init_required=False)
    for ids in gpt.batches():
        local = shard_batch(ids, rank, world)
        loss = gpt.cross_entropy(engine(local[:, :-1])[0], local[:, 1:])
        engine.backward(loss)
        engine.step()
    reference = gpt.tiny().float()
    optimizer = torch.optim.Adam(reference.parameters(), lr=LR)
    for ids in gpt.batches():
        optimizer.zero_grad()
        gpt.loss(reference, ids).backward()
        optimizer.step()
    return gpt.max_difference(model.state_dict(), reference.state_dict())


def test_deepspeed_zero2_equals_one_process(gpt, monkeypatch):
    monkeypatch.setenv("DS_ACCELERATOR", "cpu")
    import deepspeed.ops

    # DeepSpeed compiles a shared-memory all-reduce for CPUs on first use (minutes); its gloo path is the one tested
    monkeypatch.setitem(deepspeed.ops.__compatible_ops__, "deepspeed_shm_comm", False)
    assert max(spawn(deepspeed_zero2, 2, gpt, timeout=120)) < 1e-5
