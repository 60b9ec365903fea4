"""A multilayer perceptron with hand-written backpropagation, in Array API code.

Layout: samples are rows. Layer ``i`` maps ``a_i`` (``n_i`` columns) to
``z_i = a_i @ W_i (+ b_i)`` with ``W_i`` of shape ``(n_i, n_{i+1})`` (scikit-learn's
``coefs_`` layout). Hidden layers apply one activation; the last layer's logits go
through the output layer.

**One parameter buffer.** The parameters ``W_0, (b_0,) W_1, (b_1,) ...`` live in one
contiguous 1-D array; :class:`ParamLayout` cuts it into a view per parameter (a
slice, reshaped: a view on NumPy, CuPy, torch and array-api-strict; under JAX, whose
arrays are immutable, the same slicing inside the compiled step). The gradient is one
buffer of the same layout, and so is every optimizer buffer, so an update is one pass
over one array, and data-parallel training has one buffer to all-reduce.

No autograd of any library is used. Gradients are **summed** over the minibatch, as
in the article; the penalty's gradient is added once per minibatch. Sample weights
(``sample_weight``, one per row of the batch) multiply each row's loss and error term,
so with summed gradients a weight of 2 is the same as the row appearing twice. The matrix
products are written here; every other operation goes through the ops of the arrays'
namespace (:mod:`arraynn.ops`), which may reuse the temporaries this code hands them
but never the caller's arrays: ``X`` and ``Y`` are only read.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any

import array_api_compat
from array_api_compat import array_namespace

from ..ops import ACTIVATIONS, OUTPUTS, Ops, ops_of
from . import random
from .initializers import draw_flat

__all__ = ["MLP", "ParamLayout", "dropout_rates"]


def dropout_rates(dropout: float | Sequence[float] | None, n_hidden: int) -> tuple[float, ...]:
    """One dropout rate per hidden layer from a number (every layer) or a sequence (one
    per hidden layer); each in ``[0, 1)``.

    Raises
    ------
    ValueError
        For a rate outside ``[0, 1)`` or a sequence of the wrong length.
    """
    if dropout is None:
        dropout = 0.0
    if isinstance(dropout, numbers.Real) and not isinstance(dropout, bool):
        rates = (float(dropout),) * n_hidden
    elif not isinstance(dropout, (str, bytes)) and hasattr(dropout, "__iter__"):
        try:  # a sequence or a 1-D array of numbers (parameter grids give arrays)
            rates = tuple(float(r) for r in dropout)
        except (TypeError, ValueError):
            raise ValueError(f"dropout must be a number in [0, 1) or one per hidden layer, got "
                             f"{dropout!r}") from None
        if len(rates) != n_hidden:
            raise ValueError(f"dropout has {len(rates)} rates for {n_hidden} hidden layers; give "
                             "one rate, or one per hidden layer")
    else:
        raise ValueError(f"dropout must be a number in [0, 1) or one per hidden layer, got {dropout!r}")
    for r in rates:
        if not (0.0 <= r < 1.0):
            raise ValueError(f"a dropout rate must be in [0, 1), got {r!r}")
    return rates


class ParamLayout:
    """Where each parameter sits in the flat buffer.

    Parameters
    ----------
    shapes : sequence of tuple of int
        The parameters' shapes, in buffer order.
    """

    def __init__(self, shapes: Sequence[tuple[int, ...]]) -> None:
        self.shapes = [tuple(int(d) for d in s) for s in shapes]
        self.sizes = [math.prod(s) for s in self.shapes]
        self.offsets = [sum(self.sizes[:i]) for i in range(len(self.sizes))]
        #: Elements in the whole buffer.
        self.size = sum(self.sizes)

    def __len__(self) -> int:
        return len(self.shapes)

    def views(self, flat: Any, xp: Any = None) -> list[Any]:
        """One array per parameter, cut from ``flat`` (views where the library has them).
        ``xp``, the namespace, when the caller has it (a training step does)."""
        xp = xp if xp is not None else array_namespace(flat)
        return [xp.reshape(flat[o:o + n], s)
                for o, n, s in zip(self.offsets, self.sizes, self.shapes)]

    def pack(self, arrays: Sequence[Any]) -> Any:
        """The flat buffer holding ``arrays`` (one per parameter, in order)."""
        got = [tuple(a.shape) for a in arrays]
        if got != self.shapes:
            raise ValueError(f"parameter shapes {got} do not match the layout {self.shapes}")
        xp = array_namespace(*arrays)
        return xp.concat([xp.reshape(a, (-1,)) for a in arrays])


class MLP:
    """The shape of a network; its parameters (one flat buffer) are kept outside it.

    Parameters
    ----------
    layer_sizes : sequence of int
        ``(n_features, hidden_1, ..., n_outputs)``; at least two entries.
    activation : {"sigmoid", "tanh", "relu"}
        The hidden layers' activation.
    output : {"sigmoid", "softmax"}
        The output layer (see :mod:`arraynn.ops.generic`).
    bias : bool
        Whether layers have bias vectors (the article's network has none).
    dropout : float or sequence of float
        Inverted dropout after each hidden layer's activation, in training steps only
        (:meth:`loss_and_grad` given a ``seed``): each unit is zeroed with this
        probability and the kept ones are scaled by ``1 / (1 - rate)``, so nothing
        changes at prediction. One rate for every hidden layer, or one per hidden
        layer; 0 (the default) is none. The masks come from
        :func:`arraynn.nn.random.dropout_mask`, keyed by the seed, the optimizer's step
        counter and the layer, so they are the same on every backend.
    input_dropout : float
        Dropout of the input features in training steps, the same way (default 0).
    """

    def __init__(self, layer_sizes: Sequence[int], activation: str = "sigmoid",
                 output: str = "sigmoid", bias: bool = False,
                 dropout: float | Sequence[float] = 0.0, input_dropout: float = 0.0) -> None:
        sizes = tuple(int(s) for s in layer_sizes)
        if len(sizes) < 2 or min(sizes) < 1:
            raise ValueError(f"layer_sizes must have >= 2 positive entries, got {layer_sizes!r}")
        if activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r}; choose one of {list(ACTIVATIONS)}")
        if output not in OUTPUTS:
            raise ValueError(f"unknown output {output!r}; choose one of {list(OUTPUTS)}")
        self.layer_sizes = sizes
        self.activation = activation
        self.output = output
        self.bias = bool(bias)
        #: The dropout rate after each hidden layer (a tuple, one per hidden layer).
        self.dropout = dropout_rates(dropout, len(sizes) - 2)
        #: The dropout rate of the input features.
        self.input_dropout = dropout_rates(input_dropout, 1)[0]
        shapes: list[tuple[int, ...]] = []
        for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
            shapes.append((fan_in, fan_out))
            if self.bias:
                shapes.append((fan_out,))
        #: The parameter layout of the flat buffer.
        self.layout = ParamLayout(shapes)

    def __repr__(self) -> str:
        drop = f", dropout={list(self.dropout)}" if any(self.dropout) else ""
        if self.input_dropout:
            drop += f", input_dropout={self.input_dropout}"
        return (f"MLP({list(self.layer_sizes)}, activation={self.activation!r}, "
                f"output={self.output!r}, bias={self.bias}{drop})")

    @property
    def n_layers(self) -> int:
        """The number of weight matrices."""
        return len(self.layer_sizes) - 1

    def _weight_index(self, i: int) -> int:
        return 2 * i if self.bias else i

    def weights(self, params: Any) -> list[Any]:
        """The weight matrices (views of the flat buffer ``params``)."""
        views = self.layout.views(params)
        return [views[self._weight_index(i)] for i in range(self.n_layers)]

    def biases(self, params: Any) -> list[Any]:
        """The bias vectors (views; an empty list without biases)."""
        if not self.bias:
            return []
        views = self.layout.views(params)
        return [views[2 * i + 1] for i in range(self.n_layers)]

    # ---- parameters -------------------------------------------------------------
    def init_params(self, backend: Any, rng: Any, init: str = "uniform") -> Any:
        """Draw the weights on the host with ``rng`` (layer by layer; biases start at
        zero) and copy the whole flat buffer to ``backend`` in one transfer."""
        weights = [self._weight_index(i) for i in range(self.n_layers)]
        return backend.asarray(draw_flat(rng, self.layout.shapes, weights, init))

    # ---- computation ------------------------------------------------------------
    def _forward(self, ops: Ops, views: list[Any], X: Any,
                 masks: list[Any] | None = None) -> tuple[Any, list[Any], list[Any]]:
        """The logits, each layer's input, and each hidden layer's activation before
        dropout (``masks[i]``, when given and not None, multiplies layer ``i``'s input:
        ``masks[0]`` the features, ``masks[i + 1]`` hidden layer ``i``'s activation)."""
        inputs, activations = [], []
        a = X
        if masks is not None and masks[0] is not None:
            a = a * masks[0]
        last = self.n_layers - 1
        for i in range(self.n_layers):
            inputs.append(a)
            k = self._weight_index(i)
            z = a @ views[k]
            if self.bias:
                z = ops.add_bias(z, views[k + 1])
            a = ops.activate(self.activation, z) if i < last else z
            if i < last:
                activations.append(a)
                if masks is not None and masks[i + 1] is not None:
                    a = a * masks[i + 1]
        return a, inputs, activations

    def dropout_masks(self, X: Any, seed: int, counter: Any, first_row: int = 0) -> list[Any] | None:
        """The dropout masks of one training step on the minibatch ``X``: one per layer,
        multiplying its input (``[0]``: the features, ``[i + 1]``: hidden layer ``i``'s
        activation; None where the rate is 0), or None without dropout. ``counter`` is
        the optimizer's step count (a Python int, or a 0-d device integer inside a
        compiled step). Layer ``j``'s mask is drawn from stream ``STREAMS["dropout"] + j - 1``
        (the features: ``- 1``). ``first_row``: ``X`` is the rows ``first_row ..`` of a
        larger minibatch, whose masks these rows get (a data-parallel rank's slice)."""
        rates = (self.input_dropout, *self.dropout)
        if not any(rates):
            return None
        ops = ops_of(X)
        device = array_api_compat.device(X)
        n = X.shape[0]
        return [None if not rate else
                ops.dropout_mask((n, self.layer_sizes[j]), rate, seed, counter,
                                 random.STREAMS["dropout"] + j - 1, X.dtype, device,
                                 first_row * self.layer_sizes[j])
                for j, rate in enumerate(rates)]

    def forward(self, params: Any, X: Any) -> Any:
        """The logits of ``X``."""
        ops = ops_of(X)
        z, _, _ = self._forward(ops, self.layout.views(params, ops.xp), X)
        return z

    def predict_proba(self, params: Any, X: Any) -> Any:
        """The output layer's probabilities for ``X``."""
        ops = ops_of(X)
        z, _, _ = self._forward(ops, self.layout.views(params, ops.xp), X)
        return ops.probabilities(self.output, z)

    def penalty(self, params: Any, l1: float, l2: float) -> Any:
        """The L1/L2 penalty of the weights (0-d array)."""
        return ops_of(params).penalty(self.weights(params), l1, l2)

    def loss_and_grad(self, params: Any, X: Any, Y: Any, l1: float = 0.0, l2: float = 0.0,
                      grad_buffer: Any = None, sample_weight: Any = None,
                      masks: list[Any] | None = None) -> tuple[Any, Any]:
        """The summed data loss of ``(X, Y)`` (0-d) and the flat gradient of the loss
        plus the penalty.

        ``Y`` is one-hot, in ``X``'s float dtype. ``grad_buffer``, a flat array the
        caller owns, is where fast paths write the gradient (and then return it);
        without it, or on the generic path, the gradient is a new array.
        ``sample_weight``, a 1-D array of ``X``'s dtype and device, weights each row's
        loss and error term (``None``: every row counts once). ``masks``, from
        :meth:`dropout_masks`, are the step's dropout (None: no dropout).
        """
        ops = ops_of(X)
        views = self.layout.views(params, ops.xp)
        z, inputs, activations = self._forward(ops, views, X, masks)
        if sample_weight is None:
            loss, delta = ops.loss_and_delta(self.output, z, Y)
        else:
            loss, delta = ops.weighted_loss_and_delta(self.output, z, Y, sample_weight)
        out = None if grad_buffer is None else self.layout.views(grad_buffer, ops.xp)
        grads: list[Any] = [None] * len(views)
        penalized = bool(l1 or l2)
        for i in range(self.n_layers - 1, -1, -1):
            k = self._weight_index(i)
            W = views[k]
            g = ops.weight_grad(inputs[i], delta, None if out is None else out[k])
            grads[k] = ops.penalize(W, g, l1, l2) if penalized else g
            if self.bias:
                grads[k + 1] = ops.bias_grad(delta, None if out is None else out[k + 1])
            if i > 0:
                g = delta @ W.T
                if masks is not None and masks[i] is not None:
                    g *= masks[i]  # through the dropout (g is this step's own array)
                delta = ops.activate_grad(self.activation, activations[i - 1], g)
        return loss, ops.pack(grads, out, grad_buffer)

    def train_step(self, params: Any, optimizer: Any, state: dict[str, Any], X: Any, Y: Any,
                   learning_rate: Any, l1: float = 0.0, l2: float = 0.0,
                   grad_buffer: Any = None, sample_weight: Any = None, seed: int | None = None
                   ) -> tuple[Any, dict[str, Any], Any]:
        """One minibatch: forward, backward, update.

        Returns ``(params, state, loss)``: the updated flat parameters (the same buffer,
        updated in place, where the library allows), the optimizer state and the
        summed (weighted, with ``sample_weight``) data loss of the batch as a 0-d
        device array (nothing is copied to the host).

        With dropout, ``seed`` (an int) turns it on: the masks are drawn from the seed
        and the optimizer's step counter ``state["t"]`` (:meth:`dropout_masks`).
        """
        masks = None if seed is None else self.dropout_masks(X, seed, state["t"])
        loss, grads = self.loss_and_grad(params, X, Y, l1, l2, grad_buffer,
                                         sample_weight=sample_weight, masks=masks)
        params, state = optimizer.update(params, grads, state, learning_rate)
        return params, state, loss

    def one_hot(self, labels: Any, dtype: Any) -> Any:
        """One-hot rows of the output layer's width for integer ``labels``."""
        return ops_of(labels).one_hot(labels, self.layer_sizes[-1], dtype)
