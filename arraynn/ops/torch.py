"""PyTorch's fast path: the weight and bias gradients written straight into the flat
gradient buffer (``torch.matmul(..., out=)``, ``torch.sum(..., out=)``, the penalty
added in place), which the Array API has no way to say; without it every step would
copy the gradients into one buffer. Everything else is the generic code, which updates
torch tensors in place through augmented assignment already. The values are the
generic path's.
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

    def penalize(self, w: Any, g: Any, l1: float, l2: float) -> Any:
        if not _writable_into(g, w):
            return super().penalize(w, g, l1, l2)
        if l2:  # the generic g + l2 * w, in place: the same two roundings
            g += l2 * w
        if l1:
            g += l1 * torch.sign(w)
        return g
