"""1-bit Adam: equal to Adam on the averaged gradient up to the freeze step (float64); afterwards the momentum
travels as signs plus one scale per tensor and chunk (a 1,000-element float64 vector: 142 bytes instead of the ring's
8,000) and error feedback keeps the running sum of what is sent faithful."""

import pytest
import torch

from nlplab.dist.collectives import Group
from nlplab.dist.data_parallel import shard_batch
from nlplab.dist.launch import spawn
from nlplab.dist.onebit_adam import OneBitAdam, compress, compressed_all_reduce, pack_signs, unpack_signs
from nlplab.errors import ConfigError

FREEZE = 3


def test_signs_pack_into_bits_and_back():
    x = torch.randn(21, dtype=torch.float64)
    x[4] = 0.0
    packed = pack_signs(x)
    assert packed.dtype == torch.uint8 and packed.numel() == 3
    assert torch.equal(unpack_signs(packed, 21, torch.float64), torch.where(x >= 0, 1.0, -1.0).double())


def test_compression_keeps_what_it_drops_as_error():
    x, error = torch.randn(10, dtype=torch.float64), torch.randn(10, dtype=torch.float64)
    before = x + error
    bits, scale = compress(x, error)
    sent = scale * unpack_signs(bits, 10, torch.float64)
    torch.testing.assert_close(sent + error, before)
    torch.testing.assert_close(scale, before.abs().mean().reshape(1))


def one_bit_vs_adam(gpt) -> dict:
    group = Group()
    reference = gpt.tiny()
    reference_optimizer = torch.optim.Adam(reference.parameters(), lr=0.01)
    model = gpt.tiny()
    optimizer = OneBitAdam(model.parameters(), group, freeze_step=FREEZE, lr=0.01)
    differences, sent = [], []
    for ids in gpt.batches(steps=FREEZE + 2):
        reference_optimizer.zero_grad()
        gpt.loss(reference, ids).backward()
        reference_optimizer.step()
        optimizer.zero_grad()
        gpt.loss(model, shard_batch(ids, group.rank, group.size)).backward()
        group.reset_counts()
        optimizer.step()
        sent.append(group.bytes_sent)
        differences.append(max((p - q).abs().max().item() for p, q in zip(model.parameters(), reference.parameters())))
    x = torch.randn(1000, generator=torch.Generator().manual_seed(group.rank), dtype=torch.float64)
    mean = x.clone()
    torch.distributed.all_reduce(mean)
    mean /= group.size
    worker, server = torch.zeros(1000, dtype=torch.float64), torch.zeros(500, dtype=torch.float64)
    group.reset_counts()
    rounds = [compressed_all_reduce(x, worker, server, group)]
    one_round = group.bytes_sent
    rounds = torch.stack(rounds + [compressed_all_reduce(x, worker, server, group) for _ in range(63)])
    running = {k: (rounds[:k].mean(0) - mean).norm().item() for k in (1, 8, 64)}
    return {"differences": differences, "sent": sent, "running": running, "one_round": one_round}


def test_one_bit_adam_is_adam_until_the_freeze_step_then_sends_bits(gpt):
    for rank in spawn(one_bit_vs_adam, 2, gpt):
        assert max(rank["differences"][:FREEZE]) < 1e-12
        assert rank["differences"][FREEZE] > 1e-6, "compression changes the step after the freeze"
        assert rank["sent"][FREEZE - 1] > 15 * rank["sent"][FREEZE], "tiny tensors: the scales weigh"
        assert rank["one_round"] == 2 * (63 + 8), "500 signs in 63 bytes and a float64 scale, each way"
        running = rank["running"]
        assert running[64] < running[8] / 2 < running[1] / 4, \
            "error feedback: the average of the rounds approaches the mean (without it, it would stay at a biased value)"


def test_freeze_step_must_be_positive():
    with pytest.raises(ConfigError, match="freeze_step >= 1"):
        OneBitAdam([torch.nn.Parameter(torch.zeros(1))], None, freeze_step=0)
