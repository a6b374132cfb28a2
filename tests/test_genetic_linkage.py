"""emlib.GeneticLinkage: Table 1 of Dempster, Laird and Rubin (1977), the closed-form MLE, the rate
of convergence as the fraction of missing information, Louis' formula, densities and input checks."""
import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.special import logsumexp
from scipy.stats import binom, multinomial

import emlib
from emlib import GeneticLinkage, GeneticLinkageParams, GeneticLinkageStats

Y = emlib.datasets.genetic_linkage()
MODEL = GeneticLinkage()

# Table 1 of Dempster, Laird and Rubin (1977), as printed: p, pi^(p), pi* - pi^(p), and the ratio
# (pi^(p+1) - pi*) / (pi^(p) - pi*) (printed for p = 0..5 only).
PUBLISHED_ITERATES = [0.500000000, 0.608247423, 0.624321051, 0.626488879, 0.626777323,
                      0.626815632, 0.626820719, 0.626821395, 0.626821484]
PUBLISHED_DEVIATIONS = [0.126821498, 0.018574075, 0.002500447, 0.000332619, 0.000044176,
                        0.000005866, 0.000000779, 0.000000104, 0.000000014]
PUBLISHED_RATIOS = [0.1465, 0.1346, 0.1330, 0.1328, 0.1328, 0.1328]
PUBLISHED_MLE = 0.6268214980  # printed as (15 + sqrt(53809)) / 394 = 0.6268214980


def em_iterates(start=0.5, n_iter=8):
    """pi^(0), ..., pi^(n_iter) from emlib.em (the driver, unchanged)."""
    trace = [start]
    emlib.em(MODEL, Y, GeneticLinkageParams(start), max_iter=n_iter, tol=0,
             callback=lambda t, params, loglik: trace.append(params.pi))
    return np.array(trace)


def exact_iterates(n_iter=8):
    """The same iteration in exact rational arithmetic (independent of emlib): (1.4) and (1.5) of the paper."""
    pi, out = Fraction(1, 2), []
    for _ in range(n_iter + 1):
        out.append(pi)
        x2 = 125 * (pi / 4) / (Fraction(1, 2) + pi / 4)
        pi = (x2 + 34) / (x2 + 34 + 18 + 20)
    return out


# ---------------------------------------------------------------- the published numbers
def test_em_iterates_are_exact_to_machine_precision():
    """Our floating-point iterates equal the exact rational ones to 1e-15 (rounding error only)."""
    ours = em_iterates()
    exact = np.array([float(v) for v in exact_iterates()])
    np.testing.assert_allclose(ours, exact, rtol=0, atol=1e-15)


def test_table1_iterates_agree_with_the_paper():
    """Every printed iterate agrees within one unit of its ninth (last printed) decimal, 1e-9.

    Six of the nine agree with our correctly rounded values, i.e. within 5e-10; at p = 2, 4, 7 the
    paper's last digit is one unit higher than exact arithmetic gives (checked in the next test).
    """
    ours = em_iterates()
    np.testing.assert_allclose(ours, PUBLISHED_ITERATES, rtol=0, atol=1e-9 + 1e-15)
    agree = np.abs(ours - PUBLISHED_ITERATES) <= 5e-10
    assert np.flatnonzero(~agree).tolist() == [2, 4, 7]


def test_table1_last_digit_differences_are_real():
    """Exact rational arithmetic rounds to one unit below the printed digit at p = 2, 4, 7."""
    exact = exact_iterates()
    for p in (2, 4, 7):
        rounded = round(exact[p] * 10 ** 9)  # Fraction -> exact rounding to 9 decimals
        assert rounded == round(PUBLISHED_ITERATES[p] * 10 ** 9) - 1


def test_table1_deviations_and_ratios():
    """Deviations (9 decimals printed): within one unit, 1e-9. Ratios (4 decimals): within 5e-5."""
    pi_star = MODEL.mle(Y).pi
    ours = em_iterates()
    deviations = pi_star - ours
    np.testing.assert_allclose(deviations, PUBLISHED_DEVIATIONS, rtol=0, atol=1e-9 + 1e-15)
    ratios = deviations[1:7] / deviations[:6]
    np.testing.assert_allclose(ratios, PUBLISHED_RATIOS, rtol=0, atol=5e-5)


def test_closed_form_mle_matches_the_paper():
    """The paper's formula (15 + sqrt(53809)) / 394 (to 1e-15) and its printed value 0.6268214980.

    Printed to 10 decimals; the exact value 0.62682149787... rounds to 0.6268214979, one unit below
    the printed digit, so we allow two units of the tenth decimal, 2e-10.
    """
    pi_star = MODEL.mle(Y).pi
    assert pi_star == pytest.approx((15 + math.sqrt(53809)) / 394, rel=0, abs=1e-15)
    assert abs(pi_star - PUBLISHED_MLE) <= 2e-10
    assert round(pi_star, 10) == 0.6268214979


def test_em_converges_to_the_closed_form_mle_and_score_vanishes():
    result = emlib.em(MODEL, Y, GeneticLinkageParams(0.5), tol=0, max_iter=30)
    pi_star = MODEL.mle(Y)
    assert result.params.pi == pytest.approx(pi_star.pi, abs=1e-14)
    assert abs(MODEL.score(Y, pi_star)) < 1e-11
    # and pi* is the maximum: the log-likelihood is lower on both sides
    for h in (1e-4, -1e-4):
        assert MODEL.log_likelihood(Y, GeneticLinkageParams(pi_star.pi + h)) < MODEL.log_likelihood(Y, pi_star)


@pytest.mark.parametrize("counts", [[125, 18, 20, 34], [40, 5, 7, 0], [3, 1, 0, 9], [0, 4, 4, 2]])
def test_mle_solves_the_score_equation(counts):
    """The closed-form root is a zero of the score (relative to the size of its terms)."""
    pi = MODEL.mle(counts)
    x = np.array(counts, dtype=float)
    scale = x[0] / (2 + pi.pi) + (x[1] + x[2]) / (1 - pi.pi) + x[3] / pi.pi
    assert abs(MODEL.score(counts, pi)) <= 1e-12 * scale


# ---------------------------------------------------------------- rate of convergence and information
def test_ratio_of_deviations_equals_fraction_of_missing_information():
    """(pi^(p+1) - pi*) / (pi^(p) - pi*) -> I_mis / I_com = 1 - I_obs / I_com.

    The ratio converges geometrically (its error shrinks by about 0.13 per step); at p = 6 it is
    within 1e-6 of the limit. The derivative of the EM map at pi* equals the fraction exactly, checked
    by a central difference (error O(h^2) ~ 1e-10 with h = 1e-5).
    """
    pi_star = MODEL.mle(Y)
    fraction = MODEL.missing_information(Y, pi_star) / MODEL.complete_information(Y, pi_star)
    assert fraction == pytest.approx(1 - MODEL.observed_information(Y, pi_star)
                                     / MODEL.complete_information(Y, pi_star), rel=1e-12)
    deviations = em_iterates(n_iter=7) - pi_star.pi
    assert deviations[7] / deviations[6] == pytest.approx(fraction, abs=1e-6)
    assert fraction == pytest.approx(PUBLISHED_RATIOS[-1], abs=5e-5)  # the paper's 0.1328

    def em_map(pi):
        return MODEL.m_step(MODEL.e_step(Y, GeneticLinkageParams(pi))[0]).pi

    h = 1e-5
    derivative = (em_map(pi_star.pi + h) - em_map(pi_star.pi - h)) / (2 * h)
    assert derivative == pytest.approx(fraction, abs=1e-9)


@pytest.mark.parametrize("pi", [0.2, 0.6268214978709824, 0.9])
def test_louis_formula_equals_numerical_second_derivative(pi):
    """I_com - I_mis (Louis 1982) = -d^2 ell / d pi^2, at the MLE and elsewhere.

    The analytic I_obs agrees to rounding (1e-10 relative). The central second difference with
    h = 1e-4 has truncation error O(h^2) and rounding error ~ eps |ell| / h^2 ~ 1e-7 relative, so
    we allow 1e-5 relative.
    """
    params = GeneticLinkageParams(pi)
    louis = MODEL.complete_information(Y, params) - MODEL.missing_information(Y, params)
    assert louis == pytest.approx(MODEL.observed_information(Y, params), rel=1e-10)
    h = 1e-4
    ell = [MODEL.log_likelihood(Y, GeneticLinkageParams(pi + d)) for d in (-h, 0.0, h)]
    numerical = -(ell[0] - 2 * ell[1] + ell[2]) / h ** 2
    assert louis == pytest.approx(numerical, rel=1e-5)


def test_missing_information_is_the_variance_of_the_complete_data_score():
    """Var[(z + x_4)/pi - (x_2 + x_3)/(1 - pi) | x] computed by summing over the posterior of z."""
    params = GeneticLinkageParams(0.4)
    q = MODEL.posterior(Y, params)[0]
    z = np.arange(Y[0] + 1)
    score = (z + Y[3]) / 0.4 - (Y[1] + Y[2]) / 0.6
    mean = q @ score
    assert MODEL.missing_information(Y, params) == pytest.approx(q @ (score - mean) ** 2, rel=1e-10)
    # Fisher's identity: the posterior mean of the complete-data score is the observed score
    assert mean == pytest.approx(MODEL.score(Y, params), rel=1e-10)


def test_score_matches_numerical_derivative():
    h = 1e-6
    for pi in (0.1, 0.5, 0.8):
        numerical = (MODEL.log_likelihood(Y, GeneticLinkageParams(pi + h))
                     - MODEL.log_likelihood(Y, GeneticLinkageParams(pi - h))) / (2 * h)
        assert MODEL.score(Y, GeneticLinkageParams(pi)) == pytest.approx(numerical, rel=1e-6)


# ---------------------------------------------------------------- densities and the ELBO identity
@pytest.mark.parametrize("pi", [0.05, 0.5, 0.95])
def test_log_likelihood_is_the_multinomial_log_pmf(pi):
    cells = [0.5 + pi / 4, (1 - pi) / 4, (1 - pi) / 4, pi / 4]
    want = multinomial.logpmf(Y, n=Y.sum(), p=cells)
    assert MODEL.log_likelihood(Y, GeneticLinkageParams(pi)) == pytest.approx(want, rel=1e-12)


def test_log_joint_is_the_five_cell_multinomial_and_sums_to_the_likelihood():
    pi = 0.3
    params = GeneticLinkageParams(pi)
    joint = MODEL.log_joint(Y, params)
    assert joint.shape == (1, Y[0] + 1)
    cells = [0.5, pi / 4, (1 - pi) / 4, (1 - pi) / 4, pi / 4]
    for z in (0, 17, 125):
        complete = [Y[0] - z, z, Y[1], Y[2], Y[3]]
        assert joint[0, z] == pytest.approx(multinomial.logpmf(complete, n=Y.sum(), p=cells), rel=1e-12)
    assert logsumexp(joint) == pytest.approx(MODEL.log_likelihood(Y, params), rel=1e-12)


def test_posterior_is_binomial():
    pi = 0.7
    q = MODEL.posterior(Y, GeneticLinkageParams(pi))
    np.testing.assert_allclose(q[0], binom.pmf(np.arange(Y[0] + 1), Y[0], pi / (2 + pi)), rtol=1e-9, atol=1e-300)


def test_elbo_plus_kl_is_the_log_likelihood():
    """log p(x | pi) = F(q, pi) + KL(q || p(z | x, pi)) for arbitrary q; F = log p at the posterior."""
    rng = np.random.default_rng(2024)
    params = GeneticLinkageParams(0.45)
    loglik = MODEL.log_likelihood(Y, params)
    for _ in range(5):
        q = rng.dirichlet(np.ones(Y[0] + 1))[None, :]
        F = emlib.bounds.elbo(MODEL, Y, params, q)
        KL = emlib.bounds.kl_to_posterior(MODEL, Y, params, q)
        assert KL > 0
        assert F + KL == pytest.approx(loglik, rel=1e-10)
    q = MODEL.posterior(Y, params)
    assert emlib.bounds.elbo(MODEL, Y, params, q) == pytest.approx(loglik, rel=1e-10)
    assert abs(emlib.bounds.kl_to_posterior(MODEL, Y, params, q)) < 1e-10


def test_e_step_agrees_with_the_posterior_route():
    params = GeneticLinkageParams(0.62)
    stats, loglik = MODEL.e_step(Y, params)
    generic = MODEL.expected_stats(Y, MODEL.posterior(Y, params))
    assert stats.pi_count == pytest.approx(generic.pi_count, rel=1e-12)
    assert stats.one_minus_pi_count == generic.one_minus_pi_count == Y[1] + Y[2]
    assert loglik == MODEL.log_likelihood(Y, params)


def test_stats_are_additive_over_independent_counts():
    params = GeneticLinkageParams(0.3)
    a, b = np.array([10, 3, 4, 6]), np.array([7, 2, 0, 5])
    together = MODEL.e_step(a + b, params)[0]
    apart = MODEL.e_step(a, params)[0] + MODEL.e_step(b, params)[0]
    assert together.pi_count == pytest.approx(apart.pi_count, rel=1e-12)
    assert together.one_minus_pi_count == apart.one_minus_pi_count
    doubled = 2 * apart
    assert doubled.pi_count == 2 * apart.pi_count
    assert MODEL.m_step(doubled).pi == pytest.approx(MODEL.m_step(apart).pi, rel=1e-14)


@settings(max_examples=60, deadline=None)
@given(counts=st.lists(st.integers(1, 300), min_size=4, max_size=4), start=st.floats(0.01, 0.99))
def test_em_never_decreases_the_likelihood(counts, start):
    result = emlib.em(MODEL, counts, GeneticLinkageParams(start), max_iter=30, tol=0)
    steps = np.diff(result.log_likelihood)
    assert np.all(steps >= -1e-10 * np.abs(result.log_likelihood[1:]))


def test_init_params_is_the_uniform_draw_of_its_seed():
    """pi_0 ~ Uniform(0.1, 0.9): the first uniform of the seed's generator, mapped to (0.1, 0.9)."""
    for seed in range(5):
        u = np.random.default_rng(seed).random()
        assert MODEL.init_params(Y, np.random.default_rng(seed)).pi == pytest.approx(0.1 + 0.8 * u, rel=1e-15)


# ---------------------------------------------------------------- bad input
@pytest.mark.parametrize("X, match", [
    ([125, 18, 20], r"four cell counts, shape \(4,\)"),
    ([[125, 18, 20, 34]], r"four cell counts, shape \(4,\)"),
    ([125, -18, 20, 34], "non-negative counts"),
    ([125.5, 18, 20, 34], "whole-number counts"),
    ([np.nan, 18, 20, 34], "NaN or infinite"),
    ([0, 0, 0, 0], "no animals"),
    ([1e19, 18, 20, 34], "beyond 2\\^53"),   # was cast to int64 and reported as negative counts
    ([125, 18, 20, 34 + 0j], "complex"),
    (["a", "b", "c", "d"], "four non-negative integer counts"),
])
def test_bad_data_is_refused(X, match):
    with pytest.raises(ValueError, match=match):
        MODEL.check_data(X)


@pytest.mark.parametrize("pi", [0.0, 1.0, -0.2, 1.5, np.nan])
def test_params_outside_the_open_interval_are_refused(pi):
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        GeneticLinkageParams(pi)


def test_other_bad_inputs():
    with pytest.raises(ValueError, match="must be a number strictly between 0 and 1"):
        GeneticLinkageParams("half")
    with pytest.raises(ValueError, match="params must be GeneticLinkageParams"):
        MODEL.log_likelihood(Y, 0.5)
    with pytest.raises(ValueError, match=r"q must have shape \(1, x_1 \+ 1\) = \(1, 126\)"):
        MODEL.expected_stats(Y, np.ones((1, 125)) / 125)
    with pytest.raises(ValueError, match="boundary of the parameter space"):
        MODEL.m_step(GeneticLinkageStats(0.0, 12.0))
    with pytest.raises(ValueError, match="maximized on the boundary"):
        MODEL.mle([0, 3, 4, 0])  # no evidence for pi: the likelihood increases to pi = 0
    with pytest.raises(ValueError, match="maximized on the boundary"):
        MODEL.mle([5, 0, 0, 3])  # no evidence for 1 - pi
    with pytest.raises(ValueError, match="numpy.random.Generator"):
        MODEL.init_params(Y, 0)


# ---------------------------------------------------------------- claims of the chapter's exercises
def test_nothing_missing_converges_in_one_step():
    """x_1 = 0: I_mis = 0, and one EM step from any start lands on the MLE x_4 / (x_2 + x_3 + x_4)."""
    counts = [0, 18, 20, 34]
    assert MODEL.missing_information(counts, GeneticLinkageParams(0.3)) == 0.0
    for start in (0.05, 0.9):
        result = emlib.em(MODEL, counts, GeneticLinkageParams(start), max_iter=1, tol=0)
        assert result.params.pi == pytest.approx(34 / 72, abs=1e-15)
    assert MODEL.mle(counts).pi == pytest.approx(34 / 72, abs=1e-15)


@pytest.mark.parametrize("start", [0.05, 0.95])
def test_rate_does_not_depend_on_the_start(start):
    pi_star = MODEL.mle(Y)
    fraction = MODEL.missing_information(Y, pi_star) / MODEL.complete_information(Y, pi_star)
    d = em_iterates(start, n_iter=9) - pi_star.pi
    assert d[9] / d[8] == pytest.approx(fraction, abs=1e-6)
