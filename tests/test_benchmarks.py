"""The benchmark command's smoke test: ``python -m benchmarks.run --quick`` on synthetic data."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def quick_report(tmp_path_factory) -> tuple[dict, str]:
    out = tmp_path_factory.mktemp("bench") / "quick.json"
    env = {**os.environ, "OPENBLAS_CORETYPE": "Haswell"}  # the command must drop it for itself
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.run", "--quick", "--workloads", "seed,modern",
         "--output", str(out)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads(out.read_text()), proc.stdout


def test_quick_run_reexecutes_without_the_openblas_pinning(quick_report):
    report, stdout = quick_report
    assert "re-executing without OPENBLAS_CORETYPE" in stdout
    assert report["machine"]["env"]["OPENBLAS_CORETYPE"] is None


def test_quick_run_prints_and_writes_the_table(quick_report):
    report, stdout = quick_report
    assert "| implementation | epoch (s) | samples/s | vs PyTorch" in stdout
    assert report["command"].startswith("python -m benchmarks.run --quick")
    assert report["machine"]["threadpools"]  # threadpoolctl's view of the BLAS and OpenMP pools
    assert set(report["workloads"]) == {"seed", "modern"}
    for name, wl in report["workloads"].items():
        assert "numpy" in wl["gemm"] and wl["gemm"]["numpy"]["gflops"] > 0
        rows = {r["label"]: r for r in wl["results"]}
        assert "arraynn (numpy)" in rows and "plain NumPy" in rows
        assert "arraynn (numpy, generic kernels)" in rows
        if importlib.util.find_spec("numba") is not None:  # the NumPy-only fast path too
            assert "arraynn (numpy, no Numba)" in rows
            assert rows["arraynn (numpy)"]["numba_updates"] == (name == "modern")  # Adam; SGD is not
            assert not rows["arraynn (numpy, no Numba)"]["numba_updates"]
        for r in rows.values():
            assert "error" not in r, r.get("error")
            assert len(r["timed_seconds"]) == r["repeats"] == 2
            assert r["median_s"] > 0 and r["samples_per_s"] > 0
            assert 0.0 <= r["accuracy"] <= 1.0
            assert r["ratio"]["numpy"] > 0
            assert 0 < r["roofline_share"]
        if "PyTorch" in rows:
            assert rows["arraynn (numpy)"]["ratio"]["torch"] > 0
        if name == "modern" and "scikit-learn" in rows:
            assert rows["scikit-learn"]["dtype"] in ("float32", "float64")
