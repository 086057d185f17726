"""Classification metrics, hand-written with NumPy: accuracy, confusion matrix, precision/recall/F1, ROC and AUC;
Spearman's rank correlation (equal to scipy.stats.spearmanr).

Labels are integer class ids ``0 .. num_classes - 1``; inputs may be lists, NumPy arrays or torch tensors
of shape (N,). Each function equals its scikit-learn namesake (tested), with ``zero_division=0``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from nlplab.errors import ConfigError, DataError

ArrayLike = Sequence[Any] | np.ndarray | torch.Tensor


def _as_numpy(x: ArrayLike) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def _as_labels(y: ArrayLike, name: str, num_classes: int | None = None) -> np.ndarray:
    """``y`` as a 1-D integer array, checked to lie in ``0 .. num_classes - 1`` when ``num_classes`` is given."""
    a = _as_numpy(y)
    if a.ndim != 1 or a.size == 0:
        raise DataError(f"{name} must be a non-empty 1-D sequence of class ids; got shape {a.shape}")
    if not (np.issubdtype(a.dtype, np.integer) or a.dtype == np.bool_):
        raise DataError(f"{name} must hold integer class ids; got dtype {a.dtype} (map labels to ids first)")
    a = a.astype(np.int64)
    if num_classes is not None and (a.min() < 0 or a.max() >= num_classes):
        bad = a[(a < 0) | (a >= num_classes)][0]
        raise DataError(f"{name} holds class id {bad}, outside 0..{num_classes - 1}; check num_classes or the labels")
    return a


def _as_pair(y_true: ArrayLike, y_pred: ArrayLike, num_classes: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    if num_classes is not None and num_classes < 1:
        raise ConfigError(f"num_classes must be >= 1; got {num_classes}")
    t, p = _as_labels(y_true, "y_true", num_classes), _as_labels(y_pred, "y_pred", num_classes)
    if t.shape != p.shape:
        raise DataError(f"y_true and y_pred must have the same length; got {t.size} and {p.size}")
    return t, p


def _safe_divide(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a / b`` element-wise, 0 where ``b == 0`` (scikit-learn's ``zero_division=0``)."""
    return np.divide(a, b, out=np.zeros(a.shape, dtype=np.float64), where=b > 0)


def accuracy(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Fraction of the N examples with ``y_pred == y_true``."""
    t, p = _as_pair(y_true, y_pred)
    return float(np.mean(t == p))


def confusion_matrix(y_true: ArrayLike, y_pred: ArrayLike, num_classes: int) -> np.ndarray:
    """(C, C) int64 counts: ``cm[i, j]`` = number of examples of true class i predicted as class j."""
    t, p = _as_pair(y_true, y_pred, num_classes)
    return np.bincount(t * num_classes + p, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


@dataclass(frozen=True)
class PrecisionRecallF1:
    """Per-class scores, each of shape (C,), and their unweighted (macro) means.

    precision_c = TP_c / (TP_c + FP_c), recall_c = TP_c / (TP_c + FN_c),
    f1_c = 2 TP_c / (2 TP_c + FP_c + FN_c) (the harmonic mean of the two), support_c = TP_c + FN_c;
    a ratio with a zero denominator is 0.
    """

    precision: np.ndarray
    recall: np.ndarray
    f1: np.ndarray
    support: np.ndarray

    @property
    def macro_precision(self) -> float:
        return float(self.precision.mean())

    @property
    def macro_recall(self) -> float:
        return float(self.recall.mean())

    @property
    def macro_f1(self) -> float:
        """Mean of the per-class F1 scores (not the F1 of the macro precision and recall, as in scikit-learn)."""
        return float(self.f1.mean())


def precision_recall_f1(y_true: ArrayLike, y_pred: ArrayLike, num_classes: int) -> PrecisionRecallF1:
    """Precision, recall, F1 and support of every class 0..C-1, from the confusion matrix."""
    cm = confusion_matrix(y_true, y_pred, num_classes)
    tp, predicted, support = np.diag(cm), cm.sum(axis=0), cm.sum(axis=1)
    return PrecisionRecallF1(
        precision=_safe_divide(tp, predicted),
        recall=_safe_divide(tp, support),
        f1=_safe_divide(2 * tp, predicted + support),
        support=support,
    )


def roc_curve(y_true: ArrayLike, scores: ArrayLike) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ROC curve of binary labels ``y_true`` (N,) in {0, 1} against ``scores`` (N,), higher = more positive.

    One point per distinct score s, from the highest down: predict positive when score >= s, then
    fpr = FP / negatives, tpr = TP / positives. Tied scores move the point diagonally in one step. A first
    point (0, 0) with threshold +inf is prepended. Returns ``fpr, tpr, thresholds``, each of shape (K + 1,)
    for K distinct scores (scikit-learn's ``roc_curve`` with ``drop_intermediate=False``).
    """
    y = _as_labels(y_true, "y_true", num_classes=2)
    s = _as_numpy(scores).astype(np.float64)
    if s.shape != y.shape:
        raise DataError(f"scores must have the same shape as y_true {y.shape}; got {s.shape}")
    if np.isnan(s).any():
        raise DataError("scores contain NaN; a ROC curve needs a score for every example")
    if y.min() == y.max():
        raise DataError(f"ROC needs both classes in y_true; all {y.size} labels are {y[0]}")
    order = np.argsort(-s, kind="stable")
    s, y = s[order], y[order]
    last_of_each_score = np.r_[np.flatnonzero(s[1:] != s[:-1]), s.size - 1]
    tps = np.cumsum(y)[last_of_each_score]
    fps = last_of_each_score + 1 - tps
    fpr = np.r_[0, fps] / fps[-1]
    tpr = np.r_[0, tps] / tps[-1]
    return fpr, tpr, np.r_[np.inf, s[last_of_each_score]]


def roc_auc(y_true: ArrayLike, scores: ArrayLike) -> float:
    """Area under the ROC curve by the trapezoid rule: sum_k (fpr_k+1 - fpr_k) * (tpr_k+1 + tpr_k) / 2.

    Equals P(score of a random positive > score of a random negative) + 1/2 P(tie).
    """
    fpr, tpr, _ = roc_curve(y_true, scores)
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))


def classification_report(
    y_true: ArrayLike,
    y_pred: ArrayLike,
    num_classes: int,
    probs: ArrayLike | None = None,
    labels: list[str] | None = None,
) -> dict[str, Any]:
    """All the metrics above as a JSON-serialisable dict of plain Python numbers.

    Keys: ``accuracy``, ``macro_precision``, ``macro_recall``, ``macro_f1``, ``per_class``
    (``{label: {precision, recall, f1, support}}``, labels default to "0".."C-1"), ``confusion_matrix``
    (C lists of C ints, rows = true class) and, for two classes with ``probs`` of shape (N, 2) given and both
    classes present in ``y_true``, ``roc_auc`` of the score ``probs[:, 1]``.
    """
    if labels is None:
        labels = [str(c) for c in range(num_classes)]
    if len(labels) != num_classes or len(set(labels)) != num_classes:
        raise ConfigError(f"labels must be {num_classes} distinct names, one per class; got {labels}")
    prf = precision_recall_f1(y_true, y_pred, num_classes)
    report: dict[str, Any] = {
        "accuracy": accuracy(y_true, y_pred),
        "macro_precision": prf.macro_precision,
        "macro_recall": prf.macro_recall,
        "macro_f1": prf.macro_f1,
        "per_class": {
            label: {
                "precision": float(prf.precision[c]),
                "recall": float(prf.recall[c]),
                "f1": float(prf.f1[c]),
                "support": int(prf.support[c]),
            }
            for c, label in enumerate(labels)
        },
        "confusion_matrix": confusion_matrix(y_true, y_pred, num_classes).tolist(),
    }
    if num_classes == 2 and probs is not None:
        t, p = _as_labels(y_true, "y_true", 2), _as_numpy(probs)
        if p.shape != (t.size, 2):
            raise DataError(f"probs must have shape (N, 2) = ({t.size}, 2) for two classes; got {p.shape}")
        if t.min() != t.max():
            report["roc_auc"] = roc_auc(t, p[:, 1])
    return report


def average_ranks(x: ArrayLike) -> np.ndarray:
    """Ranks 1..N of the values of x (N,), tied values sharing the mean of their ranks (scipy's rankdata)."""
    a = _as_numpy(x).astype(np.float64)
    order = np.argsort(a, kind="stable")
    s = a[order]
    first = np.r_[True, s[1:] != s[:-1]]
    group = np.cumsum(first) - 1
    starts = np.flatnonzero(first)
    ends = np.r_[starts[1:], a.size]
    ranks = np.empty(a.size)
    ranks[order] = ((starts + 1 + ends) / 2)[group]
    return ranks


def spearman(x: ArrayLike, y: ArrayLike) -> float:
    """Spearman's rho: the Pearson correlation of the average ranks of x and y (N,), in [-1, 1];
    nan when either is constant (no ranking to correlate)."""
    rx, ry = average_ranks(x), average_ranks(y)
    if rx.shape != ry.shape or rx.ndim != 1 or rx.size < 2:
        raise DataError(f"spearman needs two 1-D sequences of the same length >= 2; got shapes {rx.shape} and {ry.shape}")
    rx, ry = rx - rx.mean(), ry - ry.mean()
    denominator = np.sqrt((rx**2).sum() * (ry**2).sum())
    return float((rx * ry).sum() / denominator) if denominator > 0 else float("nan")
