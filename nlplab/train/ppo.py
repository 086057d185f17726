"""PPO on a causal LM with the KL penalty and the pre-training mix (InstructGPT's third stage, PPO-ptx); the formulas
are those of `nlplab.rlhf`.

Each rollout samples one response to each of rollout_size prompts from the policy π (temperature 1, at most
max_new_tokens, ending at eos) and scores it, without gradients:
    r(x, y)      the reward model's score (`reward_model`, a reward run) at the response's last token
    kl_t         log π(y_t) − log π_ref(y_t) (kl_estimator k1; or k2, k3), π_ref the frozen starting policy
    r_t          −β·kl_t, plus r(x, y) at the last token                               (`kl_rewards`)
    A_t, R_t     GAE(γ, λ) over r_t and the value model's V_t (`gae`); A whitened over the rollout
Then ppo_epochs passes over the rollout, in shuffled mini-batches of batch_size, take one optimizer step each on
    loss = L_clip(ε = clip_range) + vf_coef · L_V(value_clip) + ptx_coef · NLL(batch_size windows of ptx_data)
The value model starts as a copy of the reward model (as in InstructGPT); policy and value model form one module
(`ActorCritic`) stepped by one optimizer. With kl_target, β adapts after each rollout (Ziegler et al. 2019).
Dropout is off in both, so that π/π_old is exactly 1 at the first step of each rollout.

An epoch is a pass over the training prompts in rollouts (the last rollout wraps round to the first prompts). The
run keeps the epoch with the best mean reward on the dev prompts (one sample each, seed fixed) and writes a line
per rollout to rollouts.jsonl: mean reward, mean KL per response (Σ_t log π/π_ref, whatever the estimator of the
penalty), β, mean response length — the reward-against-KL curve. A checkpoint holds the rollout under way, the KL
controller, the sampling generator and that log, so that --resume continues exactly.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator, Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from nlplab.data.batching import Batch, num_batches
from nlplab.data.corpora import load_corpus
from nlplab.data.preferences import Row, load_prompts, padded_rows, rollout_batch
from nlplab.errors import ConfigError, DataError
from nlplab.generate.causal import sampling_on_cpu
from nlplab.generate.decoding import collect, sampler, stream
from nlplab.io import atomic_write_text
from nlplab.models.lm import response_logprobs
from nlplab.models.reward import ActorCritic, RewardModel
from nlplab.rlhf import gae, kl_controller, kl_rewards, masked_whiten, policy_loss, ptx_loss, value_loss
from nlplab.runtime import evaluating, to_device
from nlplab.train.config import TrainConfig
from nlplab.train.lm import encode_stream, windows
from nlplab.train.reward import load_reward_run
from nlplab.train.stage import StageTask

ROLLOUT_KEYS = ("ids", "response_mask", "old_logp", "old_values", "advantages", "returns", "scores", "kl")
"""The per-sample tensors of a rollout that its mini-batches slice."""


@torch.no_grad()
def sample_rows(policy: nn.Module, prompts: Sequence[list[int]], max_new_tokens: int, window: int, eos: int,
                generator: torch.Generator, device: torch.device) -> list[Row]:
    """One response to each prompt (ids), sampled at temperature 1 from `policy` (in eval mode) with `generator`,
    as rows (prompt + response ids, prompt length): a response ends at its first eos (kept) or after
    max_new_tokens, and prompt and response fit `window` tokens. Prompts of one length are sampled together."""
    by_length: dict[int, list[int]] = {}
    for i, prompt in enumerate(prompts):
        by_length.setdefault(len(prompt), []).append(i)
    rows: list[Row] = [([], 0)] * len(prompts)
    pick = sampling_on_cpu(sampler(generator=generator))
    for length, members in by_length.items():
        prompt = torch.tensor([prompts[i] for i in members], device=device)
        responses = collect(stream(policy, prompt, min(max_new_tokens, window - length), eos, pick))
        cut = rollout_batch(prompt.cpu(), responses.cpu(), eos, pad_id=eos)
        for j, i in enumerate(members):
            rows[i] = (cut["ids"][j, : cut["lengths"][j]].tolist(), length)
    return rows


class PPOTask(StageTask):
    """Prompts -> responses the reward model prefers, within a KL budget; see the module docstring."""

    keeps_dropout = False
    metric, mode = "reward", "max"

    def __init__(self, cfg: TrainConfig, run_dir: Path, resume: bool, device: torch.device) -> None:
        super().__init__(cfg, run_dir, resume, device)
        reward, reward_tokenizer, reward_shape = load_reward_run(cfg.reward_model)
        if reward_tokenizer.vocab != self.tokenizer.vocab:
            raise ConfigError(f"--reward-model {cfg.reward_model} and --init-from {cfg.init_from} have different "
                              "tokenizers; train the reward model from the policy's own LM or SFT run")
        self.reward_model = reward.requires_grad_(False).to(device)
        self.reference = copy.deepcopy(self.start.model).requires_grad_(False).eval().to(device)
        self.value_shape = replace(reward_shape, dropout=0.0, impl=cfg.impl)
        value = RewardModel.build(self.value_shape)
        value.load_state_dict(reward.state_dict())
        self.model = ActorCritic(self.start.model, value).to(device)
        self.data = load_prompts(cfg.data, cfg.dev, cfg.max_chars)
        self.prompts = {split: [self.prompt_ids(p) for p in self.data.split(split)] for split in ("train", "dev", "test")}
        empty = [split for split, prompts in self.prompts.items() if not prompts]
        if empty:
            raise DataError(f"{cfg.data}: no prompts in the {' and '.join(empty)} split; give more prompts or a --dev file")
        self.ptx_windows = self.pretraining_windows() if cfg.ptx_coef > 0 else []
        self.kl = kl_controller(cfg.beta, cfg.kl_target, cfg.kl_horizon)
        self.generator = torch.Generator().manual_seed(cfg.seed)
        self.current: dict[str, Any] | None = None
        self.resumed: dict[str, Any] | None = None
        self.rollouts: list[dict[str, float]] = []

    def prompt_ids(self, prompt: str) -> list[int]:
        ids = [self.eos, *self.tokenizer.encode(prompt)]
        if len(ids) >= self.cfg.window_size:
            raise DataError(f"the prompt {prompt[:30]!r} takes {len(ids)} tokens and leaves no room for a response "
                            f"within --window-size {self.cfg.window_size}; shorten it or raise the window")
        return ids

    def pretraining_windows(self) -> list[Tensor]:
        """The ptx_data training split as windows of window_size + 1 tokens (inputs and next tokens)."""
        stream_ids = encode_stream(self.tokenizer, load_corpus(self.cfg.ptx_data).train)
        full = [w for w in windows(stream_ids, self.cfg.window_size) if len(w) == self.cfg.window_size + 1]
        if not full:
            raise ConfigError(f"--ptx-data {self.cfg.ptx_data} has fewer than window_size + 1 tokens of training text")
        return full

    def model_json(self) -> dict[str, Any]:
        return {"model": "gpt", "policy": asdict(self.start.shape), "value": asdict(self.value_shape)}

    def steps_per_rollout(self) -> int:
        return self.cfg.ppo_epochs * num_batches(self.cfg.rollout_size, self.cfg.batch_size)

    def rollouts_per_epoch(self) -> int:
        return num_batches(len(self.prompts["train"]), self.cfg.rollout_size)

    def num_train_batches(self) -> int:
        return self.rollouts_per_epoch() * self.steps_per_rollout()

    def experience(self, prompts: Sequence[list[int]], generator: torch.Generator) -> tuple[Batch, Tensor, Tensor, Tensor]:
        """Responses sampled to `prompts` and scored, in eval mode without gradients (inside `evaluating`): the padded
        rows on the device, log π and log π_ref of the response tokens (B, T − 1), the reward model's scores (B,)."""
        rows = sample_rows(self.model.policy, prompts, self.cfg.max_new_tokens, self.cfg.window_size, self.eos, generator,
                           self.device)
        batch = to_device(padded_rows(rows, self.tokenizer.pad_id), self.device)
        logp, _ = response_logprobs(self.model.policy, batch["ids"], batch["response_mask"])
        ref_logp, _ = response_logprobs(self.reference, batch["ids"], batch["response_mask"])
        return batch, logp, ref_logp, self.reward_model.score(batch["ids"], batch["lengths"]).float()

    def rollout(self, index: int, prompts: Sequence[list[int]]) -> dict[str, Any]:
        """Sample, score and estimate advantages for one rollout; log it and adapt β. Also draws the mini-batch order
        of each PPO epoch and the ptx windows of each step, so that the rollout alone says what its steps see."""
        cfg = self.cfg
        with evaluating(self.model):
            batch, old_logp, ref_logp, scores = self.experience(prompts, self.generator)
            ids, mask = batch["ids"], batch["response_mask"][:, 1:]
            old_values = self.model.value(ids)[:, :-1].float()
            rewards, _ = kl_rewards(scores, old_logp, ref_logp, mask, self.kl.value, cfg.kl_estimator)
            advantages, returns = gae(rewards, old_values, mask, cfg.gamma, cfg.lam)
            advantages = masked_whiten(advantages, mask)
        kl = (old_logp - ref_logp).where(mask, 0).sum(1)
        self.rollouts.append({"rollout": len(self.rollouts) + 1, "reward": scores.mean().item(), "kl": kl.mean().item(),
                              "beta": self.kl.value, "length": mask.sum(1).float().mean().item()})
        atomic_write_text(self.run_dir / "rollouts.jsonl", "".join(json.dumps(r) + "\n" for r in self.rollouts))
        self.kl.update(kl.mean().item(), len(prompts))
        n = len(prompts)
        current = {"index": index, "ids": ids, "response_mask": batch["response_mask"], "old_logp": old_logp,
                   "old_values": old_values, "advantages": advantages, "returns": returns, "scores": scores, "kl": kl,
                   "order": torch.stack([torch.randperm(n, generator=self.generator) for _ in range(cfg.ppo_epochs)])}
        if self.ptx_windows:
            current["ptx"] = torch.randint(len(self.ptx_windows), (self.steps_per_rollout(), cfg.batch_size),
                                           generator=self.generator)
        return current

    def minibatches(self, rollout: dict[str, Any]) -> Iterator[Batch]:
        step = 0
        for order in rollout["order"]:
            for rows in order.split(self.cfg.batch_size):
                batch = {key: rollout[key][rows.to(rollout[key].device)] for key in ROLLOUT_KEYS}
                if "ptx" in rollout:
                    batch["ptx"] = torch.stack([self.ptx_windows[j] for j in rollout["ptx"][step].tolist()])
                step += 1
                yield batch

    def train_batches(self, generator: torch.Generator) -> Iterator[Batch]:
        """Rollout after rollout, each followed by its mini-batches. After a resume, the rollouts the checkpoint had
        finished give empty placeholders (the loop skips their steps) and the one under way comes back whole."""
        prompts, size = self.prompts["train"], self.cfg.rollout_size
        order = torch.randperm(len(prompts), generator=generator).tolist()
        resumed, self.resumed = self.resumed, None
        for r in range(self.rollouts_per_epoch()):
            if resumed is not None and r < resumed["index"]:
                yield from ({} for _ in range(self.steps_per_rollout()))
                continue
            if resumed is not None and r == resumed["index"]:
                self.current = to_device(resumed, self.device)
            else:
                self.current = self.rollout(r, [prompts[order[(r * size + i) % len(prompts)]] for i in range(size)])
            yield from self.minibatches(self.current)
        self.current = None

    def step(self, batch: Batch) -> tuple[Tensor, int, dict[str, float]]:
        cfg, mask = self.cfg, batch["response_mask"][:, 1:]
        logp, _ = response_logprobs(self.model.policy, batch["ids"], batch["response_mask"])
        pg, clipped = policy_loss(logp, batch["old_logp"], batch["advantages"], mask, cfg.clip_range)
        values = self.model.value(batch["ids"])[:, :-1].float()
        vf, _ = value_loss(values, batch["old_values"], batch["returns"], mask, cfg.value_clip)
        loss, n = pg + cfg.vf_coef * vf, len(batch["ids"])
        extra = {"reward": batch["scores"].sum().item(), "kl": batch["kl"].sum().item(), "policy_loss": pg.item() * n,
                 "value_loss": vf.item() * n, "clip_fraction": clipped.item() * n}
        if "ptx" in batch:
            logits, _ = self.model.policy(batch["ptx"][:, :-1])
            ptx = ptx_loss(logits.float(), batch["ptx"][:, 1:], cfg.ptx_coef)
            loss = loss + ptx
            extra["ptx_loss"] = ptx.item() / cfg.ptx_coef * n
        return loss, n, extra

    def evaluate(self, split: str) -> dict[str, float]:
        """Mean reward, KL per response to the reference and response length over one sample per prompt of a split
        (sampled with the run's seed, so every epoch is judged on the same draws)."""
        prompts, generator = self.prompts[split], torch.Generator().manual_seed(self.cfg.seed)
        sums = {"reward": 0.0, "kl": 0.0, "length": 0.0}
        with evaluating(self.model):
            for start in range(0, len(prompts), self.cfg.rollout_size):
                batch, logp, ref_logp, scores = self.experience(prompts[start : start + self.cfg.rollout_size], generator)
                mask = batch["response_mask"][:, 1:]
                sums["reward"] += scores.sum().item()
                sums["kl"] += (logp - ref_logp).where(mask, 0).sum().item()
                sums["length"] += mask.sum().item()
        return {**{k: v / len(prompts) for k, v in sums.items()}, "prompts": len(prompts)}

    def validate(self) -> dict[str, float]:
        val = self.evaluate("dev")
        return {k: val[k] for k in ("reward", "kl", "length")}

    def describe(self) -> dict[str, Any]:
        return {"notes": self.data.notes, "prompts": {s: len(self.prompts[s]) for s in self.prompts},
                "rollouts": len(self.rollouts), "final_beta": self.kl.value}

    def state_dict(self) -> dict[str, Any]:
        state = {"kl": self.kl.state_dict(), "generator": self.generator.get_state(), "rollouts": self.rollouts}
        if self.current is not None:
            state["current"] = self.current
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.kl.load_state_dict(state["kl"])
        self.generator.set_state(state["generator"])
        self.rollouts = state["rollouts"]
        self.resumed = state.get("current")
