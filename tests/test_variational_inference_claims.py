"""Claims of the chapter "Mean-field variational inference" (book/variational_inference.ipynb) that
tests/test_cavi.py does not already check: the expectations in the q(z) update, the gain of an
update, the ELBO written as log-sum-exp minus KL terms, the weight prior alpha_0 and the number of
components kept, EM as the limit of CAVI with a weak prior and many points, and the exercises'
identities. Monte Carlo checks use fixed seeds and tolerances of five standard errors."""
import warnings

import numpy as np
import pytest
from scipy import stats
from scipy.special import digamma, logsumexp

import emlib
from emlib import BayesianGaussianMixture, cavi

K_FAITHFUL = 6


def faithful_start(X, K=K_FAITHFUL):
    """The chapter's start: each point assigned to the nearest of K k-means++ seeds (seed 0)."""
    return BayesianGaussianMixture(K).init_responsibilities(X, np.random.default_rng(0))


def two_clusters(seed, n=200):
    rng = np.random.default_rng(seed)
    return np.concatenate([rng.normal([0, 0], 0.5, (n // 2, 2)), rng.normal([4, 3], 0.7, (n - n // 2, 2))])


def a_posterior(K=3, seed=1):
    """Data, model, prior and a q(theta) after a few CAVI sweeps (all components in use)."""
    X = two_clusters(seed, n=150)
    model = BayesianGaussianMixture(K)
    fit = cavi(model, X, rng=np.random.default_rng(seed), max_iter=3, tol=0)
    return X, model, model.prior(X), fit.posterior


def naive_log_rho(X, post):
    """log rho_nk of the chapter's equations (log-rho) and (expectations), written out directly."""
    K, D = post.means.shape
    W = np.linalg.inv(post.scale_inv)
    E_log_pi = digamma(post.alpha) - digamma(post.alpha.sum())
    i = np.arange(1, D + 1)
    E_log_det = np.array([digamma((post.dof[k] + 1 - i) / 2).sum() + D * np.log(2) + np.linalg.slogdet(W[k])[1]
                          for k in range(K)])
    diff = X[:, None, :] - post.means[None]                                   # (N, K, D)
    E_quad = D / post.beta + post.dof * np.einsum("nki,kij,nkj->nk", diff, W, diff)
    return E_log_pi + 0.5 * E_log_det - 0.5 * D * np.log(2 * np.pi) - 0.5 * E_quad


def sample_normal_wishart(m, beta, W, nu, size, rng):
    """Draws (mu, Lambda) from N(mu | m, (beta Lambda)^{-1}) W(Lambda | W, nu)."""
    Lam = stats.wishart(df=nu, scale=W).rvs(size, random_state=rng)
    L = np.linalg.cholesky(Lam)
    eps = rng.standard_normal((size, len(m)))
    # mu = m + L^{-T} eps / sqrt(beta) has covariance (L L^T)^{-1} / beta = (beta Lambda)^{-1}
    mu = m + np.linalg.solve(np.swapaxes(L, 1, 2), eps[..., None])[..., 0] / np.sqrt(beta)
    return mu, Lam


def log_normal_given_precision(mu, m, beta, Lam):
    """log N(mu | m, (beta Lambda)^{-1}) for a batch of (mu, Lambda)."""
    D = mu.shape[1]
    d = mu - m
    return (0.5 * D * np.log(beta) + 0.5 * np.linalg.slogdet(Lam)[1] - 0.5 * D * np.log(2 * np.pi)
            - 0.5 * beta * np.einsum("si,sij,sj->s", d, Lam, d))


# ------------------------------------------------------------------------------- the q(z) update
def test_the_three_expectations_of_the_q_z_update_by_monte_carlo():
    """E[log pi_k], E[log|Lambda|] and E[(x - mu)^T Lambda (x - mu)] (equation "expectations")
    against averages over 200000 draws, within five standard errors."""
    rng = np.random.default_rng(0)
    S, D = 200_000, 2
    alpha = np.array([3.0, 0.7, 5.0])
    log_pi = np.log(rng.dirichlet(alpha, S))
    se = log_pi.std(axis=0) / np.sqrt(S)
    assert np.all(np.abs(log_pi.mean(axis=0) - (digamma(alpha) - digamma(alpha.sum()))) < 5 * se)

    m, beta, nu = np.array([0.5, -1.0]), 4.0, 5.5
    W = np.linalg.inv(np.array([[2.0, 0.3], [0.3, 1.0]]))
    x = np.array([1.5, 0.2])
    mu, Lam = sample_normal_wishart(m, beta, W, nu, S, rng)
    log_det = np.linalg.slogdet(Lam)[1]
    expected_log_det = digamma((nu + 1 - np.arange(1, D + 1)) / 2).sum() + D * np.log(2) + np.linalg.slogdet(W)[1]
    assert abs(log_det.mean() - expected_log_det) < 5 * log_det.std() / np.sqrt(S)
    quad = np.einsum("si,sij,sj->s", x - mu, Lam, x - mu)
    expected_quad = D / beta + nu * (x - m) @ W @ (x - m)
    assert abs(quad.mean() - expected_quad) < 5 * quad.std() / np.sqrt(S)


def test_the_library_responsibilities_are_the_normalized_rho():
    """model.posterior computes r_nk = rho_nk / sum_j rho_nj with the chapter's log rho_nk (to rounding)."""
    X, model, _, post = a_posterior()
    log_rho = naive_log_rho(X, post)
    expected = np.exp(log_rho - logsumexp(log_rho, axis=1, keepdims=True))
    np.testing.assert_allclose(model.posterior(X, post), expected, rtol=1e-9, atol=1e-12)


def test_the_gain_of_the_q_z_update_is_a_kl_divergence():
    """Theorem "coordinate-ascent update": F(q*) - F(q) = KL(q || q*), here sum_n KL(q_n || r_n),
    exactly (up to rounding, 1e-9 relative), for several q."""
    X, model, prior, post = a_posterior()
    best = model.posterior(X, post)
    rng = np.random.default_rng(2)
    for _ in range(3):
        q = rng.dirichlet(np.ones(3), size=len(X))
        gain = model.elbo(X, best, post, prior) - model.elbo(X, q, post, prior)
        kl = np.sum(q * (np.log(q) - np.log(best)))
        assert gain == pytest.approx(kl, rel=1e-9)


def kl_terms_by_monte_carlo(post, prior, rng, S=8_000):
    """KL(q(pi) || p(pi)) + sum_k KL(q(mu_k, Lambda_k) || p(mu_k, Lambda_k)) and its standard error,
    from samples of q and SciPy's densities (independent of the library's closed forms)."""
    pis = rng.dirichlet(post.alpha, S)
    values = stats.dirichlet(post.alpha).logpdf(pis.T) - stats.dirichlet(prior.alpha).logpdf(pis.T)
    total, var = values.mean(), values.var() / S
    for k in range(len(post.alpha)):
        W_k, W_0 = np.linalg.inv(post.scale_inv[k]), np.linalg.inv(prior.scale_inv[k])
        mu, Lam = sample_normal_wishart(post.means[k], post.beta[k], W_k, post.dof[k], S, rng)
        Lam_t = np.moveaxis(Lam, 0, -1)                            # SciPy wants (D, D, S)
        values = (log_normal_given_precision(mu, post.means[k], post.beta[k], Lam)
                  - log_normal_given_precision(mu, prior.means[k], prior.beta[k], Lam)
                  + stats.wishart(df=post.dof[k], scale=W_k).logpdf(Lam_t)
                  - stats.wishart(df=prior.dof[k], scale=W_0).logpdf(Lam_t))
        total, var = total + values.mean(), var + values.var() / S
    return total, np.sqrt(var)


def test_the_elbo_is_expected_fit_minus_kl_terms():
    """Equations "elbo-terms" and "elbo-after-qz": F(q) = sum q (log rho - log q) - KL terms for any
    q(z), and after the q(z) update the first term is sum_n log sum_k rho_nk. The KL terms are
    estimated by Monte Carlo (five standard errors)."""
    X, model, prior, post = a_posterior()
    log_rho = naive_log_rho(X, post)
    kl, se = kl_terms_by_monte_carlo(post, prior, np.random.default_rng(3))
    q = np.random.default_rng(4).dirichlet(np.ones(3), size=len(X))
    assert model.elbo(X, q, post, prior) == pytest.approx(np.sum(q * (log_rho - np.log(q))) - kl, abs=5 * se)
    best = model.posterior(X, post)
    assert model.elbo(X, best, post, prior) == pytest.approx(logsumexp(log_rho, axis=1).sum() - kl, abs=5 * se)
    assert se < 0.06  # the check has teeth: an error of log 2 or D/2 in a KL term would be > 10 se


# ------------------------------------------------------------------------------- Old Faithful
def test_small_alpha0_keeps_fewer_components_than_large_alpha0(faithful):
    """The chapter's figure: from the same start, alpha_0 = 1e-3 and 1/K keep the two clusters
    (weights > 1%), alpha_0 = 10 keeps all six, each with more than 10 expected points."""
    q0 = faithful_start(faithful)
    fits = {a0: cavi(BayesianGaussianMixture(K_FAITHFUL, weight_concentration_prior=a0), faithful, init=q0)
            for a0 in (1e-3, 1 / K_FAITHFUL, 10.0)}
    kept = {a0: int(np.sum(f.params.weights > 0.01)) for a0, f in fits.items()}
    assert all(f.converged for f in fits.values())
    assert kept[1e-3] == 2 and kept[1 / K_FAITHFUL] == 2
    assert kept[10.0] == K_FAITHFUL
    assert np.all(fits[10.0].posterior.alpha - 10.0 > 10.0)


def test_empty_components_keep_the_prior_weight_and_the_bound_beats_one_component(faithful):
    """An emptied component keeps N_k < 1e-3 expected points, so E[pi_k] is the prior's share
    alpha_0 / (K alpha_0 + N) to within N_k / alpha_0 < 0.6% (hence rtol 6e-3); and the
    six-component ELBO exceeds the one-component exact log evidence by more than 100."""
    N, K = len(faithful), K_FAITHFUL
    fit = cavi(BayesianGaussianMixture(K), faithful, init=faithful_start(faithful))
    weights = fit.params.weights
    empty = weights < 0.01
    assert empty.sum() == K - 2
    assert np.all(fit.posterior.alpha[empty] - 1 / K < 1e-3)
    np.testing.assert_allclose(weights[empty], (1 / K) / (1 + N), rtol=6e-3)
    one = BayesianGaussianMixture(1)
    assert fit.elbo[-1] > one.log_marginal_likelihood_one_component(faithful) + 100


def test_same_fit_as_sklearn_with_six_components(faithful):
    """The chapter's side-by-side comparison (K = 6, seed 0, 200 sweeps): agreement to 1e-9."""
    import sklearn.cluster as cluster   # a declared test dependency: missing, it fails loudly
    import sklearn.mixture as mixture
    K = K_FAITHFUL
    sk = mixture.BayesianGaussianMixture(n_components=K, weight_concentration_prior_type="dirichlet_distribution",
                                         reg_covar=0.0, max_iter=200, tol=0, random_state=0, init_params="kmeans")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sk.fit(faithful)
    labels = cluster.KMeans(n_clusters=K, n_init=1, random_state=0).fit(faithful).labels_
    ours = cavi(BayesianGaussianMixture(K), faithful, init=np.eye(K)[labels], max_iter=200, tol=0)
    largest = max(np.abs(ours.params.weights - sk.weights_).max(), np.abs(ours.params.means - sk.means_).max(),
                  np.abs(ours.params.covariances - sk.covariances_).max())
    assert largest < 1e-9


# ------------------------------------------------------------------------------- EM as a limit
TRUTH = emlib.GaussianMixtureParams(
    [0.5, 0.3, 0.2], [[0.0, 0.0], [3.0, 1.0], [0.5, 3.0]],
    [[[1.0, 0.3], [0.3, 0.6]], [[0.5, 0.0], [0.0, 0.8]], [[0.7, -0.2], [-0.2, 0.4]]])
WEAK = dict(weight_concentration_prior=1.0, mean_precision_prior=1e-6, degrees_of_freedom_prior=2.0,
            covariance_prior=1e-6 * np.eye(2))


def em_and_cavi_distances(n):
    """The chapter's comparison: largest parameter difference and largest responsibility difference
    on a grid, between EM's MLE and CAVI with a weak prior, from the same start."""
    gmm = emlib.GaussianMixture(3, reg_covar=0.0)
    X, _ = gmm.sample(TRUTH, n, np.random.default_rng(1))
    start = gmm.init_params(X, np.random.default_rng(0))
    mle = emlib.em(gmm, X, start).params
    bayes = BayesianGaussianMixture(3, **WEAK)
    vi = cavi(bayes, X, init=gmm.posterior(X, start))
    d_theta = max(np.abs(a - b).max() for a, b in zip((mle.weights, mle.means, mle.covariances),
                                                       (vi.params.weights, vi.params.means, vi.params.covariances)))
    g = np.linspace(-2.0, 5.0, 40)
    grid = np.stack(np.meshgrid(g, g), axis=-1).reshape(-1, 2)
    d_resp = np.abs(gmm.posterior(grid, mle) - bayes.posterior(grid, vi.posterior)).max()
    return d_theta, d_resp


def test_cavi_approaches_em_with_a_weak_prior_and_many_points():
    """With 100 times more points both distances shrink by more than 30 (the chapter: O(1/N), so
    about 100; an O(1/sqrt N) rate would give 10), and at N = 20000 they are below 2e-3 and 5e-3."""
    theta_small, resp_small = em_and_cavi_distances(200)
    theta_large, resp_large = em_and_cavi_distances(20_000)
    assert theta_large < 2e-3 and resp_large < 5e-3
    assert theta_large < theta_small / 30
    assert resp_large < resp_small / 30


# ------------------------------------------------------------------------------- the exercises
def test_two_forms_of_the_scale_matrix():
    """Exercise "scatter": W_k^{-1} of update_posterior equals Bishop's form (10.62)."""
    X = two_clusters(5)
    model = BayesianGaussianMixture(3, mean_precision_prior=0.7)
    prior = model.prior(X)
    q = np.random.default_rng(6).dirichlet(np.ones(3), size=len(X))
    stats_ = model.expected_stats(X, q)
    post = model.update_posterior(stats_, prior)
    Nk = stats_.counts
    xbar = stats_.sum_x / Nk[:, None]
    C = stats_.sum_xx / Nk[:, None, None] - xbar[:, :, None] * xbar[:, None, :]
    d = xbar - prior.means
    bishop = (prior.scale_inv + Nk[:, None, None] * C
              + (prior.beta * Nk / (prior.beta + Nk))[:, None, None] * d[:, :, None] * d[:, None, :])
    np.testing.assert_allclose(post.scale_inv, bishop, rtol=1e-10)
    assert np.all(np.linalg.eigvalsh(post.scale_inv) > 0)


def test_empty_component_ratio_vanishes_as_alpha0_shrinks():
    """Exercise "digamma": exp(E[log pi_k]) / E[pi_k] for N_k = 0 equals the closed form and falls
    to zero as alpha_0 -> 0 (K = 6, N = 272 as in the chapter)."""
    K, N = 6, 272
    ratios = []
    for a0 in (1.0, 1 / 6, 0.05, 0.01):
        total = K * a0 + N
        ratio = np.exp(digamma(a0) - digamma(total)) / (a0 / total)
        closed = total / a0 * np.exp(-1 / a0) * np.exp(digamma(a0 + 1) - digamma(total))
        assert ratio == pytest.approx(closed, rel=1e-10)
        ratios.append(ratio)
    assert np.all(np.diff(ratios) < 0) and ratios[-1] < 1e-40


def test_map_weights_maximize_the_dirichlet_objective():
    """Exercise "map": for alpha_0 >= 1, pi_k = (N_k + alpha_0 - 1) / (N + K(alpha_0 - 1)) beats
    every random point of the simplex; for alpha_0 < 1 and a small N_k the formula goes negative."""
    counts = np.array([120.0, 60.0, 0.3])
    rng = np.random.default_rng(7)
    for a0 in (1.0, 2.5):
        c = counts + a0 - 1
        best = c / c.sum()
        np.testing.assert_allclose(best, (counts + a0 - 1) / (counts.sum() + 3 * (a0 - 1)))
        others = rng.dirichlet(np.ones(3), size=2000)
        assert np.all(np.log(others) @ c < np.log(best) @ c)
    a0 = 1 / 6
    assert ((counts + a0 - 1) / (counts.sum() + 3 * (a0 - 1)))[2] < 0


# ------------------------------------------------------------------ the direction of the KL divergence
def test_mean_field_gaussian_variances_are_one_over_the_diagonal_of_the_precision():
    """Proposition "gaussian-variance": CAVI on N(m, Lambda^{-1}) converges to means m and
    variances 1/Lambda_jj <= (Lambda^{-1})_jj, with equality exactly for an uncoupled coordinate;
    the exact marginals minimize the reverse divergence KL(p || q) instead."""
    Lam = np.array([[2.0, 0.9, 0.0], [0.9, 1.5, 0.4], [0.0, 0.4, 1.0]])
    Lam = np.block([[Lam, np.zeros((3, 1))], [np.zeros((1, 3)), np.array([[0.7]])]])  # coord 3 alone
    m = np.array([1.0, -2.0, 0.5, 3.0])
    mu = np.zeros(4)
    for _ in range(200):                                   # CAVI sweeps on the means
        for j in range(4):
            others = [l for l in range(4) if l != j]
            mu[j] = m[j] - Lam[j, others] @ (mu[others] - m[others]) / Lam[j, j]
    np.testing.assert_allclose(mu, m, atol=1e-12)
    Sigma = np.linalg.inv(Lam)
    mf_var = 1 / np.diag(Lam)
    assert np.all(mf_var[:3] < np.diag(Sigma)[:3] - 1e-3)
    assert mf_var[3] == pytest.approx(Sigma[3, 3], rel=1e-12)

    def kl_p_q(v):       # KL(N(m, Sigma) || prod_j N(m_j, v_j)), means already matched
        return 0.5 * (np.sum(np.diag(Sigma) / v) - 4 + np.sum(np.log(v)) - np.linalg.slogdet(Sigma)[1])

    best = kl_p_q(np.diag(Sigma))
    assert kl_p_q(mf_var) > best
    rng = np.random.default_rng(0)
    for _ in range(100):
        assert kl_p_q(np.diag(Sigma) * np.exp(0.2 * rng.standard_normal(4))) > best


# ------------------------------------------------------------------ the log K! of the labels
def log_evidence_by_brute_force(X, K, prior_kwargs):
    """log p(X) = log sum_z p(z) prod_k p(x_k), one labeling at a time, with the library's
    closed-form one-component evidence (independent of the chapter's vectorized code)."""
    from itertools import product
    from scipy.special import gammaln
    N = len(X)
    one = BayesianGaussianMixture(1, **prior_kwargs)
    a0 = prior_kwargs["weight_concentration_prior"]
    cache, terms = {}, []
    for z in product(range(K), repeat=N):
        z = np.array(z)
        total = gammaln(K * a0) - gammaln(N + K * a0)
        for k in range(K):
            idx = tuple(np.flatnonzero(z == k))
            total += gammaln(len(idx) + a0) - gammaln(a0)
            if idx:
                if idx not in cache:
                    cache[idx] = one.log_marginal_likelihood_one_component(X[list(idx)])
                total += cache[idx]
        terms.append(total)
    return float(logsumexp(terms))


FIXED_PRIOR = dict(weight_concentration_prior=1.0, mean_precision_prior=0.01,
                   degrees_of_freedom_prior=2.0, covariance_prior=0.5 * np.eye(2))


def test_the_elbo_falls_short_of_the_evidence_by_log_k_factorial_for_separated_clusters():
    """Section "kfact": with two well-separated clusters the exact log evidence exceeds the best
    ELBO by log 2 within 0.02; for overlapping clusters by more. Brute force over 2^10 labelings
    (five points per cluster, another draw than the chapter's)."""
    for spread, separated in ((8.0, True), (2.0, False)):
        rng = np.random.default_rng(11)
        X = np.concatenate([c + 0.5 * rng.standard_normal((5, 2)) for c in ([0, 0], [spread, 0])])
        prior = dict(FIXED_PRIOR, mean_prior=X.mean(axis=0))
        exact = log_evidence_by_brute_force(X, 2, prior)
        model = BayesianGaussianMixture(2, **prior)
        elbo = max(cavi(model, X, rng=np.random.default_rng(s), tol=1e-12).elbo[-1] for s in range(5))
        assert elbo < exact
        if separated:
            assert exact - elbo == pytest.approx(np.log(2), abs=0.02)
        else:
            assert exact - elbo > np.log(2) + 0.3


def test_brute_force_evidence_with_one_component_is_the_closed_form():
    rng = np.random.default_rng(12)
    X = rng.standard_normal((6, 2))
    prior = dict(FIXED_PRIOR, mean_prior=X.mean(axis=0))
    one = BayesianGaussianMixture(1, **prior)
    assert log_evidence_by_brute_force(X, 1, prior) == pytest.approx(
        one.log_marginal_likelihood_one_component(X), rel=1e-12)


# ------------------------------------------------------------------ the predictive density
def test_the_predictive_integral_is_the_student_t_of_the_proposition():
    """Proposition "student": the average of N(y | mu, Lambda^{-1}) over (mu, Lambda) ~ q equals
    St(y | m, L, nu + 1 - D) with L = (nu + 1 - D) beta / (1 + beta) W, within five standard
    errors of 200000 draws, at three points (near the centre and in the tail)."""
    rng = np.random.default_rng(13)
    m, beta, nu, D = np.array([0.5, -1.0]), 3.0, 4.5, 2
    W = np.linalg.inv(np.array([[2.0, 0.3], [0.3, 1.0]]))
    mu, Lam = sample_normal_wishart(m, beta, W, nu, 200_000, rng)
    d = nu + 1 - D
    student = stats.multivariate_t(m, (1 + beta) / (d * beta) * np.linalg.inv(W), df=d)
    for y in (m, m + [1.0, 0.5], m + [6.0, -4.0]):
        dens = np.exp(log_normal_given_precision(y[None, :] + 0 * mu, mu, 1.0, Lam))
        assert abs(dens.mean() - np.exp(student.logpdf(y))) < 5 * dens.std() / np.sqrt(len(dens))


def test_expected_covariance_is_larger_than_the_inverse_expected_precision():
    """E[Lambda^{-1}] = W^{-1} / (nu - D - 1), while params.covariances is E[Lambda]^{-1} = W^{-1} / nu
    (Monte Carlo, five standard errors per entry)."""
    rng = np.random.default_rng(14)
    nu, D = 7.0, 2
    W_inv = np.array([[1.5, 0.4], [0.4, 0.8]])
    Lam = stats.wishart(df=nu, scale=np.linalg.inv(W_inv)).rvs(200_000, random_state=rng)
    Sig = np.linalg.inv(Lam)
    se = Sig.std(axis=0) / np.sqrt(len(Sig))
    assert np.all(np.abs(Sig.mean(axis=0) - W_inv / (nu - D - 1)) < 5 * se)
    np.testing.assert_allclose(np.linalg.inv(Lam.mean(axis=0)), W_inv / nu, rtol=0.01)


def test_weight_prior_elbos_rank_one_over_k_first(faithful):
    """The alpha_0 section: the final ELBO is highest for alpha_0 = 1/K, then 1e-3, and more than
    30 lower for alpha_0 = 10, from the chapter's start."""
    q0 = faithful_start(faithful)
    final = {a0: cavi(BayesianGaussianMixture(K_FAITHFUL, weight_concentration_prior=a0),
                      faithful, init=q0).elbo[-1] for a0 in (1e-3, 1 / K_FAITHFUL, 10.0)}
    assert final[1 / K_FAITHFUL] > final[1e-3] > final[10.0] + 30


# ------------------------------------------------------------------ exercise "svi"
def eta(p):
    outer = p.beta[:, None, None] * p.means[:, :, None] * p.means[:, None, :]
    return [p.alpha, p.beta, p.beta[:, None] * p.means, p.scale_inv + outer, p.dof]


def svi_step(model, X, batch, post, prior, rho):
    q_batch = model.posterior(X[batch], post)
    scaled = model.expected_stats(X[batch], q_batch) * (len(X) / len(batch))
    target = model.update_posterior(scaled, prior)
    alpha, beta, bm, c, dof = [(1 - rho) * a + rho * b for a, b in zip(eta(post), eta(target))]
    means = bm / beta[:, None]
    scale_inv = c - beta[:, None, None] * means[:, :, None] * means[:, None, :]
    return emlib.VariationalPosterior(alpha, beta, means, scale_inv, dof)


def test_one_svi_step_with_all_data_and_unit_step_is_a_cavi_sweep():
    X, model, prior, post = a_posterior()
    step = svi_step(model, X, np.arange(len(X)), post, prior, 1.0)
    sweep = model.update_posterior(model.expected_stats(X, model.posterior(X, post)), prior)
    for a, b in zip(eta(step), eta(sweep)):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-10)


def test_svi_steps_keep_the_scale_matrices_positive_definite():
    """Small batches (5 points) and several steps rho: every W_k^{-1} stays positive definite,
    and W^{-1} of the mixture dominates the mixture of the W^{-1} (the concavity argument)."""
    X, model, prior, post = a_posterior()
    rng = np.random.default_rng(15)
    for rho in (0.05, 0.5, 0.95):
        for _ in range(20):
            batch = rng.choice(len(X), size=5, replace=False)
            new = svi_step(model, X, batch, post, prior, rho)
            target = svi_step(model, X, batch, post, prior, 1.0)
            assert np.all(np.linalg.eigvalsh(new.scale_inv) > 0)
            gap = new.scale_inv - ((1 - rho) * post.scale_inv + rho * target.scale_inv)
            assert np.all(np.linalg.eigvalsh(gap) > -1e-9)


# ------------------------------------------------------------------ variational EM, exercise "vem"
def test_a_parallel_mean_field_update_can_lower_the_elbo():
    """Exercise "vem" (c): two identical loadings compete for the same points. From both factors
    on, a simultaneous update switches both off (each sees the other explaining the point) and
    lowers F; the sequential sweep keeps one on and raises F."""
    model = emlib.BinaryFactors(2)
    params = emlib.BinaryFactorsParams([0.5, 0.5], [0.0, 0.0], [[2.0, 0.0], [2.0, 0.0]], 0.25)
    X = np.array([[2.0, 0.0], [0.0, 0.0], [2.1, 0.1]])
    lam = np.array([[0.999, 0.999], [1e-3, 1e-3], [0.999, 0.999]])
    start = model.mean_field_elbo(X, params, lam)
    # the parallel update: each factor responds to the other's old value
    parallel = np.empty_like(lam)
    for m, other in ((0, 1), (1, 0)):
        residual = X - params.mean - lam[:, [other]] * params.loadings[other]
        a = (np.log(params.probs[m] / (1 - params.probs[m]))
             + (residual @ params.loadings[m] - 0.5 * params.loadings[m] @ params.loadings[m])
             / params.noise_var)
        parallel[:, m] = 1 / (1 + np.exp(-a))
    assert model.mean_field_elbo(X, params, parallel) < start
    assert model.mean_field_elbo(X, params, model.mean_field_sweep(X, params, lam)) > start


def bars_problem(seed, n=400):
    bars = []
    for i in range(3):
        for horizontal in (True, False):
            image = np.zeros((3, 3))
            if horizontal:
                image[i, :] = 1.0
            else:
                image[:, i] = 1.0
            bars.append(image.ravel())
    truth = emlib.BinaryFactorsParams(np.full(6, 0.3), np.zeros(9), np.array(bars), 0.64)
    model = emlib.BinaryFactors(6)
    X, _ = model.sample(truth, n, np.random.default_rng(seed))
    return model, X, truth


@pytest.mark.parametrize("seed", [1, 2])
def test_variational_em_on_bars_ends_below_em_with_a_positive_gap(seed):
    """The chapter's bars data, other draws: from the truth, variational EM's end point has a
    lower log-likelihood than EM's, and its ELBO is below its own log-likelihood by more than one."""
    model, X, truth = bars_problem(seed)
    em = emlib.em(model, X, truth, tol=1e-8)
    vem = emlib.variational_em(model, X, truth, tol=1e-8)
    ll_vem = model.log_likelihood(X, vem.params)
    assert ll_vem < em.log_likelihood[-1] - 1.0
    assert vem.elbo[-1] < ll_vem - 1.0
