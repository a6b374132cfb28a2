"""emlib.GaussianHMM: forward-backward and Viterbi against brute force, Baum-Welch against hmmlearn.

hmmlearn's regularization, read from its source (hmmlearn 0.3, ``GaussianHMM._do_mstep``): with
``covars_prior`` P and ``covars_weight`` w, a full covariance is (P + C_k) / (max(w - D, 0) + N_k)
and a diagonal one (P + c_k) / max(max(w - 1, 0) + N_k, 1e-5), where C_k is the state's scatter
matrix; ``min_covar`` is used only when hmmlearn initializes the covariances itself. emlib adds
``reg_covar`` to the diagonal after dividing: C_k / N_k + reg_covar I. The two agree exactly when
P = reg_covar N_k I (and w = 1): the reference below sets that P before each of hmmlearn's
M-steps from hmmlearn's own N_k; with reg_covar = 0 it is plain hmmlearn with covars_prior = 0.
"""
import itertools
import warnings

import numpy as np
import pytest
from hmmlearn.hmm import GaussianHMM as HmmlearnGaussianHMM
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from scipy.special import logsumexp
from threadpoolctl import threadpool_limits

import emlib
from emlib import GaussianHMM, GaussianHMMParams
from emlib.models.hmm import Sequences
from monotone import assert_monotone


@pytest.fixture(autouse=True)
def one_blas_thread():
    """hmmlearn solves tiny triangular systems for every sequence and iteration; on a shared
    machine threaded BLAS makes each of them wait for the other threads (seconds per test)."""
    with threadpool_limits(limits=1, user_api="blas"):
        yield


def random_params(rng, K, D, covariance_type="full"):
    transition = 0.6 * np.eye(K) + 0.4 * rng.dirichlet(np.ones(K), size=K)
    means = rng.normal(scale=2.0, size=(K, D))
    if covariance_type == "full":
        factors = rng.normal(scale=0.5, size=(K, D, D))
        covariances = factors @ factors.transpose(0, 2, 1) + 0.5 * np.eye(D)
    else:
        covariances = rng.uniform(0.3, 2.0, size=(K, D))
    return GaussianHMMParams(rng.dirichlet(np.ones(K)), transition, means, covariances)


class RegularizedHmmlearn(HmmlearnGaussianHMM):
    """hmmlearn's GaussianHMM with emlib's reg_covar: covars_prior = reg_covar N_k I per M-step.

    It also keeps a copy of the parameters after every M-step (``iterates``).
    """

    reg_covar = 0.0

    def _do_mstep(self, stats):
        counts = stats["post"]
        D = stats["obs"].shape[1]
        if self.covariance_type == "full":
            self.covars_prior = self.reg_covar * counts[:, None, None] * np.eye(D)
        else:
            self.covars_prior = self.reg_covar * counts[:, None]
        super()._do_mstep(stats)
        self.iterates.append((self.startprob_.copy(), self.transmat_.copy(), self.means_.copy(),
                              self._covars_.copy()))


def hmmlearn_fit(init, X, lengths, covariance_type, n_iter, reg_covar):
    ref = RegularizedHmmlearn(init.n_states, covariance_type, init_params="", params="stmc",
                              n_iter=n_iter, tol=-np.inf, covars_prior=0.0)
    ref.reg_covar, ref.iterates = reg_covar, []
    ref.startprob_, ref.transmat_, ref.means_ = init.start, init.transition, init.means
    ref.covars_ = init.covariances
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref.fit(X, lengths)
    return ref


def rel(a, b):
    return float(np.max(np.abs(np.asarray(a) - np.asarray(b))) / np.max(np.abs(b)))


# ---------------------------------------------------------------- against hmmlearn
@pytest.mark.parametrize("method", ["loop", "scan"])
@pytest.mark.parametrize("reg_covar", [0.0, 1e-2])
@pytest.mark.parametrize("lengths", [[400], [60, 150, 9, 1, 230]], ids=["one", "several"])
@pytest.mark.parametrize("covariance_type", ["full", "diag"])
def test_baum_welch_equals_hmmlearn(covariance_type, lengths, reg_covar, method):
    """Parameters and log-likelihood after 1, 5 and 50 iterations from the same start, to 1e-8."""
    K, D = 3, 2
    truth = random_params(np.random.default_rng(0), K, D, covariance_type)
    model = GaussianHMM(K, covariance_type, reg_covar=reg_covar, method=method)
    sequences, _ = model.sample(truth, lengths, np.random.default_rng(1))
    init = model.init_params(sequences, np.random.default_rng(2))
    X = np.concatenate(sequences)
    seen = {}
    ours = emlib.em(model, sequences, init, max_iter=50, tol=0,
                    callback=lambda t, params, loglik: seen.setdefault(t, (params, loglik)))
    ref = hmmlearn_fit(init, X, lengths, covariance_type, 50, reg_covar)
    assert len(ref.iterates) == ours.n_iter == 50
    # hmmlearn's trace holds the log-likelihood of each iterate before its M-step: t = 0 .. 49
    np.testing.assert_allclose(ours.log_likelihood[:-1], ref.monitor_.history, rtol=1e-8)
    assert ours.log_likelihood[-1] == pytest.approx(ref.score(X, lengths), rel=1e-8)
    for t in (1, 5, 50):
        params, loglik = seen[t]
        start, transition, means, covariances = ref.iterates[t - 1]
        assert rel(params.start, start) < 1e-8
        assert rel(params.transition, transition) < 1e-8
        assert rel(params.means, means) < 1e-8
        assert rel(params.covariances, covariances) < 1e-8
        assert loglik == pytest.approx(ours.log_likelihood[t], rel=0)


# ---------------------------------------------------------------- brute force over all K^T paths
def brute_force(model, sequences, params):
    """log p(x), gamma, summed xi and the best path by enumerating every hidden path."""
    K = params.n_states
    total, gammas, xi, best_paths, best_total = 0.0, [], np.zeros((K, K)), [], 0.0
    for x in sequences:
        T = len(x)
        paths = np.array(list(itertools.product(range(K), repeat=T)))
        joint = np.array([model.complete_log_likelihood(x, params, z) for z in paths])
        loglik = logsumexp(joint)
        weights = np.exp(joint - loglik)
        total += loglik
        gamma = np.zeros((T, K))
        for w, z in zip(weights, paths):
            gamma[np.arange(T), z] += w
            for t in range(1, T):
                xi[z[t - 1], z[t]] += w
        gammas.append(gamma)
        best_paths.append(paths[joint.argmax()])
        best_total += joint.max()
    return total, np.concatenate(gammas), xi, np.concatenate(best_paths), best_total


def test_complete_log_likelihood_is_the_product_formula():
    rng = np.random.default_rng(11)
    params = random_params(rng, 2, 1)
    x = rng.normal(size=(3, 1))
    z = np.array([1, 0, 0])
    dens = [np.exp(-0.5 * (x[t, 0] - params.means[k, 0]) ** 2 / params.covariances[k, 0, 0])
            / np.sqrt(2 * np.pi * params.covariances[k, 0, 0]) for t, k in enumerate(z)]
    by_hand = (params.start[1] * dens[0] * params.transition[1, 0] * dens[1]
               * params.transition[0, 0] * dens[2])
    assert GaussianHMM(2).complete_log_likelihood(x, params, z) == pytest.approx(np.log(by_hand), rel=1e-12)


@pytest.mark.parametrize("method", ["loop", "scan"])
@pytest.mark.parametrize("covariance_type", ["full", "diag"])
@pytest.mark.parametrize("K, lengths", [(2, [1]), (2, [6]), (3, [5, 1, 3]), (3, [2, 4, 4])])
def test_forward_backward_and_viterbi_equal_brute_force(K, lengths, covariance_type, method):
    rng = np.random.default_rng(K * 100 + sum(lengths))
    params = random_params(rng, K, 2, covariance_type)
    model = GaussianHMM(K, covariance_type, method=method)
    sequences = [rng.normal(scale=2.0, size=(n, 2)) for n in lengths]
    loglik, gamma, xi, best, best_total = brute_force(model, sequences, params)
    post = model.posterior(sequences, params)
    assert model.log_likelihood(sequences, params) == pytest.approx(loglik, rel=1e-12)
    assert post.log_likelihood.sum() == pytest.approx(loglik, rel=1e-12)
    np.testing.assert_allclose(post.state, gamma, atol=1e-12)
    np.testing.assert_allclose(post.transitions, xi, atol=1e-12)
    path, log_prob = model.viterbi(sequences, params)
    np.testing.assert_array_equal(path, best)
    assert log_prob == pytest.approx(best_total, rel=1e-12)


def test_loop_and_scan_agree_on_long_uneven_sequences():
    rng = np.random.default_rng(3)
    params = random_params(rng, 4, 3)
    sequences, _ = GaussianHMM(4).sample(params, [3000, 1, 777, 1024, 5], rng)
    out = {m: GaussianHMM(4, method=m).posterior(sequences, params) for m in ("loop", "scan", "auto")}
    for m in ("scan", "auto"):
        np.testing.assert_allclose(out[m].log_likelihood, out["loop"].log_likelihood, rtol=1e-12)
        np.testing.assert_allclose(out[m].state, out["loop"].state, atol=1e-10)
        np.testing.assert_allclose(out[m].transitions, out["loop"].transitions, rtol=1e-10)


def test_underflow_of_the_scaled_pass_falls_back_to_log_space():
    """A start that allows only a state under which x_1 has density e^-5000: the scaled
    normalizer underflows to zero, the log-space pass gives the finite answer."""
    params = GaussianHMMParams([1.0, 0.0], [[0.5, 0.5], [0.5, 0.5]], [[0.0], [100.0]], [[[1.0]], [[1.0]]])
    x = np.array([[100.0], [0.0], [100.0]])
    for method in ("loop", "scan"):
        model = GaussianHMM(2, method=method)
        loglik, gamma, xi, _, _ = brute_force(model, [x], params)
        assert np.isfinite(loglik) and loglik < -4000
        assert model.log_likelihood(x, params) == pytest.approx(loglik, rel=1e-12)
        post = model.posterior(x, params)
        np.testing.assert_allclose(post.state, gamma, atol=1e-12)
        np.testing.assert_allclose(post.transitions, xi, atol=1e-12)


# ---------------------------------------------------------------- EM properties
@settings(max_examples=30, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), K=st.integers(1, 4), D=st.integers(1, 3),
       n_sequences=st.integers(1, 4), covariance_type=st.sampled_from(["full", "diag"]),
       method=st.sampled_from(["loop", "scan"]))
def test_log_likelihood_never_decreases(seed, K, D, n_sequences, covariance_type, method):
    """Every Baum-Welch step, on random sequences and random starts: no decrease beyond 1e-10
    relative (exact EM: reg_covar = 0). A start that empties or collapses a state ends in a
    ValueError, not in a decrease; such examples are discarded."""
    rng = np.random.default_rng(seed)
    model = GaussianHMM(K, covariance_type, reg_covar=0.0, method=method)
    lengths = rng.integers(1, 80, size=n_sequences)
    lengths[0] = max(lengths[0], 10 * K)
    sequences, _ = model.sample(random_params(rng, K, D, covariance_type), lengths, rng)
    init = random_params(rng, K, D, covariance_type)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", emlib.ComponentCollapseWarning)
            trace = emlib.em(model, sequences, init, max_iter=25, tol=0).log_likelihood
    except ValueError as exc:
        assert "never left" in str(exc) or "emission M-step" in str(exc)
        assume(False)
    assert_monotone(trace)


def test_statistics_add_over_sequences_and_scale():
    rng = np.random.default_rng(8)
    params = random_params(rng, 3, 2)
    model = GaussianHMM(3)
    sequences, _ = model.sample(params, [40, 7, 90], rng)
    whole, loglik = model.e_step(model.check_data(sequences), params)
    first, l1 = model.e_step(model.check_data(sequences[:1]), params)
    rest, l2 = model.e_step(model.check_data(sequences[1:]), params)
    total = first + rest
    assert loglik == pytest.approx(l1 + l2, rel=1e-12)
    for a, b in [(total.start, whole.start), (total.transitions, whole.transitions),
                 (total.emissions.counts, whole.emissions.counts), (total.emissions.sum_xx, whole.emissions.sum_xx)]:
        np.testing.assert_allclose(a, b, rtol=1e-10)
    half = 0.5 * whole
    np.testing.assert_allclose(half.transitions, whole.transitions / 2)
    # the M-step of scaled statistics is the same: only ratios enter it
    p1, p2 = model.m_step(whole), model.m_step(half)
    np.testing.assert_allclose(p1.transition, p2.transition, rtol=1e-12)
    np.testing.assert_allclose(p1.covariances, p2.covariances, rtol=1e-10)


def test_e_step_equals_posterior_then_expected_stats():
    rng = np.random.default_rng(9)
    params = random_params(rng, 2, 2, "diag")
    model = GaussianHMM(2, "diag")
    sequences, _ = model.sample(params, [30, 12], rng)
    stats, loglik = model.e_step(sequences, params)
    q = model.posterior(sequences, params)
    again = model.expected_stats(sequences, q)
    np.testing.assert_allclose(again.transitions, stats.transitions)
    np.testing.assert_allclose(again.emissions.sum_x, stats.emissions.sum_x)
    # the start counts are the posteriors at the first time points; N_k = sum of gamma
    np.testing.assert_allclose(stats.start, q.state[0] + q.state[30], rtol=1e-12)
    np.testing.assert_allclose(stats.emissions.counts, q.state.sum(axis=0), rtol=1e-12)
    assert stats.transitions.sum() == pytest.approx(sum(n - 1 for n in (30, 12)), rel=1e-12)


def test_hard_statistics_from_a_path_count_the_moves():
    model = GaussianHMM(2)
    X = [np.arange(4.0).reshape(-1, 1), np.arange(3.0).reshape(-1, 1)]
    path = np.array([0, 0, 1, 1, 1, 0, 0])
    stats = model.expected_stats(X, path)
    np.testing.assert_array_equal(stats.start, [1, 1])
    np.testing.assert_array_equal(stats.transitions, [[2, 1], [1, 1]])   # 0-0, 0-1, 1-1 | 1-0, 0-0
    np.testing.assert_array_equal(stats.emissions.counts, [4, 3])


def test_em_and_squarem_run_on_the_model_unchanged():
    rng = np.random.default_rng(10)
    truth = random_params(rng, 2, 1)
    model = GaussianHMM(2, reg_covar=0.0)
    sequences, _ = model.sample(truth, [300, 200], rng)
    init = model.init_params(sequences, np.random.default_rng(0))
    plain = emlib.em(model, sequences, init, max_iter=2000, tol=1e-12)
    fast = emlib.squarem(model, sequences, init, max_iter=500, tol=1e-12)
    assert plain.converged and fast.converged
    assert fast.log_likelihood[-1] == pytest.approx(plain.log_likelihood[-1], rel=1e-8)
    assert_monotone(fast.log_likelihood, rtol=1e-9)


def test_sample_is_reproducible_and_shaped():
    params = random_params(np.random.default_rng(0), 3, 2)
    model = GaussianHMM(3)
    X1, z1 = model.sample(params, [5, 1, 8], np.random.default_rng(4))
    X2, z2 = model.sample(params, [5, 1, 8], np.random.default_rng(4))
    assert [x.shape for x in X1] == [(5, 2), (1, 2), (8, 2)]
    for a, b in zip(X1 + z1, X2 + z2):
        np.testing.assert_array_equal(a, b)


def test_data_forms_are_equivalent():
    rng = np.random.default_rng(12)
    params = random_params(rng, 2, 2)
    model = GaussianHMM(2)
    stacked = rng.normal(size=(3, 10, 2))
    a = model.log_likelihood(stacked, params)
    b = model.log_likelihood(list(stacked), params)
    c = sum(model.log_likelihood(s, params) for s in stacked)
    d = model.log_likelihood(Sequences(stacked.reshape(-1, 2), np.array([10, 10, 10])), params)
    assert a == pytest.approx(c, rel=1e-12) and b == pytest.approx(c, rel=1e-12) and d == pytest.approx(c, rel=1e-12)


# ---------------------------------------------------------------- bad input
GOOD = dict(start=[0.5, 0.5], transition=[[0.9, 0.1], [0.2, 0.8]], means=[[0.0], [1.0]],
            covariances=[[[1.0]], [[1.0]]])


@pytest.mark.parametrize("change, message", [
    (dict(transition=[[0.9, 0.2], [0.2, 0.8]]), r"row 0 of transition sums to 1\.1.*Divide each row by its sum"),
    (dict(transition=[[1.1, -0.1], [0.2, 0.8]]), "must be non-negative"),
    (dict(transition=[[0.9, 0.1]]), "transition must have shape"),
    (dict(start=[0.6, 0.6]), "start must sum to one"),
    (dict(start=[np.nan, 0.5]), "NaN"),
    (dict(covariances=[[[1.0]], [[-1.0]]]), "not positive definite"),
])
def test_bad_parameters_are_refused(change, message):
    with pytest.raises(ValueError, match=message):
        GaussianHMMParams(**{**GOOD, **change})


def test_sums_within_rounding_are_made_exact():
    p = GaussianHMMParams(**{**GOOD, "transition": [[0.9 + 1e-10, 0.1], [0.2, 0.8]]})
    assert np.all(p.transition.sum(axis=1) == 1.0)


@pytest.mark.parametrize("data, message", [
    ([np.zeros((3, 1)), np.zeros((0, 1))], r"sequence 1 is empty.*at least one observation"),
    (np.zeros((0, 1)), "empty"),
    ([], "empty list"),
    (np.array([[0.0], [np.nan], [1.0]]), "NaN"),
    ([np.zeros((3, 1)), np.array([[1.0], [np.inf]])], "sequence 1 contains infinite"),
    (np.zeros(5), r"reshape\(-1, 1\)"),
    ([np.zeros((3, 1)), np.zeros((3, 2))], "different numbers of columns"),
    (np.zeros((1, 1)), "fewer than the 2 states"),
])
def test_bad_data_are_refused(data, message):
    with pytest.raises(ValueError, match=message):
        GaussianHMM(2).check_data(data)


def test_data_with_zero_probability_are_refused():
    """With Gaussian emissions every density is positive, so data have probability zero only in
    floating point: a value whose square overflows (x = 1e200), under a start state that cannot
    explain it. Such data are refused before the forward pass, with advice to rescale."""
    x = np.array([[1e200], [0.0]])
    impossible = GaussianHMMParams([1.0, 0.0], GOOD["transition"], [[0.0], [1e200]], [[[1.0]], [[1.0]]])
    model = GaussianHMM(2)
    for method in (model.log_likelihood, model.e_step):
        with pytest.raises(ValueError, match="Rescale X"):
            method(x, impossible)


def test_mismatched_params_and_model_are_refused():
    params = GaussianHMMParams(**GOOD)
    with pytest.raises(ValueError, match="2 states but the model has 3"):
        GaussianHMM(3).check_params(params)
    with pytest.raises(ValueError, match="expects 'diag'"):
        GaussianHMM(2, "diag").check_params(params)
    with pytest.raises(ValueError, match="D = 1 dimensions but the data have 2"):
        GaussianHMM(2).log_likelihood(np.zeros((4, 2)), params)
    with pytest.raises(ValueError, match="GaussianHMMParams"):
        GaussianHMM(2).check_params(emlib.GaussianMixtureParams([0.5, 0.5], [[0.0], [1.0]], [[[1.0]], [[1.0]]]))


@pytest.mark.parametrize("kwargs, message", [
    (dict(n_states=0), "n_states must be a positive integer"),
    (dict(n_states=2, method="fast"), "method must be one of"),
    (dict(n_states=2, covariance_type="tied"), "covariance_type must be one of"),
    (dict(n_states=2, reg_covar=-1.0), "reg_covar"),
])
def test_bad_model_settings_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        GaussianHMM(**kwargs)


def test_a_state_that_is_never_left_is_reported():
    model = GaussianHMM(2)
    stats = model.expected_stats([np.array([[0.0], [0.1], [5.0]])], np.array([0, 0, 1]))
    with pytest.raises(ValueError, match=r"state\(s\) \[1\] are never left"):
        model.m_step(stats)


def test_viterbi_path_is_a_valid_argument_for_hard_em():
    rng = np.random.default_rng(13)
    truth = random_params(rng, 2, 1)
    model = GaussianHMM(2)
    sequences, states = model.sample(truth, [200], rng)
    path, log_prob = model.viterbi(sequences, truth)
    assert log_prob == pytest.approx(model.complete_log_likelihood(sequences, truth, path), rel=1e-12)
    assert log_prob >= model.complete_log_likelihood(sequences, truth, np.concatenate(states))
    hard = model.m_step(model.expected_stats(sequences, path))
    assert np.all(np.isfinite(hard.means))
