"""The models and data sets on which the claims of the theory chapters ("Jensen's inequality and
the evidence lower bound", "The EM algorithm", "EM as coordinate ascent") are checked, and the
helpers those tests share: a full-covariance mixture on Old Faithful, a diagonal mixture on
synthetic 2-D data, and a mixture with known (fixed) weights on synthetic 1-D data.

Tolerances. The identities are exact in real arithmetic; in floating point each side is a sum of
N*K (at most about 600) terms whose size is at most a few times |log p(x | theta)| (10^2 to 10^3).
Rounding then perturbs a side by roughly N*K*eps*|term| / |sum|, about 1e-13 relative. We use
1e-10 relative (IDENTITY_RTOL): a thousand times that, yet any real error (a missing entropy term,
a wrong posterior) changes the result by order 1e-3 relative or more.
"""
import numpy as np
import pytest

import emlib


IDENTITY_RTOL = 1e-10


def _case(name):
    if name == "faithful_full":
        X = emlib.datasets.old_faithful()
        model = emlib.GaussianMixture(2, "full", reg_covar=0.0)
        theta = model.init_params(X, np.random.default_rng(0))
    elif name == "blobs_diag":
        truth = emlib.GaussianMixtureParams([0.2, 0.5, 0.3], [[0.0, 0.0], [3.0, 1.0], [-2.0, 4.0]],
                                            [[1.0, 0.5], [0.7, 1.2], [0.4, 0.4]])
        X, _ = emlib.GaussianMixture(3, "diag").sample(truth, 200, np.random.default_rng(11))
        model = emlib.GaussianMixture(3, "diag", reg_covar=0.0)
        theta = model.init_params(X, np.random.default_rng(1))
    elif name == "fixed_weights_1d":
        weights = [0.3, 0.7]
        truth = emlib.GaussianMixtureParams(weights, [[-1.0], [2.0]], [[[0.5]], [[1.5]]])
        X, _ = emlib.GaussianMixture(2).sample(truth, 150, np.random.default_rng(12))
        model = emlib.GaussianMixture(2, "full", reg_covar=0.0, fixed={"weights": weights})
        theta = model.init_params(X, np.random.default_rng(2))
    else:  # pragma: no cover
        raise KeyError(name)
    return model, X, theta


CASES = ["faithful_full", "blobs_diag", "fixed_weights_1d"]


@pytest.fixture(params=CASES)
def case(request):
    return _case(request.param)


def random_q(model, X, seed, alpha=1.0):
    """Rows drawn from a Dirichlet(alpha, ..., alpha): an arbitrary q, far from the posterior."""
    return np.random.default_rng(seed).dirichlet(np.full(model.n_components, alpha), size=len(X))


def perturbed(params, name, index, h):
    """params with one coordinate moved by h; a weight move is balanced by the last weight."""
    arrays = {"weights": params.weights.copy(), "means": params.means.copy(),
              "covariances": params.covariances.copy()}
    arrays[name][index] += h
    if name == "weights":
        arrays["weights"][-1] -= h
    return emlib.GaussianMixtureParams(**arrays)


def dirichlet_rows(rng, shape, concentration=1.0):
    """An arbitrary q of the given (N, K) shape: rows drawn from Dirichlet(concentration, ...)."""
    return rng.dirichlet(np.full(shape[1], concentration), size=shape[0])
