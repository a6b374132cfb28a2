"""Data sets used in the book, shipped inside the package (``emlib/data/``)."""
from __future__ import annotations

from importlib import resources

import numpy as np


def _read_csv(name: str) -> np.ndarray:
    with resources.files("emlib").joinpath("data", name).open("r") as fh:
        return np.loadtxt(fh, delimiter=",", skiprows=1)


def old_faithful() -> np.ndarray:
    """The Old Faithful geyser data: 272 eruptions at Yellowstone.

    Härdle's version of the data (W. Härdle, *Smoothing Techniques: With Implementation in S*,
    Springer, 1991), as distributed with R (``datasets::faithful``). It is not the series of
    Azzalini and Bowman (1990, Applied Statistics 39, 357-365), which has 299 consecutive
    eruptions (R's ``MASS::geyser``).

    Returns
    -------
    ndarray, shape (272, 2)
        Column 0: eruption time (minutes); column 1: waiting time to the next eruption (minutes).
    """
    return _read_csv("old_faithful.csv")


def nile() -> np.ndarray:
    """Annual flow of the river Nile at Aswan, 1871-1970 (Cobb 1978): 100 years.

    The volume of water that passed Aswan each year, in units of 10^8 cubic metres; the series
    has an apparent change in level near 1898. Shipped as
    ``emlib/data/nile.csv``, copied unchanged from the Python package statsmodels (file
    ``statsmodels/datasets/nile/nile.csv`` of statsmodels 0.15.0, BSD-3-Clause), whose
    documentation of the data set states: "This is public domain." First analysed as a
    change-point problem by G. W. Cobb, Biometrika 65(2), 243-251 (1978); the same values are
    R's ``datasets::Nile``.

    Returns
    -------
    ndarray, shape (100, 2)
        Column 0: the year (1871, ..., 1970); column 1: the flow (10^8 m^3).
    """
    return _read_csv("nile.csv")


def genetic_linkage() -> np.ndarray:
    """The genetic linkage counts of Dempster, Laird and Rubin (1977), first analysed by Fisher and by Rao.

    197 animals in four categories with cell probabilities
    (1/2 + pi/4, (1 - pi)/4, (1 - pi)/4, pi/4).

    Returns
    -------
    ndarray of int, shape (4,)
        The counts (125, 18, 20, 34).
    """
    return np.array([125, 18, 20, 34])


def hasselblad_deaths() -> np.ndarray:
    """Deaths of women aged 80 and over reported in The Times per day, 1910-1912 (Hasselblad 1969).

    1,096 days; 162, 267, 271, 185, 111, 61, 27, 8, 3 and 1 days had 0, 1, ..., 9 deaths.

    Returns
    -------
    ndarray of int, shape (1096,)
        The daily counts, in increasing order.
    """
    days = np.array([162, 267, 271, 185, 111, 61, 27, 8, 3, 1])
    return np.repeat(np.arange(days.size), days)


def murray() -> np.ndarray:
    """Murray's (1977) bivariate sample with missing values, known to have a saddle point.

    Four complete pairs (1, 1), (1, -1), (-1, 1), (-1, -1); four cases with only x1 observed
    (2, 2, -2, -2); four with only x2 observed (2, 2, -2, -2).

    Returns
    -------
    ndarray, shape (12, 2)
        NaN marks a missing value.
    """
    nan = np.nan
    return np.array([
        [1, 1], [1, -1], [-1, 1], [-1, -1],
        [2, nan], [2, nan], [-2, nan], [-2, nan],
        [nan, 2], [nan, 2], [nan, -2], [nan, -2],
    ], dtype=float)
