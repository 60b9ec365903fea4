"""The BLAS thread count of an estimator's ``blas_threads`` around its methods."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable
from typing import Any

from ._validation import check_blas_threads

__all__ = ["blas_limits", "pinned_blas"]


def blas_limits(threads: int | None) -> contextlib.AbstractContextManager[Any]:
    """The BLAS library's thread count ``threads`` for the duration of a ``with`` block
    (threadpoolctl's ``threadpool_limits``; nothing with ``None``)."""
    check_blas_threads(threads)
    if threads is None:
        return contextlib.nullcontext()
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        raise ImportError(f"blas_threads={threads} needs threadpoolctl, which sets the BLAS "
                          "library's thread count: pip install threadpoolctl (scikit-learn "
                          "installs it), or leave blas_threads=None") from None
    limits: contextlib.AbstractContextManager[Any] = threadpool_limits(limits=int(threads), user_api="blas")
    return limits


def pinned_blas(method: Callable[..., Any]) -> Callable[..., Any]:
    """Run the estimator method ``method`` with the BLAS thread count of its
    ``blas_threads`` (the previous count is restored afterwards)."""
    @functools.wraps(method)
    def pinned(self: Any, *args: Any, **kwargs: Any) -> Any:
        with blas_limits(getattr(self, "blas_threads", None)):
            return method(self, *args, **kwargs)

    return pinned
