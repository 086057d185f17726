"""Lab `imbalance`: a 1:10 imbalanced ChnSentiCorp, where accuracy flatters and the minority class is missed.

Data: the train and dev splits of ChnSentiCorp pooled, then per class shuffled with a fixed seed: every negative
review is kept, positives only one for every ten negatives, in the training part and in the test part alike (the
same imbalance at training and at use). Features: TF-IDF of the FEATURES most frequent character 1–2-grams
(scikit-learn, fitted on the training part). Model: logistic regression in torch, logits = x W + b (N, 2), trained
with Adam (L2 1e-4) on mini-batches for a fixed number of updates, whatever the size of its training set.

Remedies against the baseline (cross-entropy, predict the larger probability):
  under-sampling   negatives drawn without replacement down to the number of positives;
  over-sampling    positives drawn with replacement up to the number of negatives;
  threshold moving the baseline model, predicting positive when p(positive) > π, the positives' share of training
                   (the Bayes decision for equal class priors);
  class weights    cross-entropy with w_c = N / (2 N_c);
  focal loss       −α_t (1 − p_t)^γ log p_t with γ = 2 (Lin et al., 2017), without α (α_t = 1) and with the
                   class weights as α.
Metrics on the imbalanced test part: accuracy, the minority's recall and F1, macro-F1, ROC-AUC; ROC curves.
"""

from __future__ import annotations

import random
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from nlplab.data.registry import load_dataset
from nlplab.lab.base import Lab, LabContext, LabResult
from nlplab.nn.layers import Linear
from nlplab.nn.losses import focal_loss
from nlplab.optim import build_optimizer
from nlplab.train.metrics import classification_report, roc_curve

RATIO, SUBSET_SEED, BATCH, FEATURES = 10, 0, 64, 10_000
MINORITY = "1"


def imbalanced_split(quick: bool) -> tuple[list[str], list[int], list[str], list[int]]:
    """(train texts, train labels, test texts, test labels) with RATIO negatives per positive; 1 = positive."""
    data = load_dataset("chnsenticorp")
    pool = data.train + data.dev
    rng = random.Random(SUBSET_SEED)
    negatives = [text for text, label in pool if label != MINORITY]
    positives = [text for text, label in pool if label == MINORITY]
    rng.shuffle(negatives)
    rng.shuffle(positives)
    n_train, n_test = (2000, 600) if quick else (4000, 1200)
    neg_train, neg_test = negatives[:n_train], negatives[n_train : n_train + n_test]
    pos_train, pos_test = positives[: n_train // RATIO], positives[n_train // RATIO : (n_train + n_test) // RATIO]
    return (neg_train + pos_train, [0] * len(neg_train) + [1] * len(pos_train),
            neg_test + pos_test, [0] * len(neg_test) + [1] * len(pos_test))


def fit(x: Tensor, y: Tensor, rows: np.ndarray, loss_fn: Callable[[Tensor, Tensor], Tensor], steps: int,
        seed: int) -> Linear:
    """Logistic regression on x (N, F), y (N,) restricted to `rows` (repeats allowed, for over-sampling): `steps`
    Adam updates on mini-batches of BATCH, reshuffling `rows` whenever they run out."""
    torch.manual_seed(seed)
    model = Linear(x.shape[1], 2)
    optimizer = build_optimizer("adam", model.parameters(), lr=1e-2, weight_decay=1e-4)
    rng = np.random.default_rng(seed)
    order = np.empty(0, dtype=np.int64)
    for _ in range(steps):
        if len(order) < BATCH:
            order = np.concatenate([order, rng.permutation(rows)])
        batch, order = torch.from_numpy(order[:BATCH]), order[BATCH:]
        loss = loss_fn(model(x[batch]), y[batch])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model


def run(ctx: LabContext) -> LabResult:
    import matplotlib.pyplot as plt
    from sklearn.feature_extraction.text import TfidfVectorizer

    train_texts, y_train, test_texts, y_test = imbalanced_split(ctx.quick)
    vectorizer = TfidfVectorizer(analyzer="char", ngram_range=(1, 2), min_df=2, sublinear_tf=True, max_features=FEATURES)
    x_train, x_test = (torch.from_numpy(m.toarray().astype(np.float32))
                       for m in (vectorizer.fit_transform(train_texts), vectorizer.transform(test_texts)))
    y = np.array(y_train)
    rng = np.random.default_rng(ctx.seed)
    neg, pos = np.flatnonzero(y == 0), np.flatnonzero(y == 1)
    prior = len(pos) / len(y)
    weights = torch.tensor([len(y) / (2 * len(neg)), len(y) / (2 * len(pos))])
    steps = 300 if ctx.quick else 1500
    setups: dict[str, tuple[np.ndarray, Callable[[Tensor, Tensor], Tensor]]] = {
        "baseline": (np.arange(len(y)), F.cross_entropy),
        "under-sampling": (np.concatenate([rng.choice(neg, len(pos), replace=False), pos]), F.cross_entropy),
        "over-sampling": (np.concatenate([neg, rng.choice(pos, len(neg), replace=True)]), F.cross_entropy),
        "class weights": (np.arange(len(y)), lambda logits, t: F.cross_entropy(logits, t, weight=weights)),
        "focal loss γ=2": (np.arange(len(y)), lambda logits, t: focal_loss(logits, t, gamma=2.0)),
        "focal loss γ=2, α": (np.arange(len(y)), lambda logits, t: focal_loss(logits, t, gamma=2.0, alpha=weights)),
    }
    models = {name: fit(x_train, torch.from_numpy(y), rows, loss_fn, steps, ctx.seed)
              for name, (rows, loss_fn) in ctx.bar(setups.items(), desc="remedies")}
    models = {"baseline": models["baseline"], "threshold moving": models["baseline"], **models}
    with torch.no_grad():
        scores = {name: F.softmax(model(x_test), -1)[:, 1].numpy() for name, model in models.items()}
    thresholds = {name: prior if name == "threshold moving" else 0.5 for name in scores}
    rows = []
    for name, p in scores.items():
        pred = (p > thresholds[name]).astype(np.int64)
        report = classification_report(y_test, pred, 2, probs=np.stack([1 - p, p], 1), labels=["negative", "positive"])
        minority = report["per_class"]["positive"]
        rows.append({"method": name, "threshold": thresholds[name], "accuracy": report["accuracy"],
                     "minority recall": minority["recall"], "minority F1": minority["f1"],
                     "macro-F1": report["macro_f1"], "ROC-AUC": report["roc_auc"]})

    fig, ax = plt.subplots(figsize=(6, 5))
    for row in rows:
        p = scores[row["method"]]
        fpr, tpr, _ = roc_curve(y_test, p)
        pred = p > row["threshold"]
        point = (pred[np.array(y_test) == 0].mean(), pred[np.array(y_test) == 1].mean())
        line = ax.plot(fpr, tpr, lw=1, linestyle="--" if row["method"] == "threshold moving" else "-",
                       label=f"{row['method']} (AUC {row['ROC-AUC']:.3f})")[0]
        ax.plot(*point, marker="o", color=line.get_color())
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":")
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate (minority recall)")
    ax.set_title(f"ROC, 1:{RATIO} ChnSentiCorp; dots: operating points")
    ax.legend(fontsize=8)
    ctx.save_plot(fig, "roc")

    base, gamma_only = rows[0], next(r for r in rows if r["method"] == "focal loss γ=2")
    remedies = [r for r in rows[1:] if r is not gamma_only]
    best = max(remedies, key=lambda r: r["macro-F1"])
    holds = (base["accuracy"] > 0.9 and base["minority recall"] < base["accuracy"] - 0.2
             and all(r["minority recall"] > base["minority recall"] for r in remedies)
             and sum(r["macro-F1"] > base["macro-F1"] for r in remedies) >= len(remedies) - 1
             and all(r["ROC-AUC"] > base["ROC-AUC"] - 0.03 for r in rows)
             and gamma_only["minority recall"] < min(r["minority recall"] for r in remedies))
    summary = (f"on a 1:{RATIO} test set the baseline scores {base['accuracy']:.1%} accuracy and ROC-AUC "
               f"{base['ROC-AUC']:.3f} but finds only {base['minority recall']:.1%} of the minority (F1 "
               f"{base['minority F1']:.3f}, macro-F1 {base['macro-F1']:.3f}); sampling, threshold moving, class weights "
               f"and α-balanced focal loss raise minority recall to "
               f"{min(r['minority recall'] for r in remedies):.1%}–{max(r['minority recall'] for r in remedies):.1%} "
               f"and macro-F1 up to {best['macro-F1']:.3f} ({best['method']}), ROC-AUC "
               f"{min(r['ROC-AUC'] for r in remedies):.3f}–{max(r['ROC-AUC'] for r in remedies):.3f}; focal loss "
               f"with γ alone reaches {gamma_only['minority recall']:.1%} recall")
    return LabResult(rows, summary, holds, {"train": {"negative": len(neg), "positive": len(pos)},
                                            "test": {"negative": y_test.count(0), "positive": y_test.count(1)},
                                            "features": x_train.shape[1], "updates": steps, "batch_size": BATCH})


LAB = Lab("imbalance", f"On 1:{RATIO} imbalanced data a plain classifier's accuracy looks good while it misses much of "
          "the minority class; under- and over-sampling, threshold moving, class weights and α-balanced focal loss "
          "raise minority recall and macro-F1 at little cost in ROC-AUC (focal loss's γ alone, which down-weights the "
          "easy examples of both classes, does less).", run)
