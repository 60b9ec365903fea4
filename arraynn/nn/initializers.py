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

A convolution's kernels, of shape ``(filters, in_channels, kh, kw)``, have
``fan_in = in_channels * kh * kw`` and ``fan_out = filters * kh * kw`` (the inputs and
outputs one weight meets, PyTorch's and Keras's convention) and are drawn in that
C-order shape.

Weights are drawn in float64 and rounded to the backend's dtype, so float32 and
float64 networks start from the same values up to rounding.
"""

from __future__ import annotations

import numpy as np

__all__ = ["INITIALIZERS", "draw_flat", "draw_kernels", "draw_weights"]

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
    :func:`draw_weights` (convolution kernels, of four dimensions, with
    :func:`draw_kernels`), every other parameter (the biases) zero."""
    if init not in INITIALIZERS:
        raise ValueError(f"unknown init {init!r}; choose one of {list(INITIALIZERS)}")
    sizes = [int(np.prod(s)) for s in shapes]
    offsets = np.cumsum([0, *sizes])
    flat = np.zeros(offsets[-1], dtype=np.float64)
    for k in weights:
        shape = tuple(int(d) for d in shapes[k])
        if len(shape) == 2:
            w = draw_weights(rng, shape[0], shape[1], init)
        else:
            w = draw_kernels(rng, shape, init)
        flat[offsets[k]:offsets[k + 1]] = w.reshape(-1)
    return flat


def draw_kernels(rng: np.random.Generator, shape: tuple[int, ...], init: str) -> np.ndarray:
    """Host convolution kernels of ``shape`` ``(filters, in_channels, *kernel)`` (float64)."""
    receptive = int(np.prod(shape[2:]))
    fan_in, fan_out = int(np.prod(shape[1:])), shape[0] * receptive
    if init == "uniform":
        return rng.uniform(-1.0, 1.0, size=shape)
    if init == "glorot":
        r = np.sqrt(6.0 / (fan_in + fan_out))
        return rng.uniform(-r, r, size=shape)
    if init == "he":
        return rng.normal(0.0, np.sqrt(2.0 / fan_in), size=shape)
    raise ValueError(f"unknown init {init!r}; choose one of {list(INITIALIZERS)}")
