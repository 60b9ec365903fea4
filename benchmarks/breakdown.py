"""Where an arraynn epoch goes: a profile grouped by phase.

    python -m benchmarks.breakdown --workload modern --epochs 3

Trains the workload with :class:`arraynn.NNClassifier` under :mod:`cProfile` and
groups the time of the last epochs by phase. The forward matrix products are written
as ``@`` in :mod:`arraynn.nn.mlp`, so they are the *own* time of ``MLP._forward``; the
backward ones are the own time of ``MLP.loss_and_grad`` plus NumPy's ``weight_grad``
(which writes into the flat gradient buffer); everything else a step does is a call
into the ops, the optimizer or the loader, and is attributed to it. The GEMM-only epoch of
:mod:`benchmarks.roofline` is printed next to it for comparison.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats

from . import drop_blas_pinning

if __name__ == "__main__":
    drop_blas_pinning("benchmarks.breakdown")

# ruff: noqa: E402
from .roofline import measure_gemm
from .workloads import WORKLOADS, load_data

#: phase -> [(file suffix, function name, how)]: the own time ("own") of the functions
#: named, or their time with everything they call ("cum").
_OPS = "arraynn/ops/numpy.py"
PHASES = {
    "GEMM (forward)": [("arraynn/nn/mlp.py", "_forward", "own")],
    "GEMM (backward)": [("arraynn/nn/mlp.py", "loss_and_grad", "own"),
                        (_OPS, "weight_grad", "cum")],
    # (with Numba, the compiled Adam or momentum loop runs inside it)
    "optimizer update": [("arraynn/nn/optimizers.py", "update", "cum")],
    "activations and derivatives": [(_OPS, "activate", "cum"), (_OPS, "activate_grad", "cum"),
                                    (_OPS, "add_bias", "cum")],
    "loss and output error": [(_OPS, "loss_and_delta", "cum")],
    "bias gradients and penalty": [(_OPS, "bias_grad", "cum"), (_OPS, "penalize", "cum")],
    "one-hot targets": [("arraynn/nn/mlp.py", "one_hot", "cum")],
    "minibatch gather (loader)": [("arraynn/data/loader.py", "epoch", "cum")],
}


def breakdown(workload: str, epochs: int, data_dir: str | None, backend: str = "numpy") -> dict[str, float]:
    """Seconds per epoch of each phase (and ``"epoch"``, ``"other"``)."""
    import arraynn

    wl = WORKLOADS[workload]
    data = load_data(data_dir)
    clf = arraynn.NNClassifier(**wl.classifier_params(), epochs=epochs, random_seed=0,
                               backend=backend)
    clf.fit(data.X_train[:2048], data.y_train[:2048])  # warm up: imports, first allocations
    clf.set_params(warm_start=True, epochs=1 + epochs)
    times: list[float] = []
    profiler = cProfile.Profile()
    profiler.enable()
    clf.fit(data.X_train, data.y_train, callback=lambda c, info: times.append(info["seconds"]))
    profiler.disable()
    stats = pstats.Stats(profiler).stats  # (file, line, name) -> (cc, nc, tt, ct, callers)
    out = {}
    for phase, funcs in PHASES.items():
        total = 0.0
        for (path, _line, name), (_cc, _nc, tt, ct, _callers) in stats.items():
            for f, n, how in funcs:
                if path.replace(os.sep, "/").endswith(f) and name == n:
                    total += tt if how == "own" else ct
        out[phase] = total / len(times)
    out["epoch"] = sum(times) / len(times)
    out["other (Python, loop, loss accumulation)"] = out["epoch"] - sum(
        v for k, v in out.items() if k != "epoch")
    out["GEMM-only epoch (roofline)"] = measure_gemm(wl, data, "numpy", 1, 3)["median_s"]
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks.breakdown", description=__doc__)
    p.add_argument("--workload", choices=list(WORKLOADS), default="modern")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--data-dir", "--data-home", dest="data_dir", default=None, metavar="DIR",
                   help="directory of the Fashion-MNIST files (default: $ARRAYNN_DATA, else the "
                        "cache ~/.cache/arraynn; never downloaded)")
    p.add_argument("--wait-quiet", type=float, default=30.0,
                   help="first wait up to this many seconds for other processes to go quiet")
    args = p.parse_args(argv)
    if args.wait_quiet:
        from .run import wait_for_quiet

        wait_for_quiet(args.wait_quiet)
    out = breakdown(args.workload, args.epochs, args.data_dir)
    epoch = out["epoch"]
    print(f"arraynn (numpy), {args.workload}: {epoch:.3f} s per epoch (mean of {args.epochs}, "
          "under cProfile)\n")
    print("| phase | s per epoch | share |")
    print("| --- | ---: | ---: |")
    for k, v in out.items():
        if k in ("epoch", "GEMM-only epoch (roofline)"):
            continue
        print(f"| {k} | {v:.3f} | {100 * v / epoch:.0f} % |")
    print(f"| **epoch** | **{epoch:.3f}** | 100 % |")
    print(f"\nGEMM-only epoch (the roofline): {out['GEMM-only epoch (roofline)']:.3f} s")


if __name__ == "__main__":
    main()
