"""The binary latent factor model: the exact E-step against a brute-force reference, the
mean-field pieces against the exact ELBO of the product distribution, each coordinate update
and the M-step as exact maximizers, and clear errors for bad input."""
import numpy as np
import pytest
from scipy import stats as sps

import emlib
from emlib import BinaryFactors, BinaryFactorsParams, BinaryFactorsStats


def random_params(M=3, D=4, seed=0, noise_var=0.6):
    rng = np.random.default_rng(seed)
    return BinaryFactorsParams(rng.uniform(0.2, 0.8, M), rng.normal(size=D), rng.normal(size=(M, D)), noise_var)


def data(M=3, D=4, n=60, seed=0):
    params = random_params(M, D, seed)
    X, z = BinaryFactors(M).sample(params, n, np.random.default_rng(seed + 100))
    return X, params


def product_q(lam, configurations):
    """q(z_n = c) = prod_m lambda_nm^c_m (1 - lambda_nm)^(1 - c_m), shape (N, 2^M)."""
    return np.prod(np.where(configurations[None] == 1, lam[:, None, :], 1 - lam[:, None, :]), axis=2)


# ------------------------------------------------------------------ the exact E-step
def test_log_joint_and_likelihood_match_scipy_by_brute_force():
    X, params = data()
    model = BinaryFactors(3)
    Z = model.configurations()
    assert Z.shape == (8, 3) and len({tuple(r) for r in Z}) == 8
    expected = np.empty((len(X), len(Z)))
    for c, z in enumerate(Z):
        prior = np.prod(np.where(z == 1, params.probs, 1 - params.probs))
        centre = params.mean + z @ params.loadings
        expected[:, c] = np.log(prior) + sps.multivariate_normal(centre, params.noise_var * np.eye(4)).logpdf(X)
    np.testing.assert_allclose(model.log_joint(X, params), expected, rtol=1e-11)
    assert model.log_likelihood(X, params) == pytest.approx(np.log(np.exp(expected).sum(axis=1)).sum(), rel=1e-12)
    np.testing.assert_allclose(model.posterior(X, params).sum(axis=1), 1.0, rtol=1e-12)


def test_statistics_are_additive_and_match_their_definition():
    X, params = data()
    model = BinaryFactors(3)
    q = model.posterior(X, params)
    Zt = np.hstack([np.ones((8, 1)), model.configurations()])
    s = model.expected_stats(X, q)
    ez = q @ Zt                                                        # E[ztilde_n], (N, M + 1)
    np.testing.assert_allclose(s.cross, ez.T @ X, rtol=1e-12)
    np.testing.assert_allclose(s.second, np.einsum("nc,ci,cj->ij", q, Zt, Zt), rtol=1e-12)
    assert s.count == len(X) and s.sum_sq == pytest.approx(np.sum(X ** 2))
    a, b = model.expected_stats(X[:25], q[:25]), model.expected_stats(X[25:], q[25:])
    total = a + b
    np.testing.assert_allclose(total.second, s.second, rtol=1e-12)
    np.testing.assert_allclose((0.5 * total).cross, 0.5 * s.cross, rtol=1e-12)


def test_em_with_the_exact_e_step_never_lowers_the_likelihood():
    X, _ = data(n=120, seed=3)
    model = BinaryFactors(3)
    fit = emlib.em(model, X, model.init_params(X, np.random.default_rng(0)), max_iter=60, tol=0)
    assert np.all(np.diff(fit.log_likelihood) > -1e-9 * np.abs(fit.log_likelihood[1:]))
    assert fit.log_likelihood[-1] > fit.log_likelihood[0] + 1.0


def test_m_step_maximizes_the_expected_complete_log_likelihood():
    """Q(theta | q) = E_q[log p(x, z | theta)] at the M-step beats 200 random perturbations of it."""
    X, params = data(n=80, seed=4)
    model = BinaryFactors(3)
    q = model.posterior(X, params)
    best = model.m_step(model.expected_stats(X, q))
    top = emlib.bounds.expected_complete_loglik(model, X, best, q)
    rng = np.random.default_rng(5)
    for _ in range(200):
        eps = 0.05 * rng.standard_normal()
        other = BinaryFactorsParams(np.clip(best.probs + 0.02 * rng.standard_normal(3), 0.01, 0.99),
                                    best.mean + eps * rng.standard_normal(4),
                                    best.loadings + 0.05 * rng.standard_normal((3, 4)),
                                    best.noise_var * np.exp(0.1 * rng.standard_normal()))
        assert emlib.bounds.expected_complete_loglik(model, X, other, q) < top


def test_m_step_is_a_stationary_point_of_q_and_its_noise_is_the_mean_squared_residual():
    """Every partial derivative of Q at the M-step vanishes (central differences, step 1e-5,
    relative to the scale of Q), and sigma^2 = sum_n E_q||x_n - mu - W^T z_n||^2 / (N D)."""
    X, params = data(n=80, seed=11)
    model = BinaryFactors(3)
    q = model.posterior(X, params)
    best = model.m_step(model.expected_stats(X, q))
    u = emlib.flatten_params(best)

    def Q(v):
        return emlib.bounds.expected_complete_loglik(model, X, emlib.unflatten_params(best, v), q)

    scale = abs(Q(u))
    for j in range(u.size):
        h = 1e-5 * max(1.0, abs(u[j]))
        e = np.zeros_like(u)
        e[j] = h
        assert abs(Q(u + e) - Q(u - e)) / (2 * h) < 1e-6 * scale
    Z = model.configurations()
    centres = best.mean + Z @ best.loadings                               # (C, D)
    sq = ((X[:, None, :] - centres[None]) ** 2).sum(axis=2)                # (N, C)
    assert best.noise_var == pytest.approx(np.sum(q * sq) / X.size, rel=1e-10)


# ------------------------------------------------------------------ the mean-field E-step
def test_mean_field_elbo_is_the_elbo_of_the_product_distribution():
    """mean_field_elbo equals emlib.bounds.elbo of q expanded to the 2^M configurations, and the
    mean-field statistics equal the exact statistics of that q."""
    X, params = data()
    model = BinaryFactors(3)
    lam = np.random.default_rng(1).uniform(0.05, 0.95, (len(X), 3))
    q = product_q(lam, model.configurations())
    assert model.mean_field_elbo(X, params, lam) == pytest.approx(emlib.bounds.elbo(model, X, params, q), rel=1e-11)
    a, b = model.mean_field_stats(X, lam), model.expected_stats(X, q)
    np.testing.assert_allclose(a.second, b.second, rtol=1e-11)
    np.testing.assert_allclose(a.cross, b.cross, rtol=1e-11)


def test_each_coordinate_update_maximizes_the_elbo_over_its_factor():
    """After a sweep, moving any one lambda_nm to another value on a grid lowers F."""
    X, params = data(n=20)
    model = BinaryFactors(3)
    lam = model.mean_field_sweep(X, params, model.mean_field_init(X, params))
    # the last factor updated in the sweep is optimal given all others
    for n in (0, 7, 13):
        best = model.mean_field_elbo(X, params, lam)
        for v in np.linspace(0.001, 0.999, 41):
            other = lam.copy()
            other[n, 2] = v
            assert model.mean_field_elbo(X, params, other) <= best + 1e-12 * abs(best)


def test_a_sweep_never_lowers_the_elbo_and_stays_below_the_likelihood():
    X, params = data(n=50, seed=7)
    model = BinaryFactors(3)
    lam = np.random.default_rng(2).uniform(size=(50, 3))
    values = [model.mean_field_elbo(X, params, lam)]
    for _ in range(15):
        lam = model.mean_field_sweep(X, params, lam)
        values.append(model.mean_field_elbo(X, params, lam))
    assert np.all(np.diff(values) >= -1e-9 * np.abs(values[1:]))
    assert values[-1] < model.log_likelihood(X, params)


def test_with_orthogonal_loadings_the_mean_field_fixed_point_is_the_exact_posterior():
    """If w_m^T w_l = 0 for m != l the posterior factorizes over the factors, so the mean-field
    family contains it: the fixed point has the exact marginals and F = log p(x | theta)."""
    rng = np.random.default_rng(8)
    Q, _ = np.linalg.qr(rng.normal(size=(5, 5)))
    params = BinaryFactorsParams([0.3, 0.6, 0.5], rng.normal(size=5), 1.5 * Q[:3], 0.4)
    model = BinaryFactors(3)
    X, _ = model.sample(params, 40, rng)
    lam = model.mean_field_init(X, params)
    for _ in range(3):
        lam = model.mean_field_sweep(X, params, lam)
    exact = model.posterior(X, params) @ model.configurations()
    np.testing.assert_allclose(lam, exact, rtol=1e-9, atol=1e-12)
    assert model.mean_field_elbo(X, params, lam) == pytest.approx(model.log_likelihood(X, params), rel=1e-11)


# ------------------------------------------------------------------ sampling and errors
def test_sample_has_the_factor_frequencies_and_the_noise_of_the_parameters():
    params = random_params(M=2, D=3, seed=9, noise_var=0.25)
    X, z = BinaryFactors(2).sample(params, 20_000, np.random.default_rng(10))
    assert X.shape == (20_000, 3) and z.shape == (20_000, 2)
    se = np.sqrt(params.probs * (1 - params.probs) / 20_000)
    assert np.all(np.abs(z.mean(axis=0) - params.probs) < 5 * se)
    residual = X - params.mean - z @ params.loadings
    assert residual.var() == pytest.approx(0.25, rel=0.03)


@pytest.mark.parametrize("kwargs, message", [
    (dict(probs=[0.0, 0.5]), "strictly between 0 and 1"),
    (dict(probs=[0.5, 1.0]), "strictly between 0 and 1"),
    (dict(noise_var=0.0), "noise_var must be positive"),
    (dict(loadings=np.ones((3, 2))), "loadings must have shape"),
    (dict(mean=[np.nan, 0.0]), "NaN"),
])
def test_bad_parameters_are_refused(kwargs, message):
    good = dict(probs=[0.5, 0.5], mean=[0.0, 0.0], loadings=np.eye(2), noise_var=1.0)
    with pytest.raises(ValueError, match=message):
        BinaryFactorsParams(**{**good, **kwargs})


def test_bad_models_data_and_q_are_refused():
    with pytest.raises(ValueError, match="positive integer"):
        BinaryFactors(0)
    with pytest.raises(ValueError, match="too many to enumerate"):
        BinaryFactors(17).configurations()
    model = BinaryFactors(2)
    X, params = data(M=2, D=4)
    with pytest.raises(ValueError, match="at least 3 are needed"):
        model.check_data(X[:2])
    with pytest.raises(ValueError, match="NaN"):
        model.check_data(np.where(np.arange(X.size).reshape(X.shape) == 5, np.nan, X))
    with pytest.raises(ValueError, match="columns"):
        model.log_joint(X[:, :3], params)
    with pytest.raises(ValueError, match="model has 3"):
        BinaryFactors(3).check_params(params)
    with pytest.raises(ValueError, match=r"shape \(N, M\)"):
        model.mean_field_sweep(X, params, np.full((len(X), 3), 0.5))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        model.mean_field_elbo(X, params, np.full((len(X), 2), 1.5))


def test_a_factor_that_is_never_on_gives_a_clear_error_in_the_m_step():
    X, params = data(M=2, D=4)
    lam = np.zeros((len(X), 2))
    lam[:, 0] = 0.5
    with pytest.raises(ValueError, match="never"):
        BinaryFactors(2).m_step(BinaryFactors(2).mean_field_stats(X, lam))


def test_stats_refuse_to_add_other_types():
    s = BinaryFactorsStats(1.0, np.eye(2), np.zeros((2, 3)), 0.0)
    with pytest.raises(TypeError):
        s + 1.0
