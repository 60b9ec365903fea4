"""NumPy's fast path: :class:`arraynn.ops.generic.Ops` with in-place ufuncs.

The same operations in the same order as the generic code, so the same values bit
for bit (the ReLU derivative multiplies by the mask, which differs from the generic
``where`` only for a non-finite gradient), but written with in-place ufuncs and
``out=`` so that a step allocates almost nothing and makes fewer passes over memory:
the weight and bias gradients land directly in the flat gradient buffer, and an
optimizer update is a handful of calls over the whole parameter buffer, or, where
Numba is installed, one compiled pass over it (:mod:`arraynn.ops.numba_kernels`, the
same values).

The softmax error term has its probabilities below the dtype's smallest normal number
flushed to zero, and so has every buffer an optimizer update writes, as in the generic
code (:func:`arraynn.ops.generic.flush_subnormal`): ``x *= |x| >= tiny; x += 0.0`` is
``where(|x| < tiny, 0, x)`` bit for bit (the addition turns the ``-0.0`` that a negative
value times ``False`` gives into ``+0.0``, and changes no other value).

The layers' fast paths (convolution, pooling, batch normalisation) are
:class:`arraynn.ops.numpy_layers.NumpyLayerOps`, which this class builds on. With Numba,
a convolution's col2im is one compiled pass (the generic code's sums in its
order), and max pooling one pass over the windows for the maximum and its offset and one
for the gradient, the generic values (in the gradient a non-finite ``dy`` reaches only
its window's maximum, where the generic ``dy * mask`` spreads NaN over the window, as
the ReLU derivative's mask does).

Two things are equal to rounding rather than bit for bit. A convolution is one matrix
product over the whole batch (:meth:`NumpyOps.conv2d`: the same sums as the generic
per-sample products, in BLAS's order). With Numba, batch normalisation is two compiled
passes forward and two backward (:meth:`NumpyOps.batch_norm_sums` and friends): the
elementwise passes are the generic operations in their order, bit for bit, but the
per-channel sums accumulate in float64 where the generic ones add in the arrays' dtype.

The dropout masks keep an element when its 32 bits are at least twice the generic
code's 31-bit threshold (``bits >> 1 >= T`` is ``bits >= 2 T``): one compiled pass with
Numba, else in-place ufuncs over two reused ``uint32`` buffers; the generic masks bit
for bit either way.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

from ..nn import random
from . import numba_kernels
from .numpy_layers import NumpyLayerOps

__all__ = ["NumpyOps"]


def _fused(p: Any, *others: Any, scalars: tuple[Any, ...]) -> Any:
    """The compiled update kernels if they apply to these buffers, else ``None``: Numba
    installed and enabled, ``p`` a large contiguous 1-D float buffer, the others (the
    gradient, then the optimizer buffers, which are written) of its shape and dtype,
    none overlapping ``p``, and Python-number hyperparameters."""
    if not (isinstance(p, np.ndarray) and p.ndim == 1 and p.size >= numba_kernels.MIN_SIZE
            and p.dtype.char in "fd" and p.flags.c_contiguous and p.flags.writeable):
        return None
    for i, a in enumerate(others):
        if not (isinstance(a, np.ndarray) and a.shape == p.shape and a.dtype == p.dtype
                and a.flags.c_contiguous and (i == 0 or a.flags.writeable)):
            return None
    for x in scalars:
        if not isinstance(x, (float, int)):
            return None
    if any(np.may_share_memory(p, a) for a in others):
        return None
    return numba_kernels.kernels()


class NumpyOps(NumpyLayerOps):
    """NumPy's fast path, bit-for-bit equal to :class:`Ops` (convolutions and batch
    normalisation's sums: to rounding).

    Scratch arrays are kept per thread, shape and dtype, so a step allocates only the
    arrays it returns.
    """

    name = "numpy"

    def __init__(self, xp: Any) -> None:
        super().__init__(xp)
        self._local = threading.local()
        self._eyes: dict[tuple[int, Any], Any] = {}  # read-only once made
        self._aranges: dict[int, Any] = {}  # read-only once made
        self._tinies: dict[Any, float] = {}

    def _tiny(self, dtype: Any) -> float:
        """The smallest normal number of ``dtype``, as a Python float."""
        tiny = self._tinies.get(dtype)
        if tiny is None:
            tiny = self._tinies[dtype] = float(np.finfo(dtype).smallest_normal)
        return tiny

    def _flush(self, x: np.ndarray) -> np.ndarray:
        """:func:`arraynn.ops.generic.flush_subnormal` of ``x``, in place."""
        t = np.abs(x, out=self._scratch(x, 2))
        keep = np.greater_equal(t, self._tiny(x.dtype), out=self._flat_scratch(x.size, np.bool_, 3)
                                .reshape(x.shape))
        x *= keep
        x += 0.0
        return x

    def _scratch(self, like: Any, slot: int = 0) -> np.ndarray:
        """A per-thread scratch array of ``like``'s shape and dtype."""
        bufs = getattr(self._local, "bufs", None)
        if bufs is None:
            bufs = self._local.bufs = {}
        key = (like.shape, like.dtype, slot)
        buf = bufs.get(key)
        if buf is None:
            buf = bufs[key] = np.empty(like.shape, like.dtype)
        return buf

    def _flat_scratch(self, n: int, dtype: Any, slot: int) -> np.ndarray:
        bufs = getattr(self._local, "bufs", None)
        if bufs is None:
            bufs = self._local.bufs = {}
        key = ((n,), np.dtype(dtype), slot)
        buf = bufs.get(key)
        if buf is None:
            buf = bufs[key] = np.empty(n, dtype)
        return buf

    def scale_batch(self, X: Any, dtype: Any, mean: Any, scale: Any) -> Any:
        """The generic ``(X - mean) / scale`` in one per-thread scratch buffer per batch
        shape (the same numbers: the conversion is exact, then the same two float
        operations): a new 400 KB array per batch costs the operating system's page
        faults, several times the arithmetic. The result is overwritten by the next
        batch of its shape, which a training step, done by then, allows."""
        if not isinstance(X, np.ndarray):
            return super().scale_batch(X, dtype, mean, scale)
        buf = self._flat_scratch(X.size, dtype, slot=11).reshape(X.shape)
        np.copyto(buf, X, casting="unsafe")
        if mean is not None:
            np.subtract(buf, mean, out=buf)
        np.divide(buf, scale, out=buf)
        return buf

    # ---- dropout --------------------------------------------------------------------
    def dropout_mask(self, shape: tuple[int, ...], rate: float, seed: int, counter: Any,
                     stream: int, dtype: Any, device: Any = None, first: int = 0) -> Any:
        n = 1
        for s in shape:
            n *= int(s)
        first = int(first)
        if not isinstance(counter, (int, np.integer)) or first < 0 or first + n >= 2**31:
            # a counter array, or a range the generic code explains in its error
            return super().dropout_mask(shape, rate, seed, counter, stream, dtype, device, first)
        threshold = random.drop_threshold(rate)
        key_a, key_b = random.counter_key(seed, stream, int(counter))
        dtype = np.dtype(dtype)
        # the generic astype(keep, dtype) * (1 / (1 - rate)): 0 or the scale rounded to dtype
        scale = dtype.type(1.0 / (1.0 - float(rate)))
        compiled = numba_kernels.kernels() if n >= 4096 and dtype.char in "fd" else None
        if compiled is not None:
            mask = np.empty(n, dtype)
            compiled.dropout_mask(mask, first, key_a, key_b, 2 * threshold, scale)
            return mask.reshape(shape)
        x = self._flat_scratch(n, np.uint32, 0)
        if first:
            np.add(self._arange(n), np.uint32(first), out=x)
            x ^= np.uint32(key_a)
        else:
            np.bitwise_xor(self._arange(n), np.uint32(key_a), out=x)
        t = self._flat_scratch(n, np.uint32, 1)
        _fmix(x, t)
        x ^= np.uint32(key_b)
        _fmix(x, t)
        keep = np.greater_equal(x, np.uint32(2 * threshold), out=self._flat_scratch(n, np.bool_, 2))
        mask = np.multiply(keep, scale, dtype=dtype)
        return mask.reshape(shape)

    def _arange(self, n: int) -> np.ndarray:
        """``arange(n)`` in uint32, made once per length (read-only)."""
        index = self._aranges.get(n)
        if index is None:
            index = np.arange(n, dtype=np.uint32)
            index.flags.writeable = False
            self._aranges[n] = index
        return index

    # ---- hidden layers --------------------------------------------------------------
    def activate(self, name: str, z: Any) -> Any:
        if name == "relu":
            # z * (z > 0): twice as fast as NumPy's maximum (which checks for NaN) and
            # equal to maximum(z, 0) except that -0.0 stays -0.0 and -inf becomes NaN
            z *= z > 0.0
            return z
        if name == "sigmoid":  # 0.5 * tanh(0.5 * z) + 0.5, in place
            z *= 0.5
            np.tanh(z, out=z)
            z *= 0.5
            z += 0.5
            return z
        if name == "tanh":
            return np.tanh(z, out=z)
        return super().activate(name, z)

    def activate_grad(self, name: str, a: Any, g: Any) -> Any:
        if name == "relu":
            # g * (a > 0): the generic where(a > 0, g, 0) for every finite g, ten times
            # faster (NumPy's masked copies and where() do not vectorize)
            g *= a > 0.0
            return g
        if name == "sigmoid":  # g * (a * (1 - a))
            t = np.subtract(1.0, a, out=self._scratch(a))
            t *= a
            g *= t
            return g
        if name == "tanh":  # g * (1 - a * a)
            t = np.multiply(a, a, out=self._scratch(a))
            np.subtract(1.0, t, out=t)
            g *= t
            return g
        return super().activate_grad(name, a, g)

    def add_bias(self, z: Any, b: Any) -> Any:
        z += b
        return z

    # ---- gradients ------------------------------------------------------------------
    def keep(self, value: Any, out: Any = None) -> Any:
        if isinstance(out, np.ndarray) and out.shape == value.shape and out.dtype == value.dtype:
            out[...] = value
            return out
        return value

    def weight_grad(self, a: Any, delta: Any, out: Any = None) -> Any:
        if out is None:
            return a.T @ delta
        return np.matmul(a.T, delta, out=out)

    def bias_grad(self, delta: Any, out: Any = None) -> Any:
        return np.sum(delta, axis=0, out=out)

    def penalize(self, w: Any, g: Any, l1: float, l2: float) -> Any:
        if l2:
            fused = _fused(g.reshape(-1), w.reshape(-1), scalars=(l2,)) if g.flags.c_contiguous else None
            if fused is not None and w.flags.c_contiguous:
                fused.add_scaled(g.reshape(-1), w.reshape(-1), g.dtype.type(l2))
            else:
                g += np.multiply(w, l2, out=self._scratch(w))
        if l1:
            t = np.sign(w, out=self._scratch(w))
            t *= l1
            g += t
        return g

    # ---- output layer ---------------------------------------------------------------
    def loss_and_delta(self, output: str, z: Any, y: Any) -> tuple[Any, Any]:
        if output == "softmax":
            shifted = z - z.max(axis=1, keepdims=True)
            e = np.exp(shifted)
            s = e.sum(axis=1, keepdims=True)
            shifted -= np.log(s)
            shifted *= y
            loss = -shifted.sum()
            e /= s
            # flush_subnormal: p * (p >= tiny) is where(p < tiny, 0, p) for p >= 0 and NaN
            e *= e >= self._tiny(e.dtype)
            e -= y
            return loss, e
        if output == "sigmoid":
            # loss = sum(softplus(z) - y * z), softplus(z) = max(z, 0) + log1p(exp(-|z|))
            t = np.abs(z)
            np.negative(t, out=t)
            np.exp(t, out=t)
            np.log1p(t, out=t)
            t += np.maximum(z, 0.0)
            t -= y * z
            loss = t.sum()
            delta = self.activate("sigmoid", z.copy())
            delta -= y
            return loss, delta
        return super().loss_and_delta(output, z, y)

    def one_hot(self, labels: Any, n_classes: int, dtype: Any) -> Any:
        # rows of a cached identity matrix: one gather instead of compare-and-convert
        key = (n_classes, np.dtype(dtype))
        eye = self._eyes.get(key)
        if eye is None:
            eye = self._eyes[key] = np.eye(n_classes, dtype=dtype)
        return eye.take(labels, axis=0)

    # ---- optimizer updates, in place on the whole buffers -----------------------------
    # With Numba installed, momentum and Adam over large buffers run as one compiled pass
    # (arraynn.ops.numba_kernels), with the same values bit for bit; else by the ufuncs.
    # SGD stays two ufunc passes: a compiled loop saves nothing measurable there.
    def sgd(self, p: Any, g: Any, lr: Any) -> Any:
        p -= np.multiply(g, lr, out=self._scratch(g))
        return self._flush(p)

    def momentum(self, p: Any, g: Any, v: Any, lr: Any, mu: float,
                 nesterov: bool) -> tuple[Any, Any]:
        fused = _fused(p, g, v, scalars=(lr, mu))
        if fused is not None:
            t = p.dtype.type
            fused.momentum(p, g, v, t(lr), t(mu), bool(nesterov), t(self._tiny(p.dtype)), t(0.0))
            return p, v
        lr_g = np.multiply(g, lr, out=self._scratch(g))
        v *= mu
        v -= lr_g
        self._flush(v)
        if nesterov:
            t = np.multiply(v, mu, out=self._scratch(v, 1))
            t -= lr_g
            p += t
        else:
            p += v
        return self._flush(p), v

    def adam(self, p: Any, g: Any, m: Any, v: Any, lr_t: Any, beta_1: float, beta_2: float,
             eps_t: Any) -> tuple[Any, Any, Any]:
        c1, c2 = 1.0 - beta_1, 1.0 - beta_2
        fused = _fused(p, g, m, v, scalars=(lr_t, beta_1, beta_2, eps_t))
        if fused is not None:
            f = p.dtype.type  # the scalars rounded to the buffers' dtype, as NumPy does
            fused.adam(p, g, m, v, f(lr_t), f(beta_1), f(c1), f(beta_2), f(c2), f(eps_t),
                       f(self._tiny(p.dtype)), f(0.0))
            return p, m, v
        t = np.multiply(g, g, out=self._scratch(g))
        t *= c2
        v *= beta_2
        v += t
        self._flush(v)
        np.multiply(g, c1, out=t)
        m *= beta_1
        m += t
        self._flush(m)
        np.sqrt(v, out=t)
        t += eps_t
        np.divide(m, t, out=t)
        t *= lr_t
        p -= t
        return self._flush(p), m, v


_C1, _C2 = np.uint32(random._C1), np.uint32(random._C2)


def _fmix(x: np.ndarray, t: np.ndarray) -> None:
    """lowbias32 (:func:`arraynn.nn.random._fmix`) of the ``uint32`` array ``x`` in place,
    with ``t`` (same shape) as scratch."""
    np.right_shift(x, 16, out=t)
    x ^= t
    x *= _C1
    np.right_shift(x, 15, out=t)
    x ^= t
    x *= _C2
    np.right_shift(x, 15, out=t)
    x ^= t
