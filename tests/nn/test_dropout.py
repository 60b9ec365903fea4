"""Dropout in the MLP's training step: off at prediction, the scale kept, exact gradients
through a fixed mask, the same masks and training on every backend."""

from __future__ import annotations

import numpy as np
import pytest
from _devices import device_arg as _device_arg

from arraynn import NNClassifier
from arraynn.nn import MLP, dropout_rates, make_optimizer


def test_rates_are_one_per_hidden_layer():
    assert dropout_rates(0.3, 2) == (0.3, 0.3)
    assert dropout_rates([0.1, 0.2], 2) == (0.1, 0.2)
    assert dropout_rates(None, 1) == (0.0,)
    for bad in (1.0, -0.1, [0.1], "0.3", True):
        with pytest.raises(ValueError, match="dropout"):
            dropout_rates(bad, 2)
    assert MLP((4, 3, 2), dropout=0.5).dropout == (0.5,)
    assert "dropout" in repr(MLP((4, 3, 2), dropout=0.5))
    assert MLP((4, 3, 2), input_dropout=0.2).input_dropout == 0.2
    assert "input_dropout=0.2" in repr(MLP((4, 3, 2), input_dropout=0.2))
    with pytest.raises(ValueError, match="dropout"):
        MLP((4, 3, 2), input_dropout=1.0)


def test_prediction_ignores_dropout(backend):
    rng = np.random.default_rng(0)
    plain = MLP((6, 8, 5, 3), activation="relu", output="softmax", bias=True)
    dropped = MLP((6, 8, 5, 3), activation="relu", output="softmax", bias=True, dropout=0.5)
    params = plain.init_params(backend, rng, "he")
    X = backend.asarray(rng.normal(size=(10, 6)))
    np.testing.assert_array_equal(backend.to_numpy(dropped.predict_proba(params, X)),
                                  backend.to_numpy(plain.predict_proba(params, X)))
    # and without a seed a training step has no dropout either
    Y = plain.one_hot(backend.asarray(rng.integers(0, 3, 10), dtype=backend.index_dtype), backend.dtype)
    a, _ = plain.loss_and_grad(params, X, Y)
    b, _ = dropped.loss_and_grad(params, X, Y)
    assert backend.to_float(a) == backend.to_float(b)


def test_dropout_keeps_the_mean_activation(backend):
    """E[a * mask] = E[a]: the next layer's input keeps its scale."""
    rng = np.random.default_rng(1)
    mlp = MLP((20, 400, 3), activation="relu", output="softmax", bias=True, dropout=0.3)
    params = mlp.init_params(backend, rng, "he")
    X = backend.asarray(rng.normal(size=(500, 20)))
    masks = mlp.dropout_masks(X, 3, 7)
    from arraynn.ops import ops_of

    views = mlp.layout.views(params)
    _, inputs, activations = mlp._forward(ops_of(X), views, X, masks)
    assert masks[0] is None and len(masks) == 2  # no input dropout
    a = backend.to_numpy(activations[0])
    dropped = backend.to_numpy(inputs[1])
    m = backend.to_numpy(masks[1])
    assert abs(np.mean(m == 0) - 0.3) < 0.01
    np.testing.assert_allclose(dropped, a * m, rtol=1e-6)
    assert dropped.mean() == pytest.approx(a.mean(), rel=0.02)


@pytest.mark.parametrize("activation", ["sigmoid", "tanh", "relu"])
def test_backward_through_a_fixed_mask_matches_finite_differences(backend64, activation):
    be, xp = backend64, backend64.xp
    rng = np.random.default_rng(7)
    mlp = MLP((6, 9, 7, 3), activation=activation, output="softmax", bias=True, dropout=[0.4, 0.2],
              input_dropout=0.3)
    params = mlp.init_params(be, rng, "glorot")
    X = be.asarray(rng.normal(size=(8, 6)) * (2.0 if activation == "relu" else 1.0))
    Y = mlp.one_hot(be.asarray(rng.integers(0, 3, size=8), dtype=be.index_dtype), be.dtype)
    masks = mlp.dropout_masks(X, 11, 4)
    assert all(bool(xp.any(m == 0.0)) for m in masks)

    def objective(p):
        loss, _ = mlp.loss_and_grad(p, X, Y, masks=masks)
        return be.to_float(loss)

    _, grads = mlp.loss_and_grad(params, X, Y, masks=masks)
    direction = be.asarray(rng.normal(size=tuple(params.shape)))
    eps = 1e-6
    numeric = (objective(params + eps * direction) - objective(params - eps * direction)) / (2 * eps)
    analytic = be.to_float(xp.sum(grads * direction))
    assert analytic == pytest.approx(numeric, rel=1e-6, abs=1e-7)


def test_train_step_draws_its_masks_from_the_seed_and_the_step_counter(backend):
    rng = np.random.default_rng(2)
    mlp = MLP((5, 16, 3), activation="relu", output="softmax", bias=True, dropout=0.5)
    X = backend.asarray(rng.normal(size=(12, 5)))
    a = backend.to_numpy(mlp.dropout_masks(X, 1, 0)[1])
    assert not np.array_equal(a, backend.to_numpy(mlp.dropout_masks(X, 1, 1)[1]))
    assert not np.array_equal(a, backend.to_numpy(mlp.dropout_masks(X, 2, 0)[1]))
    np.testing.assert_array_equal(a, backend.to_numpy(mlp.dropout_masks(X, 1, 0)[1]))
    # the step uses state["t"]: the same result as loss_and_grad with that step's masks
    params = mlp.init_params(backend, rng, "he")
    Y = mlp.one_hot(backend.asarray(rng.integers(0, 3, 12), dtype=backend.index_dtype), backend.dtype)
    opt = make_optimizer("sgd")
    state = opt.init(params)
    state["t"] = 5
    want, _ = mlp.loss_and_grad(params, X, Y, masks=mlp.dropout_masks(X, 9, 5))
    _, state, loss = mlp.train_step(backend.xp.asarray(params, copy=True), opt, state, X, Y, 0.1, seed=9)
    assert backend.to_float(loss) == pytest.approx(backend.to_float(want), rel=1e-6)
    assert state["t"] == 6


def test_masks_are_the_same_on_every_backend(backend):
    import arraynn

    ref = arraynn.get_backend("numpy")
    mlp = MLP((4, 33, 17, 2), dropout=[0.3, 0.6], input_dropout=0.5)
    X = np.zeros((9, 4), dtype=np.float32)
    want = mlp.dropout_masks(X, 123, 456)
    got = mlp.dropout_masks(backend.asarray(X), 123, 456)
    assert [tuple(m.shape) for m in got] == [(9, 4), (9, 33), (9, 17)]
    for w, g in zip(want, got):
        np.testing.assert_array_equal(backend.to_numpy(g), ref.to_numpy(w))


def _blobs(n=160, d=8, k=3, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(scale=3.0, size=(k, d))
    y = rng.integers(0, k, size=n)
    return centers[y] + rng.normal(size=(n, d)), y


def test_training_with_dropout_is_the_same_on_every_backend(backend):
    X, y = _blobs()
    kw = dict(n_hidden_units=(12, 9), epochs=3, learning_rate=0.005, batch_size=16, random_seed=5,
              activation="relu", output="softmax", optimizer="adam", bias=True, init="he",
              dropout=[0.3, 0.2], input_dropout=0.1)
    ref = NNClassifier(**kw).fit(X, y)
    other = NNClassifier(**kw, backend=backend.name, device=_device_arg(backend)).fit(X, y)
    for a, b in zip(ref.coefs_, other.coefs_):
        np.testing.assert_allclose(backend.to_numpy(b), a, rtol=2e-4, atol=2e-5)
    np.testing.assert_allclose(other.loss_curve_, ref.loss_curve_, rtol=1e-4)
    # dropout changed the training, and prediction is deterministic
    plain = NNClassifier(**{**kw, "dropout": 0.0, "input_dropout": 0.0}).fit(X, y)
    assert not np.allclose(plain.loss_curve_, ref.loss_curve_)
    p = other.predict_proba(X)
    np.testing.assert_array_equal(backend.to_numpy(other.predict_proba(X)), backend.to_numpy(p))


def test_changing_the_rates_between_fits_changes_no_other_model(backend):
    """A warm start with other rates builds a new network: compiled steps (JAX) keep the
    network they were built for, so another model with the first rates still trains with
    them."""
    X, y = _blobs()
    kw = dict(n_hidden_units=(12,), epochs=2, learning_rate=0.01, batch_size=16, random_seed=2,
              activation="relu", output="softmax", optimizer="adam", bias=True, init="he",
              dropout=0.5, backend=backend.name, device=_device_arg(backend))
    a = NNClassifier(**kw).fit(X, y)
    first = a._state.net
    a.set_params(dropout=0.0, warm_start=True, epochs=3).fit(X, y)
    assert first.dropout == (0.5,) and a._state.net.dropout == (0.0,)
    # a model with a's first rates and another batch size (a new compiled step on JAX)
    b = NNClassifier(**{**kw, "batch_size": 8}).fit(X, y)
    ref = NNClassifier(**{**kw, "batch_size": 8, "backend": "numpy", "device": None}).fit(X, y)
    np.testing.assert_allclose(b.loss_curve_, ref.loss_curve_, rtol=1e-4)
