"""`--compile`: a tiny GPT trained under torch.compile (inductor, on the CPU) follows eager training within float
rounding; the time spent compiling is reported apart from the step time; no `_orig_mod.` key reaches a checkpoint
or model.safetensors, so the run loads as any other; `nlplab generate --compile` compiles the run's decoding step
(wiring checked with compilation stubbed: tests/generate/test_compile.py compiles decoding for real)."""

import json
import random

import pytest
from safetensors import safe_open

from nlplab.cli import main
from nlplab.generate import causal
from nlplab.runs import load_run
from nlplab.train.checkpoint import WEIGHTS
from nlplab.train.config import TrainConfig
from nlplab.train.trainer import CHECKPOINT, train

WORDS = ["今天", "天气", "很好", "我们", "去", "公园", "散步", "明天", "下雨"]


def keys(path):
    with safe_open(path, "pt") as f:
        return sorted(f.keys())


def test_compiled_training_equals_eager_and_reports_compile_time_apart(tmp_path, monkeypatch, capsys):
    rng = random.Random(0)
    docs = tmp_path / "docs.txt"
    docs.write_text("\n".join("".join(rng.choice(WORDS) for _ in range(rng.randint(3, 9))) for _ in range(93)) + "\n",
                    encoding="utf-8")
    # 93 documents make 56 training windows, 7 full batches: one training graph (a shorter last batch would compile another)
    recipe = {"task": "lm", "data": str(docs), "model": "gpt", "window_size": 16, "hidden_size": 16, "layers": 1,
              "heads": 2, "batch_size": 8, "epochs": 2, "lr": 1e-2, "min_freq": 1, "dropout": 0.0, "device": "cpu"}
    eager = train(TrainConfig.from_dict(recipe), tmp_path / "eager", progress=False)
    compiled = train(TrainConfig.from_dict({**recipe, "compile": True}), tmp_path / "compiled", progress=False)
    history = {name: [json.loads(line) for line in (tmp_path / name / "history.jsonl").read_text().splitlines()]
               for name in ("eager", "compiled")}
    for e, c in zip(history["eager"], history["compiled"], strict=True):
        assert c["train_loss"] == pytest.approx(e["train_loss"], rel=1e-4)
        assert c["val_ppl"] == pytest.approx(e["val_ppl"], rel=1e-4)
        assert "compile_seconds" not in e and 0 <= c["compile_seconds"] < c["seconds"]
    first, second = history["compiled"]
    assert first["compile_seconds"] > 10 * second["compile_seconds"]  # the graphs compile once, in the first steps
    assert compiled["compile_seconds"] == pytest.approx(first["compile_seconds"] + second["compile_seconds"])
    assert "compile_seconds" not in eager
    assert compiled["test"]["ppl"] == pytest.approx(eager["test"]["ppl"], rel=1e-4)
    for name in (WEIGHTS, CHECKPOINT):
        assert keys(tmp_path / "compiled" / name) == keys(tmp_path / "eager" / name)
        assert not any("_orig_mod" in key for key in keys(tmp_path / "compiled" / name))
    assert load_run(tmp_path / "compiled", "cpu").evaluate()["ppl"] == pytest.approx(compiled["test"]["ppl"], rel=1e-4)
    compiled_calls = []
    monkeypatch.setattr(causal, "compile_model", lambda model, dynamic: compiled_calls.append((type(model).__name__, dynamic)))
    texts = []
    for flags in ([], ["--compile"]):
        assert main(["generate", str(tmp_path / "compiled"), "--prompt", "今天", "--max-new-tokens", "6", "--json",
                     "--device", "cpu", *flags]) == 0
        texts.append(json.loads(capsys.readouterr().out.strip().splitlines()[-1])["texts"])
    assert compiled_calls == [("GPT", True)] and texts[0] == texts[1]
