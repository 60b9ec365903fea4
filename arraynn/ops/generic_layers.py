"""The generic Array API code of the window and normalisation layers' work.

:class:`LayerOps` is the part of :class:`arraynn.ops.generic.Ops` (which builds on it)
that the convolution, pooling and batch-normalisation layers (:mod:`arraynn.nn.conv`,
:mod:`arraynn.nn.norm`) call: im2col and its adjoint (:mod:`arraynn.ops.windows`), a
convolution and its gradients as matrix products, max pooling and its gradient, batch
normalisation's sums and elementwise passes, and those passes composed with the max
pooling after them, the reference for a backend that fuses the pair. The NumPy fast
paths of the same methods are :class:`arraynn.ops.numpy_layers.NumpyLayerOps`. The
contract is :mod:`arraynn.ops.generic`'s.
"""

from __future__ import annotations

import math
from typing import Any

import array_api_compat

__all__ = ["LayerOps"]


def _kernel_grad(xp: Any, dy3: Any, cols: Any) -> Any:
    """``sum_s dy3[s] @ cols[s].T``: (n, f, P) and (n, K, P) to (f, K)."""
    return xp.sum(xp.matmul(dy3, xp.permute_dims(cols, (0, 2, 1))), axis=0)


class LayerOps:
    """The layers' generic passes; ``self.xp`` is the array namespace (set by
    :class:`arraynn.ops.generic.Ops`)."""

    xp: Any

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
        xhat = self._normalised(x, shift, mean, inv)
        return xhat * pc(gamma, x.ndim) + pc(beta, x.ndim), xhat

    def _normalised(self, x: Any, shift: Any, mean: Any, inv: Any) -> Any:
        pc, nd = self._per_channel, x.ndim
        return ((x - pc(shift, nd)) - pc(mean, nd)) * pc(inv, nd)

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
        return self.max_pool_grad(dy, arg, tuple(x.shape), win), self._normalised(x, shift, mean, inv)

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
