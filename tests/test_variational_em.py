"""Variational EM: its ELBO never decreases, stays below the log-likelihood by exactly the KL
divergence to the posterior, reduces to EM when the factorized family contains the posterior,
and refuses bad settings and broken models with clear errors."""
import numpy as np
import pytest

import emlib
from emlib import BinaryFactors, BinaryFactorsParams, variational_em


def problem(M=3, D=5, n=150, seed=0, noise_var=0.5):
    """Data from a binary factor model whose loadings overlap (so the posterior is coupled)."""
    rng = np.random.default_rng(seed)
    truth = BinaryFactorsParams(rng.uniform(0.25, 0.6, M), rng.normal(size=D), rng.normal(size=(M, D)),
                                noise_var)
    model = BinaryFactors(M)
    X, _ = model.sample(truth, n, rng)
    return model, X, model.init_params(X, np.random.default_rng(seed + 1))


def product_q(lam, configurations):
    return np.prod(np.where(configurations[None] == 1, lam[:, None, :], 1 - lam[:, None, :]), axis=2)


@pytest.mark.parametrize("seed, M", [(0, 2), (1, 3), (2, 4), (3, 4)])
def test_the_elbo_never_decreases(seed, M):
    model, X, init = problem(M=M, seed=seed)
    fit = variational_em(model, X, init, max_iter=80, tol=0)
    assert fit.n_iter == 80 and not fit.converged
    assert len(fit.elbo) == 81 and len(fit.n_sweeps) == 81
    assert np.all(np.diff(fit.elbo) >= -1e-9 * np.abs(fit.elbo[1:]))
    assert fit.elbo[-1] > fit.elbo[0] + 1.0           # it did climb


def test_the_elbo_is_the_log_likelihood_minus_the_kl_to_the_posterior():
    """F(q_T, theta_T) = log p(X | theta_T) - KL(q_T || p(z | x, theta_T)), with a strictly
    positive gap when the loadings overlap."""
    model, X, init = problem(M=3, seed=4)
    fit = variational_em(model, X, init, tol=1e-10)
    q = product_q(fit.q, model.configurations())
    kl = emlib.bounds.kl_to_posterior(model, X, fit.params, q)
    assert fit.elbo[-1] == pytest.approx(model.log_likelihood(X, fit.params) - kl, rel=1e-10)
    assert kl > 0.1


def test_with_one_factor_variational_em_is_em():
    """With M = 1 the factorized family is every distribution over z_n, so each variational E-step
    is the exact E-step: the same iterates as emlib.em, and the ELBO is the log-likelihood."""
    model, X, init = problem(M=1, seed=5)
    vem = variational_em(model, X, init, max_iter=25, tol=0)
    ref = emlib.em(model, X, init, max_iter=25, tol=0)
    np.testing.assert_allclose(vem.elbo, ref.log_likelihood, rtol=1e-10)
    for a, b in zip(emlib.flatten_params(vem.params), emlib.flatten_params(ref.params)):
        assert a == pytest.approx(b, rel=1e-8, abs=1e-10)
    exact = model.posterior(X, vem.params) @ model.configurations()
    np.testing.assert_allclose(vem.q, exact, rtol=1e-8, atol=1e-12)


def test_with_overlapping_loadings_it_is_not_em():
    """The restriction matters: from the same start, EM reaches a higher likelihood."""
    model, X, init = problem(M=3, seed=6)
    vem = variational_em(model, X, init, tol=1e-10)
    em = emlib.em(model, X, init, tol=1e-10)
    assert model.log_likelihood(X, vem.params) < em.log_likelihood[-1] - 0.1
    assert vem.elbo[-1] < model.log_likelihood(X, vem.params)


def test_stopping_rule_callback_and_zero_iterations():
    model, X, init = problem(M=2, seed=7)
    seen = []
    fit = variational_em(model, X, init, tol=1e-6, callback=lambda t, p, f: seen.append((t, f)))
    assert fit.converged and fit.n_iter == len(seen)
    assert [t for t, _ in seen] == list(range(1, fit.n_iter + 1))
    np.testing.assert_array_equal([f for _, f in seen], fit.elbo[1:])
    change = abs(fit.elbo[-1] - fit.elbo[-2])
    assert change <= 1e-6 * abs(fit.elbo[-1]) < abs(fit.elbo[-2] - fit.elbo[-3])
    zero = variational_em(model, X, init, max_iter=0)
    assert zero.n_iter == 0 and not zero.converged and zero.params is init and len(zero.elbo) == 1


def test_each_e_step_is_a_fixed_point_of_the_sweeps():
    """The E-step sweeps until one more sweep changes F by at most sweep_tol (relative)."""
    model, X, init = problem(M=3, seed=8)
    fit = variational_em(model, X, init, max_iter=5, tol=0, sweep_tol=1e-12)
    again = model.mean_field_sweep(X, fit.params, fit.q)
    before, after = model.mean_field_elbo(X, fit.params, fit.q), model.mean_field_elbo(X, fit.params, again)
    assert abs(after - before) <= 1e-12 * abs(after) + 1e-9
    assert np.all(fit.n_sweeps >= 2)


class DroppingSweep(BinaryFactors):
    """A broken model whose coordinate sweep moves q away from the optimum."""

    def mean_field_sweep(self, X, params, lam):
        return np.clip(1.0 - super().mean_field_sweep(X, params, lam), 0.0, 1.0)


class BadMStep(BinaryFactors):
    """A broken model whose M-step halves the loadings."""

    def m_step(self, stats):
        p = super().m_step(stats)
        return BinaryFactorsParams(p.probs, p.mean, 0.5 * p.loadings, p.noise_var)


@pytest.mark.parametrize("broken, where", [(DroppingSweep, "coordinate sweep"), (BadMStep, "M-step")])
def test_a_decrease_of_the_elbo_is_reported_as_a_bug(broken, where):
    _, X, init = problem(M=2, seed=9)
    with pytest.raises(RuntimeError, match=where):
        variational_em(broken(2), X, init, max_iter=20, tol=0)


def test_bad_settings_and_models_are_refused():
    model, X, init = problem(M=2, seed=10)
    with pytest.raises(ValueError, match="mean-field pieces"):
        variational_em(emlib.GaussianMixture(2), X, init)
    with pytest.raises(ValueError, match="max_sweeps"):
        variational_em(model, X, init, max_sweeps=0)
    with pytest.raises(ValueError, match="sweep_tol"):
        variational_em(model, X, init, sweep_tol=-1.0)
    with pytest.raises(ValueError, match="max_iter"):
        variational_em(model, X, init, max_iter=-1)
    with pytest.raises(ValueError, match="NaN"):
        variational_em(model, np.full_like(X, np.nan), init)
    with pytest.raises(ValueError, match="BinaryFactorsParams"):
        variational_em(model, X, emlib.GaussianMixtureParams([1.0], [[0.0]], [[[1.0]]]))
