"""Claims of the chapter "Slow convergence and acceleration" that the other test files do not cover.

The missing-information principle in closed form for the Poisson mixture (equations
slow_convergence-louis, -Ic, -Im), the accuracy of the finite-difference Jacobian and its optimal
step, the SEM covariance (slow_convergence-sem), the numbers behind the stopping-rule discussion at
emlib's default tolerance, the race to a gap of 1e-7, and Louis's standard errors for Old Faithful.
"""
import numpy as np
import pytest

import emlib
from emlib import reporting, standard_errors

START = emlib.PoissonMixtureParams([0.3, 0.7], [1.0, 2.5])


def coords(params):
    return np.array([params.weights[0], *params.rates])


def params_at(u):
    return emlib.PoissonMixtureParams([u[0], 1.0 - u[0]], u[1:])


CHART = dict(to_vector=coords, from_vector=params_at)


@pytest.fixture(scope="module")
def hasselblad():
    X = emlib.datasets.hasselblad_deaths()
    model = emlib.PoissonMixture(2)
    theta = emlib.squarem(model, X, START, tol=0, max_iter=60).params
    return X, model, theta


def closed_form_informations(model, X, params):
    """Equations slow_convergence-Ic and slow_convergence-Im, as the chapter computes them."""
    p, l1, l2 = coords(params)
    stats, _ = model.e_step(model.check_data(X), params)
    (N1, N2), (S1, S2) = stats.counts, stats.sum_x
    I_c = np.diag([N1 / p**2 + N2 / (1 - p)**2, S1 / l1**2, S2 / l2**2])
    r = model.posterior(X, params)
    d = np.column_stack([np.full(X.size, 1 / (p * (1 - p))), X / l1 - 1, 1 - X / l2])
    I_m = (d * (r[:, 0] * r[:, 1])[:, None]).T @ d
    return I_c, I_m


def exact_observed_information(model, X, params):
    """-Hessian of l in (p, l1, l2) from the analytic Hessian in eta = (logit p, log l1, log l2).

    The chain rule has a second term with the gradient; it is added, so the result holds at
    every point, not only at the maximum.
    """
    p, l1, l2 = coords(params)
    _, grad, hess = model.log_likelihood_derivatives(X, model.to_unconstrained(params))
    G = np.diag([1 / (p * (1 - p)), 1 / l1, 1 / l2])               # d eta / d(p, l1, l2)
    second = np.diag([grad[0] * (2 * p - 1) / (p * (1 - p))**2,     # d^2 eta_i / d u_i^2
                      -grad[1] / l1**2, -grad[2] / l2**2])
    return -(G @ hess @ G + second)


@pytest.mark.parametrize("where", ["maximum", "start", "elsewhere"])
def test_missing_information_principle_in_closed_form(hasselblad, where):
    """I_o = I_c - I_m with the chapter's closed forms, against the analytic Hessian and the
    generic (finite-difference) complete and missing informations of emlib.standard_errors."""
    X, model, theta = hasselblad
    params = {"maximum": theta, "start": START,
              "elsewhere": emlib.PoissonMixtureParams([0.6, 0.4], [1.8, 3.5])}[where]
    I_c, I_m = closed_form_informations(model, X, params)
    I_o = exact_observed_information(model, X, params)
    np.testing.assert_allclose(I_c - I_m, I_o, rtol=1e-10, atol=1e-8 * np.abs(I_o).max())
    generic = standard_errors.louis_information(model, X, params, **CHART)
    np.testing.assert_allclose(generic.complete, I_c, rtol=0, atol=1e-6 * np.abs(I_c).max())
    np.testing.assert_allclose(generic.missing, I_m, rtol=0, atol=1e-8 * np.abs(I_m).max())


def test_rate_matrix_is_the_fraction_of_missing_information(hasselblad):
    """DLR: J = I_c^{-1} I_m at the maximum; its eigenvalues are real, in [0, 1), one is 0."""
    X, model, theta = hasselblad
    I_c, I_m = closed_form_informations(model, X, theta)
    J_exact = np.linalg.solve(I_c, I_m)
    eig = np.linalg.eigvals(J_exact)
    assert np.all(np.abs(eig.imag) < 1e-12)
    eig = np.sort(eig.real)[::-1]
    assert 0.995 < eig[0] < 0.996 and abs(eig[2]) < 1e-12 and np.all(eig > -1e-12)
    J = emlib.em_map_jacobian(model, X, theta, **CHART)
    # the chapter's claim: the finite differences are within 5e-9 of the exact J (observed ~2e-10)
    assert np.max(np.abs(J - J_exact)) < 5e-10 * 10


def test_central_difference_error_is_smallest_near_the_cube_root_of_epsilon(hasselblad):
    """Truncation ~ h^2 against rounding ~ eps / h: the error is U-shaped with its bottom near
    eps^(1/3) ~ 6e-6, and h = 1e-6 (emlib's default) is close to the bottom."""
    X, model, theta = hasselblad
    I_c, I_m = closed_form_informations(model, X, theta)
    J_exact = np.linalg.solve(I_c, I_m)
    error = {h: np.max(np.abs(emlib.em_map_jacobian(model, X, theta, step=h, **CHART) - J_exact))
             for h in (1e-4, 6e-6, 1e-6, 1e-8)}
    assert error[6e-6] < error[1e-4] and error[6e-6] < error[1e-8]
    assert error[1e-6] < 1e-9 < error[1e-8]
    assert error[1e-4] > 1e-9  # truncation dominates for large steps


def test_sem_covariance_equals_the_inverse_observed_information(hasselblad):
    X, model, theta = hasselblad
    I_c, I_m = closed_form_informations(model, X, theta)
    V_sem = standard_errors.sem_covariance(model, X, theta, complete=I_c, **CHART)
    V = standard_errors.covariance_from_information(I_c - I_m)
    se_sem, se = standard_errors.standard_errors(V_sem), standard_errors.standard_errors(V)
    assert np.max(np.abs(se_sem / se - 1)) < 1e-6                    # the chapter: below 1e-6
    V_hessian = standard_errors.covariance_from_information(
        standard_errors.observed_information(model, X, theta, **CHART))
    assert np.max(np.abs(standard_errors.standard_errors(V_hessian) / se - 1)) < 1e-5
    # large standard errors: the weight is known only to about +-0.19
    np.testing.assert_allclose(se, [0.1947, 0.3500, 0.2505], atol=5e-4)
    # the amplification 1 / (1 - gamma_1) of an error in J (exercise slow_convergence-ex-sem)
    gamma = np.max(np.abs(np.linalg.eigvals(np.linalg.solve(I_c, I_m))))
    assert 200 < 1 / (1 - gamma) < 260


def test_default_tolerance_stops_early_and_the_gap_model_predicts_the_rest(hasselblad):
    X, model, theta = hasselblad
    fit = emlib.em(model, X, START, tol=1e-8, max_iter=20000)
    n = reporting.stopping_iteration(fit.log_likelihood, 1e-8, converged=fit.converged)
    assert 300 < n < 500                       # the count itself is stable (no FragileNumberError)
    ll_star = model.log_likelihood(X, theta)
    ll = fit.log_likelihood
    assert np.max(np.abs(coords(fit.params) - coords(theta))) > 1e-2  # far from theta*
    I_c, I_m = closed_form_informations(model, X, theta)
    gamma = np.max(np.abs(np.linalg.eigvals(np.linalg.solve(I_c, I_m))))
    ratio = (ll_star - ll[-1]) / (ll[-1] - ll[-2])
    assert ratio == pytest.approx(gamma**2 / (1 - gamma**2), rel=0.03)
    aitken = emlib.aitken_limit(*ll[-3:])
    assert (ll_star - ll[-1]) / abs(aitken - ll_star) > 50         # "more than 50 times closer"


def test_iterations_from_1e2_to_1e7_match_the_prediction(hasselblad):
    X, model, theta = hasselblad
    path = [coords(START)]
    emlib.em(model, X, START, tol=0, max_iter=4000, callback=lambda t, p, ll: path.append(coords(p)))
    error = np.linalg.norm(np.array(path) - coords(theta), axis=1)
    observed = (reporting.first_above(1e-7 - error, 0.0, error=1e-12)
                - reporting.first_above(1e-2 - error, 0.0, error=1e-12))
    I_c, I_m = closed_form_informations(model, X, theta)
    gamma = np.max(np.abs(np.linalg.eigvals(np.linalg.solve(I_c, I_m))))
    assert observed == pytest.approx(np.log(1e-5) / np.log(gamma), rel=0.01)


def test_race_to_a_gap_of_1e7(hasselblad):
    """EM needs more than a thousand E-steps, SQUAREM, its bare form and Aitken fewer than a
    hundred; every count is a stable threshold crossing."""
    X, model, theta = hasselblad
    ll_star = model.log_likelihood(X, theta)
    em = emlib.em(model, X, START, tol=0, max_iter=2500)
    needed = {"EM": reporting.first_above(1e-7 - (ll_star - em.log_likelihood), 0, error=2e-12) + 1}
    for name, driver, kwargs in [("SQUAREM", emlib.squarem, {}),
                                 ("bare", emlib.squarem, {"safeguard": False}),
                                 ("Aitken", emlib.aitken_em, {})]:
        res = driver(model, X, START, tol=0, max_iter=150 if name == "Aitken" else 40, **kwargs)
        first = reporting.first_above(1e-7 - (ll_star - res.log_likelihood), 0, error=2e-12)
        needed[name] = int(res.em_evaluations[first])
    assert needed["EM"] > 1000 and max(needed[k] for k in needed if k != "EM") < 100
    assert needed["EM"] / needed["SQUAREM"] > 10


def test_data_figure_alt_text(hasselblad):
    """The mixture improves the fit most at 0 and at 3 deaths (alt text of the first figure)."""
    X, model, theta = hasselblad
    days, counts = np.bincount(X), np.arange(10)
    single = X.size * np.exp(emlib.PoissonMixture(1).log_joint(
        counts, emlib.PoissonMixtureParams([1.0], [X.mean()]))).sum(axis=1)
    mixture = X.size * np.exp(model.log_joint(counts, theta)).sum(axis=1)
    gain = np.abs(days - single) - np.abs(days - mixture)
    assert sorted(np.argsort(gain)[-2:].tolist()) == [0, 3]


def test_louis_standard_errors_for_old_faithful_agree_with_the_other_routes(faithful):
    model = emlib.GaussianMixture(2, reg_covar=0.0)
    start = emlib.GaussianMixture(2).init_params(faithful, np.random.default_rng(0))
    fit = emlib.em(model, faithful, start, tol=0, max_iter=100).params
    lower = np.tril_indices(2)

    def to_vector(p):
        return np.concatenate([p.weights[:1], p.means.ravel(), p.covariances[:, lower[0], lower[1]].ravel()])

    def from_vector(u):
        cov = np.zeros((2, 2, 2))
        cov[:, lower[0], lower[1]] = u[5:].reshape(2, 3)
        cov[:, lower[1], lower[0]] = u[5:].reshape(2, 3)
        return emlib.GaussianMixtureParams([u[0], 1 - u[0]], u[1:5].reshape(2, 2), cov)

    chart = dict(to_vector=to_vector, from_vector=from_vector)
    louis = standard_errors.louis_information(model, faithful, fit, **chart)
    se = standard_errors.standard_errors(standard_errors.covariance_from_information(louis.observed))
    direct = standard_errors.standard_errors(standard_errors.covariance_from_information(
        standard_errors.observed_information(model, faithful, fit, **chart)))
    sem = standard_errors.standard_errors(
        standard_errors.sem_covariance(model, faithful, fit, complete=louis.complete, **chart))
    assert np.max(np.abs(direct / se - 1)) < 1e-5 and np.max(np.abs(sem / se - 1)) < 1e-5
    # little missing information: the eigenvalues of I_c^{-1} I_m are small
    assert np.max(np.abs(np.linalg.eigvals(np.linalg.solve(louis.complete, louis.missing)))) < 0.5
    assert fit.means[0, 0] < fit.means[1, 0] and se[0] == pytest.approx(0.029, abs=1e-3)
