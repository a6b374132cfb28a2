"""Tests of the acceleration machinery: flattening parameters, SQUAREM, Aitken's method and the EM-map Jacobian.

Two kinds of models: a stub whose EM map is exactly linear, M(theta) = theta* + A (theta - theta*)
(so every formula of the chapter can be checked exactly), and the real models on real data
(Hasselblad's deaths for the Poisson mixture, Old Faithful for the Gaussian mixture).
"""
from dataclasses import dataclass

import numpy as np
import pytest

import emlib
from emlib.params import flatten_params, unflatten_params
from emlib.variants.aitken import aitken_step
from emlib.variants.squarem import squarem_extrapolate, squarem_step_length

START = emlib.PoissonMixtureParams([0.3, 0.7], [1.0, 2.5])  # the chapter's starting point


def chart(params):
    """(p, lambda_1, lambda_2): coordinates in which the weights sum to one by construction."""
    return np.array([params.weights[0], *params.rates])


def unchart(u):
    return emlib.PoissonMixtureParams([u[0], 1.0 - u[0]], u[1:])


# ---------------------------------------------------------------- a stub model with a linear EM map
@dataclass(frozen=True)
class LinearParams:
    theta: np.ndarray

    def __post_init__(self):
        theta = np.asarray(self.theta, dtype=float)
        if np.any(theta < -50):  # a feasible set, so that extrapolation can leave it
            raise ValueError("theta must be >= -50")
        object.__setattr__(self, "theta", theta)


class LinearModel:
    """EM map theta -> theta* + A (theta - theta*); log-likelihood -||theta - theta*||^2 / 2.

    For symmetric A with eigenvalues in [0, 1) the map never lowers this log-likelihood, like EM.
    """

    def __init__(self, A, target):
        self.A, self.target, self.calls = np.atleast_2d(A), np.asarray(target, dtype=float), 0

    def check_data(self, X):
        return X

    def check_params(self, params, X=None):
        if not isinstance(params, LinearParams):
            raise ValueError("params must be LinearParams")
        return params

    def e_step(self, X, params):
        self.calls += 1
        d = params.theta - self.target
        return params.theta, -0.5 * float(d @ d)

    def m_step(self, stats):
        return LinearParams(self.target + self.A @ (stats - self.target))


class CliffModel(LinearModel):
    """The linear EM map, with log-likelihood -inf where |theta| < 0.1 (points of zero likelihood that
    are still valid parameter values). From theta_0 = 5 the EM steps never go there, but the first
    extrapolated point of both methods is the fixed point 0 (exact for a linear map)."""

    def e_step(self, X, params):
        stats, loglik = super().e_step(X, params)
        return stats, (-np.inf if np.any(np.abs(params.theta) < 0.1) else loglik)


@pytest.mark.parametrize("driver", [emlib.squarem, emlib.aitken_em])
def test_a_candidate_of_zero_likelihood_is_rejected(driver):
    """Without the safeguard a candidate with a non-finite log-likelihood still stops the run with
    the extrapolation's own error (it must not be taken); with it, the cycle falls back to theta_2."""
    model = CliffModel([[0.9]], [0.0])
    with pytest.raises(ValueError, match=r"left the parameter space in cycle 1: the log-likelihood there is -inf"):
        driver(model, None, LinearParams([5.0]), max_iter=3, safeguard=False)
    safe = driver(model, None, LinearParams([5.0]), max_iter=1, tol=0)
    assert safe.n_rejected >= 1 and np.isfinite(safe.log_likelihood).all()
    assert abs(safe.params.theta[0]) >= 0.1


# ---------------------------------------------------------------- flatten / unflatten
def test_flatten_round_trip_poisson_and_gaussian():
    p = emlib.PoissonMixtureParams([0.25, 0.75], [1.5, 3.0])
    np.testing.assert_array_equal(flatten_params(p), [0.25, 0.75, 1.5, 3.0])
    back = unflatten_params(p, flatten_params(p))
    assert isinstance(back, emlib.PoissonMixtureParams)
    np.testing.assert_array_equal(back.rates, p.rates)
    for cov in (np.array([[[2.0, 0.3], [0.3, 1.0]], [[1.0, 0.0], [0.0, 3.0]]]), np.array([[2.0, 1.0], [1.0, 3.0]])):
        g = emlib.GaussianMixtureParams([0.4, 0.6], [[0.0, 1.0], [2.0, 3.0]], cov)
        vec = flatten_params(g)
        assert vec.shape == (2 + 4 + cov.size,)
        back = unflatten_params(g, vec)
        np.testing.assert_array_equal(back.covariances, g.covariances)
        np.testing.assert_array_equal(back.means, g.means)


def test_unflatten_refuses_wrong_length_infeasible_points_and_non_dataclasses():
    p = emlib.PoissonMixtureParams([0.25, 0.75], [1.5, 3.0])
    with pytest.raises(ValueError, match=r"vector must have shape \(4,\)"):
        unflatten_params(p, np.ones(5))
    with pytest.raises(ValueError, match="rates must be positive"):
        unflatten_params(p, [0.25, 0.75, -1.0, 3.0])
    with pytest.raises(ValueError, match="weights must be non-negative"):
        unflatten_params(p, [1.25, -0.25, 1.0, 3.0])
    with pytest.raises(ValueError, match="parameters dataclass instance"):
        flatten_params({"weights": [1.0]})


# ---------------------------------------------------------------- the formulas of the chapter, exactly
def test_step_length_is_at_most_minus_one():
    assert squarem_step_length([1.0, 0.0], [0.0, 0.0]) == -1.0           # v = 0: plain EM
    assert squarem_step_length([1.0, 0.0], [10.0, 0.0]) == -1.0          # -0.1 clipped to -1
    assert squarem_step_length([3.0, 4.0], [0.5, 0.0]) == pytest.approx(-10.0)


def test_alpha_minus_one_is_the_em_double_step():
    rng = np.random.default_rng(0)
    t0, t1, t2 = rng.standard_normal((3, 5))
    np.testing.assert_allclose(squarem_extrapolate(t0, t1, t2, -1.0), t2, atol=1e-15)


def test_squared_error_polynomial():
    """Proposition slow_convergence-prop-squared: theta' - theta* = (I - alpha (J - I))^2 (theta_0 - theta*)."""
    rng = np.random.default_rng(1)
    J = rng.standard_normal((4, 4)) * 0.3
    target, t0 = rng.standard_normal((2, 4))
    t1 = target + J @ (t0 - target)
    t2 = target + J @ (t1 - target)
    for alpha in (-1.0, -2.5, -7.0):
        B = np.eye(4) - alpha * (J - np.eye(4))
        np.testing.assert_allclose(squarem_extrapolate(t0, t1, t2, alpha) - target, B @ B @ (t0 - target),
                                   rtol=1e-12, atol=1e-12)


def test_squarem_is_exact_for_a_scalar_linear_map():
    """In one dimension the SqS3 step length is 1/(lambda - 1), which sends theta' to theta*."""
    model = LinearModel([[0.99]], [2.0])
    result = emlib.squarem(model, None, LinearParams([5.0]), tol=0, max_iter=1)
    # v = theta_2 - 2 theta_1 + theta_0 ~ 3e-4 is a difference of numbers ~5: it carries a
    # relative rounding error ~1e-12, and so does the jump; 1e-10 allows for that.
    assert result.params.theta[0] == pytest.approx(2.0, abs=1e-10)
    # plain EM after the same 4 E-steps is still 3 * 0.99^3 away
    assert emlib.em(model, None, LinearParams([5.0]), tol=0, max_iter=3).params.theta[0] == pytest.approx(
        2.0 + 3 * 0.99 ** 3)


def test_aitken_limit_of_a_linear_sequence_is_exact():
    limit, c, rho = 1.7, -0.4, 0.93
    x = limit + c * rho ** np.arange(3)
    assert emlib.aitken_limit(*x) == pytest.approx(limit, abs=1e-13)
    # elementwise on arrays, each coordinate with its own rate
    rates = np.array([0.5, 0.9, 0.999])
    xs = [np.array([1.0, 2.0, 3.0]) + np.array([1.0, -2.0, 0.5]) * rates ** t for t in range(3)]
    np.testing.assert_allclose(emlib.aitken_limit(*xs), [1.0, 2.0, 3.0], atol=1e-10)
    assert emlib.aitken_limit(1.0, 2.0, 3.0) == 3.0  # arithmetic: no limit, returns x_2
    assert emlib.aitken_limit(4.0, 4.0, 4.0) == 4.0


def test_aitken_step_with_two_rates_multiplies_the_second_direction():
    """Exercise slow_convergence-ex-two: with rho = gamma_1 exact, the b part is multiplied by
    gamma_2^2 + gamma_1 / (1 - gamma_1) (gamma_2^2 - gamma_2)."""
    g1, g2 = 0.99, 0.7
    a, b = np.array([1.0, 0.0, 0.0]), np.array([0.0, 1e-9, 0.0])  # b tiny: the rate estimate is g1
    seq = [g1 ** t * a + g2 ** t * b for t in range(3)]
    jump = aitken_step(*seq)
    factor = g2 ** 2 + g1 / (1 - g1) * (g2 ** 2 - g2)
    assert jump[0] == pytest.approx(0.0, abs=1e-12)
    assert jump[1] == pytest.approx(factor * 1e-9, rel=1e-6)


def test_aitken_step_for_vectors_with_one_rate_is_exact():
    target, u, rho = np.array([0.3, 1.2, 2.6]), np.array([0.05, -0.2, 0.1]), 0.9957
    seq = [target + rho ** t * u for t in range(3)]
    np.testing.assert_allclose(aitken_step(*seq), target, atol=1e-10)
    assert aitken_step(seq[0], seq[0], seq[1]) is None           # no first step
    assert aitken_step(seq[2], seq[1], seq[0] + 5 * u) is None   # steps grow: no limit


# ---------------------------------------------------------------- the driver's bookkeeping
def test_evaluation_count_equals_e_step_calls_and_result_is_an_emresult():
    model = LinearModel(np.diag([0.95, 0.5]), [1.0, -1.0])
    seen = []
    result = emlib.squarem(model, None, LinearParams([4.0, 3.0]), tol=0, max_iter=6,
                           callback=lambda t, p, ll: seen.append(t))
    assert isinstance(result, emlib.EMResult) and isinstance(result, emlib.AcceleratedEMResult)
    assert result.n_iter == 6 and not result.converged and seen == [1, 2, 3, 4, 5, 6]
    assert result.log_likelihood.shape == result.em_evaluations.shape == (7,)
    assert result.n_em_evaluations == model.calls
    assert result.em_evaluations[0] == 1
    # three E-steps per cycle, plus one per rejected candidate at most
    assert np.all(np.diff(result.em_evaluations) >= 3)
    assert result.n_em_evaluations <= 1 + 3 * 6 + result.n_rejected


def test_unsafeguarded_squarem_stops_when_it_leaves_the_parameter_space():
    model = LinearModel([[0.999]], [-49.0])
    # from theta_0 = 10 the exact jump lands on -49, inside; shift the target below the bound
    model.target = np.array([-60.0])
    with pytest.raises(ValueError, match="SQUAREM without its safeguard left the parameter space in cycle 1"):
        emlib.squarem(model, None, LinearParams([10.0]), safeguard=False, max_iter=5)
    safe = emlib.squarem(model, None, LinearParams([10.0]), max_iter=5, tol=0)
    assert safe.n_rejected > 0 and np.all(np.diff(safe.log_likelihood) >= 0)


def test_bad_arguments():
    model = emlib.PoissonMixture(2)
    X = emlib.datasets.hasselblad_deaths()
    with pytest.raises(ValueError, match="max_iter must be a non-negative integer"):
        emlib.squarem(model, X, START, max_iter=-1)
    with pytest.raises(ValueError, match="tol must be a non-negative number"):
        emlib.aitken_em(model, X, START, tol=np.nan)
    with pytest.raises(ValueError, match="must be PoissonMixtureParams"):
        emlib.squarem(model, X, emlib.GaussianMixtureParams([1.0], [[0.0]], [[[1.0]]]))
    with pytest.raises(ValueError, match="non-negative counts"):
        emlib.squarem(model, -X, START)


# ---------------------------------------------------------------- Hasselblad's data
@pytest.fixture(scope="module")
def hasselblad():
    X = emlib.datasets.hasselblad_deaths()
    model = emlib.PoissonMixture(2)
    path = [chart(START)]
    em_long = emlib.em(model, X, START, tol=0, max_iter=5000, callback=lambda t, p, ll: path.append(chart(p)))
    sq_long = emlib.squarem(model, X, START, tol=0, max_iter=60)
    return X, model, em_long, np.array(path), sq_long


def test_squarem_reaches_the_em_optimum(hasselblad):
    X, model, em_long, _, sq_long = hasselblad
    # After 5000 iterations EM is within 0.3 * 0.9957^5000 ~ 1e-10 of theta* (rate from the
    # Jacobian test below); 60 SQUAREM cycles are a fixed point to ~1e-14. So both are far closer
    # than 1e-6 to theta*, and l agrees to ~1e-15 relative; 1e-6 and 1e-9 leave wide margins,
    # as needed across BLAS and platforms.
    np.testing.assert_allclose(chart(sq_long.params), chart(em_long.params), atol=1e-6)
    assert sq_long.log_likelihood[-1] == pytest.approx(em_long.log_likelihood[-1], rel=1e-9)
    residual = chart(emlib.em_map(model, X, sq_long.params)) - chart(sq_long.params)
    assert np.max(np.abs(residual)) < 1e-10


def test_squarem_needs_far_fewer_evaluations(hasselblad):
    """Evaluations of the EM map until l* - l(theta) <= 1e-8."""
    X, model, em_long, _, sq_long = hasselblad
    best = sq_long.log_likelihood[-1]
    em_needed = np.flatnonzero(best - em_long.log_likelihood <= 1e-8)[0] + 1  # iteration t costs t + 1 E-steps
    sq = emlib.squarem(model, X, START, tol=1e-13)
    sq_needed = sq.em_evaluations[np.flatnonzero(best - sq.log_likelihood <= 1e-8)[0]]
    assert sq_needed < em_needed / 2
    assert sq_needed < em_needed / 10  # what is actually observed is closer to 1/20


def test_safeguarded_traces_never_decrease(hasselblad):
    X, model, *_ = hasselblad
    starts = [START, emlib.PoissonMixtureParams([0.3, 0.7], [2.0, 2.5]),
              emlib.PoissonMixtureParams([0.5, 0.5], [2.0, 2.5]), emlib.PoissonMixtureParams([0.9, 0.1], [0.5, 8.0])]
    for start in starts:
        for driver in (emlib.squarem, emlib.aitken_em):
            ll = driver(model, X, start, tol=1e-13, max_iter=300).log_likelihood
            # exact arithmetic: diff >= 0 (theorem slow_convergence-thm-monotone); l ~ -1990 is a
            # sum of 10 weighted log terms, rounded to ~1e-13, so -1e-11 is rounding, not a drop.
            assert np.all(np.diff(ll) >= -1e-11), (driver.__name__, start)


def test_without_safeguard_squarem_lowers_the_likelihood_or_leaves_the_space(hasselblad):
    X, model, *_ = hasselblad
    bare = emlib.squarem(model, X, START, tol=1e-12, safeguard=False)
    assert np.min(np.diff(bare.log_likelihood)) < -1e-5  # a real drop, far above rounding
    bad_start = emlib.PoissonMixtureParams([0.3, 0.7], [2.0, 2.5])
    with pytest.raises(ValueError, match="left the parameter space in cycle 2: weights must be non-negative"):
        emlib.squarem(model, X, bad_start, tol=1e-12, safeguard=False)


def test_aitken_em_reaches_the_optimum_with_fewer_evaluations(hasselblad):
    X, model, em_long, _, sq_long = hasselblad
    best = sq_long.log_likelihood[-1]
    res = emlib.aitken_em(model, X, START, tol=0, max_iter=150)
    np.testing.assert_allclose(chart(res.params), chart(sq_long.params), atol=1e-6)
    needed = res.em_evaluations[np.flatnonzero(best - res.log_likelihood <= 1e-8)[0]]
    em_needed = np.flatnonzero(best - em_long.log_likelihood <= 1e-8)[0] + 1
    assert needed < em_needed / 5


def test_largest_jacobian_eigenvalue_is_the_observed_rate(hasselblad):
    """Theorem slow_convergence-thm-rate: ||theta_{t+1} - theta*|| / ||theta_t - theta*|| -> rho(J)."""
    X, model, _, path, sq_long = hasselblad
    J = emlib.em_map_jacobian(model, X, sq_long.params, to_vector=chart, from_vector=unchart)
    eig = np.sort(np.abs(np.linalg.eigvals(J)))[::-1]
    err = np.linalg.norm(path - chart(sq_long.params), axis=1)
    ratios = err[1001:1501] / err[1000:1500]
    # e_{t+1} = J e_t + O(||e_t||^2): the ratio differs from rho(J) by O(||e_t||), here
    # ||e_t|| < 3e-3 for t >= 1000, and the observed difference is below 6e-6; 2e-5 is the bound.
    assert np.max(np.abs(ratios - eig[0])) < 2e-5
    # Lemma slow_convergence-lem-mean: M maps into a 2-D surface, so one eigenvalue is 0, and
    # the gradient of g = p l1 + (1 - p) l2 is a left eigenvector for it (exercise slow_convergence-ex-zero).
    assert eig[2] < 1e-6
    p, l1, l2 = chart(sq_long.params)
    assert np.max(np.abs(np.array([l1 - l2, p, 1 - p]) @ J)) < 1e-6


def test_remaining_gap_is_predicted_by_the_last_increment(hasselblad):
    """Equation slow_convergence-gap: l* - l_T ~ (l_T - l_{T-1}) gamma^2 / (1 - gamma^2) in the linear regime."""
    X, model, em_long, _, sq_long = hasselblad
    J = emlib.em_map_jacobian(model, X, sq_long.params, to_vector=chart, from_vector=unchart)
    gamma = np.max(np.abs(np.linalg.eigvals(J)))
    ll, best = em_long.log_likelihood, sq_long.log_likelihood[-1]
    for T in (800, 1200, 1458):
        ratio = (best - ll[T]) / (ll[T] - ll[T - 1])
        # the geometric model neglects terms of relative size ~||e_T|| (< 1e-2 here); 1% covers it
        assert ratio == pytest.approx(gamma ** 2 / (1 - gamma ** 2), rel=1e-2)
        # and Aitken's estimate of l* from three values is far closer than l_T itself
        assert abs(emlib.aitken_limit(*ll[T - 2:T + 1]) - best) < 0.1 * (best - ll[T])


def test_jacobian_is_the_fraction_of_missing_information(hasselblad):
    """J = I - I_c^{-1} I_o at theta* (Dempster, Laird and Rubin 1977), in (p, lambda_1, lambda_2)."""
    X, model, _, _, sq_long = hasselblad
    theta = sq_long.params
    J = emlib.em_map_jacobian(model, X, theta, to_vector=chart, from_vector=unchart)
    values, mult = np.unique(X, return_counts=True)
    x = model.check_data(X)
    N = X.size

    def score(u):  # Fisher's identity: the gradient of l is the gradient of Q at theta_t
        stats, _ = model.e_step(x, unchart(u))
        p, l1, l2 = u
        return np.array([stats.counts[0] / p - stats.counts[1] / (1 - p),
                         stats.sum_x[0] / l1 - stats.counts[0],
                         stats.sum_x[1] / l2 - stats.counts[1]])

    u = chart(theta)
    h = 1e-5
    observed = -np.column_stack([(score(u + h * e) - score(u - h * e)) / (2 * h) for e in np.eye(3)])
    p, l1, l2 = u
    complete = np.diag([N / (p * (1 - p)), N * p / l1, N * (1 - p) / l2])  # -Hessian of Q at theta*
    np.testing.assert_allclose(J, np.eye(3) - np.linalg.solve(complete, observed), atol=1e-6)


def test_default_chart_jacobian_of_a_linear_map_is_its_matrix():
    A = np.array([[0.6, 0.1], [0.1, 0.3]])
    model = LinearModel(A, [1.0, 2.0])
    J = emlib.em_map_jacobian(model, None, LinearParams([1.5, 2.5]))
    np.testing.assert_allclose(J, A, atol=1e-9)
    with pytest.raises(ValueError, match="give both to_vector and from_vector"):
        emlib.em_map_jacobian(model, None, LinearParams([1.5, 2.5]), to_vector=flatten_params)
    with pytest.raises(ValueError, match="step must be a positive number"):
        emlib.em_map_jacobian(model, None, LinearParams([1.5, 2.5]), step=0)


# ---------------------------------------------------------------- the Gaussian mixture
def test_squarem_and_aitken_on_old_faithful_reach_the_em_optimum(faithful):
    model = emlib.GaussianMixture(2)
    init = model.init_params(faithful, np.random.default_rng(0))
    # EM's rate is about 0.25 on these data: after 40 iterations its means are fixed to ~1e-14.
    ref = emlib.em(model, faithful, init, tol=0, max_iter=40)
    for driver in (emlib.squarem, emlib.aitken_em):
        fit = driver(model, faithful, init, tol=1e-14, max_iter=200)
        assert fit.converged
        np.testing.assert_allclose(fit.params.means, ref.params.means, atol=1e-6)
        np.testing.assert_allclose(fit.params.covariances, ref.params.covariances, atol=1e-5)
        np.testing.assert_allclose(fit.params.weights, ref.params.weights, atol=1e-7)
        assert fit.log_likelihood[-1] == pytest.approx(ref.log_likelihood[-1], rel=1e-9)
        assert np.all(np.diff(fit.log_likelihood) >= -1e-9)
