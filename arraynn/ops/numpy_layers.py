"""NumPy's fast paths for the layers' work: convolution, pooling, batch normalisation.

:class:`NumpyLayerOps` is the part of :class:`arraynn.ops.numpy.NumpyOps` (which builds
on it) that the window and normalisation layers (:mod:`arraynn.nn.conv`,
:mod:`arraynn.nn.norm`) call:

* im2col as one copy of a strided sliding-window view; col2im, max pooling and its
  gradient as compiled passes where Numba is installed (:mod:`arraynn.ops.numba_kernels`),
  else NumPy's strided in-place sums; the generic values bit for bit;
* a convolution as one matrix product over the whole batch (:meth:`NumpyLayerOps.conv2d`),
  equal to the generic per-sample products to rounding;
* batch normalisation as compiled passes with Numba: the elementwise values bit for bit,
  the per-channel sums accumulated in float64 (so to rounding);
* batch normalisation and the max pooling after it (windows side by side) fused into one
  compiled pass forward and two backward (:meth:`NumpyLayerOps.fuses_norm_pool`): the
  pooled values, the arg-max positions and the input gradient bit for bit with the two
  layers' own passes, the gradient's sums over the pooled values alone (to rounding).
  At ``--preset cnn``'s first BatchNorm, batch 128, the normalised images are 12.5 MiB
  that are neither written nor read again.

Arrays a compiled pass does not take (other types, small ones, strided views) go the
generic way (:class:`arraynn.ops.generic.Ops`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import numba_kernels
from .generic import Ops

__all__ = ["NumpyLayerOps"]


class NumpyLayerOps(Ops):
    """The NumPy fast paths of the convolution, pooling and batch-normalisation layers."""

    # ---- sliding windows: a strided view copied once, and in-place strided sums ---------
    def im2col(self, x: Any, win: Any) -> Any:
        if not isinstance(x, np.ndarray):
            return super().im2col(x, win)
        return _numpy_im2col(x, win)

    def col2im(self, cols: Any, shape: tuple[int, int, int, int], win: Any) -> Any:
        return self._col2im(cols, shape, win)

    def _col2im(self, cols: Any, shape: tuple[int, int, int, int], win: Any, by_row: bool = False) -> Any:
        """:meth:`col2im` of columns (n, c*kh*kw, oh*ow), or with ``by_row`` of columns
        (c*kh*kw, n, oh*ow): the compiled pass where it applies, else strided sums."""
        kernels = self._window_kernels(cols)
        if kernels is None or cols.ndim != 3:
            from .windows import col2im_inplace

            return col2im_inplace(cols.transpose(1, 0, 2) if by_row else cols, shape, win, np)
        oh, ow = win.output_hw(*shape[2:])
        dx = np.zeros(shape, cols.dtype)
        kernels.col2im(cols, win.kh, win.kw, win.sh, win.sw, win.pad[0], win.pad[2], oh, ow, dx, by_row)
        return dx

    def conv2d(self, x: Any, W: Any, win: Any, chunk: int) -> tuple[Any, Any]:
        """The generic convolution as one large matrix product: the columns of the whole
        batch as one ``(c*kh*kw, n*oh*ow)`` matrix (the same copy of a sliding-window
        view, in another order), times the kernels, then the ``(f, n, ...)`` result
        permuted to ``(n, f, ...)`` (one small copy). One product of that size runs
        nearer BLAS's peak than ``n`` products of one sample each, and the kernels'
        gradient becomes one product too, with no ``(n, f, c*kh*kw)`` temporary to sum.
        Each output sums the same terms as the generic code's, in BLAS's order. Kernels
        of fewer than 16 numbers per filter (a first layer on one channel) keep the
        generic per-sample products, which write the ``(n, f, ...)`` output directly: the
        permutation would cost what the larger product saves there (2.4 against 3.7 ms
        forward, 6.1 against 5.2 ms backward at ``--preset cnn``'s first layer, batch 128,
        2 vCPUs of an AMD EPYC Zen 3; 19.5 against 16.9 and 50 against 25.5 ms at its
        second)."""
        if not (isinstance(x, np.ndarray) and isinstance(W, np.ndarray) and x.dtype == W.dtype
                and x.dtype.char in "fd" and chunk >= x.shape[0] and x.shape[0] > 0
                and W[0].size >= 16):
            return super().conv2d(x, W, win, chunk)
        n, f = x.shape[0], W.shape[0]
        oh, ow = win.output_hw(*x.shape[2:])
        cols = _numpy_im2col(x, win, by_row=True)
        y = np.matmul(W.reshape(f, -1), cols).reshape(f, n, oh, ow)
        return np.ascontiguousarray(y.transpose(1, 0, 2, 3)), ("by_row", cols, tuple(x.shape), win)

    def conv2d_grads(self, W: Any, cache: Any, dy: Any, need_dx: bool = True) -> tuple[Any, Any]:
        if not (isinstance(cache[0], str) and cache[0] == "by_row"):
            return super().conv2d_grads(W, cache, dy, need_dx)
        _, cols, shape, win = cache
        n, f = shape[0], W.shape[0]
        dy2 = np.ascontiguousarray(dy.reshape(n, f, -1).transpose(1, 0, 2)).reshape(f, -1)
        # (cols @ dy2.T).T rather than dy2 @ cols.T: the same sums, with OpenBLAS reading the
        # long rows of both matrices as they lie (6.2 against 8.3 ms at --preset cnn's second
        # convolution, batch 128, 2 vCPUs of an AMD EPYC Zen 4)
        dW = np.matmul(cols, dy2.T).T.reshape(W.shape)
        if not need_dx:
            return dW, None
        W2t = np.ascontiguousarray(W.reshape(f, -1).T)
        dcols = np.matmul(W2t, dy2).reshape(W2t.shape[0], n, -1)  # (c*kh*kw, n, oh*ow)
        return dW, self._col2im(dcols, shape, win, by_row=True)

    @staticmethod
    def _window_kernels(x: Any) -> Any:
        """The compiled window kernels for the NumPy array ``x``, or ``None`` (no Numba,
        switched off, or too small to pay for the call)."""
        if not (isinstance(x, np.ndarray) and x.dtype.char in "fd" and x.size >= 4096):
            return None
        return numba_kernels.kernels()

    def add_windows(self, parts: list[Any], shape: tuple[int, int, int, int], win: Any) -> Any:
        from .windows import add_windows_inplace

        return add_windows_inplace(parts, shape, win, np)

    def max_pool(self, x: Any, win: Any) -> tuple[Any, Any]:
        kernels = self._pool_kernels(x, win)
        if kernels is None:
            return super().max_pool(x, win)
        n, c, h, w = x.shape
        oh, ow = win.output_hw(h, w)
        k = win.kh * win.kw
        y = np.empty((n, c, oh, ow), x.dtype)
        arg = np.empty((n, c, oh, ow), np.int8 if k <= 127 else np.int32)
        kernels.max_pool(x.reshape(-1), n * c, h, w, win.kh, win.kw, win.sh, win.sw, oh, ow, y.reshape(-1),
                         arg.reshape(-1))
        return y, arg

    def max_pool_grad(self, dy: Any, arg: Any, shape: tuple[int, int, int, int], win: Any) -> Any:
        kernels = self._pool_kernels(dy, win)
        if kernels is None or not isinstance(arg, np.ndarray):
            return super().max_pool_grad(dy, arg, shape, win)
        n, c, h, w = shape
        oh, ow = win.output_hw(h, w)
        dx = np.zeros(shape, dy.dtype)
        kernels.max_pool_grad(_flat(dy), _flat(arg), n * c, h, w, win.kh, win.kw, win.sh, win.sw, oh, ow,
                              dx.reshape(-1))
        return dx

    def _pool_kernels(self, x: Any, win: Any) -> Any:
        """The compiled pooling kernels for NumPy images ``x`` under an unpadded window, or
        ``None``."""
        if x.ndim != 4 or any(win.pad):
            return None
        return self._window_kernels(x)

    # ---- batch normalisation: one compiled pass per step of the generic code -----------
    def _norm_kernels(self, *arrays: Any) -> Any:
        """The compiled batch-normalisation kernels for C-contiguous NumPy rows or images
        of one float dtype, or ``None``."""
        x = arrays[0]
        if not all(isinstance(a, np.ndarray) and a.flags.c_contiguous and a.dtype == x.dtype
                   and a.shape == x.shape for a in arrays) or x.ndim not in (2, 4):
            return None
        return self._window_kernels(x)

    @staticmethod
    def _rows(x: np.ndarray) -> np.ndarray:
        return x.reshape(x.shape[0], x.shape[1], -1)

    def _channel_sums(self, kernels: Any, u: np.ndarray, v: np.ndarray, shift: Any) -> np.ndarray:
        """Per channel ``sum(u - shift)`` and ``sum((u - shift) * (v - shift))`` in one
        compiled pass, accumulated in float64, in ``u``'s dtype."""
        c = u.shape[1]
        out = np.empty(2 * c, np.float64)
        kernels.channel_sums(self._rows(u), self._rows(v), np.asarray(shift), out[:c], out[c:])
        return out.astype(u.dtype)

    def batch_norm_sums(self, x: Any, shift: Any) -> Any:
        """The generic sums in one pass, accumulated in float64 (so they differ from
        the generic float32 sums by their rounding only)."""
        kernels = self._norm_kernels(x)
        if kernels is None:
            return super().batch_norm_sums(x, shift)
        return self._channel_sums(kernels, x, x, shift)

    def batch_norm_apply(self, x: Any, shift: Any, mean: Any, inv: Any, gamma: Any,
                         beta: Any) -> tuple[Any, Any]:
        kernels = self._norm_kernels(x)
        if kernels is None:
            return super().batch_norm_apply(x, shift, mean, inv, gamma, beta)
        y, xhat = np.empty_like(x), np.empty_like(x)
        vectors = (np.asarray(v, x.dtype) for v in (shift, mean, inv, gamma, beta))
        kernels.bn_apply(self._rows(x), *vectors, self._rows(y), self._rows(xhat))
        return y, xhat

    def batch_norm_infer(self, x: Any, mean: Any, scale: Any, beta: Any) -> Any:
        kernels = self._norm_kernels(x)
        if kernels is None:
            return super().batch_norm_infer(x, mean, scale, beta)
        y = np.empty_like(x)
        vectors = (np.asarray(v, x.dtype) for v in (mean, scale, beta))
        kernels.bn_affine(self._rows(x), *vectors, self._rows(y))
        return y

    def batch_norm_grad_sums(self, dy: Any, xhat: Any) -> Any:
        kernels = self._norm_kernels(dy, xhat)
        if kernels is None:
            return super().batch_norm_grad_sums(dy, xhat)
        return self._channel_sums(kernels, dy, xhat, np.zeros(dy.shape[1], np.float64))

    def batch_norm_input_grad(self, dy: Any, xhat: Any, scale: Any, m: Any, sum_dy: Any,
                              sum_dy_xhat: Any) -> Any:
        kernels = self._norm_kernels(dy, xhat)
        if kernels is None:
            return super().batch_norm_input_grad(dy, xhat, scale, m, sum_dy, sum_dy_xhat)
        dx = np.empty_like(dy)
        s, u, v = (np.asarray(a, dy.dtype) for a in (scale, sum_dy, sum_dy_xhat))
        kernels.bn_input_grad(self._rows(dy), self._rows(xhat), s, np.asarray(m, dy.dtype)[0], u, v,
                              self._rows(dx))
        return dx

    # ---- batch normalisation straight into max pooling: three compiled passes ------------
    #: Fuse BatchNorm followed by MaxPool2D in training steps where the kernels apply (the
    #: tests switch it off to compare with the layers' own passes).
    fuse_norm_pool = True

    def fuses_norm_pool(self, x: Any, win: Any) -> bool:
        """With Numba, for C-contiguous float images under unpadded windows side by side
        (each image element in one window at most)."""
        return (self.fuse_norm_pool and x.ndim == 4 and not any(win.pad) and win.sh >= win.kh
                and win.sw >= win.kw and self._norm_kernels(x) is not None)

    def batch_norm_max_pool(self, x: Any, shift: Any, mean: Any, inv: Any, gamma: Any, beta: Any,
                            win: Any) -> tuple[Any, Any]:
        if not self.fuses_norm_pool(x, win):
            return super().batch_norm_max_pool(x, shift, mean, inv, gamma, beta, win)
        n, c, h, w = x.shape
        oh, ow = win.output_hw(h, w)
        y = np.empty((n, c, oh, ow), x.dtype)
        arg = np.empty((n, c, oh, ow), np.int8 if win.kh * win.kw <= 127 else np.int32)
        numba_kernels.kernels().bn_max_pool(
            x.reshape(-1), n * c, c, h, w, *_vectors(x.dtype, shift, mean, inv, gamma, beta),
            *_pooling(win, h, w), y.reshape(-1), arg.reshape(-1), np.empty(h * w, x.dtype))
        return y, arg

    def _fused_grad(self, dy: Any, arg: Any, x: Any, win: Any) -> bool:
        return (self.fuses_norm_pool(x, win) and isinstance(dy, np.ndarray) and dy.dtype == x.dtype
                and isinstance(arg, np.ndarray))

    def batch_norm_max_pool_grad_sums(self, dy: Any, arg: Any, x: Any, shift: Any, mean: Any, inv: Any,
                                      win: Any) -> Any:
        if not self._fused_grad(dy, arg, x, win):
            return super().batch_norm_max_pool_grad_sums(dy, arg, x, shift, mean, inv, win)
        n, c, h, w = x.shape
        out = np.empty(2 * c, np.float64)
        numba_kernels.kernels().bn_pool_grad_sums(
            _flat(dy), _flat(arg), x.reshape(-1), n * c, c, h, w, *_vectors(x.dtype, shift, mean, inv),
            *_pooling(win, h, w), out[:c], out[c:])
        return out.astype(x.dtype)

    def batch_norm_max_pool_input_grad(self, dy: Any, arg: Any, x: Any, shift: Any, mean: Any, inv: Any,
                                       win: Any, scale: Any, m: Any, sum_dy: Any, sum_dy_xhat: Any) -> Any:
        if not self._fused_grad(dy, arg, x, win):
            return super().batch_norm_max_pool_input_grad(dy, arg, x, shift, mean, inv, win, scale, m, sum_dy,
                                                          sum_dy_xhat)
        n, c, h, w = x.shape
        dx = np.empty_like(x)
        numba_kernels.kernels().bn_pool_input_grad(
            _flat(dy), _flat(arg), x.reshape(-1), n * c, c, h, w, *_vectors(x.dtype, shift, mean, inv),
            *_pooling(win, h, w), *_vectors(x.dtype, scale), np.asarray(m, x.dtype)[0],
            *_vectors(x.dtype, sum_dy, sum_dy_xhat), x.dtype.type(0), dx.reshape(-1))
        return dx


def _flat(a: np.ndarray) -> np.ndarray:
    """``a`` as a C-order 1-D array (a view where it is contiguous)."""
    return np.ascontiguousarray(a).reshape(-1)


def _vectors(dtype: Any, *vectors: Any) -> list[np.ndarray]:
    return [np.asarray(v, dtype) for v in vectors]


def _pooling(win: Any, h: int, w: int) -> tuple[int, ...]:
    """A pooling window's arguments of the compiled passes: ``kh, kw, sh, sw, oh, ow``."""
    return (win.kh, win.kw, win.sh, win.sw, *win.output_hw(h, w))


def _numpy_im2col(x: np.ndarray, win: Any, by_row: bool = False) -> np.ndarray:
    """The generic im2col's columns (n, c*kh*kw, oh*ow), or with ``by_row`` the same
    numbers as one matrix (c*kh*kw, n*oh*ow), its column ``s * oh*ow + p``."""
    from .windows import pad2d

    n, c, h, w = x.shape
    oh, ow = win.output_hw(h, w)
    xp_ = pad2d(x, win.pad, np) if any(win.pad) else x
    view = np.lib.stride_tricks.sliding_window_view(xp_, (win.kh, win.kw), axis=(2, 3))
    view = view[:, :, :win.sh * (oh - 1) + 1:win.sh, :win.sw * (ow - 1) + 1:win.sw]  # (n, c, oh, ow, kh, kw)
    k = c * win.kh * win.kw
    if by_row:
        return np.ascontiguousarray(view.transpose(1, 4, 5, 0, 2, 3)).reshape(k, n * oh * ow)
    return np.ascontiguousarray(view.transpose(0, 1, 4, 5, 2, 3)).reshape(n, k, oh * ow)
