"""The convolutional step benchmark's smoke test: ``python -m benchmarks.conv_step --quick``."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
HAS_TORCH = importlib.util.find_spec("torch") is not None


@pytest.fixture(scope="module")
def quick_report(tmp_path_factory) -> tuple[dict, str]:
    out = tmp_path_factory.mktemp("conv_step") / "quick.json"
    env = {**os.environ, "OPENBLAS_CORETYPE": "Haswell"}  # the command must drop it for itself
    proc = subprocess.run([sys.executable, "-m", "benchmarks.conv_step", "--quick", "--breakdown",
                           "--json", str(out)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads(out.read_text()), proc.stdout


def test_quick_run_times_and_measures_every_peer(quick_report):
    report, stdout = quick_report
    assert "re-executing without OPENBLAS_CORETYPE" in stdout
    assert report["machine"]["env"]["OPENBLAS_CORETYPE"] is None
    expected = ["numpy", "numpy-generic"] + (["torch", "pytorch"] if HAS_TORCH else [])
    assert [r["peer"] for r in report["peers"]] == expected
    assert report["cpu"] and report["machine"]["versions"]["numpy"]
    assert report["layers"] and report["n_params"] > 0 and report["batch_size"] > 0
    assert "VmHWM" in report["memory_method"]
    assert "| peer | ms/step (median) | min | peak MiB of one step | vs PyTorch |" in stdout
    for r in report["peers"]:
        assert r["label"] in stdout
        assert len(r["step_ms"]) == report["repeats"]
        assert all(len(block) == report["steps"] for block in r["step_ms"])
        assert 0 < r["min_ms"] <= r["median_ms"]
        assert np.isfinite(r["last_loss"])
        mem = r["memory"]
        assert "error" not in mem, mem.get("error")
        assert mem["method"] == "VmHWM"  # Linux >= 4.0 resets the kernel's peak
        # --quick's steps need a few hundred KiB, within the kernel's batched RSS counters:
        # they may read 0 (test_the_memory_method_sees_a_steps_temporaries checks the method)
        assert mem["peak_growth_mib"] >= 0 and mem["rss_before_mib"] > 0
        assert all(s["rss_peak"] >= max(s["rss_before"], s["rss_after"]) for s in mem["steps"])
        assert mem["malloc_env"]["MALLOC_MMAP_THRESHOLD_"]
        if HAS_TORCH:
            assert r["vs_pytorch"] > 0
    if HAS_TORCH:
        rows = {r["peer"]: r for r in report["peers"]}
        assert rows["pytorch"]["vs_pytorch"] == 1.0
        assert rows["torch"]["kernels_class"] == "TorchOps"
    kernels = {r["peer"]: r["kernels_class"] for r in report["peers"] if r["peer"].startswith("numpy")}
    assert kernels == {"numpy": "NumpyOps", "numpy-generic": "Ops"}  # the fast paths off, and back on


class _Allocating:
    """A peer whose step makes and touches a temporary of ``mib`` MiB, then drops it."""

    def __init__(self, mib: int) -> None:
        self.n = mib * 2**20 // 8

    def enter(self) -> None:
        pass

    def leave(self) -> None:
        pass

    def step(self) -> None:
        a = np.ones(self.n)  # 64 MiB: past glibc's largest mmap threshold, so mapped and unmapped
        a += 1.0


def test_the_memory_method_sees_a_steps_temporaries():
    from benchmarks.conv_step import measure_memory

    mem = measure_memory(_Allocating(64), warmup=2)
    assert mem["method"] == "VmHWM"
    assert 60 <= mem["peak_growth_mib"] <= 72  # the temporary, give or take the counters' batching
    assert all(60 * 2**20 <= s["growth"] for s in mem["steps"])  # every step, not one by chance
    assert all(s["rss_after"] < s["rss_before"] + 8 * 2**20 for s in mem["steps"])  # freed after


def test_quick_breakdown_has_every_layer(quick_report):
    report, stdout = quick_report
    from benchmarks.conv_step import build_network

    net = build_network(report["layers"])
    (bd,) = report["breakdown"]
    assert bd["peer"] == "numpy" and len(bd["layers"]) == len(net.layers)
    assert all(r["forward_ms"] > 0 for r in bd["layers"])
    assert all(r["backward_ms"] is None or r["backward_ms"] > 0 for r in bd["layers"])
    assert bd["layers"][-1]["backward_ms"] > 0  # the output layer
    assert bd["other"]["Adam update"] > 0 and bd["other"]["step"] > 0
    assert "Per layer, arraynn (numpy)" in stdout


@pytest.mark.skipif(not HAS_TORCH, reason="torch is not installed")
@pytest.mark.parametrize("spec", [
    "conv4k3same,relu,maxpool2,conv6k4same,tanh,avgpool2s1,flatten,dense8,sigmoid",  # asymmetric "same"
    "conv4k3s2same,relu,conv6k2p1,bn,relu,gap",
])
def test_the_pytorch_peer_is_the_same_network(spec):
    # the same initial weights, function and Adam: without dropout the two train alike
    from benchmarks.conv_step import make_peer

    ours, ref = make_peer("numpy", spec, 8), make_peer("pytorch", spec, 8)
    for _ in range(3):
        ours.step()
        ref.step()
        assert ours.last_loss() == pytest.approx(ref.last_loss(), rel=1e-4)
