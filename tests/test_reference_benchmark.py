"""``python -m benchmarks.reference``: PyTorch's reference dropout MLP (and, with ``--cnn``, its
small CNN) next to an arraynn preset, smoke-tested on a tiny synthetic Fashion-MNIST."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from _synthetic import write_synthetic_fashion_mnist

ROOT = Path(__file__).resolve().parents[1]


def test_reference_and_preset_side_by_side(tmp_path):
    pytest.importorskip("torch")
    data = write_synthetic_fashion_mnist(tmp_path / "data")
    out = tmp_path / "ref.json"
    env = {**os.environ, "OPENBLAS_CORETYPE": "Haswell", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.reference", "--data-dir", str(data), "--epochs", "1",
         "--limit", "300", "--preset", "best", "--output", str(out),
         "--train-args", "--val-size 100 --hidden 32,16"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "re-executing without OPENBLAS_CORETYPE" in proc.stdout
    report = json.loads(out.read_text())
    names = [r["name"] for r in report["rows"]]
    assert names == ["arraynn --preset best", "PyTorch reference"]
    for row in report["rows"]:
        assert 0.0 <= row["test_accuracy"] <= 1.0 and row["train_seconds"] > 0
        assert 0 < row["loop_seconds"] <= row["train_seconds"]
    assert report["rows"][1]["n_train"] == 300 and report["rows"][1]["epochs"] == 1
    assert "test accuracy" in proc.stdout and "training time" in proc.stdout


#: One BLAS/OpenMP thread for the smoke runs below: on a shared two-core machine two threads per
#: library can take ten times as long; these tests check the output's structure, not its times.
ONE_THREAD = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def test_cnn_reference_and_arraynn_side_by_side(tmp_path):
    pytest.importorskip("torch")
    data = write_synthetic_fashion_mnist(tmp_path / "data")
    out = tmp_path / "ref-cnn.json"
    env = {**os.environ, **ONE_THREAD, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.reference", "--cnn", "--data-dir", str(data), "--epochs", "1",
         "--limit", "300", "--preset", "default", "--output", str(out),
         "--arraynn-args", "--layers conv4k3same,relu,maxpool2,flatten,dense16,relu,dropout0.3 "
                           "--val-size 0 --l2 0"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads(out.read_text())
    assert report["mode"] == "cnn" and report["reference"]["epochs"] == 15
    assert report["reference"]["filters"] == [32, 64] and report["reference"]["batch_size"] == 128
    names = [r["name"] for r in report["rows"]]
    assert names == ["arraynn --preset default", "PyTorch reference CNN"]
    for row in report["rows"]:
        assert 0.0 <= row["test_accuracy"] <= 1.0 and row["train_seconds"] > 0
        assert 0 < row["loop_seconds"] <= row["train_seconds"]
    arraynn_row, torch_row = report["rows"]
    assert "--layers" in arraynn_row["train_args"] and arraynn_row["epochs"] == 1
    assert arraynn_row["summary"]["config"]["layers"].startswith("conv4k3same")
    assert torch_row["n_train"] == 300 and torch_row["epochs"] == 1 and len(torch_row["epoch_seconds"]) == 1
    assert "--cnn" in proc.stdout  # the torch worker ran the CNN
    assert "PyTorch reference CNN" in proc.stdout and "test accuracy" in proc.stdout


def test_a_missing_preset_stops_in_one_line(tmp_path):
    from arraynn.train.options import PRESETS

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for args, missing in ((["--cnn", "--preset", "no-such-preset"], "no-such-preset"),
                          (["--cnn"], "cnn")):
        if missing not in PRESETS:
            proc = subprocess.run([sys.executable, "-m", "benchmarks.reference", *args, "--epochs", "1"],
                                  cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
            assert proc.returncode == 1
            lines = proc.stderr.strip().splitlines()
            assert len(lines) == 1 and f"no preset {missing!r}" in lines[0], proc.stderr
            assert "--arraynn-args" in lines[0] and all(name in lines[0] for name in PRESETS)
            assert "$ " not in proc.stdout  # nothing ran
