"""The quick variants of the classic labs (Nielsen's chapters 3 and 5): each must show its claim's direction."""

import json

import pytest

from nlplab.lab import run_lab


@pytest.fixture(scope="module")
def lab(tmp_path_factory, request):
    """Run the quick lab named by the test's parameter once; give back (result, JSON data)."""
    out = tmp_path_factory.mktemp(request.param)
    result = run_lab(request.param, out, quick=True, progress=False)
    return result, json.loads((out / f"{request.param}.json").read_text())


def rows_by(data: dict, *keys: str) -> dict:
    return {tuple(row[k] for k in keys): row for row in data["rows"]}


@pytest.mark.parametrize("lab", ["cost"], indirect=True)
def test_cost_saturated_quadratic_neuron_learns_slowly(lab):
    result, data = lab
    assert result.holds and data["holds"]
    rows = rows_by(data, "start", "cost")
    quadratic = rows["saturated (w=2, b=2)", "quadratic"]
    cross_entropy = rows["saturated (w=2, b=2)", "cross_entropy"]
    assert quadratic["initial output"] == pytest.approx(0.982, abs=1e-3)
    assert quadratic["epochs to output < 0.5"] > 5 * cross_entropy["epochs to output < 0.5"]
    assert 0 < quadratic["initial ∂C/∂w"] < 0.05 < cross_entropy["initial ∂C/∂w"]


@pytest.mark.parametrize("lab", ["regularization"], indirect=True)
def test_regularization_l1_leaves_more_zero_weights_than_l2(lab):
    result, data = lab
    assert result.holds and data["holds"]
    rows = rows_by(data, "penalty", "λ")
    for lam in {row["λ"] for row in data["rows"]}:
        assert rows["L1", lam]["frac abs(w)<1e-3"] > 5 * rows["L2", lam]["frac abs(w)<1e-3"]
    assert data["best"]["L1"]["validation_accuracy"] > 0.85 and data["best"]["L2"]["validation_accuracy"] > 0.85


@pytest.mark.parametrize("lab", ["init"], indirect=True)
def test_init_large_weights_saturate_and_learn_slowly(lab):
    result, data = lab
    assert result.holds and data["holds"]
    rows = rows_by(data, "init")
    assert rows[("N(0,1)",)]["saturated at init"] > 0.5
    assert rows[("N(0,1/n_in)",)]["saturated at init"] < 0.01
    assert rows[("N(0,1/n_in)",)]["accuracy after 1 epoch"] > rows[("N(0,1)",)]["accuracy after 1 epoch"] + 0.1
    assert len(data["validation_accuracy"]["Xavier"]) == data["epochs"] + 1


@pytest.mark.parametrize("lab", ["vanishing"], indirect=True)
def test_vanishing_gradient_in_sigmoid_not_relu(lab):
    result, data = lab
    assert result.holds and data["holds"]
    rows = rows_by(data, "activation", "hidden layer")
    assert rows["sigmoid", 1]["‖δ‖ at init"] * 10 < rows["sigmoid", 4]["‖δ‖ at init"]
    assert data["ratio_last_to_first"]["sigmoid"]["init"] > 20
    assert 1 / 3 < data["ratio_last_to_first"]["relu"]["first epoch"] < 3


@pytest.mark.parametrize("lab", ["hyperparams"], indirect=True)
def test_hyperparams_early_stopping_and_learning_rate(lab):
    result, data = lab
    assert result.holds and data["holds"]
    rows = rows_by(data, "experiment", "setting")
    overfit = next(row for row in data["rows"] if row["experiment"] == "epochs")
    assert overfit["training accuracy"] > overfit["validation accuracy"] + 0.1
    assert data["validation_cost_min_epoch"] < data["early_stopping_epoch"] < overfit["epochs"]
    slow, good, big = (rows["learning rate", f"η = {eta}"] for eta in ("0.025", "0.25", "25"))
    assert slow["training cost after epoch 1"] > good["training cost after epoch 1"]
    assert big["training cost"] > 2 * good["training cost"] and big["total rise of the cost"] > good["total rise of the cost"]
    assert rows["mini-batch", "m = 100"]["seconds per epoch"] < rows["mini-batch", "m = 1"]["seconds per epoch"]
