"""Layers with hand-written backward passes, in Array API code.

A layer is a *specification*: it holds its hyperparameters and no arrays, so
scikit-learn can clone it and a model file can store it as JSON (:meth:`Layer.config`,
:func:`layer_from_config`). A network (:class:`arraynn.nn.Sequential`) builds its
layers for an input shape, lays their parameters out in its one flat buffer (in layer
order), and runs them:

``output_shape(input_shape)``
    The shape of one sample after the layer (shapes exclude the batch dimension).
``param_shapes(input_shape)``
    The shapes of the layer's parameters, in buffer order; ``weight_params`` says which
    of them are weight matrices (drawn by the initializer and penalized by L1/L2; the
    others, biases, start at zero and are not penalized).
``forward(ops, params, x) -> (y, cache)``
    ``params`` are the layer's views of the flat parameter buffer, ``x`` its input,
    which the layer may consume only where it says so (see below); ``cache`` is what
    the backward pass needs: an explicit cache rather than a closure, so a layer can be
    tested on its own.
``backward(ops, params, cache, dy, grads, need_dx) -> dx``
    ``dy``, the loss's gradient with respect to ``y``, is the caller's temporary and
    may be consumed. ``grads`` is a list with one slot per parameter: the layer puts
    each parameter's gradient there (an ``out=`` view of the flat gradient buffer
    when the slot holds one: fast paths write into it). Returns the input's gradient,
    or ``None`` when ``need_dx`` is false (the first layer's).

``initial_params``, ``state_shapes``, ``initial_state``, ``updated_state``
    Optional: constant starting values of non-weight parameters (BatchNorm's gamma is
    1), and state kept across steps that is not trained (BatchNorm's running
    statistics): its shapes and starting values in the network's state buffer, and its
    value after a training step. ``forward`` then also receives ``stats`` (the layer's
    state views) and ``training`` (False at prediction).

Every elementwise operation goes through the ``ops`` seam (:mod:`arraynn.ops`), the
matrix products are written here, and no library's autograd is used. The operations
and their order are the ones :class:`arraynn.nn.MLP` has always run, so a dense stack
of layers trains to the same weights bit for bit.

Dropout layers do not draw their own masks: the network draws each from its seed, the
optimizer's step counter and the layer's stream (:func:`arraynn.nn.random.dropout_mask`,
the same bits on every backend) and passes it as the keyword ``mask`` (see
:class:`Dropout`); the other step-wide values (the L1/L2 penalties of :class:`Dense`)
arrive as keywords too.
"""

from __future__ import annotations

import math
from typing import Any

from ..ops import ACTIVATIONS, Ops

__all__ = ["LAYERS", "Activation", "AvgPool2D", "BatchNorm", "Conv2D", "Dense", "Dropout", "Flatten",
           "GlobalAvgPool2D", "Layer", "MaxPool2D", "ReLU", "Sigmoid", "Tanh", "layer_from_config",
           "windowed"]

Shape = tuple[int, ...]


class Layer:
    """The protocol of a layer (see the module docstring); the defaults fit a layer
    without parameters that keeps the shape."""

    #: The name a model file stores (``config()["layer"]``).
    kind = "layer"
    #: Indices into ``param_shapes`` of the weight matrices (the others are biases).
    weight_params: tuple[int, ...] = ()

    def config(self) -> dict[str, Any]:
        """The layer as JSON: ``{"layer": kind, **hyperparameters}``."""
        return {"layer": self.kind, **self._hyper()}

    def _hyper(self) -> dict[str, Any]:
        return {}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self._hyper().items())
        return f"{type(self).__name__}({args})"

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.config() == self.config()

    def __hash__(self) -> int:
        return hash(repr(self))

    # scikit-learn's clone deep-copies parameters that are not estimators; a layer is
    # immutable in use, so a copy is the layer again, with the same hyperparameters.
    def __deepcopy__(self, memo: dict[int, Any]) -> Layer:
        return layer_from_config(self.config())

    def output_shape(self, input_shape: Shape) -> Shape:
        return tuple(input_shape)

    def param_shapes(self, input_shape: Shape) -> list[Shape]:
        return []

    def initial_params(self, input_shape: Shape) -> list[float | None]:
        """Constant starting values of the parameters, in order (None: drawn by the
        initializer if a weight matrix, else 0); empty: the same for every parameter."""
        return []

    def state_shapes(self, input_shape: Shape) -> list[Shape]:
        """The shapes of the layer's state (kept across steps, not trained: BatchNorm's
        running statistics), in the network's state buffer."""
        return []

    def initial_state(self, input_shape: Shape) -> list[float]:
        """The state's starting values, one constant per state array."""
        return []

    def updated_state(self, ops: Ops, stats: list[Any], cache: Any) -> list[Any]:
        """The state after a training step whose forward pass made ``cache``."""
        return []

    def forward(self, ops: Ops, params: list[Any], x: Any, **step: Any) -> tuple[Any, Any]:
        raise NotImplementedError

    def backward(self, ops: Ops, params: list[Any], cache: Any, dy: Any, grads: list[Any],
                 need_dx: bool = True, **step: Any) -> Any:
        raise NotImplementedError


class Dense(Layer):
    """A fully connected layer, ``y = x @ W (+ b)`` with ``W`` of shape ``(in, units)``
    (scikit-learn's ``coefs_`` layout).

    Parameters
    ----------
    units : int
        The number of outputs.
    bias : bool, default True
        Whether to add a bias vector (it starts at zero).
    """

    kind = "dense"

    def __init__(self, units: int, bias: bool = True) -> None:
        if isinstance(units, bool) or not isinstance(units, int) or units < 1:
            raise ValueError(f"Dense(units) needs a positive integer, got {units!r}")
        self.units = int(units)
        self.bias = bool(bias)
        self.weight_params = (0,)

    def _hyper(self) -> dict[str, Any]:
        return {"units": self.units, "bias": self.bias}

    def output_shape(self, input_shape: Shape) -> Shape:
        if len(input_shape) != 1:
            raise ValueError(f"Dense takes flat features, got samples of shape {tuple(input_shape)}; "
                             "put a Flatten() before it")
        return (self.units,)

    def param_shapes(self, input_shape: Shape) -> list[Shape]:
        self.output_shape(input_shape)  # flat features, or a clear error
        return [(int(input_shape[0]), self.units)] + ([(self.units,)] if self.bias else [])

    def forward(self, ops: Ops, params: list[Any], x: Any, **step: Any) -> tuple[Any, Any]:
        z = x @ params[0]
        if self.bias:
            z = ops.add_bias(z, params[1])
        return z, x

    def backward(self, ops: Ops, params: list[Any], cache: Any, dy: Any, grads: list[Any],
                 need_dx: bool = True, l1: float = 0.0, l2: float = 0.0, **step: Any) -> Any:
        W = params[0]
        g = ops.weight_grad(cache, dy, grads[0])
        grads[0] = ops.penalize(W, g, l1, l2) if (l1 or l2) else g
        if self.bias:
            grads[1] = ops.bias_grad(dy, grads[1])
        return dy @ W.T if need_dx else None


class Activation(Layer):
    """An elementwise activation (``name`` one of :data:`arraynn.ops.ACTIVATIONS`); its
    forward pass consumes its input, its backward pass keeps only the output."""

    kind = "activation"

    def __init__(self, name: str) -> None:
        if name not in ACTIVATIONS:
            raise ValueError(f"unknown activation {name!r}; choose one of {list(ACTIVATIONS)}")
        self.name = name

    def _hyper(self) -> dict[str, Any]:
        return {"name": self.name}

    def forward(self, ops: Ops, params: list[Any], x: Any, **step: Any) -> tuple[Any, Any]:
        a = ops.activate(self.name, x)
        return a, a

    def backward(self, ops: Ops, params: list[Any], cache: Any, dy: Any, grads: list[Any],
                 need_dx: bool = True, **step: Any) -> Any:
        return ops.activate_grad(self.name, cache, dy) if need_dx else None


class _Named(Activation):
    """An activation with no hyperparameter: its ``kind`` is its name."""

    def __init__(self) -> None:
        super().__init__(self.kind)

    def _hyper(self) -> dict[str, Any]:
        return {}


class ReLU(_Named):
    """``max(x, 0)``."""

    kind = "relu"


class Sigmoid(_Named):
    """The logistic function ``1 / (1 + exp(-x))`` (computed as ``0.5 tanh(x/2) + 0.5``)."""

    kind = "sigmoid"


class Tanh(_Named):
    """``tanh(x)``."""

    kind = "tanh"


class Dropout(Layer):
    """Inverted dropout in training steps: each element is zeroed with probability
    ``rate`` and the kept ones are scaled by ``1 / (1 - rate)``; the identity at
    prediction. The network draws the mask (from its seed, the optimizer's step counter
    and the layer's stream) and passes it as the keyword ``mask``; without one (at
    prediction, or a rate of 0) the layer passes its input through.

    Parameters
    ----------
    rate : float in [0, 1)
    """

    kind = "dropout"

    def __init__(self, rate: float) -> None:
        try:
            r = float(rate)
        except (TypeError, ValueError):
            raise ValueError(f"Dropout(rate) needs a number in [0, 1), got {rate!r}") from None
        if isinstance(rate, bool) or not (0.0 <= r < 1.0):
            raise ValueError(f"Dropout(rate) needs a number in [0, 1), got {rate!r}")
        self.rate = r

    def _hyper(self) -> dict[str, Any]:
        return {"rate": self.rate}

    def forward(self, ops: Ops, params: list[Any], x: Any, mask: Any = None, **step: Any
                ) -> tuple[Any, Any]:
        if mask is None:
            return x, None
        return x * mask, mask

    def backward(self, ops: Ops, params: list[Any], cache: Any, dy: Any, grads: list[Any],
                 need_dx: bool = True, **step: Any) -> Any:
        if not need_dx:
            return None
        if cache is not None:
            dy *= cache  # dy is the caller's temporary
        return dy


class Flatten(Layer):
    """Flatten each sample to one row, in C order (``(channels, height, width)`` to
    ``channels * height * width`` features)."""

    kind = "flatten"

    def output_shape(self, input_shape: Shape) -> Shape:
        return (math.prod(int(d) for d in input_shape),)

    def forward(self, ops: Ops, params: list[Any], x: Any, **step: Any) -> tuple[Any, Any]:
        if x.ndim == 2:
            return x, None
        return ops.xp.reshape(x, (x.shape[0], math.prod(x.shape[1:]))), tuple(x.shape)

    def backward(self, ops: Ops, params: list[Any], cache: Any, dy: Any, grads: list[Any],
                 need_dx: bool = True, **step: Any) -> Any:
        if not need_dx:
            return None
        return dy if cache is None else ops.xp.reshape(dy, cache)


from .conv import AvgPool2D, Conv2D, GlobalAvgPool2D, MaxPool2D  # noqa: E402  (they build on Layer)
from .norm import BatchNorm  # noqa: E402

#: The layers a model file may name, by ``kind``.
_KINDS: tuple[type[Layer], ...] = (Dense, Activation, ReLU, Sigmoid, Tanh, Dropout, Flatten, Conv2D,
                                   MaxPool2D, AvgPool2D, GlobalAvgPool2D, BatchNorm)
LAYERS: dict[str, type[Layer]] = {c.kind: c for c in _KINDS}


def windowed(layers: Any) -> bool:
    """Whether any of ``layers`` slides windows over images (convolution, pooling), so
    the network's input is images rather than flat rows."""
    return any(isinstance(layer, (Conv2D, MaxPool2D, AvgPool2D, GlobalAvgPool2D)) for layer in layers)


def layer_from_config(config: dict[str, Any]) -> Layer:
    """The layer of :meth:`Layer.config`'s JSON.

    Raises
    ------
    ValueError
        An unknown ``"layer"`` name (listing the known ones) or bad hyperparameters.
    """
    if not isinstance(config, dict) or "layer" not in config:
        raise ValueError(f"a layer's description is a JSON object with a 'layer' name, got {config!r:.80}")
    kind = config["layer"]
    cls = LAYERS.get(kind)
    if cls is None:
        raise ValueError(f"unknown layer {kind!r}; arraynn knows {sorted(LAYERS)}")
    args = {k: v for k, v in config.items() if k != "layer"}
    try:
        return cls(**args)
    except TypeError as exc:
        raise ValueError(f"bad description of a {kind!r} layer {config!r:.80}: {exc}") from None
