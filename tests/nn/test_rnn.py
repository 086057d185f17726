"""RNN/LSTM/GRU cells and layers against torch.nn in float64: outputs, final states and gradients."""

import pytest
import torch
from torch import nn

from nlplab.errors import ConfigError, DataError
from nlplab.nn.rnn import GRU, LSTM, RNN, GRUCell, LSTMCell, RNNCell

F64 = dict(rtol=1e-9, atol=1e-10)

CELLS = [
    (lambda: RNNCell(5, 4), lambda: nn.RNNCell(5, 4)),
    (lambda: RNNCell(5, 4, nonlinearity="relu"), lambda: nn.RNNCell(5, 4, nonlinearity="relu")),
    (lambda: LSTMCell(5, 4), lambda: nn.LSTMCell(5, 4)),
    (lambda: GRUCell(5, 4), lambda: nn.GRUCell(5, 4)),
]


def grads(outputs, inputs):
    """Gradients of a fixed random projection of `outputs` (a tensor or tuple of tensors) w.r.t. `inputs`."""
    outputs = outputs if isinstance(outputs, tuple) else (outputs,)
    generator = torch.Generator().manual_seed(123)
    loss = sum((y * torch.randn(y.shape, generator=generator, dtype=y.dtype)).sum() for y in outputs)
    return torch.autograd.grad(loss, inputs)


@pytest.mark.parametrize("make_ours,make_theirs", CELLS)
def test_cell_init_like_torch(make_ours, make_theirs):
    torch.manual_seed(0)
    ours = make_ours()
    torch.manual_seed(0)
    theirs = make_theirs()
    for (name, p), (name_t, q) in zip(ours.named_parameters(), theirs.named_parameters(), strict=True):
        assert name == name_t and p.shape == q.shape
        torch.testing.assert_close(p, q, rtol=0, atol=0)


@pytest.mark.parametrize("with_state", [True, False])
@pytest.mark.parametrize("make_ours,make_theirs", CELLS)
def test_cell_matches_torch(make_ours, make_theirs, with_state):
    torch.manual_seed(1)
    ours = make_ours().double()
    theirs = make_theirs().double()
    theirs.load_state_dict(ours.state_dict())
    x = torch.randn(3, 5, dtype=torch.float64, requires_grad=True)
    state = None
    if with_state:
        h, c = torch.randn(2, 3, 4, dtype=torch.float64).unbind(0)
        state = (h.requires_grad_(), c.requires_grad_()) if isinstance(ours, LSTMCell) else h.requires_grad_()
    out_ours, out_theirs = ours(x, state), theirs(x, state)
    torch.testing.assert_close(out_ours, out_theirs, **F64)
    inputs = [x, *(state if isinstance(state, tuple) else [state] if with_state else [])]
    torch.testing.assert_close(grads(out_ours, inputs + list(ours.parameters())),
                               grads(out_theirs, inputs + list(theirs.parameters())), **F64)


LAYERS = [
    (RNN, nn.RNN, {}),
    (RNN, nn.RNN, {"nonlinearity": "relu"}),
    (LSTM, nn.LSTM, {}),
    (GRU, nn.GRU, {}),
]


def reference_forward(module: nn.Module, x: torch.Tensor, lengths: torch.Tensor):
    """Run torch's module on each sequence alone, unpadded; pad its outputs with zeros; stack its final h."""
    outputs, finals = [], []
    for b, length in enumerate(lengths.tolist()):
        output, h_n = module(x[b : b + 1, :length])
        h_n = h_n[0] if isinstance(h_n, tuple) else h_n
        outputs.append(nn.functional.pad(output[0], (0, 0, 0, x.shape[1] - length)))
        finals.append(h_n[:, 0])
    return torch.stack(outputs), torch.stack(finals, dim=1)


@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("ours_cls,theirs_cls,options", LAYERS)
def test_layer_manual_equals_fused_equals_torch(ours_cls, theirs_cls, options, bidirectional):
    torch.manual_seed(2)
    ours = ours_cls(5, 4, num_layers=2, bidirectional=bidirectional, **options).double()
    theirs = theirs_cls(5, 4, num_layers=2, bidirectional=bidirectional, batch_first=True, **options).double()
    theirs.load_state_dict(ours.state_dict())
    x = torch.randn(4, 7, 5, dtype=torch.float64, requires_grad=True)
    lengths = torch.tensor([3, 7, 1, 5])
    expected = reference_forward(theirs, x, lengths)
    expected_grads = grads(expected, [x, *theirs.parameters()])
    for impl in ("fused", "manual"):
        ours.impl = impl
        output, h_n = ours(x, lengths)
        assert output.shape == (4, 7, 4 * (2 if bidirectional else 1))
        assert h_n.shape == (2 * (2 if bidirectional else 1), 4, 4)
        torch.testing.assert_close((output, h_n), expected, **F64, msg=impl)
        torch.testing.assert_close(grads((output, h_n), [x, *ours.parameters()]), expected_grads, **F64, msg=impl)


@pytest.mark.parametrize("layer_cls", [RNN, LSTM, GRU])
def test_layer_without_lengths_reads_every_step(layer_cls):
    torch.manual_seed(3)
    layer = layer_cls(3, 2, bidirectional=True).double()
    x = torch.randn(2, 4, 3, dtype=torch.float64)
    full = torch.tensor([4, 4])
    for impl in ("fused", "manual"):
        layer.impl = impl
        torch.testing.assert_close(layer(x), layer(x, full), **F64)


@pytest.mark.parametrize("layer_cls", [RNN, LSTM, GRU])
def test_state_dict_is_shared_by_both_impls(layer_cls):
    torch.manual_seed(4)
    fused = layer_cls(3, 2, num_layers=2, bidirectional=True, impl="fused").double()
    manual = layer_cls(3, 2, num_layers=2, bidirectional=True, impl="manual").double()
    assert list(fused.state_dict()) == list(manual.state_dict())
    assert "weight_hh_l1_reverse" in manual.state_dict()
    manual.load_state_dict(fused.state_dict())
    x = torch.randn(2, 5, 3, dtype=torch.float64)
    torch.testing.assert_close(manual(x), fused(x), **F64)


def test_manual_inter_layer_dropout_only_in_train():
    torch.manual_seed(5)
    layer = LSTM(3, 4, num_layers=2, dropout=0.5, impl="manual").double()
    x = torch.randn(2, 5, 3, dtype=torch.float64)
    train_out, _ = layer(x)
    layer.eval()
    eval_out, _ = layer(x)
    layer.impl = "fused"
    torch.testing.assert_close(layer(x)[0], eval_out, **F64)
    assert not torch.allclose(train_out, eval_out)


def test_bad_options_and_lengths():
    with pytest.raises(ConfigError, match="impl"):
        GRU(3, 2, impl="cudnn")
    with pytest.raises(ConfigError, match="dropout"):
        LSTM(3, 2, num_layers=2, dropout=1.0)
    with pytest.raises(ConfigError, match="nonlinearity"):
        RNN(3, 2, nonlinearity="sigmoid")
    with pytest.raises(ConfigError, match="nonlinearity"):
        RNNCell(3, 2, nonlinearity="sigmoid")
    layer = GRU(3, 2, impl="manual")
    for lengths in ([2, 0], [2, 5], [2]):
        with pytest.raises(DataError, match="lengths"):
            layer(torch.randn(2, 4, 3), torch.tensor(lengths))
