"""``python -m benchmarks.reference``: PyTorch's reference dropout MLP next to an arraynn
preset, smoke-tested on a tiny synthetic Fashion-MNIST."""

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
    assert report["rows"][1]["n_train"] == 300 and report["rows"][1]["epochs"] == 1
    assert "test accuracy" in proc.stdout and "training time" in proc.stdout
