"""Per-token rewards, GAE and PPO's clipped losses equal the InstructGPT / GAE formulas written out and the code of
TRL and DeepSpeed-Chat, reproduced here because each is a method of a trainer class:

- TRL's PPOTrainer.compute_rewards and .loss: trl/trainer/ppo_trainer.py at commit 00667e8c8f2fd5f4d067ea36528ebe0d8555a014
  (with trl/core.py at commit 04c7357c7f8d202c11f1b0cee77d19338dde7a75 for masked_mean / clip_by_value);
- DeepSpeed-Chat's DeepSpeedPPOTrainer.compute_rewards, train_rlhf, get_advantages_and_returns, actor_loss_fn and
  critic_loss_fn: applications/DeepSpeed-Chat/dschat/rlhf/ppo_trainer.py of microsoft/DeepSpeedExamples at commit
  3b458596b7d44da6fdc64d93bc056810baa26024;
- DeepSpeed-Chat's ptx step `unsup_coef * outputs.loss` (same file), with a Hugging Face GPT-2's own LM loss.
"""

import pytest
import torch
import torch.nn.functional as F
import transformers
from torch.testing import assert_close

from nlplab.errors import DataError
from nlplab.rlhf import gae, kl_rewards, last_true, masked_whiten, policy_loss, ptx_loss, value_loss

TOL = dict(atol=1e-10, rtol=1e-10)
BETA, GAMMA, LAM = 0.1, 0.99, 0.95


def trl_masked_mean(values, mask):
    return (values * mask).sum() / mask.sum()


def trl_compute_rewards(scores, logprobs, ref_logprobs, masks, kl_coef):
    rewards = []
    for score, logprob, ref_logprob, mask in zip(scores, logprobs, ref_logprobs, masks):
        reward = (-kl_coef * (logprob - ref_logprob)).clone()
        reward[mask.nonzero()[-1]] += score
        rewards.append(reward)
    return torch.stack(rewards)


def trl_advantages(values, rewards, mask, gamma, lam):
    lastgaelam, advantages_reversed, gen_len = 0, [], rewards.shape[-1]
    values, rewards = values * mask, rewards * mask
    for t in reversed(range(gen_len)):
        nextvalues = values[:, t + 1] if t < gen_len - 1 else 0.0
        delta = rewards[:, t] + gamma * nextvalues - values[:, t]
        lastgaelam = delta + gamma * lam * lastgaelam
        advantages_reversed.append(lastgaelam)
    advantages = torch.stack(advantages_reversed[::-1]).transpose(0, 1)
    return advantages, advantages + values


def trl_pg_loss(logprobs, old_logprobs, advantages, mask, cliprange):
    ratio = torch.exp(logprobs - old_logprobs)
    pg_losses = -advantages * ratio
    pg_losses2 = -advantages * torch.clamp(ratio, 1.0 - cliprange, 1.0 + cliprange)
    return (trl_masked_mean(torch.max(pg_losses, pg_losses2), mask),
            trl_masked_mean(torch.gt(pg_losses2, pg_losses).double(), mask))


def trl_vf_loss(vpreds, values, returns, mask, cliprange_value):
    vpredclipped = torch.max(torch.min(vpreds, values + cliprange_value), values - cliprange_value)
    vf_losses1 = (vpreds - returns) ** 2
    vf_losses2 = (vpredclipped - returns) ** 2
    return (0.5 * trl_masked_mean(torch.max(vf_losses1, vf_losses2), mask),
            trl_masked_mean(torch.gt(vf_losses2, vf_losses1).double(), mask))


class DeepSpeedChat:
    """The PPO arithmetic of DeepSpeedPPOTrainer, with its default constants."""

    kl_ctl, clip_reward_value, cliprange, cliprange_value, gamma, lam = 0.1, 5, 0.2, 0.2, 1.0, 0.95

    def compute_rewards(self, prompts, log_probs, ref_log_probs, reward_score, action_mask):
        rewards = -self.kl_ctl * (log_probs - ref_log_probs)
        start = prompts.shape[1] - 1
        ends = start + action_mask[:, start:].sum(1) + 1
        reward_clip = torch.clamp(reward_score, -self.clip_reward_value, self.clip_reward_value)
        for j in range(log_probs.shape[0]):
            rewards[j, start:ends[j]][-1] += reward_clip[j]
        return rewards

    def advantages_of_rollout(self, prompts, log_probs, ref_log_probs, reward_score, values, attention_mask):
        start = prompts.size()[-1] - 1
        action_mask = attention_mask[:, 1:]
        old_values = values.clone()
        old_rewards = self.compute_rewards(prompts, log_probs, ref_log_probs, reward_score, action_mask)
        ends = start + action_mask[:, start:].sum(1) + 1
        for i in range(old_rewards.shape[0]):
            old_rewards[i, ends[i]:] = 0
            old_values[i, ends[i]:] = 0
        return self.get_advantages_and_returns(old_values, old_rewards, start)

    def get_advantages_and_returns(self, values, rewards, start):
        lastgaelam, advantages_reversed, length = 0, [], rewards.size()[-1]
        for t in reversed(range(start, length)):
            nextvalues = values[:, t + 1] if t < length - 1 else 0.0
            delta = rewards[:, t] + self.gamma * nextvalues - values[:, t]
            lastgaelam = delta + self.gamma * self.lam * lastgaelam
            advantages_reversed.append(lastgaelam)
        advantages = torch.stack(advantages_reversed[::-1], dim=1)
        return advantages, advantages + values[:, start:]

    def actor_loss_fn(self, logprobs, old_logprobs, advantages, mask):
        ratio = torch.exp((logprobs - old_logprobs) * mask)
        pg_loss1 = -advantages * ratio
        pg_loss2 = -advantages * torch.clamp(ratio, 1.0 - self.cliprange, 1.0 + self.cliprange)
        return torch.sum(torch.max(pg_loss1, pg_loss2) * mask) / mask.sum()

    def critic_loss_fn(self, values, old_values, returns, mask):
        values_clipped = torch.clamp(values, old_values - self.cliprange_value, old_values + self.cliprange_value)
        vf_loss1 = (values - returns) ** 2
        vf_loss2 = (values_clipped - returns) ** 2
        return 0.5 * torch.sum(torch.max(vf_loss1, vf_loss2) * mask) / mask.sum()


@pytest.fixture
def rollout(rand, make_mask):
    """Response tokens after a 3-token prompt, right-padded to 10 positions: logp, ref_logp, values, scores, mask."""
    mask = make_mask([7, 2, 5, 4], [2, 2, 2, 2], 10)
    return dict(logp=rand(4, 10) - 2, ref_logp=rand(4, 10) - 2, values=rand(4, 10), scores=rand(4, scale=3.0), mask=mask)


def test_last_true_finds_the_last_response_token(make_mask):
    assert last_true(make_mask([7, 2, 1], [2, 0, 9], 10)).tolist() == [8, 1, 9]


@pytest.mark.parametrize("estimator", ["k1", "k3"])
def test_kl_rewards_equal_trl_on_the_mask(rollout, estimator):
    r = rollout
    rewards, kl = kl_rewards(r["scores"], r["logp"], r["ref_logp"], r["mask"], BETA, estimator)
    if estimator == "k1":
        expected = trl_compute_rewards(r["scores"], r["logp"], r["ref_logp"], r["mask"], BETA)
        assert_close(rewards[r["mask"]], expected[r["mask"]], **TOL)
    assert (rewards[~r["mask"]] == 0).all() and (kl[~r["mask"]] == 0).all()
    assert_close(rewards.sum(1) - r["scores"], -BETA * kl.sum(1), **TOL)


def test_kl_rewards_sum_to_instructgpt_objective(rollout):
    """Σ_t r_t = r_θ(x, y) − β log(π(y|x) / π_SFT(y|x)) with the sequence log-probabilities."""
    r = rollout
    rewards, _ = kl_rewards(r["scores"], r["logp"], r["ref_logp"], r["mask"], BETA)
    log_pi, log_sft = (r["logp"] * r["mask"]).sum(1), (r["ref_logp"] * r["mask"]).sum(1)
    assert_close(rewards.sum(1), r["scores"] - BETA * (log_pi - log_sft), **TOL)


def test_kl_rewards_need_a_response_token(rollout):
    mask = rollout["mask"].clone()
    mask[1] = False
    with pytest.raises(DataError, match="without any token"):
        kl_rewards(rollout["scores"], rollout["logp"], rollout["ref_logp"], mask, BETA)


def test_gae_equals_trl_and_whitening_too(rollout, same):
    r = rollout
    rewards, _ = kl_rewards(r["scores"], r["logp"], r["ref_logp"], r["mask"], BETA)
    ours_adv, ours_ret = gae(rewards, r["values"], r["mask"], GAMMA, LAM)
    adv, ret = trl_advantages(r["values"], rewards, r["mask"].double(), GAMMA, LAM)
    m = r["mask"]
    assert_close(ours_adv[m], adv[m], **TOL)
    assert_close(ours_ret[m], ret[m], **TOL)
    assert (ours_adv[~m] == 0).all() and (ours_ret[~m] == 0).all()
    same(lambda v: gae(rewards, v, m, GAMMA, LAM)[1][m], lambda v: trl_advantages(v, rewards, m.double(), GAMMA, LAM)[1][m],
         r["values"])
    centered = adv - trl_masked_mean(adv, m)
    whitened = centered * torch.rsqrt((centered**2 * m).sum() / (m.sum() - 1) + 1e-8)
    assert_close(masked_whiten(ours_adv, m)[m], whitened[m], **TOL)


def test_gae_equals_the_sum_of_discounted_td_errors(rollout):
    """A_t = Σ_l (γλ)^l δ_{t+l}, δ_s = r_s + γ V_{s+1} − V_s, V after the last token 0; λ = γ = 1 gives
    A_t = Σ_{s≥t} r_s − V_t, λ = 0 gives A_t = δ_t."""
    r = rollout
    rewards = r["logp"]
    for gamma, lam in [(GAMMA, LAM), (1.0, 1.0), (0.9, 0.0)]:
        advantages, returns = gae(rewards, r["values"], r["mask"], gamma, lam)
        for b in range(4):
            steps = r["mask"][b].nonzero().flatten().tolist()
            v = {s: r["values"][b, s] for s in steps}
            delta = {s: rewards[b, s] + gamma * v.get(s + 1, 0.0) - v[s] for s in steps}
            for t in steps:
                expected = sum((gamma * lam) ** (s - t) * delta[s] for s in steps if s >= t)
                assert_close(advantages[b, t], expected, **TOL)
                assert_close(returns[b, t], expected + v[t], **TOL)
                if gamma == lam == 1.0:
                    assert_close(advantages[b, t], sum(rewards[b, s] for s in steps if s >= t) - v[t], **TOL)


def test_rewards_and_gae_equal_deepspeed_chat(rand):
    """DeepSpeed-Chat rewards the step after the last real response token (its pad is the end-of-text token, so
    that step emits the end); the equivalent mask covers the response tokens and that step."""
    ds = DeepSpeedChat()
    prompt_len, total = 5, 12
    n = torch.tensor([7, 3, 5, 2])
    attention_mask = torch.ones(4, total, dtype=torch.long)
    attention_mask[:, prompt_len:] = (torch.arange(total - prompt_len) < n[:, None]).long()
    prompts = torch.zeros(4, prompt_len, dtype=torch.long)
    logp, ref_logp, values = rand(4, total - 1) - 2, rand(4, total - 1) - 2, rand(4, total - 1)
    scores = torch.tensor([7.5, -1.0, 2.0, -9.0], dtype=torch.float64)
    start = prompt_len - 1
    ds_adv, ds_ret = ds.advantages_of_rollout(prompts, logp, ref_logp, scores, values, attention_mask)
    positions = torch.arange(total - 1)
    mask = (positions >= start) & (positions <= torch.clamp(start + n, max=total - 2)[:, None])
    rewards, _ = kl_rewards(scores, logp, ref_logp, mask, ds.kl_ctl, score_clip=ds.clip_reward_value)
    advantages, returns = gae(rewards, values, mask, ds.gamma, ds.lam)
    assert_close(advantages[:, start:], ds_adv, **TOL)
    assert_close(returns[:, start:], ds_ret, **TOL)


@pytest.mark.parametrize("clip", [0.2, 0.05])
def test_policy_loss_equals_trl_and_deepspeed_chat(rand, same, make_mask, clip):
    mask = make_mask([6, 3, 8], [1, 4, 0], 9)
    old_logp, advantages = rand(3, 9) - 2, rand(3, 9)
    logp = old_logp + rand(3, 9, scale=0.3)
    same(lambda lp: policy_loss(lp, old_logp, advantages, mask, clip)[0],
         lambda lp: trl_pg_loss(lp, old_logp, advantages, mask.double(), clip)[0], logp)
    assert_close(policy_loss(logp, old_logp, advantages, mask, clip)[1],
                 trl_pg_loss(logp, old_logp, advantages, mask.double(), clip)[1], **TOL)
    ds = DeepSpeedChat()
    ds.cliprange = clip
    same(lambda lp: policy_loss(lp, old_logp, advantages, mask, clip)[0],
         lambda lp: ds.actor_loss_fn(lp, old_logp, advantages, mask.double()), logp)
    assert 0 < policy_loss(logp, old_logp, advantages, mask, clip)[1] < 1


def test_policy_loss_at_the_old_policy_is_minus_the_mean_advantage(rand, make_mask):
    mask = make_mask([6, 3], [1, 4], 9)
    logp, advantages = rand(2, 9), rand(2, 9)
    loss, clipped = policy_loss(logp, logp.clone(), advantages, mask)
    assert_close(loss, -advantages[mask].mean(), **TOL)
    assert clipped == 0


@pytest.mark.parametrize("clip", [0.2, None])
def test_value_loss_equals_trl_and_deepspeed_chat(rand, same, make_mask, clip):
    mask = make_mask([6, 3, 8], [1, 4, 0], 9)
    old_values, returns = rand(3, 9), rand(3, 9)
    values = old_values + rand(3, 9, scale=0.4)
    if clip is None:
        same(lambda v: value_loss(v, old_values, returns, mask, None)[0],
             lambda v: 0.5 * ((v - returns) ** 2)[mask].mean(), values)
        return
    same(lambda v: value_loss(v, old_values, returns, mask, clip)[0],
         lambda v: trl_vf_loss(v, old_values, returns, mask.double(), clip)[0], values)
    assert_close(value_loss(values, old_values, returns, mask, clip)[1],
                 trl_vf_loss(values, old_values, returns, mask.double(), clip)[1], **TOL)
    same(lambda v: value_loss(v, old_values, returns, mask, clip)[0],
         lambda v: DeepSpeedChat().critic_loss_fn(v, old_values, returns, mask.double()), values)


def test_ptx_loss_is_the_coefficient_times_the_lm_loss(rand, same):
    """DeepSpeed-Chat's ptx step is unsup_coef · the model's own LM loss (a Hugging Face GPT-2 here, which
    computes it in float32), and equals the cross-entropy of the kept next tokens."""
    torch.manual_seed(0)
    config = transformers.GPT2Config(n_layer=1, n_embd=16, n_head=2, vocab_size=30, n_positions=16)
    model = transformers.GPT2LMHeadModel(config).double().eval()
    ids = torch.randint(0, 30, (3, 10), generator=torch.Generator().manual_seed(2))
    labels = ids.clone()
    labels[0, :4] = -100
    labels[2, 7:] = -100
    with torch.no_grad():
        out = model(ids, labels=labels)
    ours = ptx_loss(out.logits[:, :-1], labels[:, 1:], coef=0.7)
    assert abs(ours.item() - 0.7 * out.loss.item()) < 1e-6
    targets = labels[:, 1:]
    same(lambda z: ptx_loss(z, targets, 0.7),
         lambda z: 0.7 * F.cross_entropy(z.flatten(0, 1), targets.flatten(), ignore_index=-100), out.logits[:, :-1])
