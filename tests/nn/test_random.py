"""The counter-based generator: the same bits on every backend, from the key alone."""

from __future__ import annotations

import numpy as np
import pytest

from arraynn.nn import random

M32 = 0xFFFFFFFF


def _mix(x: int) -> int:
    """lowbias32 on a Python int: the specification the array code must meet."""
    x ^= x >> 16
    x = (x * 0x21F0AAAD) & M32
    x ^= x >> 15
    x = (x * 0x735A2D97) & M32
    return x ^ (x >> 15)


def _reference_bits(n: int, seed: int, counter: int, stream: int) -> np.ndarray:
    k = _mix((seed & M32) ^ 0x1E3779B9)
    k = _mix(k ^ ((seed >> 32) & M32))
    k = _mix(k ^ stream) & 0x7FFFFFFF
    a = _mix(k ^ counter)
    b = _mix(a ^ 0x632BE5AB) & 0x7FFFFFFF
    a &= 0x7FFFFFFF
    return np.array([_mix(_mix(i ^ a) ^ b) for i in range(n)], dtype=np.int64)


def _host(be, x) -> np.ndarray:
    return be.to_numpy(x).astype(np.int64)


@pytest.mark.parametrize(("seed", "counter", "stream"), [(0, 0, 0), (7, 12, 3), (2**40 + 5, 99999, 0xD0D0)])
def test_bits_match_the_python_specification_on_every_backend(backend, seed, counter, stream):
    xp = backend.xp
    got = random.random_bits(xp, (3, 7), seed, counter, stream, device=backend.device)
    assert got.shape == (3, 7)
    np.testing.assert_array_equal(_host(backend, got).ravel(), _reference_bits(21, seed, counter, stream))


def test_a_device_counter_gives_the_bits_of_the_host_counter(backend):
    xp = backend.xp
    counter = backend.asarray(np.asarray(41, dtype=np.int32))
    got = random.random_bits(xp, (50,), 3, counter, 1, device=backend.device)
    want = random.random_bits(xp, (50,), 3, 41, 1, device=backend.device)
    np.testing.assert_array_equal(_host(backend, got), _host(backend, want))


def test_uniform_floats_are_in_the_unit_interval_and_look_uniform(backend):
    u = backend.to_numpy(random.uniform(backend.xp, (200_000,), 1, 0, 0, backend.dtype,
                                        device=backend.device))
    assert u.dtype == np.dtype(backend.dtype_name)
    assert u.min() >= 0.0 and u.max() < 1.0
    assert abs(u.mean() - 0.5) < 0.005 and abs(u.var() - 1 / 12) < 0.002
    # neighbours are not correlated
    assert abs(np.corrcoef(u[:-1], u[1:])[0, 1]) < 0.01


def test_seeds_counters_and_streams_give_different_bits(backend):
    xp, dev = backend.xp, backend.device
    base = _host(backend, random.random_bits(xp, (64,), 1, 5, 0, device=dev))
    for seed, counter, stream in ((2, 5, 0), (1, 6, 0), (1, 5, 1)):
        other = _host(backend, random.random_bits(xp, (64,), seed, counter, stream, device=dev))
        assert np.mean(base == other) < 0.05


def test_random_below_is_in_range_and_hits_every_value(backend):
    r = _host(backend, random.random_below(backend.xp, (5000,), 5, 0, 3, 0, device=backend.device))
    assert r.min() == 0 and r.max() == 4
    counts = np.bincount(r, minlength=5)
    assert np.all(np.abs(counts / 5000 - 0.2) < 0.03)


def test_dropout_mask_keeps_the_expected_scale(backend):
    rate = 0.3
    m = backend.to_numpy(random.dropout_mask(backend.xp, (400, 500), rate, 0, 1, 2, backend.dtype,
                                             device=backend.device))
    assert set(np.unique(m)) <= {0.0, np.float32(1 / 0.7)}
    assert abs(np.mean(m == 0.0) - rate) < 0.005
    assert abs(m.mean() - 1.0) < 0.01  # E[mask] = 1: the activations' scale is kept


def test_a_draw_from_first_is_that_slice_of_the_whole_draw(backend):
    """What a data-parallel rank draws for its rows: the same elements of the whole batch's
    draw (bits, masks of a network's layers, and shifts)."""
    from arraynn.data.augment import RandomShift
    from arraynn.nn import MLP

    xp, dev = backend.xp, backend.device
    whole = _host(backend, random.random_bits(xp, (9, 5), 3, 7, 2, device=dev))
    part = _host(backend, random.random_bits(xp, (4, 5), 3, 7, 2, device=dev, first=3 * 5))
    np.testing.assert_array_equal(part, whole[3:7])
    np.testing.assert_array_equal(whole.ravel(), _reference_bits(45, 3, 7, 2))
    mlp = MLP([6, 5, 4, 3], activation="relu", output="softmax", bias=True, dropout=[0.5, 0.25],
              input_dropout=0.3)
    X = backend.asarray(np.ones((9, 6)))
    full = mlp.dropout_masks(X, 11, 4)
    rows = mlp.dropout_masks(X[5:9, ...], 11, 4, first_row=5)
    for a, b in zip(full, rows):
        np.testing.assert_array_equal(backend.to_numpy(b), backend.to_numpy(a)[5:9])
    shift = RandomShift(1, (3, 2), 8, flip=True)
    Xi = backend.asarray(np.arange(9 * 6, dtype=np.float64).reshape(9, 6))
    np.testing.assert_array_equal(backend.to_numpy(shift(Xi[2:6, ...], 13, 2)),
                                  backend.to_numpy(shift(Xi, 13))[2:6])
    with pytest.raises(ValueError, match="2\\*\\*31"):
        random.random_bits(xp, (4,), 0, 0, 0, device=dev, first=2**31 - 2)


def test_masks_are_the_same_in_float32_and_float64(backend64):
    xp = backend64.xp
    a = random.uniform(xp, (100,), 4, 2, 0, xp.float64, device=backend64.device)
    b = random.uniform(xp, (100,), 4, 2, 0, xp.float32, device=backend64.device)
    np.testing.assert_array_equal(backend64.to_numpy(a), backend64.to_numpy(b).astype(np.float64))


def test_bad_arguments_are_refused():
    import numpy as xp

    with pytest.raises(ValueError, match="rate"):
        random.dropout_mask(xp, (2,), 1.0, 0, 0, 0, xp.float32)
    with pytest.raises(ValueError, match="below n"):
        random.random_below(xp, (2,), 0, 0, 0, 0)
