"""The elementwise work of a training step, behind one seam: :func:`kernels_for`.

:mod:`arraynn.mlp` and :mod:`arraynn.optimizers` do the matrix products themselves
and hand every other operation of a training step (activations and their
derivatives, the output layer's loss and error term, the penalty, the parameter
updates) to a :class:`Kernels` object obtained from :func:`kernels_for` (a namespace)
or :func:`kernels_of` (an array):

``Kernels``
    The generic implementation: Array API code, built from
    :mod:`arraynn.activations`, :mod:`arraynn.losses` and
    :mod:`arraynn.regularizers`. Every backend without a fast path runs it, and
    the tests run it on every backend.
``NumpyKernels``
    NumPy's fast path. The same operations in the same order, so the same values
    (bit for bit; the ReLU derivative multiplies by the mask, which differs from
    the generic ``where`` only for a non-finite gradient), but written with
    in-place ufuncs and ``out=`` so that a step allocates almost nothing and makes
    fewer passes over memory. It is the only code in the math modules that touches
    NumPy, and it imports NumPy lazily.

The contract every implementation keeps:

* Operations *return* their results. An argument documented as "consumed" may be
  overwritten and used as the result's storage; the caller passes an array it owns
  (a temporary it made) and does not read it afterwards. The generic path never
  overwrites anything, so immutable arrays (JAX) work unchanged.
* The multi-tensor updates (:meth:`Kernels.sgd`, :meth:`Kernels.adam`) take lists
  and rebind their entries to the updated arrays, like the optimizers did before.
* Hyperparameters are Python floats (never 0-d arrays or NumPy scalars), so float32
  stays float32.

Adding a backend (for example CuPy with ``cupy.ElementwiseKernel`` fusing the whole
Adam update into one kernel) means subclassing :class:`Kernels`, overriding the
operations that benefit, and adding one entry to :data:`FAST_PATHS`; the tests in
``tests/test_kernels.py`` then compare it with the generic path.

The environment variable ``ARRAYNN_KERNELS=generic`` (read at import) or
:func:`set_fast_paths` turns every fast path off, which is how the benchmark
measures the cost of the generic Array API layer.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Any

import array_api_compat
from array_api_compat import array_namespace

from .activations import get_activation
from .losses import loss_and_delta, output_probabilities
from .regularizers import penalty_grad

__all__ = ["FAST_PATHS", "Kernels", "NumpyKernels", "kernels_for", "kernels_of", "set_fast_paths"]


class Kernels:
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

    # ---- layers -----------------------------------------------------------------
    def activate(self, name: str, z: Any) -> Any:
        """The hidden activation ``name`` of ``z`` (consumed)."""
        return get_activation(name).forward(z, self.xp)

    def activate_grad(self, name: str, a: Any, g: Any) -> Any:
        """``g * f'(z)`` given the activation's output ``a``; ``g`` is consumed."""
        return get_activation(name).grad(a, g, self.xp)

    def add_bias(self, z: Any, b: Any) -> Any:
        """``z + b`` (``b`` broadcast over rows); ``z`` is consumed."""
        return z + b

    def bias_grad(self, delta: Any) -> Any:
        """The bias gradient: ``delta`` summed over the minibatch (rows)."""
        return self.xp.sum(delta, axis=0)

    def penalize(self, w: Any, g: Any, l1: float, l2: float) -> Any:
        """``g`` plus the L1/L2 subgradient at ``w``; ``g`` is consumed."""
        return penalty_grad(w, g, l1, l2, self.xp)

    # ---- output layer -----------------------------------------------------------
    def loss_and_delta(self, output: str, z: Any, y: Any) -> tuple[Any, Any]:
        """The summed cross-entropy of logits ``z`` against one-hot ``y`` (0-d) and
        the error term ``p - y``. ``z`` is not changed."""
        return loss_and_delta(z, y, output, self.xp)

    def output_delta(self, output: str, z: Any, y: Any) -> Any:
        """The error term ``p - y`` alone. ``z`` is not changed."""
        return output_probabilities(z, output, self.xp) - y

    def one_hot(self, labels: Any, n_classes: int, dtype: Any) -> Any:
        """One-hot rows for integer ``labels`` (on their device), in ``dtype``."""
        xp = self.xp
        classes = xp.arange(n_classes, dtype=labels.dtype, device=array_api_compat.device(labels))
        return xp.astype(labels[:, None] == classes[None, :], dtype)

    # ---- parameter updates (lists, entries rebound) ------------------------------
    def sgd(self, params: list[Any], grads: list[Any], lr: float) -> None:
        """``p -= lr * g`` for every pair (the gradients are only read)."""
        for i, g in enumerate(grads):
            p = params[i]
            p -= lr * g
            params[i] = p

    def adam(self, params: list[Any], grads: list[Any], ms: list[Any], vs: list[Any],
             lr_t: float, beta_1: float, beta_2: float, eps_t: float) -> None:
        """One Adam step with the bias correction folded into ``lr_t`` and ``eps_t``::

            m = beta_1 * m + (1 - beta_1) * g
            v = beta_2 * v + (1 - beta_2) * g * g
            p = p - lr_t * m / (sqrt(v) + eps_t)

        The gradients are only read.
        """
        xp = self.xp
        for i, g in enumerate(grads):
            m, v = ms[i], vs[i]
            m *= beta_1
            m += (1.0 - beta_1) * g
            v *= beta_2
            v += (1.0 - beta_2) * (g * g)
            ms[i], vs[i] = m, v
            p = params[i]
            p -= lr_t * (m / (xp.sqrt(v) + eps_t))
            params[i] = p


class NumpyKernels(Kernels):
    """NumPy's fast path: :class:`Kernels` with in-place ufuncs, bit-for-bit equal.

    Scratch arrays for the updates are kept per thread and per shape, so a step
    allocates only the arrays it returns.
    """

    name = "numpy"

    def __init__(self, xp: Any) -> None:
        super().__init__(xp)
        import numpy  # the seam's one concrete import, made when NumPy is selected

        self.np = numpy
        self._local = threading.local()
        self._eyes: dict[tuple[int, Any], Any] = {}  # read-only once made

    def _scratch(self, like: Any) -> Any:
        """A per-thread scratch array of ``like``'s shape and dtype."""
        bufs = getattr(self._local, "bufs", None)
        if bufs is None:
            bufs = self._local.bufs = {}
        key = (like.shape, like.dtype)
        buf = bufs.get(key)
        if buf is None:
            buf = bufs[key] = self.np.empty(like.shape, like.dtype)
        return buf

    # ---- layers -----------------------------------------------------------------
    def activate(self, name: str, z: Any) -> Any:
        np = self.np
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
        np = self.np
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

    def bias_grad(self, delta: Any) -> Any:
        return delta.sum(axis=0)

    def penalize(self, w: Any, g: Any, l1: float, l2: float) -> Any:
        np = self.np
        if l2:
            g += np.multiply(w, l2, out=self._scratch(w))
        if l1:
            t = np.sign(w, out=self._scratch(w))
            t *= l1
            g += t
        return g

    # ---- output layer -----------------------------------------------------------
    def loss_and_delta(self, output: str, z: Any, y: Any) -> tuple[Any, Any]:
        np = self.np
        if output == "softmax":
            shifted = z - z.max(axis=1, keepdims=True)
            e = np.exp(shifted)
            s = e.sum(axis=1, keepdims=True)
            shifted -= np.log(s)
            shifted *= y
            loss = -shifted.sum()
            e /= s
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
        key = (n_classes, self.np.dtype(dtype))
        eye = self._eyes.get(key)
        if eye is None:
            eye = self._eyes[key] = self.np.eye(n_classes, dtype=dtype)
        return eye.take(labels, axis=0)

    # ---- parameter updates --------------------------------------------------------
    def sgd(self, params: list[Any], grads: list[Any], lr: float) -> None:
        np = self.np
        for p, g in zip(params, grads):
            p -= np.multiply(g, lr, out=self._scratch(g))

    def adam(self, params: list[Any], grads: list[Any], ms: list[Any], vs: list[Any],
             lr_t: float, beta_1: float, beta_2: float, eps_t: float) -> None:
        np = self.np
        c1, c2 = 1.0 - beta_1, 1.0 - beta_2
        for p, g, m, v in zip(params, grads, ms, vs):
            t = np.multiply(g, g, out=self._scratch(g))
            t *= c2
            v *= beta_2
            v += t
            np.multiply(g, c1, out=t)
            m *= beta_1
            m += t
            np.sqrt(v, out=t)
            t += eps_t
            np.divide(m, t, out=t)
            t *= lr_t
            p -= t


#: Fast paths: (test on the namespace, implementation). The first match wins;
#: namespaces with none get the generic :class:`Kernels`.
FAST_PATHS: list[tuple[Callable[[Any], bool], type[Kernels]]] = [
    (array_api_compat.is_numpy_namespace, NumpyKernels),
    (array_api_compat.is_cupy_namespace,  # fused CUDA kernels; imports CuPy only when selected
     lambda xp: __import__(f"{__package__}._cupy_kernels", fromlist=["_"]).CupyKernels(xp)),
]

_fast = os.environ.get("ARRAYNN_KERNELS", "auto").strip().lower() != "generic"
_by_namespace: dict[int, Kernels] = {}
_by_type: dict[type, Kernels] = {}


def set_fast_paths(enabled: bool) -> None:
    """Use the fast paths (the default) or the generic kernels for every namespace.

    Affects the kernels looked up afterwards, that is the next training step.
    """
    global _fast
    _fast = bool(enabled)
    _by_namespace.clear()
    _by_type.clear()


def kernels_for(xp: Any) -> Kernels:
    """The kernels for namespace ``xp``: its fast path if it has one, else generic.

    The result is cached per namespace.
    """
    k = _by_namespace.get(id(xp))
    if k is None:
        cls = Kernels
        if _fast:
            cls = next((impl for test, impl in FAST_PATHS if test(xp)), Kernels)
        k = _by_namespace.setdefault(id(xp), cls(xp))
    return k


def kernels_of(x: Any) -> Kernels:
    """The kernels for the namespace of array ``x`` (cached per array type)."""
    k = _by_type.get(type(x))
    if k is None:
        k = _by_type[type(x)] = kernels_for(array_namespace(x))
    return k
