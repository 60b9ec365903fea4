"""The jit-compiled JAX training step (arraynn.ops.jax) against the eager step."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("jax")

import arraynn  # noqa: E402
from arraynn.nn import MLP, make_optimizer  # noqa: E402
from arraynn.nn.optimizers import one_minus_power  # noqa: E402
from arraynn.ops import jax as _jax  # noqa: E402

CONFIGS = {
    "seed": dict(sizes=(20, 7, 4), activation="sigmoid", output="sigmoid", bias=False,
                 optimizer="sgd", lr=0.01, init="uniform", l1=0.0, l2=0.5),
    "modern": dict(sizes=(20, 16, 8, 4), activation="relu", output="softmax", bias=True,
                   optimizer="adam", lr=1e-2, init="he", l1=0.0, l2=0.0),
    "momentum-tanh-l1": dict(sizes=(20, 9, 4), activation="tanh", output="softmax", bias=True,
                             optimizer="momentum", lr=1e-2, init="glorot", l1=0.05, l2=0.1),
}


@pytest.fixture(scope="module")
def jax_backend():
    try:
        return arraynn.get_backend("jax")
    except arraynn.BackendError as exc:  # pragma: no cover - jax installed but unusable
        pytest.skip(f"JAX cannot run here: {exc}")


@pytest.fixture(autouse=True)
def _jit_on():
    _jax.set_jit(True)
    yield
    _jax.set_jit(True)


def _batches(cfg, steps, n=32, seed=3):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(steps, n, cfg["sizes"][0])).astype(np.float32)
    labels = rng.integers(0, cfg["sizes"][-1], size=(steps, n))
    return X, labels


def _train(be, cfg, steps, jit, lr_change_at=None):
    mlp = MLP(cfg["sizes"], activation=cfg["activation"], output=cfg["output"], bias=cfg["bias"])
    params = mlp.init_params(be, np.random.default_rng(1), cfg["init"])
    opt = make_optimizer(cfg["optimizer"])
    state = opt.init(params)
    step = _jax.jit_train_step(mlp, opt, cfg["l1"], cfg["l2"]) if jit else mlp.train_step
    X, labels = _batches(cfg, steps)
    losses, lr = [], cfg["lr"]
    for s in range(steps):
        if s == lr_change_at:
            lr = lr / 3.0
        Y = mlp.one_hot(be.asarray(labels[s], dtype=be.index_dtype), be.dtype)
        params, state, loss = step(params, opt, state, be.asarray(X[s]), Y, lr, cfg["l1"], cfg["l2"])
        assert loss.shape == ()
        losses.append(be.to_float(loss))
    assert params.shape == (mlp.layout.size,)
    assert isinstance(state["t"], int) and state["t"] == steps
    return params, state, losses


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_jit_step_matches_the_eager_step(jax_backend, name):
    be, cfg = jax_backend, CONFIGS[name]
    p_jit, s_jit, l_jit = _train(be, cfg, 6, jit=True, lr_change_at=3)
    p_eager, s_eager, l_eager = _train(be, cfg, 6, jit=False, lr_change_at=3)
    np.testing.assert_allclose(l_jit, l_eager, rtol=2e-5)
    np.testing.assert_allclose(be.to_numpy(p_jit), be.to_numpy(p_eager), rtol=2e-5, atol=2e-6)
    for key in make_optimizer(cfg["optimizer"]).buffers:
        np.testing.assert_allclose(be.to_numpy(s_jit[key]), be.to_numpy(s_eager[key]), rtol=2e-5,
                                   atol=2e-7)


def test_jit_step_copies_nothing_per_step(jax_backend):
    be, cfg = jax_backend, CONFIGS["modern"]
    mlp = MLP(cfg["sizes"], activation=cfg["activation"], output=cfg["output"], bias=cfg["bias"])
    params = mlp.init_params(be, np.random.default_rng(1), cfg["init"])
    opt = make_optimizer("adam")
    state = opt.init(params)
    step = _jax.jit_train_step(mlp, opt)
    X, labels = _batches(cfg, 4)
    Xd = [be.asarray(x) for x in X]
    Yd = [mlp.one_hot(be.asarray(lab, dtype=be.index_dtype), be.dtype) for lab in labels]
    with arraynn.count_transfers() as first:
        params, state, loss = step(params, opt, state, Xd[0], Yd[0], 1e-3)
    assert first.host_to_device == 2  # the step counter and the learning rate, once
    with arraynn.count_transfers() as later:
        for s in range(1, 4):
            params, state, loss = step(params, opt, state, Xd[s], Yd[s], 1e-3)
        be.synchronize()
    assert (later.host_to_device, later.device_to_host) == (0, 0)
    with arraynn.count_transfers() as changed:  # a schedule's change: one upload
        params, state, loss = step(params, opt, state, Xd[0], Yd[0], 5e-4)
    assert changed.host_to_device == 1
    state["t"] = 0  # e.g. a checkpoint loaded into the state: the counter is re-synchronized
    with arraynn.count_transfers() as resync:
        step(params, opt, state, Xd[0], Yd[0], 5e-4)
    assert resync.host_to_device == 1 and state["t"] == 1


def test_steps_are_cached_per_configuration(jax_backend):
    cfg = CONFIGS["modern"]
    mlp = MLP(cfg["sizes"], activation="relu", output="softmax", bias=True)
    a = _jax.jit_train_step(mlp, make_optimizer("adam"))
    b = _jax.jit_train_step(MLP(cfg["sizes"], activation="relu", output="softmax", bias=True),
                            make_optimizer("adam"))  # another instance, the same configuration
    c = _jax.jit_train_step(mlp, make_optimizer("adam", beta_1=0.8))
    d = _jax.jit_train_step(mlp, make_optimizer("adam"), 0.0, 0.1)
    assert a is b and c is not a and d is not a


def test_adam_bias_correction_on_the_device_matches_the_host_values(jax_backend):
    import jax.numpy as jnp

    for b in (0.9, 0.999, 0.0):
        for t in (1, 2, 10, 1000, 100000):
            like = jnp.zeros(1, dtype=jnp.float32)
            got = float(one_minus_power(b, jnp.asarray(t, dtype=jnp.int32), like))
            np.testing.assert_allclose(got, 1.0 - b**t, rtol=3e-7)


def test_the_switch_returns_the_eager_step(jax_backend):
    mlp = MLP((4, 3, 2))
    opt = make_optimizer("sgd")
    assert isinstance(_jax.train_step_for(mlp, opt), _jax.JitTrainStep)
    assert isinstance(jax_backend.compiled_step(mlp, opt, 0.0, 0.0), _jax.JitTrainStep)
    _jax.set_jit(False)
    assert not _jax.jit_enabled()
    assert _jax.train_step_for(mlp, opt) is None  # the epoch loop then runs the eager step
    assert jax_backend.compiled_step(mlp, opt, 0.0, 0.0) is None


def test_a_seeded_step_runs_without_looking_itself_up_again(jax_backend, monkeypatch):
    """With dropout the epoch loop gets the step of its seed once; the steps then take
    the compiled step's own path (no configuration lookup per step)."""
    mlp = MLP((4, 3, 2), activation="relu", output="softmax", dropout=0.5)
    opt = make_optimizer("adam")
    step = jax_backend.compiled_step(mlp, opt, 0.0, 0.0, 7)
    params = mlp.init_params(jax_backend, np.random.default_rng(0), "he")
    state = opt.init(params)
    X = jax_backend.asarray(np.random.default_rng(1).normal(size=(6, 4)))
    Y = mlp.one_hot(jax_backend.asarray(np.arange(6) % 2, dtype=jax_backend.index_dtype),
                    jax_backend.dtype)
    calls = []
    real = _jax.jit_train_step
    monkeypatch.setattr(_jax, "jit_train_step", lambda *a: calls.append(a) or real(*a))
    for _ in range(3):
        params, state, _loss = step(params, opt, state, X, Y, 0.01, 0.0, 0.0)
    assert calls == [] and state["t"] == 3
    eager = mlp.init_params(jax_backend, np.random.default_rng(0), "he")
    eager_state = opt.init(eager)
    for _ in range(3):
        eager, eager_state, _loss = mlp.train_step(eager, opt, eager_state, X, Y, 0.01, seed=7)
    np.testing.assert_allclose(np.asarray(params), np.asarray(eager), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("schedule", ["constant", "cosine"])
def test_nnclassifier_on_jax_uses_the_jit_step_and_matches_eager(jax_backend, schedule, tmp_path,
                                                                 monkeypatch):
    rng = np.random.default_rng(0)
    centers = rng.normal(scale=2.0, size=(3, 10))
    y = rng.integers(0, 3, size=200)
    X = (centers[y] + rng.normal(size=(200, 10))).astype(np.float32)
    params = dict(n_hidden_units=(12, 8), activation="relu", output="softmax", optimizer="adam",
                  learning_rate=1e-2, batch_size=32, epochs=4, bias=True, init="he", l2=0.01,
                  random_seed=0, schedule=schedule, backend="jax")
    calls = []
    call = _jax.JitTrainStep.__call__
    monkeypatch.setattr(_jax.JitTrainStep, "__call__",
                        lambda self, *a, **k: (calls.append(1), call(self, *a, **k))[1])
    jit = arraynn.NNClassifier(**params).fit(X, y)
    assert len(calls) == 4 * 7  # every step of the 4 epochs of 7 batches
    _jax.set_jit(False)
    eager = arraynn.NNClassifier(**params).fit(X, y)
    assert len(calls) == 4 * 7
    np.testing.assert_allclose(jit.loss_curve_, eager.loss_curve_, rtol=1e-4)
    assert jit._state.opt["t"] == eager._state.opt["t"] == 4 * 7
    for a, b in zip(jit.coefs_, eager.coefs_):
        np.testing.assert_allclose(jit.backend_.to_numpy(a), eager.backend_.to_numpy(b), rtol=1e-3,
                                   atol=1e-5)
    _jax.set_jit(True)
    # save, load and continue: the loaded state's step count re-synchronizes the device counter
    path = jit.save(tmp_path / "m.npz")
    again = arraynn.NNClassifier.load(path, backend="jax").set_params(warm_start=True, epochs=5)
    again.fit(X, y)
    eager.set_params(warm_start=True, epochs=5)
    _jax.set_jit(False)
    eager.fit(X, y)
    assert again._state.opt["t"] == eager._state.opt["t"] == 5 * 7
    np.testing.assert_allclose(again.loss_curve_, eager.loss_curve_, rtol=1e-4)


def test_an_interrupted_fit_leaves_usable_weights(jax_backend, tmp_path, monkeypatch):
    """The jitted step donates its input buffers: after Ctrl-C inside an epoch the
    estimator must hold the last step's arrays, not deleted ones."""
    rng = np.random.default_rng(1)
    X = rng.normal(size=(96, 10)).astype(np.float32)
    y = rng.integers(0, 3, size=96)
    calls = []
    call = _jax.JitTrainStep.__call__

    def interrupting(self, *a, **k):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return call(self, *a, **k)

    monkeypatch.setattr(_jax.JitTrainStep, "__call__", interrupting)
    clf = arraynn.NNClassifier(n_hidden_units=8, optimizer="adam", batch_size=16, epochs=2,
                               random_seed=0, backend="jax")
    with pytest.raises(KeyboardInterrupt):
        clf.fit(X, y)
    assert clf._state.opt["t"] == 2
    assert clf.predict_proba(X).shape == (96, 3)
    clf.save(tmp_path / "interrupted.npz")


def test_jit_step_with_dropout_takes_the_counter_on_the_device(jax_backend):
    """The masks come from the device step counter: one compilation, no copy per step,
    and the eager step's values."""
    be, cfg = jax_backend, CONFIGS["modern"]
    mlp = MLP(cfg["sizes"], activation="relu", output="softmax", bias=True, dropout=[0.3, 0.5])
    X, labels = _batches(cfg, 5)
    Xd = [be.asarray(x) for x in X]
    Yd = [mlp.one_hot(be.asarray(lab, dtype=be.index_dtype), be.dtype) for lab in labels]
    results = []
    for jit in (True, False):
        params = mlp.init_params(be, np.random.default_rng(1), "he")
        opt = make_optimizer("adam")
        state = opt.init(params)
        step = _jax.jit_train_step(mlp, opt, seed=4) if jit else mlp.train_step
        losses = []
        for s in range(5):
            with arraynn.count_transfers() as moved:
                params, state, loss = step(params, opt, state, Xd[s], Yd[s], 1e-2, seed=4)
            if jit and s > 0:
                assert (moved.host_to_device, moved.device_to_host) == (0, 0)
            losses.append(be.to_float(loss))
        results.append((be.to_numpy(params), losses))
        if jit:
            assert step._step._cache_size() == 1  # compiled once, not once per step
    np.testing.assert_allclose(results[0][1], results[1][1], rtol=2e-5)
    np.testing.assert_allclose(results[0][0], results[1][0], rtol=2e-5, atol=2e-6)
    assert _jax.jit_train_step(mlp, make_optimizer("adam"), seed=5) is not _jax.jit_train_step(
        mlp, make_optimizer("adam"), seed=4)


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_jit_step_leaves_no_subnormal_number_in_the_training_state(jax_backend, name):
    # The compiled step flushes the parameters and the optimizer's buffers as the eager
    # step does (the generic update's flush_subnormal, compiled by XLA). XLA's CPU code
    # also runs with the CPU's flush-to-zero modes on, so there this holds either way; on
    # a GPU it is arraynn's flush that keeps them out.
    be, cfg = jax_backend, CONFIGS[name]
    mlp = MLP(cfg["sizes"], activation=cfg["activation"], output=cfg["output"], bias=cfg["bias"])
    rng = np.random.default_rng(5)
    tiny = np.finfo(np.float32).smallest_normal
    host = mlp.init_params(arraynn.get_backend("numpy"), np.random.default_rng(1), cfg["init"])
    sub = rng.random(host.size) < 0.3
    host = host.copy()
    host[sub] = (tiny * rng.uniform(0.01, 0.9, size=sub.sum())).astype(np.float32)
    opt = make_optimizer(cfg["optimizer"])
    state = opt.init(be.asarray(host))
    for b in opt.buffers:
        buf = np.abs(rng.normal(size=host.size)).astype(np.float32) * 1e-3
        buf[rng.random(host.size) < 0.3] = tiny / 7
        state[b] = be.asarray(buf)
    X, labels = _batches(cfg, 1)
    Y = mlp.one_hot(be.asarray(labels[0], dtype=be.index_dtype), be.dtype)
    step = _jax.jit_train_step(mlp, opt, cfg["l1"], cfg["l2"])
    params, state, _ = step(be.asarray(host), opt, state, be.asarray(X[0]), Y, cfg["lr"],
                            cfg["l1"], cfg["l2"])
    for x in [params, *(state[b] for b in opt.buffers)]:
        h = be.to_numpy(x)
        assert not ((h != 0) & (np.abs(h) < tiny)).any()
