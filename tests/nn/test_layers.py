"""Linear, Embedding, Dropout, BatchNorm1d, LayerNorm, fused and manual, against torch.nn in float64, forward
and gradients."""

import pytest
import torch
from torch import nn

from nlplab.errors import ConfigError
from nlplab.nn.layers import BatchNorm1d, Dropout, Embedding, LayerNorm, Linear, check_impl, dropout

F64 = dict(rtol=1e-10, atol=1e-10)
IMPLS = ["fused", "manual"]


def twin(ours: nn.Module, theirs: nn.Module, randomize: bool = True) -> nn.Module:
    """Give `theirs` the (optionally re-drawn) parameters and buffers of `ours`, both in float64."""
    ours.double()
    if randomize:
        with torch.no_grad():
            for p in ours.parameters():
                p.normal_()
    theirs.double().load_state_dict(ours.state_dict())
    return theirs


def assert_same_forward_and_grads(ours: nn.Module, theirs: nn.Module, x: torch.Tensor) -> None:
    """Same output, and same gradient of a random projection of it w.r.t. the input (if float) and parameters."""
    x_ours, x_theirs = x.clone().requires_grad_(x.is_floating_point()), x.clone().requires_grad_(x.is_floating_point())
    y_ours, y_theirs = ours(x_ours), theirs(x_theirs)
    torch.testing.assert_close(y_ours, y_theirs, **F64)
    probe = torch.randn_like(y_ours)
    (y_ours * probe).sum().backward()
    (y_theirs * probe).sum().backward()
    if x.is_floating_point():
        torch.testing.assert_close(x_ours.grad, x_theirs.grad, **F64)
    for (name, p), q in zip(ours.named_parameters(), theirs.parameters()):
        torch.testing.assert_close(p.grad, q.grad, **F64, msg=name)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("bias", [True, False])
def test_linear_matches_torch(bias, impl):
    torch.manual_seed(0)
    ours = Linear(7, 5, bias=bias, impl=impl)
    theirs = twin(ours, nn.Linear(7, 5, bias=bias))
    assert_same_forward_and_grads(ours, theirs, torch.randn(4, 3, 7, dtype=torch.float64))


def test_linear_and_embedding_init_like_torch():
    pairs = [(lambda: Linear(30, 20), lambda: nn.Linear(30, 20)),
             (lambda: Embedding(30, 8, padding_idx=2), lambda: nn.Embedding(30, 8, padding_idx=2))]
    for make_ours, make_theirs in pairs:
        torch.manual_seed(3)
        ours = make_ours()
        torch.manual_seed(3)
        theirs = make_theirs()
        assert ours.state_dict().keys() == theirs.state_dict().keys()
        for key, value in theirs.state_dict().items():
            torch.testing.assert_close(ours.state_dict()[key], value, rtol=0, atol=0)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("padding_idx", [None, 0, -1])
def test_embedding_matches_torch_with_padding_gradient(padding_idx, impl):
    torch.manual_seed(1)
    ours = Embedding(11, 6, padding_idx=padding_idx, impl=impl)
    theirs = twin(ours, nn.Embedding(11, 6, padding_idx=padding_idx))  # the padding row is non-zero now
    ids = torch.randint(0, 11, (4, 9))
    ids[:, -2:] = 10 if padding_idx == -1 else 0
    assert_same_forward_and_grads(ours, theirs, ids)
    if padding_idx is not None:
        assert ours.weight.grad[padding_idx].abs().sum() == 0
        assert ours.weight.grad.abs().sum() > 0


def test_embedding_padding_row_starts_at_zero():
    assert Embedding(5, 3, padding_idx=4).weight[4].abs().sum() == 0
    with pytest.raises(ConfigError, match="padding_idx"):
        Embedding(5, 3, padding_idx=5)


@pytest.mark.parametrize("impl", IMPLS)
def test_dropout_is_identity_in_eval_and_with_p_zero(impl):
    torch.manual_seed(2)
    x = torch.randn(8, 10, dtype=torch.float64)
    assert torch.equal(Dropout(0.5, impl=impl).eval()(x), x)
    assert torch.equal(Dropout(0.0, impl=impl).train()(x), x)


@pytest.mark.parametrize("impl", IMPLS)
def test_dropout_train_statistics_and_scaling(impl):
    torch.manual_seed(3)
    p = 0.3
    x = torch.rand(1000, 1000, dtype=torch.float64) + 1.0  # never zero, so a zero output means dropped
    y = Dropout(p, impl=impl).train()(x)
    kept = y != 0
    assert (~kept).double().mean().item() == pytest.approx(p, abs=0.005)
    torch.testing.assert_close(y[kept], x[kept] / (1 - p), **F64)
    assert y.mean().item() == pytest.approx(x.mean().item(), rel=0.01)


@pytest.mark.parametrize("impl", IMPLS)
def test_dropout_gradient_is_the_scaled_mask(impl):
    torch.manual_seed(4)
    x = torch.randn(50, 40, dtype=torch.float64, requires_grad=True)
    y = Dropout(0.25, impl=impl).train()(x)
    y.sum().backward()
    torch.testing.assert_close(x.grad, (y != 0).double() / 0.75, **F64)


@pytest.mark.parametrize("impl", IMPLS)
def test_dropout_same_seed_same_mask(impl):
    x = torch.randn(30, 30)
    masks = []
    for _ in range(2):
        torch.manual_seed(5)
        masks.append(Dropout(0.5, impl=impl)(x) == 0)
    assert torch.equal(*masks)
    assert not torch.equal(masks[0], Dropout(0.5, impl=impl)(x) == 0)


def test_dropout_function_is_the_manual_impl():
    x = torch.randn(30, 30, dtype=torch.float64)
    torch.manual_seed(6)
    y = dropout(x, 0.4, training=True)
    torch.manual_seed(6)
    assert torch.equal(y, Dropout(0.4, impl="manual")(x))
    assert torch.equal(dropout(x, 0.4, training=False), x)


@pytest.mark.parametrize("p", [-0.1, 1.0, 1.5])
def test_dropout_rejects_bad_p(p):
    with pytest.raises(ConfigError, match="dropout"):
        Dropout(p)


def test_check_impl():
    assert check_impl("manual") == "manual"
    with pytest.raises(ConfigError, match="impl"):
        check_impl("cuda")


@pytest.mark.parametrize("make", [lambda impl: Linear(3, 2, impl=impl), lambda impl: Embedding(5, 3, impl=impl),
                                  lambda impl: Dropout(0.1, impl=impl), lambda impl: BatchNorm1d(3, impl=impl),
                                  lambda impl: LayerNorm(3, impl=impl)],
                         ids=["linear", "embedding", "dropout", "batchnorm", "layernorm"])
def test_layers_reject_unknown_impl(make):
    with pytest.raises(ConfigError, match="impl"):
        make("cuda")


@pytest.mark.parametrize("make, make_input", [
    (lambda impl: Linear(6, 4, impl=impl), lambda: torch.randn(3, 5, 6, dtype=torch.float64)),
    (lambda impl: Embedding(9, 4, padding_idx=1, impl=impl), lambda: torch.randint(0, 9, (5, 7))),
    (lambda impl: BatchNorm1d(4, impl=impl), lambda: torch.randn(6, 4, 3, dtype=torch.float64)),
    (lambda impl: LayerNorm(4, impl=impl), lambda: torch.randn(3, 5, 4, dtype=torch.float64)),
], ids=["linear", "embedding", "batchnorm", "layernorm"])
def test_fused_equals_manual_with_the_same_state_dict(make, make_input):
    torch.manual_seed(8)
    x = make_input()
    manual = make("manual")
    fused = twin(manual, make("fused"))  # load_state_dict is strict: same names and shapes
    assert manual.state_dict().keys() == fused.state_dict().keys()
    assert_same_forward_and_grads(fused, manual, x)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("shape", [(6, 4), (5, 4, 7)])
def test_batchnorm_matches_torch_in_train_and_eval(shape, impl):
    torch.manual_seed(6)
    ours = BatchNorm1d(4, momentum=0.2, impl=impl)
    theirs = twin(ours, nn.BatchNorm1d(4, momentum=0.2))
    assert ours.state_dict().keys() == theirs.state_dict().keys()
    for _ in range(3):
        ours.zero_grad()
        theirs.zero_grad()
        assert_same_forward_and_grads(ours, theirs, 3 * torch.randn(shape, dtype=torch.float64) + 1)
    for key, value in theirs.state_dict().items():
        torch.testing.assert_close(ours.state_dict()[key], value, **F64, msg=key)
    assert ours.num_batches_tracked.item() == 3
    ours.eval()
    theirs.eval()
    ours.zero_grad()
    theirs.zero_grad()
    assert_same_forward_and_grads(ours, theirs, torch.randn(shape, dtype=torch.float64))


@pytest.mark.parametrize("impl", IMPLS)
def test_batchnorm_rejects_bad_shapes(impl):
    with pytest.raises(ValueError, match="expects"):
        BatchNorm1d(4, impl=impl)(torch.randn(3, 5))
    with pytest.raises(ValueError, match="more than one value"):
        BatchNorm1d(4, impl=impl)(torch.randn(1, 4))


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("normalized_shape", [6, (3, 6)])
def test_layernorm_matches_torch(normalized_shape, impl):
    torch.manual_seed(7)
    ours = LayerNorm(normalized_shape, eps=1e-3, impl=impl)
    theirs = twin(ours, nn.LayerNorm(normalized_shape, eps=1e-3))
    assert_same_forward_and_grads(ours, theirs, 2 * torch.randn(4, 3, 6, dtype=torch.float64) - 1)
