"""The process launcher: results come back by rank; a rank that raises, dies or hangs ends the group with a RankError
naming it (never a hang); init_from_env refuses to run without a launcher."""

import os
import time

import pytest
import torch
import torch.distributed as dist

from nlplab.dist.launch import RankError, init_from_env, spawn


def rank_and_sum() -> tuple[int, int, float]:
    x = torch.tensor([float(dist.get_rank() + 1)])
    dist.all_reduce(x)
    return dist.get_rank(), dist.get_world_size(), x.item()


def fails_on_rank_1() -> None:
    if dist.get_rank() == 1:
        raise ValueError("bad shard on rank 1")
    dist.recv(torch.zeros(1), 1)


def dies_on_rank_0() -> None:
    if dist.get_rank() == 0:
        os._exit(3)
    dist.recv(torch.zeros(1), 0)


def hangs() -> None:
    time.sleep(60)


def test_spawn_returns_each_ranks_result():
    assert spawn(rank_and_sum, 3) == [(0, 3, 6.0), (1, 3, 6.0), (2, 3, 6.0)]


def test_a_failing_rank_ends_the_group_with_its_traceback():
    with pytest.raises(RankError, match="rank 1 failed") as error:
        spawn(fails_on_rank_1, 2, timeout=20)
    assert "ValueError: bad shard on rank 1" in str(error.value)


def test_a_dead_rank_is_named():
    with pytest.raises(RankError, match="rank 0 died") as error:
        spawn(dies_on_rank_0, 2, timeout=20)
    assert "exit code 3" in str(error.value)


def test_a_hanging_group_is_stopped_at_the_timeout():
    t0 = time.monotonic()
    with pytest.raises(RankError, match=r"rank\(s\) 0, 1 did not finish within 1 s"):
        spawn(hangs, 2, timeout=1)
    assert time.monotonic() - t0 < 10


def test_init_from_env_without_a_launcher(monkeypatch):
    for name in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(RankError, match="no launcher: RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT not set; .*torchrun"):
        init_from_env()
