import numpy as np
import pytest
import torch

from nlplab.errors import ConfigError
from nlplab.scratch.quadratic import (
    METHODS,
    compare,
    fit,
    gradient,
    hessian,
    least_squares,
    loss,
    make_data,
)

TOL = {"atol": 1e-10, "rtol": 1e-8}


def torch_loss(w: torch.Tensor, x: np.ndarray, y: np.ndarray) -> torch.Tensor:
    xt, yt = torch.tensor(x), torch.tensor(y)
    return torch.mean((w[0] * xt**2 + w[1] * xt + w[2] - yt) ** 2)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_hand_gradient_and_hessian_equal_autograd(seed):
    torch.manual_seed(seed)
    x, y = (
        torch.randn(50, dtype=torch.float64).numpy(),
        torch.randn(50, dtype=torch.float64).numpy(),
    )
    w = torch.randn(3, dtype=torch.float64, requires_grad=True)
    reference = torch_loss(w, x, y)
    reference.backward()
    torch.testing.assert_close(
        torch.tensor(loss(w.detach().numpy(), x, y), dtype=torch.float64),
        reference.detach(),
        **TOL,
    )
    torch.testing.assert_close(
        torch.tensor(gradient(w.detach().numpy(), x, y)), w.grad, **TOL
    )
    expected = torch.autograd.functional.hessian(
        lambda v: torch_loss(v, x, y), w.detach()
    )
    torch.testing.assert_close(torch.tensor(hessian(x)), expected, **TOL)


def test_newton_reaches_the_tolerance_in_one_iteration():
    x, y = make_data(noise=0.3, seed=3)
    result = fit(x, y, "newton", tol=1e-12, w0=np.array([5.0, 5.0, -5.0]))
    assert result.iterations == 1 and result.converged
    np.testing.assert_allclose(result.w, least_squares(x, y), atol=1e-10)


@pytest.mark.parametrize("seed", [0, 1])
def test_every_optimiser_converges_to_the_least_squares_solution(seed):
    x, y = make_data(seed=seed)
    tol = 1e-8
    smallest_curvature = np.linalg.eigvalsh(hessian(x))[0]
    radius = np.sqrt(2 * tol / smallest_curvature)  # L − L* = ½ dᵀHd ≤ tol bounds ‖d‖
    results = compare(x, y, tol=tol, seed=seed)
    assert list(results) == list(METHODS)
    for method, result in results.items():
        assert result.converged, method
        assert result.losses[-1] - loss(least_squares(x, y), x, y) <= tol
        assert (
            len(result.losses) == result.iterations + 1
            and result.losses[-1] < result.losses[0]
        )
        assert np.linalg.norm(result.w - least_squares(x, y)) <= radius, method


@pytest.mark.parametrize("method", ["gd", "momentum", "adam"])
def test_full_batch_methods_converge_on_noisy_data(method):
    x, y = make_data(noise=0.2, seed=4)
    result = fit(x, y, method, tol=1e-8)
    assert result.converged
    np.testing.assert_allclose(result.w, least_squares(x, y), atol=1e-3)


def test_unknown_method_raises():
    x, y = make_data(n=10)
    with pytest.raises(ConfigError, match="newton"):
        fit(x, y, "lbfgs")
    with pytest.raises(ConfigError, match="hyperparameters"):
        fit(x, y, "gd", momentum=0.9)
