"""The claims of the chapter "Jensen's inequality and the evidence lower bound" (book/jensen_elbo.ipynb),
checked numerically: Jensen's inequality and its equality cases, the decomposition
log p(x | theta) = F(q, theta) + KL(q || p(z | x, theta)), the bound and where it touches, and the
exercise on hard assignments. Each test is named after the statement it checks; the models and
tolerances are those of tests/theory_cases.py.
"""

import numpy as np
import pytest
from scipy import integrate
from scipy.stats import norm

import emlib
from emlib import bounds
from theory_cases import IDENTITY_RTOL, case, perturbed, random_q  # noqa: F401 (fixtures)


def test_log_is_below_its_tangent_with_equality_only_at_the_touching_point():
    # The lemma log u <= u - 1 (the supporting line of log at 1), equality iff u = 1.
    u = np.concatenate([np.geomspace(1e-6, 1e6, 1001), [1.0]])
    gap = (u - 1) - np.log(u)
    assert np.all(gap >= 0)
    assert gap[-1] == 0.0
    assert np.all(gap[np.abs(u - 1) > 1e-3] > 0)


@pytest.mark.parametrize("seed", range(5))
def test_jensen_inequality_for_log_with_equality_iff_argument_is_constant(seed):
    rng = np.random.default_rng(seed)
    a = rng.uniform(0.1, 10.0, size=7)
    w = rng.dirichlet(np.ones(7))
    assert np.log(w @ a) > w @ np.log(a)  # strict: the points differ
    const = np.full(7, a[0])
    assert np.log(w @ const) == pytest.approx(w @ np.log(const), rel=1e-14)
    # Points with zero weight do not count: equality when all points WITH weight agree.
    w0 = np.where(np.arange(7) < 3, w, 0.0)
    w0 /= w0.sum()
    a0 = np.where(np.arange(7) < 3, a[0], a)
    assert np.log(w0 @ a0) == pytest.approx(w0 @ np.log(a0), rel=1e-14)


def test_jensen_equality_when_f_is_affine_on_the_support():
    # min(u, 1) is concave; on points in [0, 1] it is affine, so Jensen holds with equality.
    f = lambda u: np.minimum(u, 1.0)
    rng = np.random.default_rng(5)
    a, w = rng.uniform(0.0, 1.0, size=6), rng.dirichlet(np.ones(6))
    assert f(w @ a) == pytest.approx(w @ f(a), rel=1e-14)
    b = np.concatenate([a[:3], [2.0, 3.0, 4.0]])  # straddles the kink: strict inequality
    assert f(w @ b) > w @ f(b) + 1e-6


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("alpha", [0.1, 1.0, 10.0])
def test_elbo_plus_kl_equals_loglik(case, seed, alpha):
    model, X, theta = case
    q = random_q(model, X, seed, alpha)
    F = bounds.elbo(model, X, theta, q)
    KL = bounds.kl_to_posterior(model, X, theta, q)
    assert F + KL == pytest.approx(model.log_likelihood(X, theta), rel=IDENTITY_RTOL)
    assert KL > 0.1  # a random q is far from the posterior: the identity is not 0 = 0


def test_elbo_below_loglik_with_equality_at_posterior(case):
    model, X, theta = case
    loglik = model.log_likelihood(X, theta)
    for seed in range(5):
        assert bounds.elbo(model, X, theta, random_q(model, X, seed)) < loglik - 0.1
    post = model.posterior(X, theta)
    assert bounds.elbo(model, X, theta, post) == pytest.approx(loglik, rel=IDENTITY_RTOL)
    assert abs(bounds.kl_to_posterior(model, X, theta, post)) < IDENTITY_RTOL * abs(loglik)


def test_elbo_rises_as_q_moves_toward_the_posterior(case):
    # F(q_lambda) with q_lambda = (1 - lambda) q_0 + lambda p(z | x, theta) increases in lambda:
    # KL is convex in q and zero at lambda = 1, and F = loglik - KL.
    model, X, theta = case
    q0, post = random_q(model, X, 3), model.posterior(X, theta)
    lams = np.linspace(0.0, 1.0, 11)
    F = [bounds.elbo(model, X, theta, (1 - lam) * q0 + lam * post) for lam in lams]
    assert np.all(np.diff(F) > 0)


def test_bound_touches_loglik_at_theta_t_along_a_slice(case):
    # The chapter's figure: theta -> F(q_t, theta) with q_t = p(z | x, theta_t) lies below
    # loglik(theta) on a one-parameter slice and touches it at theta_t.
    model, X, theta_t = case
    q_t = model.posterior(X, theta_t)
    for h in np.linspace(-1.0, 1.0, 9):
        theta = perturbed(theta_t, "means", (0, 0), h)
        gap = model.log_likelihood(X, theta) - bounds.elbo(model, X, theta, q_t)
        if h == 0:
            assert abs(gap) < IDENTITY_RTOL * abs(model.log_likelihood(X, theta))
        else:
            assert gap > 0


def test_hard_assignment_gap_is_minus_sum_of_log_responsibilities(case):
    # jensen_elbo exercise "Hard assignments": H(one-hot q) = 0, F = complete-data loglik,
    # and loglik - F = -sum_n log r_{n c_n} > 0.
    model, X, theta = case
    r = model.posterior(X, theta)
    rows = np.arange(len(X))
    c = r.argmax(axis=1)
    q_hard = np.eye(model.n_components)[c]
    F = bounds.elbo(model, X, theta, q_hard)
    assert bounds.entropy(q_hard) == 0.0
    assert F == pytest.approx(model.log_joint(X, theta)[rows, c].sum(), rel=IDENTITY_RTOL)
    gap = model.log_likelihood(X, theta) - F
    assert gap == pytest.approx(-np.log(r[rows, c]).sum(), rel=1e-8)
    assert gap > 0


# -- Claims added with the chapter's revision ----------------------------------------

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
