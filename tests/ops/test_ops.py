"""The ops seam: the generic Array API ops on every backend against the definitions,
and NumPy's fast path equal to them (bit for bit on NumPy, to float32 rounding against
other backends)."""

from __future__ import annotations

import numpy as np
import pytest

import arraynn
from arraynn import ops as ops_module
from arraynn.nn import MLP, make_optimizer
from arraynn.ops import ACTIVATIONS, Ops, ops_for, ops_of
from arraynn.ops.numpy import NumpyOps

NP = arraynn.get_backend("numpy")
FAST = NumpyOps(NP.xp)
GENERIC_NP = Ops(NP.xp)


@pytest.fixture(autouse=True)
def _fast_paths_on():
    ops_module.set_fast_paths(True)
    yield
    ops_module.set_fast_paths(True)


def _host(rng, *shape, scale=1.0):
    return (scale * rng.normal(size=shape)).astype(np.float32)


def _close(be, got, want, rtol=2e-6, atol=1e-6):
    np.testing.assert_allclose(be.to_numpy(got), want, rtol=rtol, atol=atol)


# --- the definitions, written independently with NumPy in float64 ----------------------

def _act(name, z):
    z = z.astype(np.float64)
    return {"sigmoid": 1.0 / (1.0 + np.exp(-z)), "tanh": np.tanh(z), "relu": np.maximum(z, 0.0)}[name]


def _act_grad(name, a, g):
    return {"sigmoid": g * a * (1.0 - a), "tanh": g * (1.0 - a * a), "relu": g * (a > 0)}[name]


def _proba(output, z):
    z = z.astype(np.float64)
    if output == "sigmoid":
        return 1.0 / (1.0 + np.exp(-z))
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _cross_entropy(output, z, Y):
    p = _proba(output, z)
    if output == "sigmoid":
        return -np.sum(Y * np.log(p) + (1 - Y) * np.log1p(-p))
    return -np.sum(Y * np.log(p))


# --- selection --------------------------------------------------------------------------

def test_numpy_gets_its_fast_path_and_others_the_generic_ops(backend):
    ops = ops_for(backend.xp)
    library = arraynn.backends.library_of(backend.xp)
    assert type(ops) is type(library.ops(backend.xp))
    if backend.xp is NP.xp:
        assert type(ops) is NumpyOps
    assert ops_of(backend.asarray(np.zeros((2, 2)))) is ops


def test_fast_paths_can_be_turned_off():
    ops_module.set_fast_paths(False)
    assert type(ops_for(NP.xp)) is Ops
    assert type(ops_of(np.zeros(3, dtype=np.float32))) is Ops
    ops_module.set_fast_paths(True)
    assert type(ops_for(NP.xp)) is NumpyOps


# --- the generic ops on every backend, against the definitions --------------------------

@pytest.mark.parametrize("name", ACTIVATIONS)
def test_generic_activation_and_grad(backend, name):
    rng = np.random.default_rng(0)
    z, g = _host(rng, 7, 5, scale=2.0), _host(rng, 7, 5)
    ops = Ops(backend.xp)
    a = ops.activate(name, backend.asarray(z))
    _close(backend, a, _act(name, z))
    a_host = backend.to_numpy(a).astype(np.float64)
    _close(backend, ops.activate_grad(name, a, backend.asarray(g)), _act_grad(name, a_host, g))
    # and NumPy's fast path gives the same values from the same inputs
    a_fast = FAST.activate(name, z.copy())
    np.testing.assert_allclose(a_fast, backend.to_numpy(a), rtol=2e-6, atol=1e-6)


@pytest.mark.parametrize("output", ["softmax", "sigmoid"])
def test_generic_loss_and_delta(backend, output):
    rng = np.random.default_rng(1)
    z = _host(rng, 9, 4, scale=3.0)
    Y = np.eye(4, dtype=np.float32)[rng.integers(0, 4, size=9)]
    ops = Ops(backend.xp)
    zd, Yd = backend.asarray(z), backend.asarray(Y)
    loss, delta = ops.loss_and_delta(output, zd, Yd)
    assert loss.shape == () and delta.shape == (9, 4)
    _close(backend, loss, _cross_entropy(output, z, Y), rtol=1e-5)
    _close(backend, delta, _proba(output, z) - Y)
    _close(backend, ops.probabilities(output, zd), _proba(output, z))
    _close(backend, zd, z, rtol=0, atol=0)  # the logits are left alone
    f_loss, f_delta = FAST.loss_and_delta(output, z.copy(), Y)
    np.testing.assert_allclose(f_loss, backend.to_float(loss), rtol=1e-5)
    np.testing.assert_allclose(f_delta, backend.to_numpy(delta), rtol=2e-6, atol=1e-6)


def _subnormal_logits(dtype):
    """Logits whose softmax has exact zeros, subnormal and normal probabilities."""
    tiny = np.finfo(dtype).smallest_normal
    gap = -np.log(tiny)  # exp(-gap) is the smallest normal number
    z = np.zeros((4, 6), dtype=dtype)
    z[0, 1:] = [-gap - 1.0, -gap - 5.0, -gap + 1.0, -gap - 60.0, -1.0]  # subnormal, zero, normal
    z[1, :3] = [-gap - 2.0, 3.0, 0.5]
    z[2] = np.linspace(-1.0, 1.0, 6)
    z[3, 2] = -gap - 0.25
    return z


@pytest.mark.parametrize("output", ["softmax", "sigmoid"])
def test_generic_error_term_holds_no_subnormal_numbers(backend, output):
    # The softmax makes subnormal probabilities for classes far below the row's maximum;
    # the error term p - y flushes them to zero (the loss is not changed).
    z = _subnormal_logits(np.float32)
    p = _proba(output, z)
    tiny = np.finfo(np.float32).smallest_normal
    if output == "softmax":  # the input does make subnormal probabilities in float32
        assert ((p.astype(np.float32) > 0) & (p.astype(np.float32) < tiny)).sum() >= 3
    Y = np.eye(6, dtype=np.float32)[[0, 1, 5, 3]]
    loss, delta = Ops(backend.xp).loss_and_delta(output, backend.asarray(z), backend.asarray(Y))
    d = backend.to_numpy(delta)
    assert not ((d != 0) & (np.abs(d) < tiny)).any()
    want = np.where(p < tiny, 0.0, p) - Y
    np.testing.assert_allclose(d, want, rtol=2e-6, atol=4 * tiny)
    _close(backend, loss, _cross_entropy(output, z, Y), rtol=1e-5)
    f_loss, f_delta = FAST.loss_and_delta(output, z.copy(), Y)
    np.testing.assert_array_equal(f_delta, GENERIC_NP.loss_and_delta(output, z, Y)[1])
    # the weighted error term flushes them too: weights of 1 give the unweighted one
    ones = backend.asarray(np.ones(4, dtype=np.float32))
    w_loss, w_delta = Ops(backend.xp).weighted_loss_and_delta(
        output, backend.asarray(z), backend.asarray(Y), ones)
    np.testing.assert_array_equal(backend.to_numpy(w_delta), d)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_flush_subnormal_sets_only_the_values_below_the_smallest_normal_to_zero(dtype):
    from arraynn.ops.generic import flush_subnormal

    tiny = np.finfo(dtype).smallest_normal
    p = np.array([0.0, tiny / 2, tiny / 1e6, tiny, 2 * tiny, 0.5, 1.0, np.nan], dtype=dtype)
    got = flush_subnormal(p, NP.xp)
    np.testing.assert_array_equal(got, [0.0, 0.0, 0.0, tiny, 2 * tiny, 0.5, 1.0, np.nan])
    assert got.dtype == dtype and not np.signbit(got[:2]).any()


def test_generic_penalty_gradients_bias_and_one_hot(backend):
    rng = np.random.default_rng(2)
    w, g = _host(rng, 5, 3), _host(rng, 5, 3)
    ops = Ops(backend.xp)
    got = ops.penalize(backend.asarray(w), backend.asarray(g), 0.3, 0.7)
    _close(backend, got, g + 0.7 * w + 0.3 * np.sign(w))
    _close(backend, ops.penalty([backend.asarray(w)], 0.3, 0.7),
           0.3 * np.abs(w).sum() + 0.35 * (w.astype(np.float64) ** 2).sum(), rtol=1e-5)
    _close(backend, ops.add_bias(backend.asarray(g), backend.asarray(w[0])), g + w[0])
    _close(backend, ops.bias_grad(backend.asarray(g)), g.sum(axis=0), rtol=1e-5)
    a = _host(rng, 4, 5)
    _close(backend, ops.weight_grad(backend.asarray(a), backend.asarray(g[:4])), a.T @ g[:4],
           rtol=1e-5)
    labels = backend.asarray(np.array([2, 0, 1, 2]), dtype=backend.index_dtype)
    oh = ops.one_hot(labels, 3, backend.dtype)
    assert oh.dtype == backend.dtype
    _close(backend, oh, np.eye(3)[[2, 0, 1, 2]], rtol=0, atol=0)


def test_pack_returns_the_buffer_only_when_every_gradient_landed_in_it(backend):
    xp = backend.xp
    flat = backend.asarray(np.arange(6.0))
    views = [xp.reshape(flat[0:4], (2, 2)), flat[4:6]]
    ops = Ops(xp)
    assert ops.pack(views, views, flat) is flat
    other = [backend.asarray(np.ones((2, 2))), views[1]]
    _close(backend, ops.pack(other, views, flat), [1, 1, 1, 1, 4, 5], rtol=0, atol=0)


def _buffers(rng, n=40):
    p, g, m = _host(rng, n), _host(rng, n), 0.1 * _host(rng, n)
    return p, g, m, np.abs(_host(rng, n))


def test_generic_updates_on_every_backend_match_numpys_fast_path(backend):
    rng = np.random.default_rng(3)
    hp, hg, hm, hv = _buffers(rng)
    ops = Ops(backend.xp)
    # copies: on NumPy, asarray returns the host array itself
    p, g, m, v = (backend.asarray(a.copy()) for a in (hp, hg, hm, hv))
    p, m, v = ops.adam(p, g, m, v, 0.01, 0.9, 0.999, 1e-8)
    fp, fg, fm, fv = (a.copy() for a in (hp, hg, hm, hv))
    fp, fm, fv = FAST.adam(fp, fg, fm, fv, 0.01, 0.9, 0.999, 1e-8)
    for got, want in zip((p, m, v), (fp, fm, fv)):
        _close(backend, got, want)
    p = ops.sgd(p, g, 0.05)
    fp = FAST.sgd(fp, fg, 0.05)
    _close(backend, p, fp)
    for nesterov in (False, True):
        p, v = ops.momentum(p, g, v, 0.05, 0.9, nesterov)
        fp, fv = FAST.momentum(fp, fg, fv, 0.05, 0.9, nesterov)
        _close(backend, p, fp)
        _close(backend, v, fv)
    _close(backend, g, hg, rtol=0, atol=0)  # gradients are only read


# --- NumPy's fast path against the generic ops, bit for bit ------------------------------

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", ACTIVATIONS)
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


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("rate", [0.0, 0.1, 0.3, 0.5, 0.999])
def test_fast_dropout_masks_equal_generic_exactly(rate, dtype):
    for shape, seed, counter, stream, first in [
            ((128, 784), 0, 0, 0xD0D0, 0), ((96, 512), 2**40 + 5, 12345, 3, 0),
            ((3, 7), 7, np.int64(2**33 + 1), 0xD0CF, 21), ((1,), 1, 5, 0, 0),
            ((64, 512), 3, 8, 0xD0D0, 64 * 512)]:  # a data-parallel rank's rows
        want = GENERIC_NP.dropout_mask(shape, rate, seed, int(counter), stream, dtype, first=first)
        got = FAST.dropout_mask(shape, rate, seed, counter, stream, dtype, first=first)
        assert got.shape == want.shape and got.dtype == want.dtype == dtype
        assert got.tobytes() == want.tobytes()
    # fresh arrays each time (the buffers behind them are reused)
    a = FAST.dropout_mask((4, 5), rate, 1, 2, 3, dtype)
    b = FAST.dropout_mask((4, 5), rate, 1, 3, 3, dtype)
    np.testing.assert_array_equal(a, GENERIC_NP.dropout_mask((4, 5), rate, 1, 2, 3, dtype))
    assert a is not b


def test_fast_dropout_masks_check_the_rate_and_take_a_device_counter():
    with pytest.raises(ValueError, match="dropout rate"):
        FAST.dropout_mask((2, 3), 1.0, 0, 0, 0, np.float32)
    with pytest.raises(ValueError, match="draws elements"):
        FAST.dropout_mask((2, 3), 0.5, 0, 0, 0, np.float32, first=2**31 - 3)
    counter = np.asarray(41, dtype=np.int32)  # a 0-d array: the generic path
    np.testing.assert_array_equal(FAST.dropout_mask((2, 3), 0.5, 0, counter, 0, np.float32),
                                  GENERIC_NP.dropout_mask((2, 3), 0.5, 0, 41, 0, np.float32))


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
    z[:4, :6] = _subnormal_logits(dtype)  # probabilities the error term flushes to zero
    Y = np.eye(10, dtype=dtype)[rng.integers(0, 10, size=50)]
    z_before = z.copy()
    loss, delta = FAST.loss_and_delta(output, z, Y)
    ref_loss, ref_delta = GENERIC_NP.loss_and_delta(output, z, Y)
    np.testing.assert_array_equal(z, z_before)
    assert loss == ref_loss and loss.dtype == dtype
    np.testing.assert_array_equal(delta, ref_delta)


def test_fast_penalty_gradients_bias_and_one_hot_equal_generic_exactly():
    rng = np.random.default_rng(6)
    w, g = _host(rng, 20, 7), _host(rng, 20, 7)
    for l1, l2 in [(0.0, 0.5), (0.3, 0.0), (0.2, 0.4)]:
        np.testing.assert_array_equal(FAST.penalize(w, g.copy(), l1, l2),
                                      GENERIC_NP.penalize(w, g, l1, l2))
    np.testing.assert_array_equal(FAST.add_bias(g.copy(), w[0]), GENERIC_NP.add_bias(g, w[0]))
    out = np.empty(7, np.float32)
    assert FAST.bias_grad(g, out) is out
    np.testing.assert_array_equal(out, GENERIC_NP.bias_grad(g))
    a = _host(rng, 20, 5)
    out = np.empty((5, 7), np.float32)
    assert FAST.weight_grad(a, g, out) is out
    np.testing.assert_array_equal(out, GENERIC_NP.weight_grad(a, g))
    labels = np.array([3, 0, 6, 6, 1])
    oh = FAST.one_hot(labels, 7, np.float32)
    np.testing.assert_array_equal(oh, GENERIC_NP.one_hot(labels, 7, np.float32))
    assert oh.dtype == np.float32


def test_fast_updates_equal_generic_exactly_and_work_in_place():
    rng = np.random.default_rng(7)
    bufs = _buffers(rng)
    copies = [a.copy() for a in bufs]
    p, g, m, v = bufs
    fp, fg, fm, fv = copies
    for step in range(3):
        p, m, v = GENERIC_NP.adam(p, g, m, v, 0.01 / (step + 1), 0.9, 0.999, 1e-8)
        out = FAST.adam(fp, fg, fm, fv, 0.01 / (step + 1), 0.9, 0.999, 1e-8)
        assert all(a is b for a, b in zip(out, (fp, fm, fv)))  # in place
    for want, got in zip((p, g, m, v), (fp, fg, fm, fv)):
        np.testing.assert_array_equal(got, want)
    p = GENERIC_NP.sgd(p, g, 0.1)
    assert FAST.sgd(fp, fg, 0.1) is fp
    np.testing.assert_array_equal(fp, p)
    for nesterov in (False, True):
        p, v = GENERIC_NP.momentum(p, g, v, 0.1, 0.8, nesterov)
        fp, fv = FAST.momentum(fp, fg, fv, 0.1, 0.8, nesterov)
        np.testing.assert_array_equal(fp, p)
        np.testing.assert_array_equal(fv, v)


CONFIGS = {
    "seed": dict(sizes=(12, 5, 3), activation="sigmoid", output="sigmoid", bias=False,
                 optimizer="sgd", init="uniform", l1=0.0, l2=0.5),
    "modern": dict(sizes=(12, 8, 6, 3), activation="relu", output="softmax", bias=True,
                   optimizer="adam", init="he", l1=0.0, l2=0.0),
    "tanh-l1": dict(sizes=(12, 6, 3), activation="tanh", output="softmax", bias=True,
                    optimizer="momentum", init="glorot", l1=0.1, l2=0.2),
}


def _train(cfg, fast, steps=5):
    ops_module.set_fast_paths(fast)
    rng = np.random.default_rng(8)
    mlp = MLP(cfg["sizes"], activation=cfg["activation"], output=cfg["output"], bias=cfg["bias"])
    params = mlp.init_params(NP, rng, cfg["init"])
    opt = make_optimizer(cfg["optimizer"])
    state = opt.init(params)
    grad_buffer = np.empty_like(params)
    X = rng.normal(size=(steps, 16, cfg["sizes"][0])).astype(np.float32)
    labels = rng.integers(0, cfg["sizes"][-1], size=(steps, 16))
    losses = []
    for s in range(steps):
        Y = mlp.one_hot(labels[s], NP.dtype)
        params, state, loss = mlp.train_step(params, opt, state, X[s], Y, 0.01, cfg["l1"],
                                             cfg["l2"], grad_buffer=grad_buffer)
        losses.append(float(loss))
    Y0 = mlp.one_hot(labels[0], NP.dtype)
    _, grads = mlp.loss_and_grad(params, X[0], Y0, cfg["l1"], cfg["l2"], grad_buffer)
    return params, losses, grads.copy(), [a.copy() for a in X]


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_training_steps_with_the_fast_path_equal_the_generic_path_exactly(name):
    fast_params, fast_losses, fast_grads, X_fast = _train(CONFIGS[name], True)
    params, losses, grads, X = _train(CONFIGS[name], False)
    assert fast_losses == losses
    np.testing.assert_array_equal(fast_params, params)
    np.testing.assert_array_equal(fast_grads, grads)
    for a, b in zip(X_fast, X):  # the inputs are never written
        np.testing.assert_array_equal(a, b)


class _NoSignNamespace:
    """A namespace without ``sign`` and ``maximum`` against a Python scalar: array-api-compat's
    CuPy ``sign`` writes through a boolean mask (a read back to the host per call), and its
    torch ``maximum`` turns a Python scalar into a tensor (a copy to the device per call)."""

    def __init__(self, xp):
        self._xp = xp

    def __getattr__(self, name):
        return getattr(self._xp, name)

    def sign(self, x):
        raise AssertionError("the generic path called xp.sign")

    def maximum(self, a, b):
        if isinstance(a, (int, float)) or isinstance(b, (int, float)):
            raise AssertionError("the generic path called xp.maximum with a Python scalar")
        return self._xp.maximum(a, b)


def test_generic_penalty_relu_and_softplus_avoid_the_costly_wrappers(backend):
    xp = _NoSignNamespace(backend.xp)
    K, ref = Ops(xp), Ops(backend.xp)
    w_host = np.array([[-2.0, -0.0, 0.0], [3.0, np.nan, -np.inf]], dtype=np.float32)
    w, g = backend.asarray(w_host), backend.asarray(np.ones((2, 3), dtype=np.float32))
    got = backend.to_numpy(K.penalize(w, g, 0.5, 0.0))
    np.testing.assert_array_equal(got, 1.0 + 0.5 * np.sign(w_host))
    assert not np.signbit(got[0, 1])
    z = backend.asarray(w_host)
    np.testing.assert_array_equal(backend.to_numpy(K.activate("relu", z)),
                                  np.maximum(w_host, np.float32(0.0)))
    y = backend.asarray(np.eye(3, dtype=np.float32)[[0, 2]])
    zf = backend.asarray(np.array([[-2.0, 0.5, 0.0], [3.0, 1.0, -4.0]], dtype=np.float32))
    loss, _ = K.loss_and_delta("sigmoid", zf, y)
    np.testing.assert_array_equal(backend.to_numpy(loss),
                                  backend.to_numpy(ref.loss_and_delta("sigmoid", zf, y)[0]))
