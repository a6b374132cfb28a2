"""The EM driver: the contract of max_iter, tol, n_iter, converged, the trace and the callback."""
import numpy as np
import pytest

import emlib
from emlib.em import ConvergenceMonitor


@pytest.fixture
def fit_setup(faithful):
    model = emlib.GaussianMixture(2)
    init = model.init_params(faithful, np.random.default_rng(0))
    return model, faithful, init


def test_trace_starts_at_the_initial_parameters(fit_setup):
    model, X, init = fit_setup
    result = emlib.em(model, X, init, max_iter=5, tol=0)
    assert result.log_likelihood[0] == pytest.approx(model.log_likelihood(X, init), rel=1e-12)


def test_trace_entries_are_the_loglik_of_each_iterate(fit_setup):
    model, X, init = fit_setup
    seen = []
    result = emlib.em(model, X, init, max_iter=4, tol=0, callback=lambda t, p, ll: seen.append((t, p, ll)))
    assert [t for t, _, _ in seen] == [1, 2, 3, 4]
    for t, params, ll in seen:
        assert result.log_likelihood[t] == ll
        assert ll == pytest.approx(model.log_likelihood(X, params), rel=1e-12)
    assert seen[-1][1] is result.params


@pytest.mark.parametrize("max_iter", [0, 1, 7])
def test_max_iter_is_exact_when_tol_is_zero(fit_setup, max_iter):
    model, X, init = fit_setup
    result = emlib.em(model, X, init, max_iter=max_iter, tol=0)
    assert result.n_iter == max_iter
    assert len(result.log_likelihood) == max_iter + 1
    assert result.converged is False


def test_max_iter_zero_returns_the_start(fit_setup):
    model, X, init = fit_setup
    result = emlib.em(model, X, init, max_iter=0)
    assert result.params is init


def test_converged_only_when_the_rule_is_met(fit_setup):
    model, X, init = fit_setup
    result = emlib.em(model, X, init, max_iter=1000, tol=1e-10)
    assert result.converged
    assert result.n_iter < 1000
    last, previous = result.log_likelihood[-1], result.log_likelihood[-2]
    assert abs(last - previous) <= 1e-10 * abs(last)
    # and the rule was not met one step earlier
    if result.n_iter >= 2:
        assert abs(previous - result.log_likelihood[-3]) > 1e-10 * abs(previous)


def test_iteration_limit_is_not_reported_as_convergence(fit_setup):
    model, X, init = fit_setup
    result = emlib.em(model, X, init, max_iter=3, tol=1e-10)
    assert result.n_iter == 3
    assert result.converged is False


def test_looser_tol_stops_earlier(fit_setup):
    model, X, init = fit_setup
    loose = emlib.em(model, X, init, tol=1e-4)
    tight = emlib.em(model, X, init, tol=1e-10)
    assert loose.n_iter < tight.n_iter


def test_result_is_immutable(fit_setup):
    model, X, init = fit_setup
    result = emlib.em(model, X, init, max_iter=2)
    with pytest.raises(AttributeError):
        result.n_iter = 5


@pytest.mark.parametrize("bad, message", [(-1, "max_iter"), (2.5, "max_iter"), (True, "max_iter")])
def test_bad_max_iter_is_refused(fit_setup, bad, message):
    model, X, init = fit_setup
    with pytest.raises(ValueError, match=message):
        emlib.em(model, X, init, max_iter=bad)


@pytest.mark.parametrize("bad", [-1e-3, float("nan"), float("inf")])
def test_bad_tol_is_refused(fit_setup, bad):
    model, X, init = fit_setup
    with pytest.raises(ValueError, match="tol must be a non-negative number"):
        emlib.em(model, X, init, tol=bad)


def test_monitor_refuses_nan_objective_without_model_specific_advice():
    """Issue 13 item 7: the generic monitor names the objective and the iteration, and gives no
    advice about reg_covar (most models have none)."""
    monitor = ConvergenceMonitor(10, 1e-6, objective="ELBO")
    monitor.record(-5.0)
    with pytest.raises(ValueError, match="the ELBO became nan at iteration 1") as caught:
        monitor.record(float("nan"))
    assert "reg_covar" not in str(caught.value)


def test_monitor_relative_rule():
    monitor = ConvergenceMonitor(10, 1e-3)
    assert monitor.record(-1000.0) is False
    assert monitor.record(-900.0) is False      # change 100 > 0.9
    assert monitor.record(-899.5) is True       # change 0.5 <= 0.8995
    assert monitor.n_iter == 2
