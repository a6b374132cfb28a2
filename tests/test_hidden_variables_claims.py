"""The claims of the chapter "Maximum likelihood with hidden variables" (book/hidden_variables.ipynb),
checked independently of the notebook on the same data: the stationary points and their Hessian
signatures, the gradient and Hessian formulas, EM's monotonicity from every start the chapter uses,
the basins, the step-size limit, and the plateau."""
import itertools

import numpy as np
import pytest
from scipy import optimize

import emlib
from emlib.gradient import MixtureObjective, gradient_ascent, means_gradient, means_hessian

# The chapter's setup: 0.3 N(mu_1, 1) + 0.7 N(mu_2, 1/2) (variances), N = 92, true means (-1, 1.5), seed 2.
WEIGHTS, VARIANCES = [0.3, 0.7], [[1.0], [0.5]]
STARTS = {"A": (-2.5, 3.0), "B": (3.0, -2.5), "C": (3.0, 2.0), "D": (-2.5, -1.5), "far": (1.5, 8.0)}


@pytest.fixture(scope="module")
def chapter():
    model = emlib.GaussianMixture(2, "diag", fixed={"weights": WEIGHTS, "covariances": VARIANCES})
    truth = emlib.GaussianMixtureParams(WEIGHTS, [[-1.0], [1.5]], VARIANCES)
    X, _ = model.sample(truth, 92, np.random.default_rng(2))
    return model, X, MixtureObjective(model, X)


def grad_at(model, X, obj, mu):
    return means_gradient(model, X, obj.to_params(mu)).ravel()


def hess_at(model, X, obj, mu):
    return means_hessian(model, X, obj.to_params(mu))


@pytest.fixture(scope="module")
def stationary(chapter):
    """All stationary points in the square [-3, 3.5]^2 found from a 10 x 10 grid of starts
    (finer than the chapter's 8 x 8, so that a missed point would show up here)."""
    model, X, obj = chapter
    found = []
    for start in itertools.product(np.linspace(-3, 3.5, 10), repeat=2):
        sol = optimize.root(lambda m: grad_at(model, X, obj, m), start,
                            jac=lambda m: hess_at(model, X, obj, m), tol=1e-12)
        if sol.success and np.all((sol.x > -3) & (sol.x < 3.5)) \
                and not any(np.allclose(sol.x, s, atol=1e-6) for s in found):
            found.append(sol.x)
    return sorted(found, key=lambda m: -obj.value(m))


def test_three_stationary_points_with_the_stated_signatures(chapter, stationary):
    model, X, obj = chapter
    assert len(stationary) == 3
    signs = []
    for mu in stationary:
        assert np.linalg.norm(grad_at(model, X, obj, mu)) < 1e-8  # truly stationary
        eig = np.linalg.eigvalsh(hess_at(model, X, obj, mu))
        assert np.all(np.abs(eig) > 1.0)  # clearly non-degenerate, so the signs are meaningful
        signs.append(tuple(np.sign(eig).astype(int)))
    assert signs == [(-1, -1), (-1, -1), (-1, 1)]  # global max, second max, saddle


def test_the_global_maximum_is_near_the_truth_and_the_swapped_one_is_lower(chapter, stationary):
    model, X, obj = chapter
    top, swap, saddle = stationary
    assert np.linalg.norm(top - [-1.0, 1.5]) < 0.2
    assert swap[0] > 0 > swap[1]  # labels swapped: component 1 on the right-hand group
    assert obj.value(top) - obj.value(swap) > 10
    assert obj.value(swap) > obj.value(saddle)
    # the saddle lies between the two maxima
    assert min(top[0], swap[0]) < saddle[0] < max(top[0], swap[0])
    assert min(top[1], swap[1]) < saddle[1] < max(top[1], swap[1])


def test_gradient_formula_matches_central_differences(chapter):
    model, X, obj = chapter
    h = 1e-5  # error O(h^2) + O(eps |ell| / h) ~ 1e-9, far below the tolerance
    for mu in np.random.default_rng(0).uniform(-3, 3.5, size=(10, 2)):
        fd = np.array([(obj.value(mu + h * e) - obj.value(mu - h * e)) / (2 * h) for e in np.eye(2)])
        g = grad_at(model, X, obj, mu)
        np.testing.assert_allclose(g, fd, rtol=0, atol=1e-6 * np.abs(g).max() + 1e-6)
        # and the formula as written: sum_n r_nk (x_n - mu_k) / sigma_k^2
        r = model.posterior(X, obj.to_params(mu))
        by_hand = (r * (X - mu)).sum(axis=0) / np.ravel(VARIANCES)
        np.testing.assert_allclose(g, by_hand, rtol=1e-12, atol=1e-12)


def test_hessian_is_complete_part_plus_positive_semidefinite_missing_part(chapter):
    model, X, obj = chapter
    for mu in np.random.default_rng(1).uniform(-3, 3.5, size=(10, 2)):
        H = hess_at(model, X, obj, mu)
        counts = model.posterior(X, obj.to_params(mu)).sum(axis=0)
        missing = H + np.diag(counts / np.ravel(VARIANCES))  # H minus the complete-data part
        assert np.linalg.eigvalsh(missing).min() > -1e-9 * np.abs(H).max()


@pytest.mark.parametrize("label", sorted(STARTS))
def test_em_never_decreases_the_log_likelihood(chapter, label):
    model, X, obj = chapter
    fit = emlib.em(model, X, obj.to_params(STARTS[label]))
    assert fit.converged
    assert np.all(np.diff(fit.log_likelihood) >= 0)


def test_gradient_ascent_and_em_end_where_the_chapter_says(chapter, stationary):
    model, X, obj = chapter
    names = ["top", "swap", "saddle"]

    def nearest(mu):
        distances = [np.linalg.norm(mu - s) for s in stationary]
        assert min(distances) < 1e-2
        return names[int(np.argmin(distances))]

    expected = {"A": ("top", "top"), "B": ("swap", "swap"), "C": ("swap", "top"), "D": ("top", "swap")}
    for label, (where_ga, where_em) in expected.items():
        ga = gradient_ascent(obj, STARTS[label], step=0.01, max_iter=1000)
        em = emlib.em(model, X, obj.to_params(STARTS[label]))
        assert (nearest(ga.params.means.ravel()), nearest(em.params.means.ravel())) == (where_ga, where_em)


def test_step_limit_two_over_the_largest_curvature(chapter, stationary):
    model, X, obj = chapter
    top = stationary[0]
    eig, vec = np.linalg.eigh(hess_at(model, X, obj, top))
    limit = 2 / np.abs(eig).max()
    start = top + 1e-3 * vec[:, 0]  # a small error along the steepest direction
    below = gradient_ascent(obj, start, step=0.9 * limit, max_iter=400, tol=0)
    above = gradient_ascent(obj, start, step=1.1 * limit, max_iter=60, tol=0)
    assert np.linalg.norm(below.params.means.ravel() - top) < 1e-8
    assert np.linalg.norm(above.params.means.ravel() - top) > 1e-2  # the error grew


def test_step_sizes_of_the_chapter(chapter, stationary):
    model, X, obj = chapter
    top, swap, _ = stationary
    crawl = gradient_ascent(obj, STARTS["A"], step=0.001, max_iter=100, tol=0)
    assert obj.value(top) - crawl.log_likelihood[-1] > 0.1
    assert np.all(np.diff(crawl.log_likelihood) > 0)
    cycle = gradient_ascent(obj, STARTS["A"], step=0.02, max_iter=100, tol=0)
    tail = cycle.log_likelihood[-20:]
    np.testing.assert_allclose(tail[2:], tail[:-2], rtol=1e-6)  # period two
    assert np.abs(np.diff(tail)).min() > 1  # ... and not a fixed point
    jump = gradient_ascent(obj, STARTS["A"], step=0.025, max_iter=100, tol=0)
    assert np.linalg.norm(jump.params.means.ravel() - swap) < 1e-6


def test_gradient_ascent_stops_on_the_plateau_and_em_does_not(chapter, stationary):
    model, X, obj = chapter
    top, swap, _ = stationary
    ga = gradient_ascent(obj, STARTS["far"], step=0.01, max_iter=1000)
    assert ga.converged and ga.n_iter < 20
    mu = ga.params.means.ravel()
    assert mu[1] > 7.9  # mu_2 has not moved towards the data
    assert abs(grad_at(model, X, obj, mu)[1]) < 1e-5
    assert ga.log_likelihood[-1] < obj.value(swap) - 50
    em = emlib.em(model, X, obj.to_params(STARTS["far"]))
    assert np.linalg.norm(em.params.means.ravel() - top) < 1e-3


def test_em_step_is_the_gradient_step_with_step_sigma2_over_Nk(chapter):
    model, X, obj = chapter
    for mu in STARTS.values():
        stats, _ = model.e_step(X, obj.to_params(mu))
        em_step = model.m_step(stats).means.ravel() - np.array(mu)
        scaled = np.ravel(VARIANCES) / stats.counts * grad_at(model, X, obj, mu)
        np.testing.assert_allclose(em_step, scaled, rtol=1e-10, atol=1e-12)


def test_permuting_whole_components_is_a_symmetry_only_when_everything_is_estimated():
    # with weights and covariances estimated, swapping whole (pi_k, mu_k, Sigma_k) triples
    # leaves ell unchanged, whatever the weights; with weights held fixed and unequal,
    # swapping only the means does not
    X = np.random.default_rng(7).normal(size=(60, 1))
    free = emlib.GaussianMixture(2, "diag")
    theta = emlib.GaussianMixtureParams([0.3, 0.7], [[-1.0], [1.5]], [[1.0], [0.5]])
    swapped = emlib.GaussianMixtureParams([0.7, 0.3], [[1.5], [-1.0]], [[0.5], [1.0]])
    assert free.log_likelihood(X, swapped) == pytest.approx(free.log_likelihood(X, theta),
                                                            rel=1e-13)
    fixed = emlib.GaussianMixture(2, "diag", fixed={"weights": WEIGHTS, "covariances": VARIANCES})
    means_swapped = emlib.GaussianMixtureParams(WEIGHTS, [[1.5], [-1.0]], VARIANCES)
    assert abs(fixed.log_likelihood(X, means_swapped) - fixed.log_likelihood(X, theta)) > 1.0


def test_the_surface_is_steepest_at_the_edges_and_flat_only_far_outside(chapter, stationary):
    model, X, obj = chapter
    corners = [np.linalg.norm(grad_at(model, X, obj, c))
               for c in itertools.product([-3.0, 3.5], repeat=2)]
    assert 160 < min(corners) and max(corners) < 330
    top = stationary[0]
    near = max(np.linalg.norm(grad_at(model, X, obj, top + 0.25 * np.array([np.cos(a), np.sin(a)])))
               for a in np.linspace(0, 2 * np.pi, 16, endpoint=False))
    assert near < 30 < min(corners) / 5
    assert abs(grad_at(model, X, obj, (top[0], 8.0))[1]) < 1e-4


def test_em_needs_fewer_iterations_than_gradient_ascent_except_from_d(chapter):
    model, X, obj = chapter
    for label, em_fewer in [("A", True), ("B", True), ("C", True), ("D", False)]:
        ga = gradient_ascent(obj, STARTS[label], step=0.01, max_iter=1000)
        em = emlib.em(model, X, obj.to_params(STARTS[label]))
        assert (em.n_iter < ga.n_iter) == em_fewer


def test_the_step_002_curve_drops_climbs_back_and_alternates(chapter, stationary):
    model, X, obj = chapter
    top = obj.value(stationary[0])
    gap = top - gradient_ascent(obj, STARTS["A"], step=0.02, max_iter=100, tol=0).log_likelihood
    assert gap[:15].min() < 2                        # it first falls to about 1 ...
    assert 19 < gap[-2:].min() < gap[-2:].max() < 24  # ... then alternates near 19 and 23
    em = emlib.em(model, X, obj.to_params(STARTS["A"]), max_iter=100, tol=0)
    ga = gradient_ascent(obj, STARTS["A"], step=0.01, max_iter=100, tol=0)
    first = [int(np.argmax(top - fit.log_likelihood < 1e-7)) for fit in (em, ga)]
    assert first == [11, 49]                         # "within 1e-7 from iteration ... on"
