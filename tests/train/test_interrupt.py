"""A run is always resumable or restartable: killed in the middle of its first epoch (SIGKILL after a step
checkpoint, or SIGINT between two steps), before its first checkpoint, or started again with --overwrite."""

import json
import os
import random
import signal
import subprocess
import sys
import time

import pytest

from nlplab.errors import ConfigError, RunError
from nlplab.train.config import TrainConfig
from nlplab.train.trainer import CHECKPOINT, train

POS = ["这本书很好看", "质量不错", "服务热情", "非常喜欢", "房间干净", "早餐丰富", "物美价廉", "值得购买"]
NEG = ["质量太差了", "服务很差", "房间很脏", "浪费钱", "物流太慢", "包装破损", "不推荐", "很失望"]
RECIPE = ["--model", "lstm", "--epochs", "2", "--batch-size", "8", "--embed-dim", "32", "--hidden-size", "64",
          "--min-freq", "1", "--lr", "0.01", "--dropout", "0.3", "--device", "cpu", "--no-progress"]


@pytest.fixture
def reviews(tmp_path):
    """600 short labelled reviews: about 60 steps per epoch at batch 8, so a kill lands inside the first epoch."""
    rng = random.Random(1)
    rows = [(label, "，".join(rng.choice(words) for _ in range(rng.randint(2, 5))))
            for label, words in [("1", POS), ("0", NEG)] for _ in range(300)]
    rng.shuffle(rows)
    path = tmp_path / "reviews.tsv"
    path.write_text("label\ttext\n" + "".join(f"{label}\t{text}\n" for label, text in rows), encoding="utf-8")
    return path


def nlplab(*args, **kwargs):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "nlplab", "train", *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, **kwargs)


def metrics(run):
    return json.loads((run / "metrics.json").read_text(encoding="utf-8"))


def wait_for(path, process, timeout=120.0):
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "no checkpoint appeared"
        time.sleep(0.01)


def history(run):
    return [json.loads(line) for line in (run / "history.jsonl").read_text().splitlines()]


def test_killed_mid_epoch_resumes_to_the_metrics_of_an_uninterrupted_run(reviews, tmp_path):
    full, cut = tmp_path / "full", tmp_path / "cut"
    assert nlplab("--data", reviews, "--out", full, *RECIPE).wait(timeout=300) == 0
    job = nlplab("--data", reviews, "--out", cut, "--checkpoint-every", "3", *RECIPE)
    wait_for(cut / CHECKPOINT, job)
    job.send_signal(signal.SIGKILL)
    job.wait(timeout=60)
    assert not (cut / "history.jsonl").exists(), "the kill was meant to land inside epoch 1"
    done = nlplab("--out", cut, "--resume")
    out, err = done.communicate(timeout=300)
    assert done.returncode == 0, err
    assert metrics(cut)["test"] == metrics(full)["test"]
    assert [h["train_loss"] for h in history(cut)] == [h["train_loss"] for h in history(full)]


def test_ctrl_c_between_steps_saves_a_checkpoint_and_resumes_exactly(reviews, tmp_path):
    full, cut = tmp_path / "full", tmp_path / "cut"
    train(TrainConfig.from_dict(dict(data=str(reviews), model="lstm", epochs=2, batch_size=8, embed_dim=32, hidden_size=64,
                                     min_freq=1, lr=0.01, dropout=0.3, device="cpu")), full, progress=False)
    job = nlplab("--data", reviews, "--out", cut, *RECIPE)
    wait_for(cut / "config.yaml", job)
    time.sleep(0.3)
    job.send_signal(signal.SIGINT)
    _, err = job.communicate(timeout=120)
    assert job.returncode == 130 and f"--out {cut} --resume" in err
    assert (cut / CHECKPOINT).exists() and not (cut / "metrics.json").exists()
    done = nlplab("--out", cut, "--resume")
    _, err = done.communicate(timeout=300)
    assert done.returncode == 0, err
    assert metrics(cut)["test"] == metrics(full)["test"]


def tiny(data, **overrides) -> TrainConfig:
    return TrainConfig.from_dict(dict(data=str(data), epochs=2, batch_size=8, embed_dim=16, hidden_size=16, min_freq=1,
                                      lr=0.02, device="cpu", **overrides))


def test_resume_before_the_first_checkpoint_starts_again(tiny_tsv, tmp_path):
    full = train(tiny(tiny_tsv), tmp_path / "full", progress=False)
    run = tmp_path / "cut"
    run.mkdir()
    (run / "config.yaml").write_text((tmp_path / "full" / "config.yaml").read_text())  # what a kill in epoch 1 leaves
    (run / "model.json").write_text("{}")
    resumed = train(tiny(tiny_tsv), run, resume=True, progress=False)
    assert resumed["test"] == full["test"]


def test_overwrite_starts_a_run_again(tiny_tsv, tmp_path):
    run = tmp_path / "run"
    first = train(tiny(tiny_tsv), run, progress=False)
    with pytest.raises(RunError, match="start it again with --overwrite"):
        train(tiny(tiny_tsv), run, progress=False)
    (run / "stale.txt").write_text("left by the old run")
    again = train(tiny(tiny_tsv), run, overwrite=True, progress=False)
    assert again["test"] == first["test"] and not (run / "stale.txt").exists()
    with pytest.raises(ConfigError, match="choose one"):
        train(tiny(tiny_tsv), run, resume=True, overwrite=True, progress=False)
