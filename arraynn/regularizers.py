"""L1 and L2 weight penalties, in Array API code.

The penalty on a weight matrix ``w`` is ``l1 * sum(|w|) + l2 / 2 * sum(w**2)`` and
its (sub)gradient is ``l1 * sign(w) + l2 * w``. The L2 gradient is the article's
``l2 * w`` term; the L1 term is a true subgradient (the article added ``l1 * w``).
Biases are never penalised.
"""

from __future__ import annotations

from typing import Any

from array_api_compat import array_namespace, device

__all__ = ["penalty", "penalty_grad"]


def penalty(weights: list[Any], l1: float, l2: float) -> Any:
    """``sum over w of l1*|w|_1 + l2/2*|w|_2^2`` as a 0-d array (0 when both are 0)."""
    xp = array_namespace(*weights)
    total = xp.zeros((), dtype=weights[0].dtype, device=device(weights[0]))
    for w in weights:
        if l1:
            total = total + l1 * xp.sum(xp.abs(w))
        if l2:
            total = total + (0.5 * l2) * xp.sum(w * w)
    return total


def penalty_grad(w: Any, g: Any, l1: float, l2: float, xp: Any = None) -> Any:
    """``g`` plus the penalty's subgradient at ``w``."""
    if l2:
        g = g + l2 * w
    if l1:
        g = g + l1 * (xp or array_namespace(w)).sign(w)
    return g
