import json
import subprocess
import sys

import pytest
import yaml

from nlplab.cli import main

FAST = ["--epochs", "2", "--batch-size", "8", "--embed-dim", "16", "--hidden-size", "16", "--lr", "0.02",
        "--device", "cpu", "--no-progress", "--min-freq", "1"]


def last_json(text: str) -> dict:
    return json.loads(text.strip().splitlines()[-1])


def test_train_eval_predict(tiny_tsv, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--task", "classify", "--data", str(tiny_tsv), "--model", "textcnn", "--out", str(run), *FAST]) == 0
    trained = last_json(capsys.readouterr().out)
    assert {"accuracy", "macro_f1", "roc_auc"} <= trained.keys()
    assert main(["eval", str(run)]) == 0
    evaluated = last_json(capsys.readouterr().out)
    assert evaluated["accuracy"] == pytest.approx(trained["accuracy"]) and "roc_auc" in evaluated
    assert main(["eval", str(run), "--data", str(tiny_tsv)]) == 0
    assert 0.0 <= last_json(capsys.readouterr().out)["macro_f1"] <= 1.0
    texts = tmp_path / "texts.txt"
    texts.write_text("质量太差了\n\n非常喜欢\n", encoding="utf-8")
    assert main(["predict", str(run), "服务很差", "--input", str(texts)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 3
    label, prob, text = lines[0].split("\t")
    assert label in {"0", "1"} and 0.5 <= float(prob) <= 1.0 and text == "服务很差"
    unknown = tmp_path / "unknown.tsv"
    unknown.write_text("label\ttext\n1\t很好\n7\t一般\n", encoding="utf-8")
    assert main(["eval", str(run), "--data", str(unknown)]) == 2
    assert f"{unknown}:3: unknown label '7'" in capsys.readouterr().err


def test_embed_with_pretrained_minilm_and_with_a_run(tiny_tsv, tmp_path, capsys):
    import numpy as np

    from nlplab.models.encoder import embed_texts

    texts = tmp_path / "s.txt"
    texts.write_text("这家酒店服务很好\n\nThe movie was great.\n", encoding="utf-8")
    assert main(["embed", "all-MiniLM-L6-v2", "--input", str(texts), "--out", str(tmp_path / "e.npy"), "--device", "cpu"]) == 0
    vectors = np.load(tmp_path / "e.npy")
    assert vectors.shape == (2, 384)
    np.testing.assert_allclose(vectors, embed_texts("all-MiniLM-L6-v2", ["这家酒店服务很好", "The movie was great."]).numpy(), atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-6)
    run = tmp_path / "run"
    assert main(["train", "--data", str(tiny_tsv), "--model", "lstm", "--out", str(run), *FAST]) == 0
    assert main(["embed", str(run), "--input", str(texts), "--out", str(tmp_path / "r.npy")]) == 0
    assert np.load(tmp_path / "r.npy").shape == (2, 32)


def test_train_on_a_trained_byte_level_bpe_tokenizer(tiny_tsv, tmp_path, capsys):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("".join(line.split("\t")[1] + "\n" for line in tiny_tsv.read_text(encoding="utf-8").splitlines()[1:]), encoding="utf-8")
    assert main(["tokenizer", "train", "--algo", "bytebpe", "--vocab-size", "300", "--input", str(corpus), "--out", str(tmp_path / "tok")]) == 0
    run = tmp_path / "run"
    assert main(["train", "--data", str(tiny_tsv), "--tokenizer", str(tmp_path / "tok"), "--out", str(run), *FAST]) == 0
    assert last_json(capsys.readouterr().out)["accuracy"] > 0.8
    model = json.loads((run / "model.json").read_text())
    assert model["vocab_size"] == 300 and model["pad_id"] is None  # byte-level BPE has no [PAD]: id 0 is the byte "!"
    assert (run / "tokenizer" / "tokenizer.json").read_text() == (tmp_path / "tok" / "tokenizer.json").read_text()


def test_config_file_and_flag_override(tiny_tsv, tmp_path, capsys):
    config = tmp_path / "recipe.yaml"
    config.write_text(yaml.safe_dump({"data": str(tiny_tsv), "hidden-size": 8, "epochs": 1, "window_size": 5}), encoding="utf-8")
    run = tmp_path / "run"
    assert main(["train", "--config", str(config), "--epochs", "2", "--out", str(run), "--no-progress", "--device", "cpu"]) == 0
    saved = yaml.safe_load((run / "config.yaml").read_text(encoding="utf-8"))
    assert (saved["model"]["hidden_size"], saved["optim"]["epochs"], saved["data"]["window_size"]) == (8, 2, 5)


@pytest.mark.parametrize(
    "args, message",
    [
        (["train", "--data", "no-such-set", "--out", "{tmp}/r"], "unknown data set 'no-such-set'"),
        (["train", "--data", "{tmp}/gbk.tsv", "--out", "{tmp}/r"], "gbk.tsv:2: not valid UTF-8"),
        (["train", "--data", "{tmp}/empty.tsv", "--out", "{tmp}/r"], "empty.tsv: the file is empty"),
        (["train", "--data", "{tmp}/ragged.tsv", "--out", "{tmp}/r"], "ragged.tsv:3: expected 2 tab-separated columns"),
        (["train", "--data", "{tsv}", "--model", "gpt", "--out", "{tmp}/r"], "unknown model 'gpt'"),
        (["train", "--data", "{tsv}", "--optimizer", "lbfgs", "--out", "{tmp}/r"], "unknown optimizer 'lbfgs'"),
        (["train", "--data", "{tsv}", "--dropout", "1.5", "--out", "{tmp}/r"], "dropout must be in"),
        (["train", "--data", "{tsv}", "--metric", "spearman", "--out", "{tmp}/r"],
         "metric for task classify must be one of accuracy, macro_f1"),
        (["train", "--config", "{tmp}/missing.yaml", "--out", "{tmp}/r"], "config file not found"),
        (["train", "--data", "{tsv}", "--out", "{tmp}/r", "--resume"], "nothing to resume"),
        (["eval", "{tmp}"], "not a run directory"),
        (["embed", "{tmp}/nowhere", "--input", "{tsv}", "--out", "{tmp}/e.npy"], "config.json: not found"),
        (["tokenizer", "encode", "{tmp}/none", "hi"], "no such tokenizer"),
    ],
)
def test_bad_input_exits_2_with_one_line(tiny_tsv, tmp_path, capsys, args, message):
    (tmp_path / "gbk.tsv").write_bytes("1\t好\n".encode() + "0\t不好\n".encode("gbk"))
    (tmp_path / "empty.tsv").write_bytes(b"")
    (tmp_path / "ragged.tsv").write_text("label\ttext\n1\t好\n0 不好\n", encoding="utf-8")
    args = [a.format(tmp=tmp_path, tsv=tiny_tsv) for a in args]
    assert main(args + (["--no-progress"] if args[0] == "train" else [])) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err and "Traceback" not in err
    assert not (tmp_path / "r").exists()


def test_unknown_config_key(tmp_path, capsys):
    config = tmp_path / "c.yaml"
    config.write_text("epochz: 3\n", encoding="utf-8")
    assert main(["train", "--config", str(config), "--out", str(tmp_path / "r")]) == 2
    assert "unknown key 'epochz'" in capsys.readouterr().err


def test_console_script_exit_code(tmp_path):
    done = subprocess.run([sys.executable, "-m", "nlplab.cli", "eval", str(tmp_path)], capture_output=True, text=True)
    assert done.returncode == 2 and done.stderr.startswith("nlplab: error:") and "Traceback" not in done.stderr
