"""Optimizers on the flat buffer, and the learning-rate schedules."""

from __future__ import annotations

import math

import numpy as np
import pytest

from arraynn.nn import SCHEDULES, Adam, Momentum, learning_rate_at, make_optimizer
from arraynn.nn.optimizers import one_minus_power


def test_adam_steps_follow_the_definition(backend64):
    be = backend64
    rng = np.random.default_rng(0)
    p0, g = rng.normal(size=30), rng.normal(size=30)
    opt = Adam(beta_1=0.8, beta_2=0.95, epsilon=1e-6)
    params = be.asarray(p0.copy())
    state = opt.init(params)
    assert set(state) == {"t", "m", "v"} and opt.buffers == ("m", "v")
    m = v = np.zeros(30)
    p = p0.copy()
    for t in range(1, 4):
        params, state = opt.update(params, be.asarray(g), state, 0.1)
        m = 0.8 * m + 0.2 * g
        v = 0.95 * v + 0.05 * g * g
        p = p - 0.1 * (m / (1 - 0.8**t)) / (np.sqrt(v / (1 - 0.95**t)) + 1e-6)
    assert state["t"] == 3
    np.testing.assert_allclose(be.to_numpy(params), p, rtol=1e-10)


@pytest.mark.parametrize("nesterov", [False, True])
def test_momentum_follows_the_definition(backend64, nesterov):
    be = backend64
    rng = np.random.default_rng(1)
    p0, g = rng.normal(size=12), rng.normal(size=12)
    opt = Momentum(momentum=0.7, nesterov=nesterov)
    params = be.asarray(p0.copy())
    state = opt.init(params)
    v, p = np.zeros(12), p0.copy()
    for _ in range(3):
        params, state = opt.update(params, be.asarray(g), state, 0.05)
        v = 0.7 * v - 0.05 * g
        p = p + (0.7 * v - 0.05 * g if nesterov else v)
    np.testing.assert_allclose(be.to_numpy(params), p, rtol=1e-12)
    np.testing.assert_allclose(be.to_numpy(state["velocity"]), v, rtol=1e-12)


def test_make_optimizer_takes_the_options_each_optimizer_has():
    assert make_optimizer("sgd", momentum=0.5, beta_1=0.1).buffers == ()
    assert make_optimizer("momentum", momentum=0.5, beta_1=0.1).momentum == 0.5
    assert make_optimizer("adam", momentum=0.5, beta_1=0.1).beta_1 == 0.1
    with pytest.raises(ValueError, match="choose one of"):
        make_optimizer("rmsprop")


def test_schedules():
    assert SCHEDULES == ("constant", "cosine", "adaptive")
    assert [learning_rate_at("constant", 0.1, e, 4) for e in range(4)] == [0.1] * 4
    cos = [learning_rate_at("cosine", 0.1, e, 4) for e in range(4)]
    np.testing.assert_allclose(cos, [0.1 * 0.5 * (1 + math.cos(math.pi * e / 4)) for e in range(4)])
    with pytest.raises(ValueError, match="unknown schedule 'step'"):
        learning_rate_at("step", 0.1, 0, 4)


def test_bias_correction_on_a_device_counter_matches_the_host_values(backend):
    like = backend.asarray(np.zeros(1))
    for t in (1, 2, 10, 1000):
        counter = backend.asarray(np.asarray(t, dtype=np.int32))
        for beta in (0.9, 0.999):
            got = backend.to_float(one_minus_power(beta, counter, like))
            assert got == pytest.approx(1.0 - beta**t, rel=1e-6)
    assert one_minus_power(0.9, 3) == 1.0 - 0.9**3


# ---- no subnormal numbers in the training state ------------------------------------------
def _seeded_with_subnormals(rng, n, dtype):
    """Host values: about a third subnormal (both signs), a few zeros, the rest normal."""
    tiny = np.finfo(dtype).smallest_normal
    x = rng.normal(size=n).astype(dtype)
    sub = rng.random(n) < 0.35
    x[sub] = (rng.uniform(0.01, 0.99, size=sub.sum()) * tiny * rng.choice([-1, 1], sub.sum())).astype(dtype)
    x[rng.random(n) < 0.05] = 0.0
    return x


def _subnormal_count(be, x):
    h = be.to_numpy(x)
    tiny = np.finfo(h.dtype).smallest_normal
    return int(((h != 0) & (np.abs(h) < tiny)).sum())


# Large enough for NumPy's compiled (Numba) update passes, whose threshold is 2**15.
_N_STATE = 40_000


def _update_with(ops, array_type, opt, p, g, state):
    """``opt.update`` with ``ops`` as the ops of ``array_type`` (the cache restored after)."""
    import arraynn.ops as ops_module

    saved = ops_module._by_type.copy()
    try:
        if ops is not None:
            ops_module._by_type[array_type] = ops
        return opt.update(p, g, state, 1e-3)
    finally:
        ops_module._by_type.clear()
        ops_module._by_type.update(saved)


@pytest.mark.parametrize("name", ["sgd", "momentum", "nesterov", "adam"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_one_update_leaves_no_subnormal_number_in_the_training_state(backend, name, dtype):
    # A state seeded with subnormals in the parameters and in every optimizer buffer, and a
    # gradient that is zero where they are (what weight decay alone leaves): after one
    # update none is left, on every backend and through every fast path (NumPy with and
    # without Numba); each fast path gives the generic Array API update's values on the
    # same backend bit for bit.
    from arraynn.ops import Ops, numba_kernels

    if dtype == "float64":
        try:
            be = backend.with_dtype("float64")
        except Exception as exc:  # DtypeNotSupportedError
            pytest.skip(f"no float64 here: {exc}")
    else:
        be = backend
    rng = np.random.default_rng(7)
    p0 = _seeded_with_subnormals(rng, _N_STATE, dtype)
    g0 = rng.normal(size=_N_STATE).astype(dtype) * (rng.random(_N_STATE) < 0.5)
    opt = make_optimizer("momentum" if name == "nesterov" else name, nesterov=name == "nesterov",
                         momentum=0.9)
    bufs0 = {b: _seeded_with_subnormals(rng, _N_STATE, dtype) for b in opt.buffers}
    if "v" in bufs0:
        bufs0["v"] = np.abs(bufs0["v"])
    assert _subnormal_count(be, be.asarray(p0)) > 0.2 * _N_STATE

    def run(ops):
        state = {"t": 3, **{b: be.asarray(x.copy()) for b, x in bufs0.items()}}
        params = be.asarray(p0.copy())
        return _update_with(ops, type(params), opt, params, be.asarray(g0), state)

    ref_params, ref_state = run(Ops(be.xp))
    compiled = [True, False] if be.name == "numpy" and numba_kernels.available() else [None]
    for use_numba in compiled:
        if use_numba is not None:
            numba_kernels.set_enabled(use_numba)
        try:
            params, state = run(None)  # the backend's own ops
        finally:
            numba_kernels.set_enabled(True)
        assert _subnormal_count(be, params) == 0
        for b in opt.buffers:
            assert _subnormal_count(be, state[b]) == 0, b
        assert be.to_numpy(params).tobytes() == be.to_numpy(ref_params).tobytes()
        for b in opt.buffers:
            assert be.to_numpy(state[b]).tobytes() == be.to_numpy(ref_state[b]).tobytes(), b
    # the update did its work: the normal values moved
    moved = (g0 != 0) & (np.abs(p0) > 1e-3)
    assert (be.to_numpy(params)[moved] != p0[moved]).mean() > 0.99


def test_flush_subnormal_gives_plus_zero_on_every_backend(backend):
    from arraynn.ops.generic import flush_subnormal

    tiny = float(np.finfo(np.float32).smallest_normal)
    x = np.array([-1e-40, 1e-40, -0.0, 0.0, -tiny, tiny, 2.0, -np.inf, np.nan], dtype=np.float32)
    got = backend.to_numpy(flush_subnormal(backend.asarray(x), backend.xp))
    np.testing.assert_array_equal(got, [0.0, 0.0, 0.0, 0.0, -tiny, tiny, 2.0, -np.inf, np.nan])
    assert not np.signbit(got[:4]).any()
