"""Per-token log-probabilities and entropy equal TRL's importable functions (trl.trainer.utils.selective_log_softmax,
entropy_from_logits) and torch's, forward and gradient."""

import pytest
import torch
import torch.nn.functional as F
from trl.trainer.utils import entropy_from_logits, selective_log_softmax

from nlplab.errors import ConfigError
from nlplab.rlhf import entropy, token_logprobs


@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_token_logprobs_equal_trl_and_log_softmax(rand, same, temperature):
    logits = rand(3, 7, 11, scale=2.0)
    targets = torch.randint(0, 11, (3, 7), generator=torch.Generator().manual_seed(1))
    same(lambda z: token_logprobs(z, targets, temperature), lambda z: selective_log_softmax(z, targets, temperature), logits)
    same(lambda z: token_logprobs(z, targets, temperature),
         lambda z: F.log_softmax(z / temperature, -1).gather(-1, targets[..., None]).squeeze(-1), logits)


def test_token_logprobs_rejects_a_temperature_of_zero(rand):
    with pytest.raises(ConfigError, match="temperature"):
        token_logprobs(rand(2, 5), torch.zeros(2, dtype=torch.long), temperature=0.0)


def test_entropy_equals_trl_and_the_categorical(rand, same):
    logits = rand(4, 6, 13, scale=3.0)
    same(entropy, entropy_from_logits, logits)
    same(entropy, lambda z: torch.distributions.Categorical(logits=z).entropy(), logits)
