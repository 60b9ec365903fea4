"""BatchNorm: its backward pass against a float64 finite difference on every backend,
its training and prediction passes and running statistics against PyTorch's batch
norm (an oracle written by others), the state a network keeps for it through training
steps, compiled JAX steps, estimators, model files and ONNX."""

from __future__ import annotations

import numpy as np
import pytest
from _gradcheck import directional_check
from _steps import bar_images

import arraynn
from arraynn import NNClassifier, layers
from arraynn.model_io import read_model
from arraynn.nn import Sequential, make_optimizer
from arraynn.ops import ops_of

SHAPES = {"images": (3, 4, 5), "rows": (6,)}


@pytest.mark.parametrize("where", sorted(SHAPES))
def test_batchnorm_backward_matches_a_finite_difference(backend64, where):
    be = backend64
    rng = np.random.default_rng(1)
    layer = layers.BatchNorm()
    shape = SHAPES[where]
    x = rng.normal(loc=2.0, size=(5, *shape))
    params = [rng.uniform(0.5, 1.5, size=shape[:1]), rng.normal(size=shape[:1])]
    stats = [be.asarray(rng.normal(size=shape[:1])), be.asarray(rng.uniform(0.5, 2, size=shape[:1]))]
    r = rng.normal(size=x.shape)

    def loss(x_h, *p_h):
        ops = ops_of(be.asarray(x_h))
        y, _ = layer.forward(ops, [be.asarray(p) for p in p_h], be.asarray(x_h), stats=stats)
        return float(np.sum(be.to_numpy(y) * r))

    ops = ops_of(be.asarray(x))
    pd = [be.asarray(p) for p in params]
    y, cache = layer.forward(ops, pd, be.asarray(x), stats=stats)
    grads = [None, None]
    dx = layer.backward(ops, pd, cache, be.asarray(r.copy()), grads)
    directional_check(loss, [x, *params], [be.to_numpy(dx)] + [be.to_numpy(g) for g in grads], rng)
    # the batch's statistics, whatever the shift: normalised outputs of mean beta, std gamma
    axes = (0,) if where == "rows" else (0, 2, 3)
    yh = be.to_numpy(y)
    np.testing.assert_allclose(yh.mean(axis=axes), params[1], atol=1e-10)
    var = x.var(axis=axes)
    np.testing.assert_allclose(yh.std(axis=axes), params[0] * np.sqrt(var / (var + 1e-5)), rtol=1e-10)


@pytest.mark.parametrize("where", sorted(SHAPES))
def test_batchnorm_agrees_with_pytorch_in_training_and_at_prediction(where):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    rng = np.random.default_rng(2)
    shape = SHAPES[where]
    x = rng.normal(loc=-1.0, scale=3.0, size=(6, *shape))
    gamma, beta = rng.uniform(0.5, 1.5, size=shape[:1]), rng.normal(size=shape[:1])
    mean0, var0 = rng.normal(size=shape[:1]), rng.uniform(0.5, 2, size=shape[:1])
    r = rng.normal(size=x.shape)
    xt = torch.tensor(x, requires_grad=True)
    gt, bt = torch.tensor(gamma, requires_grad=True), torch.tensor(beta, requires_grad=True)
    rm, rv = torch.tensor(mean0), torch.tensor(var0)
    yt = F.batch_norm(xt, rm, rv, gt, bt, training=True, momentum=0.1, eps=1e-5)  # updates rm, rv
    (yt * torch.tensor(r)).sum().backward()
    layer = layers.BatchNorm(momentum=0.9, epsilon=1e-5)
    for spec in ("numpy", "torch"):
        be = arraynn.get_backend(spec, dtype="float64")
        ops = ops_of(be.asarray(x))
        pd, stats = [be.asarray(gamma), be.asarray(beta)], [be.asarray(mean0), be.asarray(var0)]
        y, cache = layer.forward(ops, pd, be.asarray(x), stats=stats)
        grads = [None, None]
        dx = layer.backward(ops, pd, cache, be.asarray(r.copy()), grads)
        new = layer.updated_state(ops, stats, cache)
        pairs = [(y, yt.detach()), (dx, xt.grad), (grads[0], gt.grad), (grads[1], bt.grad), (new[0], rm),
                 (new[1], rv)]
        for ours, theirs in pairs:
            np.testing.assert_allclose(be.to_numpy(ours), theirs.numpy(), rtol=1e-10, atol=1e-12,
                                       err_msg=spec)
        # prediction: the running statistics
        y_eval, _ = layer.forward(ops, pd, be.asarray(x), stats=new, training=False)
        want = F.batch_norm(torch.tensor(x), rm, rv, torch.tensor(gamma), torch.tensor(beta), training=False,
                            eps=1e-5)
        np.testing.assert_allclose(be.to_numpy(y_eval), want.numpy(), rtol=1e-10, atol=1e-12)


def _bn_net():
    # no biases before BatchNorm: their gradient is zero but for rounding, which Adam's
    # normalised steps would turn into noise that no two backends share
    return Sequential([layers.Conv2D(3, 3, padding="same", bias=False), layers.BatchNorm(), layers.ReLU(),
                       layers.MaxPool2D(2), layers.Flatten(), layers.Dense(5, bias=False),
                       layers.BatchNorm(0.8), layers.Tanh(), layers.Dense(3)], input_shape=(2, 6, 6))


def test_a_network_keeps_its_running_statistics_as_state_not_parameters(backend64):
    be = backend64
    net = _bn_net()
    assert net.has_state and net.state_layout.shapes == [(3,), (3,), (5,), (5,)]
    assert net.layout.shapes == [(3, 2, 3, 3), (3,), (3,), (27, 5), (5,), (5,), (5, 3), (3,)]
    rng = np.random.default_rng(3)
    p = net.init_params(be, rng, "he")
    views = net.layout.views(be.to_numpy(p))
    np.testing.assert_array_equal(views[1], 1.0)  # gamma starts at 1, beta at 0
    np.testing.assert_array_equal(views[2], 0.0)
    stats0 = net.init_state(be)
    np.testing.assert_array_equal(be.to_numpy(stats0), [0, 0, 0, 1, 1, 1, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1])
    X = rng.normal(loc=1.0, size=(8, 72))
    Y = net.one_hot(be.asarray(rng.integers(0, 3, 8), dtype=be.index_dtype), be.dtype)
    # the whole network's gradient, shifted by the running means or not
    stats = be.asarray(be.to_numpy(stats0) + rng.normal(size=16) * 0.1)
    _, g = net.loss_and_grad(p, be.asarray(X), Y, stats=stats)
    ph = be.to_numpy(p)
    def loss(q):
        return be.to_float(net.loss_and_grad(be.asarray(q), be.asarray(X), Y, stats=stats)[0])

    directional_check(loss, [ph], [be.to_numpy(g)], rng)
    opt = make_optimizer("adam")
    state = opt.init(p)
    with pytest.raises(ValueError, match="running statistics"):
        net.train_step(p, opt, dict(state), be.asarray(X), Y, 1e-2)
    state["stats"] = stats0
    for _ in range(3):
        p, state, _ = net.train_step(p, opt, state, be.asarray(X), Y, 1e-2)
    moved = be.to_numpy(state["stats"])
    assert not np.allclose(moved, be.to_numpy(stats0))  # the running statistics moved
    assert np.all(moved[3:6] > 0) and np.all(moved[11:] > 0)  # variances
    # prediction uses them: other statistics, other outputs; without them, a clear error
    a = be.to_numpy(net.predict_proba(p, be.asarray(X), state["stats"]))
    b = be.to_numpy(net.predict_proba(p, be.asarray(X), stats0))
    assert not np.allclose(a, b) and np.allclose(a.sum(axis=1), 1.0)
    with pytest.raises(ValueError, match="running statistics"):
        net.forward(p, be.asarray(X))


def test_the_jax_compiled_step_updates_the_running_statistics_as_the_generic_step():
    pytest.importorskip("jax")
    from arraynn.ops import jax as _jax

    try:
        be = arraynn.get_backend("jax")
    except arraynn.BackendError as exc:
        pytest.skip(f"JAX cannot run here: {exc}")
    net = _bn_net()
    rng = np.random.default_rng(4)
    X = rng.normal(size=(3, 8, 72)).astype(np.float32)
    lab = rng.integers(0, 3, size=(3, 8))
    out = []
    for jit in (True, False):
        opt = make_optimizer("adam")
        p = net.init_params(be, np.random.default_rng(1), "he")
        state = opt.init(p)
        state["stats"] = net.init_state(be)
        step = _jax.jit_train_step(net, opt, 0.0, 0.01) if jit else net.train_step
        for s in range(3):
            Y = net.one_hot(be.asarray(lab[s], dtype=be.index_dtype), be.dtype)
            p, state, _ = step(p, opt, state, be.asarray(X[s]), Y, 1e-2, 0.0, 0.01)
        out.append((be.to_numpy(p), be.to_numpy(state["stats"])))
    for a, b in zip(*out):
        np.testing.assert_allclose(a, b, rtol=2e-5, atol=1e-6)


BN_CNN = [layers.Conv2D(4, 3, padding="same", bias=False), layers.BatchNorm(), layers.ReLU(),
          layers.MaxPool2D(2), layers.Flatten(), layers.Dense(8), layers.BatchNorm(), layers.ReLU()]


def test_an_estimator_with_batchnorm_saves_loads_pickles_and_stops_early(tmp_path):
    import pickle

    X, y = bar_images()
    kw = dict(layers=BN_CNN, epochs=6, batch_size=16, random_seed=1, optimizer="adam", learning_rate=1e-2,
              preprocessing="standardize")
    clf = NNClassifier(**kw).fit(X, y)
    assert clf.score(X, y) > 0.9
    clf.save(tmp_path / "bn.npz")
    arrays, meta = read_model(tmp_path / "bn.npz")[:2]
    assert arrays["state_stats"].shape == (4 + 4 + 8 + 8,)
    loaded = NNClassifier.load(tmp_path / "bn.npz")
    np.testing.assert_array_equal(loaded.predict_proba(X), clf.predict_proba(X))
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(clf)).predict_proba(X), clf.predict_proba(X))
    # a warm start continues with the saved statistics: as if training had not stopped
    longer = NNClassifier(**{**kw, "epochs": 8}).fit(X, y)
    loaded.set_params(warm_start=True, epochs=8).fit(X, y)
    np.testing.assert_allclose(loaded.predict_proba(X), longer.predict_proba(X), rtol=1e-5, atol=1e-6)
    # early stopping restores the best epoch's statistics with its weights
    es = NNClassifier(**{**kw, "epochs": 12}, early_stopping=True, validation_fraction=0.25,
                      n_iter_no_change=2).fit(X, y)
    assert es._state.best_stats is not None
    np.testing.assert_array_equal(es._state.opt["stats"], es._state.best_stats)
    es.save(tmp_path / "es.npz")
    again = NNClassifier.load(tmp_path / "es.npz")
    np.testing.assert_array_equal(again._state.best_stats, es._state.best_stats)
    # a file whose statistics are missing is refused with a clear error
    import zipfile

    with zipfile.ZipFile(tmp_path / "bn.npz") as src, zipfile.ZipFile(tmp_path / "cut.npz", "w") as dst:
        for item in src.infolist():
            if item.filename != "state_stats.npy":
                dst.writestr(item, src.read(item))
    with pytest.raises(arraynn.ModelFileError, match="running statistics"):
        NNClassifier.load(tmp_path / "cut.npz")


def test_a_batchnorm_network_exports_to_onnx():
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    from arraynn.export import to_onnx

    X, y = bar_images()
    clf = NNClassifier(layers=BN_CNN, epochs=3, batch_size=16, random_seed=1, optimizer="adam",
                       learning_rate=1e-2, preprocessing="standardize").fit(X, y)
    model = to_onnx(clf)
    assert "BatchNormalization" in [n.op_type for n in model.graph.node]
    flat = X.reshape(len(X), -1).astype(np.float32)
    proba, label = ort.InferenceSession(model.SerializeToString()).run(None, {"input": flat})
    np.testing.assert_allclose(proba, clf.predict_proba(X), atol=1e-5)
    np.testing.assert_array_equal(clf.classes_[label], clf.predict(X))


@pytest.mark.parametrize("make, match", [
    (lambda: layers.BatchNorm(momentum=1.0), r"\[0, 1\)"),
    (lambda: layers.BatchNorm(epsilon=0), "positive"),
    (lambda: layers.BatchNorm("x"), "numbers"),
    (lambda: Sequential([layers.Flatten(), layers.BatchNorm(), layers.Dense(2)], (1, 2, 2)).layout, None),
    (lambda: Sequential([layers.BatchNorm(), layers.Dense(2)], (2, 3)), "flat features or images"),
])
def test_bad_batchnorm_settings_are_clear_errors(make, match):
    if match is None:
        assert make() is not None  # after a Flatten: per feature
        return
    with pytest.raises(ValueError, match=match):
        make()


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("shape", [(40, 6, 7, 9), (300, 20), (3, 2, 3, 3)])
def test_numpys_compiled_batchnorm_matches_the_generic_array_api_code(shape, dtype):
    # the compiled passes (Numba, for arrays of at least 4,096 numbers) do the generic
    # elementwise operations in its order, so they equal it bit for bit; their sums
    # accumulate in float64 (the generic ones in the arrays' dtype), so equal to rounding
    from arraynn.ops import Ops, numba_kernels

    rng = np.random.default_rng(7)
    c = shape[1]
    x = (rng.normal(size=shape) * 3 + 2).astype(dtype)
    dy = rng.normal(size=shape).astype(dtype)
    shift, mean, inv, gamma, beta, scale, s1, s2 = (rng.normal(size=c).astype(dtype) for _ in range(8))
    m = np.asarray([float(np.prod(shape) // c)], dtype)
    generic, fast = Ops(np), ops_of(x)
    want_apply = generic.batch_norm_apply(x, shift, mean, inv, gamma, beta)
    want_infer = generic.batch_norm_infer(x, mean, scale, beta)
    want_dx = generic.batch_norm_input_grad(dy, x, scale, m, s1, s2)
    want_sums = generic.batch_norm_sums(x, shift)
    want_grad_sums = generic.batch_norm_grad_sums(dy, x)
    x64 = x.astype(np.float64) - shift.astype(np.float64).reshape((1, c) + (1,) * (x.ndim - 2))
    exact = np.sum(x64.reshape(shape[0], c, -1), axis=(0, 2))  # float64 sums of the same numbers
    tol = {"float32": 1e-5, "float64": 1e-12}[dtype]
    assert (fast._norm_kernels(x) is not None) == (numba_kernels.available() and x.size >= 4096)
    for numba_on in (True, False):
        numba_kernels.set_enabled(numba_on)
        try:
            for got, want in zip(fast.batch_norm_apply(x, shift, mean, inv, gamma, beta), want_apply):
                np.testing.assert_array_equal(got, want)
            np.testing.assert_array_equal(fast.batch_norm_infer(x, mean, scale, beta), want_infer)
            np.testing.assert_array_equal(fast.batch_norm_input_grad(dy, x, scale, m, s1, s2), want_dx)
            sums, grad_sums = fast.batch_norm_sums(x, shift), fast.batch_norm_grad_sums(dy, x)
        finally:
            numba_kernels.set_enabled(True)
        assert sums.dtype == grad_sums.dtype == x.dtype and sums.shape == grad_sums.shape == (2 * c,)
        np.testing.assert_allclose(sums, want_sums, rtol=tol, atol=tol * np.max(np.abs(want_sums)))
        np.testing.assert_allclose(grad_sums, want_grad_sums, rtol=tol,
                                   atol=tol * np.max(np.abs(want_grad_sums)))
        # against float64 sums of the same numbers: no further off than the generic sums (one
        # rounding to the dtype at most)
        slack = np.spacing(np.max(np.abs(exact)).astype(dtype))
        assert np.max(np.abs(sums[:c] - exact)) <= np.max(np.abs(want_sums[:c] - exact)) + slack
    # arrays the kernels do not take (a strided view) go the generic way, to the same values
    xs = np.asfortranarray(x)
    assert fast._norm_kernels(xs) is None
    np.testing.assert_array_equal(fast.batch_norm_infer(xs, mean, scale, beta), want_infer)


# ---- BatchNorm straight into MaxPool2D: NumPy's fused passes ------------------------------
POOLS = {"2x2": (2, None), "3x3 over 7x9": (3, None), "2x3 stride 3": ((2, 3), 3)}


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("pool", sorted(POOLS))
def test_numpys_fused_batchnorm_and_max_pooling_equal_the_generic_passes(pool, dtype):
    # the composition of the layers' own passes is the reference: the pooled values, the
    # arg-max positions and the input gradient bit for bit, the sums to rounding (float64
    # accumulators in the fused pass, over the pooled gradient alone); without Numba the
    # NumPy ops do not fuse and give the generic values
    from arraynn.ops import Ops, numba_kernels

    size, stride = POOLS[pool]
    win = layers.MaxPool2D(size, stride).window()
    rng = np.random.default_rng(3)
    shape = (30, 4, 7, 9)
    c = shape[1]
    x = (rng.normal(size=shape) * 2 + 1).astype(dtype)
    x[0, 0, :2, :2] = 0.5  # ties: the first maximum wins
    shift, mean, gamma, beta, scale, s1, s2 = (rng.normal(size=c).astype(dtype) for _ in range(7))
    gamma[1] = -1.5  # a negative scale turns the maxima into minima of x
    inv = np.abs(rng.normal(size=c)).astype(dtype) + 0.5
    m = np.asarray([30 * 7 * 9], dtype)
    generic, fast = Ops(np), ops_of(x)
    fused = numba_kernels.kernels() is not None  # Numba installed and not switched off
    assert fast.fuses_norm_pool(x, win) == fused and not generic.fuses_norm_pool(x, win)
    y, arg = fast.batch_norm_max_pool(x, shift, mean, inv, gamma, beta, win)
    want_y, want_arg = generic.batch_norm_max_pool(x, shift, mean, inv, gamma, beta, win)
    np.testing.assert_array_equal(y, want_y)
    np.testing.assert_array_equal(arg, want_arg)
    dy = rng.normal(size=y.shape).astype(dtype)
    sums = fast.batch_norm_max_pool_grad_sums(dy, arg, x, shift, mean, inv, win)
    want_sums = generic.batch_norm_max_pool_grad_sums(dy, want_arg, x, shift, mean, inv, win)
    assert sums.dtype == x.dtype and sums.shape == (2 * c,)
    tol = {"float32": 1e-5, "float64": 1e-12}[dtype]
    np.testing.assert_allclose(sums, want_sums, rtol=tol, atol=tol * np.max(np.abs(want_sums)))
    dx = fast.batch_norm_max_pool_input_grad(dy, arg, x, shift, mean, inv, win, scale, m, s1, s2)
    want_dx = generic.batch_norm_max_pool_input_grad(dy, want_arg, x, shift, mean, inv, win, scale, m, s1, s2)
    assert dx.dtype == x.dtype and dx.flags.c_contiguous
    np.testing.assert_array_equal(dx, want_dx)


def test_overlapping_pools_padded_views_and_small_images_are_not_fused():
    ops = ops_of(np.zeros((30, 4, 7, 9), np.float32))
    x = np.zeros((30, 4, 7, 9), np.float32)
    assert not ops.fuses_norm_pool(x, layers.MaxPool2D(3, 2).window())  # windows overlap
    assert not ops.fuses_norm_pool(x[:, :, :, ::2], layers.MaxPool2D(2).window())  # a strided view
    assert not ops.fuses_norm_pool(x[:2], layers.MaxPool2D(2).window())  # too small to pay


def _pooled_net():
    return Sequential([layers.Conv2D(6, 3, padding="same", bias=False), layers.BatchNorm(),
                       layers.MaxPool2D(2),
                       layers.ReLU(), layers.Conv2D(5, 3, bias=False), layers.BatchNorm(0.8),
                       layers.MaxPool2D(3), layers.Flatten(), layers.Dense(10)], input_shape=(2, 15, 15))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_a_training_step_with_the_fused_passes_equals_the_layers_own_passes(dtype, monkeypatch):
    # Sequential runs each BatchNorm + MaxPool2D pair as one fused pass on NumPy: the loss,
    # the gradient and the running statistics equal those of the layers run one by one (the
    # unfused compiled passes), the gradient to the rounding of the fused sums
    from arraynn.ops import numba_kernels
    from arraynn.ops.numpy_layers import NumpyLayerOps

    net = _pooled_net()
    params = net.init_params(np, np.random.default_rng(0), "he").astype(dtype)
    stats = net.init_state(np).astype(dtype)
    rng = np.random.default_rng(1)
    X = rng.normal(size=(40, 2, 15, 15)).astype(dtype)
    Y = np.eye(10, dtype=dtype)[rng.integers(0, 10, 40)]
    calls = []
    kernels = numba_kernels.kernels()
    if kernels is None:
        pytest.skip("the fused passes need Numba")
    monkeypatch.setattr(kernels, "bn_max_pool", lambda *a, f=kernels.bn_max_pool: calls.append(1) or f(*a))
    fused = net.loss_grad_and_state(params, X, Y, l2=0.01, stats=stats)
    assert len(calls) == 2  # both pairs fused
    monkeypatch.setattr(NumpyLayerOps, "fuse_norm_pool", False)
    unfused = net.loss_grad_and_state(params, X, Y, l2=0.01, stats=stats)
    assert len(calls) == 2
    np.testing.assert_array_equal(fused[0], unfused[0])
    np.testing.assert_array_equal(fused[2], unfused[2])  # the running statistics
    tol = {"float32": 1e-5, "float64": 1e-12}[dtype]
    np.testing.assert_allclose(fused[1], unfused[1], rtol=tol, atol=tol * np.max(np.abs(unfused[1])))
    # prediction is not fused (BatchNorm on the running statistics is one pass of its own)
    monkeypatch.setattr(NumpyLayerOps, "fuse_norm_pool", True)
    net.forward(params, X, stats)
    assert len(calls) == 2
