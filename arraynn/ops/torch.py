"""PyTorch's fast path: the weight and bias gradients written straight into the flat
gradient buffer (``torch.matmul(..., out=)``, ``torch.sum(..., out=)``, the penalty
added in place), which the Array API has no way to say; without it every step would
copy the gradients into one buffer. A convolution's columns and their adjoint are
``torch.nn.functional.unfold`` and ``fold`` (plain tensor functions, no autograd: the
tensors here never require gradients), the generic layout exactly; ``fold`` may add the
overlapping windows in another order, so its values match the generic ones to rounding.
Max pooling over windows that neither overlap nor need padding is ``max_pool2d`` with its
indices and, for the gradient, one ``scatter_add_`` of ``dy`` onto them (one value per
image element at most, so the generic values). Everything else is the generic code,
which updates torch tensors in place through augmented assignment already. The values
are the generic path's.
"""

from __future__ import annotations

from typing import Any

import torch

from .generic import Ops

__all__ = ["TorchOps"]


def _writable_into(out: Any, *arrays: Any) -> bool:
    """Whether ``out`` can take the result: a tensor of the inputs' dtype and device, not
    tracked by autograd."""
    return (isinstance(out, torch.Tensor) and not out.requires_grad
            and all(isinstance(a, torch.Tensor) and a.dtype == out.dtype and a.device == out.device
                    for a in arrays))


def _apart(win: Any) -> bool:
    """Whether the windows of ``win`` neither overlap nor need padding."""
    return win.sh >= win.kh and win.sw >= win.kw and not any(win.pad)


class TorchOps(Ops):
    """PyTorch's fast path: :class:`Ops` with the gradients landing in the flat buffer."""

    name = "torch"

    def weight_grad(self, a: Any, delta: Any, out: Any = None) -> Any:
        if out is None or not _writable_into(out, a, delta):
            return super().weight_grad(a, delta, out)
        return torch.matmul(a.T, delta, out=out)

    def bias_grad(self, delta: Any, out: Any = None) -> Any:
        if out is None or not _writable_into(out, delta):
            return super().bias_grad(delta, out)
        return torch.sum(delta, dim=0, out=out)

    def im2col(self, x: Any, win: Any) -> Any:
        if not isinstance(x, torch.Tensor) or x.ndim != 4:
            return super().im2col(x, win)
        t, b, l_, r = win.pad
        if t != b or l_ != r:  # unfold pads symmetrically; pad by hand first
            x = torch.nn.functional.pad(x, (l_, r, t, b))
            t = l_ = 0
        return torch.nn.functional.unfold(x, (win.kh, win.kw), padding=(t, l_), stride=(win.sh, win.sw))

    def col2im(self, cols: Any, shape: tuple[int, int, int, int], win: Any) -> Any:
        if not isinstance(cols, torch.Tensor):
            return super().col2im(cols, shape, win)
        n, c, h, w = shape
        t, b, l_, r = win.pad
        if t != b or l_ != r:
            full = torch.nn.functional.fold(cols, (h + t + b, w + l_ + r), (win.kh, win.kw),
                                            stride=(win.sh, win.sw))
            return full[:, :, t:t + h, l_:l_ + w]
        return torch.nn.functional.fold(cols, (h, w), (win.kh, win.kw), padding=(t, l_),
                                        stride=(win.sh, win.sw))

    def keep(self, value: Any, out: Any = None) -> Any:
        if out is not None and _writable_into(out, value) and out.shape == value.shape:
            return out.copy_(value)
        return value

    def add_windows(self, parts: list[Any], shape: tuple[int, int, int, int], win: Any) -> Any:
        if not isinstance(parts[0], torch.Tensor):
            return super().add_windows(parts, shape, win)
        from .windows import add_windows_inplace

        return add_windows_inplace(parts, shape, win, torch)

    def max_pool(self, x: Any, win: Any) -> tuple[Any, Any]:
        # torch's own pooling where the windows do not overlap and need no padding: the same
        # maximum (its scan, like the generic one, keeps the first of equal values), and
        # the arg-max as torch's flat index into the image plane (int64)
        if not (isinstance(x, torch.Tensor) and x.ndim == 4 and x.is_floating_point()
                and _apart(win)):
            return super().max_pool(x, win)
        return torch.nn.functional.max_pool2d(x, (win.kh, win.kw), (win.sh, win.sw), return_indices=True)

    def max_pool_grad(self, dy: Any, arg: Any, shape: tuple[int, int, int, int], win: Any) -> Any:
        if not (isinstance(arg, torch.Tensor) and arg.dtype == torch.int64):
            return super().max_pool_grad(dy, arg, shape, win)
        n, c, h, w = shape
        dx = dy.new_zeros((n, c, h * w))  # windows apart: one value at most per element, so exact
        dx.scatter_add_(2, arg.reshape(n, c, -1), dy.reshape(n, c, -1))
        return dx.reshape(shape)

    def penalize(self, w: Any, g: Any, l1: float, l2: float) -> Any:
        if not _writable_into(g, w):
            return super().penalize(w, g, l1, l2)
        if l2:  # the generic g + l2 * w, in place: the same two roundings
            g += l2 * w
        if l1:
            g += l1 * torch.sign(w)
        return g
