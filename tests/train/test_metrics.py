"""Hand-written metrics equal scikit-learn's, on random labels and tied scores, from lists, arrays or tensors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import sklearn.metrics as skm
import torch

from nlplab.errors import ConfigError, DataError
from nlplab.train.metrics import (
    accuracy,
    classification_report,
    confusion_matrix,
    precision_recall_f1,
    roc_auc,
    roc_curve,
)

NUM_CLASSES = 5
AS_INPUT = [list, np.asarray, torch.as_tensor]


def _labels(seed: int, n: int = 200) -> tuple[np.ndarray, np.ndarray]:
    """Random true labels over all classes; predictions that never say class 3 and half the time are right."""
    rng = np.random.default_rng(seed)
    y_true = rng.integers(0, NUM_CLASSES, n)
    y_pred = np.where(rng.random(n) < 0.5, y_true, rng.integers(0, NUM_CLASSES, n))
    y_pred[y_pred == 3] = 4
    return y_true, y_pred


def _binary(seed: int, n: int = 150) -> tuple[np.ndarray, np.ndarray]:
    """Binary labels and scores rounded to one decimal, so that many scores tie (within and across classes)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    scores = np.round(np.clip(0.25 * y + rng.random(n) * 0.75, 0, 1), 1)
    return y, scores


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("as_input", AS_INPUT)
def test_accuracy_and_confusion_matrix_equal_sklearn(seed, as_input):
    y_true, y_pred = _labels(seed)
    assert accuracy(as_input(y_true), as_input(y_pred)) == pytest.approx(skm.accuracy_score(y_true, y_pred), abs=1e-12)
    cm = confusion_matrix(as_input(y_true), as_input(y_pred), NUM_CLASSES)
    np.testing.assert_array_equal(cm, skm.confusion_matrix(y_true, y_pred, labels=range(NUM_CLASSES)))
    assert cm[:, 3].sum() == 0


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("as_input", AS_INPUT)
def test_precision_recall_f1_equal_sklearn(seed, as_input):
    y_true, y_pred = _labels(seed)
    y_true[y_true == 1] = 0
    prf = precision_recall_f1(as_input(y_true), as_input(y_pred), NUM_CLASSES)
    labels = list(range(NUM_CLASSES))
    precision, recall, f1, support = skm.precision_recall_fscore_support(
        y_true, y_pred, labels=labels, zero_division=0
    )
    np.testing.assert_allclose(prf.precision, precision, atol=1e-12, rtol=0)
    np.testing.assert_allclose(prf.recall, recall, atol=1e-12, rtol=0)
    np.testing.assert_allclose(prf.f1, f1, atol=1e-12, rtol=0)
    np.testing.assert_array_equal(prf.support, support)
    for average, ours in [("precision", prf.macro_precision), ("recall", prf.macro_recall), ("f1", prf.macro_f1)]:
        score = getattr(skm, f"{average}_score")(y_true, y_pred, labels=labels, average="macro", zero_division=0)
        assert ours == pytest.approx(score, abs=1e-12)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
@pytest.mark.parametrize("as_input", AS_INPUT)
def test_roc_curve_and_auc_equal_sklearn_with_ties(seed, as_input):
    y, scores = _binary(seed)
    assert len(np.unique(scores)) < len(scores) / 5
    fpr, tpr, thresholds = roc_curve(as_input(y), as_input(scores))
    ref_fpr, ref_tpr, ref_thresholds = skm.roc_curve(y, scores, drop_intermediate=False)
    np.testing.assert_allclose(fpr, ref_fpr, atol=1e-12, rtol=0)
    np.testing.assert_allclose(tpr, ref_tpr, atol=1e-12, rtol=0)
    np.testing.assert_array_equal(thresholds, ref_thresholds)
    assert roc_auc(as_input(y), as_input(scores)) == pytest.approx(skm.roc_auc_score(y, scores), abs=1e-12)


def test_roc_auc_on_continuous_scores_equals_sklearn():
    torch.manual_seed(5)
    y = torch.randint(0, 2, (300,))
    scores = torch.randn(300, dtype=torch.float64) + y
    assert roc_auc(y, scores) == pytest.approx(skm.roc_auc_score(y.numpy(), scores.numpy()), abs=1e-12)


def test_classification_report_equals_sklearn_and_is_json():
    y_true, y_pred = _labels(4)
    names = ["a", "b", "c", "d", "e"]
    report = classification_report(torch.as_tensor(y_true), torch.as_tensor(y_pred), NUM_CLASSES, labels=names)
    assert json.loads(json.dumps(report)) == report
    reference = skm.classification_report(
        y_true, y_pred, labels=range(NUM_CLASSES), target_names=names, output_dict=True, zero_division=0
    )
    assert report["accuracy"] == pytest.approx(skm.accuracy_score(y_true, y_pred), abs=1e-12)
    assert report["macro_precision"] == pytest.approx(reference["macro avg"]["precision"], abs=1e-12)
    assert report["macro_recall"] == pytest.approx(reference["macro avg"]["recall"], abs=1e-12)
    assert report["macro_f1"] == pytest.approx(reference["macro avg"]["f1-score"], abs=1e-12)
    for name in names:
        ours, theirs = report["per_class"][name], reference[name]
        assert (ours["precision"], ours["recall"], ours["f1"]) == pytest.approx(
            (theirs["precision"], theirs["recall"], theirs["f1-score"]), abs=1e-12
        )
        assert ours["support"] == theirs["support"] and type(ours["support"]) is int
    assert report["confusion_matrix"] == skm.confusion_matrix(y_true, y_pred, labels=range(NUM_CLASSES)).tolist()
    assert "roc_auc" not in report


def test_binary_report_has_roc_auc_of_positive_probability():
    y, scores = _binary(9)
    probs = np.stack([1 - scores, scores], axis=1)
    report = classification_report(list(y), list((scores >= 0.5).astype(int)), 2, probs=torch.as_tensor(probs))
    assert type(report["roc_auc"]) is float
    assert report["roc_auc"] == pytest.approx(skm.roc_auc_score(y, scores), abs=1e-12)
    assert list(report["per_class"]) == ["0", "1"]


@pytest.mark.parametrize(
    "call",
    [
        lambda: accuracy([0, 1, 1], [0, 1]),
        lambda: accuracy([], []),
        lambda: accuracy([0.5, 1.0], [0, 1]),
        lambda: confusion_matrix([0, 1, 5], [0, 1, 1], 3),
        lambda: roc_curve([1, 1, 1], [0.2, 0.3, 0.4]),
        lambda: roc_curve([0, 1, 2], [0.2, 0.3, 0.4]),
        lambda: roc_auc([0, 1], [0.2, float("nan")]),
        lambda: classification_report([0, 1], [0, 1], 2, probs=[0.3, 0.7]),
    ],
)
def test_bad_data_raises_data_error(call):
    with pytest.raises(DataError):
        call()


@pytest.mark.parametrize(
    "call",
    [
        lambda: classification_report([0, 1], [0, 1], 2, labels=["only one"]),
        lambda: classification_report([0, 1], [0, 1], 2, labels=["same", "same"]),
        lambda: confusion_matrix([0], [0], 0),
    ],
)
def test_bad_options_raise_config_error(call):
    with pytest.raises(ConfigError):
        call()
