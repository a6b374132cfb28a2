"""Claims of the chapter "Genetic linkage" (book/genetic_linkage.ipynb) beyond those of
tests/test_genetic_linkage.py: when the printed ratio of Table 1 settles, the standard errors of
the section "The standard error", and what figure genetic_linkage-fig-em shows."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import minimize_scalar

import emlib
from emlib import GeneticLinkage, GeneticLinkageParams, bounds

Y = emlib.datasets.genetic_linkage()
MODEL = GeneticLinkage()


def iterates(start=0.5, n_iter=8):
    trace = [start]
    emlib.em(MODEL, Y, GeneticLinkageParams(start), max_iter=n_iter, tol=0,
             callback=lambda t, params, loglik: trace.append(params.pi))
    return np.array(trace)


def test_the_printed_ratio_is_constant_from_p_3_on():
    """Dempster, Laird and Rubin: "The ratios are essentially constant for p >= 3"; printed to four
    decimals, 0.1328 from p = 3 to 7, and different at p = 2."""
    distance = MODEL.mle(Y).pi - iterates()
    shown = np.round(distance[1:] / distance[:-1], 4)
    assert np.all(shown[3:] == 0.1328)
    assert shown[2] != 0.1328


def test_standard_errors_of_the_chapter():
    """I_obs^{-1/2}; the same from EM's rate at p = 5 (SEM's idea) to 1e-6; and I_com^{-1/2}, smaller
    by the factor sqrt(1 - I_mis / I_com)."""
    mle = MODEL.mle(Y)
    I_obs, I_com = MODEL.observed_information(Y, mle), MODEL.complete_information(Y, mle)
    I_mis = MODEL.missing_information(Y, mle)
    distance = mle.pi - iterates()
    rate = distance[6] / distance[5]
    se, se_rate, se_complete = I_obs ** -0.5, (I_com * (1 - rate)) ** -0.5, I_com ** -0.5
    assert abs(se - se_rate) < 1e-6
    assert se_complete / se == pytest.approx(np.sqrt(1 - I_mis / I_com), rel=1e-12)
    assert round(se, 4) == 0.0515 and round(se_complete, 4) == 0.0479


@pytest.mark.parametrize("t", [0, 1, 2])
def test_each_lower_bound_touches_at_the_iterate_and_peaks_at_the_next(t):
    """Figure genetic_linkage-fig-em, top panel: F(q_t, .) <= l, with equality at pi^(t), and its
    maximum is pi^(t+1), the M-step."""
    pis = iterates(n_iter=3)
    q_t = MODEL.posterior(Y, GeneticLinkageParams(pis[t]))

    def F(pi):
        return bounds.elbo(MODEL, Y, GeneticLinkageParams(pi), q_t)

    assert F(pis[t]) == pytest.approx(MODEL.log_likelihood(Y, GeneticLinkageParams(pis[t])), abs=1e-10)
    for pi in np.linspace(0.42, 0.76, 35):
        assert F(pi) <= MODEL.log_likelihood(Y, GeneticLinkageParams(pi)) + 1e-10
    peak = minimize_scalar(lambda pi: -F(pi), bounds=(0.3, 0.9), method="bounded",
                           options={"xatol": 1e-10}).x
    assert peak == pytest.approx(pis[t + 1], abs=1e-6)


def test_distance_falls_by_the_fraction_of_missing_information_per_iteration():
    """Figure genetic_linkage-fig-em, bottom panel: the points lie on the line |pi* - pi^(0)| r^t
    within a factor 1.2 (the early ratios 0.1465, 0.1346 are a little larger than r)."""
    mle = MODEL.mle(Y)
    r = MODEL.missing_information(Y, mle) / MODEL.complete_information(Y, mle)
    distance = np.abs(mle.pi - iterates())
    line = distance[0] * r ** np.arange(9)
    assert np.all(distance >= line) and np.all(distance <= 1.2 * line)
