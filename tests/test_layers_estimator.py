"""NNClassifier(layers=[...]): the network's body as a list of layers. A dense stack in
layers trains to the weights of its n_hidden_units spelling (bit for bit on NumPy, on
every backend to rounding), and everything the estimator does works with it."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from _steps import bar_images

from arraynn import NNClassifier, layers
from arraynn.model_io import read_model


def _data(n=120, features=12, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, size=n)
    X = rng.normal(size=(n, features)) + y[:, None] * 0.8
    return X.astype(np.float32), y


COMMON = dict(epochs=3, batch_size=16, random_seed=4, optimizer="adam", learning_rate=1e-2, bias=True,
              init="he", output="softmax", l2=0.05)

SPELLINGS = {
    "relu": (dict(n_hidden_units=(16, 8), activation="relu"),
             [layers.Dense(16), layers.ReLU(), layers.Dense(8), layers.ReLU()]),
    "dropout": (dict(n_hidden_units=(16, 8), activation="relu", dropout=(0.2, 0.1), input_dropout=0.1),
                [layers.Dropout(0.1), layers.Dense(16), layers.ReLU(), layers.Dropout(0.2), layers.Dense(8),
                 layers.ReLU(), layers.Dropout(0.1)]),
    "tanh": (dict(n_hidden_units=10, activation="tanh"), [layers.Dense(10), layers.Tanh()]),
}


def _pair(name, backend=None, **extra):
    hidden, stack = SPELLINGS[name]
    kw = dict(COMMON, **extra)
    if backend is not None:
        kw.update(backend=backend, dtype=backend.dtype_name)
    return NNClassifier(**hidden, **kw), NNClassifier(layers=stack, **kw)


@pytest.mark.parametrize("name", sorted(SPELLINGS))
def test_layers_train_to_the_weights_of_the_n_hidden_units_spelling(backend, name):
    X, y = _data()
    a, b = _pair(name, backend)
    a.fit(X, y)
    b.fit(X, y)
    wa, wb = backend.to_numpy(a._state.params), backend.to_numpy(b._state.params)
    if backend.name == "numpy":
        assert wa.tobytes() == wb.tobytes()
    else:
        np.testing.assert_allclose(wa, wb, rtol=1e-5, atol=1e-6)
    assert [c.shape for c in a.coefs_] == [c.shape for c in b.coefs_]
    assert len(b.intercepts_) == len(b.coefs_)
    np.testing.assert_array_equal(a.predict(X), b.predict(X))


def test_the_article_network_as_layers_without_biases():
    X, y = _data()
    kw = dict(epochs=3, n_batches=4, random_seed=0, l2=0.5, learning_rate=1e-3)
    a = NNClassifier(n_hidden_units=7, **kw).fit(X, y)
    b = NNClassifier(layers=[layers.Dense(7, bias=False), layers.Sigmoid()], **kw).fit(X, y)
    assert a._state.params.tobytes() == b._state.params.tobytes()
    assert b.intercepts_ == []


@pytest.mark.parametrize("other", [dict(n_hidden_units=(8,)), dict(n_hidden_units=12),
                                   dict(activation="relu"), dict(dropout=0.2), dict(input_dropout=0.1)])
def test_layers_with_a_parameter_they_replace_is_an_error_before_any_work(other):
    name = next(iter(other))
    clf = NNClassifier(layers=[layers.Dense(4), layers.ReLU()], **other)
    with pytest.raises(ValueError, match=f"layers and {name}=.* were both given"):
        clf.fit(*_data())
    assert not hasattr(clf, "classes_")


@pytest.mark.parametrize("bad", [[], "dense", [layers.Dense(3), "relu"], layers.Dense(3)])
def test_layers_must_be_a_list_of_layers(bad):
    with pytest.raises(ValueError, match="layers must be"):
        NNClassifier(layers=bad).fit(*_data())


def test_clone_pickle_save_and_load_keep_the_layers(tmp_path):
    pytest.importorskip("sklearn")
    from sklearn.base import clone

    X, y = _data()
    _, clf = _pair("dropout")
    clf.fit(X, y)
    again = clone(clf)
    assert again.layers == clf.layers and again.layers[0] is not clf.layers[0]
    assert again.fit(X, y)._state.params.tobytes() == clf._state.params.tobytes()
    back = pickle.loads(pickle.dumps(clf))
    np.testing.assert_array_equal(back.predict_proba(X), clf.predict_proba(X))
    clf.save(tmp_path / "m.npz")
    meta = read_model(tmp_path / "m.npz")[1]
    assert meta["format_version"] == 3 and meta["params"]["layers"][0] == {"layer": "dropout", "rate": 0.1}
    loaded = NNClassifier.load(tmp_path / "m.npz")
    assert loaded.layers == clf.layers
    np.testing.assert_array_equal(loaded.predict_proba(X), clf.predict_proba(X))
    # a model without layers is still written as format 2
    NNClassifier(epochs=1).fit(X, y).save(tmp_path / "plain.npz")
    assert read_model(tmp_path / "plain.npz")[1]["format_version"] == 2


def test_partial_fit_warm_start_early_stopping_and_sample_weights_with_layers():
    X, y = _data(200)
    w = np.random.default_rng(1).uniform(0.5, 2.0, size=len(y))
    extra = dict(early_stopping=True, validation_fraction=0.2, n_iter_no_change=2, epochs=6)
    a, b = _pair("relu", **extra)
    a.fit(X, y, sample_weight=w)
    b.fit(X, y, sample_weight=w)
    assert a._state.params.tobytes() == b._state.params.tobytes()
    assert a.validation_scores_ == b.validation_scores_ and a.n_iter_ == b.n_iter_
    a, b = _pair("tanh")
    for est in (a, b):
        est.partial_fit(X, y, classes=[0, 1, 2])
        est.partial_fit(X, y)
        est.set_params(warm_start=True, epochs=4).fit(X, y)
        assert est.n_iter_ == 4
    assert a._state.params.tobytes() == b._state.params.tobytes()


def test_a_layers_model_exports_to_onnx():
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    from arraynn.export import to_onnx

    X, y = _data()
    _, clf = _pair("dropout", preprocessing="standardize")
    clf.fit(X, y)
    proba, label = ort.InferenceSession(to_onnx(clf).SerializeToString()).run(None, {"input": X})
    np.testing.assert_allclose(proba, clf.predict_proba(X), atol=1e-5)
    np.testing.assert_array_equal(label, clf.predict(X))


_images = bar_images


CNN = [layers.Conv2D(4, 3, padding="same"), layers.ReLU(), layers.MaxPool2D(2), layers.Flatten(),
       layers.Dense(8), layers.ReLU()]
CNN_KW = dict(epochs=4, batch_size=16, random_seed=2, optimizer="adam", learning_rate=1e-2,
              preprocessing="standardize")


def test_images_in_every_layout_train_the_same_convolutional_network(tmp_path):
    X, y = _images()
    by_shape = {
        "(n, h, w)": NNClassifier(layers=CNN, **CNN_KW).fit(X, y),
        "(n, 1, h, w)": NNClassifier(layers=CNN, **CNN_KW).fit(X[:, None], y),
        "flat rows + input_shape": NNClassifier(layers=CNN, input_shape=(1, 8, 8), **CNN_KW).fit(
            X.reshape(len(X), -1), y),
        "flat rows + (h, w)": NNClassifier(layers=CNN, input_shape=(8, 8), **CNN_KW).fit(
            X.reshape(len(X), -1), y),
    }
    first = by_shape["(n, h, w)"]
    assert first.input_shape_ == (1, 8, 8) and first.score(X, y) > 0.9
    assert [c.shape for c in first.coefs_] == [(4, 1, 3, 3), (64, 8), (8, 3)]  # kernels (f, c, kh, kw)
    for name, clf in by_shape.items():
        assert clf.input_shape_ == (1, 8, 8), name
        assert clf._state.params.tobytes() == first._state.params.tobytes(), name
    # a saved model predicts raw uint8 images in any of the layouts
    first.save(tmp_path / "cnn.npz")
    meta = read_model(tmp_path / "cnn.npz")[1]
    assert meta["input_shape"] == [1, 8, 8] and meta["params"]["layers"][0]["layer"] == "conv2d"
    loaded = NNClassifier.load(tmp_path / "cnn.npz")
    for view in (X, X[:, None], X.reshape(len(X), -1)):
        np.testing.assert_array_equal(loaded.predict_proba(view), first.predict_proba(X))
    with pytest.raises(ValueError, match=r"images of shape \(2, 4, 8\) but the network takes \(1, 8, 8\)"):
        loaded.predict(X.reshape(len(X), 2, 4, 8))
    back = pickle.loads(pickle.dumps(first))
    np.testing.assert_array_equal(back.predict(X), first.predict(X))


def test_a_cnn_predicts_in_chunks_sized_for_its_feature_maps(monkeypatch):
    # a chunk's widest activation stays under CHUNK_NUMBERS (a CNN's feature maps are
    # far wider than its inputs); an MLP keeps CHUNK rows; chunked predictions equal
    # the whole batch's to rounding
    import arraynn._inference as inference

    X, y = _images()
    cnn = NNClassifier(layers=CNN, **CNN_KW).fit(X, y)
    assert cnn._state.net.widest_sample == 4 * 8 * 8  # the convolution's output
    assert inference.chunk_rows(cnn) == min(inference.CHUNK, inference.CHUNK_NUMBERS // 256)
    mlp = NNClassifier(n_hidden_units=5, epochs=2, random_seed=0).fit(X.reshape(len(X), -1), y)
    assert inference.chunk_rows(mlp) == inference.CHUNK
    whole = cnn.predict_proba(X)
    monkeypatch.setattr(inference, "CHUNK_NUMBERS", 256 * 7)  # 7 rows at a time
    assert inference.chunk_rows(cnn) == 7
    np.testing.assert_allclose(cnn.predict_proba(X), whole, rtol=1e-5, atol=1e-6)
    assert cnn.score(X, y) == pytest.approx(float(np.mean(np.argmax(whole, axis=1) == y)))


def test_three_channel_images_and_warm_start():
    rng = np.random.default_rng(3)
    X, y = _images(64)
    X3 = np.stack([X, X[:, ::-1], rng.integers(0, 255, size=X.shape)], axis=1).astype(np.uint8)
    clf = NNClassifier(layers=[layers.Conv2D(3, 3), layers.ReLU(), layers.GlobalAvgPool2D()], **CNN_KW)
    clf.fit(X3, y)
    assert clf.input_shape_ == (3, 8, 8) and clf.coefs_[0].shape == (3, 3, 3, 3)
    clf.set_params(warm_start=True, epochs=6).fit(X3, y)
    assert clf.n_iter_ == 6


@pytest.mark.parametrize("make, match", [
    (lambda X, y: NNClassifier(layers=CNN).fit(X.reshape(len(X), -1), y), "input_shape=\\(channels"),
    (lambda X, y: NNClassifier(layers=CNN, input_shape=(1, 8, 9)).fit(X.reshape(len(X), -1), y),
     "must match"),
    (lambda X, y: NNClassifier(layers=CNN, input_shape=(1, 4, 16)).fit(X, y), "leave input_shape=None"),
    (lambda X, y: NNClassifier(layers=CNN, input_shape="1x8x8").fit(X, y), "positive integers"),
    (lambda X, y: NNClassifier(layers=[layers.Conv2D(2, 9), layers.Flatten()]).fit(X, y), "does not fit"),
])
def test_bad_image_shapes_are_clear_errors_before_any_work(make, match):
    X, y = _images(32)
    with pytest.raises(ValueError, match=match):
        make(X, y)


BN_CNN = [layers.Conv2D(3, 3, padding="same", bias=False), layers.BatchNorm(), layers.ReLU(),
          layers.MaxPool2D(2), layers.Conv2D(4, (2, 3), stride=2, padding=1), layers.Tanh(), layers.Flatten(),
          layers.Dropout(0.2), layers.Dense(6), layers.ReLU()]


def test_a_small_cnn_trained_two_epochs_gives_the_same_probabilities_on_every_backend(backend64):
    X, y = _images(64)
    kw = dict(layers=BN_CNN, epochs=2, batch_size=16, random_seed=3, optimizer="adam", learning_rate=1e-2,
              preprocessing="standardize", dtype="float64")
    want = NNClassifier(**kw, backend="numpy").fit(X, y).predict_proba(X)
    clf = NNClassifier(**kw, backend=backend64).fit(X, y)
    np.testing.assert_allclose(backend64.to_numpy(clf.predict_proba(backend64.asarray(X))), want,
                               rtol=1e-9, atol=1e-11)


def test_a_trained_cnn_predicts_what_pytorchs_functional_layers_compute_with_its_weights():
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    X, y = _images(64)
    body = [layers.Conv2D(4, 3, padding="same"), layers.ReLU(), layers.MaxPool2D(2),
            layers.Conv2D(5, 3, stride=2), layers.ReLU(), layers.AvgPool2D(1), layers.Flatten(),
            layers.Dense(7), layers.Tanh()]
    clf = NNClassifier(layers=body, epochs=3, batch_size=16, random_seed=4, optimizer="adam",
                       learning_rate=1e-2, bias=True, output="softmax", dtype="float64").fit(X, y)
    W = [torch.tensor(np.asarray(w)) for w in clf.coefs_]
    b = [torch.tensor(np.asarray(v)) for v in clf.intercepts_]
    a = torch.tensor(X.astype(np.float64))[:, None]
    a = F.max_pool2d(F.relu(F.conv2d(a, W[0], b[0], padding=1)), 2)
    a = F.relu(F.conv2d(a, W[1], b[1], stride=2)).flatten(1)
    a = torch.tanh(F.linear(a, W[2].T, b[2]))
    proba = torch.softmax(F.linear(a, W[3].T, b[3]), dim=1)
    np.testing.assert_allclose(clf.predict_proba(X), proba.numpy(), rtol=1e-10, atol=1e-12)
