"""Batch normalisation with a hand-written backward pass, in Array API code.

:class:`BatchNorm` normalises each channel (after a convolution: over the batch, height
and width) or each feature (after a dense layer: over the batch) to zero mean and unit
variance with the minibatch's statistics in a training step, then scales and shifts by
its parameters ``gamma`` (starting at 1) and ``beta`` (at 0), which the optimizer trains
and L1/L2 leave alone. At prediction it uses running statistics, which are *state*, not
parameters: the network keeps them in a flat buffer of their own (``state["stats"]`` of
the training state, saved in checkpoints and model files), and a training step returns
them updated, ``running = momentum * running + (1 - momentum) * batch`` (the variance
unbiased, ``m / (m - 1)`` times the batch's, as PyTorch keeps it).

The batch statistics are sums: per channel ``sum(x - s)`` and ``sum((x - s)**2)`` and
the count, shifted by the running mean ``s`` (the same on every rank) so the variance
``E[(x - s)**2] - E[x - s]**2`` does not cancel once ``s`` is near the mean. Under
data-parallel training the step passes ``reduce``, which sums an array over the ranks:
the forward pass reduces the sums once, the backward pass the two sums its input
gradient needs (of ``dy`` and ``dy * xhat``) once, so N ranks normalise with the global
minibatch's statistics and train what one process trains (to rounding).

A BatchNorm on images followed by a :class:`~arraynn.nn.conv.MaxPool2D` runs, in a training
step on a backend whose ops fuse the two (:meth:`arraynn.ops.Ops.fuses_norm_pool`: NumPy
with Numba), as one pass (:meth:`BatchNorm.forward_max_pooled`, which
:class:`arraynn.nn.Sequential` calls for the pair): its cache keeps the input instead of
the normalised images, and its backward pass takes the pooled output's gradient back
through both layers. The numbers are the two layers' (the gradient's sums to rounding).
"""

from __future__ import annotations

import math
from typing import Any

from ..ops import Ops
from .layers import Layer, Shape

__all__ = ["BatchNorm"]


class BatchNorm(Layer):
    """Batch normalisation per channel (images) or per feature (rows).

    Parameters
    ----------
    momentum : float in [0, 1), default 0.9
        The share of the running statistics kept at each training step (Keras's
        convention; PyTorch's ``momentum=0.1`` is ``momentum=0.9`` here).
    epsilon : float > 0, default 1e-5
        Added to the variance before its square root.
    """

    kind = "batchnorm"

    def __init__(self, momentum: float = 0.9, epsilon: float = 1e-5) -> None:
        try:
            m, e = float(momentum), float(epsilon)
        except (TypeError, ValueError):
            raise ValueError(f"BatchNorm needs numbers, got momentum={momentum!r}, "
                             f"epsilon={epsilon!r}") from None
        if isinstance(momentum, bool) or not 0.0 <= m < 1.0:
            raise ValueError(f"BatchNorm(momentum) needs a number in [0, 1), got {momentum!r}")
        if isinstance(epsilon, bool) or not e > 0.0:
            raise ValueError(f"BatchNorm(epsilon) needs a positive number, got {epsilon!r}")
        self.momentum, self.epsilon = m, e

    def _hyper(self) -> dict[str, Any]:
        return {"momentum": self.momentum, "epsilon": self.epsilon}

    def _channels(self, input_shape: Shape) -> int:
        if len(input_shape) not in (1, 3):
            raise ValueError(f"BatchNorm takes flat features or images (channels, height, width), got "
                             f"samples of shape {tuple(input_shape)}")
        return int(input_shape[0])

    def param_shapes(self, input_shape: Shape) -> list[Shape]:
        c = self._channels(input_shape)
        return [(c,), (c,)]  # gamma, beta

    def initial_params(self, input_shape: Shape) -> list[float | None]:
        """The parameters' starting values: gamma 1, beta 0."""
        return [1.0, 0.0]

    def state_shapes(self, input_shape: Shape) -> list[Shape]:
        c = self._channels(input_shape)
        return [(c,), (c,)]  # running mean, running variance

    def initial_state(self, input_shape: Shape) -> list[float]:
        """The running statistics' starting values: mean 0, variance 1."""
        return [0.0, 1.0]

    def forward(self, ops: Ops, params: list[Any], x: Any, stats: list[Any] | None = None,
                training: bool = True, reduce: Any = None, **step: Any) -> tuple[Any, Any]:
        xp = ops.xp
        gamma, beta = params
        if not training:
            if stats is None:
                raise ValueError("BatchNorm at prediction needs the running statistics (stats=)")
            mean, var = stats
            return ops.batch_norm_infer(x, mean, gamma / xp.sqrt(var + self.epsilon), beta), None
        shift, mean_s, var, inv, m = self._batch_statistics(ops, gamma, x, stats, reduce)
        y, xhat = ops.batch_norm_apply(x, shift, mean_s, inv, gamma, beta)
        return y, (xhat, inv, mean_s + shift, var, m, reduce, None)

    def _batch_statistics(self, ops: Ops, gamma: Any, x: Any, stats: list[Any] | None,
                          reduce: Any) -> tuple[Any, Any, Any, Any, Any]:
        """The training step's ``(shift, mean - shift, var, 1 / sqrt(var + epsilon), count)``."""
        xp = ops.xp
        c = gamma.shape[0]
        shift = stats[0] if stats is not None else xp.zeros_like(gamma)
        count = xp.ones((1,), dtype=x.dtype, device=_device(x)) * (math.prod(x.shape) // c)
        sums = xp.concat([ops.batch_norm_sums(x, shift), count])
        if reduce is not None:
            sums = reduce(sums)
        m = sums[2 * c:]
        mean_s = sums[:c] / m
        var = xp.maximum(sums[c:2 * c] / m - mean_s * mean_s, xp.zeros_like(mean_s))
        return shift, mean_s, var, 1.0 / xp.sqrt(var + self.epsilon), m

    def forward_max_pooled(self, ops: Ops, params: list[Any], x: Any, win: Any,
                           stats: list[Any] | None = None, reduce: Any = None) -> tuple[Any, Any]:
        """A training step's forward pass of this layer and the max pooling under ``win``
        after it, as one (:meth:`arraynn.ops.Ops.batch_norm_max_pool`, where the ops
        :meth:`~arraynn.ops.Ops.fuses_norm_pool`): the pooled output and this layer's
        cache, which keeps the input instead of the normalised images; :meth:`backward`
        then takes the pooled output's gradient and goes back through both."""
        gamma, beta = params
        shift, mean_s, var, inv, m = self._batch_statistics(ops, gamma, x, stats, reduce)
        y, arg = ops.batch_norm_max_pool(x, shift, mean_s, inv, gamma, beta, win)
        return y, (None, inv, mean_s + shift, var, m, reduce, (x, shift, mean_s, arg, win))

    def updated_state(self, ops: Ops, stats: list[Any], cache: Any) -> list[Any]:
        """The running statistics after a training step whose forward pass made ``cache``."""
        xp = ops.xp
        _, _, mean, var, m = cache[:5]
        unbiased = var * (m / xp.maximum(m - 1.0, xp.ones_like(m)))
        k = self.momentum
        return [k * stats[0] + (1.0 - k) * mean, k * stats[1] + (1.0 - k) * unbiased]

    def backward(self, ops: Ops, params: list[Any], cache: Any, dy: Any, grads: list[Any],
                 need_dx: bool = True, **step: Any) -> Any:
        xhat, inv, _, _, m, reduce, pooled = cache
        c = params[0].shape[0]
        if pooled is not None:  # dy is the gradient of forward_max_pooled's pooled output
            x, shift, mean_s, arg, win = pooled
            sums = ops.batch_norm_max_pool_grad_sums(dy, arg, x, shift, mean_s, inv, win)
        else:
            sums = ops.batch_norm_grad_sums(dy, xhat)
        g_beta, g_gamma = sums[:c], sums[c:]
        grads[0], grads[1] = ops.keep(g_gamma, grads[0]), ops.keep(g_beta, grads[1])
        if not need_dx:
            return None
        if reduce is not None:  # the global minibatch's sums
            sums = reduce(sums)
        scale = params[0] * inv / m
        if pooled is not None:
            return ops.batch_norm_max_pool_input_grad(dy, arg, x, shift, mean_s, inv, win, scale, m, sums[:c],
                                                      sums[c:])
        return ops.batch_norm_input_grad(dy, xhat, scale, m, sums[:c], sums[c:])


def _device(x: Any) -> Any:
    import array_api_compat

    return array_api_compat.device(x)
