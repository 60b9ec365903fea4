"""Optimizers: SGD (the article's), momentum and Adam, in Array API code.

An optimizer is a small object with two methods::

    state = opt.init(params)
    params, state = opt.update(params, grads, state)

``state`` is a dict of lists of arrays plus a host step counter ``t``. Updates are
written with augmented assignment on arrays the optimizer owns (``m *= beta``):
NumPy, CuPy and torch update those buffers in place, and immutable arrays (JAX)
simply rebind, so the same code serves both. The parameter list passed in is updated
entry by entry and returned. Hyperparameters are Python floats, so float32 stays
float32.

SGD and Adam run their elementwise update through :mod:`arraynn.kernels` (NumPy's
fast path makes it in place, without temporaries). ``grads`` are only read.
"""

from __future__ import annotations

import math
from typing import Any

from array_api_compat import array_namespace

from .kernels import kernels_of

__all__ = ["OPTIMIZERS", "SGD", "Momentum", "Adam", "make_optimizer"]


class SGD:
    """Plain gradient descent, ``w -= learning_rate * g`` (the article's update)."""

    name = "sgd"

    def __init__(self, learning_rate: float = 0.01) -> None:
        self.learning_rate = float(learning_rate)

    def init(self, params: list[Any]) -> dict[str, Any]:
        """The optimizer state for ``params``."""
        return {"t": 0}

    def update(self, params: list[Any], grads: list[Any], state: dict[str, Any]):
        """Apply one step; returns ``(params, state)``."""
        kernels_of(params[0]).sgd(params, grads, self.learning_rate)
        state["t"] += 1
        return params, state


class Momentum(SGD):
    """Gradient descent with classical momentum: ``v = mu*v - lr*g; w += v``."""

    name = "momentum"

    def __init__(self, learning_rate: float = 0.01, momentum: float = 0.9,
                 nesterov: bool = False) -> None:
        super().__init__(learning_rate)
        self.momentum = float(momentum)
        self.nesterov = bool(nesterov)

    def init(self, params: list[Any]) -> dict[str, Any]:
        xp = array_namespace(*params)
        return {"t": 0, "velocity": [xp.zeros_like(p) for p in params]}

    def update(self, params: list[Any], grads: list[Any], state: dict[str, Any]):
        lr, mu = self.learning_rate, self.momentum
        vel = state["velocity"]
        for i, g in enumerate(grads):
            v = vel[i]
            v *= mu
            v -= lr * g
            vel[i] = v
            p = params[i]
            if self.nesterov:
                p += mu * v - lr * g
            else:
                p += v
            params[i] = p
        state["t"] += 1
        return params, state


class Adam(SGD):
    """Adam (Kingma & Ba) with bias correction folded into the step size."""

    name = "adam"

    def __init__(self, learning_rate: float = 0.001, beta_1: float = 0.9,
                 beta_2: float = 0.999, epsilon: float = 1e-8) -> None:
        super().__init__(learning_rate)
        self.beta_1 = float(beta_1)
        self.beta_2 = float(beta_2)
        self.epsilon = float(epsilon)

    def init(self, params: list[Any]) -> dict[str, Any]:
        xp = array_namespace(*params)
        return {"t": 0, "m": [xp.zeros_like(p) for p in params],
                "v": [xp.zeros_like(p) for p in params]}

    def update(self, params: list[Any], grads: list[Any], state: dict[str, Any]):
        b1, b2 = self.beta_1, self.beta_2
        t = state["t"] + 1
        # Bias corrections as host scalars: lr_t = lr * sqrt(1 - b2^t) / (1 - b1^t),
        # and epsilon scaled to match the uncorrected denominator.
        c2 = math.sqrt(1.0 - b2**t)
        lr_t = self.learning_rate * c2 / (1.0 - b1**t)
        eps_t = self.epsilon * c2
        kernels_of(params[0]).adam(params, grads, state["m"], state["v"], lr_t, b1, b2, eps_t)
        state["t"] = t
        return params, state


OPTIMIZERS = {"sgd": SGD, "momentum": Momentum, "adam": Adam}


def make_optimizer(name: str, learning_rate: float, **options: float) -> SGD:
    """Build an optimizer by name; ``options`` not used by that optimizer are ignored."""
    try:
        cls = OPTIMIZERS[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown optimizer {name!r}; choose one of {sorted(OPTIMIZERS)}") from None
    import inspect

    accepted = inspect.signature(cls.__init__).parameters
    return cls(learning_rate, **{k: v for k, v in options.items() if k in accepted})
