"""The finite-difference check every layer's hand-written backward pass is held to."""

from __future__ import annotations

import numpy as np
import pytest

__all__ = ["directional_check"]


def directional_check(f, args, grads, rng, h=1e-6, rtol=1e-6):
    """``sum(grad_i * v_i)`` against ``(f(args + h v) - f(args - h v)) / 2h`` for a random
    direction ``v`` in every argument at once (host float64 arrays; ``f`` takes host arrays)."""
    vs = [rng.normal(size=a.shape) for a in args]
    plus = f(*[a + h * v for a, v in zip(args, vs)])
    minus = f(*[a - h * v for a, v in zip(args, vs)])
    numeric = (plus - minus) / (2 * h)
    analytic = sum(float(np.sum(g * v)) for g, v in zip(grads, vs))
    assert analytic == pytest.approx(numeric, rel=rtol, abs=1e-9), (analytic, numeric)
