"""``python -m arraynn.train`` with the training features of scikit-learn's MLPClassifier:
``--early-stopping`` on the run's validation split, ``--n-iter-no-change``, ``--tol``,
``--schedule adaptive`` and ``--nesterov``; their --help, config.json, summary.json and
an exact --resume."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest
from _synthetic import write_synthetic_fashion_mnist
from _train_cli import assert_one_line_error, main_in_process, read_metrics, run_cli

from arraynn import NNClassifier, get_backend
from arraynn.train import build_parser, rundir
from arraynn.train.config import upgrade
from arraynn.train.errors import UsageError
from arraynn.train.options import check_resume_args, describe_config, resolve_config
from arraynn.train.training import new_classifier


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    return write_synthetic_fashion_mnist(tmp_path_factory.mktemp("fashion"))


def _args(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(list(argv))


def _arrays(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as f:
        arrays = {k: f[k] for k in f.files}
    meta = json.loads(arrays.pop("meta.json").tobytes())
    arrays["loss_curve"] = np.asarray(meta["loss_curve"])
    arrays["validation_scores"] = np.asarray(meta.get("validation_scores") or [])
    return arrays


def test_help_and_the_configuration():
    proc = run_cli("--help")
    for flag in ("--early-stopping", "--n-iter-no-change", "--tol", "--nesterov", "--no-nesterov",
                 "adaptive"):
        assert flag in proc.stdout, flag
    cfg = resolve_config(_args("--early-stopping", "--n-iter-no-change", "3", "--tol", "0.01",
                               "--optimizer", "momentum", "--schedule", "adaptive"))
    got = (cfg["early_stopping"], cfg["n_iter_no_change"], cfg["tol"], cfg["nesterovs_momentum"])
    assert got == (True, 3, 0.01, True)
    line = describe_config(cfg)
    assert "Nesterov momentum lr" in line and "(adaptive)" in line
    assert "early stopping after more than 3 epochs without a gain of 0.01 in validation accuracy" in line
    assert "after more than 1 epoch without" in describe_config(dict(cfg, n_iter_no_change=1))
    classical = resolve_config(_args("--optimizer", "momentum", "--no-nesterov"))
    assert "Nesterov" not in describe_config(classical)
    clf = new_classifier(cfg, get_backend("numpy"))
    assert clf.early_stopping and clf.n_iter_no_change == 3 and clf.tol == 0.01 and clf.nesterovs_momentum
    # a run configured before these entries existed trains as it did: classical momentum
    old = {k: v for k, v in cfg.items()
           if k not in ("early_stopping", "n_iter_no_change", "tol", "nesterovs_momentum")}
    clf = new_classifier(upgrade(old), get_backend("numpy"))
    assert not clf.early_stopping and not clf.nesterovs_momentum and clf.tol == 1e-4


def test_early_stopping_needs_a_validation_split(capsys):
    with pytest.raises(UsageError, match="--val-size"):
        resolve_config(_args("--preset", "article", "--early-stopping"))
    code, _, err = main_in_process(capsys, "--early-stopping", "--val-size", "0", "--out", "never")
    assert code == 2
    assert_one_line_error(err, "--early-stopping", "--val-size N")


def test_resume_of_a_run_configured_before_the_training_features():
    """A config.json without the later entries trained without them (as it reads:
    :func:`upgrade`): flags that say so resume it, flags that would switch one on are refused."""
    saved = resolve_config(_args("--optimizer", "momentum"))
    old = upgrade({k: v for k, v in saved.items()
                   if k not in ("early_stopping", "n_iter_no_change", "tol", "nesterovs_momentum",
                                "dropout", "input_dropout", "augment_shift", "augment_flip")})
    check_resume_args(_args("--resume", "--out", "r", "--no-nesterov", "--dropout", "0", "--no-flip",
                            "--no-early-stopping", "--shift", "0"), old)
    with pytest.raises(UsageError, match="drop --nesterov.*nesterov False"):
        check_resume_args(_args("--resume", "--out", "r", "--nesterov"), old)
    with pytest.raises(UsageError, match="drop --dropout"):
        check_resume_args(_args("--resume", "--out", "r", "--dropout", "0.2"), old)


def test_resume_refuses_switching_early_stopping():
    saved = resolve_config(_args())
    check_resume_args(_args("--resume", "--out", "r", "--no-early-stopping", "--tol", "1e-4"), saved)
    with pytest.raises(UsageError, match="--early-stopping.*early-stopping False"):
        check_resume_args(_args("--resume", "--out", "r", "--early-stopping"), saved)


def test_a_run_stops_early_and_keeps_its_best_epoch(data_dir, tmp_path, capsys):
    out = tmp_path / "es"
    # tol 0.5: no epoch gains half the accuracy, so epochs 2 and 3 count and the third stops
    code, stdout, err = main_in_process(
        capsys, "--data-dir", str(data_dir), "--out", str(out), "--epochs", "20", "--hidden", "16",
        "--val-size", "100", "--limit", "300", "--no-progress", "--no-plots", "--early-stopping",
        "--n-iter-no-change", "1", "--tol", "0.5")
    assert code == 0, err
    assert "early stopping: the run stopped early; the model keeps the weights of epoch" in stdout
    rows = read_metrics(out)
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    vals = [float(r["val_accuracy"]) for r in rows]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["epochs"] == 3 and summary["config"]["early_stopping"] is True
    es = summary["early_stopping"]
    assert es["stopped"] is True and es["best_val_accuracy"] == max(vals)
    assert es["best_epoch"] == vals.index(max(vals)) + 1
    assert json.loads((out / "config.json").read_text())["config"]["n_iter_no_change"] == 1
    model = NNClassifier.load(out / "model.npz")
    assert model.validation_scores_ == pytest.approx(vals)
    checkpoint = NNClassifier.load(out / "checkpoint.npz")
    np.testing.assert_array_equal(model._state.params, checkpoint._state.params)
    # --resume of a stopped run has nothing to train
    code, stdout, err = main_in_process(capsys, "--resume", "--out", str(out), "--no-plots")
    assert code == 0, err
    assert "stopped early after epoch 3" in stdout
    assert NNClassifier.load(out / "model.npz").n_iter_ == 3


def test_resume_with_early_stopping_and_the_adaptive_rate_is_exact(data_dir, tmp_path, capsys, monkeypatch):
    args = ["--data-dir", str(data_dir), "--epochs", "9", "--hidden", "16", "--batch-size", "64",
            "--val-size", "100", "--limit", "300", "--no-progress", "--no-plots", "--early-stopping",
            "--n-iter-no-change", "1", "--tol", "0.02", "--schedule", "adaptive", "--optimizer",
            "momentum", "--lr", "0.002"]
    full = tmp_path / "full"
    code, _, err = main_in_process(capsys, *args, "--out", str(full))
    assert code == 0, err

    save_epoch = rundir.RunDir.save_epoch

    def interrupted(self, clf, rows):
        save_epoch(self, clf, rows)
        if len(rows) == 3:
            raise KeyboardInterrupt

    paused = tmp_path / "paused"
    monkeypatch.setattr(rundir.RunDir, "save_epoch", interrupted)
    code, _, _ = main_in_process(capsys, *args, "--out", str(paused))
    assert code == 130
    monkeypatch.setattr(rundir.RunDir, "save_epoch", save_epoch)
    code, stdout, err = main_in_process(capsys, "--resume", "--out", str(paused))
    assert code == 0, err
    assert "resuming after epoch 3" in stdout
    a, b = _arrays(full / "model.npz"), _arrays(paused / "model.npz")
    assert a.keys() == b.keys() and "best_param_0" in a
    for key in a:
        assert np.array_equal(a[key], b[key]), key
    full_rows, paused_rows = read_metrics(full), read_metrics(paused)
    assert [r["learning_rate"] for r in full_rows] == [r["learning_rate"] for r in paused_rows]
    assert [r["val_accuracy"] for r in full_rows] == [r["val_accuracy"] for r in paused_rows]
    summary = json.loads((full / "summary.json").read_text())
    divisions = NNClassifier.load(full / "checkpoint.npz")._state.stopping["divisions"]
    assert divisions >= 1  # the rate was divided on the way
    assert summary["final_learning_rate"] == pytest.approx(0.002 / 5**divisions)
