"""The few plotting helpers several chapters share.

matplotlib is imported inside the functions: ``emlib`` itself needs only numpy and scipy, and
the book's environment supplies matplotlib.
"""
from __future__ import annotations

from importlib import resources

#: The Okabe-Ito palette (colour-blind safe), in the order the style file cycles through it.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000")


def use_book_style() -> None:
    """Apply the book's single figure style (``emlib/book.mplstyle``) to matplotlib."""
    import matplotlib.pyplot as plt

    with resources.as_file(resources.files("emlib").joinpath("book.mplstyle")) as path:
        plt.style.use(str(path))
