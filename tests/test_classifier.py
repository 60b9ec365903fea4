"""NNClassifier: the article's estimator, its conventions, its errors, on every backend."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from _devices import device_arg as _device_arg
from conftest import assert_on_backend

import arraynn
from arraynn import NNClassifier


def _blobs(n=300, d=8, k=3, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(scale=3.0, size=(k, d))
    y = rng.integers(0, k, size=n)
    X = centers[y] + rng.normal(size=(n, d))
    return X, y


def _small(**kw):
    params = dict(n_hidden_units=12, epochs=30, learning_rate=0.01, n_batches=5, random_seed=1)
    params.update(kw)
    return NNClassifier(**params)


# --- the article's call ---------------------------------------------------------------

def test_articles_call_runs_unchanged_on_synthetic_data():
    rng = np.random.default_rng(42)
    n_features, n_classes = 784, 10
    prototypes = rng.uniform(0, 255, size=(n_classes, n_features))
    y_train = rng.integers(0, n_classes, size=500)
    X_train = np.clip(prototypes[y_train] + rng.normal(0, 40, size=(500, n_features)), 0, 255)
    X_train = (X_train - X_train.mean(axis=0)) / (X_train.std(axis=0) + 1e-12)
    RANDOM_SEED = 42
    nn = NNClassifier(n_classes=10, n_features=784, n_hidden_units=50, l2=0.5, l1=0.0,
                      epochs=30, learning_rate=0.001, n_batches=25, random_seed=RANDOM_SEED)
    assert nn.fit(X_train, y_train) is nn
    assert len(nn.error_) == 30
    assert nn.error_[-1] < nn.error_[0]
    assert nn.score(X_train, y_train) > 0.9
    proba = nn.predict_proba(X_train)
    assert proba.shape == (500, 10)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5)
    assert nn.predict(X_train).shape == (500,)


def test_raw_pixels_give_no_overflow_warning():
    rng = np.random.default_rng(0)
    X = rng.integers(0, 256, size=(200, 784)).astype(np.float64)
    y = rng.integers(0, 10, size=200)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        # random labels: nothing to learn, which the fit rightly says
        warnings.simplefilter("ignore", arraynn.ConvergenceWarning)
        nn = NNClassifier(n_classes=10, n_features=784, n_hidden_units=50, l2=0.5, epochs=3,
                          learning_rate=0.001, n_batches=4, random_seed=0).fit(X, y)
        nn.predict_proba(X)
    assert all(np.isfinite(nn.error_))


def test_xor_is_learned():
    X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=float)
    y = np.array([0, 1, 1, 0])
    nn = NNClassifier(n_hidden_units=3, epochs=4000, learning_rate=0.5, random_seed=3,
                      bias=True).fit(X, y)
    np.testing.assert_array_equal(nn.predict(X), y)


# --- every backend ----------------------------------------------------------------------

@pytest.mark.parametrize("output,optimizer", [("sigmoid", "sgd"), ("softmax", "adam"),
                                              ("softmax", "momentum")])
def test_fit_on_backend_arrays_returns_backend_arrays(backend, output, optimizer):
    X, y = _blobs()
    Xd, yd = backend.asarray(X), backend.asarray(y)
    lr = 0.01 if optimizer != "momentum" else 0.002
    nn = _small(output=output, optimizer=optimizer, learning_rate=lr, bias=True).fit(Xd, yd)
    assert nn.backend_.name == backend.name and nn.backend_.device == backend.device
    pred = nn.predict(Xd)
    proba = nn.predict_proba(Xd)
    assert_on_backend(pred, backend)
    assert_on_backend(proba, backend)
    assert proba.dtype == backend.dtype
    np.testing.assert_allclose(backend.to_numpy(backend.xp.sum(proba, axis=1)), 1.0, rtol=1e-5)
    assert nn.score(Xd, yd) > 0.9
    for w in nn.coefs_:
        assert_on_backend(w, backend)


def test_backend_argument_moves_numpy_inputs(backend):
    X, y = _blobs()
    nn = _small(backend=backend.name, device=_device_arg(backend)).fit(X, y)
    assert nn.backend_.name == backend.name
    out = nn.predict_proba(X)
    assert isinstance(out, np.ndarray)  # NumPy in, NumPy out
    assert isinstance(nn.predict(X), np.ndarray)


def test_same_seed_same_training_on_every_backend(backend):
    X, y = _blobs(n=120)
    kw = dict(n_hidden_units=(10, 7), epochs=3, learning_rate=0.005, batch_size=16,
              random_seed=5, activation="tanh", output="softmax", optimizer="adam", bias=True)
    ref = NNClassifier(**kw).fit(X, y)
    other = NNClassifier(**kw, backend=backend.name, device=_device_arg(backend)).fit(X, y)
    for a, b in zip(ref.coefs_, other.coefs_):
        np.testing.assert_allclose(backend.to_numpy(b), a, rtol=2e-4, atol=2e-5)
    np.testing.assert_allclose(other.loss_curve_, ref.loss_curve_, rtol=1e-4)


def test_float64_training(backend64):
    X, y = _blobs()
    nn = _small(backend=backend64.name, device=_device_arg(backend64), dtype="float64").fit(X, y)
    assert nn.coefs_[0].dtype == backend64.xp.float64


def test_initial_weights_are_the_same_everywhere(backend):
    X, y = _blobs(n=20)
    a = _small(epochs=1, learning_rate=1e-12).fit(X, y)
    b = _small(epochs=1, learning_rate=1e-12, backend=backend.name,
               device=_device_arg(backend)).fit(X, y)
    np.testing.assert_allclose(backend.to_numpy(b.coefs_[0]), a.coefs_[0], rtol=1e-6)
    assert np.abs(a.coefs_[0]).max() <= 1.0  # the article's uniform(-1, 1)


# --- estimator conventions --------------------------------------------------------------

def test_get_set_params_and_clone():
    nn = NNClassifier(n_hidden_units=(5, 4), activation="relu", l2=0.1)
    params = nn.get_params()
    assert params["n_hidden_units"] == (5, 4) and params["l2"] == 0.1
    assert nn.set_params(epochs=7) is nn and nn.epochs == 7
    with pytest.raises(ValueError, match="invalid parameter 'epoch'"):
        nn.set_params(epoch=3)
    sklearn_base = pytest.importorskip("sklearn.base")
    twin = sklearn_base.clone(nn)
    assert twin is not nn and twin.get_params() == nn.get_params()
    assert "activation='relu'" in repr(nn)


def test_learned_attributes():
    X, y = _blobs()
    nn = _small(bias=True, n_hidden_units=(6, 5)).fit(X, y)
    assert nn.n_features_in_ == 8
    np.testing.assert_array_equal(nn.classes_, [0, 1, 2])
    assert [w.shape for w in nn.coefs_] == [(8, 6), (6, 5), (5, 3)]
    assert [b.shape for b in nn.intercepts_] == [(6,), (5,), (3,)]
    assert nn.n_iter_ == 30 and len(nn.loss_curve_) == 30 and nn.error_ is nn.loss_curve_
    assert isinstance(nn.random_seed_, int)
    no_bias = _small().fit(X, y)
    assert no_bias.intercepts_ == []


def test_string_labels():
    X, y = _blobs()
    names = np.array(["cat", "dog", "emu"])[y]
    nn = _small().fit(X, names)
    assert set(nn.predict(X)) <= {"cat", "dog", "emu"}
    assert nn.score(X, names) > 0.9


def test_partial_fit_counts_epochs():
    X, y = _blobs()
    nn = _small(batch_size=32)
    nn.partial_fit(X[:100], y[:100], classes=[0, 1, 2])
    nn.partial_fit(X[100:], y[100:])
    assert nn.n_iter_ == 2 and len(nn.loss_curve_) == 2
    with pytest.raises(ValueError, match="features"):
        nn.partial_fit(X[:, :3], y)


def test_warm_start_resume_reproduces_the_uninterrupted_run(tmp_path):
    X, y = _blobs()
    kw = dict(epochs=12, batch_size=32, optimizer="adam", output="softmax", bias=True)
    full = _small(**kw).fit(X, y)

    stopped = _small(**kw)
    stopped.fit(X, y, callback=lambda clf, info: info["epoch"] == 5)
    assert stopped.n_iter_ == 5
    stopped.save(tmp_path / "ckpt.npz")
    resumed = NNClassifier.load(tmp_path / "ckpt.npz").set_params(warm_start=True).fit(X, y)
    assert resumed.n_iter_ == 12
    for a, b in zip(full.coefs_ + full.intercepts_, resumed.coefs_ + resumed.intercepts_):
        np.testing.assert_array_equal(a, b)
    assert resumed.loss_curve_ == full.loss_curve_


def test_save_load_onto_another_backend(tmp_path, backend):
    X, y = _blobs()
    nn = _small(bias=True).fit(X, y)
    path = nn.save(tmp_path / "model.npz")
    with np.load(path, allow_pickle=False) as data:
        assert "meta.json" in data.files
    loaded = NNClassifier.load(path, backend=backend.name, device=_device_arg(backend))
    assert loaded.backend_.name == backend.name
    np.testing.assert_allclose(loaded.predict_proba(X), nn.predict_proba(X), rtol=1e-5, atol=1e-6)
    assert loaded.get_params()["n_hidden_units"] == 12


def test_corrupt_model_files_are_clear_errors(tmp_path):
    X, y = _blobs()
    path = _small(epochs=2).fit(X, y).save(tmp_path / "m.npz")
    data = path.read_bytes()
    (tmp_path / "trunc.npz").write_bytes(data[: len(data) // 2])
    with pytest.raises(arraynn.ModelFileError, match="trunc.npz.*truncated or corrupt"):
        NNClassifier.load(tmp_path / "trunc.npz")
    np.savez(tmp_path / "other.npz", a=np.zeros(3))
    with pytest.raises(arraynn.ModelFileError, match="not an arraynn model"):
        NNClassifier.load(tmp_path / "other.npz")
    with pytest.raises(FileNotFoundError, match="missing.npz"):
        NNClassifier.load(tmp_path / "missing.npz")


def test_save_leaves_no_temporary_file(tmp_path):
    X, y = _blobs()
    _small(epochs=1).fit(X, y).save(tmp_path / "m.npz")
    assert [p.name for p in tmp_path.iterdir()] == ["m.npz"]


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_divergence_is_reported():
    X, y = _blobs()
    with pytest.raises(arraynn.TrainingDivergedError, match="learning rate"):
        _small(learning_rate=1e30, optimizer="sgd", output="softmax", activation="relu",
               init="he").fit(X * 1e6, y)


# --- bad input, refused before any work -----------------------------------------------

@pytest.mark.parametrize(("X", "y", "match"), [
    (np.zeros(5), np.zeros(5), "2-D"),
    (np.zeros((5, 3)), np.zeros(4), "5 samples but y has 4"),
    (np.zeros((0, 3)), np.zeros(0), "empty"),
    (np.array([[1.0, np.nan], [0, 1]]), np.array([0, 1]), "NaN or infinity"),
    (np.array([[1.0, np.inf], [0, 1]]), np.array([0, 1]), "NaN or infinity"),
    (np.ones((4, 2)), np.zeros(4), "single class"),
    (np.ones((4, 2)), np.zeros((4, 2)), "1-D"),  # a column vector is raveled with a warning
])
def test_bad_training_input(X, y, match):
    with pytest.raises(ValueError, match=match):
        _small().fit(X, y)


def test_nan_on_a_device_is_caught(backend):
    X, y = _blobs(n=20)
    X[3, 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        _small().fit(backend.asarray(X), y)


def test_predict_before_fit():
    with pytest.raises(arraynn.NotFittedError, match="fit"):
        NNClassifier().predict(np.zeros((2, 2)))


def test_feature_count_must_match():
    X, y = _blobs()
    nn = _small(epochs=1).fit(X, y)
    with pytest.raises(ValueError, match="X has 3 features.*fitted with 8"):
        nn.predict(X[:, :3])
    with pytest.raises(ValueError, match="n_features=5"):
        _small(n_features=5).fit(X, y)


def test_labels_must_fit_n_classes():
    X, y = _blobs()
    with pytest.raises(ValueError, match="0..1"):
        _small(n_classes=2).fit(X, y)


@pytest.mark.parametrize(("param", "value"), [("epochs", 0), ("learning_rate", -1.0),
                                              ("n_batches", 0), ("batch_size", 0),
                                              ("l2", -0.1), ("activation", "gelu"),
                                              ("output", "linear"), ("optimizer", "rmsprop"),
                                              ("n_hidden_units", (4, 0)), ("dtype", "float16")])
def test_bad_hyperparameters(param, value):
    X, y = _blobs(n=20)
    with pytest.raises(ValueError, match=param if param != "n_hidden_units" else "n_hidden_units"):
        _small(**{param: value}).fit(X, y)


def test_unknown_backend_is_refused_before_work():
    X, y = _blobs(n=20)
    with pytest.raises(arraynn.UnknownBackendError, match="choose one of"):
        _small(backend="tensorflow").fit(X, y)


def test_out_of_memory_names_batch_size_and_fix(monkeypatch):
    X, y = _blobs()
    nn = _small(batch_size=64)

    def exhausted(*args, **kwargs):
        raise MemoryError("Unable to allocate 3.00 GiB")

    monkeypatch.setattr(arraynn.nn.MLP, "train_step", exhausted)
    with pytest.raises(arraynn.DeviceMemoryError) as info:
        nn.fit(X, y)
    msg = str(info.value)
    assert "batch_size=64" in msg and "memory in use" in msg and "smaller batch_size" in msg


def test_tf32_is_off_by_default_and_never_on_a_cpu(backend):
    X, y = _blobs(n=40)
    nn = _small(epochs=1, backend=backend.name, device=_device_arg(backend)).fit(X, y)
    assert nn.tf32_ is False
    on = _small(epochs=1, tf32=True, backend=backend.name, device=_device_arg(backend)).fit(X, y)
    is_gpu = backend.name == "cupy" or "cuda" in backend.device_name or "gpu" in backend.device_name
    assert on.tf32_ is is_gpu
    on.backend_.set_tf32(False)


def test_cosine_schedule_and_resume_through_it(tmp_path):
    X, y = _blobs()
    kw = dict(epochs=6, batch_size=32, optimizer="adam", learning_rate=0.01, schedule="cosine")
    rates = []
    full = _small(**kw).fit(X, y, callback=lambda clf, info: rates.append(info["learning_rate"]))
    expected = [0.01 * 0.5 * (1 + np.cos(np.pi * e / 6)) for e in range(6)]
    np.testing.assert_allclose(rates, expected)
    half = _small(**kw)
    half.fit(X, y, callback=lambda clf, info: info["epoch"] == 3)
    half.save(tmp_path / "c.npz")
    resumed = NNClassifier.load(tmp_path / "c.npz").set_params(warm_start=True).fit(X, y)
    for a, b in zip(full.coefs_, resumed.coefs_):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="schedule"):
        _small(schedule="step").fit(X, y)


# --- hardening: divergence keeps the last good state; every parameter is checked ------------


def _diverging(**kw):
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(300, 8)) * 10, rng.integers(0, 3, 300)
    params = dict(n_hidden_units=12, epochs=30, learning_rate=0.1, n_batches=5, random_seed=1,
                  optimizer="momentum", nesterovs_momentum=False, activation="relu",
                  output="softmax", init="he")
    params.update(kw)
    return NNClassifier(**params), X, y


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_divergence_keeps_the_weights_of_the_last_good_epoch(backend, tmp_path):
    nn, X, y = _diverging(backend=backend)
    seen = []
    with pytest.raises(arraynn.TrainingDivergedError, match="keeps its weights after epoch 3"):
        nn.fit(X, y, callback=lambda m, info: seen.append(backend.to_numpy(m._state.params).copy()))
    assert nn.n_iter_ == 3 == len(nn.loss_curve_)
    np.testing.assert_array_equal(backend.to_numpy(nn._state.params), seen[-1])
    assert np.isfinite(backend.to_numpy(nn._state.params)).all()
    assert all(np.isfinite(backend.to_numpy(v)).all() for v in nn._state.opt.values()
               if hasattr(v, "shape"))
    assert len(np.unique(nn.predict(X))) > 1
    nn.save(tmp_path / "m.npz")
    assert np.isfinite(NNClassifier.load(tmp_path / "m.npz").coefs_[0]).all()


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_divergence_in_the_first_epoch_leaves_the_estimator_unfitted():
    nn, X, y = _diverging(learning_rate=1e30, optimizer="sgd")
    with pytest.raises(arraynn.TrainingDivergedError, match="left unfitted"):
        nn.fit(X * 1e6, y)
    with pytest.raises(arraynn.NotFittedError):
        nn.predict(X)
    with pytest.raises(arraynn.NotFittedError):
        nn.save("never-written.npz")


@pytest.mark.parametrize(("param", "value"), [
    ("momentum", float("nan")), ("momentum", -0.1), ("momentum", 1.0), ("momentum", "0.9"),
    ("beta_1", 1.0), ("beta_1", -0.5), ("beta_1", float("inf")), ("beta_2", 1.0), ("beta_2", None),
    ("epsilon", 0.0), ("epsilon", -1e-8), ("epsilon", float("nan")),
    ("learning_rate", True), ("learning_rate", float("inf")), ("l1", float("nan")), ("l2", "0.1"),
    ("random_seed", -1), ("random_seed", 1.5), ("random_seed", "7"), ("random_seed", True),
    ("shuffle", "yes"), ("shuffle", 1), ("bias", "no"), ("warm_start", None), ("verbose", "loud"),
    ("tf32", 1), ("optimizer", ["sgd"]), ("activation", ("relu",)), ("dtype", ["float32"]),
    ("epochs", 5.0), ("n_hidden_units", "12"), ("n_hidden_units", (4, "a")),
    ("blas_threads", 0), ("blas_threads", 1.5), ("blas_threads", "1"), ("blas_threads", True),
])
def test_every_parameter_is_checked_before_any_work(param, value):
    X, y = _blobs(n=20)
    nn = _small(optimizer="adam", **{param: value}) if param != "optimizer" else _small(optimizer=value)
    with pytest.raises(ValueError, match=param):
        nn.fit(X, y)
    assert not hasattr(nn, "classes_")
    with pytest.raises(ValueError, match=param):
        nn.partial_fit(X, y)
    assert not hasattr(nn, "classes_")


def test_a_valid_edge_of_each_range_is_accepted():
    X, y = _blobs(n=30)
    _small(optimizer="adam", beta_1=0.0, beta_2=0.0, epochs=2, random_seed=0).fit(X, y)
    _small(optimizer="momentum", momentum=0.0, epochs=2, random_seed=np.int64(3),
           shuffle=np.bool_(True)).fit(X, y)


def test_complex_input_is_refused_on_every_backend(backend):
    X, y = _blobs(n=20)
    Xc = X.astype(np.complex64)
    with pytest.raises(TypeError, match="real-valued"):
        _small().fit(Xc, y)
    try:
        Xb = backend.xp.asarray(Xc, device=backend.device)
    except Exception:
        pytest.skip(f"{backend.name} has no complex arrays")
    with pytest.raises(TypeError, match="real-valued"):
        _small().fit(Xb, y)
    nn = _small(epochs=1).fit(X, y)
    with pytest.raises(TypeError, match="real-valued"):
        nn.predict(Xb)


def test_complex_torch_tensor_is_refused():
    torch = pytest.importorskip("torch")
    X, y = _blobs(n=20)
    with pytest.raises(TypeError, match="real-valued"):
        _small().fit(torch.tensor(X, dtype=torch.complex64), torch.tensor(y))


def test_mixed_label_types_are_named():
    X, _ = _blobs(n=20)
    y = np.array(["a", 1.0] * 10, dtype=object)
    with pytest.raises(ValueError, match="mixes labels of types float, str"):
        _small().fit(X, y)
    with pytest.raises(ValueError, match="mixes labels of types"):
        _small().partial_fit(X, np.arange(20) % 2, classes=np.array(["a", 1.0, 2], dtype=object))
    nn = _small(epochs=1).fit(X, np.arange(20) % 2)
    with pytest.raises(ValueError, match="labels of another type"):
        nn.partial_fit(X, y)


def test_partial_fit_past_epochs_keeps_the_cosine_rate_from_rising():
    X, y = _blobs(n=40)
    nn = _small(epochs=4, schedule="cosine", learning_rate=0.01)
    for _ in range(10):
        nn.partial_fit(X, y)
    rates = [nn.learning_rate_at(e) for e in range(10)]
    assert all(b <= a for a, b in zip(rates, rates[1:])), rates
    assert rates[3] == rates[9] > 0
    assert arraynn.nn.learning_rate_at("cosine", 0.01, 2, 4) == pytest.approx(0.005)


# --- a warm start with nothing left to train is never a silent no-op --------------------

def test_a_warm_start_fit_with_no_epochs_left_warns_and_says_how_to_go_on():
    X, y = _blobs()
    nn = _small(epochs=5).fit(X, y)
    before = [w.copy() for w in nn.coefs_]
    nn.set_params(warm_start=True)
    with pytest.warns(UserWarning, match=r"fit did not train: warm_start=True and it has trained 5 "
                                         r"epochs and epochs=5") as record:
        assert nn.fit(X, y) is nn
    message = str(record[0].message)
    for fix in ("partial_fit(X, y)", "set_params(epochs=N) with N > 5", "set_params(warm_start=False)"):
        assert fix in message
    assert record[0].filename == __file__  # points at the caller's line
    assert nn.n_iter_ == 5
    for a, b in zip(before, nn.coefs_):
        np.testing.assert_array_equal(a, b)
    # each fix does what the message says
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        nn.set_params(epochs=7).fit(X, y)
        assert nn.n_iter_ == 7 and len(nn.loss_curve_) == 7
        nn.partial_fit(X, y)
        assert nn.n_iter_ == 8
        nn.set_params(warm_start=False).fit(X, y)
    assert nn.n_iter_ == 7 and len(nn.loss_curve_) == 7  # trained afresh
    np.testing.assert_array_equal(nn.coefs_[0], _small(epochs=7).fit(X, y).coefs_[0])


def test_a_warm_start_fit_of_a_model_stopped_early_says_it_is_finished():
    X, y = _blobs(n=200)
    nn = _small(epochs=200, batch_size=16, optimizer="adam", output="softmax", bias=True,
                early_stopping=True, n_iter_no_change=2, tol=0.5).fit(X, y)
    assert nn.n_iter_ < 200
    before = nn.coefs_[0].copy()
    with pytest.warns(UserWarning, match=f"stopped after epoch {nn.n_iter_} by early_stopping"):
        nn.set_params(warm_start=True).fit(X, y)
    np.testing.assert_array_equal(nn.coefs_[0], before)


# --- a fit that learns nothing says so ---------------------------------------------------

def test_a_fit_at_chance_level_warns_with_what_to_try():
    rng = np.random.default_rng(0)
    X = np.zeros((300, 8))                       # nothing to learn from
    y = rng.integers(0, 3, size=300)
    with pytest.warns(arraynn.ConvergenceWarning, match="is no better than always predicting the most "
                                                        "frequent class") as record:
        NNClassifier(epochs=5, random_seed=0).fit(X, y)
    message = str(record[0].message)
    for advice in ('preprocessing="standardize"', 'optimizer="adam"', "batch_size=128", "default preset"):
        assert advice in message
    assert issubclass(arraynn.ConvergenceWarning, UserWarning)
    assert record[0].filename == __file__


def test_a_fit_whose_loss_does_not_fall_warns():
    X, y = _blobs(n=400)
    X = X * 40                                   # saturated units, far too large steps
    with pytest.warns(arraynn.ConvergenceWarning, match="its loss did not fall") as record:
        clf = NNClassifier(epochs=6, learning_rate=5.0, random_seed=0).fit(X, y)
    assert not clf.loss_curve_[-1] < clf.loss_curve_[0]
    messages = [str(r.message) for r in record if issubclass(r.category, arraynn.ConvergenceWarning)]
    assert len(messages) == 1 and "more epochs" in messages[0]


def test_a_fit_that_learns_warns_nothing(backend):
    X, y = _blobs()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for kw in (dict(early_stopping=True, batch_size=32, optimizer="adam"), dict(),
                   dict(optimizer="adam", batch_size=32, output="softmax", bias=True)):
            clf = _small(backend=backend.name, device=_device_arg(backend), **kw).fit(X, y)
            assert clf.score(X, y) > 0.9
        clf.partial_fit(X, y)


def test_a_paused_fit_is_not_judged():
    X = np.zeros((90, 4))
    y = np.arange(90) % 3
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        clf = _small(epochs=10).fit(X, y, callback=lambda m, info: info["epoch"] == 2)
    assert clf.n_iter_ == 2
    with pytest.warns(arraynn.ConvergenceWarning):
        clf.set_params(warm_start=True).fit(X, y)      # the fit ends: now it is judged


@pytest.mark.realdata
def test_the_default_estimator_on_scaled_fashion_mnist_says_it_learned_nothing(shared_fashion_mnist):
    X, y, _, _ = arraynn.load_fashion_mnist(shared_fashion_mnist, download=False)
    X = X[:2000].reshape(2000, -1) / 255.0           # as MinMaxScaler makes them
    y = y[:2000]
    with pytest.warns(arraynn.ConvergenceWarning, match='preprocessing="standardize"'):
        NNClassifier(random_seed=0).fit(X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        clf = NNClassifier(preprocessing="standardize", optimizer="adam", batch_size=128, epochs=5,
                           random_seed=0).fit(X, y)
    assert clf.score(X, y) > 0.7                 # chance: 0.1


def test_the_class_docstrings_first_example_learns():
    import doctest
    import inspect

    doc = inspect.cleandoc(NNClassifier.__doc__)
    assert doc.index("Examples\n--------") < doc.index("Parameters\n----------")
    test = doctest.DocTestParser().get_doctest(doc, {}, "NNClassifier", __file__, 0)
    assert any("fit(" in ex.source for ex in test.examples)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        runner.run(test)
    assert runner.failures == 0 and runner.tries >= 6
