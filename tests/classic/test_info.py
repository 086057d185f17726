"""Information theory against scipy.stats.entropy and sklearn's mutual_info_score; the identities on random inputs."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import entropy as scipy_entropy
from sklearn.metrics import mutual_info_score

from nlplab.classic.info import (
    DistributionError,
    conditional_entropy,
    cross_entropy,
    entropy,
    joint_distribution,
    joint_entropy,
    kl_divergence,
    mutual_information,
    mutual_information_samples,
)


def distribution(rng, k, zeros=0):
    p = rng.random(k)
    p[rng.choice(k, zeros, replace=False)] = 0
    return p / p.sum()


@pytest.mark.parametrize("base", [None, 2, 10])
def test_entropy_kl_cross_entropy_equal_scipy(base):
    rng = np.random.default_rng(0)
    for k in (1, 2, 5, 30):
        p, q = distribution(rng, k, zeros=k // 3), distribution(rng, k)
        assert entropy(p, base) == pytest.approx(scipy_entropy(p, base=base), abs=1e-12)
        assert kl_divergence(p, q, base) == pytest.approx(scipy_entropy(p, q, base=base), abs=1e-12)
        assert cross_entropy(p, q, base) == pytest.approx(scipy_entropy(p, base=base) + scipy_entropy(p, q, base=base), abs=1e-12)


def test_zero_probabilities_as_scipy():
    p, q = np.array([0.5, 0.5, 0.0]), np.array([0.5, 0.0, 0.5])
    assert entropy(p) == pytest.approx(np.log(2))
    assert kl_divergence(p, q) == np.inf == scipy_entropy(p, q)
    assert cross_entropy(p, q) == np.inf
    r = np.array([0.25, 0.75, 0.0])  # q = 0 where p = 0 costs nothing
    assert np.isfinite(kl_divergence(p, r)) and kl_divergence(p, r) == pytest.approx(scipy_entropy(p, r), abs=1e-12)


def test_batched_over_leading_axes():
    rng = np.random.default_rng(1)
    p = rng.dirichlet(np.ones(4), size=(3, 2))
    assert np.allclose(entropy(p), [[scipy_entropy(row) for row in block] for block in p], atol=1e-12)
    tables = rng.dirichlet(np.ones(6), size=5).reshape(5, 2, 3)
    assert np.allclose(mutual_information(tables), [mutual_information(t) for t in tables], atol=1e-12)


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 6), st.integers(1, 6))
def test_mutual_information_of_samples_equals_sklearn(seed, nx, ny):
    rng = np.random.default_rng(seed)
    x, y = rng.integers(0, nx, 50), rng.integers(0, ny, 50)
    y = np.where(rng.random(50) < 0.5, x, y)  # some dependence
    assert mutual_information_samples(x, y) == pytest.approx(mutual_info_score(x, y), abs=1e-12)
    assert mutual_information_samples(x, y, base=2) == pytest.approx(mutual_info_score(x, y) / np.log(2), abs=1e-12)


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 8), st.integers(1, 8), st.sampled_from([None, 2.0]))
def test_identities_on_random_distributions(seed, nx, ny, base):
    rng = np.random.default_rng(seed)
    p, q = rng.dirichlet(np.ones(nx)), rng.dirichlet(np.ones(nx))
    assert cross_entropy(p, q, base) == pytest.approx(entropy(p, base) + kl_divergence(p, q, base), abs=1e-10)
    assert kl_divergence(p, q, base) >= -1e-12
    pxy = rng.dirichlet(np.ones(nx * ny)).reshape(nx, ny)
    hx, hy = entropy(pxy.sum(1), base), entropy(pxy.sum(0), base)
    assert mutual_information(pxy, base) == pytest.approx(hx - conditional_entropy(pxy, base), abs=1e-10)
    assert mutual_information(pxy, base) == pytest.approx(hx + hy - joint_entropy(pxy, base), abs=1e-10)
    assert mutual_information(np.outer(pxy.sum(1), pxy.sum(0)), base) == pytest.approx(0.0, abs=1e-12)


def test_joint_distribution_counts_pairs():
    table = joint_distribution(["a", "b", "a", "a"], [1, 1, 2, 1])
    assert np.array_equal(table, np.array([[0.5, 0.25], [0.25, 0.0]]))


@pytest.mark.parametrize("bad, message", [([0.5, 0.4], "sum to 0.9, not 1 (tolerance 1e-06)"),
                                          ([1.2, -0.2], ">= 0"), ([], "non-empty")])
def test_bad_distribution_named(bad, message):
    with pytest.raises(DistributionError, match=message.replace("(", r"\(").replace(")", r"\)")):
        entropy(bad)
