"""The GPU benchmark (benchmarks/gpu.py), smoke-tested on CPU backends in --quick mode."""

from __future__ import annotations

import json

import pytest

from benchmarks import gpu


def test_quick_run_on_numpy_and_torch_cpu(tmp_path, capsys):
    pytest.importorskip("torch")
    out = tmp_path / "bench.json"
    streamed = tmp_path / "rows.jsonl"
    rc = gpu.main(["--backends", "numpy,torch", "--device", "cpu", "--quick", "--json", str(out),
                   "--rows", str(streamed)])
    assert rc == 0
    report = json.loads(out.read_text())
    rows = report["rows"]
    # --rows: every row, one JSON line each, written as it finished
    lines = [json.loads(line) for line in streamed.read_text().splitlines()]
    assert [(r["workload"], r["batch"], r["implementation"]) for r in lines] == [
        (r["workload"], r["batch"], r["implementation"]) for r in rows]
    assert not [r for r in rows if "error" in r]
    configs = {(r["workload"], r["batch"]) for r in rows}
    assert configs == {("seed", "25 fixed"), ("seed", "128"), ("seed", "4096"), ("modern", "128"),
                       ("modern", "4096")}
    for workload, batch in configs:
        names = {r["implementation"]: r for r in rows if (r["workload"], r["batch"]) == (workload, batch)}
        assert set(names) == {"arraynn-numpy", "arraynn-numpy-generic", "torch-eager"}
        assert names["arraynn-numpy"]["kernels"] == "NumpyOps"
        assert names["arraynn-numpy-generic"]["kernels"] == "Ops"
        for r in names.values():
            assert len(r["epoch_seconds"]) == 2 and r["median_seconds"] > 0
            assert r["tf32"] is False
        assert "ratio_vs_torch" in names["arraynn-numpy"] and "ratio_vs_torch" not in names["torch-eager"]
        # the same network, batches and initial weights: the losses agree
        losses = [r["final_loss"] for r in names.values()]
        assert max(losses) - min(losses) < 1e-3 * max(1.0, abs(losses[0])), losses
    assert report["all_targets_met"] is None  # the targets are the arraynn-cupy rows'
    assert report["settings"]["warmup_epochs"] == 1 and report["versions"]["torch"]
    text = capsys.readouterr().out
    assert "| workload | batch | implementation |" in text and "torch-eager" in text


def test_jax_jit_and_eager_rows_and_the_targets(tmp_path):
    pytest.importorskip("jax")
    out = tmp_path / "bench.json"
    rc = gpu.main(["--backends", "jax", "--device", "cpu", "--quick", "--workloads", "modern",
                   "--batches", "128", "--json", str(out)])
    assert rc == 0
    rows = json.loads(out.read_text())["rows"]
    names = {r["implementation"]: r for r in rows}
    assert set(names) == {"arraynn-jax-jit", "arraynn-jax-eager"}
    assert names["arraynn-jax-jit"]["jit"] is True and names["arraynn-jax-eager"]["jit"] is False
    assert names["arraynn-jax-jit"]["speedup_vs_arraynn-jax-eager"] > 0
    # how the targets are judged, on made-up rows
    report = {"hardware": "GPU", "device": "cuda", "data": "d", "skipped": {},
              "settings": {"timed_epochs": 1, "warmup_epochs": 0},
              "rows": [{"workload": "modern", "batch": "128", "implementation": "arraynn-cupy",
                        "median_seconds": 0.1, "samples_per_second": 10.0, "ratio_vs_torch": 1.5,
                        "target": 1.4, "target_met": True}]}
    assert "| modern | 128 | arraynn-cupy | 100.0 | 10 | 1.50x | >= 1.4x | yes |" in gpu.table(report)
    assert gpu.TARGETS == {128: 1.4, 4096: 1.0}


def test_the_cnn_workload_runs_arraynn_and_pytorchs_network_from_the_same_weights(tmp_path):
    pytest.importorskip("torch")
    out = tmp_path / "bench.json"
    rc = gpu.main(["--backends", "numpy,torch", "--device", "cpu", "--quick", "--workloads", "cnn",
                   "--batches", "64", "--samples", "256", "--no-generic", "--json", str(out)])
    assert rc == 0
    report = json.loads(out.read_text())
    names = {r["implementation"]: r for r in report["rows"]}
    assert set(names) == {"arraynn-numpy", "torch-eager"} and not [r for r in names.values() if "error" in r]
    assert {r["workload"] for r in names.values()} == {"cnn"}
    assert names["arraynn-numpy"]["ratio_vs_torch"] > 0 and "target" not in names["arraynn-numpy"]
    assert report["all_targets_met"] is None  # no target for the CNN
    assert report["settings"]["workloads"]["cnn"]["layers"].startswith("conv32k3same")
    # one network from the same initial weights on the same batches (only the dropout masks
    # differ): after the same steps on random labels the losses are close
    losses = [r["final_loss"] for r in names.values()]
    assert all(0 < v < 10 for v in losses) and max(losses) - min(losses) < 0.25 * max(losses), losses
