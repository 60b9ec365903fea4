"""``python -m arraynn.train`` end to end on a tiny synthetic Fashion-MNIST: the
report, the run directory, ``--evaluate``, every backend, and its one-line errors.

Nothing here touches the network: the data are four small IDX files
(:mod:`_synthetic`), and the download failures are provoked against a closed port
on 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from _synthetic import write_synthetic_fashion_mnist
from _train_cli import FAST, assert_one_line_error, cli_env, main_in_process, read_metrics, run_cli

import arraynn
from arraynn import NNClassifier
from arraynn.data.fashion_mnist import FASHION_MNIST_CLASSES


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    return write_synthetic_fashion_mnist(tmp_path_factory.mktemp("fashion"))


# --------------------------------------------------------------------------------------
# end to end
# --------------------------------------------------------------------------------------


def test_smoke_run_writes_the_run_directory(data_dir, tmp_path):
    out = tmp_path / "run"
    proc = run_cli("--data-dir", str(data_dir), "--out", str(out), "--epochs", "3", "--no-plots",
                   "--limit", "400", *FAST)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    text = proc.stdout
    # The header: preset, backend, device, dtype, versions, data source.
    assert "preset 'default'" in text
    assert "numpy" in text and "on cpu" in text and "float32" in text
    assert f"numpy {np.__version__}" in text and "array-api-compat" in text
    assert "user-supplied directory" in text and str(data_dir) in text
    # One plain line per epoch with loss, train and validation accuracy, epoch time.
    epoch_lines = [ln for ln in text.splitlines() if ln.startswith("epoch ")]
    assert len(epoch_lines) == 3
    assert all("loss" in ln and "train" in ln and "val" in ln and ln.rstrip().endswith("s")
               for ln in epoch_lines)
    # The end: test accuracy and a per-class table with the class names.
    assert "test accuracy:" in text
    for name in FASHION_MNIST_CLASSES:
        assert name in text

    files = {p.name for p in out.iterdir()}
    assert {"config.json", "metrics.csv", "checkpoint.npz", "model.npz", "model.json",
            "summary.json"} <= files
    assert not any(name.startswith(".") or name.endswith(".png") for name in files)  # no temporaries

    rows = read_metrics(out)
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    assert all(r["val_accuracy"] and r["train_subset_accuracy"] for r in rows)

    summary = json.loads((out / "summary.json").read_text())
    for key in ("config", "seed", "backend", "device", "versions", "test_accuracy",
                "train_seconds", "per_class_accuracy", "data"):
        assert key in summary, key
    assert summary["backend"] == "numpy" and summary["device"] == "cpu"
    assert summary["dtype"] == "float32" and summary["seed"] == 0 and summary["tf32"] is False
    assert summary["data"]["n_train"] == 400 and summary["data"]["n_validation"] == 100
    assert summary["data"]["source"] == "user"
    assert 0.3 < summary["test_accuracy"] <= 1.0
    assert list(summary["per_class_accuracy"]) == list(FASHION_MNIST_CLASSES)
    assert summary["train_seconds"] > 0 and summary["epochs"] == 3

    # The model loads without pickle, on NumPy and on array-api-strict, and agrees.
    with np.load(out / "model.npz", allow_pickle=False) as f:
        assert "meta.json" in f.files
    clf = NNClassifier.load(out / "model.npz")
    assert clf.n_iter_ == 3
    strict = NNClassifier.load(out / "model.npz", backend="array_api_strict")
    X = np.random.default_rng(0).standard_normal((5, 784)).astype(np.float32)
    np.testing.assert_array_equal(clf.predict(X), strict.predict(X))
    model_json = json.loads((out / "model.json").read_text())
    assert model_json["preprocessing"]["scheme"] == "standardize"
    assert len(model_json["preprocessing"]["mean"]) == 784


def test_dropout_and_shift_run_and_resume(data_dir, tmp_path, capsys):
    """--dropout and --shift reach the classifier, are saved with the run and the model,
    and a resumed run ends with the weights of an uninterrupted one."""
    flags = ("--data-dir", str(data_dir), "--no-plots", "--limit", "300", *FAST,
             "--dropout", "0.2,0.3", "--hidden", "24,16", "--shift", "1")
    whole = tmp_path / "whole"
    code, out, err = main_in_process(capsys, *flags, "--epochs", "2", "--out", str(whole))
    assert code == 0, err
    assert "dropout 0.2,0.3, random shifts up to 1 px" in out
    cfg = json.loads((whole / "config.json").read_text())["config"]
    assert cfg["dropout"] == [0.2, 0.3] and cfg["augment_shift"] == 1
    clf = NNClassifier.load(whole)
    assert list(clf.dropout) == [0.2, 0.3] and clf.augment_shift == 1
    part = tmp_path / "part"
    code, _, err = main_in_process(capsys, *flags, "--epochs", "1", "--out", str(part))
    assert code == 0, err
    code, _, err = main_in_process(capsys, "--resume", "--out", str(part), "--epochs", "2",
                                   "--data-dir", str(data_dir), "--no-plots", "--no-progress")
    assert code == 0, err
    a, b = NNClassifier.load(whole), NNClassifier.load(part)
    for x, y in zip(a.coefs_, b.coefs_):
        np.testing.assert_array_equal(x, y)


def test_progress_bar_on_a_terminal(data_dir, tmp_path):
    """On a terminal (a pseudo-terminal here) each epoch keeps its line, and a tqdm bar
    shows the progress within the epoch."""
    pytest.importorskip("tqdm")
    pty = pytest.importorskip("pty")
    primary, secondary = pty.openpty()
    p = subprocess.Popen([sys.executable, "-m", "arraynn.train", "--data-dir", str(data_dir),
                          "--out", str(tmp_path / "run"), "--epochs", "2", "--no-plots", "--hidden", "32",
                          "--val-size", "100"], stdout=secondary, stderr=secondary, env=cli_env())
    os.close(secondary)
    chunks = []
    while True:
        try:
            data = os.read(primary, 4096)
        except OSError:  # the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(primary)
    assert p.wait(timeout=120) == 0
    text = b"".join(chunks).decode("utf-8", "replace")
    assert "batch/s" in text  # a bar over each epoch's minibatches ...
    lines = [ln.strip() for ln in text.replace("\r", "\n").splitlines()]
    for e in (1, 2):  # ... and one line per epoch, which stays
        assert any(ln.startswith(f"epoch {e}/2  loss") and "val" in ln for ln in lines), text


def test_evaluate_a_saved_model_on_another_backend(data_dir, tmp_path, capsys):
    out = tmp_path / "run"
    code, stdout, err = main_in_process(capsys, "--data-dir", str(data_dir), "--out", str(out),
                                        "--epochs", "2", "--no-plots", *FAST)
    assert code == 0, err
    summary = json.loads((out / "summary.json").read_text())
    code, stdout, err = main_in_process(capsys, "--evaluate", str(out), "--backend", "array_api_strict",
                                        "--data-dir", str(data_dir))
    assert code == 0, err
    assert "array_api_strict" in stdout
    assert f"test accuracy: {100 * summary['test_accuracy']:.2f}%" in stdout


def test_plots_are_written(data_dir, tmp_path):
    pytest.importorskip("matplotlib")
    out = tmp_path / "run"
    proc = run_cli("--data-dir", str(data_dir), "--out", str(out), "--epochs", "2", *FAST)
    assert proc.returncode == 0, proc.stderr
    for name in ("loss.png", "confusion_matrix.png", "predictions.png"):
        data = (out / name).read_bytes()
        assert data.startswith(b"\x89PNG"), name
    summary = json.loads((out / "summary.json").read_text())
    assert sorted(summary["files"]["plots"]) == ["confusion_matrix.png", "loss.png", "predictions.png"]


def test_runs_on_every_backend(backend, data_dir, tmp_path, capsys):
    """The CLI on each test backend: the data are uploaded once and trained there."""
    if backend.name == "jax" and "jax" not in os.environ.get("ARRAYNN_TEST_BACKENDS", ""):
        pytest.skip("JAX compiles every new array shape (~20 s here); run with ARRAYNN_TEST_BACKENDS=jax")
    device = {"numpy": None, "array_api_strict": backend.device_name}.get(backend.name, backend.device_name)
    if device == "CPU_DEVICE":
        device = "cpu"
    args = ["--backend", backend.name] + (["--device", device] if device else [])
    out = tmp_path / "run"
    code, stdout, err = main_in_process(capsys, *args, "--data-dir", str(data_dir), "--out", str(out),
                                        "--epochs", "2", "--no-plots", *FAST)
    assert code == 0, err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["backend"] == backend.name
    assert summary["device"] == backend.device_name
    assert 0.0 <= summary["test_accuracy"] <= 1.0
    NNClassifier.load(out / "model.npz", backend="numpy")


def test_images_are_uploaded_once_as_uint8(data_dir, tmp_path, capsys):
    """Files -> host uint8 -> one upload per set -> preprocessing on the device.

    On array-api-strict, whose arrays are not NumPy arrays, so that every copy counts.
    """
    pytest.importorskip("array_api_strict")
    with arraynn.count_transfers() as c:
        code, _, err = main_in_process(capsys, "--backend", "array_api_strict", "--data-dir", str(data_dir),
                                       "--out", str(tmp_path / "r"),
                                       "--epochs", "2", "--schedule", "constant", "--no-plots", *FAST)
    assert code == 0, err
    images = (600 + 200) * 784  # train + validation + test, one byte per pixel
    params = (784 * 32 + 32 + 32 * 10 + 10) * 4  # the initial weights, float32
    small = 64 * 1024  # labels, per-epoch permutations, index arrays
    assert images <= c.host_to_device_bytes < images + params + small


def test_article_preset_header_and_config(data_dir, tmp_path, capsys):
    out = tmp_path / "run"
    code, stdout, err = main_in_process(capsys, "--preset", "article", "--epochs", "2", "--data-dir",
                                        str(data_dir), "--out", str(out), "--no-plots", "--no-progress")
    assert code == 0, err
    assert "preset 'article'" in stdout and "87.03" in stdout
    assert "784-50-10 sigmoid/sigmoid" in stdout and "25 minibatches" in stdout
    cfg = json.loads((out / "summary.json").read_text())["config"]
    assert cfg["l2"] == 0.5 and cfg["learning_rate"] == 0.001 and cfg["n_batches"] == 25
    assert cfg["preprocessing"] == "per-set" and cfg["val_size"] == 0
    rows = read_metrics(out)
    assert rows[0]["val_accuracy"] == ""  # trained on every training image, as the article did


# --------------------------------------------------------------------------------------
# errors: one line, no traceback, non-zero status
# --------------------------------------------------------------------------------------


def test_cupy_missing(data_dir, tmp_path):
    try:
        import cupy  # noqa: F401

        pytest.skip("CuPy is installed here")
    except ImportError:
        pass
    proc = run_cli("--backend", "cupy", "--data-dir", str(data_dir), "--out", str(tmp_path / "r"))
    assert proc.returncode == 1
    assert_one_line_error(proc.stderr, "cupy", "pip install")


def test_no_gpu(data_dir, tmp_path, capsys):
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is available here")
    code, _, err = main_in_process(capsys, "--backend", "torch", "--device", "cuda", "--data-dir",
                                   str(data_dir), "--out", str(tmp_path / "r"))
    assert code == 1
    assert_one_line_error(err, "cuda")


def test_auto_with_a_gpu_device_it_cannot_serve_is_an_error(data_dir, tmp_path, capsys):
    try:
        import cupy  # noqa: F401

        pytest.skip("CuPy is installed here")
    except ImportError:
        pass
    code, _, err = main_in_process(capsys, "--device", "cuda", "--data-dir", str(data_dir), "--out",
                                   str(tmp_path / "r"))
    assert code == 1
    assert_one_line_error(err, "backend 'auto' cannot use device 'cuda'", "--backend torch --device cuda")
    assert not (tmp_path / "r").exists()


def test_auto_says_what_it_chose_and_why(data_dir, tmp_path, capsys):
    try:
        import cupy  # noqa: F401

        pytest.skip("CuPy is installed here")
    except ImportError:
        pass
    code, out, _ = main_in_process(capsys, "--data-dir", str(data_dir), "--out", str(tmp_path / "r"),
                                   *FAST)
    assert code == 0
    assert "(auto: cupy is not installed, so numpy on the CPU)" in out


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_missing_data_without_network(tmp_path, monkeypatch, capsys):
    from arraynn.data import download

    monkeypatch.setattr(download, "DOWNLOAD_RETRIES", 0)
    empty = tmp_path / "empty"
    empty.mkdir()
    mirror = f"http://127.0.0.1:{_closed_port()}/"
    code, _, err = main_in_process(capsys, "--data-dir", str(empty), "--mirror", mirror,
                                   "--out", str(tmp_path / "r"))
    assert code == 1
    # The hint speaks of the --data-dir given, not of passing one, and of --no-download.
    assert_one_line_error(err, "could not download",
                          f"offline? copy the four Fashion-MNIST files into {empty}", "--no-download")
    assert "pass --data-dir" not in err
    assert list(empty.iterdir()) == []  # no empty fashion-mnist/ left behind
    # And without downloading at all.
    code, _, err = main_in_process(capsys, "--data-dir", str(empty), "--no-download",
                                   "--out", str(tmp_path / "r2"))
    assert code == 1
    assert_one_line_error(err, "missing", "train-images-idx3-ubyte.gz")


def test_offline_hint_without_data_dir_names_the_flags_and_the_variable(tmp_path, monkeypatch, capsys):
    from arraynn.data import download

    monkeypatch.setattr(download, "DOWNLOAD_RETRIES", 0)
    monkeypatch.delenv("ARRAYNN_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    mirror = f"http://127.0.0.1:{_closed_port()}/"
    code, _, err = main_in_process(capsys, "--mirror", mirror, "--out", str(tmp_path / "r"))
    assert code == 1
    assert_one_line_error(err, "could not download", "pass --data-dir DIR", "ARRAYNN_DATA=DIR",
                          "--no-download")
    assert not (tmp_path / "cache").exists()  # the cache directories made for it went again
    # With $ARRAYNN_DATA set, the hint names the directory it points at.
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("ARRAYNN_DATA", str(home))
    code, _, err = main_in_process(capsys, "--mirror", mirror, "--out", str(tmp_path / "r2"))
    assert code == 1
    assert_one_line_error(err, f"copy the four Fashion-MNIST files into $ARRAYNN_DATA ({home})",
                          "--no-download")
    assert list(home.iterdir()) == []


def test_a_data_dir_that_does_not_exist_is_refused_before_any_download(tmp_path, monkeypatch, capsys):
    from arraynn.data import fashion_mnist

    def no_download(*args, **kwargs):
        raise AssertionError("a download was attempted")

    monkeypatch.setattr(fashion_mnist, "_fetch", no_download)
    monkeypatch.delenv("ARRAYNN_DATA", raising=False)
    monkeypatch.chdir(tmp_path)
    typo = tmp_path / "no" / "such-dir"
    code, out, err = main_in_process(capsys, "--data-dir", str(typo), "--out", str(tmp_path / "r"), *FAST)
    assert code == 2
    assert_one_line_error(err, f"--data-dir {typo} does not exist", "create it to download Fashion-MNIST",
                          "the directory that holds the four files")
    assert "epoch 1" not in out and "loss" not in out  # nothing trained
    assert not (tmp_path / "no").exists() and not (tmp_path / "r").exists()
    code, _, err = main_in_process(capsys, "--data-dir", str(tmp_path / "mine.npz"), "--out",
                                   str(tmp_path / "r"), *FAST)
    assert code == 2
    assert_one_line_error(err, "mine.npz does not exist", ".npz file that holds X_train")
    (tmp_path / "notes.txt").write_text("not data")
    code, _, err = main_in_process(capsys, "--data-dir", str(tmp_path / "notes.txt"), "--out",
                                   str(tmp_path / "r"), *FAST)
    assert code == 2
    assert_one_line_error(err, "notes.txt is a file, not a directory")
    monkeypatch.setenv("ARRAYNN_DATA", str(typo))
    code, _, err = main_in_process(capsys, "--out", str(tmp_path / "r"), *FAST)
    assert code == 2
    assert_one_line_error(err, f"$ARRAYNN_DATA is {typo}, which does not exist", "--data-dir")
    assert not (tmp_path / "no").exists() and not (tmp_path / "r").exists()


def test_missing_data_without_network_subprocess(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    proc = run_cli("--data-dir", str(empty), "--no-download", "--out", str(tmp_path / "r"))
    assert proc.returncode == 1
    assert_one_line_error(proc.stderr, "missing")


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(data_dir, tmp_path, capsys):
    out = tmp_path / "run"
    code, stdout, err = main_in_process(
        capsys, "--data-dir", str(data_dir), "--out", str(out), "--epochs", "20", "--no-plots",
        "--optimizer", "sgd", "--lr", "1", "--schedule", "constant", *FAST)
    assert code == 1
    assert_one_line_error(err, "diverged", "learning rate")
    rows = read_metrics(out)  # SGD at lr 1 on summed gradients blows up after an epoch or two
    assert 1 <= len(rows) < 20
    clf = NNClassifier.load(out / "checkpoint.npz")
    assert clf.n_iter_ == len(rows)
    assert all(np.isfinite(arraynn.get_backend("numpy").to_numpy(w)).all() for w in clf.coefs_)
    assert f"last good checkpoint (epoch {len(rows)})" in err
    assert not (out / "model.npz").exists()


def test_divergence_in_the_first_epoch_says_there_is_no_checkpoint(data_dir, tmp_path, capsys):
    out = tmp_path / "run"
    code, _, err = main_in_process(
        capsys, "--data-dir", str(data_dir), "--out", str(out), "--epochs", "5", "--no-plots",
        "--optimizer", "sgd", "--lr", "1e30", "--schedule", "constant", *FAST)
    assert code == 1
    assert_one_line_error(err, "diverged", "no checkpoint")
    assert not (out / "checkpoint.npz").exists()


def test_out_of_memory_reading_the_data_names_the_file(data_dir, tmp_path, capsys, monkeypatch):
    from arraynn.data import idx

    def no_memory(self, n):
        raise MemoryError

    monkeypatch.setattr(idx._Stream, "read_payload", no_memory)
    code, _, err = main_in_process(capsys, "--data-dir", str(data_dir), "--out", str(tmp_path / "r"),
                                   "--no-download", *FAST)
    assert code == 1
    assert_one_line_error(err, "out of memory", "train-images-idx3-ubyte.gz")


def test_evaluate_refuses_training_flags_and_a_damaged_model_json(data_dir, tmp_path, capsys):
    out = tmp_path / "run"
    code, _, err = main_in_process(capsys, "--data-dir", str(data_dir), "--out", str(out),
                                   "--epochs", "1", "--no-plots", *FAST)
    assert code == 0, err
    code, stdout, err = main_in_process(capsys, "--evaluate", str(out), "--epochs", "5", "--no-scale",
                                        "--data-dir", str(data_dir))
    assert code == 2
    assert_one_line_error(err, "drop --epochs, --scale")
    meta = json.loads((out / "model.json").read_text())
    for bad, fragment in [({"scheme": "bogus"}, "unknown preprocessing 'bogus'"),
                          ({"scheme": "standardize"}, "needs 'mean'"), (None, "scheme")]:
        (out / "model.json").write_text(json.dumps(dict(meta, preprocessing=bad)))
        code, stdout, err = main_in_process(capsys, "--evaluate", str(out), "--data-dir", str(data_dir))
        assert code == 1
        assert_one_line_error(err, "model.json", "preprocessing cannot be applied", fragment)
    (out / "model.json").write_text(json.dumps(dict(meta, classes=["a", "b"])))
    code, stdout, err = main_in_process(capsys, "--evaluate", str(out), "--data-dir", str(data_dir))
    assert code == 1
    assert_one_line_error(err, "names 2 classes, the model has 10")


def test_an_empty_test_set_is_found_before_training(tmp_path, capsys):
    data = write_synthetic_fashion_mnist(tmp_path / "data", n_train=300, n_test=0)
    out = tmp_path / "run"
    code, stdout, err = main_in_process(capsys, "--data-dir", str(data), "--out", str(out), "--epochs", "1",
                                        "--no-plots", *FAST)
    assert code == 1
    assert_one_line_error(err, "test set", "0 images")
    assert "epoch" not in stdout.split("data:")[-1] and not out.exists()


def test_unknown_torch_device_is_one_line(data_dir, tmp_path, capsys):
    pytest.importorskip("torch")
    code, _, err = main_in_process(capsys, "--data-dir", str(data_dir), "--out", str(tmp_path / "r"),
                                   "--backend", "torch", "--device", "bogus", *FAST)
    assert code == 1
    assert_one_line_error(err, "torch has no device 'bogus'", "'cuda:N'")
    assert not (tmp_path / "r").exists()


def test_tf32_on_a_cpu_says_it_has_no_effect(data_dir, tmp_path, capsys):
    data = data_dir
    code, stdout, err = main_in_process(capsys, "--data-dir", str(data), "--out", str(tmp_path / "run"),
                                        "--epochs", "1", "--no-plots", "--tf32", "--backend", "numpy", *FAST)
    assert code == 0, err
    assert "--tf32 has no effect" in stdout and "NVIDIA GPUs" in stdout
    code, stdout, err = main_in_process(capsys, "--data-dir", str(data), "--out", str(tmp_path / "run2"),
                                        "--epochs", "1", "--no-plots", "--backend", "numpy", *FAST)
    assert "--tf32" not in stdout
