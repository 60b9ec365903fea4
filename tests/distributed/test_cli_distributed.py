"""``python -m arraynn.train --distributed`` under mpiexec: the same model as one process,
rank 0 alone writing, resuming on 2 ranks and on 1, failing ranks ending the job."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from _mpi import HERE, TIMEOUT, run_ranks
from _synthetic import write_synthetic_fashion_mnist

from arraynn import NNClassifier, distributed
from arraynn.train import main

ARGS = ["--epochs", "3", "--limit", "300", "--val-size", "60", "--hidden", "12", "--batch-size", "50",
        "--backend", "numpy", "--dtype", "float64", "--no-plots", "--no-progress"]


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return write_synthetic_fashion_mnist(tmp_path_factory.mktemp("fmnist") / "data", 400, 100)


@pytest.fixture(scope="module")
def one_process(data, tmp_path_factory) -> Path:
    """The uninterrupted run in one process (no --distributed)."""
    out = tmp_path_factory.mktemp("one") / "run"
    assert main([*ARGS, "--data-dir", str(data), "--out", str(out)]) == 0
    return out


def _weights(run: Path) -> np.ndarray:
    return NNClassifier.load(run / "model.npz")._state.params


def _cli(n: int, *args: str, fail: tuple[int, int] | None = None) -> subprocess.CompletedProcess:
    inject = ["--fail-rank", str(fail[0]), "--fail-epoch", str(fail[1])] if fail else []
    return run_ranks(n, [str(HERE / "_mpi_cli.py"), *inject, *args])


def test_two_ranks_train_the_one_process_model_and_rank_0_alone_writes(data, one_process, tmp_path):
    out = tmp_path / "run"
    proc = _cli(2, *ARGS, "--distributed", "--data-dir", str(data), "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("arraynn.train: preset") == 1  # rank 0 alone prints
    assert "distributed: 2 ranks, one mpi allreduce of the gradient per step, global batch 50" in proc.stdout
    np.testing.assert_allclose(_weights(out), _weights(one_process), rtol=1e-10, atol=1e-13)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["distributed"] == {"world_size": 2, "communicator": "mpi", "devices": ["cpu", "cpu"]}
    ref = json.loads((one_process / "summary.json").read_text())
    assert ref["distributed"]["world_size"] == 1
    assert summary["test_accuracy"] == ref["test_accuracy"]
    assert not list(out.glob(".*tmp*")) and not (out / ".lock").exists()


def test_a_checkpoint_of_two_ranks_resumes_on_two_and_on_one(data, one_process, tmp_path):
    out = tmp_path / "run"
    proc = _cli(2, *ARGS, "--distributed", "--data-dir", str(data), "--out", str(out), fail=(0, 1))
    assert proc.returncode != 0
    assert "rank 0 stops after epoch 1 on purpose" in proc.stderr
    copy = tmp_path / "copy"
    shutil.copytree(out, copy, ignore=shutil.ignore_patterns(".lock"))
    proc = _cli(2, "--resume", "--distributed", "--out", str(out), "--no-plots", "--no-progress")
    assert proc.returncode == 0, proc.stderr
    assert "resuming after epoch 1 of 3" in proc.stdout
    np.testing.assert_allclose(_weights(out), _weights(one_process), rtol=1e-10, atol=1e-13)
    assert main(["--resume", "--out", str(copy), "--no-plots", "--no-progress"]) == 0
    np.testing.assert_allclose(_weights(copy), _weights(one_process), rtol=1e-10, atol=1e-13)


def test_a_failing_rank_ends_the_job_non_zero(data, tmp_path):
    try:
        proc = _cli(2, *ARGS, "--distributed", "--data-dir", str(data), "--out", str(tmp_path / "run"),
                    fail=(1, 2))
    except subprocess.TimeoutExpired:  # pragma: no cover - the failure this test is about
        pytest.fail(f"a rank failed and the job hung for {TIMEOUT} s")
    assert proc.returncode != 0
    assert "error: rank 1: RuntimeError: rank 1 fails in epoch 2 on purpose" in proc.stderr


def test_distributed_without_mpiexec_is_one_process(data, tmp_path, monkeypatch, capsys):
    for name in distributed._LAUNCHER_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delitem(__import__("sys").modules, "mpi4py.MPI", raising=False)
    out = tmp_path / "run"
    assert main([*ARGS, "--epochs", "1", "--distributed", "--data-dir", str(data), "--out", str(out)]) == 0
    assert "not started by mpiexec, so training as one process (world size 1)" in capsys.readouterr().out
    summary = json.loads((out / "summary.json").read_text())
    assert summary["distributed"] == {"world_size": 1, "communicator": "single", "devices": ["cpu"]}


@pytest.mark.parametrize("argv,message", [
    (["--comm", "mpi"], "--comm chooses the communicator of a --distributed run"),
    (["--distributed", "--evaluate", "x"], "--evaluate runs in one process; drop --distributed"),
])
def test_distributed_flags_are_checked(argv, message, capsys):
    assert main(argv) == 2
    assert message in capsys.readouterr().err
