"""emlib.standard_errors against information matrices known in closed form.

- One Gaussian (a one-component mixture, nothing missing): the observed information of (mu,
  sigma^2) is known exactly at every point, the missing information is 0, and EM's map is
  constant (J = 0), so every route gives the same matrix.
- The genetic linkage model of Dempster, Laird and Rubin (1977): I_obs, I_com and I_mis in
  closed form (``GeneticLinkage.observed_information`` etc., Louis 1982), and the SEM variance
  1 / (I_com (1 - J)) with J = I_mis / I_com.
- The Poisson mixture in its unconstrained coordinates: the analytic Hessian, complete and missing
  information of ``PoissonMixture.log_likelihood_derivatives`` / ``unconstrained_information``.
"""
from dataclasses import dataclass

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import emlib
from emlib import standard_errors as se

# Second differences with relative step 1e-4 err by O(h^2 f'''') (truncation) and O(eps |f| / h^2)
# (rounding): about 1e-7 relative here. First differences (scores) with 1e-5 err by ~1e-10. The
# tolerances below are ten times what is observed.
RTOL_SECOND = 1e-6


# ---------------------------------------------------------------------------- one Gaussian
def gaussian_chart():
    def to_vector(p):
        return np.array([p.means[0, 0], p.covariances[0, 0]])

    def from_vector(u):
        return emlib.GaussianMixtureParams([1.0], [[u[0]]], [[u[1]]])

    return to_vector, from_vector


@pytest.fixture(scope="module")
def gaussian():
    x = np.random.default_rng(0).normal(3.0, 2.0, size=(50, 1))
    return emlib.GaussianMixture(1, "diag", reg_covar=0.0), x


def gaussian_observed_information(x, mu, var):
    """-Hessian of sum_n log N(x_n | mu, var) in (mu, var), in closed form."""
    r = x[:, 0] - mu
    n = r.size
    return -np.array([[-n / var, -r.sum() / var ** 2],
                      [-r.sum() / var ** 2, n / (2 * var ** 2) - (r @ r) / var ** 3]])


@pytest.mark.parametrize("at_mle", [True, False])
def test_observed_information_of_one_gaussian_is_the_closed_form(gaussian, at_mle):
    model, x = gaussian
    mu, var = (x.mean(), x.var()) if at_mle else (2.0, 5.0)
    to_vector, from_vector = gaussian_chart()
    params = from_vector([mu, var])
    numeric = se.observed_information(model, x, params, to_vector=to_vector, from_vector=from_vector)
    exact = gaussian_observed_information(x, mu, var)
    np.testing.assert_allclose(numeric, exact, rtol=RTOL_SECOND, atol=RTOL_SECOND * np.abs(exact).max())
    if at_mle:  # the textbook form: diag(N / sigma^2, N / (2 sigma^4))
        np.testing.assert_allclose(exact, np.diag([x.size / var, x.size / (2 * var ** 2)]), atol=1e-9)


def test_one_gaussian_has_no_missing_information_and_every_route_agrees(gaussian):
    model, x = gaussian
    to_vector, from_vector = gaussian_chart()
    params = from_vector([x.mean(), x.var()])
    chart = dict(to_vector=to_vector, from_vector=from_vector)
    louis = se.louis_information(model, x, params, **chart)
    np.testing.assert_allclose(louis.missing, 0.0, atol=1e-12)  # one latent value: nothing varies
    exact = gaussian_observed_information(x, x.mean(), x.var())
    np.testing.assert_allclose(louis.observed, exact, rtol=RTOL_SECOND, atol=RTOL_SECOND * np.abs(exact).max())
    V = se.sem_covariance(model, x, params, **chart)  # J = 0: V = I_c^{-1}
    exact_V = np.diag([x.var() / x.size, 2 * x.var() ** 2 / x.size])
    np.testing.assert_allclose(V, exact_V, rtol=0, atol=1e-6 * exact_V.max())
    np.testing.assert_allclose(se.standard_errors(V), np.sqrt(np.diag(V)))


# ---------------------------------------------------------------------------- genetic linkage
@pytest.fixture(scope="module")
def linkage():
    model = emlib.GeneticLinkage()
    X = emlib.datasets.genetic_linkage()
    return model, X, model.mle(X)


def test_linkage_observed_information_by_second_differences(linkage):
    model, X, mle = linkage
    for pi in (mle.pi, 0.3, 0.8):  # the identity holds at every pi, not only at the maximum
        params = emlib.GeneticLinkageParams(pi)
        numeric = se.observed_information(model, X, params)
        assert numeric.shape == (1, 1)
        assert numeric[0, 0] == pytest.approx(model.observed_information(X, params), rel=RTOL_SECOND)


def test_linkage_louis_decomposition_matches_the_closed_forms(linkage):
    """I_com and I_mis of DLR's example (Louis 1982), and I_obs = I_com - I_mis."""
    model, X, mle = linkage
    for pi in (mle.pi, 0.3, 0.8):
        params = emlib.GeneticLinkageParams(pi)
        louis = se.louis_information(model, X, params)
        assert louis.complete[0, 0] == pytest.approx(model.complete_information(X, params), rel=RTOL_SECOND)
        assert louis.missing[0, 0] == pytest.approx(model.missing_information(X, params), rel=1e-8)
        assert louis.observed[0, 0] == pytest.approx(model.observed_information(X, params), rel=RTOL_SECOND)


def test_linkage_sem_variance_is_the_inverse_observed_information(linkage):
    """V = 1 / (I_com (1 - J)), J = I_mis / I_com the rate of EM (DLR), equals 1 / I_obs."""
    model, X, mle = linkage
    V = se.sem_covariance(model, X, mle)
    assert V[0, 0] == pytest.approx(1.0 / model.observed_information(X, mle), rel=1e-6)
    rate = model.missing_information(X, mle) / model.complete_information(X, mle)
    J = emlib.em_map_jacobian(model, X, mle)
    assert J[0, 0] == pytest.approx(rate, abs=1e-9)
    # with the closed-form pieces passed in, the formula itself is exact to rounding
    V_exact = se.sem_covariance(model, X, mle, complete=[[model.complete_information(X, mle)]], jacobian=[[rate]])
    assert V_exact[0, 0] == pytest.approx(1.0 / model.observed_information(X, mle), rel=1e-12)
    # the standard error DLR's example is known for: about 0.051
    assert se.standard_errors(V)[0] == pytest.approx(0.0515, abs=5e-4)


@settings(max_examples=20, deadline=None, derandomize=True)
@given(counts=st.tuples(st.integers(20, 200), st.integers(3, 60), st.integers(3, 60), st.integers(3, 60)))
def test_linkage_louis_identity_for_other_counts(counts):
    model = emlib.GeneticLinkage()
    X = np.array(counts)
    params = model.mle(X)
    louis = se.louis_information(model, X, params)
    assert louis.missing[0, 0] == pytest.approx(model.missing_information(X, params), rel=1e-7)
    assert louis.observed[0, 0] == pytest.approx(model.observed_information(X, params), rel=1e-5)


# ---------------------------------------------------------------------------- Poisson mixture
@pytest.fixture(scope="module")
def poisson():
    model = emlib.PoissonMixture(3)
    X = np.random.default_rng(4).poisson(np.repeat([0.7, 2.5, 6.0], [80, 120, 60]))
    params = emlib.PoissonMixtureParams([0.25, 0.45, 0.3], [0.9, 2.2, 5.0])
    return model, X, params


def test_poisson_generic_informations_match_the_analytic_ones(poisson):
    """In the unconstrained coordinates, the generic Louis pieces equal the model's closed forms."""
    model, X, params = poisson
    chart = dict(to_vector=model.to_unconstrained, from_vector=model.from_unconstrained)
    eta = model.to_unconstrained(params)
    _, _, hessian = model.log_likelihood_derivatives(X, eta)
    complete, missing = model.unconstrained_information(X, eta)
    louis = se.louis_information(model, X, params, **chart)
    scale = np.abs(hessian).max()
    np.testing.assert_allclose(louis.complete, complete, rtol=0, atol=RTOL_SECOND * np.abs(complete).max())
    np.testing.assert_allclose(louis.missing, missing, rtol=0, atol=1e-8 * np.abs(missing).max())
    np.testing.assert_allclose(louis.observed, -hessian, rtol=0, atol=RTOL_SECOND * scale)
    numeric = se.observed_information(model, X, params, **chart)
    np.testing.assert_allclose(numeric, -hessian, rtol=0, atol=RTOL_SECOND * scale)


def test_complete_data_scores_average_to_the_observed_score(poisson):
    """Fisher's identity, row by row: sum_k q_nk s_nk is the gradient of log p(x_n | theta)."""
    model, X, params = poisson
    chart = dict(to_vector=model.to_unconstrained, from_vector=model.from_unconstrained)
    scores = se.complete_data_scores(model, X, params, **chart)
    q = model.posterior(X, params)
    assert scores.shape == q.shape + (5,)
    _, gradient, _ = model.log_likelihood_derivatives(X, model.to_unconstrained(params))
    np.testing.assert_allclose(np.einsum("nk,nkp->p", q, scores), gradient, rtol=1e-8, atol=1e-7)


# ---------------------------------------------------------------------------- bad input
@dataclass(frozen=True)
class _Scalar:
    value: float


class _NoLatent:
    """A model with a log-likelihood only (no log_joint or posterior)."""

    def check_data(self, X):
        return np.asarray(X, dtype=float)

    def check_params(self, params, X=None):
        return params

    def log_likelihood(self, X, params):
        return float(-0.5 * np.sum((X - params.value) ** 2))


def test_observed_information_needs_only_the_log_likelihood():
    X = np.array([0.5, 1.0, 2.5])
    info = se.observed_information(_NoLatent(), X, _Scalar(1.0))
    np.testing.assert_allclose(info, [[3.0]], rtol=1e-7)  # -d^2/dm^2 of -sum (x - m)^2 / 2 = N


def test_complete_pieces_refuse_a_model_without_a_discrete_latent_variable():
    with pytest.raises(ValueError, match="has no posterior or log_joint"):
        se.louis_information(_NoLatent(), np.array([1.0, 2.0]), _Scalar(1.0))


def test_bad_arguments(linkage):
    model, X, mle = linkage
    with pytest.raises(ValueError, match="give both to_vector and from_vector"):
        se.observed_information(model, X, mle, to_vector=lambda p: np.array([p.pi]))
    with pytest.raises(ValueError, match="step must be a positive number"):
        se.observed_information(model, X, mle, step=0.0)
    with pytest.raises(ValueError, match="not positive definite"):
        se.covariance_from_information([[1.0, 2.0], [2.0, 1.0]])
    with pytest.raises(ValueError, match="not symmetric"):
        se.covariance_from_information([[2.0, 1.0], [0.0, 2.0]])
    with pytest.raises(ValueError, match="square matrix"):
        se.covariance_from_information(np.ones(3))
    with pytest.raises(ValueError, match="finite and non-negative"):
        se.standard_errors([[-1.0, 0.0], [0.0, 1.0]])
    with pytest.raises(ValueError, match=r"must have shape \(1, 1\)"):
        se.sem_covariance(model, X, mle, complete=np.eye(2))
    with pytest.raises(ValueError, match="I - J is singular"):
        se.sem_covariance(model, X, mle, complete=[[1.0]], jacobian=[[1.0]])
