"""Convolution and pooling layers: each backward pass against a float64 finite
difference on every backend, the forward and backward passes against PyTorch's
convolution and pooling (an oracle written by others), the fast paths (NumPy's strided
view and in-place sums, torch's unfold/fold) against the generic Array API windows, the
bounded workspace, and the errors."""

from __future__ import annotations

import numpy as np
import pytest
from _gradcheck import directional_check
from _steps import jax_jit_against_generic

import arraynn
from arraynn import layers
from arraynn.nn import Sequential, conv
from arraynn.ops import Ops, ops_for, ops_of
from arraynn.ops.windows import Window, col2im, im2col, pieces

# (layer, one sample's input shape)
CASES = {
    "conv-valid": (lambda: layers.Conv2D(3, 3), (2, 6, 7)),
    "conv-same-stride2": (lambda: layers.Conv2D(2, (3, 2), stride=2, padding="same"), (3, 7, 6)),
    "conv-pad-pair-no-bias": (lambda: layers.Conv2D(4, (2, 3), stride=(1, 2), padding=(1, 2), bias=False),
                              (2, 5, 6)),
    "maxpool-tiles": (lambda: layers.MaxPool2D(2), (2, 6, 4)),
    "maxpool-tiles-cropped": (lambda: layers.MaxPool2D(2), (1, 5, 7)),
    "maxpool-overlapping": (lambda: layers.MaxPool2D(3, stride=2), (2, 7, 7)),
    "avgpool-tiles": (lambda: layers.AvgPool2D((2, 3)), (2, 4, 6)),
    "avgpool-overlapping": (lambda: layers.AvgPool2D(2, stride=1), (2, 4, 5)),
    "globalavgpool": (lambda: layers.GlobalAvgPool2D(), (3, 4, 5)),
}


def _forward_backward(be, layer, x, params, r, need_dx=True):
    ops = ops_of(be.asarray(x))
    pd = [be.asarray(p) for p in params]
    y, cache = layer.forward(ops, pd, be.asarray(x))
    grads = [None] * len(pd)
    dx = layer.backward(ops, pd, cache, be.asarray(r.copy()), grads, need_dx=need_dx)
    return y, dx, grads


@pytest.mark.parametrize("name", list(CASES))
def test_each_window_layer_backward_matches_a_finite_difference(backend64, name):
    be = backend64
    rng = np.random.default_rng(7)
    make, shape = CASES[name]
    layer = make()
    x = rng.normal(size=(3, *shape))
    params = [rng.normal(size=s) for s in layer.param_shapes(shape)]
    out_shape = (3, *layer.output_shape(shape))
    r = rng.normal(size=out_shape)  # the loss is sum(y * r)

    def loss(x_h, *p_h):
        ops = ops_of(be.asarray(x_h))
        y, _ = layer.forward(ops, [be.asarray(p) for p in p_h], be.asarray(x_h))
        return float(np.sum(be.to_numpy(y) * r))

    y, dx, grads = _forward_backward(be, layer, x, params, r)
    assert tuple(y.shape) == out_shape and tuple(dx.shape) == x.shape
    directional_check(loss, [x, *params], [be.to_numpy(dx)] + [be.to_numpy(g) for g in grads], rng)
    _, none, grads2 = _forward_backward(be, layer, x, params, r, need_dx=False)
    assert none is None
    for a, b in zip(grads, grads2):
        np.testing.assert_allclose(be.to_numpy(a), be.to_numpy(b))


def _torch_oracle(name, layer, x, params):
    """The same layer by torch.nn.functional, its output and autograd's gradients."""
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    xt = torch.tensor(x, requires_grad=True)
    pt = [torch.tensor(p, requires_grad=True) for p in params]
    if name.startswith("conv"):
        t, b, l_, r = layer.window(x.shape[1:]).pad
        y = F.conv2d(F.pad(xt, (l_, r, t, b)), pt[0], pt[1] if layer.bias else None, stride=layer.stride)
    elif name.startswith("maxpool"):
        y = F.max_pool2d(xt, layer.pool_size, layer.stride)
    elif name.startswith("avgpool"):
        y = F.avg_pool2d(xt, layer.pool_size, layer.stride)
    else:
        y = F.adaptive_avg_pool2d(xt, 1).flatten(1)
    return y, xt, pt


@pytest.mark.parametrize("name", list(CASES))
def test_each_window_layer_agrees_with_pytorch(name):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(8)
    make, shape = CASES[name]
    layer = make()
    x = rng.normal(size=(4, *shape))
    params = [rng.normal(size=s) for s in layer.param_shapes(shape)]
    yt, xt, pt = _torch_oracle(name, layer, x, params)
    r = rng.normal(size=tuple(yt.shape))
    (yt * torch.tensor(r)).sum().backward()
    for spec in ("numpy", "torch"):
        be = arraynn.get_backend(spec, dtype="float64")
        for fast in (True, False):
            arraynn.ops.set_fast_paths(fast)
            try:
                y, dx, grads = _forward_backward(be, layer, x, params, r)
            finally:
                arraynn.ops.set_fast_paths(True)
            where = f"{spec}, fast paths {fast}"
            pairs = [(y, yt.detach()), (dx, xt.grad)] + [(g, p.grad) for g, p in zip(grads, pt)]
            for ours, theirs in pairs:
                np.testing.assert_allclose(be.to_numpy(ours), theirs.numpy(), rtol=1e-12, atol=1e-12,
                                           err_msg=where)


GEOMETRIES = [((2, 3, 7, 8), Window(3, 3, 1, 1, (1, 1, 1, 1))),
              ((2, 3, 7, 8), Window(2, 3, 2, 1, (0, 1, 1, 0))),
              ((1, 2, 9, 9), Window(3, 3, 2, 2, (1, 1, 1, 1))),
              ((3, 1, 6, 6), Window(2, 2, 2, 2)),
              ((2, 2, 5, 4), Window(5, 4)),
              # large enough for NumPy's compiled kernels (Numba)
              ((40, 3, 9, 8), Window(3, 3, 1, 1, (1, 1, 1, 1))),
              ((30, 2, 11, 10), Window(2, 3, 2, 1, (0, 1, 1, 0))),
              ((20, 3, 12, 12), Window(3, 2, 2, 3, (2, 0, 1, 1)))]


@pytest.mark.parametrize("shape,win", GEOMETRIES)
def test_fast_windows_match_the_generic_array_api_ones(backend, shape, win):
    # im2col bit for bit (the same values, moved); col2im bit for bit where the fast
    # path adds in the generic order (NumPy, CuPy), to rounding where it does not (fold)
    be = backend
    rng = np.random.default_rng(9)
    x = be.asarray(rng.normal(size=shape).astype(np.float32))
    fast = ops_of(x)
    generic = Ops(fast.xp)
    cols = generic.im2col(x, win)
    np.testing.assert_array_equal(be.to_numpy(fast.im2col(x, win)), be.to_numpy(cols))
    c = rng.normal(size=tuple(cols.shape)).astype(np.float32)
    want = be.to_numpy(generic.col2im(be.asarray(c), shape, win))
    got = be.to_numpy(fast.col2im(be.asarray(c), shape, win))
    if be.name in ("numpy", "cupy"):
        np.testing.assert_array_equal(got, want)
    else:
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
    # col2im is im2col's adjoint: <im2col(x), c> = <x, col2im(c)>
    xh = be.to_numpy(x).astype(np.float64)
    assert np.sum(be.to_numpy(cols).astype(np.float64) * c) == pytest.approx(np.sum(xh * want), rel=1e-5)
    if be.name == "numpy":  # the compiled kernels where Numba is there, NumPy's own code where not
        from arraynn.ops import numba_kernels

        assert (fast._window_kernels(x) is not None) == (numba_kernels.available() and shape[0] >= 20)
        numba_kernels.set_enabled(False)
        try:
            np.testing.assert_array_equal(fast.im2col(x, win), cols)
            np.testing.assert_array_equal(fast.col2im(c.copy(), shape, win), want)
        finally:
            numba_kernels.set_enabled(True)


POOLS = [((3, 2, 11, 9), Window(2, 2, 2, 2)),   # windows side by side, a row and column left over
         ((2, 3, 9, 10), Window(3, 2, 2, 1)),   # overlapping windows: sums in offset order
         ((2, 2, 9, 9), Window(3, 3, 1, 1)),
         ((2, 2, 11, 11), Window(2, 3, 3, 4)),  # gaps between windows
         # large enough for the compiled kernels: their 2x2 loop (also with a row and a
         # column left over) and their general one
         ((40, 8, 8, 8), Window(2, 2, 2, 2)),
         ((40, 3, 11, 9), Window(2, 2, 2, 2)),
         ((40, 2, 9, 10), Window(3, 2, 2, 1))]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("shape,win", POOLS)
def test_fast_max_pooling_matches_the_generic_array_api_code(shape, win, dtype):
    from arraynn.ops import numba_kernels

    rng = np.random.default_rng(3)
    x = rng.normal(size=shape).astype(dtype)
    x[0, 0] = 0.0  # ties everywhere in one plane: the first maximum wins
    x[-1, -1, :4, :4] = np.maximum(x[-1, -1, :4, :4], 0.0)  # ties with ReLU's zeros
    generic, fast = Ops(np), ops_of(x)
    y, arg = generic.max_pool(x, win)
    dy = rng.normal(size=y.shape).astype(dtype)
    want = generic.max_pool_grad(dy, arg, shape, win)
    for numba_on in (True, False):
        numba_kernels.set_enabled(numba_on)
        try:
            y2, arg2 = fast.max_pool(x, win)
            dx2 = fast.max_pool_grad(np.asfortranarray(dy), arg2, shape, win)  # dy need not be C order
        finally:
            numba_kernels.set_enabled(True)
        assert y2.dtype == x.dtype and arg2.dtype == arg.dtype == np.int8
        np.testing.assert_array_equal(y2, y)
        np.testing.assert_array_equal(arg2, arg)
        np.testing.assert_array_equal(dx2, want)
        assert dx2.dtype == x.dtype and dx2.shape == shape
    parts = np.stack(pieces(x, win, np))
    np.testing.assert_array_equal(y, np.max(parts, axis=0))
    np.testing.assert_array_equal(arg, np.argmax(parts, axis=0))  # NumPy's argmax: the first maximum
    # the compiled kernels take the large case when Numba is there
    assert (fast._pool_kernels(x, win) is not None) == (numba_kernels.available() and shape[0] == 40)


@pytest.mark.parametrize("shape,win", POOLS)
def test_max_pooling_on_every_backend_matches_the_generic_code(backend, shape, win):
    # the backend's fast path (torch's max_pool2d and scatter_add_ where the windows are
    # apart, NumPy's compiled kernels) against the generic Array API code on its arrays
    be = backend
    rng = np.random.default_rng(5)
    xh = rng.normal(size=shape).astype(np.float32)
    xh[0, 0] = 0.0
    xh[-1, -1, :4, :4] = np.maximum(xh[-1, -1, :4, :4], 0.0)
    x = be.asarray(xh)
    fast = ops_of(x)
    generic = Ops(fast.xp)
    y, arg = generic.max_pool(x, win)
    dy = be.asarray(rng.normal(size=tuple(y.shape)).astype(np.float32))
    y2, arg2 = fast.max_pool(x, win)
    np.testing.assert_array_equal(be.to_numpy(y2), be.to_numpy(y))
    np.testing.assert_array_equal(be.to_numpy(fast.max_pool_grad(dy, arg2, shape, win)),
                                  be.to_numpy(generic.max_pool_grad(dy, arg, shape, win)))


def test_im2col_reads_the_pixels_the_kernel_meets():
    x = np.arange(2 * 4 * 5, dtype=np.float64).reshape(1, 2, 4, 5)
    win = Window(2, 3, 2, 1, (1, 0, 0, 1))  # one zero row on top, one zero column on the right
    cols = im2col(x, win, np)
    assert cols.shape == (1, 2 * 2 * 3, 2 * 4)
    padded = np.pad(x, ((0, 0), (0, 0), (1, 0), (0, 1)))
    for c in range(2):
        for i in range(2):
            for j in range(3):
                row = cols[0, (c * 2 + i) * 3 + j].reshape(2, 4)
                np.testing.assert_array_equal(row, padded[0, c, i:i + 3:2, j:j + 4])
    # how many windows read each pixel: the last row falls between the strided windows
    np.testing.assert_array_equal(col2im(np.ones_like(cols), x.shape, win, np)[0, 0],
                                  [[1, 2, 3, 3, 2]] * 3 + [[0, 0, 0, 0, 0]])


def test_a_convolution_past_the_workspace_limit_works_in_chunks_to_the_same_values(monkeypatch):
    be = arraynn.get_backend("numpy", dtype="float64")
    rng = np.random.default_rng(10)
    layer = layers.Conv2D(3, 3, padding="same")
    x = rng.normal(size=(10, 2, 5, 5))
    params = [rng.normal(size=s) for s in layer.param_shapes((2, 5, 5))]
    r = rng.normal(size=(10, 3, 5, 5))
    whole = _forward_backward(be, layer, x, params, r)
    per_sample = 2 * 9 * 25 * 8
    monkeypatch.setattr(conv, "WORKSPACE_LIMIT_BYTES", 3 * per_sample)  # 3 samples at a time
    assert layer._chunk(x, layer.window((2, 5, 5))) == 3
    _, cache = layer.forward(ops_for(np), [be.asarray(p) for p in params], x)
    assert cache[0] is None  # no columns kept: they are made again per chunk
    chunked = _forward_backward(be, layer, x, params, r)
    for a, b in zip([whole[0], whole[1], *whole[2]], [chunked[0], chunked[1], *chunked[2]]):
        np.testing.assert_allclose(b, a, rtol=1e-13, atol=1e-13)


CONVS = [((6, 3, 9, 8), (5, 3, 3, 3), Window(3, 3, 1, 1, (1, 1, 1, 1))),   # K = 27: one large product
         ((5, 4, 11, 9), (3, 4, 3, 2), Window(3, 2, 2, 1, (1, 2, 0, 1))),  # strides, uneven padding
         ((4, 8, 7, 7), (6, 8, 2, 3), Window(2, 3, 1, 2)),                 # valid, non-square
         ((40, 2, 12, 12), (6, 2, 3, 3), Window(3, 3, 2, 2, (1, 1, 1, 1))),  # col2im compiled (Numba)
         ((7, 1, 8, 8), (4, 1, 3, 3), Window(3, 3, 1, 1, (1, 1, 1, 1)))]   # K = 9: the generic products


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("xshape,wshape,win", CONVS)
def test_numpys_one_product_convolution_matches_the_generic_one(xshape, wshape, win, dtype):
    # the columns of the whole batch as one matrix: the same sums as the generic
    # per-sample products, in BLAS's order (so equal to rounding), with Numba's col2im
    # and without it
    from arraynn.ops import numba_kernels

    rng = np.random.default_rng(12)
    x, W = rng.normal(size=xshape).astype(dtype), rng.normal(size=wshape).astype(dtype)
    generic, fast = Ops(np), ops_for(np)
    y, cache = generic.conv2d(x, W, win, chunk=xshape[0])
    dy = rng.normal(size=y.shape).astype(dtype)
    dW, dx = generic.conv2d_grads(W, cache, dy)
    tol = {"float32": 2e-5, "float64": 1e-12}[dtype]
    one_product = int(np.prod(wshape[1:])) >= 16
    for numba_on in (True, False):
        numba_kernels.set_enabled(numba_on)
        try:
            y2, cache2 = fast.conv2d(x, W, win, chunk=xshape[0])
            assert (isinstance(cache2[0], str) and cache2[0] == "by_row") == one_product
            dW2, dx2 = fast.conv2d_grads(W, cache2, dy)
            dW3, none = fast.conv2d_grads(W, cache2, dy, need_dx=False)
        finally:
            numba_kernels.set_enabled(True)
        assert y2.flags.c_contiguous  # what the next layer's compiled kernels take
        for got, want in ((y2, y), (dW2, dW), (dx2, dx), (dW3, dW)):
            assert got.dtype == want.dtype and got.shape == want.shape
            np.testing.assert_allclose(got, want, rtol=tol, atol=tol * np.max(np.abs(want)))
        assert none is None
    # a chunked batch (past the workspace limit) takes the generic code, to the same values
    y4, cache4 = fast.conv2d(x, W, win, chunk=2)
    assert cache4[0] is None
    np.testing.assert_allclose(y4, y, rtol=tol, atol=tol * np.max(np.abs(y)))


def _cnn():
    return Sequential([layers.Conv2D(4, 3, padding="same"), layers.ReLU(), layers.MaxPool2D(2),
                       layers.Conv2D(6, 3), layers.Tanh(), layers.GlobalAvgPool2D(), layers.Dropout(0.2),
                       layers.Dense(3)], input_shape=(1, 8, 8), output="softmax")


def test_a_convolutional_network_gradient_matches_a_finite_difference(backend64):
    be = backend64
    rng = np.random.default_rng(11)
    net = _cnn()
    assert net.layout.shapes == [(4, 1, 3, 3), (4,), (6, 4, 3, 3), (6,), (6, 3), (3,)]
    params = be.to_numpy(net.init_params(be, rng, "he"))
    X = rng.normal(size=(5, 64))  # flat rows: the network reshapes them to (1, 8, 8)
    Y = np.eye(3)[rng.integers(0, 3, size=5)]
    masks = net.dropout_masks(be.asarray(X), 4, 1)

    def loss(p):
        total, _ = net.loss_and_grad(be.asarray(p), be.asarray(X), be.asarray(Y), 0.01, 0.1, masks=masks)
        return be.to_float(total) + be.to_float(net.penalty(be.asarray(p), 0.01, 0.1))

    _, g = net.loss_and_grad(be.asarray(params), be.asarray(X), be.asarray(Y), 0.01, 0.1, masks=masks)
    directional_check(loss, [params], [be.to_numpy(g)], rng)
    # images (n, c, h, w) give the logits flat rows give
    images = be.asarray(X.reshape(5, 1, 8, 8))
    np.testing.assert_allclose(be.to_numpy(net.forward(be.asarray(params), images)),
                               be.to_numpy(net.forward(be.asarray(params), be.asarray(X))))


def test_the_jax_compiled_step_trains_a_convolutional_network_as_the_generic_step():
    rng = np.random.default_rng(12)
    jax_jit_against_generic(_cnn(), rng.normal(size=(3, 8, 64)).astype(np.float32),
                            rng.integers(0, 3, size=(3, 8)), 0.01, seed=3)


def test_window_layers_describe_themselves_as_json():
    stack = [layers.Conv2D(8, (3, 5), stride=2, padding="same", bias=False), layers.MaxPool2D(2, stride=1),
             layers.AvgPool2D((2, 3)), layers.GlobalAvgPool2D()]
    assert stack[0].config() == {"layer": "conv2d", "filters": 8, "kernel_size": [3, 5], "stride": [2, 2],
                                 "padding": "same", "bias": False}
    assert [layers.layer_from_config(c.config()) for c in stack] == stack
    assert layers.layer_from_config(layers.Conv2D(2, 3, padding=(1, 0)).config()).padding == (1, 0)


@pytest.mark.parametrize("make, match", [
    (lambda: layers.Conv2D(0, 3), "positive integer"),
    (lambda: layers.Conv2D(4, (3, 0)), "kernel_size"),
    (lambda: layers.Conv2D(4, 3, padding="full"), "'valid', 'same'"),
    (lambda: layers.Conv2D(4, 3, padding=-1), "non-negative"),
    (lambda: layers.MaxPool2D(2, stride=(1, 2, 3)), "stride"),
    (lambda: Sequential([layers.Conv2D(4, 3), layers.Flatten(), layers.Dense(2)], (784,)), "input_shape"),
    (lambda: Sequential([layers.Conv2D(4, 5), layers.Flatten(), layers.Dense(2)], (1, 3, 3)), "does not fit"),
    (lambda: Sequential([layers.MaxPool2D(2), layers.Dense(2)], (1, 4, 4)), "Flatten"),
])
def test_bad_window_layers_are_clear_errors(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_a_convolutional_networks_gradient_lands_in_the_callers_buffer():
    # every layer's gradient in its view of the flat buffer: no copy of the whole gradient
    net = Sequential([layers.Conv2D(3, 3), layers.BatchNorm(), layers.ReLU(), layers.Flatten(),
                      layers.Dense(2)], input_shape=(1, 5, 5))
    for spec in ("numpy", "torch"):
        if spec == "torch":
            pytest.importorskip("torch")
        be = arraynn.get_backend(spec)
        p = net.init_params(be, np.random.default_rng(0), "he")
        X = be.asarray(np.random.default_rng(1).normal(size=(4, 25)).astype(np.float32))
        Y = net.one_hot(be.asarray(np.array([0, 1, 1, 0]), dtype=be.index_dtype), be.dtype)
        buf = be.xp.zeros_like(p)
        _, g = net.loss_and_grad(p, X, Y, 0.0, 0.1, grad_buffer=buf, stats=net.init_state(be))
        assert g is buf, spec
        _, generic = net.loss_and_grad(p, X, Y, 0.0, 0.1, stats=net.init_state(be))
        np.testing.assert_allclose(be.to_numpy(g), be.to_numpy(generic), rtol=1e-6, atol=1e-7)
