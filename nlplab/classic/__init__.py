"""The classic toolbox, NumPy only: information theory, linear and non-linear learners, sorting, Bayesian
optimisation — each hand-written and proven equal to the standard library, SciPy or scikit-learn by tests."""
