"""NNClassifier(layers=[...]): the network's body as a list of layers. A dense stack in
layers trains to the weights of its n_hidden_units spelling (bit for bit on NumPy, on
every backend to rounding), and everything the estimator does works with it."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

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
    wa, wb = backend.to_numpy(a._params), backend.to_numpy(b._params)
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
    assert a._params.tobytes() == b._params.tobytes()
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
    assert again.fit(X, y)._params.tobytes() == clf._params.tobytes()
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
    assert a._params.tobytes() == b._params.tobytes()
    assert a.validation_scores_ == b.validation_scores_ and a.n_iter_ == b.n_iter_
    a, b = _pair("tanh")
    for est in (a, b):
        est.partial_fit(X, y, classes=[0, 1, 2])
        est.partial_fit(X, y)
        est.set_params(warm_start=True, epochs=4).fit(X, y)
        assert est.n_iter_ == 4
    assert a._params.tobytes() == b._params.tobytes()


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
