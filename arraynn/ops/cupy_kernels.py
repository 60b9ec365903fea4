"""The CUDA sources of CuPy's fused kernels, each beside its Array API twin.

At small batches a step on the GPU costs kernel launches, not arithmetic: the generic
Array API code launches one kernel per operation (an Adam update alone is twenty-one,
with its flushes of subnormal numbers).
:class:`arraynn.ops.cupy.CupyOps` keeps the ops contract (see
:mod:`arraynn.ops.generic`) and replaces those chains with one
``cupy.ElementwiseKernel`` each:

==========================  ===========================================  ==========
operation                   fused kernel                                 generic
==========================  ===========================================  ==========
``activate``                the activation, in place                     1-3
``activate_grad``           ``g * f'(a)``, in place                      2-3
``add_bias``                ``z + b``, in place                          1
``penalize``                ``g + l2*w + l1*sign(w)``, in place          2-5
``loss_and_delta``          softmax: one kernel per row plus one sum;    11 / 10
                            sigmoid: one kernel plus one sum
``one_hot``                 one kernel                                   3
``sgd``                     ``p -= lr*g`` over the whole parameter       5
                            buffer: one launch
``momentum``                ``v`` and ``p`` (classical or Nesterov),     10 / 13
                            one launch
``adam``                    ``m``, ``v`` and ``p``, one launch           21
``im2col``                  one thread per column element, reading the   ``kh*kw``
                            input (zero outside it)                      + stack
``col2im``                  one thread per input element, gathering the  ``kh*kw``
                            columns that read it (no atomics)            adds
==========================  ===========================================  ==========

The matrix products and the bias gradient (a column sum) stay with cuBLAS and CuPy's
reductions, writing straight into the flat gradient buffer.

Every kernel is written twice, and the two are kept line by line parallel:

* its CUDA source, a :class:`FusedKernel` in :data:`KERNELS` (parameter lists in
  CuPy's ``ElementwiseKernel`` syntax, and the loop body);
* its *twin*: an Array API function with the same arguments (after ``xp``), the same
  formula and the same order of operations, returning the output parameters.

The twins run on every backend, so the arithmetic of the GPU path is tested on
machines without a GPU; for the straight-line kernels the tests also check that the
CUDA body, read through :data:`CUDA_TO_ARRAY_API`, *is* the twin's body. The kernels
are compiled with ``--fmad=false`` (no fused multiply-add contraction), so every
``a * b + c`` rounds twice, as in the generic path; with CUDA's correctly rounded
division and square root, the Adam, SGD, momentum, penalty and activation-derivative
kernels give the generic CuPy path's values bit for bit (the transcendental functions
are the CUDA math library's, the same that CuPy's own ``tanh``/``exp`` call).

This module imports CuPy only in :func:`compiled`, the first time a kernel is built
(once per process; CuPy compiles each once per dtype and device and caches the
binary on disk).
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable
from typing import Any

from array_api_compat import device as _device

from .generic import flush_subnormal

__all__ = ["ACTIVATE", "ACTIVATE_GRAD", "CUDA_TO_ARRAY_API", "FusedKernel", "KERNELS", "OPTIONS", "PREAMBLE",
           "ROW_KERNEL_MAX_CLASSES", "compiled", "elementwise_kernel"]

#: NVRTC options of every kernel: no contraction of ``a * b + c`` into one FMA.
OPTIONS = ("--fmad=false",)

#: Device helpers. ``nn_maximum`` and ``nn_sign`` propagate NaN like ``xp.maximum``
#: and ``xp.sign``; ``nn_where`` is ``xp.where`` for one element; ``nn_flush_subnormal``
#: is :func:`arraynn.ops.generic.flush_subnormal` for one element.
PREAMBLE = r"""
template <typename U> __device__ __forceinline__ U nn_where(bool c, U a, U b) {
  return c ? a : b;
}
template <typename U> __device__ __forceinline__ U nn_maximum(U a, U b) {
  return (a > b || a != a) ? a : b;
}
template <typename U> __device__ __forceinline__ U nn_abs(U a) {
  return a < (U)0 ? -a : a;
}
template <typename U> __device__ __forceinline__ U nn_sign(U a) {
  return a > (U)0 ? (U)1 : (a < (U)0 ? (U)-1 : a);
}
template <typename U> __device__ __forceinline__ U nn_flush_subnormal(U a) {
  const U tiny = sizeof(U) == 4 ? (U)1.1754943508222875e-38 : (U)2.2250738585072014e-308;
  return nn_abs(a) < tiny ? (U)0 : a;
}
"""

#: How a CUDA body reads as Array API code: function names (``(T)`` casts are
#: dropped, ``;`` ends a statement). Used by the tests that compare sources and twins.
CUDA_TO_ARRAY_API = {
    "nn_where": "xp.where",
    "nn_maximum": "xp.maximum",
    "nn_abs": "xp.abs",
    "nn_sign": "xp.sign",
    "nn_flush_subnormal": "flush_subnormal",
    "sqrt": "xp.sqrt",
    "tanh": "xp.tanh",
    "exp": "xp.exp",
    "log1p": "xp.log1p",
    "log": "xp.log",
}


@dataclasses.dataclass(frozen=True)
class FusedKernel:
    """One fused kernel: CuPy ``ElementwiseKernel`` source and its Array API twin.

    Attributes
    ----------
    name : str
        The CUDA function name (shown by profilers).
    in_params, out_params : str
        Parameter lists in ``ElementwiseKernel`` syntax (``"T g, T lr"``). Output
        parameters are read and written in place; ``raw`` arrays are indexed by hand.
    body : str
        The CUDA C++ loop body; ``i`` is the element index.
    twin : callable
        ``twin(xp, *in_args, *out_args)`` returning the tuple of output values.
    straight : bool
        Whether the body is straight-line code that reads as the twin's body
        statement for statement (checked by the tests).
    launch : str
        How :class:`arraynn.ops.cupy.CupyOps` passes each parameter (in and out, in
        order), one word each: ``s`` a scalar; ``a`` a C-contiguous array, which CuPy
        views as 1-D; ``rowb`` a row broadcast over a C-contiguous matrix (both stay
        2-D); ``m`` that matrix; ``raw1``/``raw2`` a ``raw`` C-contiguous 1-D/2-D
        array. It fixes the CUDA code CuPy generates for the launch, which
        :mod:`arraynn.ops.cupy_nvrtc` compiles without a GPU.
    """

    name: str
    in_params: str
    out_params: str
    body: str
    twin: Callable[..., tuple[Any, ...]]
    straight: bool = True
    launch: str = ""


# --------------------------------------------------------------------------------------
# The twins: the kernels' arithmetic in Array API code, statement for statement.
# Scalars are Python floats (CUDA: ``T`` scalars), arrays are the kernel's arrays.
# --------------------------------------------------------------------------------------
def _relu_twin(xp, z):
    z = xp.maximum(z, 0.0)
    return (z,)


def _sigmoid_twin(xp, z):
    z = 0.5 * xp.tanh(0.5 * z) + 0.5
    return (z,)


def _tanh_twin(xp, z):
    z = xp.tanh(z)
    return (z,)


def _relu_grad_twin(xp, a, g):
    g = xp.where(a > 0.0, g, 0.0)
    return (g,)


def _sigmoid_grad_twin(xp, a, g):
    g = g * (a * (1.0 - a))
    return (g,)


def _tanh_grad_twin(xp, a, g):
    g = g * (1.0 - a * a)
    return (g,)


def _add_bias_twin(xp, b, z):
    z = z + b
    return (z,)


def _penalize_l2_twin(xp, w, l2, g):
    g = g + l2 * w
    return (g,)


def _penalize_l1_twin(xp, w, l1, g):
    g = g + l1 * xp.sign(w)
    return (g,)


def _penalize_l1_l2_twin(xp, w, l1, l2, g):
    g = g + l2 * w
    g = g + l1 * xp.sign(w)
    return (g,)


def _sgd_twin(xp, g, lr, p):
    p = flush_subnormal(p - lr * g, xp)
    return (p,)


def _momentum_twin(xp, g, lr, mu, p, v):
    v = flush_subnormal(mu * v - lr * g, xp)
    p = flush_subnormal(p + v, xp)
    return (p, v)


def _nesterov_twin(xp, g, lr, mu, p, v):
    v = flush_subnormal(mu * v - lr * g, xp)
    p = flush_subnormal(p + (mu * v - lr * g), xp)
    return (p, v)


def _adam_twin(xp, g, b1, c1, b2, c2, lr, eps, p, m, v):
    m = flush_subnormal(b1 * m + c1 * g, xp)
    v = flush_subnormal(b2 * v + c2 * (g * g), xp)
    p = flush_subnormal(p - lr * (m / (xp.sqrt(v) + eps)), xp)
    return (p, m, v)


def _sigmoid_loss_delta_twin(xp, z, y, l, d):
    l = (xp.maximum(z, 0.0) + xp.log1p(xp.exp(-xp.abs(z)))) - y * z
    d = (0.5 * xp.tanh(0.5 * z) + 0.5) - y
    return (l, d)


def _softmax_loss_delta_twin(xp, z, y, k, d, row_loss):
    # The CUDA kernel runs one thread per row i; here each statement runs for all rows
    # at once, and the loops over the k columns are the kernel's loops.
    m = z[:, 0]
    for j in range(1, k):
        m = xp.maximum(m, z[:, j])
    s = xp.zeros_like(m)
    e = [None] * k
    for j in range(k):
        e[j] = xp.exp(z[:, j] - m)
        s = s + e[j]
    log_s = xp.log(s)
    acc = xp.zeros_like(m)
    for j in range(k):
        acc = acc + y[:, j] * ((z[:, j] - m) - log_s)
        e[j] = flush_subnormal(e[j] / s, xp) - y[:, j]
    row_loss = -acc
    return (xp.stack(e, axis=1), row_loss)


def _window(h, w, kh, kw, sh, sw, pt, pl, oh, ow):
    from .windows import Window

    pb = max(0, (oh - 1) * sh + kh - h - pt)
    pr = max(0, (ow - 1) * sw + kw - w - pl)
    return Window(kh, kw, sh, sw, (pt, pb, pl, pr))


def _im2col_twin(xp, x, c, h, w, kh, kw, sh, sw, pt, pl, oh, ow, cols):
    # x: the images (n, c, h, w); cols: the output (n, c*kh*kw, oh*ow)
    from .windows import im2col

    return (im2col(x, _window(h, w, kh, kw, sh, sw, pt, pl, oh, ow), xp),)


def _col2im_twin(xp, cols, c, h, w, kh, kw, sh, sw, pt, pl, oh, ow, dx):
    # cols: (n, c*kh*kw, oh*ow); dx: the output images (n, c, h, w)
    from .windows import col2im

    return (col2im(cols, tuple(dx.shape), _window(h, w, kh, kw, sh, sw, pt, pl, oh, ow), xp),)


def _one_hot_twin(xp, labels, k, out):
    # i runs over the elements of out (n rows of k), as the kernel's index does.
    i = xp.arange(out.shape[0] * k, dtype=labels.dtype, device=_device(labels))
    hot = xp.take(labels, i // k, axis=0) == i % k
    out = xp.reshape(xp.astype(hot, out.dtype), out.shape)
    return (out,)


# --------------------------------------------------------------------------------------
# The CUDA sources
# --------------------------------------------------------------------------------------
# i runs over the columns (n, c*kh*kw, oh*ow) in C order; x is the images, raveled.
_IM2COL = r"""
const ptrdiff_t P = (ptrdiff_t)oh * ow;
const ptrdiff_t K = (ptrdiff_t)c * kh * kw;
const ptrdiff_t p = i % P;
const ptrdiff_t k = (i / P) % K;
const ptrdiff_t s = i / (P * K);
const int j = (int)(k % kw);
const int r = (int)((k / kw) % kh);
const ptrdiff_t ch = k / ((ptrdiff_t)kw * kh);
const int y = (int)(p / ow) * sh + r - pt;
const int x_ = (int)(p % ow) * sw + j - pl;
cols = (y >= 0 && y < h && x_ >= 0 && x_ < w) ? x[((s * c + ch) * h + y) * w + x_] : (T)0.0;
"""

# i runs over the images (n, c, h, w) in C order; every column element that read this
# pixel is added, in the kernel offsets' order (the generic sums' order).
_COL2IM = r"""
const int x_ = (int)(i % w);
const int y = (int)((i / w) % h);
const ptrdiff_t ch = (i / ((ptrdiff_t)w * h)) % c;
const ptrdiff_t s = i / ((ptrdiff_t)w * h * c);
const ptrdiff_t P = (ptrdiff_t)oh * ow;
T acc = (T)0.0;
for (int r = 0; r < kh; ++r) {
  const int ty = y + pt - r;
  if (ty < 0 || ty % sh != 0 || ty / sh >= oh) continue;
  for (int j = 0; j < kw; ++j) {
    const int tx = x_ + pl - j;
    if (tx < 0 || tx % sw != 0 || tx / sw >= ow) continue;
    const ptrdiff_t row = (s * c + ch) * kh * kw + (ptrdiff_t)r * kw + j;
    acc = acc + cols[row * P + (ptrdiff_t)(ty / sh) * ow + tx / sw];
  }
}
dx = acc;
"""

_WINDOW_PARAMS = ("int32 c, int32 h, int32 w, int32 kh, int32 kw, int32 sh, int32 sw, int32 pt, int32 pl, "
                  "int32 oh, int32 ow")

_SOFTMAX_ROW_MAX_AND_EXP = r"""
const ptrdiff_t r = i * k;
T m = z[r];
for (int j = 1; j < k; ++j) m = nn_maximum(m, z[r + j]);
T s = (T)0.0;
for (int j = 0; j < k; ++j) {
  d[r + j] = exp(z[r + j] - m);
  s = s + d[r + j];
}
"""

KERNELS: dict[str, FusedKernel] = {k.name: k for k in (
    FusedKernel("arraynn_relu", "", "T z",
                "z = nn_maximum(z, (T)0.0);", _relu_twin, launch="a"),
    FusedKernel("arraynn_sigmoid", "", "T z",
                "z = (T)0.5 * tanh((T)0.5 * z) + (T)0.5;", _sigmoid_twin, launch="a"),
    FusedKernel("arraynn_tanh", "", "T z",
                "z = tanh(z);", _tanh_twin, launch="a"),
    FusedKernel("arraynn_relu_grad", "T a", "T g",
                "g = nn_where(a > (T)0.0, g, (T)0.0);", _relu_grad_twin, launch="a a"),
    FusedKernel("arraynn_sigmoid_grad", "T a", "T g",
                "g = g * (a * ((T)1.0 - a));", _sigmoid_grad_twin, launch="a a"),
    FusedKernel("arraynn_tanh_grad", "T a", "T g",
                "g = g * ((T)1.0 - a * a);", _tanh_grad_twin, launch="a a"),
    FusedKernel("arraynn_add_bias", "T b", "T z",
                "z = z + b;", _add_bias_twin, launch="rowb m"),
    FusedKernel("arraynn_penalize_l2", "T w, T l2", "T g",
                "g = g + l2 * w;", _penalize_l2_twin, launch="a s a"),
    FusedKernel("arraynn_penalize_l1", "T w, T l1", "T g",
                "g = g + l1 * nn_sign(w);", _penalize_l1_twin, launch="a s a"),
    FusedKernel("arraynn_penalize_l1_l2", "T w, T l1, T l2", "T g",
                "g = g + l2 * w;\n"
                "g = g + l1 * nn_sign(w);", _penalize_l1_l2_twin, launch="a s s a"),
    FusedKernel("arraynn_sgd", "T g, T lr", "T p",
                "p = nn_flush_subnormal(p - lr * g);", _sgd_twin, launch="a s a"),
    FusedKernel("arraynn_momentum", "T g, T lr, T mu", "T p, T v",
                "v = nn_flush_subnormal(mu * v - lr * g);\n"
                "p = nn_flush_subnormal(p + v);", _momentum_twin, launch="a s s a a"),
    FusedKernel("arraynn_nesterov", "T g, T lr, T mu", "T p, T v",
                "v = nn_flush_subnormal(mu * v - lr * g);\n"
                "p = nn_flush_subnormal(p + (mu * v - lr * g));", _nesterov_twin, launch="a s s a a"),
    FusedKernel("arraynn_adam", "T g, T b1, T c1, T b2, T c2, T lr, T eps", "T p, T m, T v",
                "m = nn_flush_subnormal(b1 * m + c1 * g);\n"
                "v = nn_flush_subnormal(b2 * v + c2 * (g * g));\n"
                "p = nn_flush_subnormal(p - lr * (m / (sqrt(v) + eps)));", _adam_twin,
                launch="a s s s s s s a a a"),
    FusedKernel("arraynn_sigmoid_loss_delta", "T z, T y", "T l, T d",
                "l = (nn_maximum(z, (T)0.0) + log1p(exp(-nn_abs(z)))) - y * z;\n"
                "d = ((T)0.5 * tanh((T)0.5 * z) + (T)0.5) - y;", _sigmoid_loss_delta_twin,
                launch="a a a a"),
    # One thread per row (the loop runs over row_loss); z, y and d are C-order (n, k).
    FusedKernel("arraynn_softmax_loss_delta", "raw T z, raw T y, int32 k", "raw T d, T row_loss",
                _SOFTMAX_ROW_MAX_AND_EXP + r"""
const T log_s = log(s);
T acc = (T)0.0;
for (int j = 0; j < k; ++j) {
  acc = acc + y[r + j] * ((z[r + j] - m) - log_s);
  d[r + j] = nn_flush_subnormal(d[r + j] / s) - y[r + j];
}
row_loss = -acc;
""", _softmax_loss_delta_twin, launch="raw2 raw2 s raw2 a", straight=False),
    FusedKernel("arraynn_im2col", "raw T x, " + _WINDOW_PARAMS, "T cols", _IM2COL, _im2col_twin,
                launch="raw1" + " s" * 11 + " a", straight=False),
    FusedKernel("arraynn_col2im", "raw T cols, " + _WINDOW_PARAMS, "T dx", _COL2IM, _col2im_twin,
                launch="raw1" + " s" * 11 + " a", straight=False),
    FusedKernel("arraynn_one_hot", "raw I labels, int32 k", "T out",
                "out = (labels[i / k] == (I)(i % k)) ? (T)1 : (T)0;", _one_hot_twin, launch="raw1 s a",
                straight=False),
)}


_compiled: dict[str, Any] = {}
_compiled_lock = threading.Lock()


def elementwise_kernel(spec: FusedKernel) -> Any:
    """A new ``cupy.ElementwiseKernel`` of ``spec`` (CuPy compiles it at its first launch)."""
    import cupy

    return cupy.ElementwiseKernel(spec.in_params, spec.out_params, spec.body, spec.name,
                                  preamble=PREAMBLE, options=OPTIONS)


def compiled(name: str) -> Any:
    """The ``cupy.ElementwiseKernel`` of :data:`KERNELS` ``[name]``, built once per process."""
    kern = _compiled.get(name)
    if kern is None:
        spec = KERNELS[name]
        with _compiled_lock:
            kern = _compiled.get(name)
            if kern is None:
                kern = _compiled[name] = elementwise_kernel(spec)
    return kern


#: The kernel of each hidden activation, and of its derivative.
ACTIVATE = {"relu": "arraynn_relu", "sigmoid": "arraynn_sigmoid", "tanh": "arraynn_tanh"}
ACTIVATE_GRAD = {"relu": "arraynn_relu_grad", "sigmoid": "arraynn_sigmoid_grad",
                 "tanh": "arraynn_tanh_grad"}
#: Above this many classes the softmax's one-thread-per-row kernel would loop too long.
ROW_KERNEL_MAX_CLASSES = 256
