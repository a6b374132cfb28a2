"""The claims added to the chapter "Jensen's inequality and the evidence lower bound"
(book/jensen_elbo.ipynb): the continuous example with a negative differential entropy, checked
against numerical integration, and the slice of the bound with its maximizer. The general
identities (Jensen, F + KL = log-likelihood, tightness) are in tests/test_theory.py."""
import numpy as np
import pytest
from scipy import integrate
from scipy.stats import norm

import emlib
from emlib import bounds

X_ONE = 1.0   # z ~ N(0, 1), x | z ~ N(z, 1): p(x) = N(0, 2), posterior N(x / 2, 1 / 2)


def closed_form(m, s):
    """F, KL and H for q = N(m, s^2), as in the chapter's cell."""
    H = 0.5 * np.log(2 * np.pi * np.e * s**2)
    E_log_joint = -np.log(2 * np.pi) - 0.5 * (m**2 + s**2) - 0.5 * ((X_ONE - m) ** 2 + s**2)
    KL = np.log(np.sqrt(0.5) / s) + (s**2 + (m - X_ONE / 2) ** 2) / (2 * 0.5) - 0.5
    return E_log_joint + H, KL, H


@pytest.mark.parametrize("m, s", [(0.5, 0.1), (0.0, 0.5), (0.5, np.sqrt(0.5)), (-1.0, 2.0)])
def test_continuous_elbo_and_kl_against_numerical_integration(m, s):
    q = norm(m, s)
    lo, hi = m - 12 * s, m + 12 * s
    log_joint = lambda z: norm.logpdf(z, 0, 1) + norm.logpdf(X_ONE, z, 1)
    F_num = integrate.quad(lambda z: q.pdf(z) * (log_joint(z) - q.logpdf(z)), lo, hi,
                           epsabs=1e-12, epsrel=1e-12)[0]
    post = norm(X_ONE / 2, np.sqrt(0.5))
    KL_num = integrate.quad(lambda z: q.pdf(z) * (q.logpdf(z) - post.logpdf(z)), lo, hi,
                            epsabs=1e-12, epsrel=1e-12)[0]
    F, KL, H = closed_form(m, s)
    assert F == pytest.approx(F_num, abs=1e-8)
    assert KL == pytest.approx(KL_num, abs=1e-8)
    assert H == pytest.approx(q.entropy(), rel=1e-12)
    log_px = norm.logpdf(X_ONE, 0, np.sqrt(2))
    assert F + KL == pytest.approx(log_px, abs=1e-12)
    assert F <= log_px + 1e-12


def test_differential_entropy_is_negative_below_one_over_2_pi_e():
    threshold = 1 / (2 * np.pi * np.e)
    below, above = np.sqrt(0.99 * threshold), np.sqrt(1.01 * threshold)
    assert norm(0, below).entropy() < 0 < norm(0, above).entropy()
    F, KL, H = closed_form(0.5, 0.1)
    assert H < 0 and KL > 0                      # the chapter's first row: H(q) < 0, F < ell


def test_bound_along_the_slice_is_highest_at_the_weighted_mean():
    X = emlib.datasets.old_faithful()[:, :1]
    model = emlib.GaussianMixture(2, reg_covar=0.0)
    theta = emlib.GaussianMixtureParams([0.5, 0.5], [[3.0], [4.0]], [[[0.8]], [[0.8]]])
    q = model.posterior(X, theta)

    def at(mu1):
        return emlib.GaussianMixtureParams(theta.weights, [[mu1], [4.0]], theta.covariances)

    best = q[:, 0] @ X[:, 0] / q[:, 0].sum()
    F_best = bounds.elbo(model, X, at(best), q)
    for v in np.linspace(1.5, 4.5, 301):
        assert bounds.elbo(model, X, at(v), q) <= F_best + 1e-9
    assert 2.80 < best < 2.82 < 3.0                                  # left of the touching point
    assert model.log_likelihood(X, at(best)) > model.log_likelihood(X, theta) + 1.0
