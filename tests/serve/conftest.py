"""Small runs for the server's tests, trained once per session with `nlplab train`, and servers on loopback."""

import random

import pytest
import torch

from nlplab.cli import main
from nlplab.runs import load_run

WORDS = ["今天", "天气", "很好", "我们", "去", "公园", "散步", "这家", "酒店", "服务", "不错", "。"]
POS = ["这本书很好看，推荐", "质量不错，很满意", "服务热情，环境很好", "非常喜欢，值得购买", "房间干净，早餐丰富"]
NEG = ["质量太差了，失望", "服务很差，不推荐", "房间很脏，很吵", "一点也不好看，浪费钱", "物流太慢，包装破损"]


def train(*args):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert main(["train", *map(str, args), "--device", "cpu", "--no-progress"]) == 0
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def lm_run(tmp_path_factory):
    """A character GPT (2 layers, d=32, window 64) trained 15 short epochs on 300 lines `问：…答：…`."""
    folder = tmp_path_factory.mktemp("serve-lm")
    rng = random.Random(0)
    words = lambda low, high: "".join(rng.choice(WORDS) for _ in range(rng.randint(low, high)))  # noqa: E731
    docs = folder / "docs.txt"
    docs.write_text("\n".join(f"问：{words(2, 4)}答：{words(3, 10)}" for _ in range(300)) + "\n", encoding="utf-8")
    train("--task", "lm", "--data", docs, "--model", "gpt", "--window-size", 64, "--hidden-size", 32, "--heads", 2,
          "--layers", 2, "--epochs", 15, "--lr", 1e-2, "--min-freq", 1, "--seed", 0, "--out", folder / "run")
    return folder / "run"


@pytest.fixture(scope="session")
def classify_run(tmp_path_factory):
    """A bag-of-words sentiment classifier trained on 120 short reviews."""
    folder = tmp_path_factory.mktemp("serve-classify")
    rng = random.Random(0)
    rows = [("1", rng.choice(POS) + rng.choice(POS)) for _ in range(60)] + [("0", rng.choice(NEG) + rng.choice(NEG))
                                                                         for _ in range(60)]
    rng.shuffle(rows)
    data = folder / "tiny.tsv"
    data.write_text("label\ttext_a\n" + "".join(f"{label}\t{text}\n" for label, text in rows), encoding="utf-8")
    train("--data", data, "--model", "bow", "--epochs", 2, "--seed", 0, "--out", folder / "run")
    return folder / "run"


@pytest.fixture(scope="session")
def lm(lm_run):
    return load_run(lm_run, "cpu")


@pytest.fixture(scope="session")
def classifier(classify_run):
    return load_run(classify_run, "cpu")
