"""The command line ``python -m arraynn.train``: end to end on a tiny synthetic
Fashion-MNIST, its run directory, kill-and-resume, and its one-line errors.

Nothing here touches the network: the data are four small IDX files written with
:func:`arraynn.data.idx.write_idx`, and the download failures are provoked against a
closed port on 127.0.0.1.
"""

from __future__ import annotations

import csv
import json
import os
import socket
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

import arraynn
from arraynn import NNClassifier
from arraynn.data.fashion_mnist import FASHION_MNIST_CLASSES
from arraynn.data.idx import write_idx
from arraynn.train import cli as train

REPO = Path(__file__).resolve().parents[1]

# A small network that trains in a fraction of a second per epoch.
FAST = ["--hidden", "32", "--val-size", "100", "--no-progress"]


# --------------------------------------------------------------------------------------
# a tiny synthetic Fashion-MNIST
# --------------------------------------------------------------------------------------


def synthetic_images(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """28x28 uint8 images whose class is drawn as a bar at a class-dependent place,
    on noise; learnable in a few epochs, but not perfectly."""
    y = np.arange(n) % 10
    rng.shuffle(y)
    X = rng.integers(0, 90, size=(n, 28, 28)).astype(np.int32)
    for i, k in enumerate(y):
        shift = int(rng.integers(-1, 2))
        X[i, 2 * k + 3 + shift: 2 * k + 6 + shift, 4:24] += 110
        X[i, 4:24, 2 * k + 3: 2 * k + 5] += 60
    return np.clip(X, 0, 255).astype(np.uint8), y.astype(np.uint8)


def write_synthetic_fashion_mnist(directory: Path, n_train: int = 600, n_test: int = 200,
                                  seed: int = 0) -> Path:
    """The four gzip IDX files of a Fashion-MNIST look-alike in ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    Xtr, ytr = synthetic_images(n_train, rng)
    Xte, yte = synthetic_images(n_test, rng)
    write_idx(directory / "train-images-idx3-ubyte.gz", Xtr)
    write_idx(directory / "train-labels-idx1-ubyte.gz", ytr)
    write_idx(directory / "t10k-images-idx3-ubyte.gz", Xte)
    write_idx(directory / "t10k-labels-idx1-ubyte.gz", yte)
    return directory


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    return write_synthetic_fashion_mnist(tmp_path_factory.mktemp("fashion"))


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    # One BLAS thread: fast on a busy 2-core machine, and the same sums every time.
    env.setdefault("OPENBLAS_NUM_THREADS", "1")
    env.setdefault("OMP_NUM_THREADS", "1")
    env.pop("ARRAYNN_DATA", None)
    return env


def run_cli(*args: str, cwd: Path | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    """``python -m arraynn.train ARGS`` in a subprocess."""
    return subprocess.run([sys.executable, "-m", "arraynn.train", *args], capture_output=True,
                          text=True, env=_env(), cwd=cwd, timeout=timeout)


def assert_one_line_error(stderr: str, *fragments: str) -> None:
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    assert "Traceback" not in stderr, stderr
    assert len(lines) == 1, f"expected one line on stderr, got:\n{stderr}"
    assert lines[0].startswith("error: "), lines[0]
    for f in fragments:
        assert f.lower() in lines[0].lower(), f"{f!r} not in {lines[0]!r}"


def main_in_process(capsys, *args: str) -> tuple[int, str, str]:
    code = train.main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def read_metrics(run: Path) -> list[dict[str, str]]:
    with open(run / "metrics.csv", newline="") as f:
        return list(csv.DictReader(f))


# --------------------------------------------------------------------------------------
# end to end
# --------------------------------------------------------------------------------------


def test_help_lists_flags_and_examples():
    proc = run_cli("--help")
    assert proc.returncode == 0
    for flag in ("--backend", "--device", "--dtype", "--preset", "--hidden", "--activation",
                 "--output", "--optimizer", "--lr", "--epochs", "--batch-size", "--l1", "--l2",
                 "--seed", "--data-dir", "--out", "--resume", "--no-progress", "--no-plots",
                 "--no-scale", "--limit", "--evaluate"):
        assert flag in proc.stdout, flag
    assert "examples:" in proc.stdout
    assert "python -m arraynn.train --preset article" in proc.stdout


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


def test_progress_bar_on_a_terminal(data_dir, tmp_path):
    """On a terminal (a pseudo-terminal here) the epochs show as a tqdm bar."""
    pytest.importorskip("tqdm")
    pty = pytest.importorskip("pty")
    primary, secondary = pty.openpty()
    p = subprocess.Popen([sys.executable, "-m", "arraynn.train", "--data-dir", str(data_dir),
                          "--out", str(tmp_path / "run"), "--epochs", "2", "--no-plots", "--hidden", "32",
                          "--val-size", "100"], stdout=secondary, stderr=secondary, env=_env())
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
    assert "2/2" in text and "epoch/s" in text and "loss" in text and "val" in text
    assert "\nepoch 1/2" not in text  # the bar replaces the plain lines


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
    assert cfg["scale"] == "per-set" and cfg["val_size"] == 0
    rows = read_metrics(out)
    assert rows[0]["val_accuracy"] == ""  # trained on every training image, as the article did


# --------------------------------------------------------------------------------------
# nothing is lost: checkpoints and resume
# --------------------------------------------------------------------------------------


def _model_arrays(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as f:
        arrays = {k: f[k] for k in f.files}
    meta = json.loads(arrays.pop("meta.json").tobytes())
    arrays["loss_curve"] = np.asarray(meta["loss_curve"])
    return arrays


def test_kill_and_resume_gives_the_weights_of_an_uninterrupted_run(data_dir, tmp_path):
    # The default preset's cosine schedule, so the resumed run also crosses
    # learning-rate changes.
    args = ["--data-dir", str(data_dir), "--epochs", "40", "--hidden", "48,24", "--batch-size", "32",
            "--val-size", "100", "--no-plots", "--no-progress"]
    full = tmp_path / "full"
    proc = run_cli(*args, "--out", str(full))
    assert proc.returncode == 0, proc.stderr

    killed = tmp_path / "killed"
    p = subprocess.Popen([sys.executable, "-m", "arraynn.train", *args, "--out", str(killed)],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=_env())
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if (killed / "metrics.csv").exists() and len(read_metrics(killed)) >= 2:
                break
            if p.poll() is not None:
                break
            time.sleep(0.005)
        assert p.poll() is None, "the run finished before it could be killed"
        p.kill()  # SIGKILL: no cleanup of any kind
        p.wait(timeout=30)
    finally:
        if p.poll() is None:
            p.kill()
    epoch_at_kill = NNClassifier.load(killed / "checkpoint.npz").n_iter_
    assert 1 <= epoch_at_kill < 40
    assert not (killed / "model.npz").exists()

    # No --data-dir: a resumed run reads the data its config.json names.
    proc = run_cli("--resume", "--out", str(killed), "--no-progress", "--no-plots")
    assert proc.returncode == 0, proc.stderr
    assert "resuming after epoch" in proc.stdout
    a, b = _model_arrays(full / "model.npz"), _model_arrays(killed / "model.npz")
    assert a.keys() == b.keys()
    for key in a:
        assert np.array_equal(a[key], b[key]), key
    rows = read_metrics(killed)
    assert [int(r["epoch"]) for r in rows] == list(range(1, 41))  # no duplicated rows
    assert [r["loss"] for r in rows] == [r["loss"] for r in read_metrics(full)]
    summary = json.loads((killed / "summary.json").read_text())
    assert summary["test_accuracy"] == json.loads((full / "summary.json").read_text())["test_accuracy"]


def test_resume_drops_metrics_rows_written_after_the_last_checkpoint(tmp_path):
    path = tmp_path / "metrics.csv"
    rows = [{"epoch": e, "loss": 1.0 / e, "train_subset_accuracy": 0.5, "val_accuracy": None,
             "learning_rate": 0.1, "epoch_seconds": 0.1, "elapsed_seconds": 0.1 * e} for e in (1, 2, 3)]
    train._write_metrics(path, rows)
    kept = train._read_metrics(path, 2)
    assert [r["epoch"] for r in kept] == [1, 2]
    assert kept[0]["val_accuracy"] is None and kept[1]["loss"] == 0.5


def test_a_finished_run_is_not_overwritten(data_dir, tmp_path, capsys):
    out = tmp_path / "run"
    code, _, err = main_in_process(capsys, "--data-dir", str(data_dir), "--out", str(out), "--epochs", "1",
                                   "--no-plots", *FAST)
    assert code == 0, err
    code, _, err = main_in_process(capsys, "--data-dir", str(data_dir), "--out", str(out), "--epochs", "1",
                                   "--no-plots", *FAST)
    assert code == 1
    assert_one_line_error(err, "already holds a run", "--resume")
    # --resume with changed training flags is refused: it continues the saved config.
    code, _, err = main_in_process(capsys, "--resume", "--out", str(out), "--epochs", "5",
                                   "--data-dir", str(data_dir))
    assert code == 2
    assert_one_line_error(err, "--epochs")


# --------------------------------------------------------------------------------------
# errors: one line, no traceback, non-zero status
# --------------------------------------------------------------------------------------


def test_unknown_backend(tmp_path):
    proc = run_cli("--backend", "tensorflow", "--out", str(tmp_path / "r"))
    assert proc.returncode == 2
    assert_one_line_error(proc.stderr, "tensorflow", "numpy")


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


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_missing_data_without_network(tmp_path, monkeypatch, capsys):
    from arraynn.data import fashion_mnist as datasets

    monkeypatch.setattr(datasets, "DOWNLOAD_RETRIES", 0)
    empty = tmp_path / "empty"
    empty.mkdir()
    mirror = f"http://127.0.0.1:{_closed_port()}/"
    code, _, err = main_in_process(capsys, "--data-dir", str(empty), "--mirror", mirror,
                                   "--out", str(tmp_path / "r"))
    assert code == 1
    assert_one_line_error(err, "could not download", "--data-dir")
    # And without downloading at all.
    code, _, err = main_in_process(capsys, "--data-dir", str(empty), "--no-download",
                                   "--out", str(tmp_path / "r2"))
    assert code == 1
    assert_one_line_error(err, "missing", "train-images-idx3-ubyte.gz")


def test_missing_data_without_network_subprocess(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    proc = run_cli("--data-dir", str(empty), "--no-download", "--out", str(tmp_path / "r"))
    assert proc.returncode == 1
    assert_one_line_error(proc.stderr, "missing")


def test_unwritable_run_directory(data_dir, tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    code, out, err = main_in_process(capsys, "--data-dir", str(data_dir), "--out", str(blocker / "run"))
    assert code == 1
    assert_one_line_error(err, "cannot write to the run directory")
    assert "epoch" not in out  # checked before any training


@pytest.mark.parametrize("flags, fragment", [
    (["--epochs", "0"], "--epochs"),
    (["--epochs", "ten"], "--epochs"),
    (["--lr", "-1"], "--lr"),
    (["--l2", "nan"], "--l2"),
    (["--hidden", "64,x"], "--hidden"),
    (["--limit", "0"], "--limit"),
    (["--dtype", "float16"], "--dtype"),
    (["--batch-size", "32", "--n-batches", "4"], "--n-batches"),
    (["--resume"], "--out"),
    (["--no-such-flag"], "no-such-flag"),
])
def test_bad_flag_values(flags, fragment, tmp_path, capsys):
    code, _, err = main_in_process(capsys, *flags)
    assert code == 2
    assert_one_line_error(err, fragment)


def test_bad_flag_value_subprocess():
    proc = run_cli("--epochs", "-3")
    assert proc.returncode == 2
    assert_one_line_error(proc.stderr, "--epochs", "positive integer")


def test_corrupt_or_truncated_checkpoint(data_dir, tmp_path, capsys):
    out = tmp_path / "run"
    code, _, err = main_in_process(capsys, "--data-dir", str(data_dir), "--out", str(out), "--epochs", "2",
                                   "--no-plots", *FAST)
    assert code == 0, err
    ckpt = out / "checkpoint.npz"
    data = ckpt.read_bytes()
    ckpt.write_bytes(data[: len(data) // 2])  # truncated
    code, _, err = main_in_process(capsys, "--resume", "--out", str(out), "--data-dir", str(data_dir))
    assert code == 1
    assert_one_line_error(err, "checkpoint.npz", "corrupt")
    ckpt.write_bytes(b"garbage" * 100)  # not a zip at all
    code, _, err = main_in_process(capsys, "--resume", "--out", str(out), "--data-dir", str(data_dir))
    assert code == 1
    assert_one_line_error(err, "checkpoint.npz")
    with zipfile.ZipFile(ckpt, "w") as z:  # a zip without the model's entries
        z.writestr("x.npy", b"")
    code, _, err = main_in_process(capsys, "--resume", "--out", str(out), "--data-dir", str(data_dir))
    assert code == 1
    assert_one_line_error(err, "checkpoint.npz")


def test_resume_without_a_checkpoint(tmp_path, capsys):
    (tmp_path / "run").mkdir()
    code, _, err = main_in_process(capsys, "--resume", "--out", str(tmp_path / "run"))
    assert code == 1
    assert_one_line_error(err, "cannot resume", "checkpoint.npz")


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
