"""The GP posterior equals scikit-learn's GaussianProcessRegressor; EI equals its formula with SciPy's normal; the
optimiser finds the minimum of 1-D and 2-D test functions in fewer evaluations than random search, over many seeds."""

import numpy as np
import pytest
from scipy.stats import norm
from sklearn.gaussian_process import GaussianProcessRegressor
from sklearn.gaussian_process.kernels import RBF

from nlplab.classic.bayesopt import GaussianProcess, expected_improvement, minimize


def test_gp_posterior_equals_sklearn():
    rng = np.random.default_rng(0)
    X, X_new = rng.random((15, 2)), rng.random((40, 2))
    y = np.sin(6 * X[:, 0]) + X[:, 1] ** 2
    for scale in (0.1, 0.3, 1.0):
        ours = GaussianProcess(length_scale=scale, noise=1e-4).fit(X, y)
        theirs = GaussianProcessRegressor(RBF(scale), alpha=1e-4, optimizer=None).fit(X, y)
        mean, std = theirs.predict(X_new, return_std=True)
        assert np.allclose(ours.predict(X_new)[0], mean, atol=1e-8) and np.allclose(ours.predict(X_new)[1], std, atol=1e-8)
        assert ours.log_marginal_likelihood(scale) == pytest.approx(theirs.log_marginal_likelihood_value_, abs=1e-8)
    chosen = GaussianProcess(noise=1e-4).fit(X, y)
    assert chosen.log_marginal_likelihood(chosen.length_scale_) >= max(chosen.log_marginal_likelihood(s) for s in (0.1, 0.3, 1.0))


def test_expected_improvement_formula():
    rng = np.random.default_rng(1)
    mean, std, best = rng.normal(size=50), rng.random(50) + 0.01, 0.2
    gain = best - mean - 0.01
    assert np.allclose(expected_improvement(mean, std, best), gain * norm.cdf(gain / std) + std * norm.pdf(gain / std), atol=1e-12)
    assert expected_improvement(np.array([0.0]), np.array([0.0]), 1.0)[0] == 0.0


def forrester_like(x):
    return float(np.sin(3 * x[0]) + x[0] ** 2 - 0.7 * x[0])


def branin(x):
    a, b, c, r, s, t = 1, 5.1 / (4 * np.pi**2), 5 / np.pi, 6, 10, 1 / (8 * np.pi)
    return float(a * (x[1] - b * x[0] ** 2 + c * x[0] - r) ** 2 + s * (1 - t) * np.cos(x[0]) + s)


def evaluations_to_reach(search, target):
    hit = np.flatnonzero(search.best_so_far() <= target)
    return int(hit[0]) + 1 if hit.size else len(search.values) + 1


@pytest.mark.parametrize("f, bounds, minimum, tol, calls", [
    (forrester_like, [(-1.0, 2.0)], -0.500360, 0.01, 15),
    (branin, [(-5.0, 10.0), (0.0, 15.0)], 0.397887, 0.5, 40),
])
def test_gp_beats_random_search_over_seeds(f, bounds, minimum, tol, calls):
    gp, rnd = [], []
    for seed in range(12):
        gp.append(evaluations_to_reach(minimize(f, bounds, calls, seed=seed), minimum + tol))
        rnd.append(evaluations_to_reach(minimize(f, bounds, calls, seed=seed, method="random"), minimum + tol))
    assert np.median(gp) < np.median(rnd) and sum(g < r for g, r in zip(gp, rnd)) >= 9
    assert np.median(gp) < calls  # the GP does get there
