"""The training step compiled with ``jax.jit``, for the JAX backend.

:func:`jit_train_step` wraps the very code the other backends run eagerly,
:meth:`arraynn.nn.MLP.train_step` with the generic ops and the optimizers of
:mod:`arraynn.nn.optimizers`, in one ``jax.jit``: XLA then fuses the elementwise work
that eager JAX dispatches operation by operation. The wrapper has the signature and
the results of :meth:`MLP.train_step`, so the epoch loop runs it in place of the
eager step (the JAX backend's ``compiled_step`` returns :func:`train_step_for`).

Under ``jax.jit`` a step must be a pure function of arrays, so the wrapper

* passes the flat parameter buffer, the optimizer's buffers (Adam's ``m`` and ``v``,
  the momentum's ``velocity``) and a step counter into the compiled step and takes the
  new ones back, donating the old ones (``donate_argnums``) so XLA updates them in
  place; the caller's state dict gets the new buffers, as the eager step does;
* keeps **a step counter on the device**, next to the buffers: Adam's bias corrections
  depend on the step number ``t``, and passing ``t`` as a Python number would either
  copy a new scalar to the device every step or, marked static, compile a new step
  every step. Given a device counter, the optimizer's own update computes the
  corrections on the device (:func:`arraynn.nn.optimizers.one_minus_power`). The
  host's ``state["t"]`` is still counted on the host, so saving, loading and the
  eager path see the usual integer;
* passes the learning rate as a device scalar, uploaded once whenever it changes (a
  schedule changes it once per epoch), never per step. The other hyperparameters
  (betas, epsilon, momentum, the L1/L2 penalties) are constants of the compiled step.

The device counter is uploaded from ``state["t"]`` the first time a state is seen
(or after ``state["t"]`` was changed by other code, e.g. a loaded checkpoint); after
that a step copies nothing between host and device. Compiled steps are cached per
network shape and hyperparameters, so refitting or ``partial_fit`` does not compile
again (XLA compiles once per batch shape: a smaller last batch adds one).

``ARRAYNN_JAX_JIT=0`` in the environment, or :func:`set_jit`, makes
:func:`train_step_for` return ``None``, so the epoch loop runs the eager step (for
measuring one against the other).
"""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Callable
from typing import Any

import numpy as np

__all__ = ["JitTrainStep", "jit_enabled", "jit_train_step", "set_jit", "train_step_for"]

_enabled = os.environ.get("ARRAYNN_JAX_JIT", "1").strip().lower() not in ("0", "false", "no", "off")

# Private entries the jitted step keeps in the optimizer's state dict (never saved: only
# the optimizer's buffers are): the device step counter, and the host step it matches.
_COUNTER, _COUNTER_AT = "_t_device", "_t_device_at"


def set_jit(enabled: bool) -> None:
    """Let :func:`train_step_for` return the jitted step (the default) or ``None``."""
    global _enabled
    _enabled = bool(enabled)


def jit_enabled() -> bool:
    """Whether :func:`train_step_for` returns the jitted step."""
    return _enabled


def train_step_for(mlp: Any, optimizer: Any, l1: float = 0.0, l2: float = 0.0,
                   seed: int | None = None) -> Callable[..., Any] | None:
    """The compiled training step to run on JAX (:func:`jit_train_step`), or ``None``
    (run the eager :meth:`MLP.train_step`) when jit is turned off. With ``seed`` (and
    dropout) the step draws its masks from it: call it with the same ``seed=``, or
    without one (it is the step's own)."""
    if not _enabled:
        return None
    step = jit_train_step(mlp, optimizer, l1, l2, seed)
    return functools.partial(step, seed=seed) if seed is not None else step


def _config(mlp: Any, optimizer: Any, l1: float, l2: float, seed: int | None = None) -> tuple:
    hyper = tuple(sorted(optimizer.hyperparameters().items()))
    if not hasattr(mlp, "layer_sizes"):  # a Sequential of any layers: keyed by its description
        seed = None if seed is None or not mlp.has_dropout else int(seed)
        return (mlp.spec, type(optimizer), hyper, float(l1), float(l2), seed)
    dropout = (getattr(mlp, "input_dropout", 0.0), *getattr(mlp, "dropout", ()))
    # the dropout seed is a constant of the step: it only matters with dropout
    seed = None if seed is None or not any(dropout) else int(seed)
    return (mlp.layer_sizes, mlp.activation, mlp.output, mlp.bias, dropout, type(optimizer),
            hyper, float(l1), float(l2), seed)


class JitTrainStep:
    """A jit-compiled :meth:`MLP.train_step` (see the module docstring).

    Call it as ``step(params, optimizer, state, X, Y, learning_rate, l1, l2)`` (and
    ``sample_weight=`` for weighted rows: ``None`` and an array compile apart); it
    returns ``(params, state, loss)`` with ``params`` the new flat buffer, ``state`` the
    caller's (updated) dict and ``loss`` the batch's summed loss as a 0-d device array.
    ``optimizer``, ``l1`` and ``l2`` must have the configuration the step was built
    with; the learning rate may change between calls. ``seed`` (with dropout) is
    given as a keyword; the dropout masks are drawn on the device from it and the
    device step counter, so a step is compiled once, not once per step.
    """

    def __init__(self, mlp: Any, optimizer: Any, l1: float = 0.0, l2: float = 0.0,
                 seed: int | None = None) -> None:
        import jax

        self.mlp, self.optimizer = mlp, optimizer
        self.l1, self.l2 = float(l1), float(l2)
        self.config = _config(mlp, optimizer, l1, l2, seed)
        self._lr: dict[tuple, Any] = {}
        noise_seed = self.config[-1]

        def step(params, buffers, counter, learning_rate, X, Y, sample_weight):
            state = {"t": counter, **buffers}
            params, state, loss = mlp.train_step(params, optimizer, state, X, Y, learning_rate,
                                                 self.l1, self.l2, sample_weight=sample_weight,
                                                 seed=noise_seed)
            return params, {k: state[k] for k in buffers}, state["t"], loss

        self._step = jax.jit(step, donate_argnums=(0, 1, 2))

    def _device_scalar(self, like: Any, value: Any, dtype: str) -> Any:
        """``value`` on ``like``'s device (one counted host-to-device copy)."""
        from ..backends import backend_for

        return backend_for(like).asarray(np.asarray(value, dtype=dtype))

    def _learning_rate(self, like: Any, lr: float) -> Any:
        key = (float(lr), str(like.dtype), str(next(iter(like.devices()))))
        dev = self._lr.get(key)
        if dev is None:
            if len(self._lr) > 8:
                self._lr.clear()
            dev = self._lr[key] = self._device_scalar(like, lr, str(like.dtype))
        return dev

    def __call__(self, params: Any, optimizer: Any, state: dict[str, Any], X: Any, Y: Any,
                 learning_rate: float, l1: float = 0.0, l2: float = 0.0,
                 sample_weight: Any = None, seed: int | None = None
                 ) -> tuple[Any, dict[str, Any], Any]:
        if _config(self.mlp, optimizer, l1, l2, seed) != self.config:  # another configuration
            step = jit_train_step(self.mlp, optimizer, l1, l2, seed)
            return step(params, optimizer, state, X, Y, learning_rate, l1, l2,
                        sample_weight=sample_weight, seed=seed)
        t = int(state["t"])
        counter = state.get(_COUNTER)
        if counter is None or state.get(_COUNTER_AT) != t:
            counter = self._device_scalar(params, t, "int32")
        buffers = {k: state[k] for k in (*optimizer.buffers, *(("stats",) if "stats" in state else ()))}
        lr = self._learning_rate(params, learning_rate)
        params, new_buffers, counter, loss = self._step(params, buffers, counter, lr, X, Y,
                                                      sample_weight)
        state.update(new_buffers)  # the old buffers were donated
        state["t"] = t + 1
        state[_COUNTER], state[_COUNTER_AT] = counter, t + 1
        return params, state, loss


_cache: dict[tuple, JitTrainStep] = {}
_cache_lock = threading.Lock()


def jit_train_step(mlp: Any, optimizer: Any, l1: float = 0.0, l2: float = 0.0,
                   seed: int | None = None) -> JitTrainStep:
    """A jit-compiled training step with the signature and results of
    :meth:`MLP.train_step` (``step(params, optimizer, state, X, Y, learning_rate, l1, l2,
    seed=None)``).

    Steps are cached per network shape (dropout included), optimizer type and
    hyperparameters, penalties and, with dropout, seed, so asking again costs no
    compilation.
    """
    key = _config(mlp, optimizer, l1, l2, seed)
    with _cache_lock:
        step = _cache.get(key)
        if step is None:
            if len(_cache) >= 32:
                _cache.pop(next(iter(_cache)))
            step = _cache[key] = JitTrainStep(mlp, optimizer, l1, l2, seed)
    return step
