"""TextCNN against a per-sequence reference built from nn.Conv1d with the same weights; manual == fused."""

import pytest
import torch
from torch import nn

from nlplab.errors import ConfigError
from nlplab.nn.cnn import TextCNN

F64 = dict(rtol=1e-9, atol=1e-10)
ACTIVATIONS = {"relu": nn.ReLU(), "tanh": nn.Tanh(), "gelu": nn.GELU()}


def reference_convs(model: TextCNN) -> nn.ModuleList:
    """Fresh nn.Conv1d modules carrying the model's weights."""
    convs = nn.ModuleList(nn.Conv1d(c.in_channels, c.out_channels, c.kernel_size[0]) for c in model.convs).double()
    convs.load_state_dict(model.convs.state_dict())
    return convs


def reference(convs: nn.ModuleList, activation: str, x: torch.Tensor, lengths: list[int]) -> torch.Tensor:
    """Each sequence alone: its real tokens, zero-padded to the kernel width if shorter, through each
    nn.Conv1d, the activation, and the max over all windows."""
    rows = []
    for b, length in enumerate(lengths):
        features = []
        for conv in convs:
            tokens = nn.functional.pad(x[b, :length], (0, 0, 0, max(0, conv.kernel_size[0] - length)))
            features.append(ACTIVATIONS[activation](conv(tokens.T.unsqueeze(0))).amax(-1)[0])
        rows.append(torch.cat(features))
    return torch.stack(rows)


def grads(y: torch.Tensor, inputs: list[torch.Tensor]) -> tuple[torch.Tensor, ...]:
    probe = torch.randn(y.shape, generator=torch.Generator().manual_seed(9), dtype=y.dtype)
    return torch.autograd.grad((y * probe).sum(), inputs)


@pytest.mark.parametrize("activation", ["relu", "tanh", "gelu"])
@pytest.mark.parametrize("steps,lengths", [(9, [9, 4, 2, 6]), (2, [2, 1, 2, 1])])
def test_fused_and_manual_match_reference(activation, steps, lengths):
    torch.manual_seed(0)
    model = TextCNN(6, 5, kernel_sizes=(1, 3, 4), activation=activation).double()
    x = torch.randn(4, steps, 6, dtype=torch.float64, requires_grad=True)
    mask = torch.arange(steps) < torch.tensor(lengths).unsqueeze(1)
    convs = reference_convs(model)
    expected = reference(convs, activation, x, lengths)
    expected_grads = grads(expected, [x, *convs.parameters()])
    for impl in ("fused", "manual"):
        model.impl = impl
        out = model(x, mask)
        assert out.shape == (4, model.output_dim) and model.output_dim == 15
        torch.testing.assert_close(out, expected, **F64, msg=impl)
        torch.testing.assert_close(grads(out, [x, *model.parameters()]), expected_grads, **F64, msg=impl)


@pytest.mark.parametrize("impl", ["fused", "manual"])
def test_mask_is_respected(impl):
    torch.manual_seed(1)
    model = TextCNN(4, 3, impl=impl).double()
    x = torch.randn(3, 8, 4, dtype=torch.float64)
    mask = torch.arange(8) < torch.tensor([8, 5, 2]).unsqueeze(1)
    out = model(x, mask)
    noisy = torch.where(mask.unsqueeze(-1), x, 1e6)
    torch.testing.assert_close(model(noisy, mask), out, **F64)
    longer = torch.cat([x, torch.randn(3, 4, 4, dtype=torch.float64)], dim=1)
    torch.testing.assert_close(model(longer, nn.functional.pad(mask, (0, 4))), out, **F64)
    torch.testing.assert_close(model(x), model(x, torch.ones(3, 8, dtype=torch.bool)), **F64)


def test_bad_options():
    with pytest.raises(ConfigError, match="activation"):
        TextCNN(4, 3, activation="softmax")
    with pytest.raises(ConfigError, match="kernel"):
        TextCNN(4, 3, kernel_sizes=())
    with pytest.raises(ConfigError, match="impl"):
        TextCNN(4, 3, impl="fft")
