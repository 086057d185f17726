"""TextCNN (Kim, 2014): convolutions of several widths over the token vectors, max-over-time pooled."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nlplab.errors import ConfigError
from nlplab.nn.activations import get_activation
from nlplab.nn.layers import check_impl
from nlplab.nn.pooling import masked_max_pool


def conv1d_unfold(x: Tensor, weight: Tensor, bias: Tensor) -> Tensor:
    """Valid 1-d convolution as one matmul over the sliding windows; x (B, T, E), weight (F, E, k), bias (F,)
    -> (B, T-k+1, F) with out_btf = Σ_{e,j} weight_fej · x_b,t+j,e + bias_f."""
    windows = x.unfold(1, weight.shape[-1], 1)  # (B, T-k+1, E, k)
    return windows.flatten(2) @ weight.flatten(1).T + bias


class TextCNN(nn.Module):
    """x (B, T, embed_dim), mask (B, T) | None (True at real tokens, padding at the end) -> (B, output_dim).

    For each width k: h = act(conv_k(x)) of shape (B, T-k+1, num_filters), then the max over the windows that
    lie inside the sequence; the outputs of all widths are concatenated, output_dim = num_filters·len(kernel_sizes).
    Padded tokens are zeroed first, and a sequence shorter than k is padded with zeros to k (one window), so
    the result of a sequence does not depend on how much padding its batch has.
      impl="fused":  torch's conv1d.
      impl="manual": `conv1d_unfold`, the windows times the flattened kernels.
    activation: any name of `nlplab.nn.activations` (relu by default), hand-written or fused as `impl` says.
    """

    def __init__(self, embed_dim: int, num_filters: int, kernel_sizes: tuple[int, ...] = (3, 4, 5),
                 activation: str = "relu", impl: str = "fused") -> None:
        super().__init__()
        if num_filters < 1 or not kernel_sizes or min(kernel_sizes) < 1:
            raise ConfigError(f"TextCNN needs num_filters >= 1 and kernel sizes >= 1, "
                              f"got {num_filters} and {kernel_sizes}")
        self.kernel_sizes, self.impl = tuple(kernel_sizes), check_impl(impl)
        self.activation = get_activation(activation, impl)
        self.convs = nn.ModuleList(nn.Conv1d(embed_dim, num_filters, k) for k in self.kernel_sizes)
        self.output_dim = num_filters * len(self.kernel_sizes)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        batch, steps, _ = x.shape
        if mask is None:
            mask = torch.ones(batch, steps, dtype=torch.bool, device=x.device)
        x = torch.where(mask.bool().unsqueeze(-1), x, 0.0)
        x = F.pad(x, (0, 0, 0, max(0, max(self.kernel_sizes) - steps)))
        lengths = mask.sum(1, keepdim=True)
        pooled = []
        for conv, k in zip(self.convs, self.kernel_sizes):
            if self.impl == "fused":
                h = conv(x.transpose(1, 2)).transpose(1, 2)
            else:
                h = conv1d_unfold(x, conv.weight, conv.bias)
            inside = torch.arange(h.shape[1], device=x.device) <= (lengths - k).clamp(min=0)  # (B, T-k+1)
            pooled.append(masked_max_pool(self.activation(h), inside))
        return torch.cat(pooled, dim=-1)
