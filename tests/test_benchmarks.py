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


def test_the_cnn_workload_is_not_in_the_default_run_and_has_no_numpy_or_sklearn_peer():
    from benchmarks.run import build_parser, plan

    assert build_parser().parse_args([]).workloads == ["seed", "modern"]
    tasks = plan(["cnn"], ["numpy"], ["numpy", "torch", "sklearn"], None, None, None, 1, True)
    impls = [t["impl"] for t in tasks if t["kind"] == "train"]
    assert "numpy" not in impls and "sklearn" not in impls
    assert impls.count("arraynn") >= 2 and "torch" in impls  # fast paths, generic kernels; PyTorch


def test_quick_cnn_run_on_a_tiny_subset(tmp_path):
    out = tmp_path / "quick-cnn.json"
    # one thread per library: on a shared two-core machine two can take ten times as long, and this
    # test checks the report's structure, not its times
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.run", "--quick", "--workloads", "cnn", "--limit", "64",
         "--threads", "1", "--output", str(out)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads(out.read_text())
    assert set(report["workloads"]) == {"cnn"}
    wl = report["workloads"]["cnn"]
    assert "conv32k3same" in wl["description"] and "plain NumPy" in wl["not_compared"]
    assert "synthetic blobs (64 training, 64 test samples)" in report["data"]
    rows = {r["label"]: r for r in wl["results"]}
    assert "arraynn (numpy)" in rows and "arraynn (numpy, generic kernels)" in rows
    assert "plain NumPy" not in rows and "scikit-learn" not in rows
    has_torch = importlib.util.find_spec("torch") is not None
    assert ("PyTorch" in rows) == has_torch and ("arraynn (torch)" in rows) == has_torch
    for r in rows.values():
        assert "error" not in r, r.get("error")
        assert len(r["timed_seconds"]) == r["repeats"] == 2
        assert r["median_s"] > 0 and r["samples_per_s"] > 0 and 0 < r["roofline_share"]
        assert 0.0 <= r["accuracy"] <= 1.0
        assert "numpy" not in r["ratio"] and "sklearn" not in r["ratio"]
        if has_torch:
            assert r["ratio"]["torch"] > 0
    g = wl["gemm"]["numpy"]
    assert g["gflops"] > 0 and g["peak"]["gflops"] > 0 and g["step_batch"] == 128
    shapes = {(s["layer"], s["kind"]): s for s in g["per_shape"]}
    first = shapes["0: Conv2D", "forward"]  # (filters, c*kh*kw) @ (c*kh*kw, oh*ow) per sample
    assert (first["batch"], first["m"], first["k"], first["n"]) == (128, 32, 9, 784)
    assert ("0: Conv2D", "input-grad") not in shapes  # the first layer passes no gradient down
    second = shapes["3: Conv2D", "forward"]
    assert (second["m"], second["k"], second["n"]) == (64, 288, 196)
    assert all(s["gflops"] > 0 and s["share_of_peak"] > 0 for s in g["per_shape"])
    assert "The im2col matrix products of one batch-128 step" in proc.stdout
    assert "Not compared: plain NumPy and scikit-learn" in proc.stdout
