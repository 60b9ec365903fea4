"""The data-parallel scaling model of benchmarks/scaling.py."""

from __future__ import annotations

import pytest

from benchmarks.scaling import INTERCONNECTS, MODERN_PARAMS, main, speedup, step_seconds


def test_the_model_of_a_step():
    assert MODERN_PARAMS == 235_146
    one = step_seconds(1024, 1, tflops=10.0, fixed_us=100.0)
    assert one == pytest.approx(100e-6 + 6 * 1024 * MODERN_PARAMS / 10e12)
    # two ranks: half the compute, plus one ring allreduce of the float32 gradient
    two = step_seconds(1024, 2, tflops=10.0, fixed_us=100.0, bandwidth=1e10, latency=1e-5)
    assert two == pytest.approx(100e-6 + 3 * 1024 * MODERN_PARAMS / 10e12 + 4 * MODERN_PARAMS / 1e10
                                + 2e-5)
    assert speedup(128, 1) == 1.0


def test_the_model_favours_large_batches_and_fast_links():
    for bandwidth, latency in INTERCONNECTS.values():
        link = dict(bandwidth=bandwidth, latency=latency)
        assert speedup(8192, 8, **link) > speedup(1024, 8, **link) > speedup(128, 8, **link)
    nvlink, slow = INTERCONNECTS["NVLink (one node)"], INTERCONNECTS["100 Gb/s network"]
    assert speedup(8192, 8, bandwidth=nvlink[0], latency=nvlink[1]) > speedup(
        8192, 8, bandwidth=slow[0], latency=slow[1])


def test_the_table_prints(capsys):
    assert main([]) == 0
    out = capsys.readouterr().out
    assert "| global batch | N=1 | N=2" in out and "100 Gb/s network" in out
