"""The pieces fit into the three stages: a few steps of each on a tiny GPT and made-up tokens move what the stage
optimises. Prompt [bos, 3]; answers made of token 5 are the wanted ones, answers of token 6 the others."""

import copy
import random

import torch

from nlplab.data.preferences import encode_row, preference_batch, rollout_batch
from nlplab.generate.decoding import sample
from nlplab.models.lm import LMConfig, build_lm, response_logprobs
from nlplab.models.reward import RewardModel
from nlplab.rlhf import (
    dpo_loss,
    gae,
    kl_rewards,
    masked_mean,
    masked_whiten,
    pairwise_accuracy,
    pairwise_loss,
    policy_loss,
    ptx_loss,
    value_loss,
)

BOS, EOS, PAD, PROMPT, GOOD, BAD = 1, 2, 0, 3, 5, 6
CFG = LMConfig(model="gpt", vocab_size=12, block_size=16, hidden_size=16, layers=1, heads=2, dropout=0.0)


def pairs(n, seed):
    rng = random.Random(seed)
    filler = lambda: [rng.choice([7, 8, 9]) for _ in range(rng.randint(0, 2))]
    chosen = [encode_row([PROMPT], filler() + [GOOD] * rng.randint(1, 3), BOS, EOS) for _ in range(n)]
    rejected = [encode_row([PROMPT], filler() + [BAD] * rng.randint(1, 3), BOS, EOS) for _ in range(n)]
    return preference_batch(chosen, rejected, PAD)


def test_reward_model_learns_the_preference():
    torch.manual_seed(0)
    model = RewardModel.build(CFG)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    train, held_out = pairs(32, 0), pairs(32, 1)
    before = pairwise_accuracy(*model.score(held_out["ids"], held_out["lengths"]).chunk(2))
    for _ in range(30):
        chosen, rejected = model.score(train["ids"], train["lengths"]).chunk(2)
        loss = pairwise_loss(chosen, rejected, train["margin"])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    after = pairwise_accuracy(*model.score(held_out["ids"], held_out["lengths"]).chunk(2))
    assert before < 0.9 and after == 1.0 and loss < 0.1


def test_ppo_raises_the_reward_within_a_kl_budget():
    """Rollouts, rewards with the KL penalty, GAE, whitened advantages, two epochs of mini-batches of the clipped
    losses plus the ptx term; the score is the share of GOOD tokens in the response."""
    torch.manual_seed(0)
    policy = build_lm(CFG)
    reference = copy.deepcopy(policy).eval()
    critic = RewardModel.build(CFG)
    optimizer = torch.optim.Adam([*policy.parameters(), *critic.parameters()], lr=3e-3)
    generator = torch.Generator().manual_seed(0)
    prompts = torch.tensor([[BOS, PROMPT]] * 32)
    pretraining = torch.randint(7, 10, (8, 9), generator=generator)
    mean_scores = []
    for _ in range(12):
        with torch.no_grad():
            policy.eval()
            batch = rollout_batch(prompts, sample(policy, prompts, 6, EOS, generator=generator), EOS, PAD)
            ids, mask = batch["ids"], batch["response_mask"][:, 1:]
            scores = ((ids == GOOD) & batch["response_mask"]).sum(1) / batch["response_mask"].sum(1)
            old_logp, _ = response_logprobs(policy, ids, batch["response_mask"])
            ref_logp, _ = response_logprobs(reference, ids, batch["response_mask"])
            old_values = critic(ids)[:, :-1]
            rewards, kl = kl_rewards(scores, old_logp, ref_logp, mask, beta=0.05)
            advantages, returns = gae(rewards, old_values, mask, gamma=1.0, lam=0.95)
            advantages = masked_whiten(advantages, mask)
        mean_scores.append(scores.mean().item())
        policy.train()
        for _ in range(2):
            for rows in torch.randperm(32, generator=generator).split(16):
                logp, _ = response_logprobs(policy, ids[rows], batch["response_mask"][rows])
                pg, _ = policy_loss(logp, old_logp[rows], advantages[rows], mask[rows])
                vf, _ = value_loss(critic(ids[rows])[:, :-1], old_values[rows], returns[rows], mask[rows])
                logits, _ = policy(pretraining[:, :-1])
                loss = pg + 0.1 * vf + ptx_loss(logits, pretraining[:, 1:], coef=0.1)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
    assert mean_scores[-1] > mean_scores[0] + 0.3
    assert 0 < masked_mean(kl, mask) < 2


def test_dpo_widens_the_implicit_reward_margin():
    torch.manual_seed(0)
    policy = build_lm(CFG)
    reference = copy.deepcopy(policy).eval()
    optimizer = torch.optim.Adam(policy.parameters(), lr=1e-2)
    train = pairs(32, 0)
    with torch.no_grad():
        ref_chosen, ref_rejected = response_logprobs(reference, train["ids"], train["response_mask"])[0].sum(1).chunk(2)
    for _ in range(20):
        chosen, rejected = response_logprobs(policy, train["ids"], train["response_mask"])[0].sum(1).chunk(2)
        losses, chosen_rewards, rejected_rewards = dpo_loss(chosen, rejected, ref_chosen, ref_rejected, beta=0.5)
        optimizer.zero_grad()
        losses.mean().backward()
        optimizer.step()
    assert pairwise_accuracy(chosen_rewards, rejected_rewards) == 1.0
    assert (chosen_rewards - rejected_rewards).mean() > 1.0
