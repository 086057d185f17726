"""Recurrent networks: the RNN, LSTM and GRU cells from their equations, and batch-first layers over them.

Weights follow torch's layout: W_ih (G·H, I), W_hh (G·H, H), b_ih and b_hh (G·H,) with the G gate blocks
stacked in torch's order (LSTM: i, f, g, o; GRU: r, z, n), so weights copy to and from torch.nn unchanged.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from nlplab.errors import ConfigError, DataError
from nlplab.nn import init
from nlplab.nn.layers import check_dropout, check_impl, dropout

_NONLINEARITIES = {"tanh": torch.tanh, "relu": torch.relu}


def rnn_cell(x: Tensor, h: Tensor, w_ih: Tensor, w_hh: Tensor, b_ih: Tensor, b_hh: Tensor,
             nonlinearity: str = "tanh") -> Tensor:
    """Elman step: h' = act(x W_ihᵀ + b_ih + h W_hhᵀ + b_hh); x (B, I), h (B, H) -> h' (B, H)."""
    return _NONLINEARITIES[nonlinearity](x @ w_ih.T + b_ih + h @ w_hh.T + b_hh)


def lstm_cell(x: Tensor, state: tuple[Tensor, Tensor], w_ih: Tensor, w_hh: Tensor, b_ih: Tensor,
              b_hh: Tensor) -> tuple[Tensor, Tensor]:
    """LSTM step; x (B, I), state (h, c) each (B, H) -> (h', c').

    [i, f, g, o] = x W_ihᵀ + b_ih + h W_hhᵀ + b_hh;  i, f, o through σ, g through tanh;
    c' = f ⊙ c + i ⊙ g;  h' = o ⊙ tanh(c').
    """
    h, c = state
    i, f, g, o = (x @ w_ih.T + b_ih + h @ w_hh.T + b_hh).chunk(4, dim=-1)
    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(c), c


def gru_cell(x: Tensor, h: Tensor, w_ih: Tensor, w_hh: Tensor, b_ih: Tensor, b_hh: Tensor) -> Tensor:
    """GRU step; x (B, I), h (B, H) -> h' (B, H).

    r = σ(x W_irᵀ + b_ir + h W_hrᵀ + b_hr);  z = σ(x W_izᵀ + b_iz + h W_hzᵀ + b_hz);
    n = tanh(x W_inᵀ + b_in + r ⊙ (h W_hnᵀ + b_hn));  h' = (1 - z) ⊙ n + z ⊙ h.
    """
    x_r, x_z, x_n = (x @ w_ih.T + b_ih).chunk(3, dim=-1)
    h_r, h_z, h_n = (h @ w_hh.T + b_hh).chunk(3, dim=-1)
    r, z = torch.sigmoid(x_r + h_r), torch.sigmoid(x_z + h_z)
    n = torch.tanh(x_n + r * h_n)
    return (1 - z) * n + z * h


def _check_nonlinearity(nonlinearity: str) -> str:
    if nonlinearity not in _NONLINEARITIES:
        raise ConfigError(f"RNN nonlinearity must be one of {sorted(_NONLINEARITIES)}, got {nonlinearity!r}")
    return nonlinearity


class _Cell(nn.Module):
    """Parameters of one cell with `gates` gate blocks, all drawn from U(±1/√H) as torch does."""

    def __init__(self, input_size: int, hidden_size: int, gates: int) -> None:
        super().__init__()
        self.input_size, self.hidden_size = input_size, hidden_size
        self.weight_ih = nn.Parameter(torch.empty(gates * hidden_size, input_size))
        self.weight_hh = nn.Parameter(torch.empty(gates * hidden_size, hidden_size))
        self.bias_ih = nn.Parameter(torch.empty(gates * hidden_size))
        self.bias_hh = nn.Parameter(torch.empty(gates * hidden_size))
        for p in self.parameters():
            init.uniform_(p, 1 / math.sqrt(hidden_size))

    def weights(self) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        return self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh

    def zeros(self, x: Tensor) -> Tensor:
        return x.new_zeros(x.shape[0], self.hidden_size)


class RNNCell(_Cell):
    """Module form of `rnn_cell`: forward(x (B, I), h (B, H) | None = zeros) -> h' (B, H)."""

    def __init__(self, input_size: int, hidden_size: int, nonlinearity: str = "tanh") -> None:
        super().__init__(input_size, hidden_size, gates=1)
        self.nonlinearity = _check_nonlinearity(nonlinearity)

    def forward(self, x: Tensor, h: Tensor | None = None) -> Tensor:
        return rnn_cell(x, self.zeros(x) if h is None else h, *self.weights(), self.nonlinearity)


class LSTMCell(_Cell):
    """Module form of `lstm_cell`: forward(x (B, I), (h, c) | None = zeros) -> (h', c'), each (B, H)."""

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__(input_size, hidden_size, gates=4)

    def forward(self, x: Tensor, state: tuple[Tensor, Tensor] | None = None) -> tuple[Tensor, Tensor]:
        return lstm_cell(x, (self.zeros(x), self.zeros(x)) if state is None else state, *self.weights())


class GRUCell(_Cell):
    """Module form of `gru_cell`: forward(x (B, I), h (B, H) | None = zeros) -> h' (B, H)."""

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__(input_size, hidden_size, gates=3)

    def forward(self, x: Tensor, h: Tensor | None = None) -> Tensor:
        return gru_cell(x, self.zeros(x) if h is None else h, *self.weights())


class _Recurrent(nn.Module):
    """Batch-first multi-layer (bi)directional recurrent layer, mixed into torch.nn.RNN / LSTM / GRU.

    The parameters are torch's own (`weight_ih_l0`, `bias_hh_l1_reverse`, ...), so the state_dict is the same
    for both impls and for torch.nn. forward(x (B, T, I), lengths (B,) | None) -> (output, h_n):
    output (B, T, num_dirs·H), zero at padded steps; h_n (num_layers·num_dirs, B, H), each direction's state
    after its last real token, ordered layer-major as torch. LSTM returns its h_n only (not c_n), so the
    three kinds share one return shape.
      impl="fused":  torch's kernel on a packed sequence.
      impl="manual": a time loop over the cell equations above; the reverse direction starts from each
                     sequence's last real token; inter-layer dropout in train mode.
    """

    num_states = 1  # tensors carried from step to step: h (RNN, GRU) or h, c (LSTM)

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bidirectional: bool = False,
                 dropout: float = 0.0, impl: str = "fused", **torch_options: str) -> None:
        super().__init__(input_size, hidden_size, num_layers=num_layers, batch_first=True,
                         dropout=check_dropout(dropout), bidirectional=bidirectional, **torch_options)
        self.impl = check_impl(impl)

    def step(self, x: Tensor, state: tuple[Tensor, ...], weights: list[Tensor]) -> tuple[Tensor, ...]:
        """One time step of one direction: x (B, I), state (num_states × (B, H)) -> new state."""
        raise NotImplementedError

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> tuple[Tensor, Tensor]:
        if lengths is not None and not (lengths.dim() == 1 and len(lengths) == len(x)
                                        and 1 <= lengths.min() and lengths.max() <= x.shape[1]):
            raise DataError(f"lengths must hold one value in [1, {x.shape[1]}] per sequence of the batch, "
                            f"got {lengths.tolist()}; drop empty sequences before batching")
        if self.impl == "manual":
            return self._manual(x, lengths)
        if lengths is None:
            output, h_n = super().forward(x)
        else:
            packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
            output, h_n = super().forward(packed)
            output, _ = pad_packed_sequence(output, batch_first=True, total_length=x.shape[1])
        return output, h_n[0] if isinstance(h_n, tuple) else h_n

    def _manual(self, x: Tensor, lengths: Tensor | None) -> tuple[Tensor, Tensor]:
        batch, steps, _ = x.shape
        lengths = torch.full((batch,), steps) if lengths is None else lengths
        real = torch.arange(steps, device=x.device) < lengths.to(x.device).unsqueeze(1)  # (B, T)
        directions = 2 if self.bidirectional else 1
        layer_input, h_n = x, []
        for layer in range(self.num_layers):
            outputs = []
            for direction in range(directions):
                weights = self.all_weights[layer * directions + direction]
                output, h_last = self._run(layer_input, real, weights, reverse=direction == 1)
                outputs.append(output)
                h_n.append(h_last)
            layer_input = torch.cat(outputs, dim=-1)
            if layer < self.num_layers - 1:
                layer_input = dropout(layer_input, self.dropout, self.training)
        return layer_input, torch.stack(h_n)

    def _run(self, x: Tensor, real: Tensor, weights: list[Tensor], reverse: bool) -> tuple[Tensor, Tensor]:
        """One direction over time. At padded steps the state is held, so the forward pass ends on the last
        real token and the reverse pass starts there from zeros; outputs at padded steps are zero."""
        state = tuple(x.new_zeros(x.shape[0], self.hidden_size) for _ in range(self.num_states))
        times = range(x.shape[1])
        outputs = []
        for t in reversed(times) if reverse else times:
            is_real = real[:, t].unsqueeze(1)
            new_state = self.step(x[:, t], state, weights)
            state = tuple(torch.where(is_real, new, old) for new, old in zip(new_state, state))
            outputs.append(torch.where(is_real, state[0], 0.0))
        if reverse:
            outputs.reverse()
        return torch.stack(outputs, dim=1), state[0]


class RNN(_Recurrent, nn.RNN):
    """Elman RNN layer (see `_Recurrent` for forward); nonlinearity 'tanh' or 'relu'."""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bidirectional: bool = False,
                 dropout: float = 0.0, impl: str = "fused", nonlinearity: str = "tanh") -> None:
        super().__init__(input_size, hidden_size, num_layers, bidirectional, dropout, impl,
                         nonlinearity=_check_nonlinearity(nonlinearity))

    def step(self, x: Tensor, state: tuple[Tensor, ...], weights: list[Tensor]) -> tuple[Tensor, ...]:
        return (rnn_cell(x, state[0], *weights, self.nonlinearity),)


class LSTM(_Recurrent, nn.LSTM):
    """LSTM layer (see `_Recurrent` for forward; returns h_n, not (h_n, c_n))."""

    num_states = 2

    def step(self, x: Tensor, state: tuple[Tensor, ...], weights: list[Tensor]) -> tuple[Tensor, ...]:
        return lstm_cell(x, state, *weights)


class GRU(_Recurrent, nn.GRU):
    """GRU layer (see `_Recurrent` for forward)."""

    def step(self, x: Tensor, state: tuple[Tensor, ...], weights: list[Tensor]) -> tuple[Tensor, ...]:
        return (gru_cell(x, state[0], *weights),)
