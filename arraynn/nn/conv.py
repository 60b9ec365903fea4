"""Convolution and pooling layers with hand-written backward passes, in Array API code.

Images are ``(n, channels, height, width)`` (PyTorch's and ONNX's layout); shapes in
the layer protocol (:mod:`arraynn.nn.layers`) leave out the batch: ``(channels, height,
width)``. A convolution's kernels are a parameter of shape ``(filters, in_channels,
kh, kw)`` (so they appear in ``coefs_``), its bias one of shape ``(filters,)``.

The convolution and its gradients are the ops' (:meth:`arraynn.ops.Ops.conv2d` and
:meth:`~arraynn.ops.Ops.conv2d_grads`, so a backend can do them its own way: NumPy's
makes the whole batch's columns one matrix and runs one product). The generic
convolution is im2col and one matrix product: the input's columns
(:meth:`arraynn.ops.Ops.im2col`, shape ``(n, in_channels * kh * kw, oh * ow)``) times
the kernels as a ``(filters, in_channels * kh * kw)`` matrix. Its backward pass is two
more products and the columns' adjoint (:meth:`~arraynn.ops.Ops.col2im`), which adds the
input's gradient back from the columns without scatter-add (the transposed
convolution). Pooling reduces the window's ``kh * kw`` strided slices of the input
elementwise (a running maximum, or a sum), and adds the slices' gradients back the same
way; max pooling's backward sends each output's gradient to the position of its
window's maximum (the first one, on ties, as PyTorch does).

The kernels' gradient is ``sum over samples of dy[s] @ cols[s].T``, a batched product
summed (a ``(n, filters, c*kh*kw)`` temporary, smaller than the copies of the columns a
single ``tensordot`` would make), and lands in the layer's view of the flat gradient
buffer where the library can write there (:meth:`arraynn.ops.Ops.keep`).

The columns are kept for the backward pass when they fit
:data:`WORKSPACE_LIMIT_BYTES`; a larger batch is worked through in chunks of samples,
each chunk's columns made again in the backward pass, so one layer's workspace stays
under the limit at the price of a second im2col.
"""

from __future__ import annotations

import math
from typing import Any

import array_api_compat

from ..ops import Ops
from ..ops.windows import Window
from .layers import Layer, Shape

__all__ = ["WORKSPACE_LIMIT_BYTES", "AvgPool2D", "Conv2D", "GlobalAvgPool2D", "MaxPool2D"]

#: The most bytes of im2col columns one convolution keeps or makes at once.
WORKSPACE_LIMIT_BYTES = 256 * 2**20


def _pair(value: Any, what: str, minimum: int = 1) -> tuple[int, int]:
    items = value if isinstance(value, (tuple, list)) else (value, value)
    if len(items) != 2 or any(isinstance(v, bool) or not isinstance(v, int) or v < minimum for v in items):
        bound = "positive" if minimum == 1 else "non-negative"
        raise ValueError(f"{what} must be a {bound} integer or a pair of them, got {value!r}")
    return int(items[0]), int(items[1])


def _images(layer: Layer, input_shape: Shape) -> tuple[int, int, int]:
    if len(input_shape) != 3:
        raise ValueError(
            f"{type(layer).__name__} takes images (channels, height, width), got samples of shape "
            f"{tuple(input_shape)}; give NNClassifier images shaped (n, channels, height, width) or "
            "(n, height, width), or flat rows with input_shape=(channels, height, width)")
    c, h, w = (int(d) for d in input_shape)
    return c, h, w


def _hw(shape: Shape) -> tuple[int, int]:
    return int(shape[-2]), int(shape[-1])


class Conv2D(Layer):
    """A 2-D convolution (cross-correlation, as in every deep learning library) of
    ``filters`` kernels over ``(channels, height, width)`` images.

    Parameters
    ----------
    filters : int
        The number of output channels.
    kernel_size : int or (int, int)
    stride : int or (int, int), default 1
    padding : "valid", "same", int or (int, int), default "valid"
        ``"valid"``: none; ``"same"``: the zero padding that gives ``ceil(size /
        stride)`` outputs, split evenly with the odd one at the bottom/right (Keras's
        and TensorFlow's rule); an int or a pair: that many zero rows/columns on each
        side.
    bias : bool, default True
    """

    kind = "conv2d"

    def __init__(self, filters: int, kernel_size: Any, stride: Any = 1, padding: Any = "valid",
                 bias: bool = True) -> None:
        if isinstance(filters, bool) or not isinstance(filters, int) or filters < 1:
            raise ValueError(f"Conv2D(filters) needs a positive integer, got {filters!r}")
        self.filters = int(filters)
        self.kernel_size = _pair(kernel_size, "Conv2D kernel_size")
        self.stride = _pair(stride, "Conv2D stride")
        if isinstance(padding, str):
            if padding not in ("valid", "same"):
                raise ValueError(f"Conv2D padding must be 'valid', 'same', an int or a pair, got {padding!r}")
            self.padding: Any = padding
        else:
            self.padding = _pair(padding, "Conv2D padding", minimum=0)
        self.bias = bool(bias)
        self.weight_params = (0,)

    def _hyper(self) -> dict[str, Any]:
        pad = self.padding if isinstance(self.padding, str) else list(self.padding)
        return {"filters": self.filters, "kernel_size": list(self.kernel_size), "stride": list(self.stride),
                "padding": pad, "bias": self.bias}

    def window(self, input_shape: Shape) -> Window:
        """The window geometry on samples of ``input_shape`` (the explicit padding)."""
        h, w = _hw(input_shape)
        (kh, kw), (sh, sw) = self.kernel_size, self.stride
        if self.padding == "valid":
            pad = (0, 0, 0, 0)
        elif self.padding == "same":
            th = max((math.ceil(h / sh) - 1) * sh + kh - h, 0)
            tw = max((math.ceil(w / sw) - 1) * sw + kw - w, 0)
            pad = (th // 2, th - th // 2, tw // 2, tw - tw // 2)
        else:
            ph, pw = self.padding
            pad = (ph, ph, pw, pw)
        return Window(kh, kw, sh, sw, pad)

    def output_shape(self, input_shape: Shape) -> Shape:
        _, h, w = _images(self, input_shape)
        return (self.filters, *self.window(input_shape).output_hw(h, w))

    def param_shapes(self, input_shape: Shape) -> list[Shape]:
        c, _, _ = _images(self, input_shape)
        self.output_shape(input_shape)  # the kernel fits, or a clear error
        return [(self.filters, c, *self.kernel_size)] + ([(self.filters,)] if self.bias else [])

    def _chunk(self, x: Any, win: Window) -> int:
        """Samples per chunk: all of them when their columns fit the workspace limit."""
        n, c, h, w = x.shape
        oh, ow = win.output_hw(h, w)
        per_sample = int(c) * win.kh * win.kw * int(oh) * int(ow) * _itemsize(x)
        return max(1, min(int(n), WORKSPACE_LIMIT_BYTES // max(per_sample, 1)))

    def forward(self, ops: Ops, params: list[Any], x: Any, **step: Any) -> tuple[Any, Any]:
        win = self.window(tuple(x.shape[1:]))
        y, cache = ops.conv2d(x, params[0], win, self._chunk(x, win))
        if self.bias:
            y = y + ops.xp.reshape(params[1], (1, self.filters, 1, 1))
        return y, cache

    def backward(self, ops: Ops, params: list[Any], cache: Any, dy: Any, grads: list[Any],
                 need_dx: bool = True, l1: float = 0.0, l2: float = 0.0, **step: Any) -> Any:
        xp = ops.xp
        W = params[0]
        if self.bias:  # dy's shape (n, filters, oh, ow); n may be 0 (a rank's empty slice)
            grads[1] = ops.keep(xp.sum(dy, axis=(0, 2, 3)), grads[1])
        dW, dx = ops.conv2d_grads(W, cache, dy, need_dx)
        dW = ops.keep(dW, grads[0])
        grads[0] = ops.penalize(W, dW, l1, l2) if (l1 or l2) else dW
        return dx


def _itemsize(x: Any) -> int:
    itemsize = getattr(x.dtype, "itemsize", None)
    if isinstance(itemsize, int):
        return itemsize
    return 8 if "64" in str(x.dtype) else 4


class _Pool(Layer):
    """Max or average pooling over windows of ``pool_size`` (no padding; outputs that
    would need a window past the edge are left out, PyTorch's default)."""

    def __init__(self, pool_size: Any, stride: Any = None) -> None:
        name = type(self).__name__
        self.pool_size = _pair(pool_size, f"{name} pool_size")
        self.stride = self.pool_size if stride is None else _pair(stride, f"{name} stride")

    def _hyper(self) -> dict[str, Any]:
        return {"pool_size": list(self.pool_size), "stride": list(self.stride)}

    def window(self, input_shape: Shape | None = None) -> Window:
        return Window(*self.pool_size, *self.stride)

    def output_shape(self, input_shape: Shape) -> Shape:
        c, h, w = _images(self, input_shape)
        return (c, *self.window().output_hw(h, w))

    def _pieces(self, ops: Ops, x: Any) -> list[Any]:
        from ..ops.windows import pieces

        return pieces(x, self.window(), ops.xp)


class MaxPool2D(_Pool):
    """The maximum of each ``pool_size`` window, moved by ``stride`` (default: the pool
    size, windows side by side).

    Parameters
    ----------
    pool_size : int or (int, int)
    stride : int or (int, int), optional
    """

    kind = "maxpool2d"

    def forward(self, ops: Ops, params: list[Any], x: Any, **step: Any) -> tuple[Any, Any]:
        y, arg = ops.max_pool(x, self.window())
        return y, (arg, tuple(x.shape))

    def backward(self, ops: Ops, params: list[Any], cache: Any, dy: Any, grads: list[Any],
                 need_dx: bool = True, **step: Any) -> Any:
        if not need_dx:
            return None
        arg, shape = cache
        return ops.max_pool_grad(dy, arg, shape, self.window())


class AvgPool2D(_Pool):
    """The mean of each ``pool_size`` window, moved by ``stride`` (default: the pool size).

    Parameters
    ----------
    pool_size : int or (int, int)
    stride : int or (int, int), optional
    """

    kind = "avgpool2d"

    def forward(self, ops: Ops, params: list[Any], x: Any, **step: Any) -> tuple[Any, Any]:
        parts = self._pieces(ops, x)
        total = parts[0]
        for part in parts[1:]:
            total = total + part
        return total / len(parts), tuple(x.shape)

    def backward(self, ops: Ops, params: list[Any], cache: Any, dy: Any, grads: list[Any],
                 need_dx: bool = True, **step: Any) -> Any:
        if not need_dx:
            return None
        k = self.pool_size[0] * self.pool_size[1]
        share = dy / k
        return ops.add_windows([share] * k, cache, self.window())


class GlobalAvgPool2D(Layer):
    """The mean of each channel over the whole image: ``(c, h, w)`` to ``(c,)``."""

    kind = "globalavgpool2d"

    def output_shape(self, input_shape: Shape) -> Shape:
        c, _, _ = _images(self, input_shape)
        return (c,)

    def forward(self, ops: Ops, params: list[Any], x: Any, **step: Any) -> tuple[Any, Any]:
        return ops.xp.mean(x, axis=(2, 3)), tuple(x.shape)

    def backward(self, ops: Ops, params: list[Any], cache: Any, dy: Any, grads: list[Any],
                 need_dx: bool = True, **step: Any) -> Any:
        if not need_dx:
            return None
        xp = ops.xp
        n, c, h, w = cache
        ones = xp.ones((1, 1, h, w), dtype=dy.dtype, device=array_api_compat.device(dy))
        return xp.reshape(dy / (h * w), (n, c, 1, 1)) * ones
