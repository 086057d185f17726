"""Lab `boundaries`: which learners draw straight decision boundaries, seen on 2-D data and measured on text.

2-D data (scaled to [0, 1]², 300 points to train, 300 to test; --quick: 150 and 150): two Gaussian blobs (linearly separable), two
moons, two circles, XOR (the sign of x·y). Learners: the hand-written ones of `nlplab.classic.learners` plus
scikit-learn's kernel SVM (RBF) and MLP (two hidden layers of 32). The decision regions are drawn on a grid;
how straight a boundary is is measured as the share of grid points on which the best straight line
(logistic regression, C = 10⁴, fitted to the learner's own grid labels) agrees with the learner — 1 for a
linear learner on any data.

Text: ChnSentiCorp, TF-IDF of the 1,000 most frequent character 1–2-grams (dense), train split to fit, dev split
to test (--quick: 800 and 300 reviews, 200 columns, 10 trees in the forest, 20 boosting stages); each hand-written learner beside its scikit-learn counterpart with the same settings (accuracy, the share of
test predictions they agree on, fit seconds). The 2-D moons and circles give the same comparison.
"""

from __future__ import annotations

import time
import warnings
from typing import Any

import numpy as np

from nlplab.classic.learners import LEARNERS
from nlplab.classic.linear import LogisticRegression
from nlplab.data.registry import load_dataset
from nlplab.lab.base import Lab, LabContext, LabResult

DATASETS = ("linear", "moons", "circles", "xor")
EXTRA = ("kernel SVM (sklearn)", "MLP (sklearn)")
FEATURES = {False: 1000, True: 200}  # TF-IDF columns, full and quick


def two_d(name: str, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import make_blobs, make_circles, make_moons

    seed = int(rng.integers(2**31))
    if name == "linear":
        return make_blobs(n, centers=[(-1.5, -1.5), (1.5, 1.5)], cluster_std=0.8, random_state=seed)
    if name == "moons":
        return make_moons(n, noise=0.2, random_state=seed)
    if name == "circles":
        return make_circles(n, noise=0.08, factor=0.5, random_state=seed)
    x = rng.uniform(-1, 1, (n, 2))
    return x, (x[:, 0] * x[:, 1] > 0).astype(np.int64)


def sklearn_twin(name: str, quick: bool) -> Any:
    """scikit-learn's estimator with the settings of our learner `name` (or the extra learners)."""
    from sklearn import ensemble, linear_model, naive_bayes, neighbors, neural_network, svm, tree

    params = {**LEARNERS[name].params, **overrides(name, quick)} if name in LEARNERS else {}
    return {
        "logistic regression": lambda: linear_model.LogisticRegression(C=params.get("C"), tol=1e-8, max_iter=10_000),
        "perceptron": lambda: linear_model.Perceptron(shuffle=False, tol=None, max_iter=params.get("epochs")),
        "linear SVM": lambda: svm.LinearSVC(loss="hinge", C=params.get("C"), tol=1e-5, max_iter=100_000),
        "naive Bayes": lambda: naive_bayes.MultinomialNB(alpha=params.get("alpha")),
        "decision tree": lambda: tree.DecisionTreeClassifier(max_depth=params.get("max_depth"), random_state=0),
        "random forest": lambda: ensemble.RandomForestClassifier(params.get("n_estimators"), random_state=0),
        "gradient boosting": lambda: ensemble.GradientBoostingClassifier(n_estimators=params.get("n_estimators"), random_state=0),
        "k-nearest neighbours": lambda: neighbors.KNeighborsClassifier(params.get("k")),
        "kernel SVM (sklearn)": lambda: svm.SVC(kernel="rbf", C=1.0, gamma="scale"),
        "MLP (sklearn)": lambda: neural_network.MLPClassifier((32, 32), max_iter=2000, random_state=0),
    }[name]()


def overrides(name: str, quick: bool) -> dict[str, Any]:
    return {"random forest": {"n_estimators": 10}, "gradient boosting": {"n_estimators": 20}}.get(name, {}) if quick else {}


def build(name: str, quick: bool) -> Any:
    return LEARNERS[name].build(**overrides(name, quick)) if name in LEARNERS else sklearn_twin(name, quick)


def fit_timed(model: Any, x: Any, y: np.ndarray) -> float:
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scikit-learn's ConvergenceWarning for the fixed-epoch perceptron
        model.fit(x, y)
    return time.perf_counter() - t0


def straightness(labels: np.ndarray, grid: np.ndarray) -> float:
    """Share of grid points where the best straight line agrees with `labels` (1 if only one class)."""
    if len(np.unique(labels)) < 2:
        return 1.0
    return float(np.mean(LogisticRegression(C=1e4).fit(grid, labels).predict(grid) == labels))


def chnsenticorp(quick: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    from sklearn.feature_extraction.text import TfidfVectorizer

    data = load_dataset("chnsenticorp")
    train, dev = (data.train[:800], data.dev[:300]) if quick else (data.train, data.dev)
    vectorizer = TfidfVectorizer(analyzer="char", ngram_range=(1, 2), min_df=2, sublinear_tf=True,
                                 max_features=FEATURES[quick])
    x_train = vectorizer.fit_transform([t for t, _ in train]).toarray()
    x_dev = vectorizer.transform([t for t, _ in dev]).toarray()
    return x_train, np.array([int(label) for _, label in train]), x_dev, np.array([int(label) for _, label in dev])


def run(ctx: LabContext) -> LabResult:
    import matplotlib.pyplot as plt

    rng = np.random.default_rng(ctx.seed)
    names = list(LEARNERS) + list(EXTRA)
    steps = 40 if ctx.quick else 120
    axis = np.linspace(0, 1, steps)
    grid = np.stack(np.meshgrid(axis, axis), -1).reshape(-1, 2)
    results: dict[str, dict[str, float]] = {name: {} for name in names}
    regions: dict[tuple[str, str], np.ndarray] = {}
    points: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for dataset in ctx.bar(DATASETS, desc="2-D data"):
        x, y = two_d(dataset, 300 if ctx.quick else 600, rng)
        low, high = x.min(0), x.max(0)
        x = (x - low) / (high - low)
        half = len(x) // 2
        points[dataset] = (x[:half], y[:half])
        for name in names:
            model = build(name, ctx.quick)
            fit_timed(model, x[:half], y[:half])
            prediction = model.predict(x[half:])
            results[name][f"{dataset} accuracy"] = float(np.mean(prediction == y[half:]))
            labels = model.predict(grid)
            regions[dataset, name] = labels.astype(np.float64).reshape(steps, steps)
            results[name][f"{dataset} straightness"] = straightness(labels, grid)
            if dataset in ("moons", "circles") and name in LEARNERS:
                twin = sklearn_twin(name, ctx.quick)
                fit_timed(twin, x[:half], y[:half])
                results[name][f"{dataset} agreement with sklearn"] = float(np.mean(twin.predict(x[half:]) == prediction))

    x_train, y_train, x_dev, y_dev = chnsenticorp(ctx.quick)
    for name in ctx.bar(names, desc="ChnSentiCorp"):
        model = build(name, ctx.quick)
        results[name]["ChnSentiCorp fit s"] = fit_timed(model, x_train, y_train)
        prediction = model.predict(x_dev)
        results[name]["ChnSentiCorp accuracy"] = float(np.mean(prediction == y_dev))
        if name in LEARNERS:
            twin = sklearn_twin(name, ctx.quick)
            results[name]["sklearn fit s"] = fit_timed(twin, x_train, y_train)
            results[name]["sklearn accuracy"] = float(np.mean(twin.predict(x_dev) == y_dev))
            results[name]["ChnSentiCorp agreement with sklearn"] = float(np.mean(twin.predict(x_dev) == prediction))

    fig, axes = plt.subplots(len(DATASETS), len(names), figsize=(1.7 * len(names), 1.8 * len(DATASETS)))
    for i, dataset in enumerate(DATASETS):
        x, y = points[dataset]
        for j, name in enumerate(names):
            ax = axes[i, j]
            ax.contourf(axis, axis, regions[dataset, name], levels=[-0.5, 0.5, 1.5], colors=["#f4b6b6", "#b6cdf4"], alpha=0.8)
            ax.scatter(x[:, 0], x[:, 1], c=np.where(y == 1, "#1f4fa8", "#b22222"), s=3)
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                linear = LEARNERS[name].linear if name in LEARNERS else False
                ax.set_title(f"{name}\n({'linear' if linear else 'non-linear'})", fontsize=8)
            if j == 0:
                ax.set_ylabel(dataset)
            ax.text(0.02, 0.02, f"{results[name][f'{dataset} accuracy']:.2f}", transform=ax.transAxes, fontsize=7)
    fig.suptitle("decision regions (test accuracy in the corner)")
    ctx.save_plot(fig, "regions")

    rows = []
    for name in names:
        r = results[name]
        rows.append({"learner": name, "linear": LEARNERS[name].linear if name in LEARNERS else False,
                     **{f"{d} acc.": r[f"{d} accuracy"] for d in DATASETS},
                     "straightness (min over data)": min(r[f"{d} straightness"] for d in DATASETS),
                     "agree w/ sklearn: moons / circles / ChnSentiCorp": (
                         " / ".join(f"{r[f'{d} agreement with sklearn']:.3f}" for d in ("moons", "circles", "ChnSentiCorp"))
                         if name in LEARNERS else "–"),
                     "ChnSentiCorp acc.": r["ChnSentiCorp accuracy"], "sklearn acc.": r.get("sklearn accuracy", float("nan")),
                     "fit s": r["ChnSentiCorp fit s"], "sklearn fit s": r.get("sklearn fit s", float("nan"))})

    linear = [row for row in rows if row["linear"]]
    curved = [row for row in rows if not row["linear"]]
    agreements = [results[n][f"{d} agreement with sklearn"] for n in LEARNERS for d in ("moons", "circles", "ChnSentiCorp")]
    gaps = [abs(results[n]["ChnSentiCorp accuracy"] - results[n]["sklearn accuracy"]) for n in LEARNERS]
    holds = bool(all(row["straightness (min over data)"] > 0.99 for row in linear)
                 and all(row["straightness (min over data)"] < 0.95 for row in curved)
                 and all(max(row["circles acc."], row["xor acc."]) < 0.75 for row in linear)
                 and all(min(row["circles acc."], row["xor acc."]) > 0.85 for row in curved))
    summary = (f"linear learners: straightness ≥ {min(r['straightness (min over data)'] for r in linear):.3f} on every data set, "
               f"accuracy on circles / XOR at most {max(max(r['circles acc.'], r['xor acc.']) for r in linear):.2f}; "
               f"non-linear: straightness ≤ {max(r['straightness (min over data)'] for r in curved):.3f}, accuracy on "
               f"circles / XOR at least {min(min(r['circles acc.'], r['xor acc.']) for r in curved):.2f}. ChnSentiCorp TF-IDF: "
               + ", ".join(f"{r['learner']} {r['ChnSentiCorp acc.']:.3f}" for r in rows)
               + f"; hand-written vs scikit-learn: agreement {min(agreements):.3f}–{max(agreements):.3f} on moons, circles and "
               f"ChnSentiCorp, accuracy gap ≤ {max(gaps):.3f} on ChnSentiCorp")
    return LabResult(rows, summary, holds, {"results": results, "features": x_train.shape[1], "train": len(y_train),
                                            "dev": len(y_dev)})


LAB = Lab("boundaries", "Logistic regression, the perceptron, the linear SVM and naive Bayes draw straight decision "
          "boundaries and fail on circles and XOR; decision trees, forests, boosting, k-NN, kernel SVMs and MLPs bend "
          "theirs and fit them.", run)
