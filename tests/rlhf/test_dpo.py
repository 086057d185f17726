"""The DPO loss equals the paper's formula written out, TRL's DPOTrainer (trl 1.16.0, trl/trainer/dpo_trainer.py,
`_compute_loss`, reproduced: it is a method of the trainer; and the original `dpo_loss` at commit
9d58faa767ee18f52217b32b82d75807c8ce404a) and OpenRLHF's DPOLoss (openrlhf/models/loss.py at commit
09f5acefb8968169b5f6013433b95b98f0db985c: label smoothing and IPO), forward and gradient."""

import pytest
import torch
import torch.nn.functional as F
from torch.testing import assert_close

from nlplab.errors import ConfigError
from nlplab.rlhf import dpo_loss


def trl_dpo(chosen_logps, rejected_logps, ref_chosen_logps, ref_rejected_logps, beta, loss_type="sigmoid",
            completion_mask=None):
    chosen_scores = chosen_logps - ref_chosen_logps
    rejected_scores = rejected_logps - ref_rejected_logps
    delta_score = chosen_scores - rejected_scores
    if loss_type == "sigmoid":
        return -F.logsigmoid(beta * delta_score)
    chosen_mask, rejected_mask = completion_mask.chunk(2, dim=0)
    chosen_avg_score = chosen_scores / chosen_mask.sum(dim=1).clamp(min=1.0)
    rejected_avg_score = rejected_scores / rejected_mask.sum(dim=1).clamp(min=1.0)
    return (chosen_avg_score - rejected_avg_score - 1 / (2 * beta)) ** 2


def openrlhf_dpo(policy_chosen_logps, policy_rejected_logps, reference_chosen_logps, reference_rejected_logps, beta,
                 label_smoothing=0.0, ipo=False):
    logits = (policy_chosen_logps - policy_rejected_logps) - (reference_chosen_logps - reference_rejected_logps)
    if ipo:
        return (logits - 1 / (2 * beta)) ** 2
    return -F.logsigmoid(beta * logits) * (1 - label_smoothing) - F.logsigmoid(-beta * logits) * label_smoothing


@pytest.fixture
def logps(rand):
    return [rand(12, scale=5.0) - 30 for _ in range(4)]


@pytest.mark.parametrize("beta", [0.1, 0.5])
def test_sigmoid_equals_the_paper_trl_and_openrlhf(logps, same, beta):
    ours = lambda *x: dpo_loss(*x, beta=beta)[0]
    paper = lambda pc, pr, rc, rr: -torch.log(torch.sigmoid(beta * (pc - rc) - beta * (pr - rr)))
    same(ours, paper, *logps)
    same(ours, lambda *x: trl_dpo(*x, beta), *logps)
    same(ours, lambda *x: openrlhf_dpo(*x, beta), *logps)


def test_label_smoothing_equals_openrlhf(logps, same):
    same(lambda *x: dpo_loss(*x, beta=0.2, label_smoothing=0.1)[0], lambda *x: openrlhf_dpo(*x, 0.2, 0.1), *logps)


def test_ipo_equals_openrlhf_and_trl_on_per_token_averages(logps, same):
    same(lambda *x: dpo_loss(*x, beta=0.3, loss_type="ipo")[0], lambda *x: openrlhf_dpo(*x, 0.3, ipo=True), *logps)
    lengths = torch.randint(1, 20, (24,), generator=torch.Generator().manual_seed(3))
    completion_mask = (torch.arange(20) < lengths[:, None]).double()
    n_chosen, n_rejected = lengths[:12].double(), lengths[12:].double()
    averaged = lambda pc, pr, rc, rr: dpo_loss(pc / n_chosen, pr / n_rejected, rc / n_chosen, rr / n_rejected, 0.3, "ipo")[0]
    same(averaged, lambda *x: trl_dpo(*x, 0.3, "ipo", completion_mask), *logps)


def test_implicit_rewards_are_beta_times_the_log_ratios(logps):
    _, chosen, rejected = dpo_loss(*logps, beta=0.25)
    assert_close(chosen, 0.25 * (logps[0] - logps[2]))
    assert_close(rejected, 0.25 * (logps[1] - logps[3]))
    assert not chosen.requires_grad


def test_bad_options():
    x = torch.zeros(2)
    with pytest.raises(ConfigError, match="beta"):
        dpo_loss(x, x, x, x, beta=0.0)
    with pytest.raises(ConfigError, match="label_smoothing"):
        dpo_loss(x, x, x, x, label_smoothing=0.5)
    with pytest.raises(ConfigError, match="sigmoid loss only"):
        dpo_loss(x, x, x, x, loss_type="ipo", label_smoothing=0.1)
    with pytest.raises(ConfigError, match="sigmoid, ipo"):
        dpo_loss(x, x, x, x, loss_type="hinge")
