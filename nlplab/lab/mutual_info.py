"""Lab `mutual-info`: which characters tell a ChnSentiCorp review's sentiment, measured by mutual information, and
how few of them a classifier needs.

For each character c, X_c ∈ {absent, present} in a review and Y the label; from the training split's counts,
I(X_c; Y) = Σ P(x, y) log₂(P(x, y) / (P(x) P(y))) in bits (`nlplab.classic.info.mutual_information` on a stack of
2 × 2 tables, checked against scikit-learn's mutual_info_score). A multinomial naive Bayes
(`nlplab.classic.linear.MultinomialNB`, α = 1) on the character counts of only the top-k characters — ranked by
mutual information, or for comparison by document frequency — is scored on the dev split for k from 10 to all.
"""

from __future__ import annotations

import numpy as np

from nlplab.classic.info import mutual_information
from nlplab.classic.linear import MultinomialNB
from nlplab.data.registry import load_dataset
from nlplab.lab.base import Lab, LabContext, LabResult

TOP_SHOWN = 20


def presence_tables(present: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Joint tables P(X_c, Y) (V, 2, C) of each column of the 0/1 matrix `present` (N, V) with the labels (N,)."""
    classes = np.unique(labels)
    with_label = np.stack([np.asarray(present[labels == c].sum(0)).ravel() for c in classes], axis=1)  # (V, C)
    totals = np.array([(labels == c).sum() for c in classes])
    return np.stack([totals - with_label, with_label], axis=1) / len(labels)


def run(ctx: LabContext) -> LabResult:
    import matplotlib.pyplot as plt
    from sklearn.feature_extraction.text import CountVectorizer
    from sklearn.metrics import mutual_info_score

    data = load_dataset("chnsenticorp")
    train = data.train[:3000] if ctx.quick else data.train
    vectorizer = CountVectorizer(analyzer="char", min_df=2)
    x_train = vectorizer.fit_transform([t for t, _ in train]).tocsc()
    x_dev = vectorizer.transform([t for t, _ in data.dev]).tocsc()
    y_train, y_dev = np.array([label for _, label in train]), np.array([label for _, label in data.dev])
    chars = vectorizer.get_feature_names_out()
    present = (x_train > 0).astype(np.float64)
    tables = presence_tables(present, y_train)
    mi = mutual_information(tables, base=2)
    by_mi = np.argsort(-mi, kind="stable")
    by_frequency = np.argsort(-np.asarray(present.sum(0)).ravel(), kind="stable")
    check = by_mi[:50]
    sklearn_gap = max(abs(mi[j] - mutual_info_score(present[:, j].toarray().ravel(), y_train) / np.log(2)) for j in check)

    positive = data.labels.index("1") if "1" in data.labels else len(data.labels) - 1
    top = [{"rank": r + 1, "character": str(chars[j]), "MI (bits)": float(mi[j]),
            "reviews with it": int(tables[j, 1].sum() * len(y_train)),
            "P(positive | present)": float(tables[j, 1, positive] / tables[j, 1].sum())} for r, j in enumerate(by_mi[:TOP_SHOWN])]

    ks = [k for k in ((10, 30, 100, 300, 1000) if ctx.quick else (10, 20, 50, 100, 200, 500, 1000, 2000)) if k < len(chars)]
    ks.append(len(chars))
    accuracy: dict[str, list[float]] = {"mutual information": [], "frequency": []}
    for k in ctx.bar(ks, desc="top-k"):
        for ranking, order in (("mutual information", by_mi), ("frequency", by_frequency)):
            columns = np.sort(order[:k])
            model = MultinomialNB(1.0).fit(x_train[:, columns], y_train)
            accuracy[ranking].append(model.score(x_dev[:, columns], y_dev))
    rows = [{"k": k if k < len(chars) else f"all {k}", "accuracy, top-k by MI": a,
             "accuracy, top-k by frequency": b} for k, a, b in zip(ks, accuracy["mutual information"], accuracy["frequency"])]

    fig, ax = plt.subplots(figsize=(6, 4))
    for ranking, values in accuracy.items():
        ax.semilogx(ks, values, "o-", ms=4, label=f"top-k by {ranking}")
    ax.set_xlabel("characters kept (k)")
    ax.set_ylabel("dev accuracy (multinomial naive Bayes)")
    ax.set_title(f"ChnSentiCorp: {len(chars)} characters, {len(y_train)} training reviews")
    ax.legend()
    ctx.save_plot(fig, "accuracy")

    full = accuracy["mutual information"][-1]
    at = {k: (a, b) for k, a, b in zip(ks, accuracy["mutual information"], accuracy["frequency"])}
    k_small, k_mid = (30, 300) if ctx.quick else (50, 500)
    holds = bool(at[k_small][0] > at[k_small][1] + 0.02 and at[k_mid][0] >= full - 0.03 and sklearn_gap < 1e-9)
    summary = ("the top characters by mutual information with the label: "
               + ", ".join(f"{row['character']} ({row['MI (bits)']:.4f} bits)" for row in top[:8])
               + f"; naive Bayes on the top {k_small} reaches {at[k_small][0]:.1%} dev accuracy (the {k_small} most frequent: "
               f"{at[k_small][1]:.1%}), the top {k_mid} {at[k_mid][0]:.1%}, all {len(chars)} {full:.1%}")
    return LabResult(rows, summary, holds, {"top_characters": top, "max_gap_to_sklearn_bits": float(sklearn_gap),
                                            "characters": len(chars), "train": len(y_train), "dev": len(y_dev)})


LAB = Lab("mutual-info", "A few characters carry most of the information about a review's sentiment: ranked by mutual "
          "information with the label, the top few hundred give nearly the accuracy of all of them, and at small k "
          "they beat the same number of most frequent characters.", run)
