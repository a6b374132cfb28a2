"""Parameters as vectors: a parameters dataclass flattened to one flat array, and back.

Every model's parameters are a small frozen dataclass of arrays (e.g. ``PoissonMixtureParams``
with ``weights (K,)`` and ``rates (K,)``). Methods that treat EM as a map on a vector space --
SQUAREM, Aitken's extrapolation, finite-difference Jacobians (chapter "Slow convergence and
acceleration") -- need theta as one vector. :func:`flatten_params` concatenates the array fields
in their declared order; :func:`unflatten_params` reverses it, using an existing parameters
object as the template for the type and the field shapes. Rebuilding goes through the
dataclass's own validation, so a vector outside the parameter space (a negative weight, a
non-positive rate) raises the dataclass's ``ValueError``.
"""
from __future__ import annotations

import dataclasses

import numpy as np


def _fields(params) -> list[tuple[str, np.ndarray]]:
    if not dataclasses.is_dataclass(params) or isinstance(params, type):
        raise ValueError(f"params must be a parameters dataclass instance; got {type(params).__name__}.")
    out = []
    for f in dataclasses.fields(params):
        value = getattr(params, f.name)
        try:
            arr = np.asarray(value, dtype=float)
        except (TypeError, ValueError):
            raise ValueError(f"field {f.name!r} of {type(params).__name__} is not numeric, so the "
                             "parameters cannot be flattened to a vector.") from None
        out.append((f.name, arr))
    return out


def flatten_params(params) -> np.ndarray:
    """The array fields of a parameters dataclass, raveled and concatenated in declared order.

    Parameters
    ----------
    params : parameters dataclass
        E.g. ``PoissonMixtureParams`` or ``GaussianMixtureParams``.

    Returns
    -------
    ndarray, shape (P,)
        P is the total number of entries of all fields (for a K-component Poisson mixture, 2K).
    """
    return np.concatenate([arr.ravel() for _, arr in _fields(params)])


def unflatten_params(template, vector):
    """Rebuild a parameters dataclass like ``template`` from a flat ``vector``.

    Parameters
    ----------
    template : parameters dataclass
        Gives the type and the shape of every field (its values are not used).
    vector : array_like, shape (P,)
        As returned by :func:`flatten_params` for parameters of the same type and shapes.

    Returns
    -------
    parameters dataclass of ``type(template)``

    Raises
    ------
    ValueError
        If the length of ``vector`` is wrong, or if the rebuilt parameters fail the dataclass's
        validation (they lie outside the parameter space).
    """
    fields = _fields(template)
    vector = np.asarray(vector, dtype=float)
    sizes = [arr.size for _, arr in fields]
    if vector.ndim != 1 or vector.size != sum(sizes):
        raise ValueError(f"vector must have shape ({sum(sizes)},) to fill {type(template).__name__}; "
                         f"got shape {vector.shape}.")
    pieces = np.split(vector, np.cumsum(sizes)[:-1])
    values = {name: piece.reshape(arr.shape) for (name, arr), piece in zip(fields, pieces)}
    return type(template)(**values)
