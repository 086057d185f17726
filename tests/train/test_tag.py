import json
import random

import pytest
import torch
from seqeval.metrics import classification_report as seqeval_report
from seqeval.metrics import f1_score, precision_score, recall_score

from nlplab.cli import main
from nlplab.cli.use import describe
from nlplab.models.tagger import Tagger, TaggerConfig
from nlplab.runs import load_run
from nlplab.train.config import TrainConfig
from nlplab.train.spans import (
    bio_spans,
    bmes_spans,
    span_report,
    tagging_report,
    token_accuracy,
    word_spans,
)
from nlplab.train.trainer import train

PEOPLE = ["张伟", "王芳", "李娜", "刘洋", "陈静", "欧阳明"]
PLACES = ["北京", "上海", "广州", "深圳", "西安"]
ORGS = ["新华社", "国务院", "人民日报"]
TEMPLATES = ["{p}在{l}工作。", "{o}记者{p}报道。", "{p}去{l}了。", "{o}在{l}开会。"]


def synthetic(n, seed=0):
    """Sentences from a few templates as (text piece, entity type or None) pairs."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        pieces, rest = [], rng.choice(TEMPLATES)
        while rest:
            if rest.startswith("{"):
                key, rest = rest[1], rest[3:]
                pieces.append({"p": (rng.choice(PEOPLE), "PER"), "l": (rng.choice(PLACES), "LOC"), "o": (rng.choice(ORGS), "ORG")}[key])
            else:
                pieces.append((rest[0], None))
                rest = rest[1:]
        out.append(pieces)
    return out


def write_conll(path, sentences, scheme="ner"):
    lines = []
    for pieces in sentences:
        for text, kind in pieces:
            if scheme == "ner":
                tags = ["O"] * len(text) if kind is None else [f"B-{kind}"] + [f"I-{kind}"] * (len(text) - 1)
            else:
                tags = ["S"] if len(text) == 1 else ["B", *"M" * (len(text) - 2), "E"]
            lines += [f"{c}\t{t}" for c, t in zip(text, tags)]
        lines.append("")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def ner_file(tmp_path):
    return write_conll(tmp_path / "ner.conll", synthetic(80))


def tiny(data, **overrides):
    values = dict(task="tag", data=str(data), model="lstm", crf=True, epochs=4, batch_size=8, embed_dim=16, hidden_size=16,
                  vocab_size=None, min_freq=1, lr=0.05, dropout=0.1, device="cpu")
    values.update(overrides)
    return TrainConfig.from_dict(values)


def random_bio(rng, n, kinds=("PER", "LOC", "ORG")):
    return [rng.choice(["O", "O"] + [f"{p}-{k}" for p in "BI" for k in kinds]) for _ in range(n)]


@pytest.mark.parametrize("seed", range(5))
def test_entity_metrics_equal_seqeval_on_random_tags(seed):
    rng = random.Random(seed)
    gold = [random_bio(rng, rng.randint(1, 12)) for _ in range(40)]
    pred = [[t if rng.random() < 0.6 else random_bio(rng, 1)[0] for t in g] for g in gold]
    ours = span_report([bio_spans(g) for g in gold], [bio_spans(p) for p in pred])
    assert ours["f1"] == pytest.approx(f1_score(gold, pred))
    assert ours["precision"] == pytest.approx(precision_score(gold, pred))
    assert ours["recall"] == pytest.approx(recall_score(gold, pred))
    theirs = seqeval_report(gold, pred, output_dict=True)
    for kind, row in ours["per_type"].items():
        assert (row["precision"], row["recall"], row["f1"], row["support"]) == pytest.approx(
            (theirs[kind]["precision"], theirs[kind]["recall"], theirs[kind]["f1-score"], theirs[kind]["support"]))


def test_word_and_token_metrics_by_hand():
    assert bio_spans(["I-PER", "I-PER", "B-LOC", "I-PER", "O"]) == [("PER", 0, 2), ("LOC", 2, 3), ("PER", 3, 4)]
    assert bmes_spans(["B", "E", "S", "M", "E", "B"]) == [("word", 0, 2), ("word", 2, 3), ("word", 3, 5), ("word", 5, 6)]
    gold = ["B", "E", "S", "B", "M", "E"]        # 今天 | 好 | 天气好
    pred = ["B", "E", "S", "B", "E", "S"]        # 今天 | 好 | 天气 | 好
    report = tagging_report("seg", [gold], [pred])
    assert (report["precision"], report["recall"]) == pytest.approx((2 / 4, 2 / 3))
    assert report["accuracy"] == pytest.approx(4 / 6) == token_accuracy([gold], [pred])
    assert word_spans(["今天", "好"]) == [("word", 0, 2), ("word", 2, 3)]
    pos = tagging_report("pos", [["B-n", "I-n", "B-v"]], [["B-n", "I-v", "B-v"]])
    assert pos["f1"] == pos["accuracy"] == pytest.approx(2 / 3)


def test_train_resume_and_reload(ner_file, tmp_path):
    cfg = tiny(ner_file)
    full = train(cfg, tmp_path / "full", progress=False)
    assert full["test"]["f1"] > 0.9 and full["scheme"] == "ner"
    files = {p.name for p in (tmp_path / "full").iterdir()}
    assert {"config.yaml", "model.json", "labels.json", "tokenizer", "model.safetensors", "metrics.json", "history.jsonl"} <= files

    class Stop(Exception):
        pass

    def stop(epoch, _row):
        if epoch == 2:
            raise Stop

    with pytest.raises(Stop):
        train(cfg, tmp_path / "cut", on_epoch_end=stop, progress=False)
    resumed = train(cfg, tmp_path / "cut", resume=True, progress=False)
    assert resumed["test"]["f1"] == full["test"]["f1"]
    assert resumed["test"]["loss"] == pytest.approx(full["test"]["loss"], abs=1e-9)

    run = load_run(tmp_path / "full", "cpu")
    assert run.model.crf is not None and run.model.cfg.constraints == "bio"
    first, spaced = run.predict(["张伟在北京工作。", "张 伟在北京"])
    assert describe(first) == "张伟在北京工作。\t张伟/PER[0:2)  北京/LOC[3:5)"
    assert describe(spaced) == "张 伟在北京\t张 伟/PER[0:3)  北京/LOC[4:6)"  # offsets into the text as given
    assert spaced["entities"][0] == {"text": "张 伟", "type": "PER", "start": 0, "end": 3}


@pytest.mark.parametrize("model, crf", [("lstm", False), ("gru", True), ("cnn", True), ("transformer", False)])
def test_every_encoder_and_head_trains(ner_file, tmp_path, model, crf):
    metrics = train(tiny(ner_file, model=model, crf=crf, epochs=2, heads=2, layers=2, window_size=16), tmp_path / "run", progress=False)
    assert 0.0 <= metrics["test"]["f1"] <= 1.0 and metrics["epochs_run"] == 2
    run = load_run(tmp_path / "run", "cpu")
    long = "张伟在北京工作。" * 5  # longer than the window: tagged in windows and joined
    assert len(run.tag([list(long)])[0]) == len(long)


def test_manual_and_fused_taggers_agree():
    torch.manual_seed(0)
    labels = ["O", "B-PER", "I-PER"]
    batch = {"ids": torch.randint(1, 20, (3, 7)), "lengths": torch.tensor([7, 4, 1])}
    batch["mask"] = torch.arange(7) < batch["lengths"][:, None]
    batch["tags"] = torch.randint(0, 3, (3, 7))
    for model in ("cnn", "lstm"):
        cfg = TaggerConfig(model=model, vocab_size=20, labels=labels, embed_dim=8, hidden_size=8, layers=2, dropout=0.0)
        fused = Tagger(cfg).double().eval()
        manual = Tagger(TaggerConfig(**{**cfg.__dict__, "impl": "manual"})).double().eval()
        manual.load_state_dict(fused.state_dict())
        (loss_f, em_f), (loss_m, em_m) = fused(batch), manual(batch)
        torch.testing.assert_close(em_f[batch["mask"]], em_m[batch["mask"]])
        torch.testing.assert_close(loss_f, loss_m)


def last_json(text):
    return json.loads(text.strip().splitlines()[-1])


def test_cli_train_eval_predict_and_bad_input(ner_file, tmp_path, capsys):
    run = tmp_path / "run"
    fast = ["--epochs", "3", "--batch-size", "8", "--embed-dim", "16", "--hidden-size", "16", "--lr", "0.05", "--min-freq", "1",
            "--device", "cpu", "--no-progress"]
    assert main(["train", "--task", "tag", "--data", str(ner_file), "--model", "lstm", "--crf", "--out", str(run), *fast]) == 0
    trained = last_json(capsys.readouterr().out)
    assert main(["eval", str(run)]) == 0
    out = capsys.readouterr().out
    assert last_json(out)["f1"] == pytest.approx(trained["f1"])
    assert all(kind in out for kind in ("PER", "LOC", "ORG", "micro"))
    other = write_conll(tmp_path / "other.conll", synthetic(10, seed=5))
    assert main(["eval", str(run), "--data", str(other)]) == 0
    assert 0.0 <= last_json(capsys.readouterr().out)["f1"] <= 1.0
    assert main(["predict", str(run), "李娜去上海了。"]) == 0
    assert capsys.readouterr().out == "李娜去上海了。\t李娜/PER[0:2)  上海/LOC[3:5)\n"

    unknown = tmp_path / "unknown.conll"
    unknown.write_text("张\tB-PER\n\n北\tB-GPE\n", encoding="utf-8")
    assert main(["eval", str(run), "--data", str(unknown)]) == 2
    assert f"{unknown}:3: unknown tag(s) B-GPE" in capsys.readouterr().err
    mismatch = tmp_path / "mismatch.tsv"
    mismatch.write_text("text_a\tlabel\n张 伟\tB-PER I-PER\n北 京 市\tB-LOC I-LOC\n", encoding="utf-8")
    assert main(["train", "--task", "tag", "--data", str(mismatch), "--out", str(tmp_path / "bad"), *fast]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{mismatch}:3: 3 characters but 2 tags" in err
    assert not (tmp_path / "bad").exists()


def test_cli_segmentation_predicts_words(tmp_path, capsys):
    seg = write_conll(tmp_path / "seg.conll", synthetic(80), scheme="seg")
    run = tmp_path / "run"
    assert main(["train", "--task", "tag", "--data", str(seg), "--model", "lstm", "--out", str(run), "--epochs", "4",
                 "--batch-size", "8", "--embed-dim", "16", "--hidden-size", "16", "--lr", "0.05", "--min-freq", "1",
                 "--device", "cpu", "--no-progress"]) == 0
    assert last_json(capsys.readouterr().out)["f1"] > 0.9
    assert main(["predict", str(run), "王芳在西安工作。"]) == 0
    assert capsys.readouterr().out == "王芳在西安工作。\t王芳 在 西安 工 作 。\n"
