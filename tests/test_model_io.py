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
    assert clf.n_iter_ == 7 and clf._opt_state["t"] > 0
    again = clf.save(tmp_path / "again.npz")
    old_arrays, old_meta = read_model(path)
    new_arrays, new_meta = read_model(again)
    assert sorted(old_arrays) == sorted(new_arrays)
    assert {k: v.shape for k, v in old_arrays.items()} == {k: v.shape for k, v in new_arrays.items()}
    assert set(old_meta) == set(new_meta)


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
