"""A training step's elementwise work, written once in Array API code.

Everything a step does besides the matrix products lives here: the hidden
activations and their derivatives, the output layer's loss and error term, the
L1/L2 penalty, one-hot targets, the bias and weight gradients' bookkeeping, and the
optimizers' elementwise updates. :class:`Ops` is the generic implementation: every
backend without a fast path runs it, and the tests run it on every backend as the
reference. Fast paths (:mod:`arraynn.ops.numpy`, :mod:`arraynn.ops.cupy`) subclass it
and override what they can do better; :func:`arraynn.ops.ops_for` picks one.

The contract every implementation keeps:

* Operations *return* their results. An argument documented as "consumed" may be
  overwritten and used as the result's storage; the caller passes an array it owns
  (a temporary it made, or a buffer it updates) and does not read the old value
  afterwards. The generic path overwrites only through augmented assignment
  (``m *= beta``), which rebinds immutable arrays (JAX), so they work unchanged.
* ``out=`` arguments are a *hint*: a fast path may write the result there and return
  ``out`` itself; the generic path returns a new array. Callers use the returned
  array, and can tell by identity whether it landed in ``out``.
* Hyperparameters are Python floats (or, inside a compiled JAX step, 0-d arrays of the
  parameters' dtype), never NumPy scalars, so float32 stays float32.

The math, for reference:

========  ======================  ==========================
name      f(z)                    f'(z) from a = f(z)
========  ======================  ==========================
sigmoid   0.5 * tanh(z / 2) + 0.5  a * (1 - a)
tanh      tanh(z)                 1 - a**2
relu      max(z, 0)               1 where a > 0, else 0
========  ======================  ==========================

The sigmoid is the logistic function written so that it never overflows (the
article's ``1 / (1 + exp(-z))`` does on raw 0-255 pixels). The two output layers
pair with the cross-entropy whose gradient with respect to the logits is ``p - y``:
``"sigmoid"`` (the article's: independent sigmoids, binary cross-entropy summed over
classes, ``softplus(z) - y * z``) and ``"softmax"`` (categorical cross-entropy, by
log-sum-exp). The penalty on a weight matrix is ``l1 * sum|w| + l2 / 2 * sum w**2``;
its subgradient ``l1 * sign(w) + l2 * w`` (the article added ``l1 * w``).
"""

from __future__ import annotations

import math
from typing import Any

import array_api_compat

__all__ = ["ACTIVATIONS", "OUTPUTS", "Ops", "flush_subnormal", "log_softmax", "relu", "sign", "softmax",
           "softplus"]

#: Hidden-layer activations.
ACTIVATIONS: tuple[str, ...] = ("sigmoid", "tanh", "relu")
#: Output layers.
OUTPUTS: tuple[str, ...] = ("sigmoid", "softmax")


def _kernel_grad(xp: Any, dy3: Any, cols: Any) -> Any:
    """``sum_s dy3[s] @ cols[s].T``: (n, f, P) and (n, K, P) to (f, K)."""
    return xp.sum(xp.matmul(dy3, xp.permute_dims(cols, (0, 2, 1))), axis=0)


def _unknown(kind: str, name: str, choices: tuple[str, ...]) -> ValueError:
    return ValueError(f"unknown {kind} {name!r}; choose one of {list(choices)}")


def softmax(z: Any, xp: Any) -> Any:
    """Row-wise softmax of a 2-D array, shifted by the row maximum (no overflow)."""
    e = xp.exp(z - xp.max(z, axis=1, keepdims=True))
    return e / xp.sum(e, axis=1, keepdims=True)


def log_softmax(z: Any, xp: Any) -> Any:
    """Row-wise ``log(softmax(z))`` by the log-sum-exp trick."""
    shifted = z - xp.max(z, axis=1, keepdims=True)
    return shifted - xp.log(xp.sum(xp.exp(shifted), axis=1, keepdims=True))


def flush_subnormal(x: Any, xp: Any) -> Any:
    """``x`` with the values whose magnitude is below its dtype's smallest normal number
    set to ``+0``: ``where(|x| < tiny, 0, x)``; NaN and infinities stay as they are.

    Subnormal numbers are kept out of everything a training step keeps or multiplies
    with: on some CPUs (Intel's; AMD's hide it) a matrix product or an elementwise
    operation with subnormal operands runs many times slower (microcode assists; a
    float32 ``(128, 512) @ (512, 512)`` product went from 0.7 ms to 100 ms with 40 % of
    its right-hand side at ``1e-39``). Two places make them:

    * the softmax's probabilities for the classes far below the row's maximum (``exp``
      of a shift below about -87 in float32), which the error term ``p - y`` would carry
      into the backward matrix products;
    * the optimizers' updates: a weight that only weight decay pulls on, and its Adam
      moments or momentum, shrink geometrically through the normal range into the
      subnormal one (the best preset's 512x512 matrix was 40 % subnormal after 50
      epochs), so every update flushes the parameters and its buffers.

    Below the smallest normal a value is ``1.2e-38`` (float32) or ``2.2e-308`` (float64):
    zero for training. Every backend flushes the same values, so they still agree.
    """
    tiny = xp.finfo(x.dtype).smallest_normal
    return xp.where(xp.abs(x) < tiny, 0.0, x)


def relu(z: Any, xp: Any) -> Any:
    """``max(z, 0)``, the zero a 0-d array on ``z``'s device.

    Not ``xp.maximum(z, 0.0)``: array-api-compat turns that Python scalar into a tensor
    for ``torch.maximum``, a host-to-device copy (and a wait for it) on every call on
    CUDA. A device zero is made by a fill on the device.
    """
    return xp.maximum(z, xp.zeros((), dtype=z.dtype, device=array_api_compat.device(z)))


def sign(w: Any, xp: Any) -> Any:
    """``sign(w)`` of real floating ``w``: 1, -1, +0 for either zero, NaN for NaN.

    Written with ``where`` rather than ``xp.sign``: array-api-compat's CuPy ``sign``
    writes the NaNs back through a boolean mask, which reads a count back to the host
    on every call.
    """
    return xp.where(w > 0.0, 1.0, xp.where(w < 0.0, -1.0, w + 0.0))


def softplus(z: Any, xp: Any) -> Any:
    """``log(1 + exp(z))`` without overflow: ``max(z, 0) + log1p(exp(-|z|))``."""
    return relu(z, xp) + xp.log1p(xp.exp(-xp.abs(z)))


class Ops:
    """The generic Array API implementation of a training step's elementwise work.

    Parameters
    ----------
    xp : namespace
        The Array API namespace of the arrays it will see.
    """

    name = "generic"

    def __init__(self, xp: Any) -> None:
        self.xp = xp

    def __repr__(self) -> str:
        return f"{type(self).__name__}({getattr(self.xp, '__name__', self.xp)!s})"

    # ---- dropout --------------------------------------------------------------------
    def scale_batch(self, X: Any, dtype: Any, mean: Any, scale: Any) -> Any:
        """``(X - mean) / scale`` of a minibatch in the float ``dtype`` (``X`` converted
        first; no subtraction where ``mean`` is None): the training batches'
        preprocessing (:class:`arraynn.data.pipeline.BatchPipeline`). ``X`` is left as
        it is."""
        if X.dtype != dtype:
            X = self.xp.astype(X, dtype)
        if mean is not None:
            X = X - mean
        return X / scale

    def dropout_mask(self, shape: tuple[int, ...], rate: float, seed: int, counter: Any,
                     stream: int, dtype: Any, device: Any = None, first: int = 0) -> Any:
        """The inverted-dropout mask of :func:`arraynn.nn.random.dropout_mask` (a new
        array of ``shape`` and ``dtype``: ``1 / (1 - rate)`` where kept, ``0`` where
        dropped; ``first``: the flat index of its first element in a larger draw)."""
        from ..nn import random  # arraynn.nn imports this module

        return random.dropout_mask(self.xp, shape, rate, seed, counter, stream, dtype, device,
                                   first)

    # ---- hidden layers --------------------------------------------------------------
    def activate(self, name: str, z: Any) -> Any:
        """The hidden activation ``name`` of ``z`` (consumed)."""
        xp = self.xp
        if name == "sigmoid":
            return 0.5 * xp.tanh(0.5 * z) + 0.5
        if name == "tanh":
            return xp.tanh(z)
        if name == "relu":
            return relu(z, xp)
        raise _unknown("activation", name, ACTIVATIONS)

    def activate_grad(self, name: str, a: Any, g: Any) -> Any:
        """``g * f'(z)`` given the activation's output ``a``; ``g`` is consumed."""
        if name == "sigmoid":
            return g * (a * (1.0 - a))
        if name == "tanh":
            return g * (1.0 - a * a)
        if name == "relu":  # the subgradient at 0 is 0
            return self.xp.where(a > 0.0, g, 0.0)
        raise _unknown("activation", name, ACTIVATIONS)

    def add_bias(self, z: Any, b: Any) -> Any:
        """``z + b`` (``b`` broadcast over rows); ``z`` is consumed."""
        return z + b

    # ---- gradients ------------------------------------------------------------------
    def weight_grad(self, a: Any, delta: Any, out: Any = None) -> Any:
        """``a.T @ delta``, the weight gradient summed over the minibatch."""
        return a.T @ delta

    def bias_grad(self, delta: Any, out: Any = None) -> Any:
        """The bias gradient: ``delta`` summed over the minibatch (rows)."""
        return self.xp.sum(delta, axis=0)

    def penalize(self, w: Any, g: Any, l1: float, l2: float) -> Any:
        """``g`` plus the L1/L2 subgradient at ``w``; ``g`` is consumed."""
        if l2:
            g = g + l2 * w
        if l1:
            g = g + l1 * sign(w, self.xp)
        return g

    def keep(self, value: Any, out: Any = None) -> Any:
        """``value`` (a layer's parameter gradient), copied into ``out`` (its view of the
        flat gradient buffer) where the library can write there, so :meth:`pack` need
        not copy the whole buffer; the generic path returns ``value``."""
        return value

    def pack(self, grads: list[Any], out: list[Any] | None, flat: Any) -> Any:
        """The per-parameter ``grads`` as one flat buffer.

        ``out`` are the views of ``flat`` the gradients were asked to land in (see
        :meth:`weight_grad`); when every gradient did, ``flat`` is already the result.
        """
        if out is not None and all(g is o for g, o in zip(grads, out)):
            return flat
        xp = self.xp
        return xp.concat([xp.reshape(g, (-1,)) for g in grads])

    def penalty(self, weights: list[Any], l1: float, l2: float) -> Any:
        """``sum over w of l1*|w|_1 + l2/2*|w|_2^2`` as a 0-d array."""
        xp = self.xp
        w0 = weights[0]
        total = xp.zeros((), dtype=w0.dtype, device=array_api_compat.device(w0))
        for w in weights:
            if l1:
                total = total + l1 * xp.sum(xp.abs(w))
            if l2:
                total = total + (0.5 * l2) * xp.sum(w * w)
        return total

    # ---- sliding windows (convolution and pooling) -------------------------------------
    def im2col(self, x: Any, win: Any) -> Any:
        """Images ``x`` (n, c, h, w) as columns (n, c*kh*kw, oh*ow) under the window
        geometry ``win`` (:func:`arraynn.ops.windows.im2col`)."""
        from .windows import im2col

        return im2col(x, win, self.xp)

    def col2im(self, cols: Any, shape: tuple[int, int, int, int], win: Any) -> Any:
        """The adjoint of :meth:`im2col`: ``cols`` summed back onto images of ``shape``
        (:func:`arraynn.ops.windows.col2im`); ``cols`` is consumed."""
        from .windows import col2im

        return col2im(cols, shape, win, self.xp)

    def add_windows(self, parts: list[Any], shape: tuple[int, int, int, int], win: Any) -> Any:
        """Per-offset window values (``kh * kw`` arrays (n, c, oh, ow), as
        :func:`arraynn.ops.windows.pieces` cuts them) added back onto images of ``shape``
        (:func:`arraynn.ops.windows.add_windows`)."""
        from .windows import add_windows

        return add_windows(parts, shape, win, self.xp)

    def conv2d(self, x: Any, W: Any, win: Any, chunk: int) -> tuple[Any, Any]:
        """The convolution of images ``x`` (n, c, h, w) with kernels ``W`` (f, c, kh, kw)
        under the window geometry ``win``, without bias: ``(y, cache)``, ``y`` (n, f, oh,
        ow) and ``cache`` what :meth:`conv2d_grads` reads back. Im2col and one matrix
        product; with ``chunk < n``, ``chunk`` samples' columns at a time, made again by
        the backward pass (the workspace bound). ``x`` is not changed."""
        xp = self.xp
        n, f = int(x.shape[0]), int(W.shape[0])
        oh, ow = win.output_hw(int(x.shape[2]), int(x.shape[3]))
        W2 = xp.reshape(W, (f, -1))
        if chunk >= n:
            cols = self.im2col(x, win)
            y = W2 @ cols
            cache = (cols, None, tuple(x.shape), win, chunk)
        else:
            y = xp.concat([W2 @ self.im2col(x[s:s + chunk], win) for s in range(0, n, chunk)], axis=0)
            cache = (None, x, tuple(x.shape), win, chunk)
        return xp.reshape(y, (n, f, oh, ow)), cache

    def conv2d_grads(self, W: Any, cache: Any, dy: Any, need_dx: bool = True) -> tuple[Any, Any]:
        """The gradients of :meth:`conv2d` for the output gradient ``dy`` (n, f, oh, ow):
        ``(dW, dx)``, ``dW`` shaped as ``W``, ``dx`` the images' (``None`` unless
        ``need_dx``)."""
        xp = self.xp
        cols, x, shape, win, chunk = cache
        n, f = shape[0], int(W.shape[0])
        # W as (c*kh*kw, filters), made in C order by the reshape of the permuted view: NumPy's
        # stacked matmul leaves BLAS for a plain loop when a broadcast operand is a transposed
        # view, about 4x slower at the shapes of --preset cnn
        W2t = xp.reshape(xp.permute_dims(W, (1, 2, 3, 0)), (-1, f))
        dy3 = xp.reshape(dy, (n, f, math.prod(dy.shape[2:])))
        dx = None
        if cols is not None:
            dW = _kernel_grad(xp, dy3, cols)
            if need_dx:
                dx = self.col2im(xp.matmul(W2t, dy3), shape, win)
        else:
            dW, parts = None, []
            for s in range(0, n, chunk):
                part = dy3[s:s + chunk]
                g = _kernel_grad(xp, part, self.im2col(x[s:s + chunk], win))
                dW = g if dW is None else dW + g
                if need_dx:
                    parts.append(self.col2im(xp.matmul(W2t, part), (int(part.shape[0]), *shape[1:]), win))
            if need_dx:
                dx = xp.concat(parts, axis=0)
        return xp.reshape(dW, tuple(W.shape)), dx

    def max_pool(self, x: Any, win: Any) -> tuple[Any, Any]:
        """The maximum of every window of the images ``x`` (n, c, h, w) and where it is:
        ``(y, arg)``, ``y`` (n, c, oh, ow) and ``arg`` the offset ``i * kw + j`` within
        its window of the first maximum in C order (a strictly greater value moves it),
        in whatever form :meth:`max_pool_grad` reads back. ``x`` is not changed."""
        from .windows import pieces

        xp = self.xp
        parts = pieces(x, win, xp)
        best = parts[0]
        arg = xp.zeros(tuple(best.shape), dtype=xp.int8 if len(parts) <= 127 else xp.int32,
                       device=array_api_compat.device(best))
        for k, part in enumerate(parts[1:], start=1):
            better = part > best
            best = xp.where(better, part, best)
            arg = xp.where(better, xp.asarray(k, dtype=arg.dtype, device=array_api_compat.device(arg)), arg)
        if best is parts[0]:  # a 1x1 pool: the slice is a view of x, which is not ours to give out
            best = best + 0
        return best, arg

    def max_pool_grad(self, dy: Any, arg: Any, shape: tuple[int, int, int, int], win: Any) -> Any:
        """The gradient of :meth:`max_pool` with respect to its images of ``shape``:
        each ``dy`` (n, c, oh, ow) value onto its window's maximum, summed where windows
        overlap (in offset order)."""
        xp = self.xp
        dev = array_api_compat.device(arg)
        parts = [dy * xp.astype(arg == xp.asarray(o, dtype=arg.dtype, device=dev), dy.dtype)
                 for o in range(win.kh * win.kw)]
        return self.add_windows(parts, shape, win)

    # ---- batch normalisation (arraynn.nn.norm) ----------------------------------------
    # Arrays are (n, c) rows or (n, c, h, w) images; the statistics are per channel c,
    # over every other axis.
    @staticmethod
    def _channel_axes(x: Any) -> tuple[int, ...]:
        return (0,) if x.ndim == 2 else (0, 2, 3)

    def _per_channel(self, v: Any, ndim: int) -> Any:
        return v if ndim == 2 else self.xp.reshape(v, (1, -1, 1, 1))

    def batch_norm_sums(self, x: Any, shift: Any) -> Any:
        """Per channel ``sum(x - shift)`` and ``sum((x - shift)**2)``, concatenated:
        shape ``(2 * c,)``, ``x``'s dtype. ``x`` is not changed."""
        xp = self.xp
        xs = x - self._per_channel(shift, x.ndim)
        axes = self._channel_axes(x)
        return xp.concat([xp.sum(xs, axis=axes), xp.sum(xs * xs, axis=axes)])

    def batch_norm_apply(self, x: Any, shift: Any, mean: Any, inv: Any, gamma: Any,
                         beta: Any) -> tuple[Any, Any]:
        """``(y, xhat)``: ``xhat = ((x - shift) - mean) * inv`` and ``y = xhat * gamma + beta``,
        every per-channel vector broadcast over its channel. ``x`` is not changed."""
        pc = self._per_channel
        xhat = ((x - pc(shift, x.ndim)) - pc(mean, x.ndim)) * pc(inv, x.ndim)
        return xhat * pc(gamma, x.ndim) + pc(beta, x.ndim), xhat

    def batch_norm_infer(self, x: Any, mean: Any, scale: Any, beta: Any) -> Any:
        """Batch normalisation at prediction: ``(x - mean) * scale + beta`` per channel
        (``scale`` is ``gamma / sqrt(var + epsilon)``). ``x`` is not changed."""
        pc, nd = self._per_channel, x.ndim
        return (x - pc(mean, nd)) * pc(scale, nd) + pc(beta, nd)

    def batch_norm_grad_sums(self, dy: Any, xhat: Any) -> Any:
        """Per channel ``sum(dy)`` and ``sum(dy * xhat)``, concatenated (``(2 * c,)``)."""
        xp = self.xp
        axes = self._channel_axes(dy)
        return xp.concat([xp.sum(dy, axis=axes), xp.sum(dy * xhat, axis=axes)])

    def batch_norm_input_grad(self, dy: Any, xhat: Any, scale: Any, m: Any, sum_dy: Any,
                              sum_dy_xhat: Any) -> Any:
        """Batch normalisation's input gradient
        ``scale * ((dy * m - sum_dy) - xhat * sum_dy_xhat)`` (``scale``, ``sum_dy`` and
        ``sum_dy_xhat`` per channel, ``m`` the count as a 1-element array)."""
        pc, nd = self._per_channel, dy.ndim
        return pc(scale, nd) * ((dy * pc(m, nd) - pc(sum_dy, nd)) - xhat * pc(sum_dy_xhat, nd))

    # Batch normalisation straight into max pooling (BatchNorm then MaxPool2D in training):
    # these three are the composition of the passes above, the reference for a backend
    # that fuses them (:meth:`fuses_norm_pool`); the BatchNorm keeps its input then, not
    # the normalised images, and recomputes those in the backward pass.
    def fuses_norm_pool(self, x: Any, win: Any) -> bool:
        """Whether this backend has a fused pass for batch normalisation of ``x`` followed
        by max pooling under ``win`` (then :class:`arraynn.nn.Sequential` calls the three
        ``batch_norm_max_pool*`` methods instead of the layers' own). Not here."""
        return False

    def batch_norm_max_pool(self, x: Any, shift: Any, mean: Any, inv: Any, gamma: Any, beta: Any,
                            win: Any) -> tuple[Any, Any]:
        """:meth:`max_pool` of :meth:`batch_norm_apply`'s ``y``: ``(pooled, arg)``."""
        y, _ = self.batch_norm_apply(x, shift, mean, inv, gamma, beta)
        return self.max_pool(y, win)

    def _unpooled_and_xhat(self, dy: Any, arg: Any, x: Any, shift: Any, mean: Any, inv: Any,
                           win: Any) -> tuple[Any, Any]:
        pc, nd = self._per_channel, x.ndim
        xhat = ((x - pc(shift, nd)) - pc(mean, nd)) * pc(inv, nd)
        return self.max_pool_grad(dy, arg, tuple(x.shape), win), xhat

    def batch_norm_max_pool_grad_sums(self, dy: Any, arg: Any, x: Any, shift: Any, mean: Any, inv: Any,
                                      win: Any) -> Any:
        """:meth:`batch_norm_grad_sums` of the pooled gradient ``dy`` taken back through
        the pooling (:meth:`max_pool_grad`) and of the normalised ``x``."""
        return self.batch_norm_grad_sums(*self._unpooled_and_xhat(dy, arg, x, shift, mean, inv, win))

    def batch_norm_max_pool_input_grad(self, dy: Any, arg: Any, x: Any, shift: Any, mean: Any, inv: Any,
                                       win: Any, scale: Any, m: Any, sum_dy: Any, sum_dy_xhat: Any) -> Any:
        """:meth:`batch_norm_input_grad` of the same (the gradient with respect to ``x``)."""
        full, xhat = self._unpooled_and_xhat(dy, arg, x, shift, mean, inv, win)
        return self.batch_norm_input_grad(full, xhat, scale, m, sum_dy, sum_dy_xhat)

    # ---- output layer ---------------------------------------------------------------
    def probabilities(self, output: str, z: Any) -> Any:
        """The output layer's activation of the logits ``z``. ``z`` is not changed."""
        if output == "softmax":
            return softmax(z, self.xp)
        if output == "sigmoid":
            return self.activate("sigmoid", z)
        raise _unknown("output", output, OUTPUTS)

    def loss_and_delta(self, output: str, z: Any, y: Any) -> tuple[Any, Any]:
        """The summed cross-entropy of logits ``z`` against one-hot ``y`` (0-d) and the
        error term ``p - y``, sharing the exponentials. ``z`` is not changed.

        The softmax probabilities in the error term are flushed to zero below the
        dtype's smallest normal number (:func:`flush_subnormal`); the loss is not
        affected (it is computed from the log-sum-exp)."""
        xp = self.xp
        if output == "softmax":
            shifted = z - xp.max(z, axis=1, keepdims=True)
            e = xp.exp(shifted)
            s = xp.sum(e, axis=1, keepdims=True)
            loss = -xp.sum(y * (shifted - xp.log(s)))
            return loss, flush_subnormal(e / s, xp) - y
        if output == "sigmoid":
            # -[y log s(z) + (1-y) log(1 - s(z))] = softplus(z) - y z
            loss = xp.sum(softplus(z, xp) - y * z)
            return loss, self.activate("sigmoid", z) - y
        raise _unknown("output", output, OUTPUTS)

    def weighted_loss_and_delta(self, output: str, z: Any, y: Any, w: Any) -> tuple[Any, Any]:
        """:meth:`loss_and_delta` with a weight per row: the loss is ``sum_i w_i *
        loss_i`` and the error term ``w_i * (p_i - y_i)``, so a weight of 2 counts a row
        as two copies of it (``w`` is a 1-D array of ``z``'s dtype and device)."""
        xp = self.xp
        if output == "softmax":
            shifted = z - xp.max(z, axis=1, keepdims=True)
            e = xp.exp(shifted)
            s = xp.sum(e, axis=1, keepdims=True)
            row_loss = -xp.sum(y * (shifted - xp.log(s)), axis=1)
            delta = flush_subnormal(e / s, xp) - y
        elif output == "sigmoid":
            row_loss = xp.sum(softplus(z, xp) - y * z, axis=1)
            delta = self.activate("sigmoid", z + 0.0) - y
        else:
            raise _unknown("output", output, OUTPUTS)
        return xp.sum(w * row_loss), delta * w[:, None]

    def one_hot(self, labels: Any, n_classes: int, dtype: Any) -> Any:
        """One-hot rows for integer ``labels`` (on their device), in ``dtype``."""
        xp = self.xp
        classes = xp.arange(n_classes, dtype=labels.dtype, device=array_api_compat.device(labels))
        return xp.astype(labels[:, None] == classes[None, :], dtype)

    # ---- optimizer updates: whole buffers; p, m, v are consumed, g is only read ------
    # Written with augmented assignment: in place where the library allows it, a
    # rebinding for immutable arrays (JAX), so the same code serves both. Every buffer an
    # update writes is flushed of subnormal numbers (:func:`flush_subnormal`), the last
    # operation on it, so a training state never holds one.
    def sgd(self, p: Any, g: Any, lr: Any) -> Any:
        """``p - lr * g`` (flushed)."""
        p -= lr * g
        return flush_subnormal(p, self.xp)

    def momentum(self, p: Any, g: Any, v: Any, lr: Any, mu: float,
                 nesterov: bool) -> tuple[Any, Any]:
        """Classical momentum ``v = mu*v - lr*g; p += v``, or Nesterov's
        ``p += mu*v - lr*g`` with the new ``v``; ``v`` and ``p`` each flushed once made.
        Returns ``(p, v)``."""
        xp = self.xp
        v *= mu
        v -= lr * g
        v = flush_subnormal(v, xp)
        if nesterov:
            p += mu * v - lr * g
        else:
            p += v
        return flush_subnormal(p, xp), v

    def adam(self, p: Any, g: Any, m: Any, v: Any, lr_t: Any, beta_1: float, beta_2: float,
             eps_t: Any) -> tuple[Any, Any, Any]:
        """One Adam step with the bias correction folded into ``lr_t`` and ``eps_t``::

            m = beta_1 * m + (1 - beta_1) * g
            v = beta_2 * v + (1 - beta_2) * g * g
            p = p - lr_t * m / (sqrt(v) + eps_t)

        each of ``m``, ``v`` and ``p`` flushed of subnormal numbers once made. Returns
        ``(p, m, v)``.
        """
        xp = self.xp
        m *= beta_1
        m += (1.0 - beta_1) * g
        m = flush_subnormal(m, xp)
        v *= beta_2
        v += (1.0 - beta_2) * (g * g)
        v = flush_subnormal(v, xp)
        p -= lr_t * (m / (xp.sqrt(v) + eps_t))
        return flush_subnormal(p, xp), m, v
