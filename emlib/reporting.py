"""Numbers for prose and printed tables that hold on every machine.

A number computed in floating point moves in its last bits with the CPU, the BLAS kernel, the
SIMD level and the thread count. A printed digit that such a move can change is a defect: the
book would show one value here and another on a reader's machine. Every function here takes an
*error bound* -- how far the value may move between machines or runs (rounding, a stopping
tolerance, an optimizer's tolerance, a Monte Carlo standard error) -- and refuses, with a
:class:`FragileNumberError`, to produce digits the error can reach, or a result that lies within
ten errors of a rounding edge or a threshold. A fragile number therefore fails on the author's own
machine, when it is written, not on someone else's.

- :func:`figure` -- the digits of a value as prose text (a real minus sign, ``3.2 × 10⁻⁷``
  instead of ``3.2e-07``), for the prose.
- :func:`rounded` -- the same check, returning a float for a printed table.
- :func:`below` -- a rounding-level quantity reported against a threshold ("below 10⁻⁹").
- :func:`count_above`, :func:`first_above` -- counts and indices decided by a threshold.
- :func:`stopping_iteration` -- the iteration at which a relative-change rule stopped, refused
  when the decision was too close to call.

None of these knows about notebooks; a chapter names the results and shows them with ``{eval}`` roles.
"""
from __future__ import annotations

import math
from typing import Iterable

import numpy as np

MINUS = "\u2212"
SUPERSCRIPTS = str.maketrans("-0123456789", "\u207b\u2070\u00b9\u00b2\u00b3\u2074\u2075\u2076\u2077\u2078\u2079")
MARGIN = 10.0


class FragileNumberError(ValueError):
    """A number whose reported digits, count or decision another machine could change."""


def _finite(value, name: str) -> float:
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a real number; got {value!r}.") from None
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite; got {value}.")
    return value


def _error(error) -> float:
    error = _finite(error, "error")
    if error < 0:
        raise ValueError(f"error must be a non-negative bound; got {error}.")
    return error


def _decimals(value: float, decimals: int | None, sig: int | None, error: float) -> int:
    if (decimals is None) == (sig is None):
        raise ValueError("give exactly one of decimals (digits after the point) and sig (significant digits).")
    if decimals is not None:
        return int(decimals)
    if int(sig) < 1:
        raise ValueError(f"sig must be at least 1; got {sig}.")
    if value == 0:
        raise FragileNumberError("a value of exactly 0 has no significant digits; use decimals=.")
    exponent = math.floor(math.log10(abs(value)))
    # the decade boundary is an edge too: 0.99996 and 1.00004 print with different digit counts
    gap = min(abs(abs(value) - 10.0 ** exponent), abs(10.0 ** (exponent + 1) - abs(value)))
    if gap <= MARGIN * error:
        raise FragileNumberError(f"{value!r} lies within {MARGIN:g} errors ({error:.2g}) of a power of ten, "
                                 "so its number of digits is not stable; use decimals= or report less.")
    return int(sig) - 1 - exponent


def rounded(value, *, error, decimals: int | None = None, sig: int | None = None) -> float:
    """``value`` rounded to ``decimals`` places (or ``sig`` significant digits), checked against ``error``.

    Parameters
    ----------
    value : float
        The computed number.
    error : float
        A bound on how far ``value`` may move between machines or runs (absolute, >= 0).
    decimals, sig : int
        Exactly one: digits after the decimal point, or significant digits.

    Returns
    -------
    float
        The rounded value (never ``-0.0``).

    Raises
    ------
    FragileNumberError
        If a move of ``value`` by ten times ``error`` could change the rounded result: the last
        digit is within reach of the error, or the value sits near a rounding edge.
    """
    value, error = _finite(value, "value"), _error(error)
    places = _decimals(value, decimals, sig, error)
    unit = 10.0 ** (-places)
    fraction = abs(value) / unit - math.floor(abs(value) / unit)
    distance = abs(fraction - 0.5) * unit
    if distance <= MARGIN * error:
        raise FragileNumberError(
            f"{value!r} rounded to {places} decimal(s) is within {MARGIN:g} errors ({error:.2g}) of a "
            f"rounding edge (distance {distance:.2g}); another machine may print another last digit. "
            "Report fewer digits, or reduce the error (a tighter tolerance).")
    return round(value, places) + 0.0


def _superscript(exponent: int) -> str:
    return str(exponent).translate(SUPERSCRIPTS)


def _text(value: float, places: int, sig: int | None) -> str:
    if sig is not None and value != 0 and not 1e-3 <= abs(value) < 1e6:
        mantissa, exponent = f"{value:.{sig - 1}e}".split("e")
        body = f"{mantissa} × 10{_superscript(int(exponent))}"
    else:
        body = f"{value:.{max(places, 0)}f}"
    return body.replace("-", MINUS)


def figure(value, *, error, decimals: int | None = None, sig: int | None = None) -> str:
    """The digits of ``value`` that ``error`` cannot change, as text for prose.

    Negative numbers carry a real minus sign (U+2212); values below 10⁻³ or from 10⁶ on, given
    with ``sig``, are written as ``3.2 × 10⁻⁷``, never in e-notation. Name the string and show it
    in the prose as ``{eval}`name``.

    Parameters and errors as in :func:`rounded`.

    Examples
    --------
    >>> figure(-1130.264, error=1e-6, decimals=2)
    '−1130.26'
    >>> figure(3.17e-7, error=1e-10, sig=2)
    '3.2 × 10⁻⁷'
    """
    value_r = rounded(value, error=error, decimals=decimals, sig=sig)
    places = _decimals(_finite(value, "value"), decimals, sig, _error(error))
    return _text(value_r, places, sig)


def power_of_ten(bound) -> str:
    """A positive bound as prose: ``1e-9`` -> ``10⁻⁹``, ``5e-9`` -> ``5 × 10⁻⁹``."""
    bound = _finite(bound, "bound")
    if bound <= 0:
        raise ValueError(f"bound must be positive; got {bound}.")
    exponent = math.floor(math.log10(bound) + 1e-12)
    mantissa = bound / 10.0 ** exponent
    if abs(mantissa - round(mantissa)) > 1e-9 * mantissa:
        raise ValueError(f"bound {bound!r} is not a one-digit multiple of a power of ten; choose one (e.g. 1e-9).")
    m = int(round(mantissa))
    return (f"{m} × " if m != 1 else "") + f"10{_superscript(exponent)}"


def below(value, bound, *, margin: float = MARGIN) -> str:
    """Report a quantity at rounding level against a threshold: ``below(3.7e-9, 1e-7)`` -> ``'10⁻⁷'``.

    The check is strict enough to hold elsewhere: ``|value|`` must be at most ``bound / margin``,
    since rounding-level quantities vary by factors of several between machines.

    Returns
    -------
    str
        The bound as prose (see :func:`power_of_ten`), for "below {bound}".

    Raises
    ------
    FragileNumberError
        If ``|value| > bound / margin``.
    """
    value, bound = _finite(value, "value"), _finite(bound, "bound")
    text = power_of_ten(bound)
    if abs(value) > bound / margin:
        raise FragileNumberError(f"|{value!r}| is not below {bound:g} by a factor {margin:g}; another machine "
                                 "may exceed the bound. Choose a larger bound.")
    return text


def _margins(values: np.ndarray, threshold: float, error: float, what: str) -> None:
    close = np.abs(values - threshold) <= MARGIN * error
    if np.any(close):
        i = int(np.argmax(close))
        raise FragileNumberError(f"{what}: value {values[i]!r} at index {i} is within {MARGIN:g} errors "
                                 f"({error:.2g}) of the threshold {threshold!r}, so the decision is not stable.")


def count_above(values: Iterable[float], threshold: float, *, error: float) -> int:
    """How many ``values`` exceed ``threshold``, refused if any value is within ten errors of it.

    Count decreases of a trace with a tolerance: ``count_above(-np.diff(trace), 0.0, error=...)``
    counts only drops that rounding cannot produce or hide.
    """
    values = np.asarray(list(values) if not isinstance(values, np.ndarray) else values, dtype=float)
    threshold, error = _finite(threshold, "threshold"), _error(error)
    _margins(values, threshold, error, "count_above")
    return int(np.sum(values > threshold))


def first_above(values: Iterable[float], threshold: float, *, error: float) -> int | None:
    """The first index at which ``values`` exceed ``threshold`` (None if none does), checked.

    Every value up to and including that index must be at least ten errors away from the
    threshold; values after it do not matter.
    """
    values = np.asarray(list(values) if not isinstance(values, np.ndarray) else values, dtype=float)
    threshold, error = _finite(threshold, "threshold"), _error(error)
    above = values > threshold
    stop = int(np.argmax(above)) + 1 if above.any() else len(values)
    _margins(values[:stop], threshold, error, "first_above")
    return stop - 1 if above.any() else None


def stopping_iteration(trace, tol: float, *, converged: bool, rel_error: float = 1e-12) -> int:
    """The iteration at which the rule ``|f_t - f_{t-1}| <= tol |f_t|`` stopped, if stable.

    The count is what :class:`emlib.ConvergenceMonitor` reports as ``n_iter``. It is refused when
    any decision along the way -- each "not yet" and the final "stop" -- was closer to the
    threshold than ten rounding errors of the objective (``rel_error * |f|`` per value), since
    another machine could then stop one iteration earlier or later. In practice a relative
    tolerance below about 1e-9 cannot give a stable count.

    Parameters
    ----------
    trace : array_like, shape (n_iter + 1,)
        The objective of every iterate (``result.log_likelihood``).
    tol : float
        The relative tolerance the run used.
    converged : bool
        Whether the run stopped by the rule (``result.converged``); if False, the count is the
        iteration limit and every decision must have been a clear "not yet".
    rel_error : float
        Relative rounding error of one objective value.
    """
    f = np.asarray(trace, dtype=float)
    if f.ndim != 1 or f.size == 0:
        raise ValueError("trace must be a non-empty 1-D array of objective values.")
    tol, rel_error = _finite(tol, "tol"), _error(rel_error)
    change = np.abs(np.diff(f))
    threshold = tol * np.abs(f[1:])
    error = 2 * rel_error * np.maximum(np.abs(f[1:]), np.abs(f[:-1]))
    gap = change - threshold
    n_iter = len(change)
    decisive = np.abs(gap) > MARGIN * error
    if not np.all(decisive):
        t = int(np.argmin(decisive)) + 1
        raise FragileNumberError(
            f"the stopping decision at iteration {t} (change {change[t - 1]:.3g} against the threshold "
            f"{threshold[t - 1]:.3g}) is within {MARGIN:g} rounding errors; another machine may stop at "
            "another iteration. Use a larger tol, or report a bracket that you assert.")
    if converged and (n_iter == 0 or gap[-1] > 0):
        raise ValueError("the trace does not end with a stop by the rule; pass converged=result.converged.")
    return n_iter
