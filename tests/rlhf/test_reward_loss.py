"""The reward model's loss equals InstructGPT's formula written out, TRL's RewardTrainer.compute_loss (trl 1.16.0,
trl/trainer/reward_trainer.py, reproduced: it is a method of the trainer) and OpenRLHF's PairWiseLoss
(openrlhf/models/loss.py at commit 09f5acefb8968169b5f6013433b95b98f0db985c), forward and gradient."""

import itertools
import math

import pytest
import torch
import torch.nn.functional as F
from torch.testing import assert_close

from nlplab.errors import ConfigError, DataError
from nlplab.rlhf import pairwise_accuracy, pairwise_loss, ranking_loss


def trl_reward_loss(rewards_chosen, rewards_rejected, margin=None):
    if margin is not None:
        return -F.logsigmoid(rewards_chosen - rewards_rejected - margin).mean()
    return -F.logsigmoid(rewards_chosen - rewards_rejected).mean()


def openrlhf_pairwise_loss(chosen_reward, reject_reward, margin=None):
    if margin is not None:
        loss = -F.logsigmoid(chosen_reward - reject_reward - margin)
    else:
        loss = -F.logsigmoid(chosen_reward - reject_reward)
    return loss.mean()


def test_pairwise_loss_equals_trl_and_openrlhf(rand, same):
    chosen, rejected = rand(16, scale=2.0), rand(16, scale=2.0)
    same(pairwise_loss, trl_reward_loss, chosen, rejected)
    same(pairwise_loss, openrlhf_pairwise_loss, chosen, rejected)


def test_pairwise_loss_with_margins_equals_trl(rand, same):
    chosen, rejected, margin = rand(16, scale=2.0), rand(16, scale=2.0), rand(16).abs()
    same(pairwise_loss, trl_reward_loss, chosen, rejected, margin)
    same(lambda c, r: pairwise_loss(c, r, 0.5), lambda c, r: trl_reward_loss(c, r, torch.full_like(c, 0.5)), chosen, rejected)


def test_pairwise_loss_is_the_bradley_terry_negative_log_likelihood(rand, same):
    chosen, rejected = rand(8), rand(8)
    same(lambda c, r: pairwise_loss(c, r, reduction="none"), lambda c, r: -torch.log(torch.sigmoid(c - r)), chosen, rejected)
    with pytest.raises(ConfigError, match="reduction"):
        pairwise_loss(chosen, rejected, reduction="sum")


def instructgpt_loss(scores, counts, margin=0.0):
    """−1/C(K,2) Σ_{i<j} log σ(r(x, y_i) − r(x, y_j) − margin) per prompt (answers best first), mean over prompts."""
    per_prompt = []
    for row, k in zip(scores, counts):
        pairs = list(itertools.combinations(range(k), 2))
        assert len(pairs) == math.comb(k, 2)
        per_prompt.append(-sum(torch.log(torch.sigmoid(row[i] - row[j] - margin)) for i, j in pairs) / math.comb(k, 2))
    return torch.stack(per_prompt).mean()


@pytest.mark.parametrize("margin", [0.0, 0.3])
def test_ranking_loss_equals_instructgpt_formula_with_uneven_k(rand, same, margin):
    counts = [4, 9, 2, 6]
    scores = rand(4, 9, scale=2.0)
    valid = torch.arange(9) < torch.tensor(counts)[:, None]
    same(lambda s: ranking_loss(s, valid, margin), lambda s: instructgpt_loss(s, counts, margin), scores)


def test_ranking_loss_with_equal_k_is_trl_loss_over_all_pairs(rand, same):
    scores = rand(5, 4, scale=2.0)
    pairs = list(itertools.combinations(range(4), 2))
    expanded = lambda s: trl_reward_loss(s[:, [i for i, _ in pairs]].flatten(), s[:, [j for _, j in pairs]].flatten())
    same(ranking_loss, expanded, scores)


def test_ranking_loss_needs_two_answers_per_prompt(rand):
    with pytest.raises(DataError, match="at least 2 answers"):
        ranking_loss(rand(2, 3), torch.tensor([[True, True, False], [True, False, False]]))


def test_pairwise_accuracy_counts_ties_as_wrong():
    chosen, rejected = torch.tensor([1.0, 2.0, 0.5, 3.0]), torch.tensor([0.0, 2.0, 1.0, -1.0])
    assert_close(pairwise_accuracy(chosen, rejected), torch.tensor(0.5))
