"""Initial weights, drawn on the host and copied to the device.

The Array API standard has no random number generator, so every draw is made with
``numpy.random.Generator`` on the host and then moved to the backend's device once:
one seed gives the same initial network on every backend.

========  ==========================================================
name      distribution of a weight matrix of shape (fan_in, fan_out)
========  ==========================================================
uniform   U(-1, 1): the article's
glorot    U(-r, r), r = sqrt(6 / (fan_in + fan_out))  (Glorot & Bengio)
he        N(0, 2 / fan_in)  (He et al.)
========  ==========================================================

Weights are drawn in float64 and rounded to the backend's dtype, so float32 and
float64 networks start from the same values up to rounding.
"""

from __future__ import annotations

import numpy as np

__all__ = ["INITIALIZERS", "draw_flat", "draw_weights"]

INITIALIZERS = ("uniform", "glorot", "he")


def draw_weights(rng: np.random.Generator, fan_in: int, fan_out: int, init: str) -> np.ndarray:
    """One host weight matrix of shape ``(fan_in, fan_out)`` (float64)."""
    if init == "uniform":
        return rng.uniform(-1.0, 1.0, size=(fan_in, fan_out))
    if init == "glorot":
        r = np.sqrt(6.0 / (fan_in + fan_out))
        return rng.uniform(-r, r, size=(fan_in, fan_out))
    if init == "he":
        return rng.normal(0.0, np.sqrt(2.0 / fan_in), size=(fan_in, fan_out))
    raise ValueError(f"unknown init {init!r}; choose one of {list(INITIALIZERS)}")


def draw_flat(rng: np.random.Generator, shapes: list[tuple[int, ...]], weights: list[int],
              init: str) -> np.ndarray:
    """A flat host parameter buffer (float64): the parameters ``weights`` (indices into
    ``shapes``, each a ``(fan_in, fan_out)`` matrix) drawn in that order with
    :func:`draw_weights`, every other parameter (the biases) zero."""
    if init not in INITIALIZERS:
        raise ValueError(f"unknown init {init!r}; choose one of {list(INITIALIZERS)}")
    sizes = [int(np.prod(s)) for s in shapes]
    offsets = np.cumsum([0, *sizes])
    flat = np.zeros(offsets[-1], dtype=np.float64)
    for k in weights:
        fan_in, fan_out = shapes[k]
        flat[offsets[k]:offsets[k + 1]] = draw_weights(rng, fan_in, fan_out, init).reshape(-1)
    return flat
