"""emlib.reporting: numbers for prose refuse the digits that another machine could change."""
import numpy as np
import pytest

import emlib
from emlib.reporting import (FragileNumberError, below, count_above, figure, first_above, power_of_ten,
                             rounded, stopping_iteration)


def test_rounded_keeps_digits_the_error_cannot_reach():
    assert rounded(3.14159, error=1e-6, decimals=3) == 3.142
    assert rounded(-0.00004, error=1e-9, decimals=3) == 0.0
    assert str(rounded(-0.00004, error=1e-9, decimals=3)) == "0.0"       # never "-0.0"
    assert rounded(123456.0, error=0.5, sig=2) == 120000.0


@pytest.mark.parametrize("value, error, decimals", [
    (0.12345, 1e-7, 4),       # on the edge between 0.1234 and 0.1235
    (0.1234501, 1e-6, 4),     # 1e-7 from the edge, error 1e-6
    (2.5, 0.0, 0),            # exactly on an edge: no error can be small enough
    (1.0, 0.01, 2),           # the error reaches the last digit
])
def test_rounded_refuses_a_value_near_a_rounding_edge(value, error, decimals):
    with pytest.raises(FragileNumberError, match="rounding edge"):
        rounded(value, error=error, decimals=decimals)


def test_significant_digits_refuse_a_value_at_a_power_of_ten():
    with pytest.raises(FragileNumberError, match="power of ten"):
        rounded(0.99999999, error=1e-8, sig=3)
    assert rounded(0.9876, error=1e-8, sig=3) == 0.988


def test_figure_writes_prose_not_code():
    assert figure(-1130.264, error=1e-6, decimals=2) == "\u22121130.26"
    assert figure(3.17e-7, error=1e-10, sig=2) == "3.2 × 10\u207b\u2077"
    assert figure(2.46e8, error=1e3, sig=3) == "2.46 × 10\u2078"
    assert figure(42.0, error=1e-9, decimals=0) == "42"
    assert "e" not in figure(1.5e-12, error=1e-16, sig=2)


def test_power_of_ten_and_below():
    assert power_of_ten(1e-9) == "10\u207b\u2079"
    assert power_of_ten(5e-9) == "5 × 10\u207b\u2079"
    assert below(3.7e-9, 1e-7) == "10\u207b\u2077"
    with pytest.raises(FragileNumberError):
        below(3.7e-9, 1e-8)          # within the factor-ten margin: another machine may exceed it
    with pytest.raises(ValueError, match="one-digit"):
        power_of_ten(3.5e-9)


def test_count_and_first_index_refuse_values_at_the_threshold():
    drops = np.array([-1.0, 1e-15, 0.5, -2e-16])
    with pytest.raises(FragileNumberError, match="count_above"):
        count_above(drops, 0.0, error=1e-14)
    assert count_above(drops, 1e-12, error=1e-14) == 1
    assert first_above([0.1, 0.2, 5.0, 0.99999], 1.0, error=1e-3) == 2     # later values do not matter
    assert first_above([0.1, 0.2], 1.0, error=1e-3) is None
    with pytest.raises(FragileNumberError):
        first_above([0.1, 0.9999, 5.0], 1.0, error=1e-3)


def test_stopping_iteration_is_n_iter_when_every_decision_is_clear(faithful):
    model = emlib.GaussianMixture(2, "full", reg_covar=0.0)
    fit = emlib.em(model, faithful, model.init_params(faithful, np.random.default_rng(0)), tol=1e-8)
    assert stopping_iteration(fit.log_likelihood, 1e-8, converged=fit.converged) == fit.n_iter


def test_stopping_iteration_refuses_a_decision_at_rounding_level(faithful):
    model = emlib.GaussianMixture(2, "full", reg_covar=0.0)
    fit = emlib.em(model, faithful, model.init_params(faithful, np.random.default_rng(0)), tol=1e-15)
    with pytest.raises(FragileNumberError, match="stopping decision"):
        stopping_iteration(fit.log_likelihood, 1e-15, converged=fit.converged)


def test_stopping_iteration_refuses_a_trace_that_did_not_stop_by_the_rule():
    trace = np.array([-10.0, -5.0, -4.0])
    assert stopping_iteration(trace, 1e-3, converged=False) == 2
    with pytest.raises(ValueError, match="converged"):
        stopping_iteration(trace, 1e-3, converged=True)


@pytest.mark.parametrize("kwargs", [{"error": -1.0, "decimals": 2}, {"error": float("nan"), "decimals": 2},
                                    {"error": 1e-3}, {"error": 1e-3, "decimals": 2, "sig": 2}])
def test_bad_arguments_are_value_errors(kwargs):
    with pytest.raises(ValueError):
        rounded(1.0, **kwargs)
