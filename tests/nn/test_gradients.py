"""Backpropagation against float64 central finite differences along a random direction."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from arraynn.nn import MLP

PENALTIES = {"none": (0.0, 0.0), "l1": (0.3, 0.0), "l2": (0.0, 0.7), "l1+l2": (0.2, 0.5)}
CASES = list(itertools.product(["sigmoid", "tanh", "relu"], ["sigmoid", "softmax"], PENALTIES,
                               [False, True]))


def _objective(be, mlp, params, X, Y, l1, l2):
    loss, _ = mlp.loss_and_grad(params, X, Y)
    return be.to_float(loss) + be.to_float(mlp.penalty(params, l1, l2))


@pytest.mark.parametrize(("activation", "output", "penalty", "bias"), CASES,
                         ids=[f"{a}-{o}-{p}-{'bias' if b else 'nobias'}" for a, o, p, b in CASES])
def test_backward_matches_finite_differences(backend64, activation, output, penalty, bias):
    be, xp = backend64, backend64.xp
    rng = np.random.default_rng(7)
    l1, l2 = PENALTIES[penalty]
    mlp = MLP((6, 5, 4, 3), activation=activation, output=output, bias=bias)
    params = mlp.init_params(be, rng, "glorot")
    if bias:  # non-zero biases so their gradients are exercised away from 0
        host = be.to_numpy(params).copy()
        for b in mlp.biases(host):
            b[...] = rng.normal(size=b.shape)
        params = be.asarray(host)
    X = be.asarray(rng.normal(size=(8, 6)))
    Y = mlp.one_hot(be.asarray(rng.integers(0, 3, size=8), dtype=be.index_dtype), be.dtype)
    if activation == "relu":
        # keep pre-activations away from the kink at 0
        X = X * 2.0

    _, grads = mlp.loss_and_grad(params, X, Y, l1, l2)
    assert grads.shape == params.shape and grads.dtype == params.dtype

    direction = be.asarray(rng.normal(size=tuple(params.shape)))
    eps = 1e-6
    numeric = (_objective(be, mlp, params + eps * direction, X, Y, l1, l2)
               - _objective(be, mlp, params - eps * direction, X, Y, l1, l2)) / (2 * eps)
    analytic = be.to_float(xp.sum(grads * direction))
    assert analytic == pytest.approx(numeric, rel=1e-6, abs=1e-7)


def test_sigmoid_output_error_term_is_the_articles(backend64):
    """With the sigmoid output, the output delta is act_out - y, as in the article."""
    be = backend64
    rng = np.random.default_rng(0)
    mlp = MLP((3, 2), output="sigmoid")
    params = mlp.init_params(be, rng)
    X = be.asarray(rng.normal(size=(4, 3)))
    Y = be.asarray(np.eye(2)[[0, 1, 1, 0]])
    _, grads = mlp.loss_and_grad(params, X, Y)
    Xh, zh, Yh = be.to_numpy(X), be.to_numpy(mlp.forward(params, X)), be.to_numpy(Y)
    act_out = 1.0 / (1.0 + np.exp(-zh))
    np.testing.assert_allclose(be.to_numpy(grads).reshape(3, 2), Xh.T @ (act_out - Yh), rtol=1e-10)


@pytest.mark.parametrize("output", ["sigmoid", "softmax"])
def test_weighted_backward_matches_finite_differences_of_the_weighted_loss(backend64, output):
    """With sample weights the gradient is that of ``sum_i w_i * loss_i`` (plus the penalty)."""
    be, xp = backend64, backend64.xp
    rng = np.random.default_rng(3)
    mlp = MLP((5, 4, 3), activation="tanh", output=output, bias=True)
    params = mlp.init_params(be, rng, "glorot")
    X = be.asarray(rng.normal(size=(7, 5)))
    Y = mlp.one_hot(be.asarray(rng.integers(0, 3, size=7), dtype=be.index_dtype), be.dtype)
    w = be.asarray(rng.uniform(0.0, 3.0, size=7))

    def objective(p):
        loss, _ = mlp.loss_and_grad(p, X, Y, sample_weight=w)
        return be.to_float(loss) + be.to_float(mlp.penalty(p, 0.0, 0.4))

    loss, grads = mlp.loss_and_grad(params, X, Y, 0.0, 0.4, sample_weight=w)
    # the weighted loss is the sum of the rows' losses times their weights
    rows = [be.to_float(mlp.loss_and_grad(params, X[i:i + 1, ...], Y[i:i + 1, ...])[0]) for i in range(7)]
    assert be.to_float(loss) == pytest.approx(float(np.dot(be.to_numpy(w), rows)), rel=1e-12)
    direction = be.asarray(rng.normal(size=tuple(params.shape)))
    eps = 1e-6
    numeric = (objective(params + eps * direction) - objective(params - eps * direction)) / (2 * eps)
    assert be.to_float(xp.sum(grads * direction)) == pytest.approx(numeric, rel=1e-6, abs=1e-7)
