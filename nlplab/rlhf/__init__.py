"""The InstructGPT formulas as tensor functions: the reward model's pairwise loss, KL estimators and controllers,
per-token rewards, GAE, PPO's clipped losses and the ptx term, DPO; masked statistics as the references use them."""

from nlplab.rlhf.dpo import DPO_LOSSES, dpo_loss
from nlplab.rlhf.kl import KL_ESTIMATORS, AdaptiveKLController, FixedKLController, kl_controller, kl_penalty
from nlplab.rlhf.logprobs import entropy, token_logprobs
from nlplab.rlhf.masked import masked_mean, masked_var, masked_whiten
from nlplab.rlhf.ppo import gae, kl_rewards, last_true, policy_loss, ptx_loss, value_loss
from nlplab.rlhf.reward import pairwise_accuracy, pairwise_loss, ranking_loss

__all__ = ["DPO_LOSSES", "KL_ESTIMATORS", "AdaptiveKLController", "FixedKLController", "dpo_loss", "entropy", "gae",
           "kl_controller", "kl_penalty", "kl_rewards", "last_true", "masked_mean", "masked_var", "masked_whiten",
           "pairwise_accuracy", "pairwise_loss", "policy_loss", "ptx_loss", "ranking_loss", "token_logprobs",
           "value_loss"]
