"""The hand-written classifiers by name, each marked linear (a hyperplane decision boundary) or not.

"Name three linear and three non-linear learners": linear regression (as a classifier: threshold the fit),
logistic regression, perceptron, linear SVM and naive Bayes draw straight boundaries; decision trees, random
forests, gradient-boosted trees and k-nearest neighbours (and kernel SVMs, MLPs) draw curved or piecewise ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from nlplab.classic.base import Classifier
from nlplab.classic.linear import LinearSVM, LogisticRegression, MultinomialNB, Perceptron
from nlplab.classic.neighbors import KNearestNeighbors
from nlplab.classic.tree import DecisionTree, GradientBoosting, RandomForest


@dataclass(frozen=True)
class Learner:
    name: str
    cls: type[Classifier]
    params: dict[str, Any]
    linear: bool

    def build(self, **overrides: Any) -> Classifier:
        """A fresh, unfitted classifier with `params` updated by `overrides`."""
        return self.cls(**{**self.params, **overrides})


LEARNERS = {learner.name: learner for learner in (
    Learner("logistic regression", LogisticRegression, {"C": 1.0}, True),
    Learner("perceptron", Perceptron, {"epochs": 20}, True),
    Learner("linear SVM", LinearSVM, {"C": 1.0}, True),
    Learner("naive Bayes", MultinomialNB, {"alpha": 1.0}, True),
    Learner("decision tree", DecisionTree, {"max_depth": 8}, False),
    Learner("random forest", RandomForest, {"n_estimators": 100}, False),
    Learner("gradient boosting", GradientBoosting, {"n_estimators": 100}, False),
    Learner("k-nearest neighbours", KNearestNeighbors, {"k": 5}, False),
)}
