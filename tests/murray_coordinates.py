"""The coordinates of Murray's zero-mean bivariate normal: (variance 1, variance 2, correlation).

Shared by the tests of NormalWithMissing and of the chapter on Murray's saddle point.
"""
import numpy as np

from emlib import NormalParams


def murray_params(s1, s2, rho) -> NormalParams:
    """The zero-mean normal with variances s1, s2 and correlation rho."""
    c = rho * np.sqrt(s1 * s2)
    return NormalParams(np.zeros(2), [[s1, c], [c, s2]])


def murray_coords(params) -> np.ndarray:
    """(s1, s2, rho) of a normal's covariance, shape (3,)."""
    S = params.covariance
    return np.array([S[0, 0], S[1, 1], S[0, 1] / np.sqrt(S[0, 0] * S[1, 1])])
