"""Hand-written losses equal PyTorch's (or their formula written with torch ops), forward and gradient."""

from functools import partial

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.testing import assert_close

from nlplab.errors import ConfigError, DataError
from nlplab.nn import losses as L

TOL = dict(atol=1e-10, rtol=1e-8)
REDUCE = {"mean": torch.mean, "sum": torch.sum, "none": lambda t: t}
REDUCTIONS = list(REDUCE)


def assert_same_forward_and_backward(ours, ref, *inputs):
    """ours(*inputs) == ref(*inputs), and so are the gradients of <output, v> for a random v, for every input."""
    a = [x.detach().clone().requires_grad_() for x in inputs]
    b = [x.detach().clone().requires_grad_() for x in inputs]
    out, expected = ours(*a), ref(*b)
    assert_close(out, expected, **TOL)
    upstream = torch.randn_like(out)
    assert_close(
        torch.autograd.grad((out * upstream).sum(), a), torch.autograd.grad((expected * upstream).sum(), b), **TOL
    )


def randn(*shape):
    return torch.randn(*shape, dtype=torch.float64)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_mse_loss(reduction):
    torch.manual_seed(0)
    ours, ref = partial(L.mse_loss, reduction=reduction), partial(F.mse_loss, reduction=reduction)
    assert_same_forward_and_backward(ours, ref, randn(4, 5), randn(4, 5))


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("label_smoothing", [0.0, 0.2])
@pytest.mark.parametrize("ignore_index", [None, -100, 2], ids=["none_ignored", "ignore-100", "ignore_class2"])
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("shape", [(8, 5), (4, 5, 3)], ids=["NC", "NCd"])
def test_cross_entropy_equals_torch(shape, weighted, ignore_index, label_smoothing, reduction):
    torch.manual_seed(1)
    logits = 2 * randn(*shape)
    target = torch.randint(0, shape[1], (shape[0], *shape[2:]))
    kwargs = dict(label_smoothing=label_smoothing, reduction=reduction)
    if ignore_index is not None:
        target[torch.rand(target.shape) < 0.3] = ignore_index
        target.view(-1)[0] = 1  # at least one target is kept, or the mean is 0 / 0
        kwargs["ignore_index"] = ignore_index
    if weighted:
        kwargs["weight"] = torch.rand(shape[1], dtype=torch.float64) + 0.1
    ours = partial(L.cross_entropy, target=target, **kwargs)
    ref = partial(F.cross_entropy, target=target, **kwargs)
    assert_same_forward_and_backward(ours, ref, logits)


def test_cross_entropy_stays_finite_on_huge_logits():
    logits = torch.tensor([[1000.0, -1000.0, 0.0], [-1000.0, 1000.0, 999.0]], dtype=torch.float64)
    target = torch.tensor([1, 2])
    ours, ref = partial(L.cross_entropy, target=target), partial(F.cross_entropy, target=target)
    assert_same_forward_and_backward(ours, ref, logits)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("with_pos_weight", [False, True])
def test_binary_cross_entropy_with_logits_equals_torch(with_pos_weight, reduction):
    torch.manual_seed(2)
    logits, target = 3 * randn(6, 4), torch.rand(6, 4, dtype=torch.float64)
    pos_weight = torch.rand(4, dtype=torch.float64) * 3 if with_pos_weight else None
    ours = partial(L.binary_cross_entropy_with_logits, pos_weight=pos_weight, reduction=reduction)
    ref = partial(F.binary_cross_entropy_with_logits, pos_weight=pos_weight, reduction=reduction)
    assert_same_forward_and_backward(ours, ref, logits, target)


def test_binary_cross_entropy_with_logits_at_zero_and_huge_logits():
    logits = torch.tensor([0.0, 0.0, 1000.0, -1000.0, 1000.0, -1000.0], dtype=torch.float64)
    target = torch.tensor([0.0, 1.0, 0.0, 0.0, 1.0, 1.0], dtype=torch.float64)
    ours, ref = L.binary_cross_entropy_with_logits, F.binary_cross_entropy_with_logits
    assert_same_forward_and_backward(ours, ref, logits, target)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("margin", [1.0, 0.5])
def test_hinge_loss_equals_multi_margin_loss(margin, reduction):
    torch.manual_seed(3)
    scores, target = randn(7, 4), torch.randint(0, 4, (7,))
    ours = partial(L.hinge_loss, target=target, margin=margin, reduction=reduction)
    ref = partial(nn.MultiMarginLoss(p=1, margin=margin, reduction=reduction), target=target)
    assert_same_forward_and_backward(ours, ref, scores)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_binary_hinge_loss_equals_formula_and_two_class_multi_margin_loss(reduction):
    torch.manual_seed(4)
    score, y = 2 * randn(9), torch.randint(0, 2, (9,), dtype=torch.float64) * 2 - 1
    ours = partial(L.binary_hinge_loss, y=y, reduction=reduction)
    assert_same_forward_and_backward(ours, lambda s: REDUCE[reduction](F.relu(1 - y * s)), score)

    # scores (0, s) for classes (-1, +1): MultiMarginLoss = max(0, 1 - y s) / 2
    multi_margin = nn.MultiMarginLoss(p=1, reduction=reduction)
    two_class = lambda s: 2 * multi_margin(torch.stack([torch.zeros_like(s), s], dim=1), ((y + 1) / 2).long())
    assert_same_forward_and_backward(ours, two_class, score)


def focal_reference(logits, target, gamma, alpha):
    p_t = torch.softmax(logits, dim=1).gather(1, target[:, None]).squeeze(1)
    alpha_t = torch.ones_like(p_t) if alpha is None else alpha[target]
    return -alpha_t * (1 - p_t) ** gamma * torch.log(p_t)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("gamma", [0.0, 0.5, 2.0])
@pytest.mark.parametrize("with_alpha", [False, True])
def test_focal_loss_equals_formula(with_alpha, gamma, reduction):
    torch.manual_seed(5)
    logits, target = 2 * randn(8, 3), torch.randint(0, 3, (8,))
    alpha = torch.rand(3, dtype=torch.float64) if with_alpha else None
    ours = partial(L.focal_loss, target=target, gamma=gamma, alpha=alpha, reduction=reduction)
    ref = lambda x: REDUCE[reduction](focal_reference(x, target, gamma, alpha))
    assert_same_forward_and_backward(ours, ref, logits)


def test_focal_loss_without_focus_is_cross_entropy():
    torch.manual_seed(6)
    logits, target = 2 * randn(8, 3), torch.randint(0, 3, (8,))
    ours = partial(L.focal_loss, target=target, gamma=0.0)
    assert_same_forward_and_backward(ours, partial(F.cross_entropy, target=target), logits)


@pytest.mark.parametrize("num_keys", [6, 10])
@pytest.mark.parametrize("temperature", [0.05, 1.0])
def test_info_nce_equals_normalize_and_cross_entropy(temperature, num_keys):
    torch.manual_seed(7)

    def reference(q, k):
        logits = F.normalize(q, dim=-1) @ F.normalize(k, dim=-1).T / temperature
        return F.cross_entropy(logits, torch.arange(q.shape[0]))

    ours = partial(L.info_nce, temperature=temperature)
    assert_same_forward_and_backward(ours, reference, randn(6, 8), randn(num_keys, 8))


def test_bad_options_and_labels_raise_nlplab_errors():
    logits, target = randn(4, 3), torch.tensor([0, 1, 2, 1])
    with pytest.raises(ConfigError, match="reduction"):
        L.mse_loss(logits, logits, reduction="avg")
    with pytest.raises(ConfigError, match="integer class ids"):
        L.cross_entropy(logits, target.double())
    with pytest.raises(DataError, match=r"\[0, 3\)"):
        L.cross_entropy(logits, torch.tensor([0, 1, 3, 1]))
    with pytest.raises(ConfigError, match="label_smoothing"):
        L.cross_entropy(logits, target, label_smoothing=1.5)
    with pytest.raises(DataError, match="-1 or \\+1"):
        L.binary_hinge_loss(randn(3), torch.tensor([0.0, 1.0, 1.0]))
    with pytest.raises(ConfigError, match="temperature"):
        L.info_nce(randn(2, 3), randn(2, 3), temperature=0.0)
    with pytest.raises(DataError, match="key for every query"):
        L.info_nce(randn(3, 3), randn(2, 3))
