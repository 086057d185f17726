import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits

from nlplab.errors import ConfigError, DataError
from nlplab.scratch import Network, one_hot

TOL = {"atol": 1e-9, "rtol": 1e-7}


def batch(net: Network, m: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Random inputs (n_in, m) and one-hot targets (n_out, m)."""
    rng = np.random.default_rng(seed)
    return rng.standard_normal((net.sizes[0], m)), one_hot(
        rng.integers(0, net.sizes[-1], m), net.sizes[-1]
    )


def torch_cost(net, x, y, lmbda, l1, n, masks=None):
    """The batch cost of ``net`` written with torch's own functions; returns (cost, weights, biases)."""
    weights = [torch.tensor(w, requires_grad=True) for w in net.weights]
    biases = [torch.tensor(b, requires_grad=True) for b in net.biases]
    a = torch.tensor(x)
    for layer, (w, b) in enumerate(zip(weights, biases)):
        z = w @ a + b
        a = torch.sigmoid(z)
        if masks is not None and layer < len(weights) - 1:
            a = a * torch.tensor(masks[layer])
    target = torch.tensor(y)
    m = x.shape[1]
    if net.cost.name == "cross_entropy":
        data = F.binary_cross_entropy_with_logits(z, target, reduction="sum") / m
    else:
        data = F.mse_loss(a, target, reduction="sum") / (2 * m)
    penalty = sum(
        lmbda / (2 * n) * w.pow(2).sum() + l1 / n * w.abs().sum() for w in weights
    )
    return data + penalty, weights, biases


@pytest.mark.parametrize("cost", ["cross_entropy", "quadratic"])
@pytest.mark.parametrize("lmbda, l1", [(0.0, 0.0), (3.0, 0.0), (0.0, 2.0)])
def test_backprop_equals_central_finite_differences(cost, lmbda, l1):
    net = Network([3, 4, 5, 2], cost=cost, seed=1)
    x, y = batch(net, 6, seed=2)
    grad_b, grad_w = net.backprop(x, y, lmbda, l1, n=20)
    eps = 1e-6
    for params, grads in ((net.weights, grad_w), (net.biases, grad_b)):
        for p, g in zip(params, grads):
            numeric = np.empty_like(p)
            for index in np.ndindex(p.shape):
                old = p[index]
                p[index] = old + eps
                plus = net.cost_value(x, y, lmbda, l1, n=20)
                p[index] = old - eps
                minus = net.cost_value(x, y, lmbda, l1, n=20)
                p[index] = old
                numeric[index] = (plus - minus) / (2 * eps)
            np.testing.assert_allclose(g, numeric, atol=1e-8, rtol=1e-6)


@pytest.mark.parametrize("cost", ["cross_entropy", "quadratic"])
@pytest.mark.parametrize("dropout", [0.0, 0.5])
def test_backprop_equals_torch_autograd(cost, dropout):
    torch.manual_seed(0)
    net = Network([7, 6, 5, 3], cost=cost, init="large", seed=3)
    x, y = batch(net, 9, seed=4)
    masks = net.dropout_masks(9, dropout) if dropout else None
    grad_b, grad_w = net.backprop(x, y, lmbda=2.0, l1=0.5, n=50, masks=masks)
    loss, weights, biases = torch_cost(net, x, y, 2.0, 0.5, 50, masks)
    loss.backward()
    for mine, reference in zip(grad_w + grad_b, weights + biases):
        torch.testing.assert_close(torch.tensor(mine), reference.grad, **TOL)
    if masks is None:
        torch.testing.assert_close(
            torch.tensor(net.cost_value(x, y, 2.0, 0.5, 50), dtype=torch.float64),
            loss.detach(),
            **TOL,
        )


def test_batch_gradient_is_mean_of_per_example_gradients():
    net = Network([4, 8, 3], seed=5)
    x, y = batch(net, 10, seed=6)
    grad_b, grad_w = net.backprop(x, y)
    singles = [net.backprop(x[:, [i]], y[:, [i]]) for i in range(10)]
    for layer in range(2):
        np.testing.assert_allclose(
            grad_b[layer], np.mean([gb[layer] for gb, _ in singles], axis=0), **TOL
        )
        np.testing.assert_allclose(
            grad_w[layer], np.mean([gw[layer] for _, gw in singles], axis=0), **TOL
        )


def test_dropout_masks_are_inverted_and_spare_the_output_layer():
    net = Network([4, 200, 300, 3], seed=7)
    masks = net.dropout_masks(50, 0.4)
    assert [mask.shape for mask in masks] == [(200, 50), (300, 50)]
    for mask in masks:
        assert set(np.unique(mask)) == {0.0, 1 / 0.6}
        assert abs(np.mean(mask) - 1.0) < 0.05


@pytest.mark.parametrize("lmbda, l1", [(0.0, 0.0), (4.0, 0.0), (0.0, 1.5)])
def test_one_sgd_step_equals_the_update_computed_by_hand(lmbda, l1):
    net = Network([5, 4, 3], cost="quadratic", seed=8)
    rng = np.random.default_rng(9)
    features, labels = rng.standard_normal((12, 5)), rng.integers(0, 3, 12)
    loss, weights, biases = torch_cost(
        net, features.T, one_hot(labels, 3), lmbda, l1, 12
    )
    loss.backward()
    net.sgd(
        (features, labels),
        epochs=1,
        mini_batch_size=12,
        eta=0.7,
        lmbda=lmbda,
        l1=l1,
        monitor=(),
    )
    for mine, reference in zip(net.weights + net.biases, weights + biases):
        torch.testing.assert_close(
            torch.tensor(mine), (reference - 0.7 * reference.grad).detach(), **TOL
        )


def digits() -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """scikit-learn's 8x8 digits scaled to [0, 1], shuffled, split into 1350 training and 447 held-out examples."""
    features, labels = load_digits(return_X_y=True)
    order = np.random.default_rng(0).permutation(len(labels))
    features, labels = features[order] / 16.0, labels[order]
    return (features[:1350], labels[:1350]), (features[1350:], labels[1350:])


def test_network_learns_digits_and_records_history():
    train, held_out = digits()
    net = Network([64, 30, 10], seed=0)
    assert net.accuracy(held_out) < 0.3
    history = net.sgd(
        train,
        epochs=8,
        mini_batch_size=10,
        eta=0.5,
        lmbda=1.0,
        evaluation_data=held_out,
    )
    assert set(history) == {
        "training_cost",
        "training_accuracy",
        "evaluation_cost",
        "evaluation_accuracy",
        "seconds",
    }
    assert all(len(values) == 8 for values in history.values())
    assert history["training_cost"][-1] < history["training_cost"][0]
    assert history["evaluation_accuracy"][-1] == net.accuracy(held_out) > 0.9


def test_l1_leaves_more_near_zero_weights_than_l2():
    train, _ = digits()
    near_zero = {}
    for name, strength in (("l1", {"l1": 3.0}), ("l2", {"lmbda": 3.0})):
        net = Network([64, 20, 10], seed=0)
        net.sgd(train, epochs=5, mini_batch_size=20, eta=0.5, monitor=(), **strength)
        near_zero[name] = np.mean(np.abs(net.weights[0]) < 1e-3)
    assert near_zero["l1"] > near_zero["l2"] + 0.1


def test_save_load_round_trip(tmp_path):
    net = Network([6, 5, 4], cost="quadratic", init="large", seed=10)
    net.save(tmp_path / "net.npz")
    loaded = Network.load(tmp_path / "net.npz")
    assert (loaded.sizes, loaded.cost, loaded.init) == (net.sizes, net.cost, net.init)
    x = np.random.default_rng(11).standard_normal((6, 3))
    np.testing.assert_array_equal(loaded.feedforward(x), net.feedforward(x))
    assert [p.name for p in tmp_path.iterdir()] == ["net.npz"]


def test_bad_input_raises_clear_errors(tmp_path):
    with pytest.raises(ConfigError, match="cost"):
        Network([4, 2], cost="hinge")
    with pytest.raises(ConfigError, match="sizes"):
        Network([4])
    net = Network([4, 3, 2])
    with pytest.raises(DataError, match="shape"):
        net.feedforward(np.zeros((3, 4)))
    with pytest.raises(DataError, match="labels"):
        net.accuracy((np.zeros((5, 4)), np.array([0, 1, 2, 0, 1])))
    with pytest.raises(ConfigError, match="evaluation_data"):
        net.sgd(
            (np.zeros((5, 4)), np.zeros(5, dtype=int)),
            1,
            5,
            0.1,
            monitor=["evaluation_accuracy"],
        )
    (tmp_path / "bad.npz").write_text("not numpy")
    with pytest.raises(DataError, match="Network.save"):
        Network.load(tmp_path / "bad.npz")
