"""ZeRO stages 1, 2 and 3 by hand: the weights after several Adam steps equal single-process training (float64), and
the model-state bytes each rank holds are the paper's accounting (float32 equivalents: 8Ψ + 8Ψ/N, 4Ψ + 12Ψ/N,
16Ψ/N; 8-byte elements here)."""

import pytest
import torch

from nlplab.dist.collectives import Group
from nlplab.dist.data_parallel import shard_batch
from nlplab.dist.launch import spawn
from nlplab.dist.zero import Zero, expected_bytes
from nlplab.errors import ConfigError
from nlplab.optim import Adam


def train_stages(gpt) -> dict[int, tuple[float, int, int, bool]]:
    """Per stage: (max weight difference to one process, model-state bytes held, Ψ, parameters freed)."""
    group = Group()
    reference = gpt.train_single(lambda params: Adam(params, lr=0.01))
    out = {}
    for stage in (1, 2, 3):
        model = gpt.tiny()
        zero = Zero(model, lambda shards: Adam(shards, lr=0.01), stage, group)
        for ids in gpt.batches():
            zero.zero_grad()
            gpt.loss(model, shard_batch(ids, group.rank, group.size)).backward()
            zero.step()
        held = zero.state_bytes()
        freed = all(p.numel() == 0 for p in model.parameters())
        out[stage] = (gpt.max_difference(zero.full_state_dict(), reference), held,
                      sum(t.numel() for t in reference.values()), freed)
    return out


def test_zero_stages_equal_one_process_and_hold_the_papers_bytes(gpt):
    """3 ranks: pieces of uneven sizes (2 ranks are covered by the strategy tests)."""
    world = 3
    ranks = spawn(train_stages, world, gpt)
    for stage in (1, 2, 3):
        rows = [rank[stage] for rank in ranks]
        assert max(row[0] for row in rows) < 1e-10
        psi = rows[0][2]
        held = [row[1] for row in rows]
        assert sum(held) == pytest.approx(world * expected_bytes(stage, psi, world, element_size=8), abs=1e-6)
        tensors = len(gpt.tiny().state_dict())
        assert max(held) - min(held) <= 4 * 8 * tensors, "pieces differ by at most one element (4 numbers) a tensor"
        assert all(row[3] for row in rows) == (stage == 3)


def test_expected_bytes_and_bad_stage():
    assert [expected_bytes(stage, 1000, 4) for stage in (0, 1, 2, 3)] == [16000, 10000, 7000, 4000]
    with pytest.raises(ConfigError, match="ZeRO stage must be one of"):
        Zero(torch.nn.Linear(2, 2), lambda shards: Adam(shards), stage=4)
