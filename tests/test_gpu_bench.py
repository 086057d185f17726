"""benchmarks/gpu_bench.py runs end to end on the CPU with its tiny shapes (so the GPU benchmark cannot rot where no
GPU is lent): the peak is measured (MFU only checked to use one FLOP count per token: on a loaded CPU a tiny
step can outrun the measured peak), nlplab and Hugging Face start from the same weights (equal first loss) and
decode the same ids, compiled versions report their compile time apart, and the perplexity table is filled."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_bench.py"


def test_gpu_bench_runs_tiny_on_the_cpu(tmp_path):
    subprocess.run([sys.executable, str(BENCH), "--tiny", "--device", "cpu", "--backend", "eager", "--warmup", "1",
                    "--steps", "1", "--new", "4", "--rounds", "1", "--lm-budget", "0.5", "--out", str(tmp_path)],
                   check=True, capture_output=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    result = json.loads((tmp_path / "gpu.json").read_text())
    assert result["tiny"] and result["peak"]["flops_per_second"] > 0
    training = result["training"]
    assert training["same_logits"] and training["same_first_loss"]
    assert set(training["rows"]) == {"nlplab eager", "HF eager", "nlplab compiled", "HF compiled"}
    for name, row in training["rows"].items():
        assert row["tokens_per_second"] > 0 and row["mfu"] > 0
        assert (row["compile_seconds"] > 0) == name.endswith("compiled")
    flops_over_peak = {row["mfu"] / row["tokens_per_second"] for row in training["rows"].values()}
    assert max(flops_over_peak) == pytest.approx(min(flops_over_peak), rel=1e-9)    # one shape, one FLOP count
    assert result["decoding"]["same_ids"] == {"greedy": True, "beam 4": True}
    assert [row["model"] for row in result["lm_rows"]] == ["3-gram KN", "GPT"]
    assert "| nlplab compiled |" in (tmp_path / "gpu.md").read_text()
