"""Claims of the chapter "Online EM" (book/online_em.ipynb) that tests/test_online.py does not
check: the rate of the step 1/t (proposition "rate") and its exercise, the fraction of missing
information of the chapter's mixture, the slow alpha = 1 curve, the weights of the delay t0, and
the gain of averaging the late iterates over several independent streams."""
import numpy as np
import pytest

import emlib

MODEL = emlib.GaussianMixture(2)
TRUTH = emlib.GaussianMixtureParams(
    [0.35, 0.65], [[-2.0, 1.0], [1.5, -0.5]],
    [[[1.0, 0.3], [0.3, 0.6]], [[0.8, -0.2], [-0.2, 1.2]]])
INIT = emlib.GaussianMixtureParams(
    [0.5, 0.5], [[-1.0, 0.0], [1.0, 0.0]], np.stack([2.0 * np.eye(2)] * 2))
LOWER = np.tril_indices(2)


def to_vector(p):
    return np.concatenate([p.weights[:1], p.means.ravel(), p.covariances[:, LOWER[0], LOWER[1]].ravel()])


def from_vector(u):
    cov = np.zeros((2, 2, 2))
    cov[:, LOWER[0], LOWER[1]] = u[5:].reshape(2, 3)
    cov = cov + np.swapaxes(cov, 1, 2) - cov * np.eye(2)
    return emlib.GaussianMixtureParams([u[0], 1 - u[0]], u[1:5].reshape(2, 2), cov)


def distance(a, b):
    return float(np.linalg.norm(emlib.flatten_params(a) - emlib.flatten_params(b)))


@pytest.fixture(scope="module")
def chapter_data():
    X, _ = MODEL.sample(TRUTH, 10_000, np.random.default_rng(0))
    mle = emlib.em(MODEL, X, INIT, tol=0, max_iter=80).params
    return X, mle


# ------------------------------------------------------------------ proposition "rate"
def products_and_variances(c, T):
    """P_T = prod_{u=2}^T (1 - c/u) and V_T = sum_{t=2}^T t^-2 (P_T / P_t)^2 for every T (sigma = 1)."""
    t = np.arange(2, T + 1, dtype=float)
    P = np.cumprod(1 - c / t)
    V = np.cumsum(1 / (t * P) ** 2) * P ** 2        # sum_t t^-2 P_T^2 / P_t^2
    return t, P, V


@pytest.mark.parametrize("c", [0.2, 0.31, 0.4, 0.6, 0.8, 1.0])
def test_the_transient_of_the_step_one_over_t_decays_like_t_to_the_minus_c(c):
    """Part 1: P_T T^c stays between two positive constants (it converges)."""
    t, P, _ = products_and_variances(c, 10**6)
    scaled = P * t ** c
    assert 0.1 < scaled.min() and scaled.max() < 10
    assert abs(scaled[-1] / scaled[len(t) // 10] - 1) < 1e-4       # settled by T = 10^5


@pytest.mark.parametrize("c, exponent", [(0.2, -0.2), (0.4, -0.4), (0.6, -0.5), (0.8, -0.5)])
def test_the_noise_of_the_step_one_over_t_has_the_exponent_of_the_proposition(c, exponent):
    """Part 2 and exercise "rate": the log-log slope of sqrt(V_T) between T = 10^5 and 10^6 is
    -min(c, 1/2) within 0.01, as the solution says, and the exact
    recursion V_t = (1 - c/t)^2 V_{t-1} + 1/t^2 gives the same numbers as the closed form."""
    t, P, V = products_and_variances(c, 10**6)
    slope = 0.5 * np.log10(V[-1] / V[10**5 - 2])
    assert abs(slope - exponent) < 0.01
    transient = np.log10(P[-1] / P[10**5 - 2])
    assert abs(transient + c) < 1e-3
    v = 0.0
    for u in range(2, 2001):
        v = (1 - c / u) ** 2 * v + 1 / u ** 2
    assert v == pytest.approx(V[2000 - 2], rel=1e-10)


def test_the_noise_of_the_equal_weight_average_is_sigma_squared_over_t():
    """Without feedback (c = 1) the step 1/t weighs batches 2, ..., T equally, 1/T each (the first
    batch, the start, has the other 1/T): V_T = (T - 1) / T^2."""
    t, P, V = products_and_variances(1.0, 1000)
    np.testing.assert_allclose(P, 1 / t, rtol=1e-12)
    np.testing.assert_allclose(V, (t - 1) / t ** 2, rtol=1e-10)


# ------------------------------------------------------------------ the chapter's mixture
def test_more_than_two_thirds_of_the_information_is_missing_in_the_slowest_direction(chapter_data):
    """lambda_max of EM's Jacobian at the batch answer is 0.69 (> 2/3 > 1/2), and batch EM's
    steps shrink at that ratio (the independent check of the linear rate)."""
    X, mle = chapter_data
    J = emlib.em_map_jacobian(MODEL, X, mle, to_vector=to_vector, from_vector=from_vector)
    lam_max = np.max(np.abs(np.linalg.eigvals(J)))
    assert 2 / 3 < lam_max < 0.72
    steps = []
    emlib.em(MODEL, X, INIT, tol=0, max_iter=40,
             callback=lambda t, p, ll: steps.append(emlib.flatten_params(p)))
    d = np.linalg.norm(np.diff(np.array(steps), axis=0), axis=1)
    assert d[-1] / d[-2] == pytest.approx(lam_max, abs=2e-3)


def passes(data, batch_size, n_passes, seed):
    rng = np.random.default_rng(seed)
    for _ in range(n_passes):
        order = rng.permutation(len(data))
        for start in range(0, len(data), batch_size):
            yield data[order[start:start + batch_size]]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_alpha_one_is_the_slowest_and_its_slope_is_near_minus_one_minus_lambda(chapter_data, seed):
    """The figure "alpha", for three orders of the batches: after eight passes alpha = 1 is the
    farthest from the batch answer, and its log-log slope over the second half is within 0.1 of
    -(1 - lambda_max) = -0.31."""
    X, mle = chapter_data
    ends, slope = {}, None
    for alpha in (0.55, 0.7, 0.85, 1.0):
        path = []
        emlib.online_em(MODEL, passes(X, 250, 8, seed), INIT, alpha=alpha,
                        callback=lambda t, p, s: path.append(distance(p, mle)))
        ends[alpha] = path[-1]
        if alpha == 1.0:
            t = np.arange(1, len(path) + 1)
            late = t > len(t) // 2
            slope = np.polyfit(np.log(t[late]), np.log(np.array(path)[late]), 1)[0]
    assert ends[1.0] == max(ends.values()) and ends[1.0] > 5 * ends[0.7]
    assert abs(slope + 0.31) < 0.1


# ------------------------------------------------------------------ exercise "t0"
@pytest.mark.parametrize("t0", [0.0, 3.0, 50.0])
def test_a_delay_t0_gives_the_first_batch_the_weight_of_one_plus_t0_batches(t0):
    """w_{1,T} = (1 + t0) / (T + t0) and w_{t,T} = 1 / (T + t0) for t >= 2, from the update itself:
    online EM on batches whose statistics are unit vectors e_t records their weights in s_T."""
    T = 40
    gamma = [1.0] + [1 / (t + t0) for t in range(2, T + 1)]
    s = np.zeros(T)
    for t in range(T):
        s = (1 - gamma[t]) * s
        s[t] += gamma[t]
    assert s[0] == pytest.approx((1 + t0) / (T + t0))
    np.testing.assert_allclose(s[1:], 1 / (T + t0))
    # a larger t0 keeps the first batch's weight larger, for every T
    assert (1 + 50) / (T + 50) > (1 + 3) / (T + 3) > 1 / T


# ------------------------------------------------------------------ averaging the late iterates
def averaging(seed, n_points=60_000, batch_size=20):
    """Distances to the truth of the last iterate, of the average after a burn-in of a tenth of
    the batches, and of the maximum-likelihood estimate of the points of that window."""
    X, _ = MODEL.sample(TRUTH, n_points, np.random.default_rng(seed))
    T = n_points // batch_size
    acc = {"n": 0, "mean": None}

    def callback(t, params, score):
        if t > T // 10:
            v = emlib.flatten_params(params)
            acc["n"] += 1
            acc["mean"] = v if acc["n"] == 1 else acc["mean"] + (v - acc["mean"]) / acc["n"]

    batches = (X[i:i + batch_size] for i in range(0, n_points, batch_size))
    last = emlib.online_em(MODEL, batches, INIT, alpha=0.6, callback=callback).params
    window_mle = emlib.em(MODEL, X[(T // 10) * batch_size:], INIT, tol=1e-10).params
    average = emlib.unflatten_params(TRUTH, acc["mean"])
    return distance(last, TRUTH), distance(average, TRUTH), distance(window_mle, TRUTH)


def test_the_average_of_the_late_iterates_is_as_accurate_as_the_mle_of_its_window():
    """On four streams other than the chapter's (60 000 points each): on average over the
    streams, the average after a burn-in of a tenth is within 20% of the error of the
    maximum-likelihood estimate of the points it covers, and closer to the truth than the last
    iterate, which is more than 1.5 times as far as that estimate. (In a single short stream
    the last iterate can be the closer one by chance.)"""
    runs = np.array([averaging(seed) for seed in (201, 202, 203, 204)])
    last, average, window_mle = runs.T
    assert 0.8 < np.mean(average / window_mle) < 1.2
    assert average.mean() < last.mean()
    assert last.mean() > 1.5 * window_mle.mean()
