"""A multilayer perceptron with hand-written backpropagation, in Array API code.

Layout: samples are rows. Layer ``i`` maps ``a_i`` (``n_i`` columns) to
``z_i = a_i @ W_i (+ b_i)`` with ``W_i`` of shape ``(n_i, n_{i+1})`` (scikit-learn's
``coefs_`` layout). Hidden layers apply one activation; the last layer's logits go
through the output layer (:mod:`arraynn.losses`).

The parameters are a flat list ``[W_0, (b_0,) W_1, (b_1,) ...]`` owned by the caller;
:meth:`MLP.forward` keeps exactly what :meth:`MLP.backward` needs (each layer's input
activation), and :meth:`MLP.backward` returns one gradient per parameter. No autograd
of any library is used. Gradients are **summed** over the minibatch, as in the
article; the penalty's gradient is added once per minibatch.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .activations import get_activation
from .initializers import INITIALIZERS, draw_weights
from .kernels import Kernels, kernels_of
from .losses import OUTPUTS, cross_entropy, output_probabilities
from .regularizers import penalty

__all__ = ["MLP"]


class MLP:
    """The shape of a network; parameters are kept outside it.

    Parameters
    ----------
    layer_sizes : sequence of int
        ``(n_features, hidden_1, ..., n_outputs)``; at least two entries.
    activation : {"sigmoid", "tanh", "relu"}
        The hidden layers' activation.
    output : {"sigmoid", "softmax"}
        The output layer (see :mod:`arraynn.losses`).
    bias : bool
        Whether layers have bias vectors (the article's network has none).
    """

    def __init__(self, layer_sizes: Sequence[int], activation: str = "sigmoid",
                 output: str = "sigmoid", bias: bool = False) -> None:
        sizes = tuple(int(s) for s in layer_sizes)
        if len(sizes) < 2 or min(sizes) < 1:
            raise ValueError(f"layer_sizes must have >= 2 positive entries, got {layer_sizes!r}")
        if output not in OUTPUTS:
            raise ValueError(f"unknown output {output!r}; choose one of {list(OUTPUTS)}")
        self.layer_sizes = sizes
        self.activation = get_activation(activation)
        self.output = output
        self.bias = bool(bias)

    @property
    def n_layers(self) -> int:
        """The number of weight matrices."""
        return len(self.layer_sizes) - 1

    def weight_index(self, i: int) -> int:
        """Position of ``W_i`` in the flat parameter list."""
        return 2 * i if self.bias else i

    def weights(self, params: list[Any]) -> list[Any]:
        """The weight matrices of a parameter list (biases left out)."""
        return [params[self.weight_index(i)] for i in range(self.n_layers)]

    def is_weight(self) -> list[bool]:
        """For each parameter, whether it is a weight matrix (penalised) or a bias."""
        if not self.bias:
            return [True] * self.n_layers
        return [k % 2 == 0 for k in range(2 * self.n_layers)]

    # ---- parameters -------------------------------------------------------------
    def init_params(self, backend: Any, rng: Any, init: str = "uniform") -> list[Any]:
        """Draw the parameters on the host with ``rng`` and copy them to ``backend``.

        Biases start at zero (created on the device).
        """
        if init not in INITIALIZERS:
            raise ValueError(f"unknown init {init!r}; choose one of {list(INITIALIZERS)}")
        xp = backend.xp
        params = []
        for fan_in, fan_out in zip(self.layer_sizes[:-1], self.layer_sizes[1:]):
            params.append(backend.asarray(draw_weights(rng, fan_in, fan_out, init)))
            if self.bias:
                params.append(xp.zeros((fan_out,), dtype=backend.dtype, device=backend.device))
        return params

    # ---- computation ------------------------------------------------------------
    # The matrix products are written here; every other operation goes through the
    # kernels of the arrays' namespace (arraynn.kernels), which may reuse the
    # temporaries this code hands them ("consumed" arguments) but never the caller's
    # arrays: params, X and Y are only read.
    def forward(self, params: list[Any], X: Any) -> tuple[Any, list[Any]]:
        """Logits of ``X`` and the list of each layer's input (for :meth:`backward`)."""
        return self._forward(kernels_of(X), params, X)

    def _forward(self, K: Kernels, params: list[Any], X: Any) -> tuple[Any, list[Any]]:
        inputs = []
        a = X
        last = self.n_layers - 1
        act, bias = self.activation.name, self.bias
        for i in range(self.n_layers):
            inputs.append(a)
            k = self.weight_index(i)
            z = a @ params[k]
            if bias:
                z = K.add_bias(z, params[k + 1])
            a = K.activate(act, z) if i < last else z
        return a, inputs

    def predict_proba(self, params: list[Any], X: Any) -> Any:
        """The output layer's probabilities for ``X``."""
        z, _ = self.forward(params, X)
        return output_probabilities(z, self.output)

    def loss(self, z: Any, Y: Any) -> Any:
        """Summed cross-entropy of logits ``z`` against one-hot ``Y`` (0-d array)."""
        return cross_entropy(z, Y, self.output)

    def penalty(self, params: list[Any], l1: float, l2: float) -> Any:
        """The L1/L2 penalty of the weights (0-d array)."""
        return penalty(self.weights(params), l1, l2)

    def backward(self, params: list[Any], z: Any, inputs: list[Any], Y: Any,
                 l1: float = 0.0, l2: float = 0.0) -> list[Any]:
        """Gradients of the summed loss plus the penalty, one per parameter.

        ``z`` and ``inputs`` come from :meth:`forward`; ``Y`` is one-hot, the same
        dtype as ``z``.
        """
        K = kernels_of(z)
        return self._backward(K, params, K.output_delta(self.output, z, Y), inputs, l1, l2)

    def _backward(self, K: Kernels, params: list[Any], delta: Any, inputs: list[Any],
                  l1: float, l2: float) -> list[Any]:
        """Backpropagate the output error term ``delta`` (consumed)."""
        grads: list[Any] = [None] * len(params)
        act, bias, penalized = self.activation.name, self.bias, bool(l1 or l2)
        for i in range(self.n_layers - 1, -1, -1):
            k = self.weight_index(i)
            W = params[k]
            g = inputs[i].T @ delta
            grads[k] = K.penalize(W, g, l1, l2) if penalized else g
            if bias:
                grads[k + 1] = K.bias_grad(delta)
            if i > 0:
                delta = K.activate_grad(act, inputs[i], delta @ W.T)
        return grads

    def train_step(self, params: list[Any], optimizer: Any, state: Any, X: Any, Y: Any,
                   l1: float = 0.0, l2: float = 0.0) -> tuple[list[Any], Any, Any]:
        """One minibatch: forward, backward, update.

        Returns ``(params, state, loss)`` where ``loss`` is the summed data loss of
        the batch as a 0-d device array (nothing is copied to the host). The loss
        and the output error term are computed together.
        """
        K = kernels_of(X)
        z, inputs = self._forward(K, params, X)
        loss, delta = K.loss_and_delta(self.output, z, Y)
        grads = self._backward(K, params, delta, inputs, l1, l2)
        params, state = optimizer.update(params, grads, state)
        return params, state, loss


def one_hot(labels: Any, n_classes: int, dtype: Any) -> Any:
    """One-hot rows for integer ``labels`` (on their device), in ``dtype``."""
    return kernels_of(labels).one_hot(labels, n_classes, dtype)
