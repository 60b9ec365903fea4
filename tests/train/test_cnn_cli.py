"""A convolutional network through the command line: ``--layers`` with convolutions,
pooling and BatchNorm trains, resumes after ``kill -9`` to the weights of an uninterrupted
run, is evaluated again with ``--evaluate``, predicts a PNG with ``python -m
arraynn.predict``, loads with ``NNClassifier.load`` and predicts raw uint8 images at the
run's accuracy, and exports to ONNX."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from _synthetic import write_synthetic_fashion_mnist
from _train_cli import cli_env, main_in_process, read_metrics, run_cli

import arraynn
from arraynn import NNClassifier

SPEC = "conv4k3samenobias,bn,relu,maxpool2,conv6k3s2valid,relu,flatten,dropout0.2,dense16,relu"
FLAGS = ["--layers", SPEC, "--batch-size", "32", "--val-size", "100", "--no-plots", "--no-progress",
         "--shift", "1", "--lr", "0.01"]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    return write_synthetic_fashion_mnist(tmp_path_factory.mktemp("fashion"), n_train=400, n_test=120)


def test_a_cnn_run_killed_and_resumed_ends_with_the_weights_of_an_uninterrupted_one(data_dir, tmp_path):
    args = ["--data-dir", str(data_dir), "--epochs", "8", *FLAGS]
    full = tmp_path / "full"
    proc = run_cli(*args, "--out", str(full), timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert f"784 -> {SPEC} -> dense10" in proc.stdout
    assert "preset 'default''s training with the network of --layers" in proc.stdout  # not its figures
    killed = tmp_path / "killed"
    p = subprocess.Popen([sys.executable, "-m", "arraynn.train", *args, "--out", str(killed)],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=cli_env())
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and p.poll() is None:
            if (killed / "metrics.csv").exists() and len(read_metrics(killed)) >= 2:
                break
            time.sleep(0.005)
        assert p.poll() is None, "the run finished before it could be killed"
        p.kill()
        p.wait(timeout=30)
    finally:
        if p.poll() is None:
            p.kill()
    proc = run_cli("--resume", "--out", str(killed), "--no-progress", "--no-plots", timeout=300)
    assert proc.returncode == 0, proc.stderr
    a, b = NNClassifier.load(full), NNClassifier.load(killed)
    assert a.input_shape_ == (1, 28, 28) and a.coefs_[0].shape == (4, 1, 3, 3)
    np.testing.assert_array_equal(a._state.params, b._state.params)
    np.testing.assert_array_equal(a._state.opt["stats"], b._state.opt["stats"])  # BatchNorm's, too
    assert json.loads((full / "summary.json").read_text())["test_accuracy"] == \
        json.loads((killed / "summary.json").read_text())["test_accuracy"]


def test_a_cnn_run_is_evaluated_predicts_pictures_and_exports(data_dir, tmp_path, capsys):
    run = tmp_path / "run"
    code, out, err = main_in_process(capsys, "--data-dir", str(data_dir), "--epochs", "6", *FLAGS,
                                     "--out", str(run))
    assert code == 0, err
    accuracy = json.loads((run / "summary.json").read_text())["test_accuracy"]
    assert accuracy > 0.5  # the synthetic classes are learnable
    code, out, err = main_in_process(capsys, "--evaluate", str(run), "--data-dir", str(data_dir),
                                     "--backend", "torch" if _has("torch") else "numpy")
    assert code == 0, err
    assert f"test accuracy: {100 * accuracy:.2f}%" in out
    # the library on raw uint8 images, in every layout, at the run's accuracy
    X = arraynn.read_idx(data_dir / "t10k-images-idx3-ubyte.gz")
    y = arraynn.read_idx(data_dir / "t10k-labels-idx1-ubyte.gz")
    clf = NNClassifier.load(run)
    for view in (X, X[:, None], X.reshape(len(X), -1)):
        assert clf.score(view, y) == pytest.approx(accuracy, abs=1e-12)
    # a picture file through python -m arraynn.predict
    PIL = pytest.importorskip("PIL.Image")
    PIL.fromarray(X[0]).save(tmp_path / "one.png")
    proc = subprocess.run([sys.executable, "-m", "arraynn.predict", str(run), str(tmp_path / "one.png")],
                          capture_output=True, text=True, env=cli_env(), timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert arraynn.FASHION_MNIST_CLASSES[int(clf.predict(X[:1])[0])] in proc.stdout
    if _has("onnx") and _has("onnxruntime"):
        from arraynn.export import main as export_main

        assert export_main([str(run)]) == 0
        import onnxruntime as ort

        sess = ort.InferenceSession(str(run / "model.onnx"), providers=["CPUExecutionProvider"])
        proba, _ = sess.run(None, {"input": X.reshape(len(X), -1).astype(np.float32)})
        np.testing.assert_allclose(proba, clf.predict_proba(X), atol=1e-5)


def _has(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None
