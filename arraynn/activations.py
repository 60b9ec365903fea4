"""Hidden-layer activations, in Array API code.

Each activation computes ``a = f(z)`` and, for backpropagation, multiplies an
incoming gradient by ``f'(z)`` written in terms of the *output* ``a`` (so the
forward pass only has to keep ``a``). All three derivatives have that form:

========  ======================  ==========================
name      f(z)                    f'(z) from a
========  ======================  ==========================
sigmoid   1 / (1 + exp(-z))       a * (1 - a)
tanh      tanh(z)                 1 - a**2
relu      max(z, 0)               1 where a > 0, else 0
========  ======================  ==========================

The sigmoid is evaluated as ``0.5 * tanh(z / 2) + 0.5``, which equals the
logistic function, never overflows (the article's ``1 / (1 + exp(-z))`` does on
raw 0-255 pixels) and costs one transcendental per element.

Every function takes an optional ``xp`` (the array namespace) so that callers which
already hold it, such as :mod:`arraynn.kernels` inside a training step, skip the
lookup; without it the namespace is found from the arguments.
"""

from __future__ import annotations

from typing import Any

from array_api_compat import array_namespace

__all__ = ["ACTIVATIONS", "sigmoid", "sigmoid_grad", "tanh", "tanh_grad", "relu", "relu_grad",
           "get_activation", "Activation"]


def sigmoid(z: Any, xp: Any = None) -> Any:
    """The logistic function, overflow-free for any finite input."""
    xp = xp or array_namespace(z)
    return 0.5 * xp.tanh(0.5 * z) + 0.5


def sigmoid_grad(a: Any, g: Any, xp: Any = None) -> Any:
    """``g * sigmoid'(z)`` given ``a = sigmoid(z)``."""
    return g * (a * (1.0 - a))


def tanh(z: Any, xp: Any = None) -> Any:
    """Hyperbolic tangent."""
    return (xp or array_namespace(z)).tanh(z)


def tanh_grad(a: Any, g: Any, xp: Any = None) -> Any:
    """``g * tanh'(z)`` given ``a = tanh(z)``."""
    return g * (1.0 - a * a)


def relu(z: Any, xp: Any = None) -> Any:
    """Rectified linear unit, ``max(z, 0)``."""
    xp = xp or array_namespace(z)
    return xp.maximum(z, 0.0)


def relu_grad(a: Any, g: Any, xp: Any = None) -> Any:
    """``g * relu'(z)`` given ``a = relu(z)`` (the subgradient at 0 is 0)."""
    xp = xp or array_namespace(a)
    return xp.where(a > 0.0, g, 0.0)


class Activation:
    """A named pair ``(forward, grad)``; ``grad(a, g)`` returns ``g * f'(z)``.

    Both accept the namespace as an optional last argument ``xp``.
    """

    __slots__ = ("name", "forward", "grad")

    def __init__(self, name: str, forward: Any, grad: Any) -> None:
        self.name = name
        self.forward = forward
        self.grad = grad

    def __repr__(self) -> str:
        return f"Activation({self.name!r})"


ACTIVATIONS = {
    "sigmoid": Activation("sigmoid", sigmoid, sigmoid_grad),
    "tanh": Activation("tanh", tanh, tanh_grad),
    "relu": Activation("relu", relu, relu_grad),
}


def get_activation(name: str) -> Activation:
    """Look an activation up by name (``"sigmoid"``, ``"tanh"`` or ``"relu"``)."""
    try:
        return ACTIVATIONS[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"unknown activation {name!r}; choose one of {sorted(ACTIVATIONS)}"
        ) from None
