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
so with summed gradients a weight of 2 is the same as the row appearing twice.

:class:`MLP` is the dense stack of :mod:`arraynn.nn.layers` run by
:class:`arraynn.nn.Sequential`: the matrix products are written in the layers, every
other operation goes through the ops of the arrays' namespace (:mod:`arraynn.ops`),
which may reuse the temporaries this code hands them but never the caller's arrays:
``X`` and ``Y`` are only read. The same operations in the same order as before it was
built from layers, so it trains to the same weights bit for bit (tested against weights
recorded then).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any

from array_api_compat import array_namespace

from ..ops import ACTIVATIONS, OUTPUTS, Ops
from .layers import Activation, Dense, Dropout
from .sequential import Sequential

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


class MLP(Sequential):
    """The dense stack: :class:`~arraynn.nn.Sequential` of ``Dense`` layers with one
    hidden activation (and dropout), its parameters (one flat buffer) kept outside it.

    The layers are ``[Dropout(input_dropout)] + [Dense(h, bias), Activation(activation),
    Dropout(rate)] per hidden layer + [Dense(n_outputs, bias)]`` (a Dropout only where its
    rate is above 0), so the parameters are ``W_0, (b_0,) W_1, ...`` in that order, and a
    model trains to the same weights it always has.

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

    Notes
    -----
    :meth:`dropout_masks` gives one mask per layer *input* (``[0]``: the features,
    ``[i + 1]``: hidden layer ``i``'s activation), the form :meth:`loss_and_grad` takes.
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
        self.bias = bool(bias)
        #: The dropout rate after each hidden layer (a tuple, one per hidden layer).
        self.dropout = dropout_rates(dropout, len(sizes) - 2)
        #: The dropout rate of the input features.
        self.input_dropout = dropout_rates(input_dropout, 1)[0]
        stack: list[Any] = []
        #: Per layer input (features, then each hidden activation): the position of its
        #: Dropout layer in ``layers``, or None.
        self._mask_at: list[int | None] = []
        for i, rate in enumerate((self.input_dropout, *self.dropout)):
            if i > 0:
                stack += [Dense(sizes[i], self.bias), Activation(activation)]
            self._mask_at.append(len(stack) if rate else None)
            if rate:
                stack.append(Dropout(rate))
        stack.append(Dense(sizes[-1], self.bias))
        super().__init__(stack, (sizes[0],), output)

    def __repr__(self) -> str:
        drop = f", dropout={list(self.dropout)}" if any(self.dropout) else ""
        if self.input_dropout:
            drop += f", input_dropout={self.input_dropout}"
        return (f"MLP({list(self.layer_sizes)}, activation={self.activation!r}, "
                f"output={self.output!r}, bias={self.bias}{drop})")

    # ---- the masks per layer input -------------------------------------------------
    def dropout_masks(self, X: Any, seed: int, counter: Any, first_row: int = 0) -> list[Any] | None:
        """The dropout masks of one training step on the minibatch ``X``: one per layer
        input, multiplying it (``[0]``: the features, ``[i + 1]``: hidden layer ``i``'s
        activation; None where the rate is 0), or None without dropout. ``counter`` is
        the optimizer's step count (a Python int, or a 0-d device integer inside a
        compiled step). Layer ``j``'s mask is drawn from stream ``STREAMS["dropout"] + j - 1``
        (the features: ``- 1``). ``first_row``: ``X`` is the rows ``first_row ..`` of a
        larger minibatch, whose masks these rows get (a data-parallel rank's slice)."""
        per_layer = super().dropout_masks(X, seed, counter, first_row)
        if per_layer is None:
            return None
        return [None if at is None else per_layer[at] for at in self._mask_at]

    def _per_layer(self, masks: list[Any] | None) -> list[Any] | None:
        if masks is None:
            return None
        per_layer: list[Any] = [None] * len(self.layers)
        for at, mask in zip(self._mask_at, masks):
            if at is not None:
                per_layer[at] = mask
        return per_layer

    def _forward(self, ops: Ops, views: list[Any], X: Any,
                 masks: list[Any] | None = None) -> tuple[Any, list[Any], list[Any]]:
        """The logits, each dense layer's input, and each hidden layer's activation before
        dropout (``masks`` as :meth:`dropout_masks` gives them)."""
        z, caches = self._run(ops, self._layer_views(views), X, self._per_layer(masks))
        inputs = [c for layer, c in zip(self.layers, caches) if isinstance(layer, Dense)]
        activations = [c for layer, c in zip(self.layers, caches) if isinstance(layer, Activation)]
        return z, inputs, activations

    def loss_grad_and_state(self, params: Any, X: Any, Y: Any, l1: float = 0.0, l2: float = 0.0,
                            grad_buffer: Any = None, sample_weight: Any = None,
                            masks: list[Any] | None = None, stats: Any = None, reduce: Any = None
                            ) -> tuple[Any, Any, Any]:
        """:meth:`Sequential.loss_grad_and_state` (and so ``loss_and_grad`` and
        ``train_step``), with ``masks`` one per layer input, as :meth:`dropout_masks`
        gives them."""
        return super().loss_grad_and_state(params, X, Y, l1, l2, grad_buffer, sample_weight,
                                           self._per_layer(masks), stats, reduce)
