"""Every identity and claim of the chapter "Hidden Markov models: Baum-Welch as EM", checked.

Small cases are checked against brute force over all K^T hidden paths; the statements about the
Nile fit, the starts and the exercises are recomputed here as the chapter computes them.
"""
import itertools

import numpy as np
import pytest
from scipy.special import logsumexp

import emlib
from emlib import GaussianHMM, GaussianHMMParams

FLOW = emlib.datasets.nile()[:, 1:]
YEARS = emlib.datasets.nile()[:, 0].astype(int)


def random_params(rng, K, D):
    factors = rng.normal(scale=0.5, size=(K, D, D))
    return GaussianHMMParams(rng.dirichlet(np.ones(K)), rng.dirichlet(np.ones(K), size=K),
                             rng.normal(scale=1.5, size=(K, D)),
                             factors @ factors.transpose(0, 2, 1) + 0.5 * np.eye(D))


def enumerate_paths(model, x, params):
    """All paths (K^T, T) and their log p(x, z | theta)."""
    paths = np.array(list(itertools.product(range(params.n_states), repeat=len(x))))
    return paths, np.array([model.complete_log_likelihood(x, params, z) for z in paths])


@pytest.fixture(scope="module")
def small():
    rng = np.random.default_rng(21)
    params = random_params(rng, 3, 2)
    model = GaussianHMM(3)
    (x,), _ = model.sample(params, [6], rng)
    paths, joint = enumerate_paths(model, x, params)
    return model, params, x, paths, joint


# ---------------------------------------------------------------- the model and the exponential family
def test_nile_data_are_the_published_series():
    nile = emlib.datasets.nile()
    assert nile.shape == (100, 2)
    np.testing.assert_array_equal(YEARS, np.arange(1871, 1971))
    assert (nile[0, 1], nile[-1, 1]) == (1120.0, 740.0)       # R's datasets::Nile, first and last
    assert nile[:, 1].mean() == pytest.approx(919.35, abs=1e-9)


def test_joint_is_the_product_formula_and_the_exponential_family(small):
    """Equations hidden_markov-joint and hidden_markov-expfam for every path."""
    model, params, x, paths, joint = small
    log_b = np.array([[np.log(np.exp(-0.5 * (xt - m) @ np.linalg.solve(S, xt - m))
                              / np.sqrt(np.linalg.det(2 * np.pi * S)))
                       for m, S in zip(params.means, params.covariances)] for xt in x])
    prec = np.linalg.inv(params.covariances)
    c = np.array([-np.log(2 * np.pi) - 0.5 * np.linalg.slogdet(S)[1] - 0.5 * m @ P @ m
                  for m, S, P in zip(params.means, params.covariances, prec)])
    for z, value in zip(paths[::37], joint[::37]):
        product = np.log(params.start[z[0]]) + sum(np.log(params.transition[z[t - 1], z[t]])
                                                   for t in range(1, len(z))) + log_b[np.arange(len(z)), z].sum()
        assert value == pytest.approx(product, rel=1e-12)
        t = model.expected_stats(x, z)        # t(x, z): hard counts and sums along the path
        inner = (t.start @ np.log(params.start) + np.sum(t.transitions * np.log(params.transition))
                 + t.emissions.counts @ c + np.einsum("kd,kde,ke->", t.emissions.sum_x, prec, params.means)
                 - 0.5 * np.einsum("kde,ked->", prec, t.emissions.sum_xx))
        assert inner == pytest.approx(value, rel=1e-12)


def test_hmm_with_rows_equal_to_start_is_a_gaussian_mixture():
    rng = np.random.default_rng(2)
    p = random_params(rng, 3, 2)
    hmm = GaussianHMMParams(p.start, np.tile(p.start, (3, 1)), p.means, p.covariances)
    x = rng.normal(size=(40, 2))
    mixture = emlib.GaussianMixtureParams(p.start, p.means, p.covariances)
    assert GaussianHMM(3).log_likelihood(x, hmm) == pytest.approx(
        emlib.GaussianMixture(3).log_likelihood(x, mixture), rel=1e-12)


def test_the_sum_over_paths_of_a_century_has_about_ten_to_the_thirty_terms():
    assert 1e30 <= 2 ** 100 < 2e30


# ---------------------------------------------------------------- E-step identities
def test_marginals_q_and_expected_statistics_equal_brute_force(small):
    """Equations hidden_markov-Q, -marginals, -estats, -gamma and -xi."""
    model, params, x, paths, joint = small
    T, K = len(x), 3
    w = np.exp(joint - logsumexp(joint))
    gamma = np.zeros((T, K))
    xi = np.zeros((T, K, K))
    for wi, z in zip(w, paths):
        gamma[np.arange(T), z] += wi
        xi[np.arange(1, T), z[:-1], z[1:]] += wi
    post = model.posterior(x, params)
    np.testing.assert_allclose(post.state, gamma, atol=1e-12)
    np.testing.assert_allclose(post.transitions, xi[1:].sum(axis=0), atol=1e-12)
    # exercise "expected counts add up": sum_j xi_t(i, j) = gamma_t-1(i), sum_i xi_t(i, j) = gamma_t(j)
    np.testing.assert_allclose(xi[1:].sum(axis=2), gamma[:-1], atol=1e-12)
    np.testing.assert_allclose(xi[1:].sum(axis=1), gamma[1:], atol=1e-12)
    # Q(theta' | theta) = E[log p(x, z | theta')] = <eta(theta'), E t(x, z)>, for another theta'
    other = random_params(np.random.default_rng(5), 3, 2)
    _, joint_other = enumerate_paths(model, x, other)
    stats, _ = model.e_step(x, params)
    q_from_stats = (stats.start @ np.log(other.start) + np.sum(stats.transitions * np.log(other.transition))
                    + np.sum(post.state * model.emission_log_density(x, other)))
    assert q_from_stats == pytest.approx(w @ joint_other, rel=1e-12)


def test_counts_add_up_over_sequences():
    rng = np.random.default_rng(4)
    params = random_params(rng, 3, 1)
    model = GaussianHMM(3)
    lengths = [20, 45, 90, 1, 3]
    sequences, _ = model.sample(params, lengths, rng)
    stats, _ = model.e_step(sequences, params)
    assert stats.transitions.sum() == pytest.approx(sum(n - 1 for n in lengths), rel=1e-12)
    assert stats.emissions.counts.sum() == pytest.approx(sum(lengths), rel=1e-12)
    assert stats.start.sum() == pytest.approx(len(lengths), rel=1e-12)


def test_scaled_forward_normalizers(small):
    """Proposition hidden_markov-prop-scaled: sum log c_t = log p(x), and the normalized forward
    message is the filtering distribution p(z_t | x_1..t)."""
    model, params, x, _, _ = small
    b = np.exp(model.emission_log_density(x, params))
    a = params.start * b[0]
    total = 0.0
    for t in range(len(x)):
        if t > 0:
            a = (alpha_hat @ params.transition) * b[t]
        c = a.sum()
        alpha_hat = a / c
        total += np.log(c)
        # c_t = p(x_t | x_1..t-1) and alpha_hat_t = p(z_t | x_1..t), by brute force on the prefix
        prefix = x[:t + 1]
        paths, joint = enumerate_paths(model, prefix, params)
        filt = np.array([np.exp(logsumexp(joint[paths[:, -1] == k]) - logsumexp(joint)) for k in range(3)])
        np.testing.assert_allclose(alpha_hat, filt, atol=1e-12)
        assert total == pytest.approx(logsumexp(joint), rel=1e-12)


def test_viterbi_is_the_max_over_paths_and_differs_from_marginal_argmax(small):
    model, params, x, paths, joint = small
    path, log_prob = model.viterbi(x, params)
    np.testing.assert_array_equal(path, paths[joint.argmax()])
    assert log_prob == pytest.approx(joint.max(), rel=1e-12)


# ---------------------------------------------------------------- the M-step and monotonicity
def test_m_step_maximizes_q_over_feasible_perturbations():
    """Equation hidden_markov-mstep: every feasible perturbation lowers Q (reg_covar = 0)."""
    rng = np.random.default_rng(6)
    params = random_params(rng, 3, 2)
    model = GaussianHMM(3, reg_covar=0.0)
    sequences, _ = model.sample(params, [50, 30], rng)
    stats, _ = model.e_step(sequences, params)
    q = model.posterior(sequences, params)
    X = np.concatenate(sequences)

    def Q(theta):
        return (stats.start @ np.log(theta.start) + np.sum(stats.transitions * np.log(theta.transition))
                + np.sum(q.state * model.emission_log_density(X, theta)))

    best = model.m_step(stats)
    top = Q(best)
    for _ in range(30):
        eps = rng.uniform(0.001, 0.05)                      # mix with another feasible point
        factor = rng.normal(scale=0.05, size=(3, 2, 2))
        trial = GaussianHMMParams((1 - eps) * best.start + eps * rng.dirichlet(np.ones(3)),
                                  (1 - eps) * best.transition + eps * rng.dirichlet(np.ones(3), size=3),
                                  best.means + 0.05 * rng.normal(size=(3, 2)),
                                  best.covariances + factor @ factor.transpose(0, 2, 1)
                                  - 0.001 * np.eye(2))
        assert Q(trial) < top


@pytest.mark.parametrize("seed", range(10))
def test_baum_welch_never_lowers_the_nile_likelihood(seed):
    model = GaussianHMM(2, reg_covar=0.0)
    trace = emlib.em(model, FLOW, model.init_params(FLOW, np.random.default_rng(seed)),
                     max_iter=60, tol=0).log_likelihood
    assert np.all(np.diff(trace) >= -1e-10 * np.abs(trace[1:]))


def test_one_sequence_start_estimate_is_the_first_posterior():
    model = GaussianHMM(2, reg_covar=0.0)
    start = model.init_params(FLOW, np.random.default_rng(0))
    stats, _ = model.e_step(FLOW, start)
    np.testing.assert_allclose(model.m_step(stats).start, model.posterior(FLOW, start).state[0], rtol=1e-12)


# ---------------------------------------------------------------- the Nile fit
@pytest.fixture(scope="module")
def nile_fits():
    model = GaussianHMM(2, reg_covar=0.0)
    return model, [emlib.em(model, FLOW, model.init_params(FLOW, np.random.default_rng(s)),
                            max_iter=2000, tol=1e-12) for s in range(10)]


def test_nile_starts_agree_up_to_labels(nile_fits):
    model, fits = nile_fits
    final = np.array([f.log_likelihood[-1] for f in fits])
    assert np.all(final.max() - final < 1e-6)
    high_first = sum(int(np.argmax(f.params.means[:, 0]) == 0) for f in fits)
    assert 0 < high_first < 10                           # both labellings occur


def test_nile_fit_is_a_change_point_model(nile_fits):
    model, fits = nile_fits
    p = max(fits, key=lambda f: f.log_likelihood[-1]).params
    high, low = np.argsort(-p.means[:, 0])
    assert p.transition[low, high] < 1e-7
    assert p.start[high] == pytest.approx(1.0, abs=1e-9)   # exercise "one sequence": pi one-hot
    path, _ = model.viterbi(FLOW, p)
    assert list(YEARS[np.flatnonzero(np.diff(path))]) == [1898]
    posterior_low = model.posterior(FLOW, p).state[:, low]
    assert np.all(posterior_low[YEARS <= 1895] < 0.05) and np.all(posterior_low[YEARS >= 1901] > 0.95)


def test_relabelling_leaves_the_likelihood_unchanged_and_em_is_equivariant(nile_fits):
    model, _ = nile_fits
    start = model.init_params(FLOW, np.random.default_rng(3))
    sigma = np.array([1, 0])

    def relabel(p):
        return GaussianHMMParams(p.start[sigma], p.transition[np.ix_(sigma, sigma)], p.means[sigma],
                                 p.covariances[sigma])

    assert model.log_likelihood(FLOW, relabel(start)) == pytest.approx(model.log_likelihood(FLOW, start),
                                                                        rel=1e-12)
    a = model.m_step(model.e_step(FLOW, start)[0])
    b = model.m_step(model.e_step(FLOW, relabel(start))[0])
    np.testing.assert_allclose(relabel(a).transition, b.transition, rtol=1e-10)
    np.testing.assert_allclose(relabel(a).means, b.means, rtol=1e-10)


def test_zeros_never_move():
    model = GaussianHMM(2, reg_covar=0.0)
    v = FLOW.var()
    cov = np.full((2, 1, 1), v)
    zero_move = GaussianHMMParams([0.5, 0.5], [[1.0, 0.0], [0.5, 0.5]], [[1000.0], [850.0]], cov)
    assert emlib.em(model, FLOW, zero_move, max_iter=300, tol=0).params.transition[0, 1] == 0.0
    zero_start = GaussianHMMParams([1.0, 0.0], [[0.5, 0.5], [0.5, 0.5]], [[850.0], [1000.0]], cov)
    assert emlib.em(model, FLOW, zero_start, max_iter=50, tol=0).params.start[1] == 0.0


def test_symmetric_start_is_a_fixed_point_at_the_single_gaussian_fit():
    model = GaussianHMM(2, reg_covar=0.0)
    v = FLOW.var()
    sym = GaussianHMMParams([0.5, 0.5], [[0.5, 0.5], [0.5, 0.5]], [[FLOW.mean()], [FLOW.mean()]],
                            np.full((2, 1, 1), v))
    run = emlib.em(model, FLOW, sym, max_iter=300, tol=0)
    single = len(FLOW) * (-0.5 * np.log(2 * np.pi * v) - 0.5)
    assert np.all(np.abs(run.log_likelihood - single) < 1e-9 * abs(single))
    assert run.params.means[0, 0] == pytest.approx(run.params.means[1, 0], rel=1e-12)


def test_alternating_start_ends_far_below_the_best_fit(nile_fits):
    model, fits = nile_fits
    best = max(f.log_likelihood[-1] for f in fits)
    alt = GaussianHMMParams([0.5, 0.5], [[0.1, 0.9], [0.9, 0.1]], [[1000.0], [850.0]],
                            np.full((2, 1, 1), FLOW.var()))
    run = emlib.em(model, FLOW, alt, max_iter=300, tol=0)
    p = run.params
    assert best - run.log_likelihood[-1] > 20
    assert run.log_likelihood[-1] - run.log_likelihood[-2] > 0        # still creeping up
    assert abs(p.means[0, 0] - p.means[1, 0]) < 5                      # almost the same mean
    assert abs(p.covariances[0, 0, 0] - p.covariances[1, 0, 0]) > 0.05 * p.covariances[1, 0, 0]
    assert p.transition[0, 1] > 0.5 and p.transition[1, 0] > 0.5        # switches in most years
    assert np.all(np.diff(run.log_likelihood) >= -1e-10 * np.abs(run.log_likelihood[1:]))
    # its likelihood is above the single-Gaussian fit of the symmetric start
    assert run.log_likelihood[-1] > len(FLOW) * (-0.5 * np.log(2 * np.pi * FLOW.var()) - 0.5)


# ---------------------------------------------------------------- several sequences
def test_a_list_of_sequences_is_not_their_concatenation():
    truth = GaussianHMMParams([0.5, 0.3, 0.2], [[0.90, 0.08, 0.02], [0.05, 0.90, 0.05], [0.05, 0.15, 0.80]],
                              [[-2.0], [0.0], [2.5]], [[[0.6]], [[0.4]], [[0.8]]])
    model = GaussianHMM(3, reg_covar=0.0)
    sequences, _ = model.sample(truth, [20, 45, 90, 200, 400], np.random.default_rng(7))
    start = model.init_params(sequences, np.random.default_rng(1))
    separate = emlib.em(model, sequences, start, max_iter=2000, tol=1e-12)
    joined = emlib.em(model, np.concatenate(sequences), start, max_iter=2000, tol=1e-12)
    assert sum(model.log_likelihood(s, separate.params) for s in sequences) == pytest.approx(
        separate.log_likelihood[-1], rel=1e-12)
    assert abs(joined.log_likelihood[-1] - separate.log_likelihood[-1]) > 1.0
    order = np.argsort(separate.params.means[:, 0])
    assert np.max(np.abs(separate.params.means[order, 0] - truth.means[:, 0])) < 0.2


# ---------------------------------------------------------------- exercises
def test_exercise_most_probable_states_form_an_impossible_path():
    params = GaussianHMMParams([0.4, 0.3, 0.3], [[0.5, 0.0, 0.5], [0.0, 1.0, 0.0], [0.0, 1.0, 0.0]],
                               [[0.0], [0.0], [0.0]], np.ones((3, 1, 1)))
    model = GaussianHMM(3)
    x = np.array([[0.3], [0.3]])
    gamma = model.posterior(x, params).state
    np.testing.assert_allclose(gamma[1], [0.2, 0.6, 0.2], atol=1e-12)
    assert gamma[0].argmax() == 0 and gamma[1].argmax() == 1 and params.transition[0, 1] == 0
    path, log_prob = model.viterbi(x, params)
    np.testing.assert_array_equal(path, [1, 1])
    assert log_prob - model.emission_log_density(x, params)[:, 0].sum() == pytest.approx(np.log(0.3))


def test_exercise_counting_multiplications():
    K, T = 2, 100
    brute = K ** T * (2 * T - 2)
    assert 2.5e32 <= brute < 2.55e32
    years = brute / 1e9 / (365.25 * 24 * 3600)
    assert 7.5e15 < years < 8.5e15
    assert K + (T - 1) * (K ** 2 + K) == 596


def test_exercise_viterbi_training_on_the_nile(nile_fits):
    model, fits = nile_fits
    params = model.init_params(FLOW, np.random.default_rng(0))
    previous = None
    for step in range(100):
        path = model.viterbi(FLOW, params).path
        if previous is not None and np.array_equal(path, previous):
            break
        previous = path
        params = model.m_step(model.expected_stats(FLOW, path))
    assert np.array_equal(model.viterbi(FLOW, params).path, path)      # a fixed point was reached
    changes = YEARS[np.flatnonzero(np.diff(path))]
    assert 1898 in changes and len(changes) > 1             # the change of 1898, and a few more
    high = int(np.argmax(params.means[:, 0]))
    low_before = (YEARS <= 1898) & (path != high)
    high_after = (YEARS > 1898) & (path == high)
    assert low_before.any() and high_after.any()
    assert np.all(FLOW[low_before, 0] < params.means[high, 0])
    assert np.all(FLOW[high_after, 0] > params.means[1 - high, 0])
    segment = FLOW[path == high, 0]
    assert params.means[high, 0] == pytest.approx(segment.mean(), rel=1e-12)   # averages of segments
    bw = max(fits, key=lambda f: f.log_likelihood[-1]).params
    gap_hard = abs(params.means[0, 0] - params.means[1, 0])
    gap_bw = abs(bw.means[0, 0] - bw.means[1, 0])
    assert gap_hard > gap_bw                                     # means further apart
    assert np.all(np.sort(params.covariances.ravel()) < np.sort(bw.covariances.ravel()))  # narrower states
    assert model.log_likelihood(FLOW, params) < max(f.log_likelihood[-1] for f in fits) - 1.0
    assert params.start[path[0]] == 1.0
