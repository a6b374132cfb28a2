"""The claims added to the chapter "Why the E-step is tractable, and why Monte Carlo on the
marginal is hard" (tractable_estep), checked numerically: Q is concave in the natural parameters
(the Hessian of A is the covariance of the statistics), the minimal representation of the Gaussian
mixture, the posterior's normalizer, forward-backward against enumeration, the relative variance
as exp(D_2) - 1 for a coupled (Markov chain) proposal, the per-point estimator, Fisher's identity
and self-normalized importance sampling, the bias of the log of the estimate, and the standard
errors of a Monte Carlo M-step. The older statements are checked in tests/test_theory_estep.py.
"""
import itertools

import numpy as np
import pytest
from scipy.special import logsumexp
from scipy.stats import norm

import emlib
from emlib import monte_carlo as mc
from emlib.bounds import expected_complete_loglik, kl_to_posterior


# ====================================================================== the minimal mixture family
def _gaussian_log_normalizer(b, Lam):
    """A_N(b, Lambda) = -b^T Lambda^{-1} b / 4 - log det(-2 Lambda) / 2, per component."""
    solved = np.linalg.solve(Lam, b[..., None])[..., 0]
    return -0.25 * np.sum(b * solved, axis=-1) - 0.5 * np.linalg.slogdet(-2 * Lam)[1]


def _natural(params):
    precision = np.linalg.inv(params.covariances)
    b = np.einsum("kij,kj->ki", precision, params.means)
    Lam = -0.5 * precision
    log_odds = np.log(params.weights) - _gaussian_log_normalizer(b, Lam)
    return log_odds[:-1] - log_odds[-1], b, Lam


def _A(alpha, b, Lam):
    return logsumexp(np.append(alpha, 0.0) + _gaussian_log_normalizer(b, Lam))


def _Q_natural(eta, stats):
    alpha, b, Lam = eta
    return (alpha @ stats.counts[:-1] + np.sum(b * stats.sum_x) + np.sum(Lam * stats.sum_xx)
            - stats.counts.sum() * _A(alpha, b, Lam))


@pytest.fixture(scope="module")
def faithful_fit(faithful):
    model = emlib.GaussianMixture(2, "full", reg_covar=0.0)
    theta = emlib.em(model, faithful, model.init_params(faithful, np.random.default_rng(0)),
                     max_iter=200, tol=0).params
    r = model.posterior(faithful, theta)
    return model, faithful, theta, r, model.expected_stats(faithful, r)


def test_minimal_representation_reproduces_the_complete_data_loglik(faithful_fit):
    """Equation tractable_estep-gmm-minimal: with eta = (alpha, b, Lambda) and A(eta), the
    complete-data log-likelihood of every one-hot q, and E_q for a soft q, are reproduced."""
    model, X, _, r, _ = faithful_fit
    N, D = X.shape
    const = -0.5 * N * D * np.log(2 * np.pi)
    for seed in range(3):
        other = model.init_params(X, np.random.default_rng(10 + seed))
        eta = _natural(other)
        for q in (r, np.eye(2)[np.argmax(r, axis=1)], np.full_like(r, 0.5)):
            stats = model.expected_stats(X, q)
            assert _Q_natural(eta, stats) + const == pytest.approx(
                expected_complete_loglik(model, X, other, q), rel=1e-11)


def test_gradient_of_A_is_the_mean_of_the_statistics(faithful_fit):
    """dA/dalpha_k = pi_k, grad_b_k A = pi_k mu_k, grad_Lambda_k A = pi_k (Sigma_k + mu_k mu_k^T),
    by central differences in each coordinate of eta."""
    _, _, theta, _, _ = faithful_fit
    alpha, b, Lam = _natural(theta)
    h = 1e-7
    d_alpha = (_A(alpha + h, b, Lam) - _A(alpha - h, b, Lam)) / (2 * h)
    assert d_alpha == pytest.approx(theta.weights[0], rel=1e-6)
    for k in range(2):
        for i in range(2):
            e = np.zeros_like(b)
            e[k, i] = h
            d_b = (_A(alpha, b + e, Lam) - _A(alpha, b - e, Lam)) / (2 * h)
            assert d_b == pytest.approx(theta.weights[k] * theta.means[k, i], rel=1e-6)
            for j in range(2):
                E = np.zeros_like(Lam)
                E[k, i, j] = h * 1e-2                                  # Lambda entries are small
                d_L = (_A(alpha, b, Lam + E) - _A(alpha, b, Lam - E)) / (2 * h * 1e-2)
                second = theta.covariances[k, i, j] + theta.means[k, i] * theta.means[k, j]
                assert d_L == pytest.approx(theta.weights[k] * second, rel=1e-5)


def test_hessian_of_A_is_the_covariance_of_the_statistics():
    """Theorem tractable_estep-thm-concave, part 1, for a one-dimensional two-component mixture:
    the finite-difference Hessian of A in (alpha, b_1, b_2, Lambda_1, Lambda_2) equals the exact
    covariance of t = (1[z=1], 1[z=k] x, 1[z=k] x^2), computed from Gaussian moments; and it is
    positive definite (the representation is minimal)."""
    pi, mu, var = np.array([0.3, 0.7]), np.array([-1.0, 2.0]), np.array([0.5, 1.5])
    params = emlib.GaussianMixtureParams(pi, mu[:, None], var[:, None, None])
    alpha, b, Lam = _natural(params)
    flat = np.concatenate([alpha, b.ravel(), Lam.ravel()])

    def A_flat(v):
        return _A(v[:1], v[1:3].reshape(2, 1), v[3:5].reshape(2, 1, 1))

    h = 1e-4
    H = np.empty((5, 5))
    for i in range(5):
        for j in range(5):
            ei, ej = np.eye(5)[i] * h, np.eye(5)[j] * h
            H[i, j] = (A_flat(flat + ei + ej) - A_flat(flat + ei - ej) - A_flat(flat - ei + ej)
                       + A_flat(flat - ei - ej)) / (4 * h * h)
    # raw moments E[x^p | z = k] for p = 0..4
    m = np.array([[1, u, u**2 + s, u**3 + 3 * u * s, u**4 + 6 * u**2 * s + 3 * s**2]
                  for u, s in zip(mu, var)])
    # t = (1[z=1], 1[z=1] x, 1[z=2] x, 1[z=1] x^2, 1[z=2] x^2): (component, power) of each entry
    entries = [(0, 0), (0, 1), (1, 1), (0, 2), (1, 2)]
    mean = np.array([pi[k] * m[k, p] for k, p in entries])
    second = np.array([[pi[k] * m[k, p + q] if k == l else 0.0 for l, q in entries]
                       for k, p in entries])
    cov = second - np.outer(mean, mean)
    np.testing.assert_allclose(H, cov, rtol=1e-4, atol=1e-5)
    assert np.linalg.eigvalsh(cov).min() > 1e-3


def test_Q_is_concave_in_eta_and_not_along_straight_lines_in_theta(faithful_fit):
    """Theorem tractable_estep-thm-concave, part 2, on Old Faithful: along segments between pairs of
    parameters, Q has non-positive second differences in natural coordinates; along the straight
    segment in (pi, mu, Sigma) from the M-step to another parameter it has positive ones."""
    model, X, _, r, stats = faithful_fit
    m_step = model.m_step(stats)
    s = np.linspace(0, 1, 101)
    for seed in range(4):
        other = model.init_params(X, np.random.default_rng(20 + seed))
        ends = (_natural(m_step), _natural(other))
        Q = np.array([_Q_natural(tuple((1 - u) * p + u * q for p, q in zip(*ends)), stats)
                      for u in s])
        assert np.max(Q[2:] - 2 * Q[1:-1] + Q[:-2]) <= 1e-9 * np.abs(Q).max()
    other = model.init_params(X, np.random.default_rng(1))
    line = [emlib.GaussianMixtureParams((1 - u) * m_step.weights + u * other.weights,
                                        (1 - u) * m_step.means + u * other.means,
                                        (1 - u) * m_step.covariances + u * other.covariances)
            for u in s]
    Q_theta = np.array([expected_complete_loglik(model, X, p, r) for p in line])
    assert np.max(Q_theta[2:] - 2 * Q_theta[1:-1] + Q_theta[:-2]) > 1e-3


def test_the_m_step_solves_the_moment_equations(faithful_fit):
    """Theorem tractable_estep-thm-concave, part 3: at the M-step's answer the gradient of Q in eta
    vanishes, and any other parameter has a lower Q (the stationary point is the global maximum)."""
    model, X, _, _, stats = faithful_fit
    eta = _natural(model.m_step(stats))
    alpha, b, Lam = eta
    h = 1e-6
    d_alpha = (_Q_natural((alpha + h, b, Lam), stats) - _Q_natural((alpha - h, b, Lam), stats)) / (2 * h)
    assert abs(d_alpha[0] if np.ndim(d_alpha) else d_alpha) < 1e-3
    best = _Q_natural(eta, stats)
    for seed in range(10):
        other = _natural(model.init_params(X, np.random.default_rng(30 + seed)))
        assert _Q_natural(other, stats) < best


def test_variance_example_of_the_concavity_exercise():
    """Exercise tractable_estep-ex-concave, part 2: -N/2 log v - S/(2v) is convex for v > 2S/N,
    concave in eta = -1/(2v), and both have their maximum at v = S/N."""
    N, S = 10, 25.0
    f = lambda v: -N / 2 * np.log(v) - S / (2 * v)
    g = lambda eta: N / 2 * np.log(-2 * eta) + eta * S
    h = 1e-3
    for v in (3 * S / N, 10 * S / N):
        assert (f(v + h) - 2 * f(v) + f(v - h)) / h**2 > 0
    for eta in np.linspace(-5, -0.01, 20):
        assert (g(eta + 1e-4) - 2 * g(eta) + g(eta - 1e-4)) / 1e-8 < 0
    v = np.linspace(0.1, 20, 20000)
    assert v[np.argmax(f(v))] == pytest.approx(S / N, abs=1e-3)
    eta = np.linspace(-5, -0.01, 20000)
    assert -1 / (2 * eta[np.argmax(g(eta))]) == pytest.approx(S / N, rel=1e-3)


# ====================================================================== the normalizer
def test_posterior_times_likelihood_is_the_joint_over_all_configurations():
    """Equation tractable_estep-normalizer: for every configuration z of a small data set,
    p(z | x, theta) p(x | theta) = p(x, z | theta), with the posterior from emlib's responsibilities
    and p(x | theta) from its log-likelihood."""
    model = emlib.GaussianMixture(3, "diag")
    params = emlib.GaussianMixtureParams([0.2, 0.5, 0.3], [[-1.0], [0.5], [2.0]], [[1.0], [0.5], [2.0]])
    X = np.array([[-0.7], [0.4], [1.9], [3.0]])
    lj, r, ll = model.log_joint(X, params), model.posterior(X, params), model.log_likelihood(X, params)
    for z in itertools.product(range(3), repeat=4):
        idx = (np.arange(4), list(z))
        assert np.sum(np.log(r[idx])) + ll == pytest.approx(np.sum(lj[idx]), rel=1e-12)


CHAIN_A = np.array([[0.9, 0.1], [0.2, 0.8]])
CHAIN_INIT = np.array([0.5, 0.5])


def _chain_paths(log_emission):
    n = log_emission.shape[0]
    paths = np.array(list(itertools.product(range(2), repeat=n)))
    log_prior = np.log(CHAIN_INIT)[paths[:, 0]] + np.log(CHAIN_A)[paths[:, :-1], paths[:, 1:]].sum(axis=1)
    return paths, log_prior, log_prior + log_emission[np.arange(n), paths].sum(axis=1)


def _forward_log(log_emission):
    """log sum_z p(z) prod_n exp(log_emission[n, z_n]), by the forward recursion in log space."""
    a = np.log(CHAIN_INIT) + log_emission[0]
    for le in log_emission[1:]:
        a = logsumexp(a[:, None] + np.log(CHAIN_A), axis=0) + le
    return logsumexp(a)


@pytest.fixture(scope="module")
def chain():
    rng = np.random.default_rng(5)
    z = [rng.choice(2, p=CHAIN_INIT)]
    for _ in range(9):
        z.append(rng.choice(2, p=CHAIN_A[z[-1]]))
    x = np.array([-1.0, 1.0])[z] + rng.standard_normal(10)
    return norm.logpdf(x[:, None], [-1.0, 1.0], 1.0)


def test_chain_posterior_needs_only_one_and_two_slice_marginals(chain):
    """The hidden Markov chain of the chapter: the expected complete-data log-likelihood computed
    over all 2^N paths equals the one computed from gamma and xi (marginals from enumeration), and
    the posterior does not factorize over points."""
    paths, log_prior, log_joint = _chain_paths(chain)
    post = np.exp(log_joint - logsumexp(log_joint))
    full = post @ log_joint
    gamma = np.stack([post @ (paths == k) for k in range(2)], axis=-1)
    xi = np.stack([[post @ ((paths[:, :-1] == j) & (paths[:, 1:] == k)) for k in range(2)]
                   for j in range(2)]).transpose(2, 0, 1)
    from_marginals = (gamma[0] @ np.log(CHAIN_INIT) + np.sum(xi * np.log(CHAIN_A))
                      + np.sum(gamma * chain))
    assert from_marginals == pytest.approx(full, rel=1e-12)
    assert np.abs(xi - gamma[:-1, :, None] * gamma[1:, None, :]).max() > 0.01
    assert _forward_log(chain) == pytest.approx(logsumexp(log_joint), rel=1e-12)


def test_relative_variance_of_whole_paths_is_exp_renyi2(chain):
    """Proposition tractable_estep-prop-relvar for a coupled proposal (the prior Markov chain):
    E_g[w^2] / p(x)^2 = exp(D_2(p(z | x) || g)), and D_2 is the forward recursion with squared
    emissions minus 2 log p(x), as the chapter computes it."""
    paths, log_prior, log_joint = _chain_paths(chain)
    log_p = logsumexp(log_joint)
    log_w = log_joint - log_prior                                       # w = p(x, z) / g(z)
    second = np.sum(np.exp(log_prior + 2 * (log_w - log_p)))
    d2 = logsumexp(2 * (log_joint - log_p) - log_prior)
    assert np.log(second) == pytest.approx(d2, rel=1e-12)
    assert d2 == pytest.approx(_forward_log(2 * chain) - 2 * _forward_log(chain), rel=1e-10)
    # D_2 of the first n points need not increase at every step (a new observation also changes
    # the posterior of the earlier states), but over a long chain it grows about linearly
    rng = np.random.default_rng(6)
    z = [0]
    for _ in range(299):
        z.append(rng.choice(2, p=CHAIN_A[z[-1]]))
    long_chain = norm.logpdf((np.array([-1.0, 1.0])[z] + rng.standard_normal(300))[:, None],
                             [-1.0, 1.0], 1.0)
    d2_n = np.array([_forward_log(2 * long_chain[:n]) - 2 * _forward_log(long_chain[:n])
                     for n in (100, 200, 300)])
    assert np.all(np.diff(d2_n) > 10)
    assert np.diff(d2_n)[1] == pytest.approx(np.diff(d2_n)[0], rel=0.5)


# ====================================================================== Monte Carlo on the marginal
@pytest.fixture(scope="module")
def one_d():
    mix = emlib.GaussianMixture(2, "diag")
    theta = emlib.GaussianMixtureParams([0.5, 0.5], [[-1.5], [1.5]], [[1.0], [1.0]])
    X, _ = mix.sample(theta, 100, np.random.default_rng(1))
    return mix, theta, X


def test_per_point_draws_needed_grow_linearly_and_whole_configurations_exponentially(one_d):
    """Proposition tractable_estep-prop-per-point: the m solving prod (1 + (c_n - 1) / m) - 1 = eps^2
    is close to sum (c_n - 1) / eps^2 (within a few per cent), grows about linearly in N, while
    (prod c_n - 1) / eps^2 grows exponentially."""
    mix, theta, X = one_d
    log_c = mc.renyi2_divergences(mix.log_joint(X, theta), theta.weights)
    eps = 0.1
    m_needed = []
    for n in (25, 50, 100):
        excess = np.expm1(log_c[:n])
        m = excess.sum() / eps**2
        # the first-order m gives a relative variance within a few per cent of eps^2
        assert np.expm1(np.sum(np.log1p(excess / m))) == pytest.approx(eps**2, rel=0.01)
        m_needed.append(m)
    assert m_needed[2] / m_needed[0] == pytest.approx(4, rel=0.35)
    assert np.sum(log_c[:100]) - np.sum(log_c[:50]) > 20                # e^20 more whole samples


def test_fisher_identity_and_self_normalized_importance_sampling(one_d):
    """Equations tractable_estep-fisher and tractable_estep-snis: the gradient of emlib's
    log-likelihood in mu_1 (finite differences) equals sum_n r_n1 (x_n - mu_1); the self-normalized
    estimate with prior draws is close to it when e^{D_2} << m, with an effective sample size near
    m e^{-D_2}, and degenerate (effective sample size below 10) when e^{D_2} >> m."""
    mix, theta, X = one_d
    r = mix.posterior(X, theta)
    mu_1 = theta.means[0, 0]

    def loglik(m1, n):
        p = emlib.GaussianMixtureParams(theta.weights, [[m1], [theta.means[1, 0]]], theta.covariances)
        return mix.log_likelihood(X[:n], p)

    h = 1e-6
    for n in (4, 100):
        exact = np.sum(r[:n, 0] * (X[:n, 0] - mu_1))
        assert (loglik(mu_1 + h, n) - loglik(mu_1 - h, n)) / (2 * h) == pytest.approx(exact, abs=1e-5)
    m = 40000
    for n, good in ((4, True), (60, False)):
        lj = mix.log_joint(X[:n], theta)
        z = mc.sample_configurations(theta.weights, m, np.random.default_rng(n), n_points=n)
        log_w = mc.log_prob_of_configurations(lj - np.log(theta.weights), z)
        w = mc.self_normalized_weights(log_w)
        estimate = w @ np.sum((z == 0) * (X[:n, 0] - mu_1), axis=1)
        exact = np.sum(r[:n, 0] * (X[:n, 0] - mu_1))
        ess = mc.effective_sample_size(log_w)
        d2 = mc.log_relative_second_moment(lj, theta.weights)
        if good:
            assert ess == pytest.approx(m * np.exp(-d2), rel=0.1)
            assert estimate == pytest.approx(exact, abs=0.05)
        else:
            assert np.exp(d2) > 1e6 * m and ess < 10


def test_log_of_one_weight_averages_to_the_elbo_of_the_proposal(one_d):
    """E_g[log w] = l - KL(g || p(z | x, theta)) = F(g, theta), exactly, over all configurations of
    six points; averaging two weights inside the log brings the mean closer to l (Burda et al.),
    still below it."""
    mix, theta, X = one_d
    X6 = X[:6]
    lj = mix.log_joint(X6, theta)
    g = np.tile(theta.weights, (6, 1))
    configs = np.array(list(itertools.product(range(2), repeat=6)))
    log_g = np.log(g)[np.arange(6), configs].sum(axis=1)
    log_w = lj[np.arange(6), configs].sum(axis=1) - log_g
    prob = np.exp(log_g)
    ll = mix.log_likelihood(X6, theta)
    one = prob @ log_w
    assert one == pytest.approx(ll - kl_to_posterior(mix, X6, theta, g), rel=1e-12)
    two = np.sum(np.outer(prob, prob) * (np.logaddexp.outer(log_w, log_w) - np.log(2)))
    assert one < two < ll


def test_standard_errors_of_a_monte_carlo_m_step(faithful):
    """The Monte Carlo EM section: over many repetitions of an M-step from m sampled configurations,
    the standard deviation of the weights matches sqrt(sum r (1 - r)) / (N sqrt m) and that of the
    means the first-order sqrt(sum r (1 - r) (x - mu)^2) / (N_k sqrt m), within 10 per cent."""
    model = emlib.GaussianMixture(2, "full")
    theta = emlib.em(model, faithful, model.init_params(faithful, np.random.default_rng(0)),
                     max_iter=200, tol=0).params
    r = model.posterior(faithful, theta)
    N, m, R = faithful.shape[0], 20, 1500
    exact = model.m_step(model.expected_stats(faithful, r))
    rng = np.random.default_rng(40)
    weights, means = [], []
    for _ in range(R):
        z = mc.sample_configurations(r, m, rng)
        p = model.m_step(model.expected_stats(faithful, np.eye(2)[z].mean(axis=0)))
        weights.append(p.weights)
        means.append(p.means)
    var_q = r * (1 - r) / m
    se_w = np.sqrt(var_q.sum(axis=0)) / N
    se_mu = np.sqrt(np.einsum("nk,nkd->kd", var_q, (faithful[:, None, :] - exact.means) ** 2))
    se_mu /= r.sum(axis=0)[:, None]
    np.testing.assert_allclose(np.std(weights, axis=0), se_w, rtol=0.1)
    np.testing.assert_allclose(np.std(means, axis=0), se_mu, rtol=0.1)
