"""A training step's elementwise work, written once in Array API code.

Everything a step does besides the matrix products lives here: the hidden
activations and their derivatives, the output layer's loss and error term, the
L1/L2 penalty, one-hot targets, the bias and weight gradients' bookkeeping, and the
optimizers' elementwise updates; the convolution, pooling and batch-normalisation
layers' passes are its base :class:`arraynn.ops.generic_layers.LayerOps`. :class:`Ops`
is the generic implementation: every
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

from typing import Any

import array_api_compat

from .generic_layers import LayerOps

__all__ = ["ACTIVATIONS", "OUTPUTS", "Ops", "flush_subnormal", "log_softmax", "relu", "sign", "softmax",
           "softplus"]

#: Hidden-layer activations.
ACTIVATIONS: tuple[str, ...] = ("sigmoid", "tanh", "relu")
#: Output layers.
OUTPUTS: tuple[str, ...] = ("sigmoid", "softmax")


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


class Ops(LayerOps):
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
