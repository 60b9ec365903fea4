"""Model files: what 0.1.0 wrote still loads and predicts the same; what is wrong with a
file is named."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import arraynn
from arraynn import NNClassifier
from arraynn.model_io import read_model

FIXTURES = Path(__file__).resolve().parent / "fixtures"
EXPECTED = json.loads((FIXTURES / "model-0.1.0-expected.json").read_text())


@pytest.mark.parametrize("name", sorted(EXPECTED["models"]))
def test_models_saved_by_0_1_0_load_and_predict_the_same(backend, name):
    want = EXPECTED["models"][name]
    clf = NNClassifier.load(FIXTURES / f"model-0.1.0-{name}.npz", backend=backend.name,
                            device=backend.device)
    X = np.asarray(EXPECTED["X"])
    assert clf.n_iter_ == want["n_iter"] and clf.loss_curve_ == want["loss_curve"]
    np.testing.assert_allclose(clf.predict_proba(X), want["proba"], rtol=2e-5, atol=1e-6)
    assert clf.predict(X).tolist() == want["predict"]


def test_a_0_1_0_checkpoint_resumes_and_saves_in_the_same_format(tmp_path):
    path = FIXTURES / "model-0.1.0-adam.npz"
    clf = NNClassifier.load(path).set_params(warm_start=True, epochs=7)
    X = np.asarray(EXPECTED["X"] * 3)
    y = np.array(["a", "b", "c"] * 10)
    clf.fit(X, y)
    assert clf.n_iter_ == 7 and clf._state.opt["t"] > 0
    again = clf.save(tmp_path / "again.npz")
    old_arrays, old_meta = read_model(path)
    new_arrays, new_meta = read_model(again)
    assert sorted(old_arrays) == sorted(new_arrays)
    assert {k: v.shape for k, v in old_arrays.items()} == {k: v.shape for k, v in new_arrays.items()}
    # the same entries, plus the training state of early stopping and the adaptive rate
    assert set(new_meta) - set(old_meta) == {"stopping", "validation_scores"}
    assert set(old_meta) <= set(new_meta)
    assert new_meta["stopping"]["monitor"] == "loss" and new_meta["validation_scores"] is None


def test_a_file_with_a_wrong_shape_or_a_missing_array_is_named(tmp_path):
    arrays, meta = read_model(FIXTURES / "model-0.1.0-article.npz")
    meta_bytes = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    bad = dict(arrays, param_1=np.zeros((7, 3)))
    np.savez(tmp_path / "shape.npz", **bad, **{"meta.json": meta_bytes})
    with pytest.raises(arraynn.ModelFileError, match=r"param_1 has shape \(7, 3\), expected \(6, 3\)"):
        NNClassifier.load(tmp_path / "shape.npz")
    missing = {k: v for k, v in arrays.items() if k != "param_0"}
    np.savez(tmp_path / "missing.npz", **missing, **{"meta.json": meta_bytes})
    with pytest.raises(arraynn.ModelFileError, match="'param_0' is missing"):
        NNClassifier.load(tmp_path / "missing.npz")
    meta2 = dict(meta, format_version=99)
    np.savez(tmp_path / "future.npz", **arrays,
             **{"meta.json": np.frombuffer(json.dumps(meta2).encode(), dtype=np.uint8)})
    with pytest.raises(arraynn.ModelFileError, match="format version 99"):
        NNClassifier.load(tmp_path / "future.npz")


def test_parameters_given_as_arrays_are_saved_as_lists(tmp_path):
    X, y = np.random.default_rng(0).normal(size=(30, 4)), np.arange(30) % 2
    clf = NNClassifier(n_hidden_units=(3, 3), dropout=np.array([0.1, 0.2]), epochs=2).fit(X, y)
    clf.save(tmp_path / "m.npz")
    assert read_model(tmp_path / "m.npz")[1]["format_version"] == 2  # 0.1.0's files: 1, read too
    back = NNClassifier.load(tmp_path / "m.npz")
    assert list(back.dropout) == [0.1, 0.2]
    np.testing.assert_array_equal(back.predict_proba(X), clf.predict_proba(X))


# --- tampered files: every malformed model is a ModelFileError naming the file and the problem


def _tampered(tmp_path: Path, meta_change=None, array_change=None, name="t.npz") -> Path:
    arrays, meta = read_model(FIXTURES / "model-0.1.0-adam.npz")
    if meta_change:
        meta_change(meta)
    if array_change:
        array_change(arrays)
    path = tmp_path / name
    np.savez(path, **arrays, **{"meta.json": np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)})
    return path


def _set(key, value):
    return lambda d: d.__setitem__(key, value)


def _drop(key):
    return lambda d: d.pop(key)


def _set_param(key, value):
    return lambda d: d["params"].__setitem__(key, value)


@pytest.mark.parametrize(("meta_change", "array_change", "fragment"), [
    (_drop("params"), None, "lacks the field 'params'"),
    (_set("params", [1, 2]), None, "'params' must be an object"),
    (_drop("layer_sizes"), None, "lacks the field 'layer_sizes'"),
    (_set("layer_sizes", "8,6,5,3"), None, "'layer_sizes' must be a list"),
    (_set("layer_sizes", [8, 6, 0, 3]), None, "'layer_sizes' must be a list"),
    (_set("layer_sizes", [8, 6, 4, 3]), None, "do not match its n_hidden_units"),
    (_set("layer_sizes", [9, 6, 5, 3]), None, "takes 9 inputs but n_features_in is 8"),
    (_set("n_features_in", "8"), None, "'n_features_in' must be a positive integer"),
    (_set("n_iter", -1), None, "'n_iter' must be an integer >= 0"),
    (_set("n_iter", None), None, "'n_iter'"),
    (_set("loss_curve", [1.0, "x"]), None, "'loss_curve' must be a list of finite numbers"),
    (_set("loss_curve", [float("nan")]), None, "'loss_curve' must be a list of finite numbers"),
    (_set("random_seed", 1.5), None, "'random_seed'"),
    (_set("optimizer_step", True), None, "'optimizer_step'"),
    (_set("optimizer_buffers", "mv"), None, "'optimizer_buffers' must be a list"),
    (_set("optimizer_buffers", ["m", "q"]), None, "'q' does not belong to the 'adam' optimizer"),
    (_set("optimizer_buffers", ["m"]), None, "buffers ['v'] are missing"),
    (_set("n_params", 4), None, "holds 4 parameter arrays"),
    (_set_param("optimizer", "rmsprop"), None, "optimizer must be one of"),
    (_set_param("beta_1", 1.0), None, "beta_1"),
    (_set_param("n_hidden_units", {"a": 1}), None, "n_hidden_units"),
    (_set_param("activation", None), None, "activation"),
    (None, lambda a: a.pop("classes"), "'classes' is missing"),
    (None, lambda a: a.__setitem__("classes", np.arange(4)), "4 classes but its network has 3 outputs"),
    (None, lambda a: a.__setitem__("classes", np.zeros((3, 1))), "'classes' must be a 1-D array"),
    (None, lambda a: a.__setitem__("classes", np.array([1, 1, 2])), "distinct"),
    (None, lambda a: a.__setitem__("classes", np.array([0.0, 1.0, np.nan])), "classes hold NaN"),
    (None, lambda a: a.__setitem__("param_2", np.full((6, 5), np.inf, np.float32)), "'param_2' holds NaN"),
    (None, lambda a: a.__setitem__("opt_v_0", np.full((8, 6), np.nan, np.float32)), "'opt_v_0' holds NaN"),
    (None, lambda a: a.__setitem__("opt_m_3", np.zeros((4,), np.float32)), "opt_m_3 has shape (4,)"),
    (None, lambda a: a.__setitem__("param_0", np.zeros((8, 6), np.complex64)), "param_0 has dtype complex64"),
])
def test_tampered_metadata_is_a_model_file_error(tmp_path, meta_change, array_change, fragment):
    path = _tampered(tmp_path, meta_change, array_change)
    with pytest.raises(arraynn.ModelFileError) as info:
        NNClassifier.load(path)
    assert str(path) in str(info.value)
    assert fragment in str(info.value), str(info.value)


def test_an_object_array_in_a_model_file_is_refused_not_unpickled(tmp_path):
    arrays, meta = read_model(FIXTURES / "model-0.1.0-adam.npz")
    arrays["classes"] = np.array([1, "b", None], dtype=object)
    path = tmp_path / "pickled.npz"
    np.savez(path, **arrays, **{"meta.json": np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)})
    with pytest.raises(arraynn.ModelFileError, match="pickled.npz"):
        NNClassifier.load(path)


# --- saving never replaces what is not a regular file, and writes through symbolic links


def _fitted():
    return NNClassifier.load(FIXTURES / "model-0.1.0-adam.npz")


def test_save_writes_through_a_symlink_to_its_target(tmp_path):
    target = tmp_path / "real" / "model.npz"
    target.parent.mkdir()
    target.write_bytes(b"old")
    link = tmp_path / "link.npz"
    link.symlink_to(target)
    _fitted().save(link)
    assert link.is_symlink() and link.resolve() == target.resolve()
    assert NNClassifier.load(target).n_iter_ == 5
    assert sorted(p.name for p in target.parent.iterdir()) == ["model.npz"]
    dangling = tmp_path / "dangling.npz"
    dangling.symlink_to(tmp_path / "real" / "new.npz")
    _fitted().save(dangling)
    assert dangling.is_symlink() and (tmp_path / "real" / "new.npz").is_file()


def test_save_refuses_to_replace_a_device_a_fifo_or_a_directory(tmp_path):
    import os

    from arraynn._fileio import NotARegularFileError

    fifo = tmp_path / "fifo.npz"
    os.mkfifo(fifo)
    (tmp_path / "dir.npz").mkdir()
    devlink = tmp_path / "null.npz"
    devlink.symlink_to(os.devnull)
    for path, kind in [(fifo, "a FIFO"), (tmp_path / "dir.npz", "a directory"), (devlink, "a device")]:
        with pytest.raises(NotARegularFileError, match=kind):
            _fitted().save(path)
    assert not (tmp_path / "fifo.npz").is_file() and (tmp_path / "dir.npz").is_dir()
    assert Path(os.devnull).is_char_device()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dir.npz", "fifo.npz", "null.npz"]


# --- the raw inputs' range and the BLAS thread count travel with the model


def _images(n=300, seed=0):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 3
    X = rng.integers(0, 100, size=(n, 16))
    X[np.arange(n), 4 * y] += 156                 # one bright pixel per class, up to 255
    return X.astype(np.uint8), y


def _preprocessing_model(**kw):
    return NNClassifier(n_hidden_units=8, epochs=5, batch_size=32, optimizer="adam", output="softmax",
                        random_seed=0, preprocessing="standardize", **kw)


def test_the_raw_input_range_is_saved_pickled_and_loaded(tmp_path):
    import pickle

    X, y = _images()
    clf = _preprocessing_model().fit(X, y)
    assert clf.input_range_ == (float(X.min()), float(X.max())) == (0.0, 255.0)
    clf.save(tmp_path / "m.npz")
    assert read_model(tmp_path / "m.npz")[1]["input_range"] == [0.0, 255.0]
    for again in (NNClassifier.load(tmp_path / "m.npz"), pickle.loads(pickle.dumps(clf))):
        assert again.input_range_ == (0.0, 255.0)
        with pytest.warns(arraynn.InputRangeWarning, match="standardizes its inputs itself"):
            again.predict(X / 255.0)
    # a model without preprocessing takes its inputs as given: no range, none saved
    plain = NNClassifier(n_hidden_units=8, epochs=2, random_seed=0).fit(X, y)
    assert plain.input_range_ is None
    plain.save(tmp_path / "plain.npz")
    assert "input_range" not in read_model(tmp_path / "plain.npz")[1]


def test_files_without_an_input_range_load_and_check_nothing(tmp_path):
    import warnings

    X, y = _images()
    _preprocessing_model().fit(X, y).save(tmp_path / "m.npz")
    arrays, meta = read_model(tmp_path / "m.npz")
    meta.pop("input_range")
    np.savez(tmp_path / "old.npz", **arrays, **{"meta.json": np.frombuffer(json.dumps(meta).encode(),
                                                                           dtype=np.uint8)})
    old = NNClassifier.load(tmp_path / "old.npz")
    assert old.input_range_ is None and old.preprocessor_.name == "standardize"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        old.predict(X / 255.0)
    for name in EXPECTED["models"]:                  # 0.1.0's files too
        assert NNClassifier.load(FIXTURES / f"model-0.1.0-{name}.npz").input_range_ is None


@pytest.mark.parametrize("bounds", [[0.0], [255.0, 0.0], ["0", "255"], [0.0, None], [True, 1.0]])
def test_a_damaged_input_range_is_a_model_file_error(tmp_path, bounds):
    X, y = _images()
    _preprocessing_model().fit(X, y).save(tmp_path / "m.npz")
    arrays, meta = read_model(tmp_path / "m.npz")
    meta["input_range"] = bounds
    np.savez(tmp_path / "bad.npz", **arrays, **{"meta.json": np.frombuffer(json.dumps(meta).encode(),
                                                                           dtype=np.uint8)})
    with pytest.raises(arraynn.ModelFileError, match="its input_range must be"):
        NNClassifier.load(tmp_path / "bad.npz")


def test_blas_threads_is_saved_and_older_files_load_without_it(tmp_path):
    X, y = _images()
    clf = _preprocessing_model(blas_threads=1).fit(X, y)
    clf.save(tmp_path / "m.npz")
    assert read_model(tmp_path / "m.npz")[1]["params"]["blas_threads"] == 1
    assert NNClassifier.load(tmp_path / "m.npz").blas_threads == 1
    # at its default it is not written: a reader of format 2 from before it reads the file
    _preprocessing_model().fit(X, y).save(tmp_path / "d.npz")
    assert "blas_threads" not in read_model(tmp_path / "d.npz")[1]["params"]
    assert NNClassifier.load(tmp_path / "d.npz").blas_threads is None
    assert "blas_threads" not in read_model(FIXTURES / "model-0.1.0-adam.npz")[1]["params"]
    assert NNClassifier.load(FIXTURES / "model-0.1.0-adam.npz").blas_threads is None
