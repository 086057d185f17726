"""Hand-written layers and functions on torch tensors, each tested equal to its PyTorch reference.

Submodules: functional (softmax), activations (+ derivatives), losses, layers (Linear, Embedding, Dropout,
BatchNorm1d, LayerNorm, RMSNorm), pooling, init, rnn (cells and layers), cnn (TextCNN), attention, positions,
transformer (blocks), sparse_attention, moe, crf (linear-chain CRF)."""

from nlplab.nn.activations import ACTIVATIONS, Activation, get_activation, softmax_jacobian
from nlplab.nn.attention import MultiHeadAttention, MultiHeadSelfAttention, SelfAttention, scaled_dot_product_attention
from nlplab.nn.cnn import TextCNN
from nlplab.nn.crf import CRF, bio_constraints
from nlplab.nn.functional import log_softmax, naive_softmax, softmax
from nlplab.nn.layers import BatchNorm1d, Dropout, Embedding, LayerNorm, Linear, RMSNorm
from nlplab.nn.losses import (
    binary_cross_entropy_with_logits,
    binary_hinge_loss,
    cross_entropy,
    focal_loss,
    hinge_loss,
    info_nce,
    mse_loss,
)
from nlplab.nn.moe import MoEFeedForward
from nlplab.nn.pooling import masked_max_pool, masked_mean_pool
from nlplab.nn.positions import LearnedPositions, SinusoidalPositions, rope
from nlplab.nn.rnn import GRU, LSTM, RNN, GRUCell, LSTMCell, RNNCell
from nlplab.nn.sparse_attention import pattern_mask, sparse_attention
from nlplab.nn.transformer import FeedForward, TransformerBlock

__all__ = [
    "ACTIVATIONS", "Activation", "BatchNorm1d", "CRF", "Dropout", "Embedding", "FeedForward", "GRU", "GRUCell", "LSTM",
    "LSTMCell", "LayerNorm", "LearnedPositions", "Linear", "MoEFeedForward", "MultiHeadAttention",
    "MultiHeadSelfAttention", "RMSNorm", "RNN", "RNNCell", "SelfAttention", "SinusoidalPositions", "TextCNN",
    "TransformerBlock", "binary_cross_entropy_with_logits", "binary_hinge_loss", "bio_constraints", "cross_entropy", "focal_loss",
    "get_activation", "hinge_loss", "info_nce", "log_softmax", "masked_max_pool", "masked_mean_pool", "mse_loss",
    "naive_softmax", "pattern_mask", "rope", "scaled_dot_product_attention", "softmax", "softmax_jacobian",
    "sparse_attention",
]
