"""The claims of the chapter "Gaussian mixtures in full" (book/gaussian_mixtures.ipynb), checked numerically.

Each test names the equation, lemma or proposition of the chapter it checks. Q(theta | theta_t) is
always computed through ``emlib.bounds.expected_complete_loglik`` with q = p(z | x, theta_t).
"""
from __future__ import annotations

import itertools
import warnings

import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment
from scipy.special import logsumexp
from scipy.stats import multivariate_normal

import emlib
from emlib.bounds import expected_complete_loglik

SEEDS = range(10)  # the seeds of init_params used in the chapter


# ----------------------------------------------------------------------------- helpers
@pytest.fixture(scope="module")
def data():
    return emlib.datasets.old_faithful()


@pytest.fixture(scope="module")
def waiting(data):
    return data[:, [1]]


@pytest.fixture(scope="module")
def fit1(waiting):
    """The chapter's two-component fit of the waiting times (seed 0): the default stopping rule, then
    run on for 1000 iterations to the limit of its parameters."""
    model = emlib.GaussianMixture(2)
    stopped = emlib.em(model, waiting, model.init_params(waiting, np.random.default_rng(0)))
    return emlib.em(model, waiting, stopped.params, max_iter=1000, tol=0)


def params(weights, means, covariances):
    return emlib.GaussianMixtureParams(np.asarray(weights), np.asarray(means), np.asarray(covariances))


def responsibilities_after(model, X, seed, n_iter):
    """(theta_t, q) with theta_t after n_iter EM iterations from a k-means++ start, q = p(z | x, theta_t)."""
    theta = emlib.em(model, X, model.init_params(X, np.random.default_rng(seed)), max_iter=n_iter, tol=0).params
    return theta, model.posterior(X, theta)


def scatter(X, q, means):
    """C_k = sum_n r_nk (x_n - mu_k)(x_n - mu_k)^T, centred (eq. gaussian_mixtures-scatter), shape (K, D, D)."""
    return np.stack([(q[:, k, None] * (X - means[k])).T @ (X - means[k]) for k in range(q.shape[1])])


def random_symmetric(rng, D):
    A = rng.standard_normal((D, D))
    return (A + A.T) / 2


def perturbations(theta, rng, scale, n=10):
    """Feasible perturbations of every block of theta: weights along zero-sum directions, means in any
    direction, covariances along symmetric directions (full) or positive ones (diag), each kept valid."""
    K, D = theta.means.shape
    out = []
    for _ in range(n):
        d = rng.standard_normal(K)
        d -= d.mean()
        w = theta.weights + scale * theta.weights.min() * d / np.abs(d).max()
        out.append(params(w / w.sum(), theta.means, theta.covariances))
        out.append(params(theta.weights, theta.means + scale * np.sqrt(np.diagonal(theta.covariances, axis1=-2, axis2=-1)
                                                                     if theta.covariances.ndim == 3 else theta.covariances)
                          * rng.standard_normal((K, D)), theta.covariances))
        if theta.covariances.ndim == 3:
            cov = np.array([c + scale * np.linalg.eigvalsh(c)[0] * random_symmetric(rng, D) / np.sqrt(D)
                            for c in theta.covariances])
            if np.all(np.linalg.eigvalsh(cov) > 0):
                out.append(params(theta.weights, theta.means, cov))
        else:
            cov = theta.covariances * np.exp(scale * rng.standard_normal((K, D)))
            out.append(params(theta.weights, theta.means, cov))
    return out


def beaten_by_perturbation(model, X, q, theta, rng, scales=(1e-3, 1e-2, 1e-1)):
    """True if some feasible perturbation of theta gives a larger Q(. | theta_t) (q fixed)."""
    best = expected_complete_loglik(model, X, theta, q)
    return any(expected_complete_loglik(model, X, p, q) > best
               for s in scales for p in perturbations(theta, rng, s))


def spike_start(base, x0, variance, weight=0.1):
    """The chapter's adversarial start: the two fitted components plus a third one at x0."""
    return params(np.r_[(1 - weight) * base.weights, weight], np.r_[base.means, [[x0]]],
                  np.r_[base.covariances, [[[variance]]]])


def rel_diff(a, b):
    return float(np.max(np.abs(np.asarray(a) - np.asarray(b))) / np.max(np.abs(b)))


# ----------------------------------------------------------------------------- E-step
def test_log_space_responsibilities_survive_underflow(data):
    """Eqs. gaussian_mixtures-logresp/-lse: where every density underflows, the literal Bayes rule
    (eq. gaussian_mixtures-bayes) gives nan and the log-space posterior gives the right answer."""
    model = emlib.GaussianMixture(2)
    theta, _ = responsibilities_after(model, data, 0, 1)
    x_far = np.array([[4.0, 400.0], [30.0, 60.0]])
    dens = np.array([[theta.weights[k] * multivariate_normal(theta.means[k], theta.covariances[k]).pdf(x)
                      for k in range(2)] for x in x_far])
    assert np.all(dens == 0.0)
    with np.errstate(invalid="ignore"):
        assert np.all(np.isnan(dens / dens.sum(axis=1, keepdims=True)))
    r = model.posterior(x_far, theta)
    assert np.all(np.isfinite(r)) and np.allclose(r.sum(axis=1), 1.0, rtol=0, atol=1e-12)
    log_joint = np.array([[np.log(theta.weights[k]) + multivariate_normal(theta.means[k], theta.covariances[k]).logpdf(x)
                           for k in range(2)] for x in x_far])
    np.testing.assert_allclose(r, np.exp(log_joint - logsumexp(log_joint, axis=1, keepdims=True)), rtol=1e-10, atol=1e-300)
    np.testing.assert_allclose(r, [[0.0, 1.0], [0.0, 1.0]], atol=1e-40)


def test_normalizers_sum_to_the_log_likelihood(data):
    """The E-step's normalizers log sum_k exp(a_nk) add up to l(theta), eq. gaussian_mixtures-loglik."""
    model = emlib.GaussianMixture(3)
    theta = model.init_params(data, np.random.default_rng(3))
    _, loglik = model.e_step(data, theta)
    direct = sum(np.log(sum(theta.weights[k] * multivariate_normal(theta.means[k], theta.covariances[k]).pdf(x)
                            for k in range(3))) for x in data)
    assert loglik == pytest.approx(direct, rel=1e-12)


# ----------------------------------------------------------------------------- Q and the M-step
@pytest.mark.parametrize("covariance_type", ["full", "diag"])
def test_Q_depends_on_data_only_through_the_statistics(data, covariance_type):
    """Eq. gaussian_mixtures-Qstats (with -scatter) equals Q computed point by point (eq. -Q)."""
    model = emlib.GaussianMixture(3, covariance_type)
    _, q = responsibilities_after(model, data, 1, 3)
    theta = model.init_params(data, np.random.default_rng(7))  # any parameters, not the optimum
    stats = model.expected_stats(data, q)
    D = data.shape[1]
    total = 0.0
    for k in range(3):
        Nk, S1, mu = stats.counts[k], stats.sum_x[k], theta.means[k]
        S2 = stats.sum_xx[k] if covariance_type == "full" else np.diag(stats.sum_xx[k])  # diag: only its diagonal is used
        Sigma = theta.covariances[k] if covariance_type == "full" else np.diag(theta.covariances[k])
        C = S2 - np.outer(S1, mu) - np.outer(mu, S1) + Nk * np.outer(mu, mu)
        _, logdet = np.linalg.slogdet(Sigma)
        total += (Nk * np.log(theta.weights[k]) - Nk * D / 2 * np.log(2 * np.pi) - Nk / 2 * logdet
                  - 0.5 * np.trace(np.linalg.solve(Sigma, C)))
    assert total == pytest.approx(expected_complete_loglik(model, data, theta, q), rel=1e-12)


@pytest.mark.parametrize("covariance_type", ["full", "diag"])
def test_m_step_is_the_textbook_formula(data, covariance_type):
    """m_step(expected_stats) = eqs. gaussian_mixtures-weights, -means, -cov-reg / -diag, with centred sums."""
    model = emlib.GaussianMixture(2, covariance_type, reg_covar=1e-3)
    _, q = responsibilities_after(model, data, 0, 2)
    theta = model.m_step(model.expected_stats(data, q))
    Nk = q.sum(axis=0)
    mu = q.T @ data / Nk[:, None]
    C = scatter(data, q, mu) / Nk[:, None, None] + 1e-3 * np.eye(2)
    np.testing.assert_allclose(theta.weights, Nk / len(data), rtol=1e-13)
    np.testing.assert_allclose(theta.means, mu, rtol=1e-13)
    expected = C if covariance_type == "full" else np.diagonal(C, axis1=1, axis2=2)
    np.testing.assert_allclose(theta.covariances, expected, rtol=1e-10)


def test_diagonal_update_is_the_diagonal_of_the_full_update(data):
    """Eq. gaussian_mixtures-diag is the diagonal of eq. gaussian_mixtures-cov (same responsibilities)."""
    full, diag = emlib.GaussianMixture(3, "full"), emlib.GaussianMixture(3, "diag")
    _, q = responsibilities_after(full, data, 2, 4)
    theta_full = full.m_step(full.expected_stats(data, q))
    theta_diag = diag.m_step(diag.expected_stats(data, q))
    np.testing.assert_allclose(theta_diag.means, theta_full.means, rtol=1e-13)
    np.testing.assert_allclose(theta_diag.covariances, np.diagonal(theta_full.covariances, axis1=1, axis2=2), rtol=1e-10)


@pytest.mark.parametrize("covariance_type", ["full", "diag"])
@pytest.mark.parametrize("K, n_iter", [(2, 1), (3, 5)])
def test_m_step_maximizes_Q(data, covariance_type, K, n_iter):
    """The closed-form M-step (reg_covar = 0, exact EM) maximizes Q: every feasible perturbation of any
    block lowers Q. The same check rejects a slightly wrong update, so it can fail."""
    model = emlib.GaussianMixture(K, covariance_type, reg_covar=0.0)
    theta_t, q = responsibilities_after(model, data, 0, n_iter)
    theta = model.m_step(model.expected_stats(data, q))
    rng = np.random.default_rng(11)
    assert not beaten_by_perturbation(model, data, q, theta, rng)
    # Q and l both rose in this iteration (the check of the chapter's one-step demonstration)
    assert expected_complete_loglik(model, data, theta, q) > expected_complete_loglik(model, data, theta_t, q)
    assert model.log_likelihood(data, theta) >= model.log_likelihood(data, theta_t)
    # negative controls: covariances 2% too large, means off by 5% of a standard deviation
    wrong_cov = params(theta.weights, theta.means, 1.02 * theta.covariances)
    assert beaten_by_perturbation(model, data, q, wrong_cov, rng)
    wrong_means = params(theta.weights, theta.means + 0.05 * data.std(axis=0), theta.covariances)
    assert beaten_by_perturbation(model, data, q, wrong_means, rng)


def test_weights_update_maximizes_the_constrained_objective():
    """Eq. gaussian_mixtures-weights: pi = N_k / N beats every other point of the simplex."""
    rng = np.random.default_rng(5)
    Nk = np.array([40.3, 120.9, 7.2, 100.6])
    best = np.sum(Nk * np.log(Nk / Nk.sum()))
    others = rng.dirichlet(np.ones(4), size=5000)
    assert np.all(np.log(others) @ Nk < best)


def test_covariance_lemma():
    """Lemma gaussian_mixtures-lemma-cov: n log det L - tr(L C) is maximized uniquely at L = n C^{-1}."""
    rng = np.random.default_rng(9)
    for D in (1, 2, 4):
        A = rng.standard_normal((D, D))
        C, n = A @ A.T + 0.5 * np.eye(D), 17.0

        def f(L):
            return n * np.linalg.slogdet(L)[1] - np.trace(L @ C)

        best = n * np.linalg.inv(C)
        for _ in range(300):
            B = rng.standard_normal((D, D))
            L = B @ B.T + 1e-3 * np.eye(D)
            assert f(L) < f(best)
            assert f(best + 1e-4 * random_symmetric(rng, D)) < f(best)
        # the closed-form maximum of the proof: -nD + nD log n - n log det C
        assert f(best) == pytest.approx(-n * D + n * D * np.log(n) - n * np.linalg.slogdet(C)[1], rel=1e-12)


def test_tied_covariance_update_of_the_exercise(data):
    """Exercise gaussian_mixtures-ex-tied: Sigma = sum_k C_k / N maximizes Q among tied covariances."""
    model = emlib.GaussianMixture(3, reg_covar=0.0)
    _, q = responsibilities_after(model, data, 4, 3)
    theta = model.m_step(model.expected_stats(data, q))
    Sigma = scatter(data, q, theta.means).sum(axis=0) / len(data)

    def Q(S):
        return expected_complete_loglik(model, data, params(theta.weights, theta.means, np.repeat(S[None], 3, 0)), q)

    rng = np.random.default_rng(2)
    lowest = np.linalg.eigvalsh(Sigma)[0]
    for scale in (1e-3, 1e-2, 1e-1):
        for _ in range(15):
            assert Q(Sigma + scale * lowest * random_symmetric(rng, 2) / 2) < Q(Sigma)
    # and it is the N_k-weighted average of the untied update
    np.testing.assert_allclose(Sigma, np.einsum("k,kij->ij", theta.weights, theta.covariances), rtol=1e-10)


def test_spherical_update_of_the_exercise(data):
    """Exercise gaussian_mixtures-ex-spherical: v_k = tr(C_k) / (N_k D) maximizes Q over Sigma_k = v_k I."""
    model = emlib.GaussianMixture(2, reg_covar=0.0)
    _, q = responsibilities_after(model, data, 0, 2)
    theta = model.m_step(model.expected_stats(data, q))
    v = np.trace(scatter(data, q, theta.means), axis1=1, axis2=2) / (q.sum(axis=0) * 2)

    def Q(v):
        return expected_complete_loglik(model, data, params(theta.weights, theta.means, v[:, None, None] * np.eye(2)), q)

    for k in range(2):
        for factor in (0.9, 0.999, 1.001, 1.1):
            w = v.copy()
            w[k] *= factor
            assert Q(w) < Q(v)
    np.testing.assert_allclose(v, np.trace(theta.covariances, axis1=1, axis2=2) / 2, rtol=1e-10)


@pytest.mark.parametrize("kind, K, D, expected", [
    ("full", 2, 2, (2 - 1) + 2 * 2 + 2 * 3),
    ("full", 3, 2, (3 - 1) + 3 * 2 + 3 * 3),
    ("diag", 2, 3, (2 - 1) + 2 * 2 * 3),
    ("tied", 3, 2, (3 - 1) + 3 * 2 + 3),
    ("spherical", 2, 3, (2 - 1) + 2 * 3 + 2),
    ("full", 2, 1, 5),
])
def test_free_parameter_counts_of_the_exercise(kind, K, D, expected):
    """Exercise gaussian_mixtures-ex-count: the count equals the rank of the derivative of the log-densities
    log p(x_i | theta) with respect to an over-complete parametrization (softmax logits for the weights)."""
    rng = np.random.default_rng(0)
    model = emlib.GaussianMixture(K)
    base_cov = np.eye(D) + 0.3 * np.ones((D, D))
    means0 = 2.0 * rng.standard_normal((K, D))
    iu = np.triu_indices(D)

    def unpack(phi):
        logits, rest = phi[:K], phi[K:]
        means, rest = means0 + rest[:K * D].reshape(K, D), rest[K * D:]
        if kind == "full":
            covs = []
            for k in range(K):
                E = np.zeros((D, D))
                E[iu] = rest[k * len(iu[0]):(k + 1) * len(iu[0])]
                covs.append(base_cov * (1 + 0.2 * k) + E + np.triu(E, 1).T)
        elif kind == "diag":
            covs = [np.diag(np.diag(base_cov) * (1 + 0.2 * k) + rest[k * D:(k + 1) * D]) for k in range(K)]
        elif kind == "tied":
            E = np.zeros((D, D))
            E[iu] = rest
            covs = [base_cov + E + np.triu(E, 1).T] * K
        else:
            covs = [(1 + 0.2 * k + rest[k]) * np.eye(D) for k in range(K)]
        w = np.exp(logits - logits.max())
        return params(w / w.sum(), means, np.array(covs))

    n_cov = {"full": K * len(iu[0]), "diag": K * D, "tied": len(iu[0]), "spherical": K}[kind]
    phi0 = np.r_[np.linspace(0, 0.5, K), np.zeros(K * D + n_cov)]
    x = rng.standard_normal((400, D)) * 2.5
    h = 1e-5
    J = np.empty((len(x), phi0.size))
    for i in range(phi0.size):
        e = np.zeros_like(phi0)
        e[i] = h
        J[:, i] = (model.log_likelihood_per_point(x, unpack(phi0 + e))
                   - model.log_likelihood_per_point(x, unpack(phi0 - e))) / (2 * h)
    s = np.linalg.svd(J, compute_uv=False)
    assert int(np.sum(s > 1e-6 * s[0])) == expected


# ----------------------------------------------------------------------------- numerics
def test_cholesky_identities_and_density(data):
    """Eq. gaussian_mixtures-chol: log det and quadratic form from the Cholesky factor; the log-joint of
    emlib equals log pi_k + the Gaussian log-density of scipy."""
    rng = np.random.default_rng(4)
    A = rng.standard_normal((3, 3))
    Sigma = A @ A.T + np.eye(3)
    L = np.linalg.cholesky(Sigma)
    v = rng.standard_normal(3)
    assert 2 * np.log(np.diag(L)).sum() == pytest.approx(np.linalg.slogdet(Sigma)[1], rel=1e-12)
    assert np.sum(np.linalg.solve(L, v) ** 2) == pytest.approx(v @ np.linalg.solve(Sigma, v), rel=1e-12)

    model = emlib.GaussianMixture(2)
    theta = model.init_params(data, np.random.default_rng(1))
    expected = np.column_stack([np.log(theta.weights[k]) + multivariate_normal(theta.means[k], theta.covariances[k]).logpdf(data)
                                for k in range(2)])
    np.testing.assert_allclose(model.log_joint(data, theta), expected, rtol=1e-12)


def test_determinant_underflows_but_cholesky_does_not():
    """The 200-dimensional example of the chapter."""
    Sigma = 0.01 * np.eye(200)
    assert np.linalg.det(Sigma) == 0.0
    logdet = 2 * np.log(np.diag(np.linalg.cholesky(Sigma))).sum()
    assert logdet == pytest.approx(200 * np.log(0.01), rel=1e-14)


def test_uncentred_variance_cancels():
    """The caveat about eq. gaussian_mixtures-cov: S2/N - mu^2 loses digits far from the origin."""
    rng = np.random.default_rng(1)
    x = 1e4 + 1e-3 * rng.standard_normal(1000)
    centred = np.mean((x - x.mean()) ** 2)
    assert abs(np.mean(x * x) - np.mean(x) ** 2 - centred) / centred > 1e-4
    y = 1e-3 * rng.standard_normal(1000)  # the same spread near the origin: no cancellation
    assert abs(np.mean(y * y) - np.mean(y) ** 2 - np.mean((y - y.mean()) ** 2)) / np.mean((y - y.mean()) ** 2) < 1e-12


# ----------------------------------------------------------------------------- local optima
def final_logliks(model, X, tol):
    return [emlib.em(model, X, model.init_params(X, np.random.default_rng(s)), tol=tol) for s in SEEDS]


def match(reference, other):
    """other's parameters with labels permuted to match reference (assignment on squared mean distances)."""
    cost = np.sum((reference.means[:, None, :] - other.means[None, :, :]) ** 2, axis=2)
    _, perm = linear_sum_assignment(cost)
    return params(other.weights[perm], other.means[perm], other.covariances[perm]), perm


@pytest.mark.parametrize("columns", [[1], [0, 1]])
def test_two_components_reach_one_optimum_up_to_labels(data, columns):
    """With K = 2, the ten starts all end at the same optimum, some with swapped labels."""
    X = data[:, columns]
    runs = final_logliks(emlib.GaussianMixture(2), X, 1e-10)
    finals = np.array([r.log_likelihood[-1] for r in runs])
    assert np.ptp(finals) < 1e-6
    perms = set()
    for run in runs:
        matched, perm = match(runs[0].params, run.params)
        perms.add(tuple(perm))
        for f in ("weights", "means", "covariances"):
            assert rel_diff(getattr(matched, f), getattr(runs[0].params, f)) < 1e-4
    assert len(perms) == 2  # label switching really occurs among these starts


@pytest.fixture(scope="module")
def runs3(data):
    """The chapter's hundred k-means++ starts for K = 3 on both variables (tol 1e-10)."""
    model = emlib.GaussianMixture(3)
    return [emlib.em(model, data, model.init_params(data, np.random.default_rng(s)), tol=1e-10, max_iter=5000)
            for s in range(100)]


def groups_of(values, gap=0.1):
    v = np.sort(np.asarray(values))[::-1]
    return np.split(v, np.flatnonzero(-np.diff(v) > gap) + 1)


def test_three_components_have_distinct_genuine_local_optima(data, runs3):
    """With K = 3 on both variables the hundred starts reach several distinct end points. The count is
    robust: within a group the values agree to 1e-3, groups lie more than 0.2 apart. The best is not the
    one most starts reach. Every distinct end point is genuine: continuing does not move it, and restarts
    from small perturbations return to it (a saddle point would let some perturbations escape upwards)."""
    assert all(run.converged for run in runs3)
    finals = np.array([run.log_likelihood[-1] for run in runs3])
    groups = groups_of(finals)
    assert len(groups) >= 3
    assert max(np.ptp(g) for g in groups) < 1e-3
    assert all(a[-1] - b[0] > 0.2 for a, b in zip(groups, groups[1:]))
    assert int(np.argmax([len(g) for g in groups])) != 0
    assert groups[0][0] - groups[-1][0] > 1.0
    model = emlib.GaussianMixture(3)
    rng = np.random.default_rng(0)
    for g in groups:
        i = int(np.flatnonzero(np.abs(finals - g[0]) < 0.1)[0])
        theta = runs3[i].params
        more = emlib.em(model, data, theta, max_iter=100, tol=0)
        assert abs(more.log_likelihood[-1] - finals[i]) < 1e-3
        for _ in range(2):
            nudged = params(theta.weights, theta.means + 0.01 * data.std(axis=0) * rng.standard_normal(theta.means.shape),
                            theta.covariances)
            again = emlib.em(model, data, nudged, tol=1e-9, max_iter=5000)
            assert abs(again.log_likelihood[-1] - more.log_likelihood[-1]) < 1e-3


def test_the_stopping_rule_stops_before_the_parameters_settle(waiting):
    """Section "Old Faithful: the waiting times": the default rule (tol 1e-8) stops with l within 1e-4 of its
    limit while the parameters are still more than 1e-3 away from theirs; 1000 further iterations reach a
    point that 100 more do not move (to 1e-8)."""
    model = emlib.GaussianMixture(2)
    stopped = emlib.em(model, waiting, model.init_params(waiting, np.random.default_rng(0)))
    limit = emlib.em(model, waiting, stopped.params, max_iter=1000, tol=0)
    change = lambda a, b: max(np.max(np.abs(getattr(a, f) - getattr(b, f))) for f in ("weights", "means", "covariances"))
    assert stopped.converged
    assert 0 < limit.log_likelihood[-1] - stopped.log_likelihood[-1] < 1e-4
    assert change(limit.params, stopped.params) > 1e-3
    assert change(limit.params, emlib.em(model, waiting, limit.params, max_iter=100, tol=0).params) < 1e-8


def test_bic_prefers_two_components_and_aic_keeps_falling(data, runs3):
    """Section "How many components?": with the chapter's protocol (the hundred starts for K = 3, thirty
    starts at the default tolerance otherwise; the best non-degenerate end point run on to its limit), BIC is
    smallest at K = 2, more than one unit below K = 3, and AIC decreases from K = 1 to 5 by less at each step.
    No end point used is degenerate. The parameter counts are those of exercise gaussian_mixtures-ex-count."""
    N, D = data.shape
    bic, aic = [], []
    for K in range(1, 6):
        model = emlib.GaussianMixture(K)
        runs = runs3 if K == 3 else [emlib.em(model, data, model.init_params(data, np.random.default_rng(s)),
                                              max_iter=5000) for s in range(30)]
        for run in runs:
            assert np.all(run.params.weights * N >= D + 1)
            assert np.all(np.linalg.eigvalsh(run.params.covariances)[:, 0] > 100 * model.reg_covar)
        best = max(runs, key=lambda run: run.log_likelihood[-1])
        ll = emlib.em(model, data, best.params, max_iter=1000, tol=0).log_likelihood[-1]
        p = (K - 1) + K * D + K * D * (D + 1) // 2
        assert p == 6 * K - 1
        bic.append(-2 * ll + p * np.log(N))
        aic.append(-2 * ll + 2 * p)
    bic, aic = np.array(bic), np.array(aic)
    assert int(np.argmin(bic)) == 1 and np.sort(bic)[1] - bic.min() > 1
    assert int(np.argsort(bic)[1]) == 2
    assert np.all(np.diff(aic) < -1) and np.all(np.diff(np.diff(aic)) > 0)


def test_map_em_from_the_spike_start(waiting, fit1, spike_points):
    """Section "A prior on the covariances": from the start on the single point that collapses under maximum
    likelihood, MAP-EM with the from_data prior converges without a decrease of the log posterior; the third
    component widens to a small group of short waits (mean below 50, more than ten points, variance above 1),
    every variance stays above Psi / (N + nu + 2), and the two-component MAP fit has smaller variances than
    the maximum-likelihood fit and means within 0.1 of it."""
    x0, _ = spike_points["single"]
    N = len(waiting)
    model = emlib.MAPGaussianMixture.from_data(waiting, 3)
    run = emlib.em(model, waiting, spike_start(fit1.params, x0, 0.1), tol=1e-10, max_iter=5000)
    assert run.converged
    assert np.all(np.diff(run.log_likelihood) > -1e-9)
    theta = emlib.em(model, waiting, run.params, max_iter=1000, tol=0).params
    third = int(np.argmin(theta.means[:, 0]))
    assert theta.means[third, 0] < 50 and theta.weights[third] * N > 10 and theta.covariances[third, 0, 0] > 1
    psi, nu = model.prior_scale[0, 0], model.prior_dof
    assert theta.covariances.min() >= psi / (N + nu + 2)
    ml = fit1.params
    map2 = emlib.MAPGaussianMixture.from_data(waiting, 2)
    q = emlib.em(map2, waiting, ml, max_iter=1000, tol=0).params
    k_ml, k_map = np.argsort(ml.means[:, 0]), np.argsort(q.means[:, 0])
    assert np.all(q.covariances[k_map, 0, 0] < ml.covariances[k_ml, 0, 0])
    assert np.max(np.abs(q.means[k_map] - ml.means[k_ml])) < 0.1


# ----------------------------------------------------------------------------- label switching
def test_label_permutations_leave_the_likelihood_unchanged(data):
    """Exercise gaussian_mixtures-ex-perm: l is invariant, responsibilities permute, EM is equivariant."""
    model = emlib.GaussianMixture(3)
    theta = emlib.em(model, data, model.init_params(data, np.random.default_rng(0)), max_iter=10, tol=0).params
    base_ll, base_r = model.log_likelihood(data, theta), model.posterior(data, theta)
    for perm in itertools.permutations(range(3)):
        perm = list(perm)
        permuted = params(theta.weights[perm], theta.means[perm], theta.covariances[perm])
        assert model.log_likelihood(data, permuted) == pytest.approx(base_ll, rel=1e-13)
        np.testing.assert_allclose(model.posterior(data, permuted), base_r[:, perm], rtol=1e-10, atol=1e-300)
        matched, recovered = match(theta, permuted)
        assert list(np.asarray(perm)[recovered]) == [0, 1, 2]  # matching undoes the permutation
        np.testing.assert_allclose(matched.means, theta.means, rtol=0, atol=0)
    perm = [2, 0, 1]
    start = model.init_params(data, np.random.default_rng(5))
    a = emlib.em(model, data, start, max_iter=20, tol=0).params
    b = emlib.em(model, data, params(start.weights[perm], start.means[perm], start.covariances[perm]),
                 max_iter=20, tol=0).params
    for f in ("weights", "means", "covariances"):
        assert rel_diff(getattr(b, f), getattr(a, f)[perm]) < 1e-10


# ----------------------------------------------------------------------------- degenerate solutions
@pytest.fixture(scope="module")
def spike_points(waiting):
    values, counts = np.unique(waiting, return_counts=True)
    return {"single": (float(values[0]), int(counts[0])), "tied": (float(values[np.argmax(counts)]), int(counts.max()))}


def test_spike_points_are_as_the_chapter_says(spike_points):
    assert spike_points["single"][1] == 1  # the shortest wait occurs once
    assert spike_points["tied"][1] > 1     # the most frequent wait is shared by several points


@pytest.mark.parametrize("which", ["single", "tied"])
def test_likelihood_is_unbounded_along_the_path(waiting, fit1, spike_points, which):
    """Proposition gaussian_mixtures-prop-unbounded: l grows without bound as the spike's variance -> 0,
    by m/2 log 10 per decade for a value shared by m points, and the bound (eq. -unbounded) holds."""
    x0, m = spike_points[which]
    model = emlib.GaussianMixture(3)
    base = fit1.params
    variances = 10.0 ** -np.arange(1, 301)
    path = np.array([model.log_likelihood(waiting, spike_start(base, x0, v)) for v in variances])
    assert np.all(np.diff(path) > 0)
    np.testing.assert_allclose(np.diff(path)[-50:], m / 2 * np.log(10), rtol=1e-6)
    others = emlib.GaussianMixture(2).log_likelihood_per_point(waiting, params(base.weights, base.means, base.covariances))
    rest = np.sum(others[waiting[:, 0] != x0] + np.log(0.9))  # components 2..K with weights scaled by 0.9
    for v, ll in zip(variances[::30], path[::30]):
        lower = m * (np.log(0.1) - 0.5 * np.log(2 * np.pi * v)) + rest
        assert ll >= lower - 1e-9 * abs(lower)


def test_collapse_without_reg_covar_raises_a_clear_error(waiting, fit1, spike_points):
    x0, _ = spike_points["single"]
    with pytest.raises(ValueError, match="reg_covar"):
        emlib.em(emlib.GaussianMixture(3, reg_covar=0.0), waiting, spike_start(fit1.params, x0, 0.1), max_iter=30, tol=0)


def test_collapse_with_reg_covar_warns(waiting, fit1, spike_points):
    """The collapse warns, once per fit (not once per M-step: issue 13 item 8)."""
    x0, _ = spike_points["single"]
    with pytest.warns(emlib.ComponentCollapseWarning, match="reg_covar") as record:
        result = emlib.em(emlib.GaussianMixture(3, reg_covar=1e-6), waiting, spike_start(fit1.params, x0, 0.1),
                          max_iter=30, tol=0)
    assert sum(issubclass(w.category, emlib.ComponentCollapseWarning) for w in record) == 1
    assert result.params.covariances[2, 0, 0] == pytest.approx(1e-6, rel=1e-3)
    assert result.params.weights[2] * len(waiting) == pytest.approx(1.0, abs=0.01)


@pytest.mark.parametrize("which", ["single", "tied"])
def test_reg_covar_bounds_the_likelihood_and_sets_the_height_of_the_spike(waiting, fit1, spike_points, which):
    """Proposition gaussian_mixtures-prop-bound, and the per-decade growth of EM's end points (exercise
    gaussian_mixtures-ex-degenerate (b)): within 2% of m/2 log 10 once reg_covar <= 1e-4."""
    x0, m = spike_points[which]
    N, D = waiting.shape
    regs = 10.0 ** -np.arange(1, 10)
    finals = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", emlib.ComponentCollapseWarning)
        for c in regs:
            trace = emlib.em(emlib.GaussianMixture(3, reg_covar=c), waiting, spike_start(fit1.params, x0, 0.1),
                             max_iter=30, tol=0).log_likelihood
            assert np.all(trace[1:] <= -N * D / 2 * np.log(2 * np.pi * c))
            finals.append(trace[-1])
    finals = np.array(finals)
    assert np.all(np.diff(finals) > 0)
    np.testing.assert_allclose(np.diff(finals[3:]), m / 2 * np.log(10), rtol=0.02)


# ----------------------------------------------------------------------------- scikit-learn
@pytest.mark.parametrize("columns", [[1], [0, 1]])
@pytest.mark.parametrize("covariance_type", ["full", "diag"])
def test_emlib_agrees_with_scikit_learn(data, columns, covariance_type):
    """Same start, tol = 0, 100 iterations: parameters and log-likelihoods agree to 1e-8 relative."""
    import sklearn.mixture as sklearn_mixture  # a declared test dependency: missing, it fails loudly
    from sklearn.exceptions import ConvergenceWarning

    X = data[:, columns]
    model = emlib.GaussianMixture(2, covariance_type)
    start = model.init_params(X, np.random.default_rng(0))
    ours = emlib.em(model, X, start, max_iter=100, tol=0)
    if covariance_type == "full":
        precisions = np.stack([np.linalg.inv(S) for S in start.covariances])
    else:
        precisions = 1.0 / start.covariances
    theirs = sklearn_mixture.GaussianMixture(2, covariance_type=covariance_type, reg_covar=model.reg_covar, tol=0,
                                             max_iter=100, weights_init=start.weights, means_init=start.means,
                                             precisions_init=precisions, init_params="random_from_data", random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        theirs.fit(X)
    assert rel_diff(ours.params.weights, theirs.weights_) < 1e-8
    assert rel_diff(ours.params.means, theirs.means_) < 1e-8
    assert rel_diff(ours.params.covariances, theirs.covariances_) < 1e-8
    assert ours.log_likelihood[-1] == pytest.approx(theirs.score(X) * len(X), rel=1e-8)
