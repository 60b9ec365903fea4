"""N ranks under mpiexec train the network one process trains (NNClassifier.fit(comm=...))."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
from _mpi import HERE, TIMEOUT, run_ranks
from _mpi_fit import data, layers_from_spec, weights

from arraynn import NNClassifier

# Every optimizer, with and without biases and penalties; float64 (tight) and float32.
CONFIGS = [
    {"n": 53, "n_hidden_units": 7, "epochs": 3, "batch_size": 8, "random_seed": 1,
     "optimizer": opt, "learning_rate": lr, "bias": bias, "l2": l2, "l1": l1, "dtype": dtype}
    for opt, lr in (("sgd", 0.01), ("momentum", 0.01), ("adam", 0.01))
    for bias, l1, l2 in ((False, 0.0, 0.0), (True, 0.01, 0.1))
    for dtype in ("float64", "float32")
]
# Uneven: 3 ranks, batches of 4 and a last batch of 2 rows (one rank gets none); the
# article's n_batches split; a hidden stack with cosine schedule and no seed (broadcast).
UNEVEN = [
    {"n": 22, "n_hidden_units": 6, "epochs": 3, "batch_size": 4, "random_seed": 3,
     "optimizer": "adam", "learning_rate": 0.01, "bias": True, "dtype": "float64"},
    {"n": 22, "n_hidden_units": [5, 4], "epochs": 3, "n_batches": 4, "random_seed": 4,
     "optimizer": "momentum", "learning_rate": 0.01, "schedule": "cosine", "dtype": "float64",
     "l2": 0.2},
    # sample weights cut with the rows of each rank's slice; early stopping and the adaptive rate
    {"n": 30, "n_hidden_units": 6, "epochs": 6, "batch_size": 4, "random_seed": 5, "weighted": True,
     "optimizer": "momentum", "learning_rate": 0.05, "schedule": "adaptive", "early_stopping": True,
     "validation_fraction": 0.2, "n_iter_no_change": 1, "tol": 0.2, "dtype": "float64"},
    # dropout and shifted, flipped 4x4 images: each rank draws its slice's rows of the
    # whole batch's masks and shifts
    {"n": 22, "n_features": 16, "n_hidden_units": [9, 7], "epochs": 3, "batch_size": 8,
     "random_seed": 6, "optimizer": "adam", "learning_rate": 0.01, "bias": True, "activation": "relu",
     "dropout": [0.3, 0.2], "input_dropout": 0.2, "augment_shift": 1, "augment_flip": True,
     "dtype": "float64"},
]


def _fit_one(cfg: dict) -> NNClassifier:
    cfg = dict(cfg)
    X, y = data(cfg.pop("n"), cfg.pop("n_features", 5))
    layers_from_spec(cfg)
    w = weights(len(y)) if cfg.pop("weighted", False) else None
    return NNClassifier(**cfg).fit(X, y, w)


def _ranks(tmp_path: Path, n: int, configs: list[dict], *extra: str) -> subprocess.CompletedProcess:
    spec = tmp_path / "configs.json"
    spec.write_text(json.dumps(configs))
    return run_ranks(n, [str(HERE / "_mpi_fit.py"), str(spec), str(tmp_path / "out.npz"), *extra])


def _check_same(out: np.lib.npyio.NpzFile, configs: list[dict]) -> None:
    for i, cfg in enumerate(configs):
        ref = _fit_one(cfg)
        rtol = 1e-10 if cfg["dtype"] == "float64" else 2e-4
        atol = 1e-12 if cfg["dtype"] == "float64" else 1e-5
        np.testing.assert_allclose(out[f"params{i}"], ref.backend_.to_numpy(ref._state.params), rtol=rtol,
                                   atol=atol, err_msg=str(cfg))
        np.testing.assert_allclose(out[f"loss{i}"], ref.loss_curve_, rtol=rtol, err_msg=str(cfg))
        if f"stats{i}" in out.files:
            np.testing.assert_allclose(out[f"stats{i}"], ref.backend_.to_numpy(ref._state.opt["stats"]),
                                       rtol=rtol, atol=atol, err_msg=str(cfg))


def test_two_ranks_train_what_one_process_trains(tmp_path):
    proc = _ranks(tmp_path, 2, CONFIGS)
    assert proc.returncode == 0, proc.stderr
    out = np.load(tmp_path / "out.npz")
    assert int(out["world_size"]) == 2
    _check_same(out, CONFIGS)


def test_three_ranks_with_an_uneven_last_batch(tmp_path):
    proc = _ranks(tmp_path, 3, UNEVEN)
    assert proc.returncode == 0, proc.stderr
    out = np.load(tmp_path / "out.npz")
    assert int(out["world_size"]) == 3
    _check_same(out, UNEVEN)


# A convolutional network with BatchNorm on 4x4 images: its statistics are the global
# minibatch's on every rank (one allreduce of their sums, one of the input gradient's)
BATCHNORM = [
    {"n": 26, "n_features": 16, "layers_spec": "conv3k3samenobias,bn,relu,flatten,dense5nobias,bn0.8,tanh",
     "input_shape": [1, 4, 4], "epochs": 2, "batch_size": 8, "random_seed": 2, "optimizer": "adam",
     "learning_rate": 0.02, "dtype": "float64"},
]


def test_batchnorm_on_two_ranks_trains_and_keeps_the_statistics_one_process_does(tmp_path):
    proc = _ranks(tmp_path, 2, BATCHNORM)
    assert proc.returncode == 0, proc.stderr
    out = np.load(tmp_path / "out.npz")
    assert int(out["world_size"]) == 2 and "stats0" in out.files
    _check_same(out, BATCHNORM)


def test_a_rank_that_raises_ends_the_job(tmp_path):
    try:
        proc = _ranks(tmp_path, 2, CONFIGS[:1], "1")
    except subprocess.TimeoutExpired:  # pragma: no cover - the failure this test is about
        pytest.fail(f"a rank raised and the job hung for {TIMEOUT} s")
    assert proc.returncode != 0
    assert "rank 1 fails on purpose" in proc.stderr
    assert not (tmp_path / "out.npz").exists()


def test_ranks_with_different_data_are_refused(tmp_path):
    script = tmp_path / "mismatch.py"
    script.write_text(
        "import numpy as np\n"
        "from arraynn import NNClassifier, distributed\n"
        "comm = distributed.world()\n"
        "X = np.random.default_rng(0).normal(size=(20 + comm.rank, 3)); y = np.arange(len(X)) % 2\n"
        "try:\n"
        "    NNClassifier(epochs=1, random_seed=0).fit(X, y, comm=comm)\n"
        "except ValueError as exc:\n"
        "    open(f'rank{comm.rank}.txt', 'w').write(str(exc))\n")
    proc = run_ranks(2, [str(script)], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    for rank in (0, 1):  # every rank refuses, none waits for the others
        text = (tmp_path / f"rank{rank}.txt").read_text()
        assert text.startswith("the ranks fit different problems: the data shape differ"), text


def _two_gpus() -> None:
    """Skip, after a real probe, unless CuPy runs on at least two GPUs here."""
    try:
        import arraynn

        arraynn.get_backend("cupy")
        import cupy

        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:  # not installed, no driver, no device
        pytest.skip(f"NCCL needs CuPy on two GPUs: {type(exc).__name__}: {exc}")
    if count < 2:
        pytest.skip(f"NCCL needs two GPUs; CuPy sees {count}")


def test_two_gpu_ranks_with_nccl_train_what_one_gpu_trains(tmp_path):
    _two_gpus()
    proc = _ranks(tmp_path, 2, [dict(cfg, backend="cupy", comm="nccl") for cfg in CONFIGS])
    assert proc.returncode == 0, proc.stderr
    _check_same(np.load(tmp_path / "out.npz"), [dict(cfg, backend="cupy") for cfg in CONFIGS])
