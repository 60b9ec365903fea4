"""The kernels seam: the generic Array API kernels on every backend, and NumPy's fast
path equal to them (bit for bit on NumPy, to float32 rounding against other backends)."""

from __future__ import annotations

import numpy as np
import pytest

import arraynn
from arraynn import kernels as kmod
from arraynn.activations import ACTIVATIONS
from arraynn.kernels import Kernels, NumpyKernels, kernels_for, kernels_of
from arraynn.losses import cross_entropy, output_probabilities
from arraynn.mlp import MLP, one_hot
from arraynn.optimizers import make_optimizer
from arraynn.regularizers import penalty_grad

NP = arraynn.get_backend("numpy")
FAST = NumpyKernels(NP.xp)
GENERIC_NP = Kernels(NP.xp)


@pytest.fixture(autouse=True)
def _fast_paths_on():
    kmod.set_fast_paths(True)
    yield
    kmod.set_fast_paths(True)


def _host(rng, *shape, scale=1.0):
    return (scale * rng.normal(size=shape)).astype(np.float32)


def _close(be, got, want, rtol=2e-6, atol=1e-6):
    np.testing.assert_allclose(be.to_numpy(got), want, rtol=rtol, atol=atol)


# --- selection --------------------------------------------------------------------------

def test_numpy_gets_its_fast_path_and_others_the_generic_kernels(backend):
    k = kernels_for(backend.xp)
    if backend.name == "cupy":
        from arraynn._cupy_kernels import CupyKernels

        expected = CupyKernels
    else:
        expected = NumpyKernels if backend.name == "numpy" else Kernels
    assert type(k) is expected
    assert kernels_of(backend.asarray(np.zeros((2, 2)))) is k


def test_fast_paths_can_be_turned_off():
    kmod.set_fast_paths(False)
    assert type(kernels_for(NP.xp)) is Kernels
    assert type(kernels_of(np.zeros(3, dtype=np.float32))) is Kernels
    kmod.set_fast_paths(True)
    assert type(kernels_for(NP.xp)) is NumpyKernels


# --- the generic kernels on every backend, against the definitions ---------------------

@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_generic_activation_and_grad(backend, name):
    rng = np.random.default_rng(0)
    z, g = _host(rng, 7, 5, scale=2.0), _host(rng, 7, 5)
    k = Kernels(backend.xp)
    a = k.activate(name, backend.asarray(z))
    act = ACTIVATIONS[name]
    a_ref = act.forward(z)
    _close(backend, a, a_ref)
    _close(backend, k.activate_grad(name, a, backend.asarray(g)), act.grad(a_ref, g))
    # and NumPy's fast path gives the same values from the same inputs
    a_fast = FAST.activate(name, z.copy())
    np.testing.assert_allclose(a_fast, backend.to_numpy(a), rtol=2e-6, atol=1e-6)


@pytest.mark.parametrize("output", ["softmax", "sigmoid"])
def test_generic_loss_and_delta(backend, output):
    rng = np.random.default_rng(1)
    z = _host(rng, 9, 4, scale=3.0)
    Y = np.eye(4, dtype=np.float32)[rng.integers(0, 4, size=9)]
    k = Kernels(backend.xp)
    zd, Yd = backend.asarray(z), backend.asarray(Y)
    loss, delta = k.loss_and_delta(output, zd, Yd)
    assert loss.shape == () and delta.shape == (9, 4)
    _close(backend, loss, cross_entropy(z, Y, output), rtol=1e-5)
    _close(backend, delta, output_probabilities(z, output) - Y)
    _close(backend, k.output_delta(output, zd, Yd), output_probabilities(z, output) - Y)
    _close(backend, zd, z, rtol=0, atol=0)  # the logits are left alone
    f_loss, f_delta = FAST.loss_and_delta(output, z.copy(), Y)
    np.testing.assert_allclose(f_loss, backend.to_float(loss), rtol=1e-5)
    np.testing.assert_allclose(f_delta, backend.to_numpy(delta), rtol=2e-6, atol=1e-6)


def test_generic_penalty_bias_and_one_hot(backend):
    rng = np.random.default_rng(2)
    w, g = _host(rng, 5, 3), _host(rng, 5, 3)
    k = Kernels(backend.xp)
    got = k.penalize(backend.asarray(w), backend.asarray(g), 0.3, 0.7)
    _close(backend, got, penalty_grad(w, g, 0.3, 0.7))
    _close(backend, k.add_bias(backend.asarray(g), backend.asarray(w[0])), g + w[0])
    _close(backend, k.bias_grad(backend.asarray(g)), g.sum(axis=0), rtol=1e-5)
    labels = backend.asarray(np.array([2, 0, 1, 2]), dtype=backend.index_dtype)
    oh = k.one_hot(labels, 3, backend.dtype)
    assert oh.dtype == backend.dtype
    _close(backend, oh, np.eye(3)[[2, 0, 1, 2]], rtol=0, atol=0)


def _param_set(rng):
    return [_host(rng, 6, 4), _host(rng, 4), _host(rng, 4, 3), _host(rng, 3)]


def test_generic_updates_on_every_backend_match_numpys_fast_path(backend):
    rng = np.random.default_rng(3)
    host_p, host_g = _param_set(rng), _param_set(rng)
    host_m = [0.1 * g for g in _param_set(rng)]
    host_v = [np.abs(g) for g in _param_set(rng)]
    k = Kernels(backend.xp)
    # copies: on NumPy, asarray returns the host array itself
    p, g = [backend.asarray(a.copy()) for a in host_p], [backend.asarray(a.copy()) for a in host_g]
    m, v = [backend.asarray(a.copy()) for a in host_m], [backend.asarray(a.copy()) for a in host_v]
    k.adam(p, g, m, v, 0.01, 0.9, 0.999, 1e-8)
    fp, fg = [a.copy() for a in host_p], [a.copy() for a in host_g]
    fm, fv = [a.copy() for a in host_m], [a.copy() for a in host_v]
    FAST.adam(fp, fg, fm, fv, 0.01, 0.9, 0.999, 1e-8)
    for got, want in zip(p + m + v, fp + fm + fv):
        _close(backend, got, want)
    k.sgd(p, g, 0.05)
    FAST.sgd(fp, fg, 0.05)
    for got, want in zip(p, fp):
        _close(backend, got, want)
    for got, want in zip(g, host_g):  # gradients are only read
        _close(backend, got, want, rtol=0, atol=0)


# --- NumPy's fast path against the generic kernels, bit for bit -------------------------

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_fast_activations_equal_generic_exactly(name, dtype):
    rng = np.random.default_rng(4)
    z = (3.0 * rng.normal(size=(33, 17))).astype(dtype)
    g = rng.normal(size=(33, 17)).astype(dtype)
    a = GENERIC_NP.activate(name, z)
    a_fast = FAST.activate(name, z.copy())
    np.testing.assert_array_equal(a_fast, a)
    assert a_fast.dtype == dtype
    want = GENERIC_NP.activate_grad(name, a, g)
    a_before = a.copy()
    got = FAST.activate_grad(name, a, g.copy())
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(a, a_before)  # only g is consumed


def test_fast_relu_grad_is_zero_where_the_output_is_not_positive():
    # (the fast path multiplies by the mask: equal to the generic where() for finite g)
    a = np.array([[0.0, 1.0, np.nan, 2.0, -0.0]], dtype=np.float32)
    g = np.array([[5.0, 6.0, 7.0, np.inf, -3.0]], dtype=np.float32)
    np.testing.assert_array_equal(FAST.activate_grad("relu", a, g.copy()),
                                  GENERIC_NP.activate_grad("relu", a, g))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("output", ["softmax", "sigmoid"])
def test_fast_loss_and_delta_equal_generic_exactly(output, dtype):
    rng = np.random.default_rng(5)
    z = (4.0 * rng.normal(size=(50, 10))).astype(dtype)
    Y = np.eye(10, dtype=dtype)[rng.integers(0, 10, size=50)]
    z_before = z.copy()
    loss, delta = FAST.loss_and_delta(output, z, Y)
    ref_loss, ref_delta = GENERIC_NP.loss_and_delta(output, z, Y)
    np.testing.assert_array_equal(z, z_before)
    assert loss == ref_loss and loss.dtype == dtype
    np.testing.assert_array_equal(delta, ref_delta)
    np.testing.assert_array_equal(FAST.output_delta(output, z, Y), ref_delta)


def test_fast_penalty_bias_and_one_hot_equal_generic_exactly():
    rng = np.random.default_rng(6)
    w, g = _host(rng, 20, 7), _host(rng, 20, 7)
    for l1, l2 in [(0.0, 0.5), (0.3, 0.0), (0.2, 0.4)]:
        np.testing.assert_array_equal(FAST.penalize(w, g.copy(), l1, l2),
                                      GENERIC_NP.penalize(w, g, l1, l2))
    np.testing.assert_array_equal(FAST.add_bias(g.copy(), w[0]), GENERIC_NP.add_bias(g, w[0]))
    np.testing.assert_array_equal(FAST.bias_grad(g), GENERIC_NP.bias_grad(g))
    labels = np.array([3, 0, 6, 6, 1])
    oh = FAST.one_hot(labels, 7, np.float32)
    np.testing.assert_array_equal(oh, GENERIC_NP.one_hot(labels, 7, np.float32))
    assert oh.dtype == np.float32


def test_fast_updates_equal_generic_exactly():
    rng = np.random.default_rng(7)
    p, g = _param_set(rng), _param_set(rng)
    m = [0.1 * a for a in _param_set(rng)]
    v = [np.abs(a) for a in _param_set(rng)]
    copies = [[a.copy() for a in lst] for lst in (p, g, m, v)]
    for step in range(3):
        GENERIC_NP.adam(p, g, m, v, 0.01 / (step + 1), 0.9, 0.999, 1e-8)
        FAST.adam(*copies, 0.01 / (step + 1), 0.9, 0.999, 1e-8)
    for want, got in zip(p + g + m + v, sum(copies, [])):
        np.testing.assert_array_equal(got, want)
    GENERIC_NP.sgd(p, g, 0.1)
    FAST.sgd(copies[0], copies[1], 0.1)
    for want, got in zip(p, copies[0]):
        np.testing.assert_array_equal(got, want)


CONFIGS = {
    "seed": dict(sizes=(12, 5, 3), activation="sigmoid", output="sigmoid", bias=False,
                 optimizer="sgd", init="uniform", l1=0.0, l2=0.5),
    "modern": dict(sizes=(12, 8, 6, 3), activation="relu", output="softmax", bias=True,
                   optimizer="adam", init="he", l1=0.0, l2=0.0),
    "tanh-l1": dict(sizes=(12, 6, 3), activation="tanh", output="softmax", bias=True,
                    optimizer="sgd", init="glorot", l1=0.1, l2=0.2),
}


def _train(cfg, fast, steps=5):
    kmod.set_fast_paths(fast)
    rng = np.random.default_rng(8)
    mlp = MLP(cfg["sizes"], activation=cfg["activation"], output=cfg["output"], bias=cfg["bias"])
    params = mlp.init_params(NP, rng, cfg["init"])
    opt = make_optimizer(cfg["optimizer"], 0.01)
    state = opt.init(params)
    X = rng.normal(size=(steps, 16, cfg["sizes"][0])).astype(np.float32)
    labels = rng.integers(0, cfg["sizes"][-1], size=(steps, 16))
    losses = []
    for s in range(steps):
        Y = one_hot(labels[s], cfg["sizes"][-1], NP.dtype)
        params, state, loss = mlp.train_step(params, opt, state, X[s], Y, cfg["l1"], cfg["l2"])
        losses.append(float(loss))
    z, inputs = mlp.forward(params, X[0])
    grads = mlp.backward(params, z, inputs, one_hot(labels[0], cfg["sizes"][-1], NP.dtype),
                         cfg["l1"], cfg["l2"])
    return params, losses, grads, [a.copy() for a in X]


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_training_steps_with_the_fast_path_equal_the_generic_path_exactly(name):
    fast_params, fast_losses, fast_grads, X_fast = _train(CONFIGS[name], True)
    params, losses, grads, X = _train(CONFIGS[name], False)
    assert fast_losses == losses
    for a, b in zip(fast_params + fast_grads, params + grads):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(X_fast, X):  # the inputs are never written
        np.testing.assert_array_equal(a, b)
