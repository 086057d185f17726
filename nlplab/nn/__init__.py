"""Hand-written layers and functions on torch tensors, each tested equal to its PyTorch reference.

Submodules: functional (softmax), activations (+ derivatives), losses, layers (Linear, Embedding, Dropout,
BatchNorm1d, LayerNorm), pooling, init, rnn (cells and layers), cnn (TextCNN)."""

from nlplab.nn.activations import ACTIVATIONS, Activation, get_activation, softmax_jacobian
from nlplab.nn.cnn import TextCNN
from nlplab.nn.functional import log_softmax, naive_softmax, softmax
from nlplab.nn.layers import BatchNorm1d, Dropout, Embedding, LayerNorm, Linear
from nlplab.nn.losses import (
    binary_cross_entropy_with_logits,
    binary_hinge_loss,
    cross_entropy,
    focal_loss,
    hinge_loss,
    info_nce,
    mse_loss,
)
from nlplab.nn.pooling import masked_max_pool, masked_mean_pool
from nlplab.nn.rnn import GRU, LSTM, RNN, GRUCell, LSTMCell, RNNCell

__all__ = [
    "ACTIVATIONS", "Activation", "BatchNorm1d", "Dropout", "Embedding", "GRU", "GRUCell", "LSTM", "LSTMCell",
    "LayerNorm", "Linear", "RNN", "RNNCell", "TextCNN", "binary_cross_entropy_with_logits", "binary_hinge_loss",
    "cross_entropy", "focal_loss", "get_activation", "hinge_loss", "info_nce", "log_softmax", "masked_max_pool",
    "masked_mean_pool", "mse_loss", "naive_softmax", "softmax", "softmax_jacobian",
]
