"""Training on your own data: IDX files of other data sets with their class names, and
``.npz`` / ``.npy`` arrays of any width and number of classes."""

from __future__ import annotations

import json

import numpy as np
import pytest
from _synthetic import synthetic_images, write_synthetic_fashion_mnist
from _train_cli import FAST, assert_one_line_error, main_in_process

from arraynn import NNClassifier

DIGITS = [str(k) for k in range(10)]


def _blobs(n: int, rng: np.random.Generator, n_classes: int = 3, n_features: int = 12):
    y = np.arange(n) % n_classes
    X = rng.normal(size=(n, n_features)) + 5.0 * np.eye(n_classes, n_features)[y]
    return X.astype(np.float32), y.astype(np.int64)


def test_idx_files_with_a_class_names_flag_or_file(tmp_path, capsys):
    data = write_synthetic_fashion_mnist(tmp_path / "mnist", n_train=400, n_test=100)
    out = tmp_path / "run"
    code, stdout, err = main_in_process(capsys, "--data-dir", str(data), "--out", str(out), "--epochs", "2",
                                        "--no-plots", "--class-names", ",".join(DIGITS), *FAST)
    assert code == 0, err
    summary = json.loads((out / "summary.json").read_text())
    assert list(summary["per_class_accuracy"]) == DIGITS
    assert NNClassifier.load(out).class_names_ == DIGITS
    (data / "class_names.txt").write_text("\n".join(f"digit {d}" for d in DIGITS) + "\n")
    code, stdout, err = main_in_process(capsys, "--data-dir", str(data), "--out", str(tmp_path / "r2"),
                                        "--epochs", "1", "--no-plots", *FAST)
    assert code == 0, err
    assert "digit 7" in stdout and NNClassifier.load(tmp_path / "r2").class_names_[7] == "digit 7"
    # --resume keeps the names given to the run
    code, stdout, err = main_in_process(capsys, "--resume", "--out", str(out), "--epochs", "2")
    assert code == 0, err
    names_file = tmp_path / "names.txt"
    names_file.write_text("a\nb\n")
    code, stdout, err = main_in_process(capsys, "--data-dir", str(data), "--out", str(tmp_path / "r3"),
                                        "--class-names", str(names_file), *FAST)
    assert code == 2
    assert_one_line_error(err, "labels go up to 9", "2 class names")


@pytest.mark.parametrize("form", ["npz", "npy"])
def test_arrays_of_any_width_and_number_of_classes(tmp_path, capsys, form):
    rng = np.random.default_rng(0)
    X_train, y_train = _blobs(300, rng)
    X_test, y_test = _blobs(90, rng)
    arrays = dict(X_train=X_train, y_train=y_train, X_test=X_test, y_test=y_test)
    if form == "npz":
        data = tmp_path / "blobs.npz"
        np.savez(data, **arrays, class_names=np.array(["red", "green", "blue"]))
    else:
        data = tmp_path / "blobs"
        data.mkdir()
        for k, v in arrays.items():
            np.save(data / f"{k}.npy", v)
        (data / "class_names.txt").write_text("red\ngreen\nblue\n")
    out = tmp_path / "run"
    code, stdout, err = main_in_process(capsys, "--data-dir", str(data), "--out", str(out), "--epochs", "5",
                                        "--lr", "0.01", "--batch-size", "32", "--hidden", "8", "--val-size",
                                        "30", "--no-progress")
    assert code == 0, err
    assert "12 features, 3 classes" in stdout and "12-8-3" in stdout and "green" in stdout
    summary = json.loads((out / "summary.json").read_text())
    assert list(summary["per_class_accuracy"]) == ["red", "green", "blue"]
    assert summary["test_accuracy"] > 0.6
    clf = NNClassifier.load(out)
    assert clf.class_names_ == ["red", "green", "blue"]
    assert clf.score(X_test, y_test) == pytest.approx(summary["test_accuracy"], abs=1e-12)
    code, stdout, err = main_in_process(capsys, "--evaluate", str(out), "--data-dir", str(data))
    assert code == 0, err
    assert f"test accuracy: {100 * summary['test_accuracy']:.2f}%" in stdout


def test_image_arrays_of_shape_n_h_w(tmp_path, capsys):
    rng = np.random.default_rng(1)
    X_train, y_train = synthetic_images(300, rng)
    X_test, y_test = synthetic_images(60, rng)
    np.savez(tmp_path / "d.npz", X_train=X_train.reshape(-1, 28, 28), y_train=y_train,
             X_test=X_test.reshape(-1, 28, 28), y_test=y_test)
    code, stdout, err = main_in_process(capsys, "--data-dir", str(tmp_path / "d.npz"), "--out",
                                        str(tmp_path / "run"), "--epochs", "2", *FAST)
    assert code == 0, err
    assert "784 features, 10 classes" in stdout


def test_bad_arrays_are_named(tmp_path, capsys):
    rng = np.random.default_rng(2)
    X, y = _blobs(50, rng)
    for arrays, fragments in [
        (dict(X_train=X, y_train=y, X_test=X), ("lacks the arrays y_test",)),
        (dict(X_train=X, y_train=y[:10], X_test=X, y_test=y), ("y_train must be 1-D", "one label per row")),
        (dict(X_train=X, y_train=y.astype(float), X_test=X, y_test=y), ("integer labels", "--class-names")),
        (dict(X_train=X, y_train=y, X_test=X[:, :5], y_test=y), ("X_test (5,)",)),
    ]:
        np.savez(tmp_path / "bad.npz", **arrays)
        code, _, err = main_in_process(capsys, "--data-dir", str(tmp_path / "bad.npz"), "--out",
                                       str(tmp_path / "run"), *FAST)
        assert code == 1
        assert_one_line_error(err, "bad.npz", *fragments)
        assert not (tmp_path / "run").exists()
    code, _, err = main_in_process(capsys, "--class-names", "only", "--out", str(tmp_path / "run"))
    assert code == 2
    assert_one_line_error(err, "--class-names needs at least two distinct names")

