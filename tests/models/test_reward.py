"""The reward model scores at the last real token, is blind to right padding, and equals Hugging Face's
GPT2ForSequenceClassification (what TRL's reward trainer trains) carrying the same weights; per-token
log-probabilities of responses equal a direct loop over prefixes."""

import pytest
import torch
import transformers
from torch.testing import assert_close

from nlplab.errors import ConfigError
from nlplab.models.gpt import GPT
from nlplab.models.lm import LMConfig, build_lm, response_logprobs
from nlplab.models.reward import RewardModel

TOL = dict(atol=1e-10, rtol=1e-10)
CFG = LMConfig(model="gpt", vocab_size=40, block_size=32, hidden_size=16, layers=2, heads=2, dropout=0.1)


@pytest.fixture
def reward_model():
    torch.manual_seed(0)
    return RewardModel.build(CFG).double().eval()


def rows(seed=1):
    generator = torch.Generator().manual_seed(seed)
    return [torch.randint(3, 40, (n,), generator=generator).tolist() for n in (7, 3, 12, 1)]


def right_padded(seqs, pad_id, extra=0):
    width = max(map(len, seqs)) + extra
    ids = torch.full((len(seqs), width), pad_id)
    for i, s in enumerate(seqs):
        ids[i, : len(s)] = torch.tensor(s)
    return ids, torch.tensor([len(s) for s in seqs])


def test_score_is_the_value_at_the_last_real_token(reward_model):
    seqs = rows()
    ids, lengths = right_padded(seqs, 0)
    scores = reward_model.score(ids, lengths)
    with torch.no_grad():
        alone = torch.stack([reward_model(torch.tensor([s]))[0, -1] for s in seqs])
    assert scores.shape == (4,)
    assert_close(scores.detach(), alone, **TOL)


@pytest.mark.parametrize("pad_id,extra", [(0, 0), (0, 9), (5, 4), (39, 15)])
def test_score_does_not_change_when_padding_is_added(reward_model, pad_id, extra):
    seqs = rows()
    reference = reward_model.score(*right_padded(seqs, 1))
    assert_close(reward_model.score(*right_padded(seqs, pad_id, extra)), reference, **TOL)
    assert not torch.allclose(reference[0], reference[1])


def test_gradients_reach_body_and_head(reward_model):
    reward_model.score(*right_padded(rows(), 0)).sum().backward()
    assert reward_model.head.weight.grad.abs().sum() > 0
    assert reward_model.body.blocks[0].attn.q.weight.grad.abs().sum() > 0
    assert reward_model.body.tokens.weight.grad.abs().sum() > 0


def test_head_init_and_body_check():
    torch.manual_seed(0)
    model = RewardModel.build(CFG)
    assert model.head.bias.item() == 0 and 0.1 < model.head.weight.std().item() < 0.5
    with pytest.raises(ConfigError, match="GPT body"):
        RewardModel(build_lm(LMConfig(model="lstm", vocab_size=40)))


def test_equals_hugging_face_gpt2_for_sequence_classification(tmp_path):
    torch.manual_seed(0)
    config = transformers.GPT2Config(n_layer=2, n_embd=32, n_head=4, vocab_size=50, n_positions=32, num_labels=1,
                                     pad_token_id=0)
    transformers.GPT2LMHeadModel(config).save_pretrained(tmp_path)
    theirs = transformers.GPT2ForSequenceClassification.from_pretrained(tmp_path, num_labels=1, pad_token_id=0)
    theirs = theirs.double().eval()
    ours = RewardModel(GPT.from_pretrained(tmp_path)).double().eval()
    with torch.no_grad():
        ours.head.weight.copy_(theirs.score.weight)
    ids, lengths = right_padded([[4, 9, 2, 7, 7, 3], [11, 5], [8, 1, 22, 40, 49, 6, 6, 2, 13]], 0, extra=2)
    with torch.no_grad():
        expected = theirs(ids, attention_mask=(ids != 0).long()).logits.squeeze(-1)
    assert_close(ours.score(ids, lengths).detach(), expected, **TOL)


def test_response_logprobs_equal_a_loop_over_prefixes():
    torch.manual_seed(0)
    model = build_lm(CFG).double().eval()
    prompts, responses = [[1, 5, 9], [1, 7], [1, 4, 4, 8]], [[12, 3, 30, 2], [6, 2], [25, 2]]
    seqs = [p + r for p, r in zip(prompts, responses)]
    ids, _ = right_padded(seqs, 0, extra=3)
    response_mask = torch.zeros_like(ids, dtype=torch.bool)
    for i, (p, r) in enumerate(zip(prompts, responses)):
        response_mask[i, len(p) : len(p) + len(r)] = True
    with torch.no_grad():
        logp, logits = response_logprobs(model, ids, response_mask, temperature=0.8)
        for i, (p, r) in enumerate(zip(prompts, responses)):
            expected = torch.zeros(ids.shape[1] - 1, dtype=torch.float64)
            for t in range(len(p), len(p) + len(r)):
                prefix_logits, _ = model(torch.tensor([seqs[i][:t]]))
                expected[t - 1] = torch.log_softmax(prefix_logits[0, -1] / 0.8, -1)[seqs[i][t]]
            assert_close(logp[i], expected, **TOL)
    assert logits.shape == (3, ids.shape[1] - 1, 40)
    assert (logp[~response_mask[:, 1:]] == 0).all()
