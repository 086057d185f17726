"""The `lm` task: corpora split by document, perplexity bookkeeping, every model causal, n-gram and neural runs
end to end through the CLI (train, eval, score), resume, and the GPT's MoE flags."""

import json
import math

import pytest
import torch

from nlplab.cli import main
from nlplab.data.corpora import load_corpus
from nlplab.errors import DataError
from nlplab.models.lm import NEURAL_LMS, LMConfig, build_lm
from nlplab.runs import load_run
from nlplab.train.config import TrainConfig
from nlplab.train.lm import encode_stream, stream_nll, windows
from nlplab.train.trainer import train


@pytest.fixture
def corpus(word_corpus):
    return word_corpus(120, 3, 10)


def lm_config(data, **fields):
    values = {"task": "lm", "data": str(data), "window_size": 16, "embed_dim": 16, "hidden_size": 16, "layers": 1,
              "heads": 2, "batch_size": 8, "epochs": 2, "lr": 1e-2, "min_freq": 1, "device": "cpu"}
    return TrainConfig.from_dict({**values, **fields})


def test_corpus_split_is_by_document_and_fixed(corpus):
    a, b = load_corpus(str(corpus)), load_corpus(str(corpus))
    assert (len(a.train), len(a.dev), len(a.test)) == (96, 12, 12)
    assert a.test == b.test and a.train == b.train
    lines = corpus.read_text(encoding="utf-8").split()
    assert sorted(a.train + a.dev + a.test) == sorted(lines)
    with pytest.raises(DataError, match="not a named corpus"):
        load_corpus("no-such-corpus")


def test_pd98_text_is_the_tagged_corpus_without_tags():
    pd98 = load_corpus("pd98-text")
    assert len(pd98.train) + len(pd98.dev) + len(pd98.test) == 975
    assert not any(tag in doc for doc in pd98.train[:50] for tag in ("/n", "/v", "/w"))
    assert any("迈向充满希望的新世纪" in doc for doc in pd98.train + pd98.dev + pd98.test)


class Uniform(torch.nn.Module):
    def __init__(self, vocab):
        super().__init__()
        self.vocab = vocab

    def forward(self, ids, cache=None):
        return torch.zeros(*ids.shape, self.vocab), None


@pytest.mark.parametrize("size", [1, 3, 7, 50])
def test_every_token_after_the_first_is_predicted_once(size):
    stream = torch.randint(0, 10, (23,))
    assert torch.cat([w[1:] for w in windows(stream, size)]).tolist() == stream[1:].tolist()
    nll, n = stream_nll(Uniform(10), stream, size, 4, torch.device("cpu"))
    assert n == 22 and math.exp(nll / n) == pytest.approx(10.0)


@pytest.mark.parametrize("model", NEURAL_LMS)
def test_language_models_are_causal(model):
    torch.manual_seed(0)
    lm = build_lm(LMConfig(model=model, vocab_size=30, block_size=12, embed_dim=8, hidden_size=8, layers=2, heads=2,
                           dropout=0.0)).eval()
    ids = torch.randint(0, 30, (2, 12))
    changed = ids.clone()
    changed[:, 7:] = (changed[:, 7:] + 1) % 30
    before, after = lm(ids)[0], lm(changed)[0]
    assert before.shape == (2, 12, 30)
    torch.testing.assert_close(before[:, :7], after[:, :7])
    assert not torch.allclose(before[:, 7:], after[:, 7:])


def test_stream_nll_equals_the_full_sequence_loss():
    torch.manual_seed(0)
    lm = build_lm(LMConfig(model="gpt", vocab_size=20, block_size=32, hidden_size=8, layers=1, heads=2, dropout=0.0)).eval()
    stream = torch.randint(0, 20, (30,))
    logits, _ = lm(stream[None, :-1])
    expected = torch.nn.functional.cross_entropy(logits[0], stream[1:], reduction="sum").item()
    assert stream_nll(lm, stream, 32, 4, torch.device("cpu"))[0] == pytest.approx(expected, rel=1e-6)


def test_ngram_run_train_eval_score(corpus, tmp_path, capsys):
    run = tmp_path / "ngram"
    assert main(["train", "--task", "lm", "--data", str(corpus), "--model", "ngram", "--order", "3", "--min-freq", "1",
                 "--out", str(run)]) == 0
    assert main(["eval", str(run)]) == 0
    figures = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    # char tokens, no spaces in the documents: one prediction per character and per end
    assert figures["bits_per_char"] == pytest.approx(math.log2(figures["ppl"]))
    assert 1 < figures["ppl"] < 15
    assert main(["score", str(run), "散步天气出门去", "今天天气很好。", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert rows[0]["text"] == "今天天气很好。" and rows[0]["ppl"] < rows[1]["ppl"]
    assert rows[0]["logprob"] == pytest.approx(-math.log(rows[0]["ppl"]) * 8)


def test_neural_run_eval_matches_training_metrics(corpus, tmp_path, capsys):
    metrics = train(lm_config(corpus, model="gru"), tmp_path / "gru", progress=False)
    assert main(["eval", str(tmp_path / "gru"), "--device", "cpu"]) == 0
    figures = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert figures["ppl"] == pytest.approx(metrics["test"]["ppl"], rel=1e-5)
    run = load_run(tmp_path / "gru", "cpu")
    assert encode_stream(run.tokenizer, ["今天"]).tolist()[0] == encode_stream(run.tokenizer, ["去"]).tolist()[-1]


def test_gpt_learns_and_resume_reaches_the_same_metrics(corpus, tmp_path):
    cfg = lm_config(corpus, model="gpt", epochs=3)
    full = train(cfg, tmp_path / "full", progress=False)
    assert full["test"]["ppl"] < 0.5 * full["vocab_size"]

    class Interrupt(Exception):
        pass

    def stop(epoch, row):
        raise Interrupt

    with pytest.raises(Interrupt):
        train(cfg, tmp_path / "cut", on_epoch_end=stop, progress=False)
    resumed = train(cfg, tmp_path / "cut", resume=True, progress=False)
    assert resumed["test"]["ppl"] == pytest.approx(full["test"]["ppl"], rel=1e-9)


def test_moe_flags_train_a_mixture_of_experts_gpt(corpus, tmp_path):
    run = tmp_path / "moe"
    assert main(["train", "--task", "lm", "--data", str(corpus), "--model", "gpt", "--moe-experts", "4", "--moe-top-k", "2",
                 "--window-size", "16", "--hidden-size", "16", "--heads", "2", "--epochs", "1", "--min-freq", "1",
                 "--device", "cpu", "--no-progress", "--out", str(run)]) == 0
    shape = json.loads((run / "model.json").read_text())
    assert (shape["moe_experts"], shape["moe_top_k"]) == (4, 2)
    router = load_run(run, "cpu").model.blocks[0].ffn.router
    assert router.weight.shape[0] == 4


def test_lm_bad_input_exits_2(corpus, tmp_path, capsys):
    assert main(["train", "--task", "lm", "--data", str(corpus), "--model", "transformerxl", "--out", str(tmp_path / "x")]) == 2
    assert "unknown language model" in capsys.readouterr().err
    assert main(["score", str(tmp_path / "nowhere"), "x"]) == 2
