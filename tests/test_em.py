"""The EM driver: the contract of max_iter, tol, n_iter, converged, the trace and the callback."""
import inspect

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


# ---------------------------------------------------------------- the loop state the drivers share (issue 13, item 11)
def test_monitor_carries_converged_and_done():
    monitor = ConvergenceMonitor(3, 1e-3)
    assert not monitor.done and not monitor.converged
    monitor.record(-10.0)
    monitor.record(-5.0)
    assert not monitor.done
    monitor.mark_converged()
    assert monitor.converged and monitor.done
    limited = ConvergenceMonitor(2, 0.0)
    for value in (-3.0, -2.0, -1.0):
        limited.record(value)
    assert limited.done and not limited.converged and limited.result("theta").converged is False


def test_monitor_checks_monotonicity_with_a_named_slack():
    monitor = ConvergenceMonitor(10, 0.0, monotone_rtol=1e-9, objective="ELBO")
    monitor.record(-1000.0)
    monitor.record(-1000.0 - 0.5e-6)          # within the slack (1e-9 * 1000 = 1e-6)
    with pytest.raises(RuntimeError, match="the ELBO decreased"):
        monitor.record(-1000.1)
    with pytest.raises(ValueError, match="monotone_rtol must be a non-negative number"):
        ConvergenceMonitor(10, 0.0, monotone_rtol=-1.0)


# ---------------------------------------------------------------- every driver checks its arguments up front (item 6)
def _gm_setup():
    X = emlib.datasets.old_faithful()
    model = emlib.GaussianMixture(2, "diag")
    return model, X, model.init_params(X, np.random.default_rng(0))


def _lri_setup():
    """A small grouped binary data set for the drivers that sample latent variables by MCMC."""
    model = emlib.LogisticRandomIntercept()
    rng = np.random.default_rng(0)
    X, _ = model.sample(emlib.LogisticRandomInterceptParams(-0.5, 1.5), rng.integers(2, 6, size=20), rng)
    return model, X, emlib.LogisticRandomInterceptParams(0.0, 1.0)


def _bf_setup():
    model = emlib.BinaryFactors(2)
    rng = np.random.default_rng(0)
    truth = emlib.BinaryFactorsParams([0.4, 0.5], np.zeros(3), rng.normal(size=(2, 3)), 0.5)
    X, _ = model.sample(truth, 40, rng)
    return model, X, model.init_params(X, np.random.default_rng(1))


def _t_setup():
    model = emlib.MultivariateT()
    rng = np.random.default_rng(0)
    X = rng.standard_t(4, size=(60, 2))
    return model, X, model.init_params(X, np.random.default_rng(1))


def _drivers():
    """(name, call(**overrides)) for every public driver, with valid defaults."""
    model, X, init = _gm_setup()
    bgm = emlib.BayesianGaussianMixture(2)
    obj = emlib.gradient.MixtureObjective(model, X)
    eta = obj.to_vector(init)
    rng = np.random.default_rng(0)
    lri, X_lri, init_lri = _lri_setup()
    bf, X_bf, init_bf = _bf_setup()
    t_model, X_t, init_t = _t_setup()
    return {
        "ecme": lambda **kw: emlib.ecme(t_model, X_t, init_t,
                                        **{"loglik_steps": t_model.dof_loglik_step, "max_iter": 2, **kw}),
        "saem": lambda **kw: emlib.saem(lri, X_lri, init_lri, **{"rng": rng, "max_iter": 2, **kw}),
        "ascent_mcem": lambda **kw: emlib.ascent_mcem(lri, X_lri, init_lri,
                                                      **{"rng": rng, "max_iter": 2, "n_samples": 20, **kw}),
        "variational_em": lambda **kw: emlib.variational_em(bf, X_bf, init_bf, **{"max_iter": 2, **kw}),
        "em": lambda **kw: emlib.em(model, X, init, **{"max_iter": 2, **kw}),
        "gem": lambda **kw: emlib.gem(model, X, init, **{"max_iter": 2, **kw}),
        "cem": lambda **kw: emlib.cem(model, X, init, **{"max_iter": 2, **kw}),
        "stochastic_em": lambda **kw: emlib.stochastic_em(model, X, init, **{"rng": rng, "max_iter": 2, **kw}),
        "mcem": lambda **kw: emlib.mcem(model, X, init, **{"rng": rng, "max_iter": 2, **kw}),
        "squarem": lambda **kw: emlib.squarem(model, X, init, **{"max_iter": 2, **kw}),
        "aitken_em": lambda **kw: emlib.aitken_em(model, X, init, **{"max_iter": 2, **kw}),
        "online_em": lambda **kw: emlib.online_em(model, np.array_split(X, 4), init, **kw),
        "cavi": lambda **kw: emlib.cavi(bgm, X, **{"rng": rng, "max_iter": 2, **kw}),
        "gradient_ascent": lambda **kw: emlib.gradient.gradient_ascent(obj, eta, **{"max_iter": 2, **kw}),
        "newton_ascent": lambda **kw: emlib.gradient.newton_ascent(obj, eta, **{"max_iter": 2, **kw}),
        "lbfgs_ascent": lambda **kw: emlib.gradient.lbfgs_ascent(obj, eta, **{"max_iter": 2, **kw}),
    }


KEYWORDS = {
    "em": ["max_iter", "tol"], "gem": ["max_iter", "tol", "check_q"], "cem": ["max_iter", "tol"],
    "stochastic_em": ["max_iter", "tol", "burn_in", "rng"],
    "mcem": ["max_iter", "tol", "n_samples", "growth", "rng"],
    "squarem": ["max_iter", "tol", "safeguard"], "aitken_em": ["max_iter", "tol", "safeguard"],
    "online_em": ["alpha", "t0", "n_warmup", "max_batches", "step_size"],
    "cavi": ["max_iter", "tol", "rng"],
    "saem": ["max_iter", "tol", "step_sizes", "burn_in", "n_mcmc_steps", "rng"],
    "ascent_mcem": ["max_iter", "tol", "n_samples", "augment", "max_samples", "ascent_error", "rng"],
    "variational_em": ["max_iter", "tol", "max_sweeps", "sweep_tol"],
    "ecme": ["max_iter", "tol", "check", "loglik_steps", "q_steps"],
    "gradient_ascent": ["max_iter", "tol", "step", "c", "shrink", "grow", "max_backtracks", "line_search"],
    "newton_ascent": ["max_iter", "tol", "min_curvature", "safeguarded"],
    "lbfgs_ascent": ["max_iter", "tol", "memory"],
}


@pytest.mark.parametrize("driver, keyword", [(d, k) for d, ks in KEYWORDS.items() for k in ks])
@pytest.mark.parametrize("bad", ["1", [1]])
def test_every_keyword_of_every_driver_refuses_nonsense_with_a_value_error_naming_it(driver, keyword, bad):
    """tol=None, strings and the like gave a TypeError deep inside numpy; now a ValueError that names
    the argument. (None is a valid value of some keywords, e.g. grow and step_size; strings never are.)"""
    with pytest.raises(ValueError, match=keyword):
        _drivers()[driver](**{keyword: bad})


@pytest.mark.parametrize("driver, keyword", [("em", "tol"), ("em", "max_iter"), ("gem", "tol"), ("cem", "tol"),
                                             ("mcem", "growth"), ("squarem", "tol"), ("cavi", "tol"),
                                             ("gradient_ascent", "step"), ("lbfgs_ascent", "memory")])
def test_none_where_a_number_is_needed_is_a_value_error(driver, keyword):
    with pytest.raises(ValueError, match=keyword):
        _drivers()[driver](**{keyword: None})


@pytest.mark.parametrize("driver", sorted(KEYWORDS))
def test_a_callback_that_cannot_be_called_is_refused_before_the_first_iteration(driver):
    with pytest.raises(ValueError, match="callback must be a callable"):
        _drivers()[driver](callback="print")


class CountingMixture(emlib.GaussianMixture):
    """A Gaussian mixture that counts its E-steps (to show that nothing ran before an error)."""

    e_steps = 0

    def e_step(self, X, params):
        CountingMixture.e_steps += 1
        return super().e_step(X, params)


def test_bad_arguments_are_refused_before_any_work():
    model, X, init = _gm_setup()
    counting = CountingMixture(2, "diag")
    CountingMixture.e_steps = 0
    for kwargs in ({"callback": 3}, {"tol": None}, {"max_iter": "10"}):
        with pytest.raises(ValueError):
            emlib.em(counting, X, init, **kwargs)
    assert CountingMixture.e_steps == 0


@pytest.mark.parametrize("model", [None, "GaussianMixture", object()])
def test_something_that_is_not_a_model_is_refused_with_a_value_error(model):
    """em(None, ...) gave AttributeError."""
    _, X, init = _gm_setup()
    with pytest.raises(ValueError, match="model must be an emlib model"):
        emlib.em(model, X, init)
    with pytest.raises(ValueError, match="model must be an emlib model"):
        emlib.squarem(model, X, init)
    with pytest.raises(ValueError, match="model must be an emlib model"):
        emlib.em_map(model, X, init)


# ---------------------------------------------------------------- drivers that agree with each other (item 11)
def test_every_driver_is_a_function_in_emlib_variants():
    """`from emlib.variants import cem; cem(...)` failed: cem, gem and squarem were modules there."""
    from emlib.variants import aitken_em, cavi, cem, gem, mcem, online_em, squarem, stochastic_em

    for driver in (aitken_em, cavi, cem, gem, mcem, online_em, squarem, stochastic_em):
        assert inspect.isfunction(driver)
        assert getattr(emlib, driver.__name__) is driver
    model, X, init = _gm_setup()
    assert cem(model, X, init, max_iter=3).n_iter <= 3
    from emlib.variants.cem import classify          # the modules stay importable by their paths
    from emlib.variants.gem import gaussian_mixture_q, linear_means_cm_steps  # noqa: F401
    assert classify(model, X, init).shape == (len(X),)


@pytest.mark.parametrize("driver", sorted(KEYWORDS))
def test_every_result_names_its_objective(driver):
    """Results whose trace is not log p(X | theta) are not EMResults and say what they hold."""
    result = _drivers()[driver]()
    assert isinstance(result, emlib.interface.FitResult)
    names = {"cem": "classification_log_likelihood", "online_em": "prequential_log_likelihood", "cavi": "elbo",
             "variational_em": "elbo"}
    name = names.get(driver, "log_likelihood")
    assert result.objective is getattr(result, name)
    assert isinstance(result, emlib.EMResult) == (driver not in names)


DOCUMENTED_DEFAULTS = {   # driver: (max_iter, tol), each explained in the driver's docstring
    "cem": (1000, 0.0), "stochastic_em": (500, 0.0), "mcem": (200, 1e-8), "newton_ascent": (100, 1e-10),
    "saem": (500, 0.0), "ascent_mcem": (100, 1e-3),
}


def test_max_iter_and_tol_defaults_agree_unless_documented():
    functions = {"em": emlib.em, "gem": emlib.gem, "cem": emlib.cem, "stochastic_em": emlib.stochastic_em,
                 "saem": emlib.saem, "ascent_mcem": emlib.ascent_mcem, "variational_em": emlib.variational_em,
                 "ecme": emlib.ecme,
                 "mcem": emlib.mcem, "squarem": emlib.squarem, "aitken_em": emlib.aitken_em, "cavi": emlib.cavi,
                 "gradient_ascent": emlib.gradient.gradient_ascent,
                 "newton_ascent": emlib.gradient.newton_ascent, "lbfgs_ascent": emlib.gradient.lbfgs_ascent}
    for name, function in functions.items():
        parameters = inspect.signature(function).parameters
        defaults = (parameters["max_iter"].default, parameters["tol"].default)
        if name in DOCUMENTED_DEFAULTS:
            assert defaults == DOCUMENTED_DEFAULTS[name]
            assert "on purpose" in function.__doc__ or "because" in function.__doc__, name
        else:
            assert defaults == (emlib.em.__kwdefaults__["max_iter"], emlib.em.__kwdefaults__["tol"]), name


def test_rng_is_required_wherever_randomness_is_used():
    for function in (emlib.stochastic_em, emlib.mcem, emlib.saem, emlib.ascent_mcem):
        assert inspect.signature(function).parameters["rng"].default is inspect.Parameter.empty
    for model in (emlib.GaussianMixture(2), emlib.PoissonMixture(2), emlib.GeneticLinkage(), emlib.NormalWithMissing()):
        assert inspect.signature(model.init_params).parameters["rng"].default is inspect.Parameter.empty
    _, X, _ = _gm_setup()
    with pytest.raises(ValueError, match="give either init .* or rng"):
        emlib.cavi(emlib.BayesianGaussianMixture(2), X)


@pytest.mark.parametrize("driver", sorted(KEYWORDS))
def test_callbacks_receive_t_params_and_objective_everywhere(driver):
    seen = []
    result = _drivers()[driver](callback=lambda t, params, objective: seen.append((t, params, objective)))
    assert [t for t, _, _ in seen] == list(range(1, len(seen) + 1))
    kind = {"cavi": emlib.VariationalPosterior, "saem": emlib.LogisticRandomInterceptParams,
            "ascent_mcem": emlib.LogisticRandomInterceptParams,
            "variational_em": emlib.BinaryFactorsParams,
            "ecme": emlib.MultivariateTParams}.get(driver, emlib.GaussianMixtureParams)
    assert all(isinstance(p, kind) for _, p, _ in seen)
    # the objective passed is the trace's entry for that iterate (online EM: the score of batch t)
    offset = 1 if driver == "online_em" else 0
    np.testing.assert_array_equal([o for _, _, o in seen], result.objective[1 - offset:len(seen) + 1 - offset])
