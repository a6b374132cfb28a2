"""The check that an EM-type fit never lowers the log-likelihood, shared by the tests of every model.

Exact EM (and GEM) is monotone in exact arithmetic ({prf:ref}`em_algorithm-thm-monotone`); in
floating point a step may fall by rounding of a sum over N K terms, so a drop is allowed up to
``rtol`` times the log-likelihood it lands on.
"""
import numpy as np


def assert_monotone(trace, rtol: float = 1e-10) -> None:
    """Assert that no step of ``trace`` (log-likelihoods, shape (T + 1,)) falls by more than rounding."""
    trace = np.asarray(trace, dtype=float)
    drops = np.diff(trace)
    assert np.all(drops >= -rtol * np.abs(trace[1:])), \
        f"log-likelihood fell by {-drops.min():.3g} at step {drops.argmin() + 1}"
