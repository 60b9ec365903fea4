"""The training step compiled with ``jax.jit``, for the JAX backend.

:func:`jit_train_step` wraps the very code the other backends run eagerly,
:meth:`arraynn.MLP.train_step` with the generic kernels and the optimizers of
:mod:`arraynn.optimizers`, in one ``jax.jit``: XLA then fuses the elementwise work
that eager JAX dispatches operation by operation. The wrapper has the signature and
the results of :meth:`MLP.train_step`, so :class:`arraynn.NNClassifier` uses it on
JAX in place of the eager step (:func:`train_step_for`).

Under ``jax.jit`` a step must be a pure function of arrays, so the wrapper

* passes the parameters, the optimizer's buffers (Adam's ``m`` and ``v``, the
  momentum's ``velocity``) and a step counter into the compiled step as pytrees and
  takes the new ones back, donating the old ones (``donate_argnums``) so XLA updates
  them in place; it then rebinds the entries of the caller's ``params`` list and
  buffer lists, as the eager step does;
* keeps **a step counter on the device**, next to the buffers: Adam's bias corrections
  depend on the step number ``t``, and passing ``t`` as a Python number would either
  copy a new scalar to the device every step or, marked static, compile a new step
  every step. Inside the compiled step the corrections are computed from the counter
  as ``1 - beta**t = -expm1(t * log(beta))``, which stays accurate in float32 where
  ``1 - beta**t`` would cancel (they agree with the eager path's float64 host values
  to a few float32 ulps). The host's ``state["t"]`` is still counted on the host, so
  saving, loading and the eager path see the usual integer;
* passes the learning rate as a device scalar, uploaded once whenever the optimizer's
  ``learning_rate`` changes (a schedule changes it once per epoch), never per step.
  The other hyperparameters (betas, epsilon, momentum, the L1/L2 penalties) are
  constants of the compiled step.

The device counter is uploaded from ``state["t"]`` the first time a state is seen
(or after ``state["t"]`` was changed by other code, e.g. a loaded checkpoint); after
that a step copies nothing between host and device. Compiled steps are cached per
network shape and hyperparameters, so refitting or ``partial_fit`` does not compile
again (XLA compiles once per batch shape: a smaller last batch adds one).

``ARRAYNN_JAX_JIT=0`` in the environment, or :func:`set_jit`, makes
:func:`train_step_for` return the eager step (for measuring one against the other).
"""

from __future__ import annotations

import copy
import math
import os
import threading
from collections.abc import Callable
from typing import Any

import numpy as np
from array_api_compat import array_namespace

from .kernels import kernels_of
from .optimizers import Adam

__all__ = ["JitTrainStep", "jit_enabled", "jit_train_step", "set_jit", "train_step_for"]

_enabled = os.environ.get("ARRAYNN_JAX_JIT", "1").strip().lower() not in ("0", "false", "no", "off")

# Private entries the jitted step keeps in the optimizer's state dict (never saved: only
# list-valued entries are): the device step counter, and the host step it matches.
_COUNTER, _COUNTER_AT = "_t_device", "_t_device_at"


def set_jit(enabled: bool) -> None:
    """Let :func:`train_step_for` use the jitted step (the default) or the eager one."""
    global _enabled
    _enabled = bool(enabled)


def jit_enabled() -> bool:
    """Whether :func:`train_step_for` returns the jitted step."""
    return _enabled


def train_step_for(mlp: Any, optimizer: Any, l1: float = 0.0, l2: float = 0.0) -> Callable[..., Any]:
    """The training step to run on JAX: :func:`jit_train_step`, or the eager
    :meth:`MLP.train_step` when jit is turned off."""
    return jit_train_step(mlp, optimizer, l1, l2) if _enabled else mlp.train_step


def _one_minus_power(beta: float, t: Any) -> Any:
    """``1 - beta**t`` for a device step count ``t`` (floating), without cancellation."""
    if beta == 0.0:
        return 1.0
    return -array_namespace(t).expm1(t * math.log(beta))


class _DeviceAdam:
    """:class:`arraynn.optimizers.Adam`'s update with ``t`` and the learning rate on the
    device: the same update through the same kernels, the bias correction computed from
    the device counter ``state["t"]``."""

    def __init__(self, adam: Adam, learning_rate: Any) -> None:
        self.beta_1, self.beta_2, self.epsilon = adam.beta_1, adam.beta_2, adam.epsilon
        self.learning_rate = learning_rate

    def update(self, params: list[Any], grads: list[Any], state: dict[str, Any]):
        xp = array_namespace(params[0])
        b1, b2 = self.beta_1, self.beta_2
        t = state["t"] + 1
        tf = xp.astype(t, params[0].dtype)
        c2 = xp.sqrt(_one_minus_power(b2, tf))
        lr_t = self.learning_rate * c2 / _one_minus_power(b1, tf)
        eps_t = self.epsilon * c2
        kernels_of(params[0]).adam(params, grads, state["m"], state["v"], lr_t, b1, b2, eps_t)
        state["t"] = t
        return params, state


def _traced_optimizer(optimizer: Any, learning_rate: Any) -> Any:
    """The optimizer to run inside the trace, reading the learning rate from the device."""
    if isinstance(optimizer, Adam):
        return _DeviceAdam(optimizer, learning_rate)
    traced = copy.copy(optimizer)  # SGD, Momentum: their update reads t from nowhere
    traced.learning_rate = learning_rate
    return traced


def _config(mlp: Any, optimizer: Any, l1: float, l2: float) -> tuple:
    hyper = tuple(sorted((k, v) for k, v in vars(optimizer).items() if k != "learning_rate"))
    return (mlp.layer_sizes, mlp.activation.name, mlp.output, mlp.bias, type(optimizer), hyper,
            float(l1), float(l2))


class JitTrainStep:
    """A jit-compiled :meth:`MLP.train_step` (see the module docstring).

    Call it as ``step(params, optimizer, state, X, Y, l1, l2)``; it returns
    ``(params, state, loss)`` with ``params`` and ``state`` the caller's (updated)
    list and dict and ``loss`` the batch's summed loss as a 0-d device array.
    ``optimizer``, ``l1`` and ``l2`` must have the configuration the step was built
    with, except the learning rate, which may change between calls.
    """

    def __init__(self, mlp: Any, optimizer: Any, l1: float = 0.0, l2: float = 0.0) -> None:
        import jax

        self.mlp, self.optimizer = mlp, optimizer
        self.l1, self.l2 = float(l1), float(l2)
        self.config = _config(mlp, optimizer, l1, l2)
        self._lr: dict[tuple, Any] = {}

        def step(params, buffers, counter, learning_rate, X, Y):
            state = {"t": counter, **buffers}
            opt = _traced_optimizer(optimizer, learning_rate)
            params, state, loss = mlp.train_step(list(params), opt, state, X, Y, self.l1, self.l2)
            return params, {k: state[k] for k in buffers}, state["t"], loss

        self._step = jax.jit(step, donate_argnums=(0, 1, 2))

    def _device_scalar(self, like: Any, value: Any, dtype: str) -> Any:
        """``value`` on ``like``'s device (one counted host-to-device copy)."""
        from .backends import backend_for

        return backend_for(like).asarray(np.asarray(value, dtype=dtype))

    def _learning_rate(self, like: Any, lr: float) -> Any:
        key = (float(lr), str(like.dtype), str(next(iter(like.devices()))))
        dev = self._lr.get(key)
        if dev is None:
            if len(self._lr) > 8:
                self._lr.clear()
            dev = self._lr[key] = self._device_scalar(like, lr, str(like.dtype))
        return dev

    def __call__(self, params: list[Any], optimizer: Any, state: dict[str, Any], X: Any, Y: Any,
                 l1: float = 0.0, l2: float = 0.0) -> tuple[list[Any], dict[str, Any], Any]:
        if _config(self.mlp, optimizer, l1, l2) != self.config:  # another configuration
            return jit_train_step(self.mlp, optimizer, l1, l2)(params, optimizer, state, X, Y, l1, l2)
        t = int(state["t"])
        counter = state.get(_COUNTER)
        if counter is None or state.get(_COUNTER_AT) != t:
            counter = self._device_scalar(params[0], t, "int32")
        buffers = {k: v for k, v in state.items() if isinstance(v, list)}
        lr = self._learning_rate(params[0], optimizer.learning_rate)
        new_params, new_buffers, counter, loss = self._step(list(params), buffers, counter, lr, X, Y)
        params[:] = new_params  # the caller's list, entries rebound (the old ones were donated)
        for k, values in new_buffers.items():
            state[k][:] = values
        state["t"] = t + 1
        state[_COUNTER], state[_COUNTER_AT] = counter, t + 1
        return params, state, loss


_cache: dict[tuple, JitTrainStep] = {}
_cache_lock = threading.Lock()


def jit_train_step(mlp: Any, optimizer: Any, l1: float = 0.0, l2: float = 0.0) -> JitTrainStep:
    """A jit-compiled training step with the signature and results of
    :meth:`MLP.train_step` (``step(params, optimizer, state, X, Y, l1, l2)``).

    Steps are cached per network shape, optimizer type and hyperparameters (except
    the learning rate) and penalties, so asking again costs no compilation.
    """
    key = _config(mlp, optimizer, l1, l2)
    with _cache_lock:
        step = _cache.get(key)
        if step is None:
            if len(_cache) >= 32:
                _cache.pop(next(iter(_cache)))
            step = _cache[key] = JitTrainStep(mlp, optimizer, l1, l2)
    return step
