"""The model contract of emlib.interface.Model, checked on every model, as scikit-learn's common
estimator checks do: each test is one promise of the Protocol, parametrized over the models.

- e_step(X, theta) is (expected_stats(X, posterior(X, theta)), log_likelihood(X, theta));
- statistics add over data and scale;
- log-sum-exp of log_joint over the latent variables is the log-likelihood;
- one EM step never lowers the log-likelihood;
- check_data and check_params refuse bad input with a ValueError; init_params needs a Generator.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import pytest
from scipy.special import logsumexp

import emlib
from emlib.interface import Model, Stats


@dataclass
class Case:
    model: Any
    X: Any
    halves: tuple                    # two data sets whose statistics add up to those of X
    bad_data: list                   # inputs check_data must refuse
    other_params: Callable[[], Any]  # parameters of the wrong kind or size for this model
    discrete: bool = True
    independent_rows: bool = True    # the halves are rows of X (the log-likelihoods add too)


def _mixture_case(covariance_type):
    rng = np.random.default_rng(0)
    X = np.concatenate([rng.normal([0, 0], 1.0, (80, 2)), rng.normal([3, 2], 0.7, (80, 2))])
    return Case(emlib.GaussianMixture(2, covariance_type, reg_covar=0.0), X, (X[:70], X[70:]),
                [X[:, 0], np.where(np.arange(X.size).reshape(X.shape) == 5, np.nan, X), [["a", "b"]], X + 0j],
                lambda: emlib.GaussianMixtureParams([1.0], [[0.0, 0.0]], [[1.0, 1.0]]))


def _poisson_case():
    X = emlib.datasets.hasselblad_deaths()
    return Case(emlib.PoissonMixture(2), X, (X[::2], X[1::2]), [X - 0.5, -X, np.full(5, np.inf)],
                lambda: emlib.PoissonMixtureParams([1.0], [2.0]))


def _linkage_case():
    X = emlib.datasets.genetic_linkage()
    return Case(emlib.GeneticLinkage(), X, (np.array([60, 10, 8, 20]), X - np.array([60, 10, 8, 20])),
                [X[:3], -X, X + 0.5, [np.nan, 1, 2, 3]], lambda: emlib.NormalParams([0.0], [[1.0]]),
                independent_rows=False)


def _normal_case():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(60, 3)) @ np.array([[1.0, 0.4, 0.1], [0.0, 1.0, 0.3], [0.0, 0.0, 1.0]])
    X[rng.random(X.shape) < 0.25] = np.nan
    X[np.isnan(X).all(axis=1), 0] = 1.0
    return Case(emlib.NormalWithMissing(), X, (X[:25], X[25:]),
                [np.where(np.isnan(X), np.inf, X), np.full((3, 2), np.nan), X[:, 0]],
                lambda: emlib.NormalParams([0.0, 0.0], np.eye(2)), discrete=False)


CASES = {"gaussian-full": lambda: _mixture_case("full"), "gaussian-diag": lambda: _mixture_case("diag"),
         "poisson": _poisson_case, "linkage": _linkage_case, "normal-missing": _normal_case}


@pytest.fixture(params=sorted(CASES))
def case(request):
    return CASES[request.param]()


def thetas(case, n=4):
    """A few parameter values: random starts and the points after a few EM steps from them."""
    out = []
    for seed in range(n // 2):
        theta = case.model.init_params(case.X, np.random.default_rng(seed))
        out.append(theta)
        out.append(emlib.em(case.model, case.X, theta, max_iter=3, tol=0).params)
    return out


def stats_vector(stats) -> np.ndarray:
    """The statistics as one vector, moments about the origin where the type carries a reference point."""
    if hasattr(stats, "recentred"):
        stats = stats.recentred(np.zeros_like(stats.centre))
    values = [np.ravel(getattr(stats, f.name)) for f in dataclasses.fields(stats) if f.name != "centre"]
    return np.concatenate([np.asarray(v, dtype=float) for v in values])


def assert_same_stats(a, b, rtol=1e-10):
    va, vb = stats_vector(a), stats_vector(b)
    np.testing.assert_allclose(va, vb, rtol=rtol, atol=rtol * np.abs(vb).max())


# ---------------------------------------------------------------- the promises
def test_the_model_satisfies_the_protocol(case):
    assert isinstance(case.model, Model)
    stats, loglik = case.model.e_step(case.model.check_data(case.X), thetas(case, 2)[0])
    assert isinstance(stats, Stats) and isinstance(loglik, float)


def test_e_step_is_expected_stats_of_the_posterior_and_the_log_likelihood(case):
    model, X = case.model, case.model.check_data(case.X)
    for theta in thetas(case):
        stats, loglik = model.e_step(X, theta)
        assert_same_stats(stats, model.expected_stats(X, model.posterior(X, theta)))
        assert loglik == pytest.approx(model.log_likelihood(X, theta), rel=1e-12)


def test_statistics_add_over_data_and_scale(case):
    model = case.model
    theta = thetas(case, 2)[1]
    whole, loglik = model.e_step(model.check_data(case.X), theta)
    parts = [model.e_step(model.check_data(half), theta) for half in case.halves]
    assert_same_stats(parts[0][0] + parts[1][0], whole)
    if case.independent_rows:  # (two count vectors are not one multinomial: their coefficients differ)
        assert parts[0][1] + parts[1][1] == pytest.approx(loglik, rel=1e-12)
    assert_same_stats(2.0 * whole, whole + whole)
    assert_same_stats(whole * 0.5 + 0.5 * whole, whole)


def test_the_log_likelihood_marginalizes_the_log_joint(case):
    """Discrete z: log-sum-exp of log_joint over z. Continuous z (missing values): log p(x_o) =
    log p(x_o, z) - log q(z | x_o) at any completion z, here the posterior mean, where the Gaussian
    posterior density is det(2 pi C_n)^(-1/2) over the missing entries."""
    model, X = case.model, case.model.check_data(case.X)
    for theta in thetas(case):
        if case.discrete:
            total = float(np.sum(logsumexp(model.log_joint(X, theta), axis=-1)))
        else:
            q = model.posterior(X, theta)
            missing = np.isnan(X)
            log_q = np.array([-0.5 * np.linalg.slogdet(2 * np.pi * c[np.ix_(m, m)])[1] if m.any() else 0.0
                              for c, m in zip(q.covariance, missing)])
            total = float(np.sum(model.log_joint(X, theta) - log_q))
        assert total == pytest.approx(model.log_likelihood(X, theta), rel=1e-10)


def test_one_em_step_never_lowers_the_log_likelihood(case):
    model, X = case.model, case.model.check_data(case.X)
    for seed in range(6):
        theta = model.init_params(X, np.random.default_rng(seed))
        for _ in range(3):
            stats, before = model.e_step(X, theta)
            theta = model.m_step(stats)
            after = model.log_likelihood(X, theta)
            assert after >= before - 1e-10 * abs(before)


def test_posterior_rows_are_probabilities(case):
    if not case.discrete:
        pytest.skip("the posterior of missing values is Gaussian (tested in test_normal_missing.py)")
    model, X = case.model, case.model.check_data(case.X)
    q = model.posterior(X, thetas(case, 2)[0])
    assert np.all(q >= 0)
    np.testing.assert_allclose(q.sum(axis=-1), 1.0, rtol=0, atol=1e-12)
    assert q.shape == model.log_joint(X, thetas(case, 2)[0]).shape


def test_check_data_refuses_bad_input(case):
    for bad in case.bad_data:
        with pytest.raises(ValueError):
            case.model.check_data(bad)


def test_check_params_refuses_bad_input(case):
    X = case.model.check_data(case.X)
    for bad in (None, "theta", {"weights": [1.0]}, case.other_params()):
        with pytest.raises(ValueError):
            case.model.check_params(bad, X)


def test_init_params_needs_a_generator_and_gives_accepted_parameters(case):
    X = case.model.check_data(case.X)
    theta = case.model.init_params(X, np.random.default_rng(0))
    assert case.model.check_params(theta, X) is theta
    for bad in (0, None, np.random.RandomState(0)):
        with pytest.raises(ValueError, match="numpy.random.Generator"):
            case.model.init_params(X, bad)


# ---------------------------------------------------------------- the variational model's share of the contract
def test_the_bayesian_mixture_keeps_the_parts_of_the_contract_it_shares():
    """BayesianGaussianMixture has no M-step (CAVI updates a distribution), but its posterior,
    statistics and data checks obey the same promises."""
    rng = np.random.default_rng(2)
    X = np.concatenate([rng.normal(0.0, 1.0, (50, 2)), rng.normal(4.0, 1.0, (50, 2))])
    model = emlib.BayesianGaussianMixture(3)
    q0 = model.init_responsibilities(X, np.random.default_rng(0))
    post = model.update_posterior(model.expected_stats(X, q0), model.prior(X))
    q = model.posterior(X, post)
    np.testing.assert_allclose(q.sum(axis=1), 1.0, rtol=0, atol=1e-12)
    halves = model.expected_stats(X[:30], q[:30]) + model.expected_stats(X[30:], q[30:])
    assert_same_stats(halves, model.expected_stats(X, q))
    for bad in (X[:, 0], np.full((5, 2), np.nan), X + 0j):
        with pytest.raises(ValueError):
            model.check_data(bad)
