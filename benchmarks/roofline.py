"""The GEMM roofline of a workload: its matrix products alone, at its own shapes.

A "GEMM-only epoch" runs exactly the matrix products of one training epoch (for
every minibatch: each layer's forward product, weight gradient and, above the
first layer, the error passed down), with the real input batches for the first
layer and fixed arrays of the right shapes elsewhere, and nothing else. Its time
is the least time an epoch of the workload can take with that library's matrix
multiply; ``roofline share = GEMM-only epoch time / real epoch time`` (equal to the
workload's FLOPs over the measured GEMM throughput, divided by the epoch time).
"""

from __future__ import annotations

import statistics
import time
from typing import Any

import numpy as np

from .workloads import Data, Workload, batch_sizes, epoch_flops, gemm_shapes

__all__ = ["measure_gemm"]


def _operands(lib: str, sizes: tuple[int, ...], b: int, rng: np.random.Generator) -> dict[str, Any]:
    def arr(*shape: int) -> Any:
        a = rng.standard_normal(shape, dtype=np.float32)
        if lib == "torch":
            import torch

            return torch.from_numpy(a)
        return a

    L = len(sizes) - 1
    return {
        "W": [arr(sizes[i], sizes[i + 1]) for i in range(L)],
        "A": [None] + [arr(b, sizes[i]) for i in range(1, L)],
        "D": [arr(b, sizes[i + 1]) for i in range(L)],
    }


def _gemm_epoch(X: Any, ops: dict[str, Any], bsizes: list[int]) -> float:
    W, A, D = ops["W"], ops["A"], ops["D"]
    L = len(W)
    start = time.perf_counter()
    s = 0
    for b in bsizes:
        for i in range(L):
            a = X[s:s + b] if i == 0 else A[i][:b]
            d = D[i][:b]
            a @ W[i]
            a.T @ d
            if i > 0:
                d @ W[i].T
        s += b
    return time.perf_counter() - start


def _per_shape(lib: str, sizes: tuple[int, ...], b: int, rng: np.random.Generator,
               budget: float = 0.05) -> list[dict[str, Any]]:
    out = []
    for kind, m, k, n in gemm_shapes(sizes, b):
        if lib == "torch":
            import torch

            x = torch.from_numpy(rng.standard_normal((m, k), dtype=np.float32))
            y = torch.from_numpy(rng.standard_normal((k, n), dtype=np.float32))
        else:
            x = rng.standard_normal((m, k), dtype=np.float32)
            y = rng.standard_normal((k, n), dtype=np.float32)
        if kind == "weight-grad":  # a transposed view, as in the backward pass
            x = x.T.copy().T if lib == "numpy" else x.T.contiguous().T
        x @ y
        reps, start = 0, time.perf_counter()
        while True:
            x @ y
            reps += 1
            elapsed = time.perf_counter() - start
            if elapsed > budget and reps >= 5:
                break
        out.append({"kind": kind, "m": m, "k": k, "n": n,
                    "gflops": 2 * m * k * n * reps / elapsed / 1e9})
    return out


def measure_gemm(wl: Workload, data: Data, lib: str, warmup: int, repeats: int,
                 threads: int | None = None) -> dict[str, Any]:
    """Time ``repeats`` GEMM-only epochs of ``wl`` with ``lib`` ("numpy" or "torch")."""
    rng = np.random.default_rng(1)
    sizes = wl.layer_sizes(data.X_train.shape[1], data.n_classes)
    n = data.X_train.shape[0]
    bsizes = batch_sizes(wl, n)
    X: Any = data.X_train
    if lib == "torch":
        import torch

        if threads:
            torch.set_num_threads(threads)
        X = torch.from_numpy(data.X_train)
    ops = _operands(lib, sizes, max(bsizes), rng)
    times = [_gemm_epoch(X, ops, bsizes) for _ in range(warmup + repeats)][warmup:]
    median = statistics.median(times)
    flops = epoch_flops(wl, sizes, n)
    return {"lib": lib, "epoch_seconds": times, "median_s": median, "flops": flops,
            "gflops": flops / median / 1e9,
            "per_shape": _per_shape(lib, sizes, max(bsizes), rng)}
