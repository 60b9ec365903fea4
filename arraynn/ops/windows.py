"""Sliding windows over images in Array API code: im2col, its adjoint, padding, dilation.

The Array API standard has no convolution, no sliding-window view and no scatter-add,
so the convolution and pooling layers (:mod:`arraynn.nn.conv`) are built here from
slicing, ``stack``, ``concat``, ``reshape`` and ``permute_dims``, which every conforming
library has, and which work on immutable arrays (JAX) as on mutable ones. These are
the reference implementations; :class:`arraynn.ops.Ops` calls them, and a fast path
(NumPy's strided views, torch's ``unfold``/``fold``) overrides the method and is
tested against them.

Layout (PyTorch's and ONNX's): images are ``(n, channels, height, width)``. A *window
geometry* :class:`Window` says the kernel size, the stride and the zero padding on each
side. ``im2col`` turns images into columns of shape ``(n, channels * kh * kw, oh * ow)``:
row ``(c, i, j)`` (C order) of sample ``s`` holds, for every output position, the input
value the kernel's element ``(i, j)`` of channel ``c`` meets there, so a convolution
is one matrix product with the kernels reshaped to ``(filters, channels * kh * kw)``.
``col2im`` is its adjoint (the transpose of that linear map): each column value is
added back to the input position it was read from. Without scatter-add it is the sum,
over the ``kh * kw`` kernel offsets, of the offset's values dilated by the stride and
padded into place; overlapping windows add up, positions no window covers get zero.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import array_api_compat

__all__ = ["Window", "add_windows", "add_windows_inplace", "col2im", "col2im_inplace", "dilate", "im2col",
           "pad2d", "pieces"]


@dataclass(frozen=True)
class Window:
    """The geometry of a sliding window over ``(height, width)`` images."""

    kh: int
    kw: int
    sh: int = 1
    sw: int = 1
    #: Zero padding: top, bottom, left, right.
    pad: tuple[int, int, int, int] = (0, 0, 0, 0)

    def output_hw(self, h: int, w: int) -> tuple[int, int]:
        """The output positions along height and width (floor, PyTorch's default); a
        window that does not fit is a ``ValueError``."""
        t, b, l_, r = self.pad
        hp, wp = h + t + b, w + l_ + r
        if hp < self.kh or wp < self.kw:
            raise ValueError(f"a {self.kh}x{self.kw} window does not fit a {h}x{w} input"
                             + (f" padded to {hp}x{wp}" if any(self.pad) else "")
                             + "; use a smaller kernel or pool, or padding")
        return (hp - self.kh) // self.sh + 1, (wp - self.kw) // self.sw + 1


def pad2d(x: Any, pad: tuple[int, int, int, int], xp: Any) -> Any:
    """``x`` (…, h, w) with zeros added: ``pad`` = (top, bottom, left, right)."""
    t, b, l_, r = pad
    if not (t or b or l_ or r):
        return x
    dev = array_api_compat.device(x)
    lead = tuple(x.shape[:-2])
    h, w = x.shape[-2], x.shape[-1]
    if l_ or r:
        parts = ([xp.zeros((*lead, h, l_), dtype=x.dtype, device=dev)] if l_ else []) + [x] + (
            [xp.zeros((*lead, h, r), dtype=x.dtype, device=dev)] if r else [])
        x = xp.concat(parts, axis=-1)
        w += l_ + r
    if t or b:
        parts = ([xp.zeros((*lead, t, w), dtype=x.dtype, device=dev)] if t else []) + [x] + (
            [xp.zeros((*lead, b, w), dtype=x.dtype, device=dev)] if b else [])
        x = xp.concat(parts, axis=-2)
    return x


def dilate(x: Any, sh: int, sw: int, xp: Any) -> Any:
    """``x`` (…, h, w) with ``sh - 1`` zero rows between its rows and ``sw - 1`` zero
    columns between its columns: shape (…, (h-1)*sh + 1, (w-1)*sw + 1)."""
    lead = tuple(x.shape[:-2])
    h, w = x.shape[-2], x.shape[-1]
    if sw > 1:
        z = xp.zeros_like(x)
        x = xp.reshape(xp.stack([x] + [z] * (sw - 1), axis=-1), (*lead, h, w * sw))[..., :(w - 1) * sw + 1]
        w = (w - 1) * sw + 1
    if sh > 1:
        z = xp.zeros_like(x)
        x = xp.reshape(xp.stack([x] + [z] * (sh - 1), axis=-2), (*lead, h * sh, w))[..., :(h - 1) * sh + 1, :]
    return x


def _offset_slices(win: Window, oh: int, ow: int, i: int, j: int) -> tuple[slice, slice]:
    return (slice(i, i + win.sh * (oh - 1) + 1, win.sh), slice(j, j + win.sw * (ow - 1) + 1, win.sw))


def pieces(x: Any, win: Window, xp: Any) -> list[Any]:
    """The ``kh * kw`` strided slices of the (padded) images ``x`` (n, c, h, w), one per
    kernel offset ``(i, j)`` in C order, each ``(n, c, oh, ow)``: what the kernel's
    element ``(i, j)`` meets at every output position (views where the library has them)."""
    n, c, h, w = x.shape
    oh, ow = win.output_hw(h, w)
    xp_ = pad2d(x, win.pad, xp)
    out = []
    for i in range(win.kh):
        for j in range(win.kw):
            rs, cs = _offset_slices(win, oh, ow, i, j)
            out.append(xp_[:, :, rs, cs])
    return out


def add_windows(parts: list[Any], shape: tuple[int, int, int, int], win: Window, xp: Any) -> Any:
    """The adjoint of :func:`pieces`: each offset's ``(n, c, oh, ow)`` values added back
    onto images of ``shape`` at the positions they were read from (dilated by the
    stride, padded into place and summed, in offset order)."""
    n, c, h, w = shape
    oh, ow = win.output_hw(h, w)
    t, b, l_, r = win.pad
    hp, wp = h + t + b, w + l_ + r
    span_h, span_w = win.sh * (oh - 1) + 1, win.sw * (ow - 1) + 1
    total: Any = None
    for k, part in enumerate(parts):
        i, j = divmod(k, win.kw)
        piece = pad2d(dilate(part, win.sh, win.sw, xp), (i, hp - i - span_h, j, wp - j - span_w), xp)
        total = piece if total is None else total + piece
    return total[:, :, t:t + h, l_:l_ + w]


def add_windows_inplace(parts: list[Any], shape: tuple[int, int, int, int], win: Window, xp: Any) -> Any:
    """:func:`add_windows` for libraries whose arrays take sliced augmented assignment
    (NumPy, CuPy, torch): ``kh * kw`` strided in-place additions into one zeroed image,
    in the same order, so the same sums."""
    n, c, h, w = shape
    oh, ow = win.output_hw(h, w)
    t, b, l_, r = win.pad
    first = parts[0]
    out = xp.zeros((n, c, h + t + b, w + l_ + r), dtype=first.dtype, device=array_api_compat.device(first))
    for k, part in enumerate(parts):
        rs, cs = _offset_slices(win, oh, ow, *divmod(k, win.kw))
        out[:, :, rs, cs] += part
    return out[:, :, t:t + h, l_:l_ + w]


def im2col(x: Any, win: Window, xp: Any) -> Any:
    """The columns of images ``x`` (n, c, h, w) under ``win``: shape
    ``(n, c * kh * kw, oh * ow)`` (see the module docstring)."""
    n, c, h, w = x.shape
    oh, ow = win.output_hw(h, w)
    cols = xp.stack(pieces(x, win, xp), axis=2)  # (n, c, kh*kw, oh, ow)
    return xp.reshape(cols, (n, c * win.kh * win.kw, oh * ow))


def _col_pieces(cols: Any, shape: tuple[int, int, int, int], win: Window, xp: Any) -> list[Any]:
    n, c, h, w = shape
    oh, ow = win.output_hw(h, w)
    six = xp.reshape(cols, (n, c, win.kh, win.kw, oh, ow))
    return [six[:, :, i, j, :, :] for i in range(win.kh) for j in range(win.kw)]


def col2im(cols: Any, shape: tuple[int, int, int, int], win: Window, xp: Any) -> Any:
    """The adjoint of :func:`im2col`: columns ``cols`` (n, c*kh*kw, oh*ow) summed back
    onto images of ``shape`` (n, c, h, w)."""
    return add_windows(_col_pieces(cols, shape, win, xp), shape, win, xp)


def col2im_inplace(cols: Any, shape: tuple[int, int, int, int], win: Window, xp: Any) -> Any:
    """:func:`col2im` by :func:`add_windows_inplace` (the same sums in the same order)."""
    return add_windows_inplace(_col_pieces(cols, shape, win, xp), shape, win, xp)
