"""Optimizers (SGD, the article's; momentum; Adam) and learning-rate schedules.

An optimizer works on whole buffers: the network's parameters are one flat array
(see :class:`arraynn.nn.mlp.ParamLayout`), and so are the gradient and every
optimizer buffer, so an update is one pass over one array (one fused kernel on CuPy,
a few in-place calls on NumPy)::

    state = opt.init(params)
    params, state = opt.update(params, grads, state, learning_rate)

``state`` is a dict: the step counter ``t`` and the buffers named in
``opt.buffers``. The learning rate is an argument of every update (a schedule
changes it per epoch); the other hyperparameters are the optimizer's. The
optimizer works out the update's scalars (Adam's bias correction) and hands the
elementwise work to the ops of the arrays' namespace (:mod:`arraynn.ops`).

``t`` is a host integer in eager training. Inside a compiled JAX step it is a 0-d
device integer, and the learning rate a 0-d device float: the same code then
computes the bias correction on the device (:func:`one_minus_power`).
"""

from __future__ import annotations

import math
from typing import Any

from array_api_compat import array_namespace

from ..ops import ops_of

__all__ = ["ADAPTIVE_FACTOR", "ADAPTIVE_MIN_RATE", "OPTIMIZERS", "SCHEDULES", "SGD", "Momentum", "Adam",
           "learning_rate_at",
           "make_optimizer", "one_minus_power"]

#: Learning-rate schedules, see :func:`learning_rate_at`.
SCHEDULES: tuple[str, ...] = ("constant", "cosine", "adaptive")

#: The factor ``"adaptive"`` divides the rate by on a plateau (scikit-learn's).
ADAPTIVE_FACTOR = 5.0
#: ``"adaptive"`` stops training at a plateau once the rate is at or below this.
ADAPTIVE_MIN_RATE = 1e-6


def learning_rate_at(schedule: str, learning_rate: float, epoch: int, epochs: int,
                     divisions: int = 0) -> float:
    """The learning rate of epoch ``epoch`` (0-based) of ``epochs``.

    ``"constant"``: ``learning_rate``. ``"cosine"``:
    ``learning_rate * (1 + cos(pi * epoch / epochs)) / 2``; past the last epoch
    (``partial_fit`` beyond ``epochs``) it stays at the last epoch's rate instead of
    rising again. Both depend only on the epoch number, so a resumed run follows the
    same schedule. ``"adaptive"`` (scikit-learn's): ``learning_rate / 5**divisions``,
    where ``divisions`` counts the plateaus so far (training state, kept by the
    caller, see :class:`arraynn.nn.stopping.Plateau`); one division of the product
    ``5**divisions``, so the rate does not depend on how often it was divided before.
    """
    lr = float(learning_rate)
    if schedule == "cosine":
        epoch = min(int(epoch), int(epochs) - 1)
        return lr * 0.5 * (1.0 + math.cos(math.pi * epoch / int(epochs)))
    if schedule == "constant":
        return lr
    if schedule == "adaptive":
        return lr / ADAPTIVE_FACTOR ** int(divisions)
    raise ValueError(f"unknown schedule {schedule!r}; choose one of {list(SCHEDULES)}")


def one_minus_power(beta: float, t: Any, like: Any = None) -> Any:
    """``1 - beta**t``: a Python float for a host step count ``t``; for a device count
    (0-d integer array) a 0-d array of ``like``'s dtype, computed as
    ``-expm1(t * log(beta))``, which stays accurate in float32 where ``1 - beta**t``
    would cancel."""
    if isinstance(t, int):
        return 1.0 - beta**t
    if beta == 0.0:
        return 1.0
    xp = array_namespace(t)
    return -xp.expm1(xp.astype(t, like.dtype) * math.log(beta))


class SGD:
    """Plain gradient descent, ``w -= learning_rate * g`` (the article's update)."""

    name = "sgd"
    #: The state's buffers, each shaped like the parameters.
    buffers: tuple[str, ...] = ()

    def init(self, params: Any) -> dict[str, Any]:
        """The optimizer state for the flat parameter buffer ``params``."""
        xp = array_namespace(params)
        return {"t": 0, **{name: xp.zeros_like(params) for name in self.buffers}}

    def update(self, params: Any, grads: Any, state: dict[str, Any], learning_rate: Any):
        """Apply one step; returns ``(params, state)``. ``params`` and the state's
        buffers are consumed (updated in place where the library allows)."""
        params = ops_of(params).sgd(params, grads, learning_rate)
        state["t"] = state["t"] + 1
        return params, state

    def hyperparameters(self) -> dict[str, Any]:
        """The optimizer's own hyperparameters (what a compiled step is keyed on)."""
        return dict(vars(self))

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.hyperparameters().items())
        return f"{type(self).__name__}({args})"


class Momentum(SGD):
    """Gradient descent with classical momentum (``v = mu*v - lr*g; w += v``), or
    Nesterov's (``w += mu*v - lr*g`` with the new ``v``)."""

    name = "momentum"
    buffers = ("velocity",)

    def __init__(self, momentum: float = 0.9, nesterov: bool = False) -> None:
        self.momentum = float(momentum)
        self.nesterov = bool(nesterov)

    def update(self, params: Any, grads: Any, state: dict[str, Any], learning_rate: Any):
        params, state["velocity"] = ops_of(params).momentum(
            params, grads, state["velocity"], learning_rate, self.momentum, self.nesterov)
        state["t"] = state["t"] + 1
        return params, state


class Adam(SGD):
    """Adam (Kingma & Ba) with the bias correction folded into the step size:
    ``lr_t = lr * sqrt(1 - beta_2**t) / (1 - beta_1**t)`` and epsilon scaled by the
    same ``sqrt(1 - beta_2**t)``."""

    name = "adam"
    buffers = ("m", "v")

    def __init__(self, beta_1: float = 0.9, beta_2: float = 0.999, epsilon: float = 1e-8) -> None:
        self.beta_1 = float(beta_1)
        self.beta_2 = float(beta_2)
        self.epsilon = float(epsilon)

    def update(self, params: Any, grads: Any, state: dict[str, Any], learning_rate: Any):
        b1, b2 = self.beta_1, self.beta_2
        t = state["t"] + 1
        c2 = one_minus_power(b2, t, params)
        c2 = math.sqrt(c2) if isinstance(c2, float) else array_namespace(c2).sqrt(c2)
        lr_t = learning_rate * c2 / one_minus_power(b1, t, params)
        eps_t = self.epsilon * c2
        params, state["m"], state["v"] = ops_of(params).adam(
            params, grads, state["m"], state["v"], lr_t, b1, b2, eps_t)
        state["t"] = t
        return params, state


OPTIMIZERS: dict[str, type[SGD]] = {"sgd": SGD, "momentum": Momentum, "adam": Adam}


def make_optimizer(name: str, **options: Any) -> SGD:
    """Build an optimizer by name; ``options`` not used by that optimizer are ignored."""
    try:
        cls = OPTIMIZERS[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown optimizer {name!r}; choose one of {sorted(OPTIMIZERS)}") from None
    import inspect

    accepted = inspect.signature(cls.__init__).parameters
    return cls(**{k: v for k, v in options.items() if k in accepted})
