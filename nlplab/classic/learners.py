"""The hand-written classifiers by name, each marked linear (a hyperplane decision boundary) or not.

"Name three linear and three non-linear learners": linear regression (as a classifier: threshold the fit),
logistic regression, perceptron, linear SVM and naive Bayes draw straight boundaries; decision trees, random
forests, gradient-boosted trees and k-nearest neighbours (and kernel SVMs, MLPs) draw curved or piecewise ones.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from nlplab.classic.base import Classifier
from nlplab.classic.linear import LinearSVM, LogisticRegression, MultinomialNB, Perceptron
from nlplab.classic.neighbors import KNearestNeighbors
from nlplab.classic.tree import DecisionTree, GradientBoosting, RandomForest


@dataclass(frozen=True)
class Learner:
    name: str
    build: Callable[[], Classifier]
    linear: bool


LEARNERS = {learner.name: learner for learner in (
    Learner("logistic regression", lambda: LogisticRegression(C=1.0), True),
    Learner("perceptron", lambda: Perceptron(epochs=20), True),
    Learner("linear SVM", lambda: LinearSVM(C=1.0), True),
    Learner("naive Bayes", lambda: MultinomialNB(alpha=1.0), True),
    Learner("decision tree", lambda: DecisionTree(max_depth=8), False),
    Learner("random forest", lambda: RandomForest(100), False),
    Learner("gradient boosting", lambda: GradientBoosting(100), False),
    Learner("k-nearest neighbours", lambda: KNearestNeighbors(5), False),
)}
