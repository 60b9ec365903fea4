"""A short text for a list of layers: the command line's ``--layers SPEC``.

Layers are separated by commas; each is a name with its numbers run in::

    conv32k3same,relu,maxpool2,conv64k3same,relu,maxpool2,flatten,dense128,relu,dropout0.3

==========================  =============================================================
``conv<F>k<K>[s<S>][same|valid|p<P>][nobias]``  ``Conv2D(F, K, stride=S, padding=...)``;
                            ``K``, ``S`` and ``P`` may be ``HxW`` pairs (``k3x5``)
``maxpool<P>[s<S>]``        ``MaxPool2D(P, stride=S)`` (``P`` may be ``HxW``)
``avgpool<P>[s<S>]``        ``AvgPool2D(P, stride=S)``
``gap``                     ``GlobalAvgPool2D()``
``dense<N>[nobias]``        ``Dense(N, bias=...)``
``relu``, ``sigmoid``,      the activations
``tanh``
``dropout<R>``              ``Dropout(R)``
``bn[<M>]``                 ``BatchNorm(momentum=M)`` (default 0.9)
``flatten``                 ``Flatten()``
==========================  =============================================================

:func:`format_layers` writes the text :func:`parse_layers` reads back to equal layers.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from .layers import (
    AvgPool2D,
    BatchNorm,
    Conv2D,
    Dense,
    Dropout,
    Flatten,
    GlobalAvgPool2D,
    Layer,
    MaxPool2D,
    ReLU,
    Sigmoid,
    Tanh,
)

__all__ = ["SYNTAX", "format_layers", "parse_layers"]

#: One line on the syntax, for error messages and ``--help``.
SYNTAX = ("comma-separated layers: conv<F>k<K>[s<S>][same|valid|p<P>][nobias], maxpool<P>[s<S>], "
          "avgpool<P>[s<S>], gap, dense<N>[nobias], relu, sigmoid, tanh, dropout<R>, bn[<M>], flatten "
          "(e.g. conv32k3same,relu,maxpool2,flatten,dense128,relu,dropout0.3)")

_N = r"\d+(?:x\d+)?"
_CONV = re.compile(rf"conv(\d+)k({_N})(?:s({_N}))?(same|valid|p{_N})?(nobias)?")
_POOL = re.compile(rf"(maxpool|avgpool)({_N})(?:s({_N}))?")
_DENSE = re.compile(r"dense(\d+)(nobias)?")
_DROPOUT = re.compile(r"dropout(\d*\.?\d+(?:e-?\d+)?)")
_BN = re.compile(r"bn(\d*\.?\d+)?")
_PLAIN = {"relu": ReLU, "sigmoid": Sigmoid, "tanh": Tanh, "flatten": Flatten, "gap": GlobalAvgPool2D}


def _size(text: str) -> int | tuple[int, int]:
    if "x" in text:
        h, w = text.split("x")
        return int(h), int(w)
    return int(text)


def _one(item: str) -> Layer:
    if item in _PLAIN:
        return _PLAIN[item]()
    m = _CONV.fullmatch(item)
    if m:
        filters, kernel, stride, pad, nobias = m.groups()
        padding: object = "valid"
        if pad in ("same", "valid"):
            padding = pad
        elif pad:
            padding = _size(pad[1:])
        return Conv2D(int(filters), _size(kernel), _size(stride) if stride else 1, padding, bias=not nobias)
    m = _POOL.fullmatch(item)
    if m:
        kind, size, stride = m.groups()
        cls = MaxPool2D if kind == "maxpool" else AvgPool2D
        return cls(_size(size), _size(stride) if stride else None)
    m = _DENSE.fullmatch(item)
    if m:
        return Dense(int(m.group(1)), bias=not m.group(2))
    m = _DROPOUT.fullmatch(item)
    if m:
        return Dropout(float(m.group(1)))
    m = _BN.fullmatch(item)
    if m:
        return BatchNorm(float(m.group(1))) if m.group(1) else BatchNorm()
    raise ValueError(f"unknown layer {item!r}; {SYNTAX}")


def parse_layers(text: str) -> list[Layer]:
    """The layers of a spec (see the module docstring).

    Raises
    ------
    ValueError
        An empty spec, or an item that is not a layer of the syntax (naming it), or
        numbers a layer refuses (its own message).
    """
    items = [part.strip().lower() for part in str(text).split(",")]
    if not any(items):
        raise ValueError(f"no layers given; {SYNTAX}")
    if not all(items):
        raise ValueError(f"an empty item in the layers {text!r} (two commas in a row?); {SYNTAX}")
    return [_one(item) for item in items]


def _pair_text(pair: Sequence[int]) -> str:
    return str(pair[0]) if pair[0] == pair[1] else f"{pair[0]}x{pair[1]}"


def format_layers(layers: Sequence[Layer]) -> str:
    """The spec of ``layers`` (the inverse of :func:`parse_layers`).

    Raises
    ------
    ValueError
        A layer the syntax has no word for (an ``Activation`` by another name).
    """
    out = []
    for layer in layers:
        if isinstance(layer, Conv2D):
            pad = layer.padding if isinstance(layer.padding, str) else "p" + _pair_text(layer.padding)
            stride = "" if layer.stride == (1, 1) else "s" + _pair_text(layer.stride)
            out.append(f"conv{layer.filters}k{_pair_text(layer.kernel_size)}{stride}{pad}"
                       f"{'' if layer.bias else 'nobias'}")
        elif isinstance(layer, (MaxPool2D, AvgPool2D)):
            stride = "" if layer.stride == layer.pool_size else "s" + _pair_text(layer.stride)
            out.append(f"{layer.kind[:7]}{_pair_text(layer.pool_size)}{stride}")
        elif isinstance(layer, Dense):
            out.append(f"dense{layer.units}{'' if layer.bias else 'nobias'}")
        elif isinstance(layer, Dropout):
            out.append(f"dropout{layer.rate:g}")
        elif isinstance(layer, GlobalAvgPool2D):
            out.append("gap")
        elif isinstance(layer, BatchNorm) and layer.epsilon == BatchNorm().epsilon:
            out.append("bn" if layer.momentum == BatchNorm().momentum else f"bn{layer.momentum:g}")
        elif type(layer).kind in _PLAIN:
            out.append(type(layer).kind)
        elif (name := getattr(layer, "name", None)) in _PLAIN:
            out.append(name)  # Activation("relu")
        else:
            raise ValueError(f"the layers spec has no word for {layer!r}")
    return ",".join(out)
