"""Pre-training through the trainer: `--task word2vec` and `--task mlm` runs, interrupted mid-epoch and resumed,
end as uninterrupted ones; `--max-minutes` ends a run as finished; the thread count is recorded; bad options exit 2."""

import json

import pytest
import torch
import yaml
from safetensors.torch import load_file

from nlplab.cli import main
from nlplab.models.word_vectors import WordVectors
from nlplab.train.checkpoint import WEIGHTS
from nlplab.train.config import TrainConfig
from nlplab.train.mlm import MLMTask
from nlplab.train.trainer import CHECKPOINT, train
from nlplab.train.word2vec import VECTORS, Word2VecTask


@pytest.fixture
def corpus(word_corpus):
    return word_corpus(150, 3, 12)


def pretrain_config(data, task, **fields):
    values = {"task": task, "data": str(data), "embed_dim": 16, "hidden_size": 16, "heads": 2, "layers": 1,
              "window_size": 12, "batch_size": 32, "epochs": 2, "min_freq": 1, "device": "cpu", "threads": 1,
              **({"tokenizer": "word", "lr": 0.05, "optimizer": "sgd", "schedule": "linear", "w2v_window": 2, "subsample": 0}
                 if task == "word2vec" else {"lr": 5e-3})}
    return TrainConfig.from_dict({**values, **fields})


class Interrupt(Exception):
    pass


def interrupted_then_resumed(cfg, run, task, monkeypatch, after_steps):
    """Train with a checkpoint every 2 steps, fail at step `after_steps` of epoch 1, then resume."""
    step = task.step
    calls = []

    def failing(self, batch):
        calls.append(1)
        if len(calls) == after_steps:
            raise Interrupt
        return step(self, batch)

    with monkeypatch.context() as m:
        m.setattr(task, "step", failing)
        with pytest.raises(Interrupt):
            train(cfg, run, progress=False)
    assert (run / CHECKPOINT).is_file() and not (run / "history.jsonl").exists()
    return train(cfg, run, resume=True, progress=False)


@pytest.mark.parametrize("algo", ["skipgram", "cbow"])
def test_word2vec_run_resumed_mid_epoch_equals_an_uninterrupted_one(corpus, tmp_path, monkeypatch, algo):
    cfg = pretrain_config(corpus, "word2vec", model=algo, checkpoint_every=2)
    full = train(cfg, tmp_path / "full", progress=False)
    cut = interrupted_then_resumed(cfg, tmp_path / "cut", Word2VecTask, monkeypatch, after_steps=4)
    assert cut["dev"] == full["dev"] and cut["test"] == full["test"]
    a, b = load_file(tmp_path / "full" / WEIGHTS), load_file(tmp_path / "cut" / WEIGHTS)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert main(["eval", str(tmp_path / "full")]) == 2, "a pre-training run is no model to use"
    vectors = WordVectors.load(tmp_path / "full" / VECTORS)
    assert {"今天", "公园", "散步"} <= set(vectors.words) and vectors.vectors.shape[1] == 16
    assert full["dev"]["loss"] < json.loads((tmp_path / "full" / "history.jsonl").read_text().splitlines()[0])["train_loss"]


def test_mlm_run_resumed_mid_epoch_equals_an_uninterrupted_one(corpus, tmp_path, monkeypatch):
    cfg = pretrain_config(corpus, "mlm", whole_word=True, checkpoint_every=2)
    full = train(cfg, tmp_path / "full", progress=False)
    cut = interrupted_then_resumed(cfg, tmp_path / "cut", MLMTask, monkeypatch, after_steps=3)
    assert cut["dev"] == full["dev"] and cut["test"] == full["test"]
    assert full["dev"]["predicted"] > 0 and (tmp_path / "full" / "tokenizer").is_dir()


def test_max_minutes_ends_the_run_as_finished(corpus, tmp_path):
    run = tmp_path / "run"
    metrics = train(pretrain_config(corpus, "mlm", epochs=50, max_minutes=1e-4), run, progress=False)
    history = (run / "history.jsonl").read_text().splitlines()
    assert metrics["budget_spent"] and metrics["epochs_run"] == len(history) < 50
    assert (run / WEIGHTS).is_file() and "ppl" in metrics["dev"]


def test_the_run_config_records_the_thread_count(corpus, tmp_path):
    train(pretrain_config(corpus, "word2vec", epochs=1, threads=None), tmp_path / "run", progress=False)
    recorded = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())["run"]["threads"]
    assert recorded == torch.get_num_threads()


def test_train_help_lists_the_pretrain_section(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["train", "--help"])
    out = capsys.readouterr().out
    assert exit_.value.code == 0 and "pretrain: pre-training" in out and "--max-minutes" in out and "--mask-prob" in out


@pytest.mark.parametrize("flags, named", [
    (["--task", "word2vec", "--negatives", "0"], "--negatives"),
    (["--task", "word2vec", "--model", "glove"], "--model"),
    (["--task", "mlm", "--mask-prob", "1.5"], "--mask-prob"),
    (["--task", "classify", "--reverse"], "--reverse"),
    (["--task", "mlm", "--max-minutes", "0"], "--max-minutes"),
    (["--task", "lm", "--discriminative-lr", "2.6"], "--discriminative-lr"),
])
def test_bad_pretraining_options_exit_2(corpus, tmp_path, capsys, flags, named):
    assert main(["train", "--data", str(corpus), *flags, "--out", str(tmp_path / "x")]) == 2
    assert named in capsys.readouterr().err
