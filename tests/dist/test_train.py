"""`nlplab train --strategy ...` on 2 processes: a classify run and a GPT language model reach one process's weights
under every strategy (dropout 0; the global batch cut unevenly, a last batch of one example); a run interrupted in
the middle of an epoch resumes, distributed, to the uninterrupted run, and in one process to the same weights; one
process loads the result; bad input says one line once, a silent rank ends the job with a message; the same command
under torchrun."""

import contextlib
import datetime
import io
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time

import pytest
import torch
import torch.distributed as dist
from safetensors.torch import load_file

from nlplab.cli import main
from nlplab.dist import RankError, joined, spawn
from nlplab.errors import ConfigError
from nlplab.runs import load_run
from nlplab.train.classify import ClassifyTask
from nlplab.train.checkpoint import WEIGHTS
from nlplab.train.config import TrainConfig
from nlplab.train.trainer import CHECKPOINT, train

POS = ["这本书很好看，推荐", "质量不错，很满意", "服务热情，环境很好", "非常喜欢，值得购买", "房间干净，早餐丰富"]
NEG = ["质量太差了，失望", "服务很差，不推荐", "房间很脏，很吵", "一点也不好看，浪费钱", "物流太慢，包装破损"]
WORDS = ["今天", "天气", "很好", "我们", "去", "公园", "散步", "明天", "下雨", "不", "想", "出门"]
# momentum SGD: Adam divides by the root of tiny second moments, which magnifies float rounding into 1e-4
COMMON = {"epochs": 1, "embed_dim": 16, "hidden_size": 16, "heads": 2, "min_freq": 1, "optimizer": "momentum",
          "lr": 0.05, "dropout": 0.0, "device": "cpu", "dist_timeout": 120}
# as many processes' runs as cheap: each strategy once per task, PyTorch's engine on one and the hand-written on the other
CASES = {"classify": [("ddp", "fused"), ("zero1", "manual"), ("zero2", "fused"), ("zero3", "manual"), ("fsdp", "fused")],
         "lm": [("ddp", "manual"), ("zero1", "fused"), ("zero2", "manual"), ("zero3", "fused"), ("fsdp", "fused"),
                ("tp", "manual"), ("pp", "manual")]}


@pytest.fixture(scope="module")
def recipes(tmp_path_factory):
    """The two recipes: 96 training reviews in batches of 19 (the last one example: rank 1 gets none) for a small
    transformer classifier, and a 2-layer GPT on short documents."""
    folder = tmp_path_factory.mktemp("data")
    rng = random.Random(0)
    rows = [(label, rng.choice(words) + rng.choice(words)) for label, words in [("1", POS), ("0", NEG)] for _ in range(60)]
    rng.shuffle(rows)
    (folder / "reviews.tsv").write_text("label\ttext\n" + "".join(f"{label}\t{text}\n" for label, text in rows), encoding="utf-8")
    lines = ["".join(rng.choice(WORDS) for _ in range(rng.randint(3, 10))) + "。" for _ in range(80)]
    (folder / "docs.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return {"classify": {**COMMON, "data": str(folder / "reviews.tsv"), "model": "transformer", "layers": 1,
                         "batch_size": 19, "window_size": 32},
            "lm": {**COMMON, "task": "lm", "data": str(folder / "docs.txt"), "model": "gpt", "layers": 2,
                   "batch_size": 12, "window_size": 16}}


def config(recipe, **changes) -> TrainConfig:
    return TrainConfig.from_dict({**recipe, **changes})


def weights(run) -> dict[str, torch.Tensor]:
    return load_file(str(run / WEIGHTS))


def max_difference(a, b) -> float:
    assert a.keys() == b.keys()
    return max((a[name] - b[name]).abs().max().item() for name in a)


def every_case(recipes, folder):
    """On each rank: every case's run; (metrics, epochs this rank logged) by case."""
    results = {}
    for task, cases in CASES.items():
        for strategy, impl in cases:
            logged = []
            metrics = train(config(recipes[task], strategy=strategy, impl=impl), folder / f"{task}-{strategy}-{impl}",
                            on_epoch_end=lambda epoch, row: logged.append(epoch), progress=False)
            results[task, strategy, impl] = metrics, len(logged)
    return results


def test_every_strategy_trains_as_one_process(recipes, tmp_path):
    single = {task: train(config(recipe), tmp_path / task, progress=False) for task, recipe in recipes.items()}
    ranks = spawn(every_case, 2, recipes, tmp_path, timeout=600)
    for (task, strategy, impl), (metrics, logged) in ranks[0].items():
        run = tmp_path / f"{task}-{strategy}-{impl}"
        assert max_difference(weights(run), weights(tmp_path / task)) < 1e-5, (task, strategy, impl)
        assert metrics["test"]["loss"] == pytest.approx(single[task]["test"]["loss"], rel=1e-4)
        assert ranks[1][task, strategy, impl] == (metrics, 0), "every rank returns the metrics; rank 0 alone logs"
        assert logged == 1 and (run / "history.jsonl").read_text().count("\n") == 1
    for task in recipes:
        run = tmp_path / f"{task}-zero3-{dict(CASES[task])['zero3']}"
        evaluated = load_run(run, device="cpu").evaluate()
        assert evaluated["loss"] == pytest.approx(ranks[0][task, "zero3", dict(CASES[task])["zero3"]][0]["test"]["loss"],
                                                  rel=1e-6)


def interrupt_at(step: int, rank: int):
    """A classify task whose `rank` presses Ctrl-C while its 1st epoch yields batch `step`."""
    batches = ClassifyTask.train_batches

    def train_batches(self, generator):
        for k, batch in enumerate(batches(self, generator)):
            if k == step and dist.get_rank() == rank and not self.resume:
                os.kill(os.getpid(), signal.SIGINT)
            yield batch

    return train_batches


def interrupted_and_resumed(recipe, folder):
    """An uninterrupted run, and the same run stopped by rank 1 in the middle of epoch 1 (a copy of it kept for
    one process), then resumed by the 2 processes: (uninterrupted metrics, resumed metrics, interrupted)."""
    cfg = config(recipe, strategy="fsdp", epochs=2)
    full = train(cfg, folder / "full", progress=False)
    ClassifyTask.train_batches = interrupt_at(3, rank=1)
    try:
        train(cfg, folder / "cut", progress=False)
    except KeyboardInterrupt:
        interrupted = True
    else:
        interrupted = False
    if dist.get_rank() == 0:
        shutil.copytree(folder / "cut", folder / "cut-alone")
    dist.barrier()
    return full, train(cfg, folder / "cut", resume=True, progress=False), interrupted


def test_interrupted_run_resumes_distributed_or_in_one_process(recipes, tmp_path):
    (full, resumed, interrupted), _ = spawn(interrupted_and_resumed, 2, recipes["classify"], tmp_path, timeout=300)
    assert interrupted, "both ranks stop at the step where rank 1 was interrupted"
    assert (resumed["dev"], resumed["test"]) == (full["dev"], full["test"])
    assert max_difference(weights(tmp_path / "cut"), weights(tmp_path / "full")) == 0
    alone = train(config(recipes["classify"], strategy="single", epochs=2), tmp_path / "cut-alone", resume=True,
                  progress=False)
    assert max_difference(weights(tmp_path / "cut-alone"), weights(tmp_path / "full")) < 1e-5
    assert alone["test"]["loss"] == pytest.approx(full["test"]["loss"], rel=1e-4)


def cli(*args) -> tuple[int, str]:
    """(exit status, stderr) of `nlplab ARGS`."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        status = main([str(a) for a in args])
    return status, err.getvalue()


def flags(recipe) -> list[str]:
    return [f"--{key.replace('_', '-')}={value}" for key, value in recipe.items()]


def refusals(recipe, folder) -> list:
    """On each rank: `nlplab train` with splits that 2 processes cannot make, and what a collective that times out
    (rank 1 does not answer within the 1 s given) becomes."""
    said = [cli("train", *flags(recipe), "--strategy", "tp", "--heads", "3", "--hidden-size", "12", "--out", folder / "tp"),
            cli("train", *flags(recipe), "--strategy", "pp", "--layers", "1", "--out", folder / "pp")]
    impatient = dist.new_group(timeout=datetime.timedelta(seconds=1))
    try:
        with joined("ddp", torch.device("cpu"), timeout=1):
            if dist.get_rank() == 0:
                dist.all_reduce(torch.ones(1), group=impatient)
            else:
                time.sleep(2)
    except RankError as error:
        said.append(str(error))
    return said


def test_bad_input_says_one_line_once(recipes, tmp_path, monkeypatch):
    lm = flags(recipes["lm"])
    status, err = cli("train", *lm, "--strategy", "zero4", "--out", tmp_path / "x")
    assert status == 2 and err.count("\n") == 1 and "unknown strategy 'zero4'; choose --strategy from: single, ddp" in err
    status, err = cli("train", *lm, "--strategy", "ddp", "--out", tmp_path / "x")
    assert status == 2 and err.count("\n") == 1
    assert "--strategy ddp runs on several processes: start it with `torchrun --nproc-per-node N -m nlplab train" in err
    rank0, rank1 = spawn(refusals, 2, recipes["lm"], tmp_path, timeout=300)
    (tp, tp_err), (pp, pp_err), timed_out = rank0
    assert tp == pp == 2 and tp_err.count("\n") == pp_err.count("\n") == 1
    assert "--strategy tp splits every attention layer's 3 heads and 12 hidden units over the 2 processes: --heads and " \
           "--hidden-size must be divisible by 2" in tp_err
    assert "a pipeline of 2 stages needs at least 2 layers, the model has 1" in pp_err
    assert rank1 == [(2, ""), (2, "")], "the other ranks keep the same message to themselves"
    assert timed_out.startswith("rank 0 lost contact with the others (") and "did not answer within --dist-timeout 1 s; " \
        "the run keeps its last checkpoint, continue it with --resume" in timed_out
    monkeypatch.setenv("WORLD_SIZE", "2")
    status, err = cli("train", *lm, "--out", tmp_path / "x")
    assert status == 2 and "started as 2 processes with --strategy single" in err and err.count("\n") == 1
    assert not (tmp_path / "x").exists()


def test_torchrun_trains_and_one_process_loads_the_run(recipes, tmp_path):
    run = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                           "-m", "nlplab", "train", *flags(recipes["lm"]), "--strategy", "zero2",
                           "--no-progress", "--out", run], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert [line.split(":")[0] for line in lines if line.startswith("epoch")] == ["epoch 1"], done.stdout
    assert sum(line.startswith("best epoch") for line in lines) == 1
    assert (run / CHECKPOINT).is_file() and (run / "curves.png").is_file()
    predictor = load_run(run, device="cpu")
    assert predictor.evaluate()["ppl"] == pytest.approx(json.loads(lines[-1])["ppl"], rel=1e-6)



@pytest.mark.parametrize("changes, message", [
    ({"task": "lm", "model": "ngram"}, "the n-gram model is counted in one process; --strategy ddp needs"),
    ({"task": "lm", "model": "gpt", "moe_experts": 4}, "a mixture-of-experts GPT (--moe-experts) trains in one process"),
    ({"model": "transformer", "strategy": "pp"}, "--strategy pp cuts a GPT into stages: use --task lm --model gpt"),
    ({"l2": 0.01, "strategy": "zero2"}, "--l2 penalises whole weight matrices, which --strategy zero2 does not hold"),
    ({"task": "match", "model": "simcse"}, "the infonce loss takes the other pairs of a batch as negatives"),
])
def test_recipe_refuses_what_a_strategy_cannot_split(changes, message):
    recipe = {"data": "x.tsv", "strategy": "ddp", **changes}
    with pytest.raises(ConfigError, match=re.escape(message)):
        TrainConfig.from_dict(recipe, flags=frozenset(recipe))
    TrainConfig.from_dict({**recipe, "strategy": "single"})
    with pytest.raises(ConfigError, match=re.escape("--dist-timeout must be > 0 seconds")):
        TrainConfig.from_dict({"data": "x.tsv", "dist_timeout": 0}, flags=frozenset({"dist_timeout"}))
    with pytest.raises(ConfigError, match=re.escape("--micro-batches must be >= 1 or null")):
        TrainConfig.from_dict({"data": "x.tsv", "micro_batches": 0}, flags=frozenset({"micro_batches"}))
