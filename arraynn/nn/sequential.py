"""A network as a list of layers with an output head, in one flat parameter buffer.

:class:`Sequential` builds its layers (:mod:`arraynn.nn.layers`) for the shape of one
input sample, lays their parameters out in one contiguous buffer in layer order
(:class:`arraynn.nn.mlp.ParamLayout`: a view per parameter), and runs them: the forward
pass keeps each layer's cache, the loss head (``"softmax"``: categorical cross-entropy;
``"sigmoid"``: the article's independent sigmoids) gives the error term of the logits,
and the backward pass walks the layers back, each writing its parameters' gradients
into their views of the flat gradient buffer. Its step signatures are
:class:`arraynn.nn.MLP`'s (``loss_and_grad``, ``train_step``, ``forward``,
``predict_proba``, ``dropout_masks``), so the epoch loop, the JAX jit step and
data-parallel training run it unchanged; :class:`~arraynn.nn.MLP` *is* the dense stack
of this class, and trains to the weights it always has.

State: a layer may keep arrays across steps that are not parameters (BatchNorm's running
statistics, :mod:`arraynn.nn.norm`). They live in a flat buffer of their own
(:attr:`Sequential.state_layout`, :meth:`Sequential.init_state`), which the training state
holds as ``state["stats"]``: :meth:`Sequential.train_step` reads it and puts the updated one
back, :meth:`Sequential.loss_grad_and_state` returns it, and prediction takes it as
``stats=``. Networks without such layers have an empty state and ignore it.

Fused layers: in a training step, a BatchNorm on images and the MaxPool2D after it run as
one pass where the backend's ops have one (:meth:`arraynn.ops.Ops.fuses_norm_pool`; see
:mod:`arraynn.nn.norm`), with the numbers of the two layers run one by one.

Dropout masks: a :class:`~arraynn.nn.layers.Dropout` placed after the ``j``-th layer
with parameters (``j = 0``: on the inputs) draws from stream
``STREAMS["dropout"] + j - 1``, keyed by the seed and the optimizer's step counter, as
the dense stack always has; two Dropout layers on the same input would draw the same
mask and are refused.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

import array_api_compat
import numpy as np

from ..ops import OUTPUTS, ops_of
from . import random
from .conv import MaxPool2D
from .initializers import draw_flat
from .layers import Dropout, Layer, layer_from_config
from .norm import BatchNorm

__all__ = ["Sequential"]


class Sequential:
    """Layers in order, then a loss head, over one flat parameter buffer.

    Parameters
    ----------
    layers : sequence of Layer
        The network, its last layer giving the logits (one per class).
    input_shape : tuple of int
        The shape of one input sample (``(features,)`` for rows).
    output : {"softmax", "sigmoid"}
        The loss head on the logits.

    Raises
    ------
    ValueError
        A layer that does not fit its input shape, logits that are not flat, an unknown
        output, or two Dropout layers on the same input.
    """

    def __init__(self, layers: Sequence[Layer], input_shape: Sequence[int], output: str = "softmax") -> None:
        from .mlp import ParamLayout

        if output not in OUTPUTS:
            raise ValueError(f"unknown output {output!r}; choose one of {list(OUTPUTS)}")
        self.layers = [layer if isinstance(layer, Layer) else _not_a_layer(layer) for layer in layers]
        if not self.layers:
            raise ValueError("a network needs at least one layer")
        self.output = output
        self.input_shape = tuple(int(d) for d in input_shape)
        shapes: list[tuple[int, ...]] = []
        state_shapes: list[tuple[int, ...]] = []
        #: Per layer: the indices of its parameters in the flat layout.
        self.slots: list[list[int]] = []
        #: Per layer: the indices of its state (running statistics) in the state layout.
        self.state_slots: list[list[int]] = []
        #: Per layer: the shape of one sample of its input.
        self.input_shapes: list[tuple[int, ...]] = []
        self._weights: list[int] = []
        self._streams: list[int | None] = []
        seen_params, used_streams = 0, set()
        shape = self.input_shape
        for layer in self.layers:
            self.input_shapes.append(shape)
            own = [tuple(int(d) for d in s) for s in layer.param_shapes(shape)]
            first = len(shapes)
            self.slots.append(list(range(first, first + len(own))))
            self._weights += [first + w for w in layer.weight_params]
            shapes += own
            kept = [tuple(int(d) for d in s) for s in layer.state_shapes(shape)]
            self.state_slots.append(list(range(len(state_shapes), len(state_shapes) + len(kept))))
            state_shapes += kept
            stream = None
            if isinstance(layer, Dropout):
                stream = random.STREAMS["dropout"] + seen_params - 1
                if stream in used_streams:
                    raise ValueError("two Dropout layers on the same input would drop the same elements; "
                                     "give it one Dropout with the combined rate")
                used_streams.add(stream)
            self._streams.append(stream)
            seen_params += bool(own)
            shape = layer.output_shape(shape)
        if len(shape) != 1:
            raise ValueError(f"the last layer gives samples of shape {shape}; the logits must be flat "
                             "(end with a Dense layer, after a Flatten())")
        #: The number of logits (classes).
        self.n_outputs = int(shape[0])
        #: The most numbers one sample has at any layer's input or output.
        self.widest_sample = max(math.prod(s) for s in (*self.input_shapes, shape))
        #: The parameter layout of the flat buffer.
        self.layout = ParamLayout(shapes)
        #: The layout of the state buffer (running statistics; empty for most networks).
        self.state_layout = ParamLayout(state_shapes)
        # whether a layer's input gradient is needed: some layer before it has parameters
        self._need_dx = [any(self.slots[j] for j in range(i)) for i in range(len(self.layers))]

    def __repr__(self) -> str:
        return f"Sequential({self.layers!r}, input_shape={self.input_shape}, output={self.output!r})"

    @property
    def spec(self) -> str:
        """The network as one JSON string (what a compiled step is keyed on)."""
        return json.dumps({"layers": [layer.config() for layer in self.layers],
                           "input_shape": list(self.input_shape), "output": self.output}, sort_keys=True)

    @classmethod
    def from_spec(cls, spec: str | dict[str, Any]) -> Sequential:
        """The network of :attr:`spec` (a JSON string or the dict it holds)."""
        doc = json.loads(spec) if isinstance(spec, str) else spec
        return cls([layer_from_config(c) for c in doc["layers"]], doc["input_shape"], doc["output"])

    # ---- parameters -------------------------------------------------------------
    def weights(self, params: Any) -> list[Any]:
        """The weight matrices (views of the flat buffer ``params``), in layer order."""
        views = self.layout.views(params)
        return [views[k] for k in self._weights]

    def biases(self, params: Any) -> list[Any]:
        """The bias vectors (views), in layer order."""
        views = self.layout.views(params)
        weights = set(self._weights)
        return [views[k] for slots in self.slots for k in slots if k not in weights]

    def init_params(self, backend: Any, rng: Any, init: str = "uniform") -> Any:
        """Draw the weight matrices on the host with ``rng`` (in layer order; biases start
        at zero) and copy the whole flat buffer to ``backend`` in one transfer."""
        flat = draw_flat(rng, self.layout.shapes, self._weights, init)
        lay = self.layout
        for layer, slots, shape in zip(self.layers, self.slots, self.input_shapes):
            for k, value in zip(slots, layer.initial_params(shape)):
                if value is not None:
                    flat[lay.offsets[k]:lay.offsets[k] + lay.sizes[k]] = value
        return backend.asarray(flat)

    # ---- state --------------------------------------------------------------------
    @property
    def has_state(self) -> bool:
        """Whether the network keeps state besides its parameters (BatchNorm's running
        statistics): then a training step reads and returns ``state["stats"]``, and
        prediction needs it."""
        return self.state_layout.size > 0

    def init_state(self, backend: Any) -> Any:
        """The starting state buffer (running means 0, variances 1), on ``backend``."""
        flat = np.zeros(self.state_layout.size, dtype=np.float64)
        lay = self.state_layout
        for layer, slots, shape in zip(self.layers, self.state_slots, self.input_shapes):
            for k, value in zip(slots, layer.initial_state(shape)):
                flat[lay.offsets[k]:lay.offsets[k] + lay.sizes[k]] = value
        return backend.asarray(flat)

    def _state_views(self, stats: Any, xp: Any) -> list[list[Any]] | None:
        if not self.has_state:
            return None
        if stats is None:
            raise ValueError("this network has BatchNorm layers: give it its running statistics "
                             "(stats=, the training state's 'stats')")
        views = self.state_layout.views(stats, xp)
        return [[views[k] for k in slots] for slots in self.state_slots]

    # ---- dropout ------------------------------------------------------------------
    @property
    def has_dropout(self) -> bool:
        """Whether a training step draws dropout masks (a Dropout layer with a rate above 0)."""
        return any(isinstance(layer, Dropout) and layer.rate for layer in self.layers)

    def dropout_masks(self, X: Any, seed: int, counter: Any, first_row: int = 0) -> list[Any] | None:
        """The dropout masks of one training step on the minibatch ``X``, one per layer
        (None for the layers that are not Dropout, and where the rate is 0), or None
        when the network has no dropout. ``counter`` is the optimizer's step count;
        ``first_row``: ``X`` is the rows ``first_row ..`` of a larger minibatch, whose
        masks these rows get (a data-parallel rank's slice)."""
        if not self.has_dropout:
            return None
        ops = ops_of(X)
        device = array_api_compat.device(X)
        n = X.shape[0]
        masks: list[Any] = []
        for layer, shape, stream in zip(self.layers, self.input_shapes, self._streams):
            if stream is None or not isinstance(layer, Dropout) or not layer.rate:
                masks.append(None)
                continue
            size = math.prod(shape)
            masks.append(ops.dropout_mask((n, *shape), layer.rate, seed, counter, stream, X.dtype, device,
                                          first_row * size))
        return masks

    # ---- computation ------------------------------------------------------------
    def _layer_views(self, views: list[Any]) -> list[list[Any]]:
        return [[views[k] for k in slots] for slots in self.slots]

    def _run(self, ops: Any, per_layer: list[list[Any]], X: Any, masks: list[Any] | None = None,
             stats: list[list[Any]] | None = None, training: bool = True, reduce: Any = None
             ) -> tuple[Any, list[Any]]:
        """The logits and each layer's cache (``per_layer``: :meth:`_layer_views`;
        ``stats``: :meth:`_state_views`; ``training``: batch statistics rather than the
        running ones; ``reduce``: the sum over data-parallel ranks)."""
        caches = []
        a = X
        if len(self.input_shape) > 1 and X.ndim == 2:  # flat rows of images
            a = ops.xp.reshape(X, (X.shape[0], *self.input_shape))
        pooled = False
        for i, layer in enumerate(self.layers):
            if pooled:  # this MaxPool2D ran inside the BatchNorm before it
                caches.append(_POOLED_BEFORE)
                pooled = False
                continue
            layer_stats = None if stats is None or not stats[i] else stats[i]
            pool = self.layers[i + 1] if training and i + 1 < len(self.layers) else None
            if (isinstance(layer, BatchNorm) and isinstance(pool, MaxPool2D) and a.ndim == 4
                    and ops.fuses_norm_pool(a, pool.window())):
                a, cache = layer.forward_max_pooled(ops, per_layer[i], a, pool.window(), stats=layer_stats,
                                                    reduce=reduce)
                caches.append(cache)
                pooled = True
                continue
            mask = None if masks is None else masks[i]
            a, cache = layer.forward(ops, per_layer[i], a, mask=mask, training=training, reduce=reduce,
                                     stats=layer_stats)
            caches.append(cache)
        return a, caches

    def forward(self, params: Any, X: Any, stats: Any = None) -> Any:
        """The logits of ``X`` (at prediction: dropout off, BatchNorm on the running
        statistics ``stats``, the state buffer, which a network with BatchNorm needs)."""
        ops = ops_of(X)
        z, _ = self._run(ops, self._layer_views(self.layout.views(params, ops.xp)), X,
                         stats=self._state_views(stats, ops.xp), training=False)
        return z

    def predict_proba(self, params: Any, X: Any, stats: Any = None) -> Any:
        """The output head's probabilities for ``X`` (``stats`` as in :meth:`forward`)."""
        return ops_of(X).probabilities(self.output, self.forward(params, X, stats))

    def penalty(self, params: Any, l1: float, l2: float) -> Any:
        """The L1/L2 penalty of the weight matrices (0-d array)."""
        return ops_of(params).penalty(self.weights(params), l1, l2)

    def loss_and_grad(self, params: Any, X: Any, Y: Any, l1: float = 0.0, l2: float = 0.0,
                      grad_buffer: Any = None, sample_weight: Any = None,
                      masks: list[Any] | None = None, stats: Any = None, reduce: Any = None
                      ) -> tuple[Any, Any]:
        """The summed data loss of ``(X, Y)`` (0-d) and the flat gradient of the loss
        plus the penalty.

        ``Y`` is one-hot, in ``X``'s float dtype. ``grad_buffer``, a flat array the
        caller owns, is where fast paths write the gradient (and then return it);
        without it, or on the generic path, the gradient is a new array.
        ``sample_weight``, a 1-D array of ``X``'s dtype and device, weights each row's
        loss and error term. ``masks``, from :meth:`dropout_masks`, are the step's
        dropout (None: no dropout). BatchNorm normalises with the batch's statistics
        (shifted by the running means of ``stats``, the state buffer, when given);
        ``reduce`` sums them over data-parallel ranks. :meth:`loss_grad_and_state` also
        returns the updated running statistics.
        """
        loss, grads, _ = self.loss_grad_and_state(params, X, Y, l1, l2, grad_buffer, sample_weight, masks,
                                                  stats, reduce)
        return loss, grads

    def loss_grad_and_state(self, params: Any, X: Any, Y: Any, l1: float = 0.0, l2: float = 0.0,
                            grad_buffer: Any = None, sample_weight: Any = None,
                            masks: list[Any] | None = None, stats: Any = None, reduce: Any = None
                            ) -> tuple[Any, Any, Any]:
        """:meth:`loss_and_grad` and the state buffer after the step (the running
        statistics updated from this batch's; None when the network keeps no state or
        ``stats`` is None)."""
        ops = ops_of(X)
        views = self.layout.views(params, ops.xp)
        per_layer = self._layer_views(views)
        state_views = self._state_views(stats, ops.xp) if stats is not None else None
        z, caches = self._run(ops, per_layer, X, masks, state_views, True, reduce)
        new_stats = None
        if state_views is not None:
            updated = [a for i, layer in enumerate(self.layers) if state_views[i]
                       for a in layer.updated_state(ops, state_views[i], caches[i])]
            new_stats = ops.xp.concat([ops.xp.reshape(a, (-1,)) for a in updated])
        if sample_weight is None:
            loss, delta = ops.loss_and_delta(self.output, z, Y)
        else:
            loss, delta = ops.weighted_loss_and_delta(self.output, z, Y, sample_weight)
        out = None if grad_buffer is None else self.layout.views(grad_buffer, ops.xp)
        grads: list[Any] = [None] * len(views)
        for i in range(len(self.layers) - 1, -1, -1):
            if caches[i] is _POOLED_BEFORE:
                continue  # the BatchNorm before it goes back through both
            slots = self.slots[i]
            if not self._need_dx[i] and not slots:
                break  # nothing before here has parameters
            layer_grads = [None if out is None else out[k] for k in slots]
            delta = self.layers[i].backward(ops, per_layer[i], caches[i], delta, layer_grads,
                                            need_dx=self._need_dx[i], l1=l1, l2=l2)
            for k, g in zip(slots, layer_grads):
                grads[k] = g
        return loss, ops.pack(grads, out, grad_buffer), new_stats

    def train_step(self, params: Any, optimizer: Any, state: dict[str, Any], X: Any, Y: Any,
                   learning_rate: Any, l1: float = 0.0, l2: float = 0.0,
                   grad_buffer: Any = None, sample_weight: Any = None, seed: int | None = None
                   ) -> tuple[Any, dict[str, Any], Any]:
        """One minibatch: forward, backward, update; returns ``(params, state, loss)``
        (see :meth:`arraynn.nn.MLP.train_step`). With dropout, ``seed`` turns it on."""
        masks = None if seed is None else self.dropout_masks(X, seed, state["t"])
        stats = state.get("stats") if self.has_state else None
        if self.has_state and stats is None:
            raise ValueError("this network has BatchNorm layers: its training state needs their running "
                             "statistics, state['stats'] = net.init_state(backend)")
        loss, grads, stats = self.loss_grad_and_state(params, X, Y, l1, l2, grad_buffer,
                                                      sample_weight=sample_weight, masks=masks, stats=stats)
        params, state = optimizer.update(params, grads, state, learning_rate)
        if stats is not None:
            state["stats"] = stats
        return params, state, loss

    def one_hot(self, labels: Any, dtype: Any) -> Any:
        """One-hot rows of the logits' width for integer ``labels``."""
        return ops_of(labels).one_hot(labels, self.n_outputs, dtype)


#: The cache of a MaxPool2D that its BatchNorm ran (:meth:`arraynn.nn.BatchNorm.forward_max_pooled`).
_POOLED_BEFORE = object()


def _not_a_layer(obj: Any) -> Layer:
    raise TypeError(f"a network's layers are arraynn.layers objects (Dense, ReLU, Dropout, ...), got "
                    f"{obj!r:.60}")
