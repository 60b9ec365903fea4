"""Output layers and their losses, in Array API code.

Two output layers are supported, both paired with the cross-entropy whose gradient
with respect to the logits ``z`` is ``p - y`` (summed over the minibatch, as in the
article):

``"sigmoid"``
    The article's output: one independent sigmoid per class, ``p = sigmoid(z)``,
    with the binary cross-entropy summed over classes,
    ``-sum(y*log(p) + (1-y)*log(1-p))``. Its gradient is the article's
    ``act_out - y`` error term.
``"softmax"``
    ``p = softmax(z)`` with the categorical cross-entropy ``-sum(y*log(p))``.

Losses are computed from the logits with log-sum-exp and softplus forms, so they
are finite even when a probability rounds to 0 or 1.

A training step needs both the loss and the gradient ``p - y``;
:func:`loss_and_delta` computes them together, sharing the exponentials (the
softmax's ``exp`` is evaluated once, not once for the loss and once for ``p``).
Functions take an optional ``xp`` namespace, as in :mod:`arraynn.activations`.
"""

from __future__ import annotations

from typing import Any

from array_api_compat import array_namespace

from .activations import sigmoid

__all__ = ["OUTPUTS", "softmax", "log_softmax", "softplus", "output_probabilities",
           "cross_entropy", "loss_and_delta"]

OUTPUTS = ("sigmoid", "softmax")


def softmax(z: Any, xp: Any = None) -> Any:
    """Row-wise softmax of a 2-D array, shifted by the row maximum (no overflow)."""
    xp = xp or array_namespace(z)
    e = xp.exp(z - xp.max(z, axis=1, keepdims=True))
    return e / xp.sum(e, axis=1, keepdims=True)


def log_softmax(z: Any, xp: Any = None) -> Any:
    """Row-wise ``log(softmax(z))`` by the log-sum-exp trick."""
    xp = xp or array_namespace(z)
    shifted = z - xp.max(z, axis=1, keepdims=True)
    return shifted - xp.log(xp.sum(xp.exp(shifted), axis=1, keepdims=True))


def softplus(z: Any, xp: Any = None) -> Any:
    """``log(1 + exp(z))`` without overflow: ``max(z, 0) + log1p(exp(-|z|))``."""
    xp = xp or array_namespace(z)
    return xp.maximum(z, 0.0) + xp.log1p(xp.exp(-xp.abs(z)))


def _unknown_output(output: str) -> ValueError:
    return ValueError(f"unknown output {output!r}; choose one of {list(OUTPUTS)}")


def output_probabilities(z: Any, output: str, xp: Any = None) -> Any:
    """The output layer's activation of the logits ``z``."""
    if output == "softmax":
        return softmax(z, xp)
    if output == "sigmoid":
        return sigmoid(z, xp)
    raise _unknown_output(output)


def cross_entropy(z: Any, y: Any, output: str, xp: Any = None) -> Any:
    """The summed cross-entropy of the logits ``z`` against one-hot targets ``y``.

    Returns a 0-d array (on ``z``'s device): the sum over samples and classes.
    """
    xp = xp or array_namespace(z, y)
    if output == "softmax":
        return -xp.sum(y * log_softmax(z, xp))
    if output == "sigmoid":
        # -[y log s(z) + (1-y) log(1 - s(z))] = softplus(z) - y z
        return xp.sum(softplus(z, xp) - y * z)
    raise _unknown_output(output)


def loss_and_delta(z: Any, y: Any, output: str, xp: Any = None) -> tuple[Any, Any]:
    """``(cross_entropy(z, y, output), output_probabilities(z, output) - y)`` in one go.

    The values are those of the two separate calls, operation for operation; the
    softmax output evaluates its exponentials once for both.
    """
    xp = xp or array_namespace(z, y)
    if output == "softmax":
        shifted = z - xp.max(z, axis=1, keepdims=True)
        e = xp.exp(shifted)
        s = xp.sum(e, axis=1, keepdims=True)
        loss = -xp.sum(y * (shifted - xp.log(s)))
        return loss, e / s - y
    if output == "sigmoid":
        return cross_entropy(z, y, output, xp), sigmoid(z, xp) - y
    raise _unknown_output(output)
