"""Claims of the chapter "EM versus gradient methods" that test_gradient.py does not cover.

- the preconditioner blocks of the weights (singular, positive definite on sum(v) = 0) and of the
  covariances (equation em_vs_gradient-precond-sigma);
- the conditions of EM's affine invariance (reg_covar = 0; diagonal maps for diagonal covariances)
  and the step-size rescaling of gradient ascent when A^T A = c I;
- the honest pass counts (one pass for the start; 2P passes per finite-difference Hessian);
- the bracket asserted for the chaotic onset of fixed-step gradient ascent;
- the Poisson mixture in unconstrained coordinates (equations em_vs_gradient-poisson-eta, -grad,
  -hess) and the race of EM, SQUAREM, L-BFGS and Newton on Hasselblad's data.
"""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import optimize

import emlib
from emlib import reporting
from emlib.gradient import MixtureObjective, gradient_ascent, newton_ascent

START_H = emlib.PoissonMixtureParams([0.3, 0.7], [1.0, 2.5])


# ---------------------------------------------------------------------------- preconditioner blocks
@settings(max_examples=30, deadline=None, derandomize=True)
@given(raw=st.lists(st.floats(0.05, 1.0), min_size=2, max_size=5), n=st.integers(10, 1000))
def test_weights_block_is_singular_and_positive_on_the_simplex_directions(raw, n):
    pi = np.array(raw) / np.sum(raw)
    P = (np.diag(pi) - np.outer(pi, pi)) / n
    np.testing.assert_allclose(P @ np.ones(pi.size), 0.0, atol=1e-15)
    eig = np.linalg.eigvalsh(P)
    assert abs(eig[0]) < 1e-14                              # singular, along the vector of ones
    # on the subspace sum(v) = 0: an orthonormal basis of the complement of 1
    basis = np.linalg.svd(np.eye(pi.size) - 1.0 / pi.size)[0][:, :pi.size - 1]
    assert np.linalg.eigvalsh(basis.T @ P @ basis).min() > 0


def test_covariance_block_with_its_second_order_term(faithful):
    """Sigma_EM - Sigma = (2 / N_k) Sigma G Sigma - delta delta^T (equation em_vs_gradient-precond-sigma)."""
    model = emlib.GaussianMixture(2, "full", reg_covar=0.0)
    for seed in (1, 2, 3):
        params = model.init_params(faithful, np.random.default_rng(seed))
        stats, _ = model.e_step(faithful, params)
        new = model.m_step(stats)
        r = model.posterior(faithful, params)
        for k in range(2):
            S = params.covariances[k]
            diff = faithful - params.means[k]
            C = (r[:, k, None] * diff).T @ diff
            S_inv = np.linalg.inv(S)
            G = 0.5 * (S_inv @ C @ S_inv - stats.counts[k] * S_inv)
            delta = new.means[k] - params.means[k]
            np.testing.assert_allclose(new.covariances[k] - S,
                                       2 / stats.counts[k] * S @ G @ S - np.outer(delta, delta),
                                       rtol=1e-9, atol=1e-10)
            assert np.linalg.norm(delta) > 1e-3  # the second-order term is really there


def test_covariance_block_map_is_positive_definite_on_symmetric_matrices():
    rng = np.random.default_rng(0)
    for _ in range(50):
        A = rng.standard_normal((3, 3))
        S = A @ A.T + 0.1 * np.eye(3)
        B = rng.standard_normal((3, 3))
        G = B + B.T
        assert np.trace(G @ S @ G @ S) > 0


# ---------------------------------------------------------------------------- invariance
def affine_start(params, A, b):
    return emlib.GaussianMixtureParams(params.weights, params.means @ A.T + b,
                                       A @ params.covariances @ A.T)


def trace_shift_spread(model, X, start, A, b, iters=15):
    """How far EM on A x + b is from EM on x shifted by -N log|det A| (0 for an equivariant EM)."""
    on_x = emlib.em(model, X, start, tol=0, max_iter=iters).log_likelihood
    on_y = emlib.em(model, X @ A.T + b, affine_start(start, A, b), tol=0, max_iter=iters).log_likelihood
    return np.max(np.abs(on_y - on_x + len(X) * np.log(abs(np.linalg.det(A)))))


def test_em_invariance_needs_reg_covar_zero(faithful):
    A, b = np.array([[2.0, 0.3], [-0.1, 0.5]]), np.array([1.0, -3.0])
    start = emlib.GaussianMixture(2).init_params(faithful, np.random.default_rng(1))
    assert trace_shift_spread(emlib.GaussianMixture(2, reg_covar=0.0), faithful, start, A, b) < 1e-8
    # reg_covar adds c I on both scales, which is not the transformed c A A^T
    assert trace_shift_spread(emlib.GaussianMixture(2, reg_covar=1e-3), faithful, start, A, b) > 1e-4


def test_diagonal_em_is_invariant_only_under_diagonal_maps(faithful):
    model = emlib.GaussianMixture(2, "diag", reg_covar=0.0)
    full_start = emlib.GaussianMixture(2).init_params(faithful, np.random.default_rng(1))
    start = emlib.GaussianMixtureParams(full_start.weights, full_start.means,
                                        np.diagonal(full_start.covariances, axis1=1, axis2=2))

    def spread(A, b):
        on_x = emlib.em(model, faithful, start, tol=0, max_iter=15).log_likelihood
        var_y = np.einsum("de,ke,de->kd", A, start.covariances, A)  # diag(A S A^T) for diagonal S
        y_start = emlib.GaussianMixtureParams(start.weights, start.means @ A.T + b, var_y)
        on_y = emlib.em(model, faithful @ A.T + b, y_start, tol=0, max_iter=15).log_likelihood
        return np.max(np.abs(on_y - on_x + len(faithful) * np.log(abs(np.linalg.det(A)))))

    assert spread(np.diag([0.5, 0.02]), np.array([1.0, -50.0])) < 1e-8
    c, s = np.cos(0.4), np.sin(0.4)
    assert spread(np.array([[c, -s], [s, c]]), np.zeros(2)) > 1e-3     # a rotation


def test_gradient_step_with_scaled_orthogonal_map_needs_the_step_divided_by_c(faithful):
    """If A^T A = c I, a step alpha on y = A x is the step alpha / c on x (exercise ex-affine)."""
    weights = [0.36, 0.64]
    cov_x = np.array([np.diag([0.07, 34.0]), np.diag([0.17, 36.0])])
    theta, c = 0.3, 4.0
    A = np.sqrt(c) * np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    assert np.allclose(A.T @ A, c * np.eye(2))
    obj_x = MixtureObjective(emlib.GaussianMixture(
        2, reg_covar=0.0, fixed={"weights": weights, "covariances": cov_x}), faithful)
    obj_y = MixtureObjective(emlib.GaussianMixture(
        2, reg_covar=0.0, fixed={"weights": weights, "covariances": A @ cov_x @ A.T}), faithful @ A.T)
    mu = np.array([[2.0, 55.0], [4.3, 80.0]])
    alpha = 1e-3
    step_y = (mu @ A.T).ravel() + alpha * obj_y.gradient((mu @ A.T).ravel())   # eta = the means
    step_x = mu.ravel() + alpha / c * obj_x.gradient(mu.ravel())
    np.testing.assert_allclose(step_y.reshape(2, 2), step_x.reshape(2, 2) @ A.T, rtol=1e-9, atol=1e-9)
    same_alpha = mu.ravel() + alpha * obj_x.gradient(mu.ravel())
    assert np.max(np.abs(step_y.reshape(2, 2) - same_alpha.reshape(2, 2) @ A.T)) > 1e-3


# ---------------------------------------------------------------------------- honest pass counts
def test_every_method_pays_one_pass_for_its_start_and_2P_per_finite_difference_hessian(faithful):
    model = emlib.GaussianMixture(2, "full", reg_covar=0.0)
    obj = MixtureObjective(model, faithful)
    eta0 = obj.to_vector(model.init_params(faithful, np.random.default_rng(1)))
    obj.n_passes = 0
    gradient_ascent(obj, eta0, step=1e-4, tol=0, max_iter=5)
    assert obj.n_passes == 1 + 5
    obj.n_passes = 0
    newton_ascent(obj, eta0, safeguarded=False, tol=0, max_iter=1)
    assert obj.n_passes == 1 + 2 * obj.size + 1   # start, Hessian, the new point


def test_chaotic_onset_of_the_fixed_step_lies_in_the_asserted_bracket(faithful):
    """The first decrease with step 1e-3 moves with rounding errors; the chapter asserts only the
    range (100, 400). Perturbing the start by one part in 1e15 imitates other machines."""
    model = emlib.GaussianMixture(2, "full", reg_covar=0.0)
    obj = MixtureObjective(model, faithful)
    eta0 = obj.to_vector(model.init_params(faithful, np.random.default_rng(1)))
    rng = np.random.default_rng(11)
    onsets = []
    for _ in range(4):
        ll = []
        eta = eta0 * (1 + 1e-15 * rng.standard_normal(eta0.size))
        gradient_ascent(obj, eta, step=1e-3, tol=0, max_iter=400, callback=lambda t, p, v: ll.append(v))
        drops = np.flatnonzero(-np.diff(ll) > 1e-9 * np.abs(ll).max())
        onsets.append(drops[0] + 2)
    assert all(100 < t < 400 for t in onsets)


# ---------------------------------------------------------------------------- the Poisson mixture
@pytest.fixture(scope="module")
def hasselblad():
    X = emlib.datasets.hasselblad_deaths()
    model = emlib.PoissonMixture(2)
    reference = emlib.squarem(model, X, START_H, tol=0, max_iter=60)
    return X, model, reference


@pytest.mark.parametrize("K", [2, 3])
def test_unconstrained_gradient_and_hessian_match_central_differences(hasselblad, K):
    X = hasselblad[0]
    model = emlib.PoissonMixture(K)
    params = emlib.PoissonMixtureParams(np.arange(1, K + 1) / np.arange(1, K + 1).sum(), np.linspace(1, 3.5, K))
    eta = model.to_unconstrained(params)
    value, grad, hess = model.log_likelihood_derivatives(X, eta)
    assert value == pytest.approx(model.log_likelihood(X, params), rel=1e-13)
    h = 1e-5
    f = lambda e: model.log_likelihood(X, model.from_unconstrained(e))
    g = lambda e: model.log_likelihood_derivatives(X, e)[1]
    E = np.eye(eta.size)
    fd_grad = np.array([(f(eta + h * e) - f(eta - h * e)) / (2 * h) for e in E])
    fd_hess = np.column_stack([(g(eta + h * e) - g(eta - h * e)) / (2 * h) for e in E])
    np.testing.assert_allclose(grad, fd_grad, rtol=0, atol=1e-8 * np.abs(grad).max() + 1e-6)
    np.testing.assert_allclose(hess, fd_hess, rtol=0, atol=1e-8 * np.abs(hess).max())
    complete, missing = model.unconstrained_information(X, eta)
    np.testing.assert_allclose(hess, missing - complete, rtol=1e-12, atol=1e-9)
    assert np.linalg.eigvalsh(missing).min() > -1e-9   # a covariance: positive semidefinite


def test_two_component_formulas_of_the_chapter(hasselblad):
    """Equations em_vs_gradient-poisson-grad and -hess for K = 2, written out as in the text."""
    X, model, _ = hasselblad
    params = emlib.PoissonMixtureParams([0.45, 0.55], [1.3, 2.9])
    eta = model.to_unconstrained(params)
    np.testing.assert_allclose(eta, [np.log(0.45 / 0.55), np.log(1.3), np.log(2.9)], rtol=1e-14)
    _, grad, hess = model.log_likelihood_derivatives(X, eta)
    r = model.posterior(X, params)
    N1, N2 = r.sum(axis=0)
    S1, S2 = X @ r
    p, (l1, l2) = 0.45, params.rates
    np.testing.assert_allclose(grad, [N1 - X.size * p, S1 - N1 * l1, S2 - N2 * l2], rtol=1e-10, atol=1e-9)
    u = np.column_stack([np.ones(X.size), X - l1, l2 - X])
    I_m = (u * (r[:, 0] * r[:, 1])[:, None]).T @ u
    I_c = np.diag([X.size * p * (1 - p), N1 * l1, N2 * l2])
    np.testing.assert_allclose(hess, I_m - I_c, rtol=1e-10, atol=1e-8)


def test_a_gradient_costs_one_e_step(hasselblad):
    """The chapter's value_and_gradient: l and its gradient from the statistics of e_step."""
    X, model, _ = hasselblad
    eta = model.to_unconstrained(emlib.PoissonMixtureParams([0.2, 0.8], [0.9, 2.4]))
    params = model.from_unconstrained(eta)
    stats, ll = model.e_step(model.check_data(X), params)
    grad = np.concatenate([[stats.counts[0] - X.size * params.weights[0]],
                           stats.sum_x - stats.counts * params.rates])
    value, expected, _ = model.log_likelihood_derivatives(X, eta)
    assert ll == pytest.approx(value, rel=1e-13)
    np.testing.assert_allclose(grad, expected, rtol=1e-12, atol=1e-9)


def test_unconstrained_coordinates_round_trip_and_refuse_bad_input(hasselblad):
    model = emlib.PoissonMixture(3)
    params = emlib.PoissonMixtureParams([0.2, 0.5, 0.3], [0.7, 2.0, 5.5])
    back = model.from_unconstrained(model.to_unconstrained(params))
    np.testing.assert_allclose(back.weights, params.weights, rtol=1e-14)
    np.testing.assert_allclose(back.rates, params.rates, rtol=1e-14)
    with pytest.raises(ValueError, match="weights must be positive to have logits"):
        model.to_unconstrained(emlib.PoissonMixtureParams([0.0, 0.5, 0.5], [1.0, 2.0, 3.0]))
    with pytest.raises(ValueError, match=r"eta must have shape \(5,\)"):
        model.from_unconstrained(np.zeros(6))
    with pytest.raises(ValueError, match="NaN or infinite"):
        model.from_unconstrained([0.0, 0.0, np.nan, 0.0, 0.0])
    with pytest.raises(ValueError, match="overflows or is 0"):
        model.from_unconstrained([0.0, 0.0, 800.0, 0.0, 0.0])


def test_hessian_is_indefinite_at_the_start_and_negative_definite_at_the_maximum(hasselblad):
    X, model, reference = hasselblad
    start_hess = model.log_likelihood_derivatives(X, model.to_unconstrained(START_H))[2]
    best_hess = model.log_likelihood_derivatives(X, model.to_unconstrained(reference.params))[2]
    assert np.linalg.eigvalsh(start_hess).max() > 0
    assert np.linalg.eigvalsh(best_hess).max() < 0


def test_race_on_hasselblad(hasselblad):
    """Passes to bring l within 1e-7 of l*: Newton < L-BFGS < SQUAREM < EM, and both gradient
    methods end at the maximum EM converges to."""
    X, model, reference = hasselblad
    ll_star = reference.log_likelihood[-1]

    def passes(values):
        return reporting.first_above(1e-7 - (ll_star - np.asarray(values)), 0, error=2e-12) + 1

    runs = {}
    for method in ("L-BFGS-B", "trust-exact"):
        values, cache = [], {}

        def evaluate(e):
            key = tuple(e)
            if key not in cache:
                cache[key] = model.log_likelihood_derivatives(X, e)
                values.append(cache[key][0])
            return cache[key]

        extra = {"hess": lambda e: -evaluate(e)[2]} if method == "trust-exact" else {}
        options = {"gtol": 1e-10, "maxiter": 40} if method == "trust-exact" else {"ftol": 0, "gtol": 0, "maxiter": 40}
        res = optimize.minimize(lambda e: -evaluate(e)[0], model.to_unconstrained(START_H),
                                jac=lambda e: -evaluate(e)[1], method=method, options=options, **extra)
        np.testing.assert_allclose(model.from_unconstrained(res.x).rates, reference.params.rates, atol=1e-5)
        runs[method] = passes(values)
    em = emlib.em(model, X, START_H, tol=0, max_iter=2500)
    sq = emlib.squarem(model, X, START_H, tol=0, max_iter=40)
    em_passes = passes(em.log_likelihood)
    sq_passes = int(sq.em_evaluations[passes(sq.log_likelihood) - 1])
    assert runs["trust-exact"] < runs["L-BFGS-B"] < sq_passes < em_passes
    assert runs["L-BFGS-B"] < 40 and em_passes > 1000
