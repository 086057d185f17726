"""Learning by hand in NumPy: Nielsen's sigmoid network with backprop, and gradient descent on y = w1·x² + w2·x + w3."""

from nlplab.scratch.network import (
    COSTS,
    CrossEntropyCost,
    Network,
    QuadraticCost,
    one_hot,
    sigmoid,
    sigmoid_prime,
)
from nlplab.scratch.quadratic import Fit, compare, fit, least_squares, make_data

__all__ = [
    "COSTS",
    "CrossEntropyCost",
    "Fit",
    "Network",
    "QuadraticCost",
    "compare",
    "fit",
    "least_squares",
    "make_data",
    "one_hot",
    "sigmoid",
    "sigmoid_prime",
]
