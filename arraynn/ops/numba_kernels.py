"""Optional one-pass optimizer updates for NumPy's fast path, compiled with Numba.

NumPy has no fused multiply-add and runs one operation per call: an Adam update is
twelve passes over the whole parameter buffer, each a separate ufunc call (about
0.24 ms per step for the 235k parameters of the ``modern`` benchmark on a 2-core
AVX-512 machine; neither cache-sized chunks nor a second Python thread made it
faster there, see ``benchmarks/README.md``). With Numba installed
(``pip install "arraynn[numba]"``) :class:`arraynn.ops.numpy.NumpyOps` runs momentum
and Adam over buffers of at least :data:`MIN_SIZE` elements as one compiled loop
instead: each element is read once, updated in registers and written once. (SGD is two
ufunc passes already; a compiled loop saved nothing measurable there.) The dropout
masks of :meth:`arraynn.ops.numpy.NumpyOps.dropout_mask` are one compiled pass too:
the counter-based hash of :mod:`arraynn.nn.random` per element, compared with the
integer threshold, written as the mask's float (integer arithmetic, so the same bits).
So is the L2 term of a large weight matrix's gradient (``g + l2 * w``: two roundings,
as in NumPy's two passes), and max pooling: one pass over the windows for the maximum
and its offset, one for the gradient (NumPy's strided slices make ``kh * kw`` passes
of three operations each, and its gradient as many window sums), and so is a
convolution's col2im (``kh * kw`` strided in-place sums in NumPy), and batch
normalisation: one pass for the per-channel sums and one for the normalised values in a
training step's forward pass, one for the gradient's sums and one for the input's
gradient in its backward pass, one pass at prediction (NumPy makes four to six
ufunc passes each, with a temporary per operation, and sums over axes ``(0, 2, 3)``
slowly: 10 against 2 ms per layer at the first BatchNorm of ``--preset cnn``, batch
128), and batch normalisation fused with the max pooling after it (three passes where
the two layers make six, and no normalised images stored). The updates flush
every value they write of subnormal numbers (:func:`arraynn.ops.generic.flush_subnormal`)
in the same pass, for free.

The loops compute the generic Array API code's operations (:mod:`arraynn.ops.generic`)
in the same order and in the buffers' dtype (batch normalisation's sums excepted: they
accumulate in float64, in the order of LLVM's vectorized loop), with the scalars cast to
that dtype first, as NumPy casts a Python float: no ``fastmath`` (but for those sums), so
LLVM neither contracts ``a * b + c`` into one fused multiply-add nor reorders anything,
and ``sqrt`` and the division are the CPU's correctly rounded instructions. The results
equal the generic path's bit for bit (tested; the sums to rounding).

The loops run on the calling thread (``parallel=False``): on a 2-core machine a second
thread pool would fight OpenBLAS's, whose worker spins on the other core after every
matrix product. Compiled code is cached on disk (``cache=True``); the first update
in a new environment compiles for about a second.

``ARRAYNN_NUMBA=0`` (read at import) or :func:`set_enabled` turns this off; NumPy's
in-place ufuncs are used then, with the same results.
"""

from __future__ import annotations

import os
import threading
from typing import Any

__all__ = ["MIN_SIZE", "available", "enabled", "failure", "kernels", "set_enabled"]

#: Buffers smaller than this are updated by NumPy's ufuncs (compiling would not pay).
MIN_SIZE = 1 << 15

_enabled = os.environ.get("ARRAYNN_NUMBA", "auto").strip().lower() not in ("0", "off", "false", "no")
_kernels: Any = None
_failed: str | None = None
_lock = threading.Lock()


def set_enabled(flag: bool) -> None:
    """Use the compiled updates where Numba is installed (the default), or never."""
    global _enabled
    _enabled = bool(flag)


def enabled() -> bool:
    """Whether the compiled updates are switched on (they still need Numba)."""
    return _enabled


def available() -> bool:
    """Whether Numba can be imported and the kernels built (imports Numba once)."""
    return _load() is not None


def kernels() -> Any:
    """The compiled kernels (a namespace with ``momentum``, ``adam``, ``dropout_mask``,
    ``add_scaled``, ``max_pool``, ``max_pool_grad``, ``col2im``, ``channel_sums`` and the
    ``bn_*`` passes), or
    ``None`` when they are switched off or Numba is missing."""
    if not _enabled:
        return None
    return _kernels if _kernels is not None else _load()


def _load() -> Any:
    global _kernels, _failed
    if _kernels is not None or _failed is not None:
        return _kernels
    with _lock:
        if _kernels is None and _failed is None:
            try:
                _kernels = _build()
            except Exception as exc:  # not installed, or no usable LLVM for this CPU
                _failed = f"{type(exc).__name__}: {exc}"
    return _kernels


def _build() -> Any:
    import types

    import numba
    import numpy as np

    jit = numba.njit(cache=True, nogil=True, fastmath=False, error_model="numpy",
                     boundscheck=False)
    sums_jit = numba.njit(cache=True, nogil=True, fastmath={"reassoc"}, error_model="numpy",
                          boundscheck=False)

    # Each loop mirrors NumpyOps' sequence of in-place ufuncs (and so the generic code):
    # one rounding per operation, in the buffers' dtype.
    # Every value written to a buffer is flushed first: |x| < tiny becomes zero (the
    # generic flush_subnormal; ``zero`` is +0.0 in the buffers' dtype, so no float64
    # enters the loop's arithmetic).
    @jit
    def momentum(p, g, v, lr, mu, nesterov, tiny, zero):  # pragma: no cover - compiled
        for i in range(p.shape[0]):
            lr_g = g[i] * lr
            vi = v[i] * mu - lr_g
            if abs(vi) < tiny:
                vi = zero
            v[i] = vi
            if nesterov:
                pi = p[i] + (vi * mu - lr_g)
            else:
                pi = p[i] + vi
            if abs(pi) < tiny:
                pi = zero
            p[i] = pi

    @jit
    def adam(p, g, m, v, lr, b1, c1, b2, c2, eps, tiny, zero):  # pragma: no cover - compiled
        for i in range(p.shape[0]):
            gi = g[i]
            vi = v[i] * b2 + (gi * gi) * c2
            if abs(vi) < tiny:
                vi = zero
            mi = m[i] * b1 + gi * c1
            if abs(mi) < tiny:
                mi = zero
            v[i] = vi
            m[i] = mi
            pi = p[i] - (mi / (np.sqrt(vi) + eps)) * lr
            if abs(pi) < tiny:
                pi = zero
            p[i] = pi

    @jit
    def add_scaled(g, w, c):  # pragma: no cover - compiled
        for i in range(g.shape[0]):
            g[i] = g[i] + w[i] * c

    # lowbias32 (arraynn.nn.random) in int64 with the products masked to 32 bits: the
    # operands stay below 2**32 and the multipliers below 2**31, so nothing overflows.
    @jit
    def _mix(x):  # pragma: no cover - compiled
        x ^= x >> 16
        x = (x * 0x21F0AAAD) & 0xFFFFFFFF
        x ^= x >> 15
        x = (x * 0x735A2D97) & 0xFFFFFFFF
        return x ^ (x >> 15)

    @jit
    def dropout_mask(out, first, key_a, key_b, limit, scale):  # pragma: no cover - compiled
        for i in range(out.shape[0]):
            x = _mix(_mix((first + i) ^ key_a) ^ key_b)
            out[i] = scale if x >= limit else 0.0

    # Max pooling without padding, one pass over the windows: the generic running maximum
    # (a strictly greater value moves the arg-max, offsets in C order), and its adjoint,
    # offset by offset so that overlapping windows add up in the generic code's order.
    # Images, outputs and arg-max positions come as flat (C-order) arrays with their
    # sizes, indexed by offsets computed once per plane and row (the fused passes below
    # pool their scratch plane with the same loop). Products such as h * w are hoisted out
    # of the loops: inside a loop's index they kept LLVM from vectorizing it (an
    # elementwise pass over 128x64x14x14 numbers: 2.4 against 0.2 ms). 2x2 windows side by
    # side, --preset cnn's, by themselves.
    @jit
    def _pool_plane(src, base, w, kh, kw, sh, sw, oh, ow, y, arg, obase):  # pragma: no cover - compiled
        for i in range(oh):
            r0 = base + i * sh * w
            o = obase + i * ow
            if kh == 2 and kw == 2 and sw == 2:
                for j in range(ow):
                    q = r0 + 2 * j
                    best = src[q]
                    at = 0
                    v = src[q + 1]
                    up = v > best
                    best = v if up else best
                    at = 1 if up else at
                    v = src[q + w]
                    up = v > best
                    best = v if up else best
                    at = 2 if up else at
                    v = src[q + w + 1]
                    up = v > best
                    best = v if up else best
                    at = 3 if up else at
                    y[o + j] = best
                    arg[o + j] = at
                continue
            for j in range(ow):
                c0 = r0 + j * sw
                best = src[c0]
                at = 0
                for di in range(kh):
                    for dj in range(kw):
                        v = src[c0 + di * w + dj]
                        up = v > best
                        best = v if up else best
                        at = di * kw + dj if up else at
                y[o + j] = best
                arg[o + j] = at

    @jit
    def max_pool(x, planes, h, w, kh, kw, sh, sw, oh, ow, y, arg):  # pragma: no cover - compiled
        hw, ohw = h * w, oh * ow
        for q in range(planes):
            _pool_plane(x, q * hw, w, kh, kw, sh, sw, oh, ow, y, arg, q * ohw)

    @jit
    def _window_offsets(kh, kw, w):  # pragma: no cover - compiled
        # the flat offset of each window element from the window's corner
        offs = np.empty(kh * kw, np.int64)
        for k in range(kh * kw):
            offs[k] = (k // kw) * w + k % kw
        return offs

    @jit
    def max_pool_grad(dy, arg, planes, h, w, kh, kw, sh, sw, oh, ow, dx):  # pragma: no cover - compiled
        # dx zeroed by the caller
        offs = _window_offsets(kh, kw, w)
        hw, row = h * w, sh * w
        if sh >= kh and sw >= kw:  # windows apart: each image element gets one value at most
            for q in range(planes):
                for i in range(oh):
                    o, r0 = (q * oh + i) * ow, q * hw + i * row
                    for j in range(ow):
                        dx[r0 + j * sw + offs[arg[o + j]]] += dy[o + j]
            return
        for q in range(planes):
            for k in range(kh * kw):
                for i in range(oh):
                    o, r0 = (q * oh + i) * ow, q * hw + i * row + offs[k]
                    for j in range(ow):
                        if arg[o + j] == k:
                            dx[r0 + j * sw] += dy[o + j]

    # col2im (the adjoint of arraynn.ops.windows.im2col) straight into the unpadded
    # images: the padding is the positions outside them, where nothing is written; the
    # columns' row (ch * kh + di) * kw + dj, column i * ow + j. It adds offset by offset,
    # so every image element sums in the generic order. (im2col itself is NumPy's copy
    # through a sliding-window view, faster than a compiled loop was: 6.0 against 10.6 ms
    # at the second convolution of --preset cnn, batch 128.)
    @jit
    def _inside(n_out, stride, offset, size):  # pragma: no cover - compiled
        # the outputs o in [lo, hi) whose input position o * stride + offset is in [0, size)
        lo = 0 if offset >= 0 else (-offset + stride - 1) // stride
        hi = 0 if size - 1 - offset < 0 else (size - 1 - offset) // stride + 1
        hi = min(hi, n_out)
        return lo, max(lo, hi)

    # Rows of one image plane and one column row as 1-D views: LLVM vectorizes a loop
    # over two such rows, not over 4-D indexing, whose arrays it cannot tell apart
    # (4.8 against 11 ms).
    # ``by_row``: the columns are (c*kh*kw, n, oh*ow), the layout of the NumPy path's one
    # large product, instead of (n, c*kh*kw, oh*ow).
    @jit
    def col2im(cols, kh, kw, sh, sw, top, left, oh, ow, dx, by_row=False):  # pragma: no cover - compiled
        n, c, h, w = dx.shape
        for a in range(n):
            for ch in range(c):
                plane = dx[a, ch]
                for di in range(kh):
                    i_lo, i_hi = _inside(oh, sh, di - top, h)
                    for dj in range(kw):
                        r = (ch * kh + di) * kw + dj
                        crow = cols[r, a] if by_row else cols[a, r]
                        j_lo, j_hi = _inside(ow, sw, dj - left, w)
                        off = dj - left
                        for i in range(i_lo, i_hi):
                            drow = plane[i * sh + di - top]
                            src = crow[i * ow:(i + 1) * ow]
                            if sw == 1:
                                d = drow[j_lo + off:j_hi + off]
                                e = src[j_lo:j_hi]
                                for j in range(d.shape[0]):
                                    d[j] += e[j]
                            else:
                                for j in range(j_lo, j_hi):
                                    drow[j * sw + off] += src[j]

    # Batch normalisation over (n, c, m) arrays (images as (n, c, h * w), rows as (n, c, 1)):
    # per channel, the sums accumulate in float64, and these loops alone may reassociate
    # them (fastmath "reassoc"), so LLVM vectorizes them (a chain of dependent scalar
    # additions ran at a quarter of the speed: 2.8 against 0.8 ms at --preset cnn's first
    # BatchNorm); the order is then the compiled code's, fixed for a machine, and the sums
    # equal the generic float32 ones to rounding. The elementwise passes do the generic
    # code's operations in its order and dtype.
    @sums_jit
    def _plane_sums(u, v, s):  # pragma: no cover - compiled
        # sum(u - s) and sum((u - s) * (v - s)), in float64
        a = 0.0
        q = 0.0
        for j in range(u.shape[0]):
            d = u[j] - s
            a += d
            q += d * (v[j] - s)
        return a, q

    @sums_jit
    def channel_sums(u, v, shift, out1, out2):  # pragma: no cover - compiled
        # per channel of (n, c, m) arrays: sum(u - shift) and sum((u - shift) * (v - shift))
        n, c = u.shape[0], u.shape[1]
        for b in range(c):
            out1[b] = 0.0
            out2[b] = 0.0
        for a in range(n):
            for b in range(c):
                s1, s2 = _plane_sums(u[a, b], v[a, b], np.float64(shift[b]))
                out1[b] += s1
                out2[b] += s2

    @jit
    def bn_apply(x, shift, mean, inv, gamma, beta, y, xhat):  # pragma: no cover - compiled
        n, c, m = x.shape
        for a in range(n):
            for b in range(c):
                s, mu, k, g, t = shift[b], mean[b], inv[b], gamma[b], beta[b]
                row, yr, hr = x[a, b], y[a, b], xhat[a, b]
                for j in range(m):
                    h = ((row[j] - s) - mu) * k
                    hr[j] = h
                    yr[j] = h * g + t

    @jit
    def bn_affine(x, mean, scale, beta, y):  # pragma: no cover - compiled
        n, c, m = x.shape
        for a in range(n):
            for b in range(c):
                mu, k, t = mean[b], scale[b], beta[b]
                row, yr = x[a, b], y[a, b]
                for j in range(m):
                    yr[j] = (row[j] - mu) * k + t

    @jit
    def bn_input_grad(dy, xhat, scale, m, s1, s2, dx):  # pragma: no cover - compiled
        n, c, k = dy.shape
        for a in range(n):
            for b in range(c):
                f, u, v = scale[b], s1[b], s2[b]
                dr, hr, out = dy[a, b], xhat[a, b], dx[a, b]
                for j in range(k):
                    out[j] = f * ((dr[j] * m - u) - hr[j] * v)

    # Batch normalisation followed by max pooling (windows apart, no padding), fused: the
    # normalised images are never stored. The forward pass computes each image plane's
    # normalised values (bn_apply's operations) into a scratch plane and pools that
    # (max_pool's comparisons). The backward pass sums over the pooled gradient alone (the
    # other positions' gradient is zero), with each arg-max's normalised value recomputed
    # from the input; the input's gradient is bn_input_grad's arithmetic at every position,
    # on a zero gradient, then again at the arg-max positions on theirs. So every number
    # equals the unfused passes' bit for bit (the sums to rounding), with no normalised
    # images, no dense gradient and a quarter of the sums' work. Flat arrays, as in pooling.
    @jit
    def bn_max_pool(x, planes, c, h, w, shift, mean, inv, gamma, beta, kh, kw, sh, sw, oh, ow, y, arg,
                    scratch):  # pragma: no cover - compiled
        hw, ohw = h * w, oh * ow
        for q in range(planes):
            b = q % c
            s, mu, k, g, t = shift[b], mean[b], inv[b], gamma[b], beta[b]
            base = q * hw
            for p in range(hw):
                scratch[p] = (((x[base + p] - s) - mu) * k) * g + t
            _pool_plane(scratch, 0, w, kh, kw, sh, sw, oh, ow, y, arg, q * ohw)

    @sums_jit
    def bn_pool_grad_sums(dy, arg, x, planes, c, h, w, shift, mean, inv, kh, kw, sh, sw, oh, ow, out1,
                          out2):  # pragma: no cover - compiled
        offs = _window_offsets(kh, kw, w)
        hw, row = h * w, sh * w
        for b in range(c):
            out1[b] = 0.0
            out2[b] = 0.0
        for q in range(planes):
            b = q % c
            s, mu, k = shift[b], mean[b], inv[b]
            t1 = 0.0
            t2 = 0.0
            for i in range(oh):
                o, r0 = (q * oh + i) * ow, q * hw + i * row
                for j in range(ow):
                    d = np.float64(dy[o + j])
                    t1 += d
                    t2 += d * np.float64(((x[r0 + j * sw + offs[arg[o + j]]] - s) - mu) * k)
            out1[b] += t1
            out2[b] += t2

    @jit
    def bn_pool_input_grad(dy, arg, x, planes, c, h, w, shift, mean, inv, kh, kw, sh, sw, oh, ow, scale, m,
                           s1, s2, zero, dx):  # pragma: no cover - compiled
        offs = _window_offsets(kh, kw, w)
        hw, row = h * w, sh * w
        for q in range(planes):
            b = q % c
            s, mu, k, f, u, v = shift[b], mean[b], inv[b], scale[b], s1[b], s2[b]
            base = q * hw
            rest = zero * m - u  # where the gradient is zero
            for p in range(hw):
                dx[base + p] = f * (rest - (((x[base + p] - s) - mu) * k) * v)
            for i in range(oh):
                o, r0 = (q * oh + i) * ow, base + i * row
                for j in range(ow):
                    p = r0 + j * sw + offs[arg[o + j]]
                    dx[p] = f * (((zero + dy[o + j]) * m - u) - (((x[p] - s) - mu) * k) * v)

    return types.SimpleNamespace(momentum=momentum, adam=adam, dropout_mask=dropout_mask,
                                 add_scaled=add_scaled, max_pool=max_pool, max_pool_grad=max_pool_grad,
                                 col2im=col2im, channel_sums=channel_sums, bn_apply=bn_apply,
                                 bn_affine=bn_affine, bn_input_grad=bn_input_grad,
                                 bn_max_pool=bn_max_pool, bn_pool_grad_sums=bn_pool_grad_sums,
                                 bn_pool_input_grad=bn_pool_input_grad,
                                 numba_version=numba.__version__)


def failure() -> str | None:
    """Why the kernels could not be built (``None`` if they were, or were not tried)."""
    return _failed
