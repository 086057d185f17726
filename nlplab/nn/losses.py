"""Loss functions written from their formulas, each equal to its PyTorch counterpart.

Shapes follow PyTorch: N examples, C classes. Every loss takes `reduction`: "none" returns one loss per
example (per element for mse and BCE), "sum" adds them, "mean" averages them (cross_entropy's mean is
weighted, as in PyTorch).
"""

from __future__ import annotations

import torch
from torch import Tensor

from nlplab.errors import ConfigError, DataError
from nlplab.nn.activations import relu, softplus
from nlplab.nn.functional import log_softmax

REDUCTIONS = ("mean", "sum", "none")


def _reduce(loss: Tensor, reduction: str) -> Tensor:
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    if reduction == "none":
        return loss
    raise ConfigError(f"reduction must be one of {', '.join(REDUCTIONS)}; got {reduction!r}")


def mse_loss(pred: Tensor, target: Tensor, reduction: str = "mean") -> Tensor:
    """Squared error (pred - target)^2, elementwise; pred and target of the same shape."""
    return _reduce((pred - target) ** 2, reduction)


def cross_entropy(
    logits: Tensor,
    target: Tensor,
    weight: Tensor | None = None,
    ignore_index: int = -100,
    label_smoothing: float = 0.0,
    reduction: str = "mean",
) -> Tensor:
    """Cross-entropy of class ids under softmax(logits), as F.cross_entropy with class-index targets.

    logits: (N, C) or (N, C, d1, ...), classes on dim 1 (flatten (N, T, C) to (N*T, C) first).
    target: (N,) or (N, d1, ...) integer class ids in [0, C), or ignore_index.
    weight: optional (C,) class weights w. With eps = label_smoothing and log p = log_softmax(logits),
    the loss of one target y is
        l = (1 - eps) * w_y * (-log p_y) + eps / C * sum_c w_c * (-log p_c),
    and 0 where y == ignore_index. "none" returns l shaped like target; "mean" is sum(l) / sum(w_y)
    over the targets not ignored (the plain mean when weight is None).
    """
    if target.is_floating_point():
        raise ConfigError("cross_entropy takes integer class ids as target; probability targets are not supported")
    if not 0.0 <= label_smoothing <= 1.0:
        raise ConfigError(f"label_smoothing must be in [0, 1]; got {label_smoothing}")
    num_classes = logits.shape[1]
    keep = target != ignore_index
    if ((target[keep] < 0) | (target[keep] >= num_classes)).any():
        raise DataError(f"cross_entropy target holds class ids outside [0, {num_classes}) other than ignore_index")
    if weight is None:
        weight = logits.new_ones(num_classes)
    logp = log_softmax(logits, dim=1)
    y = target.where(keep, 0)
    nll = -logp.gather(1, y.unsqueeze(1)).squeeze(1)
    class_shape = (1, num_classes) + (1,) * (logits.dim() - 2)
    smooth = -(logp * weight.view(class_shape)).sum(1)
    w_y = weight[y].where(keep, 0.0)
    loss = torch.where(keep, (1 - label_smoothing) * w_y * nll + label_smoothing / num_classes * smooth, 0.0)
    if reduction == "mean":
        return loss.sum() / w_y.sum()
    return _reduce(loss, reduction)


def binary_cross_entropy_with_logits(
    logits: Tensor, target: Tensor, pos_weight: Tensor | None = None, reduction: str = "mean"
) -> Tensor:
    """Binary cross-entropy on logits x with targets y in [0, 1], elementwise, any shape.

    l = -[p y log sigma(x) + (1 - y) log(1 - sigma(x))], p = pos_weight (broadcast against y; 1 if None).
    Since -log sigma(x) = softplus(-x) and -log(1 - sigma(x)) = x + softplus(-x),
    l = (1 - y) x + (1 + (p - 1) y) softplus(-x); with p = 1 this is max(x, 0) - x y + log(1 + exp(-|x|)).
    The stable `softplus` keeps it finite for any x, with the exact gradient at x = 0 too.
    """
    scale = 1.0 if pos_weight is None else 1 + (pos_weight - 1) * target
    return _reduce((1 - target) * logits + scale * softplus(-logits), reduction)


def hinge_loss(scores: Tensor, target: Tensor, margin: float = 1.0, reduction: str = "mean") -> Tensor:
    """Multi-class hinge loss, as torch.nn.MultiMarginLoss(p=1, margin).

    scores: (N, C); target: (N,) class ids. l_n = sum_{j != y} max(0, margin - s_y + s_j) / C, shape (N,).
    """
    s_y = scores.gather(1, target.unsqueeze(1))
    violations = relu(margin - s_y + scores).scatter(1, target.unsqueeze(1), 0.0)
    return _reduce(violations.sum(1) / scores.shape[1], reduction)


def binary_hinge_loss(score: Tensor, y: Tensor, margin: float = 1.0, reduction: str = "mean") -> Tensor:
    """Binary hinge loss max(0, margin - y * score) for labels y in {-1, +1}; score and y of the same shape."""
    if not ((y == 1) | (y == -1)).all():
        raise DataError("binary_hinge_loss labels must be -1 or +1; map {0, 1} labels with 2 * y - 1")
    return _reduce(relu(margin - y * score), reduction)


def focal_loss(
    logits: Tensor, target: Tensor, gamma: float = 2.0, alpha: Tensor | None = None, reduction: str = "mean"
) -> Tensor:
    """Focal loss FL = -alpha_t (1 - p_t)^gamma log p_t (Lin et al. 2017), p_t = softmax(logits)[target].

    logits: (N, C); target: (N,) class ids; alpha: optional (C,) class weights (alpha_t = 1 if None).
    "none" returns (N,); "mean" is the plain mean over N. gamma = 0, alpha = None gives cross-entropy.
    """
    ce = cross_entropy(logits, target, reduction="none")
    one_minus_p_t = -torch.expm1(-ce)
    loss = one_minus_p_t**gamma * ce
    if alpha is not None:
        loss = alpha[target] * loss
    return _reduce(loss, reduction)


def info_nce(query: Tensor, keys: Tensor, temperature: float = 0.05, reduction: str = "mean") -> Tensor:
    """InfoNCE contrastive loss with in-batch negatives (SimCSE / CLIP style, one direction).

    query: (N, D); keys: (M, D), M >= N, keys[i] the positive of query[i] and every other key a negative.
    With q, k the rows scaled to unit length, logits = q k^T / temperature, shape (N, M), and
    l_i = cross-entropy of class i under softmax(logits_i).
    """
    if temperature <= 0:
        raise ConfigError(f"info_nce temperature must be > 0; got {temperature}")
    if keys.shape[0] < query.shape[0]:
        raise DataError(f"info_nce needs a key for every query; got {query.shape[0]} queries, {keys.shape[0]} keys")
    target = torch.arange(query.shape[0], device=query.device)
    return cross_entropy(unit(query) @ unit(keys).T / temperature, target, reduction=reduction)


def unit(x: Tensor) -> Tensor:
    """Rows of x (..., D) scaled to unit L2 length (a zero row stays zero)."""
    return x / x.norm(dim=-1, keepdim=True).clamp_min(1e-12)


def cosine_similarity(a: Tensor, b: Tensor) -> Tensor:
    """cos(a_i, b_i) = a_i . b_i / (|a_i| |b_i|) row by row: (N, D), (N, D) -> (N,)."""
    return (unit(a) * unit(b)).sum(-1)


def contrastive_loss(a: Tensor, b: Tensor, label: Tensor, margin: float = 0.5, reduction: str = "mean") -> Tensor:
    """Contrastive loss on the cosine similarity of pairs, as torch.nn.CosineEmbeddingLoss with target 2 y - 1.

    a, b: (N, D) embeddings of the two sides; label: (N,) 1 for a matching pair, 0 otherwise. With c = cos(a, b),
        l = 1 - c             for a match (pulled together),
        l = max(0, c - margin) for a non-match (pushed below the margin).
    """
    c = cosine_similarity(a, b)
    return _reduce(torch.where(label.bool(), 1 - c, relu(c - margin)), reduction)


def pair_distance(x: Tensor, y: Tensor, distance: str = "euclidean") -> Tensor:
    """Row-wise distance, (N, D), (N, D) -> (N,): "euclidean" |x - y + eps|_2 with eps = 1e-6 (as
    F.pairwise_distance), or "cosine" 1 - cos(x, y)."""
    if distance == "euclidean":
        return (x - y + 1e-6).norm(dim=-1)
    if distance == "cosine":
        return 1 - cosine_similarity(x, y)
    raise ConfigError(f"distance must be euclidean or cosine; got {distance!r}")


def triplet_margin_loss(anchor: Tensor, positive: Tensor, negative: Tensor, margin: float = 1.0, distance: str = "euclidean",
                        reduction: str = "mean") -> Tensor:
    """Triplet loss l = max(0, margin + d(anchor, positive) - d(anchor, negative)); (N, D) each -> (N,), d from
    `pair_distance`. Euclidean: torch.nn.TripletMarginLoss; cosine: torch.nn.TripletMarginWithDistanceLoss with
    distance_function = 1 - cos."""
    return _reduce(relu(margin + pair_distance(anchor, positive, distance) - pair_distance(anchor, negative, distance)), reduction)
