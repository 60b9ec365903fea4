"""The GEMM roofline of a workload: its matrix products alone, at its own shapes.

A "GEMM-only epoch" runs exactly the matrix products of one training epoch (for
every minibatch: each layer's forward product, weight gradient and, above the
first layer, the error passed down), with the real input batches for the first
layer and fixed arrays of the right shapes elsewhere, and nothing else. Its time
is the least time an epoch of the workload can take with that library's matrix
multiply; ``roofline share = GEMM-only epoch time / real epoch time`` (equal to the
workload's FLOPs over the measured GEMM throughput, divided by the epoch time).

For a network of layers (the ``cnn`` workload) the GEMM-only epoch runs, per
minibatch, the products arraynn's convolutions and dense layers make
(:func:`benchmarks.workloads.network_gemms`: per sample ``(filters, c*kh*kw) @
(c*kh*kw, oh*ow)`` on the im2col columns, the kernels' gradient and the input's,
as the batched ``matmul`` calls :mod:`arraynn.nn.conv` makes, with the same
transposed views), on fixed arrays of those shapes; it leaves out im2col and col2im
themselves. It also gives each product's throughput at the shapes of one batch-128
step and the library's peak, the throughput of a large square product
(:func:`peak_gflops`).
"""

from __future__ import annotations

import statistics
import time
from typing import Any

import numpy as np

from .workloads import (
    Data,
    Workload,
    batch_sizes,
    epoch_flops,
    gemm_shapes,
    network_epoch_flops,
    network_gemms,
)

__all__ = ["measure_gemm", "peak_gflops"]

#: The side of the square float32 product whose throughput is taken as the library's peak.
PEAK_SIZE = 2048


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


def _lib_array(lib: str, a: np.ndarray) -> Any:
    if lib == "torch":
        import torch

        return torch.from_numpy(a)
    return a


def _rate(x: Any, y: Any, flops: int, budget: float, min_reps: int = 5) -> float:
    """GFLOP/s of ``x @ y`` (``flops`` each), after one untimed product."""
    x @ y
    reps, start = 0, time.perf_counter()
    while True:
        x @ y
        reps += 1
        elapsed = time.perf_counter() - start
        if elapsed > budget and reps >= min_reps:
            return flops * reps / elapsed / 1e9


def peak_gflops(lib: str, size: int = PEAK_SIZE, budget: float = 0.5) -> dict[str, Any]:
    """The throughput of a float32 ``(size, size) @ (size, size)`` product with ``lib``:
    the machine's GEMM peak as that library reaches it."""
    rng = np.random.default_rng(2)
    x = _lib_array(lib, rng.standard_normal((size, size), dtype=np.float32))
    y = _lib_array(lib, rng.standard_normal((size, size), dtype=np.float32))
    return {"m": size, "k": size, "n": size, "gflops": _rate(x, y, 2 * size**3, budget, min_reps=3)}


def _network_operands(lib: str, gemms: list[dict[str, Any]],
                      rng: np.random.Generator) -> list[tuple[Any, Any]]:
    """The two operands of each product of :func:`network_gemms`, laid out as arraynn
    multiplies them (a transposed view where arraynn takes one)."""

    def arr(*shape: int, transposed: bool = False) -> Any:
        a = _lib_array(lib, rng.standard_normal(shape, dtype=np.float32))
        if not transposed:
            return a
        return a.transpose(-1, -2) if lib == "torch" else np.swapaxes(a, -1, -2)

    out = []
    for g in gemms:
        b, m, k, n, kind = g["batch"], g["m"], g["k"], g["n"], g["kind"]
        if g["op"] == "conv":
            if kind == "forward":  # W2 @ cols
                out.append((arr(m, k), arr(b, k, n)))
            elif kind == "weight-grad":  # dy3 @ permute_dims(cols)
                out.append((arr(b, m, k), arr(b, n, k, transposed=True)))
            else:  # W2.T @ dy3
                out.append((arr(k, m, transposed=True), arr(b, k, n)))
        elif kind == "forward":  # x @ W
            out.append((arr(m, k), arr(k, n)))
        elif kind == "weight-grad":  # x.T @ dy
            out.append((arr(k, m, transposed=True), arr(k, n)))
        else:  # dy @ W.T
            out.append((arr(m, k), arr(n, k, transposed=True)))
    return out


def _measure_network_gemm(wl: Workload, data: Data, lib: str, warmup: int,
                          repeats: int) -> dict[str, Any]:
    rng = np.random.default_rng(1)
    n, n_classes = data.X_train.shape[0], data.n_classes
    bsizes = batch_sizes(wl, n)
    operands = {b: _network_operands(lib, network_gemms(wl, b, n_classes), rng) for b in set(bsizes)}

    def epoch() -> float:
        start = time.perf_counter()
        for b in bsizes:
            for x, y in operands[b]:
                x @ y
        return time.perf_counter() - start

    times = [epoch() for _ in range(warmup + repeats)][warmup:]
    median = statistics.median(times)
    flops = network_epoch_flops(wl, n, n_classes)
    operands.clear()  # free them before the peak's large arrays
    peak = peak_gflops(lib)
    step = wl.batch_size or max(bsizes)  # the shapes of one full minibatch, also on a small data set
    gemms = network_gemms(wl, step, n_classes)
    per_shape = []
    for g, (x, y) in zip(gemms, _network_operands(lib, gemms, rng)):
        rate = _rate(x, y, 2 * g["batch"] * g["m"] * g["k"] * g["n"], 0.05)
        per_shape.append({**g, "gflops": rate, "share_of_peak": rate / peak["gflops"]})
    return {"lib": lib, "epoch_seconds": times, "median_s": median, "flops": flops,
            "gflops": flops / median / 1e9, "step_batch": step, "per_shape": per_shape, "peak": peak}


def measure_gemm(wl: Workload, data: Data, lib: str, warmup: int, repeats: int,
                 threads: int | None = None) -> dict[str, Any]:
    """Time ``repeats`` GEMM-only epochs of ``wl`` with ``lib`` ("numpy" or "torch")."""
    if wl.layers:
        if lib == "torch" and threads:
            import torch

            torch.set_num_threads(threads)
        return _measure_network_gemm(wl, data, lib, warmup, repeats)
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
