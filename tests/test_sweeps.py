"""Hyperparameter sweeps: the estimator object survives pickle (joblib, Dask and Ray ship it
between processes), so scikit-learn's searches run in parallel, on a Dask cluster too."""

from __future__ import annotations

import copy
import os
import pickle

import numpy as np
import pytest

import arraynn
from arraynn import NNClassifier


def _blobs(n=240, d=6, k=3, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(scale=3.0, size=(k, d))
    y = rng.integers(0, k, size=n)
    return centers[y] + rng.normal(size=(n, d)), y


def _small(**kw):
    params = dict(n_hidden_units=8, epochs=4, learning_rate=0.01, batch_size=32, optimizer="adam",
                  output="softmax", bias=True, random_seed=1)
    params.update(kw)
    return NNClassifier(**params)


def test_a_backend_pickles_as_its_name_device_and_dtype(backend):
    again = pickle.loads(pickle.dumps(backend))
    assert again == backend and again.xp is backend.xp


def test_fitted_and_unfitted_estimators_survive_pickle(backend):
    X, y = _blobs()
    kw = dict(backend=backend.name, device=backend.device_name)
    unfitted = pickle.loads(pickle.dumps(_small(**kw)))
    assert unfitted.get_params() == _small(**kw).get_params()
    full = _small(**kw).fit(X, y)
    half = _small(epochs=2, **kw).fit(X, y)
    restored = pickle.loads(pickle.dumps(half))
    assert type(restored._state.params) is type(half._state.params)
    np.testing.assert_array_equal(restored.predict_proba(X), half.predict_proba(X))
    np.testing.assert_array_equal(copy.deepcopy(half).predict(X), half.predict(X))
    restored.set_params(warm_start=True, epochs=4).fit(X, y)  # training continues exactly
    assert restored.loss_curve_ == full.loss_curve_
    for a, b in zip(restored.coefs_, full.coefs_):
        np.testing.assert_array_equal(backend.to_numpy(a), backend.to_numpy(b))


def test_grid_search_runs_in_parallel_and_agrees_with_one_process():
    model_selection = pytest.importorskip("sklearn.model_selection")
    X, y = _blobs()
    grid = {"n_hidden_units": [4, 8], "learning_rate": [0.01, 0.05]}
    serial = model_selection.GridSearchCV(_small(), grid, cv=2, n_jobs=1).fit(X, y)
    parallel = model_selection.GridSearchCV(_small(), grid, cv=2, n_jobs=2).fit(X, y)
    np.testing.assert_array_equal(parallel.cv_results_["mean_test_score"],
                                  serial.cv_results_["mean_test_score"])
    assert parallel.best_params_ == serial.best_params_
    assert parallel.best_estimator_.score(X, y) > 0.9
    again = pickle.loads(pickle.dumps(parallel.best_estimator_))  # joblib.dump works the same way
    np.testing.assert_array_equal(again.predict(X), parallel.best_estimator_.predict(X))


def test_grid_search_on_a_dask_cluster():
    if os.environ.get("ARRAYNN_REQUIRE_DASK") != "1":
        pytest.importorskip("dask.distributed")
    import joblib
    from dask.distributed import Client, LocalCluster

    model_selection = pytest.importorskip("sklearn.model_selection")
    X, y = _blobs()
    grid = {"n_hidden_units": [4, 8], "learning_rate": [0.01, 0.05]}
    serial = model_selection.GridSearchCV(_small(), grid, cv=2, n_jobs=1).fit(X, y)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster), joblib.parallel_backend("dask"):
        search = model_selection.GridSearchCV(_small(), grid, cv=2, n_jobs=-1).fit(X, y)
    np.testing.assert_array_equal(search.cv_results_["mean_test_score"],
                                  serial.cv_results_["mean_test_score"])
    assert isinstance(search.best_estimator_, arraynn.NNClassifier)


# --- blas_threads: the same sums in a joblib worker as in the main process


def _wide(n=900, d=196, k=4, seed=0):
    """Inputs wide enough that the BLAS library splits the matrix products over threads."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(k, d))
    y = rng.integers(0, k, size=n)
    return centers[y] + 2.0 * rng.normal(size=(n, d)), y


def _blas_threads_now() -> list[int]:
    threadpoolctl = pytest.importorskip("threadpoolctl")
    return [info["num_threads"] for info in threadpoolctl.threadpool_info() if info["user_api"] == "blas"]


def test_blas_threads_pins_the_blas_library_during_fit_and_predict():
    outside = _blas_threads_now()
    if not outside:
        pytest.skip("NumPy's BLAS is not one threadpoolctl can see")
    X, y = _wide(n=200)
    seen = []
    clf = _small(blas_threads=1)
    clf.fit(X, y, callback=lambda model, info: seen.append(_blas_threads_now()))
    clf.partial_fit(X, y)
    proba = clf._proba_on_model
    clf._proba_on_model = lambda *a, **kw: (seen.append(_blas_threads_now()), proba(*a, **kw))[1]
    clf.predict(X)
    clf.score(X, y)
    assert len(seen) == 4 + 2 and all(threads == [1] * len(outside) for threads in seen), seen
    assert _blas_threads_now() == outside                 # given back after each call
    unpinned = []
    _small().fit(X, y, callback=lambda model, info: unpinned.append(_blas_threads_now()))
    assert unpinned == [outside] * 4


def test_parallel_cross_validation_with_blas_threads_1_reproduces_the_serial_one():
    model_selection = pytest.importorskip("sklearn.model_selection")
    X, y = _wide()
    est = NNClassifier(n_hidden_units=64, epochs=6, learning_rate=0.01, n_batches=2, optimizer="adam",
                       output="softmax", bias=True, random_seed=0, blas_threads=1)
    runs = [model_selection.cross_validate(est, X, y, cv=3, n_jobs=n_jobs, return_estimator=True)
            for n_jobs in (1, 2)]
    np.testing.assert_array_equal(runs[0]["test_score"], runs[1]["test_score"])
    for serial, parallel in zip(runs[0]["estimator"], runs[1]["estimator"]):
        assert serial.loss_curve_ == parallel.loss_curve_
        for a, b in zip(serial.coefs_ + serial.intercepts_, parallel.coefs_ + parallel.intercepts_):
            np.testing.assert_array_equal(a, b)
    assert runs[0]["test_score"].mean() > 0.8


def test_blas_threads_is_checked_and_needs_threadpoolctl(monkeypatch):
    import sys

    X, y = _blobs(n=40)
    for bad in (0, -1, 2.0, "1", True):
        with pytest.raises(ValueError, match=r"blas_threads must be None .* or a positive integer"):
            _small(blas_threads=bad).fit(X, y)
    clf = _small().fit(X, y)
    with pytest.raises(ValueError, match="blas_threads must be"):
        clf.set_params(blas_threads=0).predict(X)
    monkeypatch.setitem(sys.modules, "threadpoolctl", None)   # as if it were not installed
    with pytest.raises(ImportError, match="pip install threadpoolctl"):
        clf.set_params(blas_threads=1).predict(X)
    clf.set_params(blas_threads=None).predict(X)              # the default needs nothing
