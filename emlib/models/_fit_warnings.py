"""Warnings about components, given once per fit and attributed to the caller's line.

A model's M-step runs once per iteration, so a warning raised there would repeat at every
iteration and point into emlib. Every driver therefore runs its loop inside
:class:`OneWarningPerFit` (the :class:`emlib.ConvergenceMonitor` does it for them): while it is
active, :func:`warn_components` only records which components a warning concerns, and when the
fit ends one warning per kind is issued, naming all of them, at the first line outside emlib.
Outside a fit (a model method called directly) the warning is issued at once.
"""
from __future__ import annotations

import os
import sys
import warnings
from contextvars import ContextVar

_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep


class ComponentCollapseWarning(UserWarning):
    """A component's covariance has shrunk to the size of ``reg_covar``: it sits on a few points."""


class ComponentStarvingWarning(UserWarning):
    """A component receives (almost) no responsibility from new data: its statistics are fading."""


def _stacklevel_outside_package() -> int:
    """The ``stacklevel`` for ``warnings.warn`` called from our caller that names the first frame outside emlib."""
    frame, level = sys._getframe(2), 2  # the frame that calls warnings.warn is level 1
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(_PACKAGE_DIR):
        frame, level = frame.f_back, level + 1
    return level


def _issue(message: str, category: type[Warning]) -> None:
    warnings.warn(message, category, stacklevel=_stacklevel_outside_package())


def warn_now(message: str, category: type[Warning]) -> None:
    """Warn at once (even inside a fit), at the first line outside emlib: for news that cannot
    wait until the fit ends, such as a component that starts starving in a stream."""
    _issue(message, category)


_active: ContextVar["OneWarningPerFit | None"] = ContextVar("emlib_fit_warnings", default=None)


class OneWarningPerFit:
    """Collect component warnings while a fit runs; issue one per kind when it ends normally."""

    def __enter__(self) -> "OneWarningPerFit":
        self._pending: dict[tuple[type[Warning], str], set[int]] = {}
        self._token = _active.set(self)
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        _active.reset(self._token)
        if exc_type is None:
            for (category, template), components in self._pending.items():
                warn_components(category, sorted(components), template)
        return False

    def add(self, category: type[Warning], components, template: str) -> None:
        self._pending.setdefault((category, template), set()).update(int(k) for k in components)


def warn_components(category: type[Warning], components, template: str) -> None:
    """Warn about ``components`` with ``template.format(components=[...])``, once per fit.

    Parameters
    ----------
    category : Warning subclass
    components : iterable of int
        The components concerned; within a fit, the union over all calls is reported.
    template : str
        The message, with ``{components}`` where the sorted list of components goes.
    """
    active = _active.get()
    if active is not None:
        active.add(category, components, template)
    else:
        _issue(template.format(components=sorted(int(k) for k in components)), category)
