"""A run's saved model in a user's hands: its ``fit`` trains afresh (as scikit-learn's
estimators do), ``clone`` gives a fresh estimator, and inputs that were preprocessed by
hand (the model standardizes its raw inputs itself) are named as the likely mistake."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
from _synthetic import write_synthetic_fashion_mnist
from _train_cli import FAST, main_in_process

import arraynn
from arraynn import NNClassifier
from arraynn.model_io import read_model, write_model

EPOCHS = 3


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    return write_synthetic_fashion_mnist(tmp_path_factory.mktemp("data"), n_train=600, n_test=300)


@pytest.fixture(scope="module")
def run_dir(data_dir, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "run"
    code = arraynn.train.main(["--data-dir", str(data_dir), "--out", str(out), "--epochs", str(EPOCHS),
                               "--no-plots", *FAST])
    assert code == 0
    return out


def _images(data_dir: Path, which: str) -> tuple[np.ndarray, np.ndarray]:
    prefix = "train" if which == "train" else "t10k"
    return (arraynn.read_idx(data_dir / f"{prefix}-images-idx3-ubyte.gz"),
            arraynn.read_idx(data_dir / f"{prefix}-labels-idx1-ubyte.gz"))


def test_fit_on_a_loaded_run_model_trains_afresh(run_dir, data_dir):
    X, y = _images(data_dir, "train")
    loaded = NNClassifier.load(run_dir)
    assert loaded.get_params()["warm_start"] is False
    assert read_model(run_dir / "model.npz")[1]["params"]["warm_start"] is False
    assert read_model(run_dir / "checkpoint.npz")[1]["params"]["warm_start"] is True  # the run's resume
    before = loaded.coefs_[0].copy()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loaded.fit(X[:400], y[:400])                       # raw uint8 images, as the run's
    assert loaded.n_iter_ == EPOCHS and len(loaded.loss_curve_) == EPOCHS
    assert not np.array_equal(loaded.coefs_[0], before)
    assert loaded.preprocessor_.name == "standardize"     # refitted on the new data
    assert loaded.input_range_ == (float(X[:400].min()), float(X[:400].max()))
    assert loaded.score(X[400:], y[400:]) > 0.5


def test_clone_of_a_loaded_run_model_is_a_fresh_estimator(run_dir, data_dir):
    base = pytest.importorskip("sklearn.base")
    X, y = _images(data_dir, "train")
    fresh = base.clone(NNClassifier.load(run_dir))
    assert not hasattr(fresh, "_params")                 # unfitted
    assert fresh.get_params()["warm_start"] is False
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fresh.fit(X, y)
    assert fresh.n_iter_ == EPOCHS


def test_a_model_file_of_an_earlier_run_loads_without_warm_start(run_dir, tmp_path):
    """Runs before this rule saved their own resume setting, warm_start=True."""
    arrays, meta = read_model(run_dir / "model.npz")
    body = {k: v for k, v in meta.items() if k not in ("format", "format_version")}
    body["params"] = dict(body["params"], warm_start=True)
    old = tmp_path / "old"
    old.mkdir()
    write_model(old / "model.npz", arrays, body)
    (old / "model.json").write_bytes((run_dir / "model.json").read_bytes())
    assert NNClassifier.load(old).warm_start is False
    assert NNClassifier.load(old / "model.npz").warm_start is False
    # a model file of the library keeps what its user set
    write_model(tmp_path / "mine.npz", arrays, body)
    mine = NNClassifier.load(tmp_path / "mine.npz")
    assert mine.warm_start is True
    X = np.zeros((20, 784), np.uint8)
    with pytest.warns(UserWarning, match=r"fit did not train.*set_params\(warm_start=False\)"):
        mine.fit(X, np.arange(20) % 10)


def test_resume_extends_a_finished_run_and_its_model_stays_fresh(run_dir, tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    for f in run_dir.iterdir():
        (run / f.name).write_bytes(f.read_bytes())
    code, stdout, err = main_in_process(capsys, "--resume", "--out", str(run), "--epochs", str(EPOCHS + 1),
                                        "--no-plots", "--no-progress")
    assert code == 0, err
    assert f"extending the run to {EPOCHS + 1} epochs" in stdout
    model = NNClassifier.load(run)
    assert model.n_iter_ == EPOCHS + 1 and model.warm_start is False
    assert NNClassifier.load(run / "checkpoint.npz").n_iter_ == EPOCHS + 1
    assert model.input_range_ == (0.0, 255.0)


def test_a_run_model_knows_its_raw_range_and_names_preprocessed_input(run_dir, data_dir):
    X, y = _images(data_dir, "test")
    Xtr, _ = _images(data_dir, "train")
    clf = NNClassifier.load(run_dir)
    assert clf.input_range_ == (0.0, 255.0) == (float(Xtr.min()), float(Xtr.max()))
    summary = json.loads((run_dir / "summary.json").read_text())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert clf.score(X, y) == pytest.approx(summary["test_accuracy"], abs=1e-12)   # raw pixels
        clf.predict(X[:1])
    flat = X.reshape(len(X), -1).astype(np.float64)
    standardized = (flat - flat.mean(axis=0)) / (flat.std(axis=0) + 1e-12)   # by hand
    for given, what in ((standardized, "negative values"), (flat / 255.0, "at most 1")):
        for method in (clf.predict, clf.predict_proba, lambda X: clf.score(X, y)):
            with pytest.warns(arraynn.InputRangeWarning, match=what) as record:
                method(given)
            message = str(record[0].message)
            assert "standardizes its inputs itself" in message and "raw pixels 0-255" in message
            assert "not standardized or scaled ones" in message
    with pytest.warns(arraynn.InputRangeWarning) as record:
        clf.predict(flat / 255.0)
    assert record[0].filename == __file__
    assert issubclass(arraynn.InputRangeWarning, UserWarning)
