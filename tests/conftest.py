import random

import pytest
import torch

POS = ["这本书很好看，推荐", "质量不错，很满意", "服务热情，环境很好", "非常喜欢，值得购买", "房间干净，早餐丰富"]
NEG = ["质量太差了，失望", "服务很差，不推荐", "房间很脏，很吵", "一点也不好看，浪费钱", "物流太慢，包装破损"]
WORDS = ["今天", "天气", "很好", "我们", "去", "公园", "散步", "明天", "下雨", "不", "想", "出门"]


@pytest.fixture
def tiny_tsv(tmp_path):
    """A small, learnable two-class `label<TAB>text` file with a header (120 examples)."""
    rng = random.Random(0)
    rows = [("1", rng.choice(POS) + rng.choice(POS)) for _ in range(60)] + [("0", rng.choice(NEG) + rng.choice(NEG)) for _ in range(60)]
    rng.shuffle(rows)
    path = tmp_path / "tiny.tsv"
    path.write_text("label\ttext_a\n" + "".join(f"{label}\t{text}\n" for label, text in rows), encoding="utf-8")
    return path


@pytest.fixture
def word_corpus(tmp_path):
    """`word_corpus(lines, low, high)` writes `lines` sentences of low..high random WORDS and "。" (seed 0), one per
    line, to docs.txt and returns its path: a tiny learnable text corpus."""
    def write(lines: int, low: int, high: int):
        rng = random.Random(0)
        text = ["".join(rng.choice(WORDS) for _ in range(rng.randint(low, high))) + "。" for _ in range(lines)]
        path = tmp_path / "docs.txt"
        path.write_text("\n".join(text) + "\n", encoding="utf-8")
        return path

    return write


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models run many times faster on one intra-op thread than on a contended 2-core machine's two."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
