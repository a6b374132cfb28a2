"""Tests of emlib.variants.online: online EM over a stream of mini-batches.

The defining properties: on a long stream online EM lands near batch EM; it accepts a generator
and its memory does not grow with the length of the stream; the running statistics follow the
update s_t = (1 - gamma_t) s_{t-1} + gamma_t s_bar(B_t) with gamma_t = (t + t0)^(-alpha); the
trace is the prequential score; bad settings are refused with clear messages.
"""
import tracemalloc

import numpy as np
import pytest

import emlib

MODEL = emlib.GaussianMixture(2)
TRUTH = emlib.GaussianMixtureParams([0.35, 0.65], [[-2.0, 1.0], [1.5, -0.5]],
                                    [[[1.0, 0.3], [0.3, 0.6]], [[0.8, -0.2], [-0.2, 1.2]]])
INIT = emlib.GaussianMixtureParams([0.5, 0.5], [[-1.0, 0.0], [1.0, 0.0]], np.stack([2.0 * np.eye(2)] * 2))


def _vector(params):
    return emlib.flatten_params(params)  # weights, means, covariances as one flat vector


def _distance(a, b):
    return float(np.linalg.norm(_vector(a) - _vector(b)))


def _stream(n_batches, batch_size, seed):
    """A generator of fresh mini-batches from TRUTH: nothing is stored."""
    rng = np.random.default_rng(seed)
    for _ in range(n_batches):
        yield MODEL.sample(TRUTH, batch_size, rng)[0]


def _stats_close(a, b, rtol=1e-12):
    np.testing.assert_allclose(a.counts, b.counts, rtol=rtol)
    np.testing.assert_allclose(a.sum_x, b.sum_x, rtol=rtol)
    np.testing.assert_allclose(a.sum_xx, b.sum_xx, rtol=rtol)


def test_long_stream_lands_near_batch_em():
    # 200 000 points in batches of 1000; batch EM on the same points for reference (started at
    # the truth, which is close to the MLE of so many points, to save iterations).
    X = np.concatenate(list(_stream(200, 1000, seed=1)))
    batch = emlib.em(MODEL, X, TRUTH, tol=1e-10)
    assert batch.converged
    res = emlib.online_em(MODEL, _stream(200, 1000, seed=1), INIT, alpha=0.6)
    assert isinstance(res, emlib.OnlineEMResult)
    assert res.n_batches == 200 and res.n_points == 200_000 and res.n_iter == 200 and not res.converged
    # At the end gamma_t = 200**-0.6 = 0.04: s_t is mostly an average over the last ~25 batches
    # (25 000 points), whose sampling error in a mean is about 1/sqrt(0.35 * 25 000) = 0.011 per
    # coordinate; 0.05 on the whole parameter vector allows for that and for the covariances.
    assert _distance(res.params, batch.params) < 0.05
    np.testing.assert_allclose(res.params.weights, batch.params.weights, atol=0.01)
    np.testing.assert_allclose(res.params.means, batch.params.means, atol=0.03)


def test_repeated_passes_over_a_data_set_converge_to_its_batch_answer():
    # Streaming a fixed data set again and again (shuffled) is a stream from its empirical
    # distribution, whose EM fixed point is the batch answer: the distance must keep shrinking.
    X = np.concatenate(list(_stream(5, 1000, seed=2)))
    batch = emlib.em(MODEL, X, INIT, tol=1e-12)
    rng = np.random.default_rng(3)

    def passes(n):
        for _ in range(n):
            perm = rng.permutation(len(X))
            for start in range(0, len(X), 100):
                yield X[perm[start:start + 100]]

    dist = {}
    emlib.online_em(MODEL, passes(20), INIT, alpha=0.6,
                    callback=lambda t, p, s: dist.__setitem__(t, _distance(p, batch.params)))
    # after 2, 5 and 20 passes (100, 250, 1000 batches)
    assert dist[100] > dist[250] > dist[1000]
    assert dist[1000] < 0.02


def test_memory_does_not_grow_with_the_stream():
    # Peak traced memory for a stream ten times longer (200 vs 20 batches of 1000 points) stays
    # within 1.3 times: only one batch, the statistics and one float per batch (the trace) are
    # held. The growth per extra batch must stay under 1000 bytes, whereas keeping the batches
    # would cost 16 000 bytes (1000 x 2 floats) per batch.
    def peak(n_batches):
        tracemalloc.start()
        emlib.online_em(MODEL, _stream(n_batches, 1000, seed=4), INIT)
        _, top = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        return top

    peak(3)  # warm caches (imports, BLAS buffers) outside the measurement
    short, long = peak(20), peak(200)
    assert long < 1.3 * short, (short, long)
    assert (long - short) / 180 < 1000, (short, long)


def test_accepts_generator_and_consumes_it_lazily():
    produced = []

    def gen():
        for b in _stream(5, 200, seed=5):
            produced.append(1)
            yield b

    seen = []
    res = emlib.online_em(MODEL, gen(), INIT, callback=lambda t, p, s: seen.append(len(produced)))
    assert seen == [1, 2, 3, 4, 5]  # batch t was processed before batch t + 1 was produced
    assert res.n_batches == 5
    res = emlib.online_em(MODEL, _stream(100, 50, seed=5), INIT, max_batches=7)
    assert res.n_batches == 7 and res.n_points == 350


def test_update_rule_and_default_step_sizes():
    # With n_warmup large the parameters stay at theta_0, so every batch's statistics are known:
    # s_1 = s_bar(B_1), s_t = (1 - gamma_t) s_{t-1} + gamma_t s_bar(B_t), gamma_t = (t + t0)^-alpha.
    batches = list(_stream(4, 300, seed=6))
    batches[2] = batches[2][:120]  # sizes may differ: statistics are per point
    alpha, t0 = 0.7, 2.5
    res = emlib.online_em(MODEL, batches, INIT, alpha=alpha, t0=t0, n_warmup=10)
    assert res.n_iter == 0 and res.params is INIT
    s = None
    for t, b in enumerate(batches, start=1):
        s_bar = (1.0 / len(b)) * MODEL.e_step(b, INIT)[0]
        s = s_bar if s is None else (1 - (t + t0) ** -alpha) * s + (t + t0) ** -alpha * s_bar
    _stats_close(res.stats, s)


def test_alpha_one_is_the_plain_average_and_one_em_step():
    # Proposition online_em-prop-average: with alpha = 1 and t0 = 0, s_t is the plain average of
    # the batch statistics; with theta held at theta_0 and equal batches that is the whole-data
    # statistics per point, and the M-step gives exactly one EM step.
    batches = list(_stream(6, 250, seed=7))
    X = np.concatenate(batches)
    res = emlib.online_em(MODEL, batches, INIT, alpha=1.0, t0=0.0, n_warmup=6)
    full, _ = MODEL.e_step(X, INIT)
    _stats_close(res.stats, (1.0 / len(X)) * full, rtol=1e-10)
    one_step = emlib.em(MODEL, X, INIT, max_iter=1, tol=0).params
    np.testing.assert_allclose(_vector(MODEL.m_step(res.stats)), _vector(one_step), rtol=1e-9)


def test_trace_is_prequential_and_callback_sees_every_batch():
    batches = list(_stream(6, 400, seed=8))
    params_after = {}
    scores = []
    res = emlib.online_em(MODEL, batches, INIT, n_warmup=2,
                          callback=lambda t, p, s: (params_after.__setitem__(t, p), scores.append(s)))
    assert res.log_likelihood.shape == (6,) and res.n_iter == 4
    np.testing.assert_array_equal(scores, res.log_likelihood)
    before = [INIT] + [params_after[t] for t in range(1, 6)]
    for t, (b, p) in enumerate(zip(batches, before)):
        assert res.log_likelihood[t] == pytest.approx(MODEL.log_likelihood(b, p) / len(b), rel=1e-12)
    assert params_after[1] is INIT and params_after[2] is INIT and params_after[3] is not INIT


def test_robbins_monro_bounds_of_the_step_sizes():
    # Lemma online_em-lem-robbins-monro, checked on partial sums up to T = 10**6: for
    # gamma_t = t^-alpha, sum gamma_t^2 <= 1 + 1/(2 alpha - 1) (bounded) when alpha > 1/2, and
    # sum gamma_t >= ((T + 1)^(1 - alpha) - 1)/(1 - alpha) (unbounded) when alpha < 1.
    t = np.arange(1, 10**6 + 1, dtype=float)
    for alpha in (0.55, 0.75, 0.95):
        g = t ** -alpha
        assert np.sum(g ** 2) <= 1 + 1 / (2 * alpha - 1)
        assert np.sum(g) >= ((t[-1] + 1) ** (1 - alpha) - 1) / (1 - alpha)
    g = t ** -0.5  # alpha = 1/2: the squares sum like log T, beyond any fixed bound
    assert np.sum(g ** 2) >= np.log(t[-1] + 1)


def test_the_result_is_the_recursion_written_out():
    """Online EM is deterministic given its stream: the parameters and the trace equal the update
    s_t = (1 - gamma_t) s_{t-1} + gamma_t s_bar(B_t), theta_t = M(s_t), computed here by hand."""
    batches = list(_stream(6, 200, seed=9))
    result = emlib.online_em(MODEL, batches, INIT, alpha=0.7, t0=2.0)
    params, stats, trace = INIT, None, []
    for t, batch in enumerate(batches, start=1):
        batch_stats, loglik = MODEL.e_step(batch, params)
        trace.append(loglik / len(batch))
        batch_stats = (1.0 / len(batch)) * batch_stats
        stats = batch_stats if t == 1 else (1 - (t + 2.0) ** -0.7) * stats + (t + 2.0) ** -0.7 * batch_stats
        params = MODEL.m_step(stats)
    np.testing.assert_allclose(result.prequential_log_likelihood, trace, rtol=1e-13)
    np.testing.assert_allclose(_vector(result.params), _vector(params), rtol=1e-12)
    other = emlib.online_em(MODEL, _stream(6, 200, seed=10), INIT, alpha=0.7, t0=2.0)
    assert not np.array_equal(other.prequential_log_likelihood, result.prequential_log_likelihood)


def test_a_starving_component_is_reported_when_it_starts():
    """A stream that stops visiting one cluster: its component receives nothing from new batches,
    and its running statistics decay by the factor 1 - gamma_t per batch. That went unreported for
    hundreds of batches until the M-step found the component empty and
    the stream stopped with an error. Now one warning names it, at the caller's line, at the batch
    where its share first falls below STARVING_SHARE (here batch 123; the share is 2.6e-11 at batch
    400, still far from empty)."""
    from emlib.variants.online import STARVING_SHARE

    rng = np.random.default_rng(3)
    centres = np.array([[0.0, 0.0], [30.0, 30.0]])

    def stream():
        for t in range(200):
            labels = rng.integers(2, size=50) if t < 5 else np.zeros(50, dtype=int)  # cluster 1 stops
            yield centres[labels] + rng.normal(size=(50, 2))

    start = emlib.GaussianMixtureParams([0.5, 0.5], centres, np.stack([np.eye(2)] * 2))
    shares = []
    with pytest.warns(emlib.ComponentStarvingWarning) as caught:
        result = emlib.online_em(MODEL, stream(), start,
                                 callback=lambda t, p, s: shares.append(p.weights[1]))  # the call the warning names
    starving = [w for w in caught if issubclass(w.category, emlib.ComponentStarvingWarning)]
    assert len(starving) == 1 and starving[0].filename == __file__
    batch = int(str(starving[0].message).split("at batch ")[1].split(" ")[0])
    assert "component(s) [1] are starving" in str(starving[0].message)
    assert shares[batch - 2] >= STARVING_SHARE > shares[batch - 1]   # when it starts, not later
    assert 20 < batch < 200 and result.n_batches == 200


@pytest.mark.parametrize("alpha", [0.5, 0.3, 1.2, float("nan"), "0.7"])
def test_alpha_outside_half_open_interval_is_refused(alpha):
    with pytest.raises(ValueError, match=r"alpha must satisfy 1/2 < alpha <= 1"):
        emlib.online_em(MODEL, _stream(2, 10, seed=0), INIT, alpha=alpha)


def test_bad_settings_and_streams_are_refused():
    X = MODEL.sample(TRUTH, 100, np.random.default_rng(0))[0]
    with pytest.raises(ValueError, match="t0 must be a non-negative number"):
        emlib.online_em(MODEL, [X], INIT, t0=-1.0)
    with pytest.raises(ValueError, match=r"step_size\(2\) returned 1.5; every step size must be a number in \(0, 1\]"):
        emlib.online_em(MODEL, [X, X], INIT, step_size=lambda t: 1.5)
    with pytest.raises(ValueError, match="step_size must be a callable"):
        emlib.online_em(MODEL, [X], INIT, step_size=0.1)
    with pytest.raises(ValueError, match="n_warmup must be a non-negative integer"):
        emlib.online_em(MODEL, [X], INIT, n_warmup=-1)
    with pytest.raises(ValueError, match="max_batches must be a positive integer"):
        emlib.online_em(MODEL, [X], INIT, max_batches=0)
    with pytest.raises(ValueError, match="batch 2: it is empty"):
        emlib.online_em(MODEL, [X, X[:0], X], INIT)
    with pytest.raises(ValueError, match="batches yielded no mini-batch"):
        emlib.online_em(MODEL, iter([]), INIT)
    with pytest.raises(ValueError, match="not one array; split the data"):
        emlib.online_em(MODEL, X, INIT)
    with pytest.raises(ValueError, match="batches must be an iterable"):
        emlib.online_em(MODEL, 5, INIT)
    # issue 13 item 7: an error raised while a batch is processed names the batch
    with pytest.raises(ValueError, match="batch 2: params are for D = 2 dimensions but X has 3 columns"):
        emlib.online_em(MODEL, [X, np.ones((10, 3))], INIT)
    with pytest.raises(ValueError, match="batch 2: X contains NaN"):
        emlib.online_em(MODEL, [X, np.full((10, 2), np.nan)], INIT)
    with pytest.raises(ValueError, match="params must be GaussianMixtureParams"):
        emlib.online_em(MODEL, [X], "not params")


def test_step_size_callable_replaces_the_default_schedule():
    batches = list(_stream(3, 200, seed=11))
    res = emlib.online_em(MODEL, batches, INIT, step_size=lambda t: 0.25, n_warmup=3, alpha=5.0)
    s = (1.0 / 200) * MODEL.e_step(batches[0], INIT)[0]
    for b in batches[1:]:
        s = 0.75 * s + 0.25 * ((1.0 / 200) * MODEL.e_step(b, INIT)[0])
    _stats_close(res.stats, s)


def test_full_batch_with_unit_steps_is_em():
    # Exercise online_em-ex-em: the whole data set as every batch and gamma_t = 1 reproduce EM.
    X = np.concatenate(list(_stream(2, 500, seed=12)))
    online = emlib.online_em(MODEL, [X] * 5, INIT, step_size=lambda t: 1.0)
    batch = emlib.em(MODEL, X, INIT, max_iter=5, tol=0)
    np.testing.assert_allclose(_vector(online.params), _vector(batch.params), rtol=1e-10)
    # the prequential scores are then EM's log-likelihoods per point, theta_0 ... theta_4
    np.testing.assert_allclose(online.log_likelihood, batch.log_likelihood[:5] / len(X), rtol=1e-12)
