"""Helpers shared by the network tests: a compiled JAX step against the generic one, and
small images a convolution learns."""

from __future__ import annotations

import numpy as np
import pytest

import arraynn
from arraynn.nn import make_optimizer

__all__ = ["bar_images", "jax_jit_against_generic"]


def jax_jit_against_generic(net, X, labels, l2, seed=None, rtol=2e-5):
    """Train ``net`` on JAX for ``len(X)`` Adam steps (minibatches ``X[s]``, labels
    ``labels[s]``) with the compiled step and with the generic one, and check that the
    parameters (and the state buffer, where the network keeps one) agree."""
    pytest.importorskip("jax")
    from arraynn.ops import jax as _jax

    try:
        be = arraynn.get_backend("jax")
    except arraynn.BackendError as exc:
        pytest.skip(f"JAX cannot run here: {exc}")
    out = []
    for jit in (True, False):
        opt = make_optimizer("adam")
        p = net.init_params(be, np.random.default_rng(1), "he")
        state = opt.init(p)
        if net.has_state:
            state["stats"] = net.init_state(be)
        step = _jax.jit_train_step(net, opt, 0.0, l2, seed=seed) if jit else net.train_step
        for s in range(len(X)):
            Y = net.one_hot(be.asarray(labels[s], dtype=be.index_dtype), be.dtype)
            p, state, _ = step(p, opt, state, be.asarray(X[s]), Y, 1e-2, 0.0, l2, seed=seed)
        out.append([be.to_numpy(p)] + ([be.to_numpy(state["stats"])] if net.has_state else []))
    for a, b in zip(*out):
        np.testing.assert_allclose(a, b, rtol=rtol, atol=1e-6)


def bar_images(n=96, seed=0):
    """uint8 one-channel 8x8 images whose class (of 3) is a bright row."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, size=n)
    X = rng.integers(0, 60, size=(n, 8, 8))
    for i, k in enumerate(y):
        X[i, 2 * k + 1] += 150
    return X.astype(np.uint8), y
