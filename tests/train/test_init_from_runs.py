"""A classifier starts from nlplab pre-training runs (`--init-from`): word2vec vectors, forward(+backward) LSTM
LMs, a masked LM's encoder; ULMFiT's discriminative learning rates and gradual unfreezing as options."""

import random
from pathlib import Path

import pytest
import torch

from nlplab.cli import main
from nlplab.errors import ConfigError
from nlplab.models.word_vectors import WordVectors
from nlplab.train.checkpoint import load_weights
from nlplab.train.classify import ClassifyTask
from nlplab.train.config import TrainConfig, load_config
from nlplab.train.pretrained import VECTORS, masked_lm_encoder, recurrent_lm
from nlplab.train.trainer import train

POS = ["这本书很好看", "质量不错", "服务热情", "非常喜欢", "房间干净", "早餐丰富", "物美价廉", "值得购买"]
NEG = ["质量太差了", "服务很差", "房间很脏", "浪费钱", "物流太慢", "包装破损", "不推荐", "很失望"]
SMALL = {"embed_dim": 16, "hidden_size": 16, "heads": 2, "layers": 1, "window_size": 16, "batch_size": 16,
         "epochs": 1, "min_freq": 1, "device": "cpu", "threads": 1}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """(labelled reviews, the same texts as an unlabelled corpus)."""
    root = tmp_path_factory.mktemp("data")
    rng = random.Random(2)
    rows = [(label, "，".join(rng.choice(words) for _ in range(rng.randint(2, 5))))
            for label, words in [("1", POS), ("0", NEG)] for _ in range(100)]
    rng.shuffle(rows)
    (root / "reviews.tsv").write_text("label\ttext\n" + "".join(f"{y}\t{t}\n" for y, t in rows), encoding="utf-8")
    (root / "corpus.txt").write_text("".join(f"{t}\n" for _, t in rows), encoding="utf-8")
    return root / "reviews.tsv", root / "corpus.txt"


@pytest.fixture(scope="module")
def runs(data, tmp_path_factory):
    root, (_, corpus) = tmp_path_factory.mktemp("runs"), data
    recipes = {"w2v": {"task": "word2vec", "tokenizer": "word", "lr": 0.05, "optimizer": "sgd", "subsample": 0},
               "fwd": {"task": "lm", "model": "lstm", "tokenizer": "char"},
               "bwd": {"task": "lm", "model": "lstm", "tokenizer": "char", "reverse": True},
               "mlm": {"task": "mlm"}}
    for name, recipe in recipes.items():
        train(TrainConfig.from_dict({**SMALL, "data": str(corpus), **recipe}), root / name, progress=False)
    return root


def classify_task(data, tmp_path, **fields):
    cfg = TrainConfig.from_dict({**SMALL, "task": "classify", "data": str(data[0]), **fields})
    return ClassifyTask(cfg, tmp_path / "run", False, torch.device("cpu"))


def test_word2vec_run_seeds_the_embedding_rows_it_knows(data, runs, tmp_path):
    task = classify_task(data, tmp_path, model="bow", tokenizer="word", init_from=str(runs / "w2v"))
    vectors = WordVectors.load(runs / "w2v" / VECTORS)
    known = [w for w in task.tokenizer.vocab if w in vectors]
    assert len(known) > 10
    for word in known:
        assert torch.allclose(task.model.embedding.weight[task.tokenizer.vocab[word]], vectors[word], atol=1e-6)
    assert f"{len(known)} of" in task.describe()["init"]


def test_forward_and_backward_lm_runs_give_each_direction_of_the_encoder(data, runs, tmp_path):
    both = f"{runs / 'fwd'},{runs / 'bwd'}"
    with pytest.raises(ConfigError, match="embed_dim: the sum of the 2 LMs"):
        classify_task(data, tmp_path, model="lstm", init_from=both)
    width = SMALL["embed_dim"]
    task = classify_task(data, tmp_path, model="lstm", init_from=both, embed_dim=2 * width)
    forward, backward = recurrent_lm(runs / "fwd"), recurrent_lm(runs / "bwd")
    encoder = task.model.encoder
    assert torch.equal(encoder.weight_hh_l0, forward.rnn.weight_hh_l0)
    assert torch.equal(encoder.weight_ih_l0[:, :width], forward.rnn.weight_ih_l0)
    assert torch.equal(encoder.weight_ih_l0_reverse[:, width:], backward.rnn.weight_ih_l0)
    assert not encoder.weight_ih_l0[:, width:].any() and not encoder.weight_ih_l0_reverse[:, :width].any()
    rows = torch.arange(task.tokenizer.vocab_size) != task.tokenizer.pad_id
    embedding = task.model.embedding.weight[rows]
    assert torch.equal(embedding, torch.cat([forward.embed.weight, backward.embed.weight], 1)[rows])
    with pytest.raises(ConfigError, match="forward LM run first"):
        classify_task(data, tmp_path, model="lstm", init_from=f"{runs / 'bwd'},{runs / 'fwd'}", embed_dim=2 * width)


def test_masked_lm_run_is_the_transformer_encoder(data, runs, tmp_path):
    task = classify_task(data, tmp_path, model="transformer", init_from=str(runs / "mlm"))
    expected = masked_lm_encoder(str(runs / "mlm")).state_dict()
    assert all(torch.equal(v, expected[k]) for k, v in task.model.encoder.state_dict().items())


def test_discriminative_rates_and_gradual_unfreezing(data, runs, tmp_path):
    task = classify_task(data, tmp_path, model="transformer", init_from=str(runs / "mlm"), lr=0.01,
                         discriminative_lr=2.0, gradual_unfreeze=True)
    assert [g["lr"] for g in task.param_groups([])] == pytest.approx([0.01 / 4, 0.01 / 2, 0.01])
    train(task.cfg, tmp_path / "ft", progress=False)
    tuned = load_weights(tmp_path / "ft" / "model.safetensors", task.model)
    start = classify_task(data, tmp_path, model="transformer", init_from=str(runs / "mlm")).model
    assert torch.equal(tuned.encoder.tokens.weight, start.encoder.tokens.weight), "epoch 1 trains the top group alone"
    assert torch.equal(tuned.encoder.blocks[0].attn.q.weight, start.encoder.blocks[0].attn.q.weight)
    assert not torch.equal(tuned.head.weight, start.head.weight)


def test_init_from_a_run_of_the_wrong_kind_exits_2(data, runs, tmp_path, capsys):
    args = ["train", "--data", str(data[0]), "--model", "lstm", "--out", str(tmp_path / "x")]
    assert main([*args, "--init-from", f"{runs / 'mlm'},{runs / 'fwd'}"]) == 2
    assert "FORWARD,BACKWARD" in capsys.readouterr().err
    assert main([*args, "--init-from", str(tmp_path / "nothing")]) == 2
    assert "not an nlplab run" in capsys.readouterr().err


def test_committed_pretraining_recipes_read_and_follow_the_convention():
    configs = Path(__file__).parents[2] / "configs"
    pretraining = {p.stem: load_config(p, {}) for p in configs.glob("pretrain-*.yaml")}
    assert {"pretrain-word2vec", "pretrain-lm-forward", "pretrain-lm-backward", "pretrain-mlm"} <= set(pretraining)
    assert pretraining["pretrain-lm-backward"].reverse and pretraining["pretrain-word2vec"].task == "word2vec"
    for name in ("chnsenticorp-word2vec", "ewect-word2vec", "chnsenticorp-ulmfit", "ewect-ulmfit", "chnsenticorp-mlm",
                 "ewect-mlm"):
        cfg = load_config(configs / f"{name}.yaml", {})
        assert all(part.removeprefix("runs/") in pretraining for part in cfg.init_from.split(","))
