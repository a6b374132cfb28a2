"""Input checks shared by every model and driver.

Each check raises a ``ValueError`` that names the argument, says what is wrong and what to do
about it, so that bad input never travels further and turns into a silent NaN or a
``TypeError`` deep inside numpy.
"""
from __future__ import annotations

import numbers

import numpy as np

#: Data whose magnitude exceeds this overflow double precision once squared and summed.
LARGEST_SAFE_VALUE = 1e150
#: Data that vary by less than this underflow double precision once their deviations are squared.
SMALLEST_SAFE_SPREAD = 1e-150


def _is_real_number(value) -> bool:
    """True for Python and numpy real numbers (not bool, not complex, not None, not strings)."""
    return (isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_)))


def check_integer(value, name: str, *, minimum: int | None = None, maximum: int | None = None) -> int:
    """Return ``value`` as an ``int``, or raise ``ValueError`` naming ``name``.

    Accepts Python and numpy integers (not ``bool``, not floats such as ``2.0``) between
    ``minimum`` and ``maximum`` (both inclusive, each optional).
    """
    ok = isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))
    if ok and minimum is not None and value < minimum:
        ok = False
    if ok and maximum is not None and value > maximum:
        ok = False
    if not ok:
        if minimum == 1 and maximum is None:
            want = "a positive integer"
        elif minimum == 0 and maximum is None:
            want = "a non-negative integer"
        elif minimum is not None and maximum is not None:
            want = f"an integer between {minimum} and {maximum}"
        elif minimum is not None:
            want = f"an integer >= {minimum}"
        else:
            want = "an integer"
        raise ValueError(f"{name} must be {want}; got {value!r}.")
    return int(value)


def check_number(value, name: str, *, minimum: float | None = None, maximum: float | None = None,
                 above: float | None = None, below: float | None = None, hint: str = "") -> float:
    """Return ``value`` as a finite ``float``, or raise ``ValueError`` naming ``name``.

    ``minimum``/``maximum`` are inclusive bounds, ``above``/``below`` strict ones; refuses
    ``None``, strings, booleans, complex numbers, NaN and infinities. A 0-d real array counts as
    its number (parameters rebuilt from a vector are such arrays).
    """
    if isinstance(value, np.ndarray) and value.shape == () and value.dtype.kind in "iuf":
        value = value.item()
    ok = _is_real_number(value) and bool(np.isfinite(value))
    if ok:
        value = float(value)
        ok = ((minimum is None or value >= minimum) and (maximum is None or value <= maximum)
              and (above is None or value > above) and (below is None or value < below))
    if not ok:
        if above == 0 and minimum is None and maximum is None and below is None:
            want = "a positive number"
        elif minimum == 0 and maximum is None and above is None and below is None:
            want = "a non-negative number"
        elif above is not None and below is not None and minimum is None and maximum is None:
            want = f"a number strictly between {above:g} and {below:g}"
        else:
            bounds = [f">= {minimum:g}" if minimum is not None else "", f"> {above:g}" if above is not None else "",
                      f"<= {maximum:g}" if maximum is not None else "", f"< {below:g}" if below is not None else ""]
            bounds = " and ".join(b for b in bounds if b)
            want = f"a number {bounds}" if bounds else "a finite number"
        raise ValueError(f"{name} must be {want}{hint}; got {value!r}.")
    return value


def check_callable(value, name: str, *, allow_none: bool = True):
    """Return ``value`` unless it is neither callable nor (if allowed) ``None``."""
    if value is None and allow_none:
        return None
    if not callable(value):
        accepted = "a callable or None" if allow_none else "a callable"
        raise ValueError(f"{name} must be {accepted}; got {type(value).__name__}.")
    return value


def check_bool(value, name: str) -> bool:
    """Return ``value`` if it is ``True`` or ``False`` (Python or numpy), else raise ``ValueError``."""
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} must be True or False; got {value!r}.")
    return bool(value)


def _refuse_masked_and_complex(value, name: str) -> None:
    if isinstance(value, np.ma.MaskedArray):
        raise ValueError(f"{name} is a masked array, and a mask would be lost in the conversion to a "
                         f"plain array; drop the masked entries (e.g. {name}.compressed() or "
                         f"{name}[~{name}.mask.any(axis=1)] for rows) or fill them first.")
    if np.iscomplexobj(value):
        raise ValueError(f"{name} is complex; every quantity here is real. Pass the real part "
                         f"(np.real({name})) if the imaginary part is zero.")


def as_data_matrix(X, *, name: str = "X", allow_nan: bool = False, min_rows: int = 1) -> np.ndarray:
    """Return ``X`` as a C-contiguous float array of shape (N, D), or raise ``ValueError``.

    Parameters
    ----------
    X : array_like, shape (N, D)
        Data, one row per observation. A masked array is refused unless ``allow_nan``, in which
        case its masked entries become NaN (missing values); complex data are refused.
    allow_nan : bool
        Whether NaN marks a missing value (models with missing data); infinities are never allowed.
    min_rows : int
        The smallest acceptable N (for a mixture, the number of components).
    """
    if isinstance(X, np.ma.MaskedArray) and allow_nan:
        if np.iscomplexobj(X):
            _refuse_masked_and_complex(X.data, name)
        try:
            X = np.ma.asarray(X, dtype=float).filled(np.nan)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{name} must be a numeric array of shape (N, D); got {exc}") from None
    _refuse_masked_and_complex(X, name)
    try:
        X = np.ascontiguousarray(X, dtype=float)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be a numeric array of shape (N, D); got {type(X).__name__}: {exc}") from None
    if X.ndim != 2:
        hint = " Use X.reshape(-1, 1) for one-dimensional data." if X.ndim == 1 else ""
        raise ValueError(f"{name} must be a 2-D array of shape (N, D); got {X.ndim} dimension(s), shape {X.shape}.{hint}")
    if X.shape[1] == 0:
        raise ValueError(f"{name} has no columns (shape {X.shape}); each row must hold at least one value.")
    if np.isinf(X).any():
        raise ValueError(f"{name} contains infinite values; remove or replace them before fitting.")
    if not allow_nan and np.isnan(X).any():
        n_bad = int(np.isnan(X).any(axis=1).sum())
        raise ValueError(f"{name} contains NaN values (in {n_bad} rows); remove or impute them before fitting.")
    if X.shape[0] < min_rows:
        raise ValueError(
            f"{name} has {X.shape[0]} rows but at least {min_rows} are needed "
            f"(a model with {min_rows} components needs at least {min_rows} points); "
            "use fewer components or more data."
        )
    return X


def check_gaussian_scale(X: np.ndarray, name: str = "X") -> None:
    """Refuse data whose squared deviations leave the range of double precision.

    Gaussian models square deviations from the mean: values beyond about 1e150 overflow, and
    columns that vary by less than about 1e-150 underflow (their variances would read as zero
    and be reported as a collapse). ``X`` may contain NaN (missing values).
    """
    if X.size == 0:
        return
    top, bottom = np.nanmax(X, axis=0), np.nanmin(X, axis=0)   # reductions: no copy of X
    largest = float(np.max(np.maximum(top, -bottom)))
    spread = top - bottom
    if largest > LARGEST_SAFE_VALUE:
        raise ValueError(f"{name} holds values as large as {largest:.3g}: their squares overflow double "
                         f"precision. Rescale {name} (e.g. divide it by a power of ten) before fitting.")
    tiny = np.flatnonzero((spread > 0) & (spread < SMALLEST_SAFE_SPREAD))
    if tiny.size:
        raise ValueError(f"column(s) {tiny.tolist()} of {name} vary by less than {SMALLEST_SAFE_SPREAD:g}: "
                         f"their squared deviations underflow double precision. Rescale {name} (e.g. "
                         "multiply those columns by a power of ten) before fitting.")


def as_float_array(value, shape: tuple[int, ...] | None, name: str) -> np.ndarray:
    """Return ``value`` as a read-only finite float array of the expected ``shape``.

    ``None`` in ``shape`` accepts any length along that axis. Masked and complex arrays are
    refused.
    """
    _refuse_masked_and_complex(value, name)
    try:
        arr = np.array(value, dtype=float)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a numeric array; got {type(value).__name__}.") from None
    if shape is not None:
        ok = arr.ndim == len(shape) and all(s is None or s == a for s, a in zip(shape, arr.shape))
        if not ok:
            want = "(" + ", ".join("any" if s is None else str(s) for s in shape) + ")"
            raise ValueError(f"{name} must have shape {want}; got shape {arr.shape}.")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or infinite values; every parameter must be finite.")
    arr.setflags(write=False)
    return arr


def check_symmetric(matrices: np.ndarray, name: str) -> None:
    """Raise ``ValueError`` unless the matrices (..., D, D) equal their transposes to rounding."""
    asymmetry = np.abs(matrices - np.swapaxes(matrices, -1, -2))
    if not np.all(asymmetry <= 1e-12 + 1e-10 * np.abs(matrices)):     # np.allclose, without its overhead
        plural = "must be symmetric matrices" if matrices.ndim > 2 else "must be a symmetric matrix"
        raise ValueError(f"{name} {plural}; symmetrize with (S + S.T) / 2.")


def check_probability_vector(weights: np.ndarray, name: str = "weights", atol: float = 1e-8, *,
                             given=None) -> None:
    """Raise ``ValueError`` unless ``weights`` are non-negative and sum to one (within ``atol``).

    ``given`` is the array as the caller received it, to tell a caller whose weights were
    rounded in single precision to convert them before normalizing.
    """
    if np.any(weights < 0):
        raise ValueError(f"{name} must be non-negative; got {np.round(weights, 6).tolist()}.")
    total = float(weights.sum())
    if abs(total - 1.0) > atol:
        dtype = getattr(given, "dtype", None)
        if dtype is not None and np.issubdtype(dtype, np.floating) and np.finfo(dtype).eps > atol:
            advice = (f"They are {dtype} numbers, which hold only about {np.finfo(dtype).precision} digits: "
                      "convert them to float64 (np.asarray(w, dtype=float)) and then divide them by their sum.")
        else:
            advice = "Divide them by their sum."
        raise ValueError(f"{name} must sum to one; they sum to {total:.10g}. {advice}")


def check_probability_rows(q, name: str = "q") -> np.ndarray:
    """Return ``q`` as a float array whose last axis holds probabilities summing to one.

    Used for every array of per-point distributions: a q(z) of shape (N, K), a proposal, a
    posterior. Raises ``ValueError`` saying what is wrong and how to fix it.
    """
    _refuse_masked_and_complex(q, name)
    try:
        q = np.asarray(q, dtype=float)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be a numeric array of probabilities; got {type(q).__name__}: {exc}") from None
    if q.ndim == 0:
        raise ValueError(f"{name} must be an array whose last axis holds probabilities summing to one; got a scalar.")
    if not np.all(np.isfinite(q)) or np.any(q < 0):
        raise ValueError(f"{name} must hold finite, non-negative probabilities.")
    sums = q.sum(axis=-1)
    if not np.allclose(sums, 1.0, rtol=0, atol=1e-8):
        worst = float(np.max(np.abs(sums - 1.0)))
        raise ValueError(f"each row of {name} must sum to one (worst row is off by {worst:.3g}); "
                         "divide each row by its sum.")
    return q


def check_generator(rng) -> np.random.Generator:
    """Return ``rng`` if it is a ``numpy.random.Generator``, else raise a ``ValueError``."""
    if not isinstance(rng, np.random.Generator):
        raise ValueError(
            "rng must be a numpy.random.Generator, e.g. numpy.random.default_rng(0); "
            f"got {type(rng).__name__}. All randomness goes through it so that runs are reproducible."
        )
    return rng
