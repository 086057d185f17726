import json

import numpy as np
import pytest
import torch

from nlplab.lab import run_lab
from nlplab.lab.nielsen_torch import MLP, Recipe, cost_fn, expand_mnist, train
from nlplab.scratch.network import Network


def test_quick_nielsen_lab_shows_the_direction_and_writes_the_rungs(tmp_path):
    result = run_lab("nielsen", tmp_path, quick=True, progress=False)
    assert result.holds
    data = json.loads((tmp_path / "nielsen.json").read_text())
    rungs = {r["rung"]: r for r in data["rungs"]}
    assert list(rungs) == ["1", "2", "3a", "3b", "4", "5", "6", "6+", "svc"]
    for rung in rungs.values():
        assert {"rung", "book", "test_accuracy", "epochs", "seconds"} <= set(rung)
        assert rung["test_accuracy"] > 30  # three times chance on 5,000 images and two epochs
    assert rungs["3b"]["test_accuracy"] > rungs["1"]["test_accuracy"]
    assert all("torch_test_accuracy" in rungs[k] for k in ("1", "2", "3a", "3b", "4"))
    implementations = [(r["rung"], r["implementation"]) for r in data["rows"]]
    assert ("1", "numpy") in implementations and ("1", "torch") in implementations and ("6", "torch") in implementations
    assert (tmp_path / "nielsen_validation.png").stat().st_size > 0
    assert not (tmp_path / "nielsen.partial.json").exists()


def test_expand_mnist_adds_the_four_one_pixel_shifts():
    x = np.zeros((1, 28, 28), dtype=np.float32)
    x[0, 0, 5] = 1.0  # top row: shifting up pushes it out
    x[0, 10, 27] = 2.0  # right column: shifting right pushes it out
    expanded, labels = expand_mnist(x.reshape(1, 784), np.array([7]))
    images = {tuple(map(tuple, np.argwhere(img))): img for img in expanded.reshape(-1, 28, 28)}
    assert len(expanded) == 5 and set(labels) == {7}
    assert set(images) == {((0, 5), (10, 27)), ((1, 5), (11, 27)), ((9, 27),), ((0, 6),), ((0, 4), (10, 26))}
    assert expanded.sum() == pytest.approx(5 * 3.0 - 1.0 - 2.0)


@pytest.mark.parametrize("cost", ["quadratic", "cross_entropy"])
def test_torch_mlp_matches_the_numpy_network_cost_and_gradients(cost):
    torch.set_default_dtype(torch.float64)
    try:
        net = Network([6, 5, 4, 3], cost=cost, init="large", seed=1)
        model = MLP.from_network(net)
        rng = np.random.default_rng(0)
        x, labels = rng.random((7, 6)), rng.integers(0, 3, 7)
        lmbda, n = 2.0, 50
        y = np.eye(3)[labels].T
        grad_b, grad_w = net.backprop(x.T, y, lmbda=lmbda, n=n)
        loss = cost_fn(cost, model(torch.from_numpy(x)), torch.from_numpy(labels))
        loss = loss + lmbda / (2 * n) * sum((layer.weight**2).sum() for layer in model.layers)
        loss.backward()
        assert loss.item() == pytest.approx(net.cost_value(x.T, y, lmbda=lmbda, n=n), rel=1e-12)
        for layer, gw, gb in zip(model.layers, grad_w, grad_b):
            np.testing.assert_allclose(layer.weight.grad.numpy(), gw, rtol=1e-10, atol=1e-12)
            np.testing.assert_allclose(layer.bias.grad.numpy(), gb[:, 0], rtol=1e-10, atol=1e-12)
    finally:
        torch.set_default_dtype(torch.float32)


@pytest.mark.parametrize("cost, lmbda", [("quadratic", 0.0), ("cross_entropy", 5.0)])
def test_torch_training_follows_the_numpy_network_step_for_step(cost, lmbda):
    torch.set_default_dtype(torch.float64)
    try:
        rng = np.random.default_rng(3)
        x, labels = rng.random((60, 8)), rng.integers(0, 3, 60)
        net = Network([8, 6, 3], cost=cost, init="large", seed=2)
        twin = Network([8, 6, 3], cost=cost, init="large", seed=2)
        model = MLP.from_network(twin)
        net.sgd((x, labels), 2, 7, 0.5, lmbda=lmbda, monitor=[])
        history = train(model, Recipe(2, 7, 0.5, cost, lmbda), (x, labels), (x, labels), (x, labels), twin.rng)
        for layer, w, b in zip(model.layers, net.weights, net.biases):
            np.testing.assert_allclose(layer.weight.detach().numpy(), w, rtol=1e-10, atol=1e-12)
            np.testing.assert_allclose(layer.bias.detach().numpy(), b[:, 0], rtol=1e-10, atol=1e-12)
        assert history.test[-1] == net.accuracy((x, labels))
    finally:
        torch.set_default_dtype(torch.float32)


def test_max_norm_keeps_every_units_incoming_weights_inside_the_ball():
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    x, labels = rng.random((40, 8)).astype(np.float32), rng.integers(0, 3, 40)
    model = MLP([8, 16, 3], "relu")
    assert max(float(layer.weight.detach().norm(dim=1).max()) for layer in model.layers) > 0.5
    train(model, Recipe(1, 5, 1.0, "log_likelihood", max_norm=0.5), (x, labels), (x, labels), (x, labels), rng)
    assert max(float(layer.weight.detach().norm(dim=1).max()) for layer in model.layers) <= 0.5 + 1e-6
