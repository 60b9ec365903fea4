"""The estimator's exceptions and warnings (re-exported by :mod:`arraynn`).

:class:`NotFittedError` and :class:`ConvergenceWarning` are also subclasses of
scikit-learn's classes of the same names when scikit-learn is imported, so that its
tools and warning filters recognise them; arraynn never imports scikit-learn itself.
"""

from __future__ import annotations

import functools
import sys

__all__ = ["ConvergenceWarning", "InputRangeWarning", "NotFittedError", "convergence_warning",
           "not_fitted_error"]


class NotFittedError(ValueError, AttributeError):
    """The estimator is used before ``fit``."""


class ConvergenceWarning(UserWarning):
    """A fit that learned nothing: its training accuracy is at chance level, or its
    loss did not fall. The message says which settings to try. When scikit-learn is
    imported, the warning is also a ``sklearn.exceptions.ConvergenceWarning``, so its
    filters apply to it; arraynn never imports scikit-learn itself."""


class InputRangeWarning(UserWarning):
    """Inputs clearly outside the range of the raw inputs a model that preprocesses its
    inputs itself was fitted on (e.g. standardized or scaled pixels given to a model
    that standardizes raw 0-255 pixels)."""


@functools.lru_cache(maxsize=4)
def _convergence_warning_for(sk_warning: type | None) -> type[ConvergenceWarning]:
    if sk_warning is None:
        return ConvergenceWarning
    namespace = {"__module__": "arraynn.classifier", "__doc__": ConvergenceWarning.__doc__}
    return type("ConvergenceWarning", (ConvergenceWarning, sk_warning), namespace)


def convergence_warning() -> type[ConvergenceWarning]:
    """:class:`ConvergenceWarning`, also a subclass of scikit-learn's when scikit-learn is
    imported (one class per scikit-learn class, so warning filters and the once-per-place
    registry work)."""
    sk = sys.modules.get("sklearn.exceptions")
    return _convergence_warning_for(getattr(sk, "ConvergenceWarning", None))


@functools.lru_cache(maxsize=4)
def _not_fitted_error_for(sk_error: type | None) -> type[NotFittedError]:
    if sk_error is None:
        return NotFittedError
    return type("NotFittedError", (NotFittedError, sk_error), {"__module__": "arraynn.classifier"})


def not_fitted_error() -> type[NotFittedError]:
    """:class:`NotFittedError`, also a subclass of scikit-learn's when scikit-learn is
    imported (so its tools recognise it)."""
    sk = sys.modules.get("sklearn.exceptions")
    return _not_fitted_error_for(getattr(sk, "NotFittedError", None))
