"""MaskedLM equals Hugging Face's BertForMaskedLM carrying the same weights (float64, logits and gradients); the
masking follows BERT's proportions."""

import os

import jieba
import pytest
import torch
import transformers

from nlplab.data.masking import IGNORE, encode_words, mask_tokens
from nlplab.errors import ConfigError
from nlplab.models.mlm import MaskedLM
from nlplab.text import build_tokenizer

os.environ["HF_HUB_OFFLINE"] = "1"


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    cfg = transformers.BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=2, num_attention_heads=4,
                                  intermediate_size=32, max_position_embeddings=20, hidden_act="gelu")
    torch.manual_seed(0)
    model = transformers.BertForPreTraining(cfg)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.02 * torch.randn_like(p))
    path = tmp_path_factory.mktemp("bert")
    model.save_pretrained(path)
    return path


def batch():
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(3, 50, (3, 9), generator=g)
    mask = torch.tensor([[1] * 9, [1] * 6 + [0] * 3, [1] * 4 + [0] * 5], dtype=torch.bool)
    labels = torch.where((torch.rand(3, 9, generator=g) < 0.4) & mask, ids, IGNORE)
    return ids, mask, labels


@pytest.mark.parametrize("impl", ["fused", "manual"])
def test_logits_loss_and_gradients_equal_bert_for_masked_lm(folder, impl):
    ours = MaskedLM.from_pretrained(folder, impl=impl).double().eval()
    theirs = transformers.BertForMaskedLM.from_pretrained(folder).double().eval()
    ids, mask, labels = batch()
    _, logits = ours(ids, mask)
    expected = theirs(input_ids=ids, attention_mask=mask.long(), labels=labels)
    torch.testing.assert_close(logits[mask], expected.logits[mask], rtol=1e-9, atol=1e-9)
    loss, picked = ours(ids, mask, labels)
    torch.testing.assert_close(picked, expected.logits[labels != IGNORE], rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(loss, expected.loss, rtol=1e-9, atol=1e-9)
    loss.backward()
    expected.loss.backward()
    pairs = [(ours.encoder.tokens.weight, theirs.bert.embeddings.word_embeddings.weight),
             (ours.head.dense.weight, theirs.cls.predictions.transform.dense.weight),
             (ours.head.bias, theirs.cls.predictions.bias),
             (ours.encoder.blocks[0].ffn.fc1.weight, theirs.bert.encoder.layer[0].intermediate.dense.weight)]
    for mine, ref in pairs:
        torch.testing.assert_close(mine.grad, ref.grad, rtol=1e-9, atol=1e-9)


def test_masking_follows_the_80_10_10_proportions():
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(5, 1000, (400, 500), generator=g)
    maskable = torch.ones_like(ids, dtype=torch.bool)
    maskable[:, 0] = maskable[:, -50:] = False  # [CLS] and padding
    inputs, labels = mask_tokens(ids, maskable, mask_id=3, random_ids=(5, 1000), generator=g)
    chosen = labels != IGNORE
    assert not chosen[~maskable].any() and torch.equal(inputs[~maskable], ids[~maskable])
    assert torch.equal(labels[chosen], ids[chosen])
    n = int(chosen.sum())
    assert abs(n / int(maskable.sum()) - 0.15) < 0.003
    masked = int((inputs[chosen] == 3).sum())
    kept = int((inputs[chosen] == ids[chosen]).sum())
    assert abs(masked / n - 0.8) < 0.01 and abs(kept / n - 0.1 - 0.1 / 995) < 0.01
    assert abs((n - masked - kept) / n - 0.1) < 0.01
    assert not (inputs[~chosen] != ids[~chosen]).any()


def test_whole_word_masking_takes_every_token_of_a_chosen_word():
    g = torch.Generator().manual_seed(0)
    word_ids = torch.arange(600).repeat_interleave(3).view(1, -1).repeat(200, 1)   # 600 words of 3 tokens
    ids = torch.randint(5, 100, word_ids.shape, generator=g)
    inputs, labels = mask_tokens(ids, torch.ones_like(ids, dtype=torch.bool), 3, (5, 100), g, word_ids=word_ids)
    chosen = (labels != IGNORE).view(200, 600, 3)
    assert (chosen.all(-1) | ~chosen.any(-1)).all()
    assert abs(float(chosen.float().mean()) - 0.15) < 0.003


def test_encode_words_gives_each_character_its_jieba_word():
    text = "我们今天去北京大学看电影"
    tok = build_tokenizer("char").train([text], min_freq=1)
    ids, word_ids = encode_words(tok.encode, text)
    assert ids == tok.encode(text)
    assert word_ids == [i for i, word in enumerate(jieba.lcut(text)) for _ in word] and max(word_ids) >= 4


def test_a_bad_probability_is_refused():
    with pytest.raises(ConfigError, match="probability"):
        mask_tokens(torch.zeros(1, 2, dtype=torch.long), torch.ones(1, 2, dtype=torch.bool), 1, (2, 3),
                    torch.Generator(), prob=1.5)


def test_a_fresh_model_starts_from_bert_init_near_the_uniform_loss():
    from nlplab.models.encoder import BertConfig

    torch.manual_seed(0)
    model = MaskedLM(BertConfig(vocab_size=500, hidden_size=32, num_layers=2, num_heads=4, intermediate_size=64,
                                max_position_embeddings=16))
    weights = {name: p.detach() for name, p in model.named_parameters()}
    assert abs(float(weights["encoder.tokens.weight"][1:].std()) - 0.02) < 0.002
    assert weights["encoder.tokens.weight"][0].abs().sum() == 0 and weights["head.bias"].abs().sum() == 0
    assert torch.equal(weights["head.norm.weight"], torch.ones(32))
    ids = torch.randint(1, 500, (4, 16))
    loss, _ = model(ids, torch.ones(4, 16, dtype=torch.bool), ids)
    assert abs(loss.item() - torch.log(torch.tensor(500.0))) < 0.1
