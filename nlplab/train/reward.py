"""The reward model (InstructGPT's second stage): the starting LM's body with a scalar head, trained on preference
pairs with the pairwise loss of `nlplab.rlhf.reward`:

    loss = −mean log σ(r(x, y_w) − r(x, y_l) − m)          m the pair's margin (0 unless the data gives one)

r(x, y) is read at the last real token of [eos] x y [eos] (`RewardModel.score`). The run selects the epoch with the
best dev accuracy (the share of pairs with r(x, y_w) > r(x, y_l)); PPO's reward and value models load from it.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from nlplab.data.batching import Batch
from nlplab.errors import ConfigError
from nlplab.models.lm import LMConfig
from nlplab.models.reward import RewardModel
from nlplab.rlhf import pairwise_loss
from nlplab.text import Tokenizer, load_tokenizer
from nlplab.train.checkpoint import WEIGHTS, load_weights, run_json
from nlplab.train.config import TrainConfig
from nlplab.train.stage import PreferenceTask
from nlplab.train.trainer import run_config


class RewardTask(PreferenceTask):
    """Preference pairs -> a scalar reward per (prompt, response); see the module docstring."""

    def __init__(self, cfg: TrainConfig, run_dir: Path, resume: bool, device: torch.device) -> None:
        super().__init__(cfg, run_dir, resume, device)
        torch.manual_seed(cfg.seed)
        self.model = RewardModel(self.start.model).to(device)

    def pair_figures(self, batch: Batch) -> tuple[Tensor, Tensor, Tensor]:
        return reward_figures(self.model, batch)


def reward_figures(model: RewardModel, batch: Batch) -> tuple[Tensor, Tensor, Tensor]:
    """(pairwise losses (N,), r(x, y_w) (N,), r(x, y_l) (N,)) of a preference batch; the scores detached."""
    chosen, rejected = model.score(batch["ids"], batch["lengths"]).float().chunk(2)
    return pairwise_loss(chosen, rejected, batch["margin"], reduction="none"), chosen.detach(), rejected.detach()


def load_reward_run(run_dir: str | Path, option: str = "--reward-model") -> tuple[RewardModel, Tokenizer, LMConfig]:
    """The reward model of a `--task reward` run (its best weights, eval mode, on the CPU), its tokenizer and the
    shape of its body; `option` names where the path came from in errors."""
    folder = Path(run_dir)
    if not (folder / "config.yaml").is_file():
        raise ConfigError(f"{option} {folder}: not a run directory (no config.yaml); give the --out of `nlplab train "
                          "--task reward`")
    cfg = run_config(folder)
    if cfg.task != "reward":
        raise ConfigError(f"{option} {folder}: a {cfg.task} run, not a reward run; give the --out of `nlplab train "
                          "--task reward`")
    shape = LMConfig(**run_json(folder, "model.json"))
    model = load_weights(folder / WEIGHTS, RewardModel.build(shape)).eval()
    return model, load_tokenizer(folder / "tokenizer"), shape
