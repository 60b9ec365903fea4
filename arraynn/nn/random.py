"""Per-step random numbers made on the device, the same bits on every backend.

The Array API standard has no random generator, and every library's own generator
gives different numbers, so the noise of a training step (dropout masks, shifted
images) comes from a **counter-based hash** written in Array API integer arithmetic:
the value of element ``i`` is a function of ``(seed, counter, stream, i)`` alone, so

* NumPy, array-api-strict (on any of its devices), PyTorch, JAX and CuPy draw the same
  bits, and a run on one backend is reproduced on another;
* nothing is kept between steps and nothing is copied to the host: the counter is the
  optimizer's step number ``t`` (a Python int in eager training, folded into the key as
  an integer scalar; a 0-d device integer inside a compiled JAX step, mixed on the
  device), so a resumed run draws the noise an uninterrupted one would.

The hash is the 32-bit integer mix "lowbias32" (shifts, xors and two multiplications
modulo 2**32, a bijection with full avalanche; MurmurHash3's ``fmix32`` with better
constants), applied twice per element with two keys::

    key_a = mix(mix(mix(mix(seed_lo ^ G) ^ seed_hi) ^ stream) ^ counter)  (31 bits)
    key_b = mix(key_a ^ H)                                                 (31 bits)
    bits[i] = mix(mix(i ^ key_a) ^ key_b)

Every Python int that meets an array is below 2**31 (the multipliers and the keys),
because JAX takes a Python int next to a uint32 array for an int32 and refuses larger
ones.

``i`` is the element's flat (row-major) index. The arithmetic is done in ``uint32``
where the namespace has every operation it needs on it (NumPy, array-api-strict, JAX,
CuPy); otherwise (PyTorch's CPU kernels lack shifts, additions and comparisons of
``uint32``) in ``int64`` with every product split into 16-bit halves and masked to 32
bits, which never overflows and gives the same bits. Which one a namespace gets is
found by trying the operations once (:func:`hash_dtype`).

Uniform floats take the top 24 bits: ``(bits >> 8) * 2**-24``, exact in float32 and
float64, so the two dtypes see the same numbers in ``[0, 1)``.
"""

from __future__ import annotations

import threading
from typing import Any

__all__ = ["STREAMS", "counter_key", "drop_threshold", "dropout_mask", "hash_dtype",
           "random_bits", "step_key", "uniform", "random_below"]

_M32 = 0xFFFFFFFF
_M31 = 0x7FFFFFFF
# The multipliers of the improved "lowbias32" (hash-prospector), both below 2**31: a
# Python int at or above 2**31 is refused next to a uint32 array by some libraries (JAX
# takes it for an int32), so every scalar that meets an array stays below 2**31.
_C1, _C2 = 0x21F0AAAD, 0x735A2D97
_G, _H = 0x1E3779B9, 0x632BE5AB  # key constants (any numbers)

#: Stream ids: one independent sequence per use within a step.
STREAMS = {"augment": 0x5A17, "dropout": 0xD0D0}

_dtypes: dict[int, Any] = {}
_lock = threading.Lock()


# ---- the hash, on Python ints and on arrays ------------------------------------------
def _mul(x: Any, c: int, wide: bool) -> Any:
    """``x * c mod 2**32`` for ``x`` < 2**32: a Python int, a uint32 array, or (``wide``)
    an int64 array, multiplied by 16-bit halves so that nothing overflows."""
    if isinstance(x, int):
        return (x * c) & _M32
    if not wide:
        return x * c  # uint32 wraps modulo 2**32
    lo, hi = c & 0xFFFF, c >> 16
    return (x * lo + ((x * hi) & 0xFFFF) * 0x10000) & _M32


def _fmix(x: Any, wide: bool = False) -> Any:
    """The 32-bit mix (lowbias32). Arrays are updated in place where the library allows
    (the caller passes an array it owns)."""
    x = x ^ (x >> 16)
    x = _mul(x, _C1, wide)
    x = x ^ (x >> 15)
    x = _mul(x, _C2, wide)
    return x ^ (x >> 15)


def _fmix_inplace(x: Any, wide: bool) -> Any:
    """:func:`_fmix` of an array the caller owns, with augmented assignment (in place on
    mutable arrays, a rebinding on immutable ones)."""
    x ^= x >> 16
    if wide:
        x = _mul(x, _C1, wide)
    else:
        x *= _C1
    x ^= x >> 15
    if wide:
        x = _mul(x, _C2, wide)
    else:
        x *= _C2
    x ^= x >> 15
    return x


def step_key(seed: int, stream: int) -> int:
    """The part of the key that does not depend on the counter (a Python int)."""
    seed = int(seed)
    k = _fmix((seed & _M32) ^ _G)
    k = _fmix(k ^ ((seed >> 32) & _M32))
    return _fmix(k ^ (int(stream) & _M32))


def hash_dtype(xp: Any) -> Any:
    """The integer dtype the hash runs in for namespace ``xp``: ``uint32`` when its
    shifts, additions, products and comparisons work on it, else ``int64``."""
    dt = _dtypes.get(id(xp))
    if dt is None:
        try:
            # the operations alone (no value read back, so it also works while a
            # compiler traces the step)
            x = xp.arange(2, dtype=xp.uint32)
            y = ((x >> 1) ^ x) * _C1 + 1
            xp.astype(y >= 1, xp.float32)
            ok = y.dtype == xp.uint32
            dt = xp.uint32 if ok else xp.int64
        except Exception:  # the library lacks a uint32 kernel
            dt = xp.int64
        with _lock:
            _dtypes[id(xp)] = dt
    return dt


def counter_key(seed: int, stream: int, counter: int) -> tuple[int, int]:
    """``(key_a, key_b)`` of a Python int counter, as Python ints below 2**31."""
    a = _fmix((step_key(seed, stream) & _M31) ^ (int(counter) & _M32))
    return a & _M31, _fmix(a ^ _H) & _M31


def _counter_key(xp: Any, seed: int, stream: int, counter: Any, dtype: Any, wide: bool) -> Any:
    """``(key_a, key_b)``: Python ints for a Python counter, 0-d arrays for a device one."""
    if isinstance(counter, int):
        return counter_key(seed, stream, counter)
    k = step_key(seed, stream) & _M31
    # one element rather than 0-d: some libraries make 0-d results scalars, whose
    # wrapping products warn about overflow
    c = xp.reshape(xp.astype(counter, dtype), (1,))
    if wide:
        c = c & _M32
    a = _fmix(c ^ k, wide)
    return a & _M31, _fmix(a ^ _H, wide) & _M31


def random_bits(xp: Any, shape: tuple[int, ...], seed: int, counter: Any, stream: int,
                device: Any = None, first: int = 0) -> Any:
    """32 random bits per element of ``shape`` (in :func:`hash_dtype`'s dtype), from
    ``(seed, counter, stream)`` and the element's flat index.

    ``counter`` is a Python int or a 0-d integer array on ``device``. ``first`` is the
    flat index of the first element: the draw is the slice ``[first, first + size)`` of
    a larger one (a data-parallel rank draws the rows of its slice of the global batch).
    """
    dtype = hash_dtype(xp)
    wide = dtype != xp.uint32
    n = 1
    for s in shape:
        n *= int(s)
    first = int(first)
    if first < 0 or first + n >= 2**31:
        raise ValueError(f"random_bits draws elements 0 .. 2**31 - 1, asked for {first} .. {first + n - 1}")
    key_a, key_b = _counter_key(xp, seed, stream, counter, dtype, wide)
    x = xp.arange(first, first + n, dtype=dtype, device=device)
    x ^= key_a
    x = _fmix_inplace(x, wide)
    x ^= key_b
    x = _fmix_inplace(x, wide)
    return xp.reshape(x, shape)


def uniform(xp: Any, shape: tuple[int, ...], seed: int, counter: Any, stream: int,
            dtype: Any, device: Any = None, first: int = 0) -> Any:
    """Uniform floats in ``[0, 1)`` of ``dtype`` (24 random bits each; the same numbers
    in float32 and float64 and on every backend)."""
    bits = random_bits(xp, shape, seed, counter, stream, device, first)
    return xp.astype(bits >> 8, dtype) * (2.0**-24)


def random_below(xp: Any, shape: tuple[int, ...], n: int, seed: int, counter: Any,
                 stream: int, device: Any = None, first: int = 0) -> Any:
    """Integers in ``[0, n)`` for ``n <= 256``, nearly uniform (the top 24 bits scaled:
    ``(bits >> 8) * n >> 24``, a bias below ``n * 2**-24``), in :func:`hash_dtype`'s
    dtype (non-negative, usable as indices)."""
    n = int(n)
    if not 1 <= n <= 256:
        raise ValueError(f"random_below draws integers below n = 1 .. 256, got n = {n}")
    bits = random_bits(xp, shape, seed, counter, stream, device, first)
    return ((bits >> 8) * n) >> 24


def dropout_mask(xp: Any, shape: tuple[int, ...], rate: float, seed: int, counter: Any,
                 stream: int, dtype: Any, device: Any = None, first: int = 0) -> Any:
    """The inverted-dropout mask: ``1 / (1 - rate)`` where an element is kept (with
    probability ``1 - rate``), ``0`` where it is dropped, in ``dtype``.

    An element is dropped when its top 31 random bits are below ``round(rate * 2**31)``,
    so the rate is exact to 2**-31; multiplying activations by the mask keeps their
    expected value.
    """
    threshold = drop_threshold(rate)
    bits = random_bits(xp, shape, seed, counter, stream, device, first)
    return xp.astype((bits >> 1) >= threshold, dtype) * (1.0 / (1.0 - float(rate)))


def drop_threshold(rate: float) -> int:
    """The integer an element's top 31 bits are compared with in :func:`dropout_mask`
    (``round(rate * 2**31)``), after checking that ``0 <= rate < 1``."""
    rate = float(rate)
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"a dropout rate must be in [0, 1), got {rate}")
    return min(int(round(rate * 2.0**31)), _M31)
