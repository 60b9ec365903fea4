"""The optional compiled optimizer updates (Numba) against the generic reference, bit for bit.

Skipped where Numba is not installed (``nox -s "tests(numpy)"`` installs it).
"""

from __future__ import annotations

import numpy as np
import pytest

import arraynn
from arraynn import ops as ops_module
from arraynn.nn import MLP, make_optimizer
from arraynn.ops import Ops
from arraynn.ops import numba_kernels as nk
from arraynn.ops import numpy as numpy_ops
from arraynn.ops.numpy import NumpyOps

pytest.importorskip("numba")

NP = arraynn.get_backend("numpy")
FAST = NumpyOps(NP.xp)
GENERIC = Ops(NP.xp)
N = nk.MIN_SIZE + 4099  # a large buffer whose length is no multiple of a vector width


@pytest.fixture(autouse=True)
def _compiled_on():
    nk.set_enabled(True)
    ops_module.set_fast_paths(True)
    yield
    nk.set_enabled(True)
    ops_module.set_fast_paths(True)


def _buffers(dtype, n=N, seed=0):
    rng = np.random.default_rng(seed)
    p = rng.normal(size=n).astype(dtype)
    g = rng.normal(size=n).astype(dtype)
    m = (0.1 * rng.normal(size=n)).astype(dtype)
    v = np.abs(rng.normal(size=n)).astype(dtype)
    tiny = np.finfo(dtype).smallest_normal
    g[:8] = [0.0, -0.0, tiny, -tiny / 4, 1e-20, -3e4, 1e-3, np.finfo(dtype).max ** 0.25]
    v[:4] = [0.0, tiny / 2, 1e-30, 7.0]
    m[:3] = [0.0, -tiny, 1e-25]
    return p, g, m, v


def test_numba_kernels_build():
    assert nk.available(), nk.failure()
    assert nk.kernels() is not None
    nk.set_enabled(False)
    assert nk.kernels() is None and not nk.enabled()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_compiled_updates_equal_the_generic_reference_exactly(dtype):
    p, g, m, v = _buffers(dtype)
    fp, fg, fm, fv = (a.copy() for a in (p, g, m, v))
    fg.flags.writeable = False  # the gradient is only read (a read-only one is fine)
    assert numpy_ops._fused(fp, fg, fm, fv, scalars=(0.1, 0.9)) is not None  # the compiled path runs
    for step in range(1, 4):
        c2 = (1.0 - 0.999**step) ** 0.5
        lr_t, eps_t = 0.01 * c2 / (1.0 - 0.9**step), 1e-8 * c2
        p, m, v = GENERIC.adam(p, g, m, v, lr_t, 0.9, 0.999, eps_t)
        out = FAST.adam(fp, fg, fm, fv, lr_t, 0.9, 0.999, eps_t)
        assert all(a is b for a, b in zip(out, (fp, fm, fv)))  # in place
        for want, got in zip((p, m, v), (fp, fm, fv)):
            np.testing.assert_array_equal(got, want)
            assert got.dtype == dtype
    p = GENERIC.sgd(p, g, 0.05)
    assert FAST.sgd(fp, fg, 0.05) is fp
    np.testing.assert_array_equal(fp, p)
    for nesterov in (False, True):
        p, v = GENERIC.momentum(p, g, v, 0.05, 0.9, nesterov)
        fp, fv = FAST.momentum(fp, fg, fv, 0.05, 0.9, nesterov)
        np.testing.assert_array_equal(fp, p)
        np.testing.assert_array_equal(fv, v)
    np.testing.assert_array_equal(fg, g)  # the gradient is only read
    # and the same as NumPy's ufuncs with the compiled updates off
    nk.set_enabled(False)
    q, h, n_, w = _buffers(dtype)
    fq, fh, fn, fw = _buffers(dtype)
    nk.set_enabled(True)
    FAST.adam(fq, fh, fn, fw, 0.003, 0.8, 0.99, 1e-7)
    nk.set_enabled(False)
    FAST.adam(q, h, n_, w, 0.003, 0.8, 0.99, 1e-7)
    for a, b in zip((fq, fn, fw), (q, n_, w)):
        np.testing.assert_array_equal(a, b)


def test_the_compiled_path_is_only_taken_where_it_applies():
    p, g, m, v = _buffers(np.float32)
    fused = numpy_ops._fused
    assert fused(p, g, m, v, scalars=(0.1,)) is not None
    assert fused(p[:100], g[:100], scalars=(0.1,)) is None  # small: NumPy's ufuncs
    assert fused(p, g.astype(np.float64), scalars=(0.1,)) is None  # mixed dtypes
    assert fused(p, p, scalars=(0.1,)) is None  # overlapping buffers
    assert fused(p, g, scalars=(np.float32(0.1),)) is None  # only Python numbers
    assert fused(np.ones(N, np.float16), np.ones(N, np.float16), scalars=(0.1,)) is None
    frozen = m.copy()
    frozen.flags.writeable = False
    assert fused(p, g, frozen, v, scalars=(0.1,)) is None  # a read-only optimizer buffer
    frozen_g = g.copy()
    frozen_g.flags.writeable = False
    assert fused(p, frozen_g, m, v, scalars=(0.1,)) is not None  # the gradient is only read
    strided = np.empty(2 * N, np.float32)[::2]
    assert fused(strided, g, scalars=(0.1,)) is None
    nk.set_enabled(False)
    assert fused(p, g, m, v, scalars=(0.1,)) is None


def test_training_steps_with_the_compiled_updates_equal_the_generic_path_exactly():
    def train(fast, steps=4):
        ops_module.set_fast_paths(fast)
        rng = np.random.default_rng(9)
        mlp = MLP((300, 128, 10), activation="relu", output="softmax", bias=True)
        assert mlp.layout.size >= nk.MIN_SIZE
        params = mlp.init_params(NP, rng, "he")
        opt = make_optimizer("adam")
        state = opt.init(params)
        grad_buffer = np.empty_like(params)
        X = rng.normal(size=(steps, 32, 300)).astype(np.float32)
        labels = rng.integers(0, 10, size=(steps, 32))
        losses = []
        for s in range(steps):
            Y = mlp.one_hot(labels[s], NP.dtype)
            params, state, loss = mlp.train_step(params, opt, state, X[s], Y, 0.01,
                                                 grad_buffer=grad_buffer)
            losses.append(float(loss))
        return params, state, losses

    fast_params, fast_state, fast_losses = train(True)
    params, state, losses = train(False)
    assert fast_losses == losses
    np.testing.assert_array_equal(fast_params, params)
    for k in ("m", "v"):
        np.testing.assert_array_equal(fast_state[k], state[k])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("compiled", [True, False])
def test_dropout_masks_compiled_or_by_ufuncs_equal_the_generic_reference_exactly(compiled, dtype):
    nk.set_enabled(compiled)
    for shape, rate, counter, first in [((128, 784), 0.2, 0, 0), ((96, 512), 0.1, 12345, 0),
                                        ((64, 512), 0.5, 2**33 + 1, 64 * 512), ((3, 7), 0.3, 4, 21),
                                        ((40, 200), 0.0, 7, 0), ((40, 200), 0.999, 7, 5)]:
        want = GENERIC.dropout_mask(shape, rate, 2**40 + 5, counter, 0xD0D0, dtype, first=first)
        got = FAST.dropout_mask(shape, rate, 2**40 + 5, counter, 0xD0D0, dtype, first=first)
        assert got.shape == want.shape and got.dtype == want.dtype == dtype
        assert got.tobytes() == want.tobytes()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("compiled", [True, False])
def test_the_l2_term_compiled_or_by_ufuncs_equals_the_generic_reference_exactly(compiled, dtype):
    nk.set_enabled(compiled)
    rng = np.random.default_rng(3)
    for shape in [(784, 512), (300, 301), (512, 10)]:
        w = rng.normal(size=shape).astype(dtype)
        g = rng.normal(size=shape).astype(dtype)
        for l1, l2 in [(0.0, 0.05), (0.01, 0.3)]:
            want = GENERIC.penalize(w, g.copy(), l1, l2)
            got = FAST.penalize(w, g.copy(), l1, l2)
            assert got.tobytes() == want.tobytes()
