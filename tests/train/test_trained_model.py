"""Using a trained model: one file (or one run directory) holds the network, its input
preprocessing and the class names, and predicts on raw images with the run's accuracy."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from _synthetic import synthetic_images, write_synthetic_fashion_mnist
from _train_cli import FAST, main_in_process

import arraynn
from arraynn import NNClassifier
from arraynn.data.fashion_mnist import FASHION_MNIST_CLASSES
from arraynn.model_io import read_model, write_model


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    return write_synthetic_fashion_mnist(tmp_path_factory.mktemp("data"), n_train=600, n_test=300)


@pytest.fixture(scope="module")
def run_dir(data_dir, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "run"
    code = arraynn.train.main(["--data-dir", str(data_dir), "--out", str(out), "--epochs", "3",
                               "--no-plots", *FAST])
    assert code == 0
    return out


def _test_set(data_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    return (arraynn.read_idx(data_dir / "t10k-images-idx3-ubyte.gz"),
            arraynn.read_idx(data_dir / "t10k-labels-idx1-ubyte.gz"))


def test_a_run_predicts_on_raw_images_with_its_test_accuracy(run_dir, data_dir, backend):
    X, y = _test_set(data_dir)
    assert X.dtype == np.uint8 and X.shape[1:] == (28, 28)
    run_accuracy = json.loads((run_dir / "summary.json").read_text())["test_accuracy"]
    for where in (run_dir, run_dir / "model.npz"):
        clf = NNClassifier.load(where, backend=backend.name, device=backend.device)
        assert clf.preprocessor_.name == "standardize"
        assert clf.class_names_ == list(FASHION_MNIST_CLASSES)
        assert clf.get_params()["preprocessing"] == "standardize"
        assert clf.score(X, y) == pytest.approx(run_accuracy, abs=1e-12)     # (n, 28, 28) uint8
        assert clf.score(X.reshape(len(X), 784), y) == pytest.approx(run_accuracy, abs=1e-12)
    assert clf.predict(X[:5]).tolist() == clf.predict(X[:5].reshape(5, 784)).tolist()


def test_a_run_of_0_1_0_takes_its_preprocessing_and_names_from_model_json(run_dir, data_dir, tmp_path):
    """0.1.0 wrote the preprocessing and the class names only to model.json."""
    old = tmp_path / "old"
    old.mkdir()
    arrays, meta = read_model(run_dir / "model.npz")
    for key in ("preprocessing", "class_names"):
        meta.pop(key)
    meta["params"] = {k: v for k, v in meta["params"].items() if k not in ("preprocessing", "class_names")}
    write_model(old / "model.npz", arrays, {k: v for k, v in meta.items()
                                             if k not in ("format", "format_version")})
    (old / "model.json").write_bytes((run_dir / "model.json").read_bytes())
    X, y = _test_set(data_dir)
    run_accuracy = json.loads((run_dir / "summary.json").read_text())["test_accuracy"]
    clf = NNClassifier.load(old)
    assert clf.preprocessor_.name == "standardize" and clf.class_names_ == list(FASHION_MNIST_CLASSES)
    assert clf.score(X, y) == pytest.approx(run_accuracy, abs=1e-12)
    (old / "model.json").unlink()
    bare = NNClassifier.load(old)
    assert bare.preprocessor_ is None and bare.class_names_ is None


def test_the_library_saves_preprocessing_and_class_names_in_the_model(tmp_path, backend):
    rng = np.random.default_rng(0)
    X, y = synthetic_images(400, rng)
    names = [f"class {k}" for k in range(10)]
    clf = NNClassifier(n_hidden_units=16, epochs=5, learning_rate=0.01, batch_size=50, optimizer="adam",
                       output="softmax", random_seed=0, preprocessing="standardize", class_names=names,
                       backend=backend.name, device=backend.device)
    clf.fit(X, y)                                                           # raw uint8, (n, 28, 28)
    assert clf.preprocessor_.name == "standardize" and clf.class_names_ == names
    accuracy = clf.score(X, y)
    assert accuracy > 0.5
    raw = NNClassifier(n_hidden_units=16, epochs=5, learning_rate=0.01, batch_size=50, optimizer="adam",
                       output="softmax", random_seed=0, backend=backend.name, device=backend.device)
    assert raw.fit(X.reshape(400, -1).astype(np.float32), y).preprocessor_ is None
    clf.save(tmp_path / "m.npz")
    again = NNClassifier.load(tmp_path / "m.npz")
    assert again.class_names_ == names and again.preprocessor_.name == "standardize"
    assert again.score(X, y) == pytest.approx(accuracy, abs=1e-12)
    np.testing.assert_allclose(again.predict_proba(X[:7]), backend.to_numpy(clf.predict_proba(X[:7])),
                               rtol=1e-5, atol=1e-6)
    # warm_start continues on raw inputs with the same preprocessing
    again.set_params(warm_start=True, epochs=6).fit(X, y)
    assert again.n_iter_ == 6 and again.score(X, y) > 0.5


def test_a_per_set_model_predicts_one_image_with_the_training_statistics():
    rng = np.random.default_rng(1)
    X, y = synthetic_images(300, rng)
    clf = NNClassifier(n_hidden_units=16, epochs=3, batch_size=50, optimizer="adam", output="softmax",
                       random_seed=0, preprocessing="per-set").fit(X, y)
    one = [int(clf.predict(X[i:i + 1])[0]) for i in range(10)]
    assert one == clf.predict(X[:10]).tolist() == clf.predict(X[:200])[:10].tolist()
    d = clf.preprocessor_.to_dict()
    assert d["scheme"] == "per-set" and len(d["mean"]) == 784


def test_bad_preprocessing_and_class_names_are_named():
    X, y = synthetic_images(40, np.random.default_rng(2))
    with pytest.raises(ValueError, match="preprocessing must be None or one of"):
        NNClassifier(preprocessing="zscore").fit(X, y)
    with pytest.raises(ValueError, match="class_names holds 2 names for 10 classes"):
        NNClassifier(class_names=["a", "b"], epochs=1).fit(X, y)
    with pytest.raises(ValueError, match="class_names must be None or a sequence of strings"):
        NNClassifier(class_names="abc", epochs=1).fit(X, y)


def test_a_damaged_preprocessing_or_class_names_entry_is_a_model_file_error(run_dir, tmp_path):
    arrays, meta = read_model(run_dir / "model.npz")
    body = {k: v for k, v in meta.items() if k not in ("format", "format_version")}
    for change, fragment in [({"preprocessing": {"scheme": "standardize", "mean": [0.0], "scale": [1.0]}},
                              "statistics of 1 features"),
                             ({"preprocessing": {"scheme": "bogus"}}, "unknown preprocessing 'bogus'"),
                             ({"class_names": ["a", "b"]}, "names 2 classes, the model has 10"),
                             ({"class_names": [1] * 10}, "must be a list of strings")]:
        path = write_model(tmp_path / "bad.npz", arrays, dict(body, **change))
        with pytest.raises(arraynn.ModelFileError, match=fragment) as info:
            NNClassifier.load(path)
        assert str(path) in str(info.value)


def test_load_of_a_directory_without_a_model_says_what_to_give(run_dir, tmp_path):
    with pytest.raises(FileNotFoundError, match="no model.npz in the directory"):
        NNClassifier.load(tmp_path)
    unfinished = tmp_path / "unfinished"
    unfinished.mkdir()
    (unfinished / "checkpoint.npz").write_bytes((run_dir / "checkpoint.npz").read_bytes())
    with pytest.raises(FileNotFoundError, match="checkpoint.npz loads too"):
        NNClassifier.load(unfinished)


def test_evaluate_reads_a_model_saved_by_the_library(data_dir, tmp_path, capsys):
    X, y = _test_set(data_dir)
    Xtr = arraynn.read_idx(data_dir / "train-images-idx3-ubyte.gz")
    ytr = arraynn.read_idx(data_dir / "train-labels-idx1-ubyte.gz")
    clf = NNClassifier(n_hidden_units=32, epochs=4, batch_size=64, optimizer="adam", output="softmax",
                       random_seed=0, preprocessing="standardize",
                       class_names=list(FASHION_MNIST_CLASSES)).fit(Xtr, ytr)
    clf.save(tmp_path / "lib.npz")
    code, stdout, err = main_in_process(capsys, "--evaluate", str(tmp_path / "lib.npz"),
                                        "--data-dir", str(data_dir), "--backend", "numpy")
    assert code == 0, err
    assert f"test accuracy: {100 * clf.score(X, y):.2f}%" in stdout
    assert "Sneaker" in stdout
