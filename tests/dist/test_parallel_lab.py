"""The quick `parallel` lab runs end to end and its four claims hold: ZeRO memory per stage as the formula, ring
traffic under 2n whatever p, 2 + 2 all-reduces per tensor-parallel layer, a bubble that shrinks as (p−1)/(m+p−1)."""

import json

from nlplab.lab import run_lab


def test_quick_parallel_lab_holds(tmp_path):
    result = run_lab("parallel", tmp_path, quick=True, progress=False)
    assert result.holds, result.summary
    data = json.loads((tmp_path / "parallel.json").read_text())
    assert data["checks"] == {"zero": True, "ring": True, "tp": True, "bubble": True}
    assert len(data["plots"]) == 4 and all((tmp_path / plot).stat().st_size > 0 for plot in data["plots"])
    zero = {r["stage"]: r for r in data["zero"]["rows"]}
    assert zero[0]["nlplab MB"] > zero[1]["nlplab MB"] > zero[2]["nlplab MB"] > zero[3]["nlplab MB"]
    assert abs(zero[3]["PyTorch MB"] / zero[3]["nlplab MB"] - 1) < 1e-3, "FSDP FULL_SHARD holds 16Ψ/N at rest too"
    for row in data["tensor_parallel"]["rows"][1:]:
        assert row["all-reduces forward / layer"] == row["all-reduces backward / layer"] == 2
    bubble = [r["idle, replayed"] for r in data["pipeline"]["rows"] if r["schedule"] == "1f1b"]
    assert bubble == sorted(bubble, reverse=True)
