"""CuPy's fast path: :class:`arraynn.ops.generic.Ops` with fused CUDA kernels.

The kernels' sources and their Array API twins are in
:mod:`arraynn.ops.cupy_kernels`; this module picks one for each operation, and hands
anything it cannot fuse (arrays that are not float32/float64 CuPy arrays of one
dtype, or shapes a kernel does not take) to the generic implementation.

Operations consume (overwrite) exactly the arguments the ops contract documents as
consumed, and never the others. The optimizer updates run over the whole flat
parameter buffer: one kernel launch per step, whatever the number of layers; the
weight and bias gradients are written by cuBLAS and CuPy's reductions straight into
the flat gradient buffer.
"""

from __future__ import annotations

from typing import Any

import cupy

from .cupy_kernels import ACTIVATE, ACTIVATE_GRAD, ROW_KERNEL_MAX_CLASSES, compiled
from .generic import Ops

__all__ = ["CupyOps"]


def _fusable(*arrays: Any) -> bool:
    """Whether every argument is a float32/float64 CuPy array of one dtype."""
    first = arrays[0]
    if not isinstance(first, cupy.ndarray) or first.dtype.char not in "fd":
        return False
    return all(isinstance(a, cupy.ndarray) and a.dtype == first.dtype for a in arrays[1:])


def _same_shapes(*arrays: Any) -> bool:
    return all(a.shape == arrays[0].shape for a in arrays[1:])


class CupyOps(Ops):
    """CuPy's fast path: :class:`Ops` with fused CUDA kernels."""

    name = "cupy"

    # ---- hidden layers --------------------------------------------------------------
    def activate(self, name: str, z: Any) -> Any:
        kern = ACTIVATE.get(name)
        if kern is None or not _fusable(z):
            return super().activate(name, z)
        compiled(kern)(z)
        return z

    def activate_grad(self, name: str, a: Any, g: Any) -> Any:
        kern = ACTIVATE_GRAD.get(name)
        if kern is None or not _fusable(a, g) or a.shape != g.shape:
            return super().activate_grad(name, a, g)
        compiled(kern)(a, g)
        return g

    def add_bias(self, z: Any, b: Any) -> Any:
        if not _fusable(z, b) or z.ndim != 2 or b.shape != z.shape[1:]:
            return super().add_bias(z, b)
        compiled("arraynn_add_bias")(b, z)
        return z

    # ---- gradients ------------------------------------------------------------------
    def weight_grad(self, a: Any, delta: Any, out: Any = None) -> Any:
        if out is None or not _fusable(a, delta, out):
            return super().weight_grad(a, delta, out)
        return cupy.matmul(a.T, delta, out=out)

    def bias_grad(self, delta: Any, out: Any = None) -> Any:
        if out is None or not _fusable(delta, out):
            return super().bias_grad(delta, out)
        return cupy.sum(delta, axis=0, out=out)

    def _window_args(self, shape: tuple[int, int, int, int], win: Any) -> tuple[int, ...]:
        n, c, h, w = shape
        oh, ow = win.output_hw(h, w)
        return (c, h, w, win.kh, win.kw, win.sh, win.sw, win.pad[0], win.pad[2], oh, ow)

    def im2col(self, x: Any, win: Any) -> Any:
        """One kernel: a thread per column element reads its pixel (zero in the padding)."""
        if not _fusable(x) or x.ndim != 4:
            return super().im2col(x, win)
        args = self._window_args(tuple(x.shape), win)
        n, c = x.shape[0], x.shape[1]
        cols = cupy.empty((n, c * win.kh * win.kw, args[-2] * args[-1]), dtype=x.dtype)
        compiled("arraynn_im2col")(cupy.ascontiguousarray(x).reshape(-1), *args, cols)
        return cols

    def col2im(self, cols: Any, shape: tuple[int, int, int, int], win: Any) -> Any:
        """One kernel: a thread per pixel adds the column elements that read it, in the
        generic sums' order (no atomics)."""
        if not _fusable(cols):
            return super().col2im(cols, shape, win)
        dx = cupy.empty(shape, dtype=cols.dtype)
        args = self._window_args(shape, win)
        compiled("arraynn_col2im")(cupy.ascontiguousarray(cols).reshape(-1), *args, dx)
        return dx

    def keep(self, value: Any, out: Any = None) -> Any:
        if isinstance(out, cupy.ndarray) and out.shape == value.shape and out.dtype == value.dtype:
            out[...] = value
            return out
        return value

    def add_windows(self, parts: list[Any], shape: tuple[int, int, int, int], win: Any) -> Any:
        if not isinstance(parts[0], cupy.ndarray):
            return super().add_windows(parts, shape, win)
        from .windows import add_windows_inplace

        return add_windows_inplace(parts, shape, win, cupy)

    def penalize(self, w: Any, g: Any, l1: float, l2: float) -> Any:
        if not (l1 or l2):
            return g
        if not _fusable(w, g) or w.shape != g.shape:
            return super().penalize(w, g, l1, l2)
        if l1 and l2:
            compiled("arraynn_penalize_l1_l2")(w, l1, l2, g)
        elif l2:
            compiled("arraynn_penalize_l2")(w, l2, g)
        else:
            compiled("arraynn_penalize_l1")(w, l1, g)
        return g

    # ---- output layer ---------------------------------------------------------------
    def loss_and_delta(self, output: str, z: Any, y: Any) -> tuple[Any, Any]:
        if not (_fusable(z, y) and z.shape == y.shape):
            return super().loss_and_delta(output, z, y)
        if output == "softmax" and z.ndim == 2 and 0 < z.shape[1] <= ROW_KERNEL_MAX_CLASSES:
            d = cupy.empty(z.shape, dtype=z.dtype)
            row_loss = cupy.empty(z.shape[:1], dtype=z.dtype)
            compiled("arraynn_softmax_loss_delta")(z, y, z.shape[1], d, row_loss)
            return cupy.sum(row_loss), d
        if output == "sigmoid":
            l, d = compiled("arraynn_sigmoid_loss_delta")(z, y)
            return cupy.sum(l), d
        return super().loss_and_delta(output, z, y)

    def one_hot(self, labels: Any, n_classes: int, dtype: Any) -> Any:
        if (not isinstance(labels, cupy.ndarray) or labels.ndim != 1 or labels.dtype.kind not in "iu"
                or cupy.dtype(dtype).char not in "fd"):
            return super().one_hot(labels, n_classes, dtype)
        out = cupy.empty((labels.shape[0], int(n_classes)), dtype=dtype)
        compiled("arraynn_one_hot")(labels, int(n_classes), out)
        return out

    # ---- optimizer updates: one launch over the whole buffer, in place ----------------
    def sgd(self, p: Any, g: Any, lr: Any) -> Any:
        if not (_fusable(p, g) and _same_shapes(p, g)):
            return super().sgd(p, g, lr)
        compiled("arraynn_sgd")(g, lr, p)
        return p

    def momentum(self, p: Any, g: Any, v: Any, lr: Any, mu: float,
                 nesterov: bool) -> tuple[Any, Any]:
        if not (_fusable(p, g, v) and _same_shapes(p, g, v)):
            return super().momentum(p, g, v, lr, mu, nesterov)
        compiled("arraynn_nesterov" if nesterov else "arraynn_momentum")(g, lr, mu, p, v)
        return p, v

    def adam(self, p: Any, g: Any, m: Any, v: Any, lr_t: Any, beta_1: float, beta_2: float,
             eps_t: Any) -> tuple[Any, Any, Any]:
        if not (_fusable(p, g, m, v) and _same_shapes(p, g, m, v)):
            return super().adam(p, g, m, v, lr_t, beta_1, beta_2, eps_t)
        c1, c2 = 1.0 - beta_1, 1.0 - beta_2  # as the generic path's (1.0 - beta) factors
        compiled("arraynn_adam")(g, beta_1, c1, beta_2, c2, lr_t, eps_t, p, m, v)
        return p, m, v
