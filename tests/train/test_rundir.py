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
from arraynn.model_io import model_path
from arraynn.predict import main as predict_main
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
    code, _, err = main_in_process(capsys, "--resume", "--out", str(out), "--l2", "0.5",
                                   "--data-dir", str(data_dir))
    assert code == 2
    assert_one_line_error(err, "--l2")
    # ... except more epochs, which extend a finished run (fewer are refused)
    code, stdout, err = main_in_process(capsys, "--resume", "--out", str(out), "--epochs", "3",
                                        "--data-dir", str(data_dir))
    assert code == 0, err
    assert "extending the run to 3 epochs" in stdout and "resuming after epoch 1 of 3" in stdout
    assert json.loads((out / "config.json").read_text())["config"]["epochs"] == 3
    assert json.loads((out / "summary.json").read_text())["epochs"] == 3
    assert [int(r["epoch"]) for r in read_metrics(out)] == [1, 2, 3]
    code, _, err = main_in_process(capsys, "--resume", "--out", str(out), "--epochs", "2",
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
                            "data_fingerprint", "data_dir", "plots"]
    assert config["plots"] is False
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
        rundir.read_model_json(model_path(tmp_path))
    (tmp_path / "model.json").write_text("[1, 2]")
    with pytest.raises(CLIError, match="not an arraynn.train model description"):
        rundir.read_model_json(tmp_path / "model.npz")


def test_evaluate_finds_its_model_as_the_library_does(data_dir, tmp_path, capsys):
    # one lookup, arraynn.model_io.model_path: the same one-line errors as python -m arraynn.predict
    nothing = tmp_path / "nothing"
    code, _, err = main_in_process(capsys, "--evaluate", str(nothing), "--data-dir", str(data_dir))
    assert code == 1
    assert_one_line_error(err, f"no model file at {nothing}")
    assert predict_main([str(nothing), "x.png"]) == 1
    assert capsys.readouterr().err == err
    started = tmp_path / "started"
    started.mkdir()
    (started / "checkpoint.npz").write_bytes(b"")
    code, _, err = main_in_process(capsys, "--evaluate", str(started), "--data-dir", str(data_dir))
    assert code == 1
    assert_one_line_error(err, f"no model.npz in the directory {started}", "its checkpoint.npz loads too")


def test_resume_on_other_data_is_refused(data_dir, tmp_path, capsys):
    out = tmp_path / "run"
    code, _, err = main_in_process(capsys, "--data-dir", str(data_dir), "--out", str(out), "--epochs", "2",
                                   "--no-plots", *FAST)
    assert code == 0, err
    other = write_synthetic_fashion_mnist(tmp_path / "other", seed=1)
    code, _, err = main_in_process(capsys, "--resume", "--out", str(out), "--data-dir", str(other))
    assert code == 1
    assert_one_line_error(err, "training data differ", "--data-dir")


def test_resume_when_the_data_directory_is_gone(tmp_path, capsys):
    data = write_synthetic_fashion_mnist(tmp_path / "data")
    out = tmp_path / "run"
    code, _, err = main_in_process(capsys, "--data-dir", str(data), "--out", str(out), "--epochs", "1",
                                   "--no-plots", *FAST)
    assert code == 0, err
    data.rename(tmp_path / "moved")
    code, _, err = main_in_process(capsys, "--resume", "--out", str(out), "--epochs", "2")
    assert code == 1
    assert_one_line_error(err, f"the data this run was trained on, {data.resolve()}, no longer exist",
                          "pass --data-dir")
    assert not data.exists()  # not created, nothing downloaded into it
    code, _, err = main_in_process(capsys, "--resume", "--out", str(out), "--epochs", "2",
                                   "--data-dir", str(tmp_path / "moved"))
    assert code == 0, err


# --------------------------------------------------------------------------------------
# hardening: failed starts, locks, foreign directories, resume flags, swapped checkpoints
# --------------------------------------------------------------------------------------

TINY = ["--epochs", "2", "--no-plots", *FAST]


def test_a_failed_start_leaves_nothing_behind(data_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    empty = tmp_path / "empty"
    empty.mkdir()
    code, _, err = main_in_process(capsys, "--data-dir", str(empty), "--no-download", *TINY)
    assert code == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty"]  # no runs/default-<time>/
    # Divergence in the first epoch: the new run directory goes again.
    out = tmp_path / "deep" / "run"
    code, _, err = main_in_process(capsys, "--data-dir", str(data_dir), "--out", str(out), "--lr", "1e30",
                                   "--optimizer", "sgd", "--schedule", "constant", *TINY)
    assert_one_line_error(err, "diverged", "nothing is kept")
    assert not (tmp_path / "deep").exists()
    # An --out that existed before is kept, empty.
    code, _, err = main_in_process(capsys, "--data-dir", str(data_dir), "--out", str(empty), "--lr", "1e30",
                                   "--optimizer", "sgd", "--schedule", "constant", *TINY)
    assert code == 1 and empty.is_dir() and list(empty.iterdir()) == []


def _interrupt_at(monkeypatch, when: str, epoch: int = 1):
    """Ctrl-C ``when`` ("before" or "after") the checkpoint of ``epoch``."""
    calls = []
    original = rundir.RunDir.save_epoch

    def save_epoch(self, clf, rows):
        calls.append(len(rows))
        if when == "before" and len(rows) == epoch:
            raise KeyboardInterrupt
        original(self, clf, rows)
        if when == "after" and len(rows) == epoch:
            raise KeyboardInterrupt

    monkeypatch.setattr(rundir.RunDir, "save_epoch", save_epoch)


def test_ctrl_c_without_out_names_the_run_directory(data_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _interrupt_at(monkeypatch, "after", epoch=1)
    code, _, err = main_in_process(capsys, "--data-dir", str(data_dir), *TINY)
    assert code == 130
    (run,) = (tmp_path / "runs").iterdir()
    assert f"--resume --out runs/{run.name}" in err
    monkeypatch.undo()
    monkeypatch.chdir(tmp_path)
    code, _, err = main_in_process(capsys, "--resume", "--out", f"runs/{run.name}",
                                   "--data-dir", str(data_dir))
    assert code == 0, err


def test_ctrl_c_in_the_first_epoch_keeps_nothing(data_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _interrupt_at(monkeypatch, "before", epoch=1)
    code, _, err = main_in_process(capsys, "--data-dir", str(data_dir), *TINY)
    assert code == 130
    assert "nothing was kept" in err and "--resume" not in err
    assert list(tmp_path.iterdir()) == []


def test_a_run_without_a_checkpoint_starts_again_with_or_without_resume(data_dir, tmp_path, capsys):
    # What a kill -9 in the first epoch leaves: config.json and no checkpoint.
    done = tmp_path / "done"
    code, _, err = main_in_process(capsys, "--data-dir", str(data_dir), "--out", str(done), *TINY)
    assert code == 0, err
    for name, flags in [("again", TINY), ("resumed", ["--resume"])]:
        out = tmp_path / name
        out.mkdir()
        (out / "config.json").write_text((done / "config.json").read_text())
        (out / ".checkpoint.npz.0123456789ab.part").write_bytes(b"half a file")
        code, stdout, err = main_in_process(capsys, "--data-dir", str(data_dir), "--out", str(out), *flags)
        assert code == 0, err
        assert len(read_metrics(out)) == 2
        assert not list(out.glob(".*.part")) and not (out / ".lock").exists()
        if name == "resumed":
            assert "starting it again from epoch 1" in stdout
    np.testing.assert_array_equal(NNClassifier.load(tmp_path / "resumed" / "model.npz").coefs_[0],
                                  NNClassifier.load(done / "model.npz").coefs_[0])


def test_a_leftover_temporary_file_is_gone_after_a_resume(data_dir, tmp_path, capsys):
    out = tmp_path / "run"
    _ = main_in_process(capsys, "--data-dir", str(data_dir), "--out", str(out), "--epochs", "3",
                        "--no-plots", *FAST)
    (out / "model.npz").unlink()
    (out / ".checkpoint.npz.a1b2c3d4e5f6.part").write_bytes(b"x" * 100)
    (out / ".write-test.abcd").write_bytes(b"")
    code, _, err = main_in_process(capsys, "--resume", "--out", str(out), "--data-dir", str(data_dir))
    assert code == 0, err
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")]


def test_a_run_directory_in_use_is_refused_and_a_dead_lock_is_not(data_dir, tmp_path, capsys):
    fcntl = pytest.importorskip("fcntl")
    out = tmp_path / "run"
    out.mkdir()
    with open(out / ".lock", "w") as held:
        held.write("4242")
        held.flush()
        fcntl.flock(held.fileno(), fcntl.LOCK_EX)
        code, stdout, err = main_in_process(capsys, "--data-dir", str(data_dir), "--out", str(out), *TINY)
        assert code == 1
        assert_one_line_error(err, "in use by process 4242", "choose another --out")
        assert "epoch" not in stdout
    # The holder is gone (a killed process releases its lock): the file left over is no obstacle.
    assert (out / ".lock").exists()
    code, _, err = main_in_process(capsys, "--data-dir", str(data_dir), "--out", str(out), *TINY)
    assert code == 0, err


def test_two_runs_started_at_once_do_not_mix(data_dir, tmp_path):
    out = tmp_path / "run"
    args = [sys.executable, "-m", "arraynn.train", "--data-dir", str(data_dir), "--out", str(out),
            "--epochs", "3", "--no-plots", *FAST]
    procs = [subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                              env=cli_env()) for _ in range(2)]
    results = [(p.wait(timeout=120), p.stderr.read()) for p in procs]
    assert sorted(code for code, _ in results) == [0, 1], results
    (err,) = [e for code, e in results if code == 1]
    assert "in use by process" in err or "already holds a run" in err, err
    config = json.loads((out / "config.json").read_text())
    assert NNClassifier.load(out / "model.npz").n_iter_ == config["config"]["epochs"] == 3


def test_a_foreign_non_empty_out_is_refused_and_left_alone(data_dir, tmp_path, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "thesis.tex").write_text("precious")
    (out / "config.json").write_text('{"mine": true}')
    code, stdout, err = main_in_process(capsys, "--data-dir", str(data_dir), "--out", str(out), *TINY)
    assert code == 1
    assert "epoch" not in stdout
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "thesis.tex"]
    assert (out / "config.json").read_text() == '{"mine": true}'
    (out / "config.json").unlink()
    code, _, err = main_in_process(capsys, "--data-dir", str(data_dir), "--out", str(out), *TINY)
    assert code == 1
    assert_one_line_error(err, "not empty", "thesis.tex", "holds no arraynn run")
    assert sorted(p.name for p in out.iterdir()) == ["thesis.tex"]


def test_out_must_name_a_directory(data_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, _, err = main_in_process(capsys, "--data-dir", str(data_dir), "--out", "", *TINY)
    assert code == 2
    assert_one_line_error(err, "--out needs a directory name")
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "file").write_text("x")
    code, _, err = main_in_process(capsys, "--data-dir", str(data_dir), "--out", "file", *TINY)
    assert code == 1
    assert_one_line_error(err, "is a file, not a directory")


def test_resume_accepts_the_original_flags_and_names_the_saved_value_of_others(data_dir, tmp_path,
                                                                               capsys, monkeypatch):
    out = tmp_path / "run"
    flags = ["--data-dir", str(data_dir), "--out", str(out), "--epochs", "3", "--no-plots", "--hidden", "32",
             "--val-size", "100", "--no-progress", "--lr", "0.001", "--preset", "default"]
    _interrupt_at(monkeypatch, "after", epoch=1)
    code, _, _ = main_in_process(capsys, *flags)
    assert code == 130
    monkeypatch.undo()
    code, stdout, err = main_in_process(capsys, *flags, "--resume", "--limit", "600")
    assert code == 2
    assert_one_line_error(err, "drop --limit (the run has limit unset)")
    code, stdout, err = main_in_process(capsys, *flags, "--resume")
    assert code == 0, err
    assert "resuming after epoch 1 of 3" in stdout


def test_a_checkpoint_of_another_network_is_refused(data_dir, tmp_path, capsys):
    a, b = tmp_path / "a", tmp_path / "b"
    for out, hidden in ((a, "32"), (b, "16")):
        code, _, err = main_in_process(capsys, "--data-dir", str(data_dir), "--out", str(out),
                                       "--epochs", "2", "--no-plots", "--val-size", "100", "--no-progress",
                                       "--hidden", hidden)
        assert code == 0, err
    (a / "checkpoint.npz").write_bytes((b / "checkpoint.npz").read_bytes())
    code, stdout, err = main_in_process(capsys, "--resume", "--out", str(a), "--data-dir", str(data_dir))
    assert code == 1
    assert_one_line_error(err, "does not belong to this run", "n_hidden_units")
    assert (a / "checkpoint.npz").exists()  # nothing of the run is discarded


def test_resume_keeps_the_runs_no_plots(data_dir, tmp_path, capsys):
    pytest.importorskip("matplotlib")
    out = tmp_path / "run"
    code, _, err = main_in_process(capsys, "--data-dir", str(data_dir), "--out", str(out), "--epochs", "1",
                                   "--no-plots", *FAST)
    assert code == 0, err
    code, stdout, err = main_in_process(capsys, "--resume", "--out", str(out), "--epochs", "2",
                                        "--no-progress")
    assert code == 0, err
    assert "extending the run to 2 epochs" in stdout
    assert not list(out.glob("*.png"))
