"""One training state: ``state_dict`` / ``load_state_dict``, pickling, forgetting a fit,
and estimators pickled before the state existed."""

from __future__ import annotations

import json
import pickle
import warnings
from pathlib import Path

import numpy as np
import pytest
from _devices import device_arg as _device_arg

from arraynn import NNClassifier

FIXTURES = Path(__file__).resolve().parent / "fixtures"


def _data(n=120, d=16, k=3, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.uniform(0, 255, size=(k, d))
    y = rng.integers(0, k, size=n)
    X = np.clip(centers[y] + rng.normal(0, 40, size=(n, d)), 0, 255).astype(np.uint8)
    return X, y


def _fitted(backend, **kw):
    X, y = _data()
    params = dict(n_hidden_units=8, optimizer="adam", batch_size=32, epochs=3, random_seed=0,
                  preprocessing="standardize", early_stopping=True, n_iter_no_change=5,
                  class_names=["a", "b", "c"], backend=backend.name, device=_device_arg(backend),
                  dtype=backend.dtype_name)
    params.update(kw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return NNClassifier(**params).fit(X, y), X, y


def test_the_state_dict_is_host_arrays_and_json_and_loads_back_on_every_backend(backend):
    clf, X, y = _fitted(backend)
    state = clf.state_dict()
    arrays = {k: v for k, v in state.items() if isinstance(v, np.ndarray)}
    values = {k: v for k, v in state.items() if k not in arrays}
    assert {"param_0", "param_1", "opt_m_0", "opt_v_1", "best_param_0", "classes"} <= set(arrays)
    json.dumps(values)  # everything else is JSON
    assert values["n_iter"] == clf.n_iter_ == 3 and values["class_names"] == ["a", "b", "c"]
    other = NNClassifier(**clf.get_params()).load_state_dict(state)
    np.testing.assert_array_equal(backend.to_numpy(other.predict_proba(X)),
                                  backend.to_numpy(clf.predict_proba(X)))
    assert other.validation_scores_ == clf.validation_scores_ and other.n_iter_ == clf.n_iter_
    assert other.backend_.name == backend.name
    # the loaded state trains on exactly as the original does
    for est in (clf, other):
        est.set_params(warm_start=True, epochs=5)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            est.fit(X, y)
    np.testing.assert_array_equal(backend.to_numpy(other._state.params), backend.to_numpy(clf._state.params))
    # the state dict was a snapshot: training on changed the model, not the dict's arrays
    assert not np.array_equal(state["param_0"], clf.state_dict()["param_0"])
    assert state["n_iter"] == 3


def test_a_state_dict_that_does_not_fit_the_parameters_is_named():
    from arraynn._state import StateError

    clf, _, _ = _fitted(_numpy())
    state = clf.state_dict()
    with pytest.raises(StateError, match=r"param_0 has shape \(16, 8\), expected \(16, 12\)"):
        NNClassifier(**{**clf.get_params(), "n_hidden_units": 12}).load_state_dict(
            {**state, "layer_sizes": [16, 12, 3]})
    with pytest.raises(StateError, match="layer sizes .* do not match its n_hidden_units"):
        NNClassifier(**{**clf.get_params(), "n_hidden_units": 12}).load_state_dict(state)
    with pytest.raises(StateError, match="'opt_v_0' is missing"):
        NNClassifier(**clf.get_params()).load_state_dict({k: v for k, v in state.items() if k != "opt_v_0"})
    with pytest.raises(ValueError, match="optimizer must be one of"):
        NNClassifier(**{**clf.get_params(), "optimizer": "rmsprop"}).load_state_dict(state)


def _numpy():
    from arraynn import get_backend

    return get_backend("numpy")


def test_a_pickled_estimator_holds_its_parameters_and_one_state(backend):
    clf, X, _ = _fitted(backend)
    restored = pickle.loads(pickle.dumps(clf))
    assert set(vars(restored)) == set(clf.get_params()) | {"_state"}
    np.testing.assert_array_equal(backend.to_numpy(restored.predict_proba(X)),
                                  backend.to_numpy(clf.predict_proba(X)))
    assert restored.preprocessor_.name == "standardize" and restored.input_range_ == clf.input_range_


def test_forgetting_a_fit_leaves_only_the_parameters():
    clf, X, _ = _fitted(_numpy())
    clf._forget_fit()
    assert set(vars(clf)) == set(clf.get_params())
    for name in ("classes_", "n_iter_", "preprocessor_", "loss_curve_", "feature_names_in_"):
        assert not hasattr(clf, name), name
    with pytest.raises(AttributeError, match="not fitted yet"):
        clf.predict(X)


def test_learned_attributes_are_read_only_but_the_class_names():
    clf, _, _ = _fitted(_numpy())
    with pytest.raises(AttributeError, match="n_iter_ is learned by fit"):
        clf.n_iter_ = 7
    clf.class_names_ = ["x", "y", "z"]
    assert clf.state_dict()["class_names"] == ["x", "y", "z"]


@pytest.mark.parametrize("name", ["es", "cnn"])
def test_an_estimator_pickled_before_the_training_state_unpickles_and_predicts_the_same(name):
    rng = np.random.default_rng(0)  # the rows the fixture's models were checked on
    X = rng.integers(0, 256, size=(300, 64)).astype(np.uint8)
    X = X.reshape(-1, 8, 8) if name == "cnn" else X
    with open(FIXTURES / f"pickled-before-training-state-{name}.pkl", "rb") as f:
        clf = pickle.load(f)
    want = np.load(FIXTURES / "pickled-before-training-state-proba.npz")[name]
    got = clf.predict_proba(X)
    # the fixture's probabilities were computed on another CPU, whose BLAS kernels round
    # the matrix products' last bits differently (an AVX2 Zen 3 against an AVX-512 Zen 4:
    # up to 3e-6 apart, relatively): the same model, to float32 rounding
    assert got.dtype == want.dtype and got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=2e-5, atol=1e-7)
    assert (got.argmax(axis=1) == want.argmax(axis=1)).all()
    assert set(vars(clf)) == set(clf.get_params()) | {"_state"}
    if name == "es":
        assert clf.early_stopping and clf.validation_scores_ and clf.preprocessor_.name == "standardize"
    else:
        assert clf._state.net.has_state and clf.state_dict()["state_stats"].size > 0
    # it trains on from where it was
    clf.set_params(warm_start=True, epochs=clf.n_iter_ + 1, early_stopping=False)
    y = rng.integers(0, 3, size=300)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf.fit(X, y)
    assert clf.n_iter_ >= 1
