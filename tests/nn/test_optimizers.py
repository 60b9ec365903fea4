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
