"""Shared fixtures: small seeded data sets. Every test draws its randomness from a fixed seed.

Property tests (hypothesis) run the same examples every time under the default profile
"derandomized"; ``make fuzz`` selects the profile "fuzz" (HYPOTHESIS_PROFILE=fuzz), which draws
new random examples on every run to explore further.
"""
import os
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

import emlib

settings.register_profile("derandomized", derandomize=True, deadline=None, database=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("fuzz", derandomize=False, deadline=None, max_examples=500,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "derandomized"))

# The book's build tooling (chapter sources, launch cell, reproducibility) lives in book/_ext.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "book" / "_ext"))


@pytest.fixture(scope="session")
def faithful():
    return emlib.datasets.old_faithful()


@pytest.fixture
def blobs():
    """Three well-separated 2-D clusters, 300 points."""
    rng = np.random.default_rng(12345)
    centres = np.array([[0.0, 0.0], [5.0, 5.0], [-5.0, 4.0]])
    return np.concatenate([c + rng.standard_normal((100, 2)) for c in centres])


@pytest.fixture(scope="session")
def random_intercept_problem():
    """(X, MLE): 100 groups of 2-10 binary trials from a logistic random-intercept model with
    mu = -0.5, tau^2 = 1.5, and the maximum-likelihood estimate found by EM (quadrature E-step)."""
    model = emlib.LogisticRandomIntercept()
    truth = emlib.LogisticRandomInterceptParams(-0.5, 1.5)
    rng = np.random.default_rng(0)
    X, _ = model.sample(truth, rng.integers(2, 11, size=100), rng)
    fit = emlib.em(model, X, emlib.LogisticRandomInterceptParams(1.0, 0.3), tol=1e-13, max_iter=3000)
    assert fit.converged
    return X, fit.params
