"""The elementwise work of a training step, behind one seam: :func:`ops_for`.

:mod:`arraynn.nn` does the matrix products itself and hands every other operation of
a training step to an :class:`Ops` object:

``arraynn.ops.generic.Ops``
    Array API code, written once: the reference every backend can run.
``arraynn.ops.numpy.NumpyOps``
    NumPy in place (``out=`` and in-place ufuncs), bit for bit the generic values
    (convolutions as one product per batch, and batch normalisation's sums, to rounding).
``arraynn.ops.cupy.CupyOps``
    CuPy's fused CUDA kernels (sources in :mod:`arraynn.ops.cupy_kernels`).
``arraynn.ops.jax``
    Not an ``Ops`` but the whole step compiled with ``jax.jit`` from the generic code.

Which fast path a namespace gets is the backend's business
(:meth:`arraynn.backends` library's ``ops``); this module only caches the choice. The
environment variable ``ARRAYNN_KERNELS=generic`` (read at import) or
:func:`set_fast_paths` turns every fast path off, which is how the benchmark measures
the cost of the generic Array API layer.
"""

from __future__ import annotations

import os
from typing import Any

from array_api_compat import array_namespace

from .generic import ACTIVATIONS, OUTPUTS, Ops

__all__ = ["ACTIVATIONS", "OUTPUTS", "Ops", "ops_for", "ops_of", "set_fast_paths"]

_fast = os.environ.get("ARRAYNN_KERNELS", "auto").strip().lower() != "generic"
_by_namespace: dict[int, Ops] = {}
_by_type: dict[type, Ops] = {}


def set_fast_paths(enabled: bool) -> None:
    """Use the fast paths (the default) or the generic :class:`Ops` for every namespace.

    Affects the ops looked up afterwards, that is the next training step.
    """
    global _fast
    _fast = bool(enabled)
    _by_namespace.clear()
    _by_type.clear()


def ops_for(xp: Any) -> Ops:
    """The ops for namespace ``xp``: its backend's fast path, else the generic ones.

    The result is cached per namespace.
    """
    ops = _by_namespace.get(id(xp))
    if ops is None:
        ops = Ops(xp)
        if _fast:
            from ..backends import library_of

            library = library_of(xp)
            if library is not None:
                ops = library.ops(xp)
        ops = _by_namespace.setdefault(id(xp), ops)
    return ops


def ops_of(x: Any) -> Ops:
    """The ops for the namespace of array ``x`` (cached per array type)."""
    ops = _by_type.get(type(x))
    if ops is None:
        ops = _by_type[type(x)] = ops_for(array_namespace(x))
    return ops
