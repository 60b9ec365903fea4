"""Moving an estimator's inputs and results between array libraries and devices.

The estimator computes on its model's backend (``backend_``) whatever library its
inputs come from; these helpers read shapes off the inputs, take rows in the inputs'
own library, bring inputs onto the model's device in its float dtype, and return
results in the library and on the device the input came from.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .backends import Backend, backend_for

__all__ = ["image_shape_of_input", "int_like", "sample_shape_of_input", "take_rows",
           "to_float_on", "to_input_library", "value_range"]


def sample_shape_of_input(X: Any) -> tuple[int, ...] | None:
    """``(channels, height, width)`` of images given as ``(n, channels, height, width)``
    or ``(n, height, width)`` (one channel), else None."""
    shape = getattr(X, "shape", None)
    if shape is None and isinstance(X, (list, tuple)):
        shape = np.shape(X)
    if shape is not None and len(shape) == 4:
        return int(shape[1]), int(shape[2]), int(shape[3])
    if shape is not None and len(shape) == 3:
        return 1, int(shape[1]), int(shape[2])
    return None


def image_shape_of_input(X: Any) -> tuple[int, int] | None:
    """``(height, width)`` of one-channel images (``(n, height, width)`` or ``(n, 1,
    height, width)``), else None."""
    sample = sample_shape_of_input(X)
    return (sample[1], sample[2]) if sample is not None and sample[0] == 1 else None


def to_float_on(be: Backend, X: Any) -> Any:
    """``X`` on the backend's device, in its float dtype."""
    X = be.asarray(X)
    return X if X.dtype == be.dtype else be.xp.astype(X, be.dtype)


def to_input_library(be: Backend, result: Any, X: Any) -> Any:
    """``result`` (an array of the backend ``be``) in the library and on the device of
    the input ``X``: NumPy for NumPy inputs, the array itself where they agree, else a
    copy through the host."""
    if isinstance(X, np.ndarray):
        return be.to_numpy(result)
    target = backend_for(X)
    if target.xp is be.xp and target.device == be.device:
        return result
    host = be.to_numpy(result)
    return target.asarray(host, dtype=None if int_like(result) else target.dtype)


def take_rows(X: Any, idx: np.ndarray) -> Any:
    """The rows ``idx`` (host integers) of ``X``, in its own library and device."""
    if isinstance(X, np.ndarray):
        return X[idx]
    be = backend_for(X)
    with be.device_context():
        return be.xp.take(X, be.asarray(idx, dtype=be.index_dtype), axis=0)


def value_range(X: Any) -> tuple[float, float]:
    """The smallest and the largest value of the array ``X`` (any library) as floats."""
    if isinstance(X, np.ndarray):
        return float(X.min()), float(X.max())
    import array_api_compat as aac

    xp = aac.array_namespace(X)
    if xp.isdtype(X.dtype, "bool"):
        X = xp.astype(X, xp.int8)
    return float(xp.min(X)), float(xp.max(X))


def int_like(a: Any) -> bool:
    """Whether the array ``a`` holds integers (class indices, labels)."""
    return "int" in str(getattr(a, "dtype", ""))
