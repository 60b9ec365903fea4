"""Epoch time over a whole long run, and the subnormal numbers in the training state.

    python -m benchmarks.longrun --data-dir DIR               # the best preset, 50 epochs
    python -m benchmarks.longrun --data-dir DIR --epochs 20   # shorter (the schedule too)
    python -m benchmarks.longrun --quick                      # smoke test, synthetic data

It trains the ``best`` preset's network and optimizer (784-512-512-10 ReLU, input
dropout 0.2 and 0.1 after each hidden layer, Adam 1e-3 with cosine decay, batch 128,
L2 0.05) on Fashion-MNIST standardized with the training set's statistics, float32,
as ``python -m arraynn.train --preset best`` does, and after every epoch reads the
training state back to the host (outside the epoch's time) to count its subnormal
values: in each weight matrix, in all the parameters and in each optimizer buffer.

A long run with weight decay once filled the weights and Adam's first moments with
subnormal numbers (40 % of the 512x512 matrix after 50 epochs), and on CPUs that
handle them in microcode (Intel's) the epochs slowed down as they appeared: 3.2 s
at epoch 1, 40.4 s at epoch 50. The optimizers now flush them where they are made
(:func:`arraynn.ops.generic.flush_subnormal`). The report gives the first and last
epochs' times and the ratio of the mean of the last 5 to the mean of epochs 2-6
(the first epoch compiles and warms caches); the goal is a ratio of at most 1.2 and
no subnormal value at the end.

``OPENBLAS_CORETYPE``/``OPENBLAS_L2_SIZE`` are dropped for this command, as for the
other benchmarks. ``--json PATH`` writes every epoch's row.
"""

from __future__ import annotations

from . import cpu_model, drop_blas_pinning

if __name__ == "__main__":
    drop_blas_pinning("benchmarks.longrun")

# ruff: noqa: E402  (the imports below must follow the re-execution)
import argparse
import json
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np


def subnormal_share(x: np.ndarray) -> tuple[int, int]:
    """``(count, size)`` of the subnormal values of a host float array."""
    x = np.asarray(x)
    tiny = np.finfo(x.dtype).smallest_normal
    return int(np.count_nonzero((x != 0) & (np.abs(x) < tiny))), int(x.size)


def state_report(clf: Any) -> dict[str, Any]:
    """The subnormal shares of a fitted classifier's weights and optimizer buffers."""
    be = clf.backend_
    report: dict[str, Any] = {}
    for i, W in enumerate(clf.coefs_):
        n, size = subnormal_share(W)
        report[f"W{i} {W.shape[0]}x{W.shape[1]}"] = n / size
    n, size = subnormal_share(be.to_numpy(clf._state.params))
    report["all parameters"] = n / size
    for name in clf._state.optimizer.buffers:
        n, size = subnormal_share(be.to_numpy(clf._state.opt[name]))
        report[f"optimizer {name}"] = n / size
    return report


def run(data_dir: str | None, epochs: int | None, limit: int | None, seed: int, backend: str,
        quick: bool) -> dict[str, Any]:
    import arraynn
    from arraynn.train.options import PRESETS
    from arraynn.train.training import new_classifier

    from .workloads import load_data, synthetic_data

    cfg = dict(PRESETS["best"])
    cfg["random_seed"] = seed
    if epochs:
        cfg["epochs"] = int(epochs)
    data = synthetic_data(2048, 256) if quick else load_data(data_dir, limit=limit)
    be = arraynn.get_backend(backend, dtype="float32")
    clf = new_classifier(cfg, be, n_classes=data.n_classes)
    clf.set_params(warm_start=False)
    rows: list[dict[str, Any]] = []

    def after_epoch(est: Any, info: dict[str, Any]) -> None:
        row = {"epoch": info["epoch"], "seconds": info["seconds"], "loss": info["loss"],
               **{f"subnormal {k}": v for k, v in state_report(est).items()}}
        rows.append(row)
        worst = max(v for k, v in row.items() if k.startswith("subnormal"))
        print(f"epoch {row['epoch']:3d}  {row['seconds']:6.2f} s  loss {row['loss']:.4f}  "
              f"largest subnormal share {100 * worst:.2f} %", flush=True)

    start = time.perf_counter()
    clf.fit(data.X_train, data.y_train, callback=after_epoch)
    wall = time.perf_counter() - start
    secs = [r["seconds"] for r in rows]
    early = secs[1:6] if len(secs) > 6 else secs[:1]
    late = secs[-5:]
    final = state_report(clf)
    return {
        "benchmark": "longrun", "preset": "best", "epochs": len(rows), "seed": seed,
        "backend": be.describe(), "cpu": cpu_model(), "python": platform.python_version(),
        "numpy": np.__version__, "data": data.source,
        "test_accuracy": float(clf.score(data.X_test, data.y_test)),
        "train_seconds": sum(secs), "wall_seconds": wall,
        "first_epoch_seconds": secs[0], "last_epoch_seconds": secs[-1],
        "early_mean_seconds": float(np.mean(early)), "late_mean_seconds": float(np.mean(late)),
        "late_over_early": float(np.mean(late) / np.mean(early)),
        "final_subnormal_share": final,
        "final_subnormal_values": int(sum(v > 0 for v in final.values())),
        "rows": rows,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.longrun", description=__doc__.split("\n\n")[1],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", help="the Fashion-MNIST files (else $ARRAYNN_DATA, else the cache)")
    ap.add_argument("--epochs", type=int, help="epochs (default the preset's 50)")
    ap.add_argument("--limit", type=int, help="train on the first N images only")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--backend", default="numpy")
    ap.add_argument("--quick", action="store_true", help="synthetic data, 3 epochs")
    ap.add_argument("--json", help="write the result (every epoch's row) here")
    args = ap.parse_args(argv)
    res = run(args.data_dir, 3 if args.quick and not args.epochs else args.epochs, args.limit,
              args.seed, args.backend, args.quick)
    print(f"\n{res['backend']} on {res['cpu']}: {res['epochs']} epochs, "
          f"{res['train_seconds']:.1f} s of training, test accuracy {100 * res['test_accuracy']:.2f} %")
    print(f"epoch time: first {res['first_epoch_seconds']:.2f} s, last {res['last_epoch_seconds']:.2f} s; "
          f"mean of the last 5 / mean of epochs 2-6: {res['late_over_early']:.2f} (goal <= 1.2)")
    print("subnormal share at the end: " + ", ".join(
        f"{k} {100 * v:.3f} %" for k, v in res["final_subnormal_share"].items()))
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
