"""The run directory of ``python -m arraynn.train``: nothing is lost (checkpoints and
resume), nothing is overwritten, and damaged or unwritable directories are reported
in one line."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from _synthetic import write_synthetic_fashion_mnist
from _train_cli import FAST, assert_one_line_error, cli_env, main_in_process, read_metrics, run_cli

from arraynn import NNClassifier
from arraynn.train import rundir
from arraynn.train.errors import CLIError


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    return write_synthetic_fashion_mnist(tmp_path_factory.mktemp("fashion"))


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
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=cli_env())
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
    rundir.write_metrics(path, rows)
    kept = rundir.read_metrics(path, 2)
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
# damaged or unwritable run directories
# --------------------------------------------------------------------------------------


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


def test_unwritable_run_directory(data_dir, tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    code, out, err = main_in_process(capsys, "--data-dir", str(data_dir), "--out", str(blocker / "run"))
    assert code == 1
    assert_one_line_error(err, "cannot write to the run directory")
    assert "epoch" not in out  # checked before any training


# --------------------------------------------------------------------------------------
# the file formats
# --------------------------------------------------------------------------------------


def test_the_json_files_of_a_run(data_dir, tmp_path, capsys):
    """config.json and model.json keep the formats that --resume and --evaluate read
    (also those of run directories written by earlier versions)."""
    out = tmp_path / "run"
    code, _, err = main_in_process(capsys, "--data-dir", str(data_dir), "--out", str(out), "--epochs", "1",
                                   "--no-plots", *FAST)
    assert code == 0, err
    config = json.loads((out / "config.json").read_text())
    assert list(config) == ["format", "config", "backend", "device", "device_arg", "dtype",
                            "data_fingerprint", "data_dir"]
    assert config["format"] == "arraynn.train.run" and config["device_arg"] is None
    assert config["data_dir"] == str(data_dir.resolve()) and len(config["data_fingerprint"]) == 16
    model = json.loads((out / "model.json").read_text())
    assert list(model) == ["format", "model", "classes", "preprocessing", "config", "trained_on"]
    assert model["format"] == "arraynn.train.model" and model["model"] == "model.npz"
    assert model["trained_on"] == {"backend": "numpy", "device": "cpu", "dtype": "float32"}
    assert list(model["preprocessing"]) == ["scheme", "mean", "scale"]
    assert model["config"] == config["config"]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["files"] == {"model": "model.npz", "model_json": "model.json", "metrics": "metrics.csv",
                                "checkpoint": "checkpoint.npz"}


def test_foreign_json_files_are_refused(tmp_path):
    (tmp_path / "config.json").write_text('{"format": "something else", "config": {}}')
    with pytest.raises(CLIError, match="not an arraynn.train run configuration"):
        rundir.RunDir(tmp_path).read_config()
    (tmp_path / "model.npz").write_bytes(b"")
    with pytest.raises(CLIError, match="model.json is missing"):
        rundir.read_model_json(rundir.find_model(tmp_path))
    (tmp_path / "model.json").write_text("[1, 2]")
    with pytest.raises(CLIError, match="not an arraynn.train model description"):
        rundir.read_model_json(tmp_path / "model.npz")
    with pytest.raises(CLIError, match="no model at"):
        rundir.find_model(tmp_path / "nothing")


def test_resume_on_other_data_is_refused(data_dir, tmp_path, capsys):
    out = tmp_path / "run"
    code, _, err = main_in_process(capsys, "--data-dir", str(data_dir), "--out", str(out), "--epochs", "2",
                                   "--no-plots", *FAST)
    assert code == 0, err
    other = write_synthetic_fashion_mnist(tmp_path / "other", seed=1)
    code, _, err = main_in_process(capsys, "--resume", "--out", str(out), "--data-dir", str(other))
    assert code == 1
    assert_one_line_error(err, "training data differ", "--data-dir")
