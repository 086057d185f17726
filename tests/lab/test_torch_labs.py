"""Each quick torch lab runs end to end, its claim holds, and one or two of its figures point the claim's way."""

import pytest


def check_attention_scale(data: dict) -> None:
    rows = {(r["d_k"], r["scale"]): r for r in data["rows"]}
    assert rows[(1024, "none")]["mean max weight"] > 0.9 > 0.3 > rows[(1024, "1/√d_k")]["mean max weight"]
    assert rows[(1024, "none")]["median ‖∂L/∂s‖"] < rows[(16, "none")]["median ‖∂L/∂s‖"] / 100
    assert 0.9 < rows[(1024, "1/√d_k")]["score std"] < 1.1


def check_norm(data: dict) -> None:
    rows = {(r["norm"], r["batching"]): r for r in data["rows"]}
    bn, ln = rows[("BatchNorm1d", "random")], rows[("LayerNorm", "random")]
    assert bn["var with / without pads"] == pytest.approx(1 - bn["pad fraction"], abs=0.1)
    assert bn["same-sentence spread"] > 0.01 and ln["same-sentence spread"] == 0.0 and ln["train−eval gap"] == 0.0


def check_dropout_bn(data: dict) -> None:
    shifted = data["rows"][0]
    assert shifted["arrangement"] == "dropout → BN" and shifted["var ratio L2"] < 0.85
    for layer in data["layers"]:
        if layer["arrangement"] == "dropout → BN" and layer["layer"] > 1:
            assert layer["input var, dropout on"] > 1.2 * layer["input var, dropout off"]
        else:
            assert layer["input var, dropout on"] == layer["input var, dropout off"]


def check_imbalance(data: dict) -> None:
    rows = {r["method"]: r for r in data["rows"]}
    base = rows["baseline"]
    assert base["accuracy"] > 0.9 and base["minority recall"] < 0.3
    assert rows["class weights"]["minority recall"] > 2 * base["minority recall"]
    assert rows["threshold moving"]["ROC-AUC"] == base["ROC-AUC"] and rows["threshold moving"]["threshold"] < 0.1
    assert data["train"]["negative"] == 10 * data["train"]["positive"]


def check_pretraining(data: dict) -> None:
    few, most = data["rows"][0], data["rows"][-1]
    assert few["labelled examples"] < most["labelled examples"] and few["gain"] > most["gain"] and few["gain"] > 0
    assert data["word2vec"]["vocab_size"] > 1000


def check_lora_rank(data: dict) -> None:
    rows = {r["method"]: r for r in data["rows"]}
    head = 384 * 2 + 2
    for r in (1, 64):  # 2·d·r for each of q and v in 6 layers of width 384, and the head
        assert rows[f"LoRA r={r}"]["trainable"] == 2 * 384 * r * 2 * 6 + head
    assert rows["full fine-tuning"]["trainable"] == rows["full fine-tuning"]["total"] == 22_713_216 + head
    assert rows["LoRA r=1"]["trainable %"] < 0.05 and rows["LoRA r=1"]["val accuracy"] > 0.55


CHECKS = {"attention-scale": check_attention_scale, "norm": check_norm, "dropout-bn": check_dropout_bn,
          "imbalance": check_imbalance, "pretraining": check_pretraining, "lora-rank": check_lora_rank}


@pytest.mark.parametrize("name", list(CHECKS))
def test_quick_lab_holds(name, quick_lab):
    CHECKS[name](quick_lab(name))
