"""arraynn's ``best`` preset next to PyTorch's reference dropout MLP on Fashion-MNIST (``--cnn``: a CNN).

    python -m benchmarks.reference                       # both, side by side
    python -m benchmarks.reference --only torch          # the reference alone
    python -m benchmarks.reference --data-dir DIR --preset best --seeds 0,1
    python -m benchmarks.reference --cnn                 # PyTorch's usual small CNN next to --preset cnn
    python -m benchmarks.reference --cnn --preset default --arraynn-args "--layers SPEC --epochs 15"

The reference is the usual PyTorch recipe for Fashion-MNIST with a multilayer
perceptron: 784-512-512-10 ReLU with dropout 0.3 after each hidden layer, PyTorch's
default initial weights, cross-entropy averaged over the batch, Adam (lr 1e-3) with
the learning rate decayed by ``CosineAnnealingLR`` over 30 epochs (one step per
epoch), batches of 128 reshuffled every epoch, inputs standardized per pixel with
the training set's statistics; it trains on all 60,000 training images.

With ``--cnn`` the reference is PyTorch's usual small convolutional network
(:data:`REFERENCE_CNN`) on the 1x28x28 images: ``Conv2d(1, 32, 3, padding=1)``, ReLU,
``MaxPool2d(2)``, ``Conv2d(32, 64, 3, padding=1)``, ReLU, ``MaxPool2d(2)``, Flatten,
``Linear(3136, 128)``, ReLU, ``Dropout(0.3)``, ``Linear(128, 10)``, PyTorch's default
initial weights, cross-entropy averaged over the batch, Adam (lr 1e-3) with
``CosineAnnealingLR`` over 15 epochs, batches of 128 reshuffled every epoch, the same
standardized inputs, all 60,000 training images. The arraynn side is then
``python -m arraynn.train --preset cnn`` unless ``--preset`` names another preset;
``--arraynn-args`` adds flags to that command (``--layers SPEC --epochs N`` give it the
network and the epochs). A preset that arraynn does not have stops the command with a
one-line message before anything runs.

arraynn runs its preset exactly as ``python -m arraynn.train --preset best`` does
(that command, in a fresh process, with a temporary run directory): the ``best``
preset trains on all 60,000 training images like the reference (a preset with a
``val_size`` holds those images out and trains on the rest). Its training time is the
run's ``train_seconds`` (the training loop with its per-epoch metrics, without loading
the data); PyTorch's is its training loop's wall time. The *epoch loop* column (JSON:
``loop_seconds``) gives the epochs' steps alone, on both sides: arraynn's
``epoch_seconds_total`` (its training time less the per-epoch train-subset and
validation accuracy and the checkpoint, which the reference does not have) and the sum
of the reference's epochs. Test accuracy is measured once, after training, on the 10,000
test images.

Each side runs in its own process, one after the other, so neither disturbs the
other. Like :mod:`benchmarks.run`, this command drops ``OPENBLAS_CORETYPE`` and
``OPENBLAS_L2_SIZE`` for itself (re-executing once, before NumPy is imported) so that
it measures the native kernels; the train subprocess inherits that environment.
"""

from __future__ import annotations

from . import cpu_model, drop_blas_pinning

if __name__ == "__main__":
    drop_blas_pinning("benchmarks.reference")

# ruff: noqa: E402  (the imports below must follow the re-execution)
import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

#: The reference's recipe.
REFERENCE = {"hidden": (512, 512), "dropout": 0.3, "learning_rate": 1e-3, "epochs": 30,
             "batch_size": 128}

#: The ``--cnn`` reference's recipe: two 3x3 convolutions ("same" padding) of these filters,
#: each followed by ReLU and 2x2 max pooling, then a dense layer with dropout.
REFERENCE_CNN = {"filters": (32, 64), "kernel_size": 3, "pool": 2, "dense": 128, "dropout": 0.3,
                 "learning_rate": 1e-3, "epochs": 15, "batch_size": 128}

#: arraynn's preset on each side's default: the MLP's, and ``--cnn``'s.
DEFAULT_PRESETS = {"mlp": "best", "cnn": "cnn"}


def _torch_mlp(n_features: int, n_classes: int) -> Any:
    import torch

    h1, h2 = REFERENCE["hidden"]
    p = REFERENCE["dropout"]
    return torch.nn.Sequential(
        torch.nn.Linear(n_features, h1), torch.nn.ReLU(), torch.nn.Dropout(p),
        torch.nn.Linear(h1, h2), torch.nn.ReLU(), torch.nn.Dropout(p),
        torch.nn.Linear(h2, n_classes))


def _torch_cnn(n_classes: int, image: tuple[int, int, int] = (1, 28, 28)) -> Any:
    """:data:`REFERENCE_CNN` in ``torch.nn`` on images of shape ``image``."""
    import torch

    nn = torch.nn
    f1, f2 = REFERENCE_CNN["filters"]
    k, pool = REFERENCE_CNN["kernel_size"], REFERENCE_CNN["pool"]
    c, h, w = image
    flat = f2 * (h // pool // pool) * (w // pool // pool)  # 64 * 7 * 7 = 3136 on 28x28
    return nn.Sequential(
        nn.Conv2d(c, f1, k, padding=k // 2), nn.ReLU(), nn.MaxPool2d(pool),
        nn.Conv2d(f1, f2, k, padding=k // 2), nn.ReLU(), nn.MaxPool2d(pool),
        nn.Flatten(), nn.Linear(flat, REFERENCE_CNN["dense"]), nn.ReLU(),
        nn.Dropout(REFERENCE_CNN["dropout"]), nn.Linear(REFERENCE_CNN["dense"], n_classes))


def train_torch_reference(data_dir: str | None, seed: int = 0, epochs: int | None = None,
                          limit: int | None = None, cnn: bool = False) -> dict[str, Any]:
    """Train the PyTorch reference (see the module docstring; ``cnn``: the small CNN of
    :data:`REFERENCE_CNN`); its time and accuracy."""
    import numpy as np
    import torch

    from .workloads import load_data

    recipe = REFERENCE_CNN if cnn else REFERENCE
    data = load_data(data_dir, limit=limit)
    epochs = int(epochs or recipe["epochs"])
    torch.manual_seed(seed)
    model = _torch_cnn(data.n_classes) if cnn else _torch_mlp(data.X_train.shape[1], data.n_classes)
    opt = torch.optim.Adam(model.parameters(), lr=recipe["learning_rate"])
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs)
    X = torch.from_numpy(data.X_train)
    X_test = torch.from_numpy(data.X_test)
    if cnn:  # the 784-pixel rows as 1x28x28 images
        X, X_test = X.reshape(-1, 1, 28, 28), X_test.reshape(-1, 1, 28, 28)
    y = torch.from_numpy(data.y_train)
    n, bs = X.shape[0], recipe["batch_size"]
    gen = torch.Generator().manual_seed(seed)
    epoch_seconds = []
    start = time.perf_counter()
    for _ in range(epochs):
        t0 = time.perf_counter()
        model.train()
        perm = torch.randperm(n, generator=gen)
        total = torch.zeros(())
        for s in range(0, n, bs):
            idx = perm[s:s + bs]
            opt.zero_grad(set_to_none=True)
            loss = torch.nn.functional.cross_entropy(model(X[idx]), y[idx])
            loss.backward()
            opt.step()
            total += loss.detach()
        sched.step()
        total.item()
        epoch_seconds.append(time.perf_counter() - t0)
    train_seconds = time.perf_counter() - start
    model.eval()
    with torch.no_grad():
        if cnn:  # in chunks: the first convolution's output of 10,000 images is 1 GB
            pred = torch.cat([model(X_test[s:s + 1000]).argmax(dim=1)
                              for s in range(0, X_test.shape[0], 1000)]).numpy()
        else:
            pred = model(X_test).argmax(dim=1).numpy()
    return {"name": "PyTorch reference CNN" if cnn else "PyTorch reference", "train_seconds": train_seconds,
            "loop_seconds": float(sum(epoch_seconds)),
            "test_accuracy": float(np.mean(pred == data.y_test)), "epochs": epochs,
            "n_train": int(n), "epoch_seconds": epoch_seconds,
            "threads": torch.get_num_threads(), "version": f"torch {torch.__version__}"}


def run_arraynn_preset(preset: str, data_dir: str | None, seed: int = 0,
                       extra: list[str] | None = None) -> dict[str, Any]:
    """``python -m arraynn.train --preset PRESET`` in a fresh process; its summary."""
    with tempfile.TemporaryDirectory(prefix="arraynn-reference-") as tmp:
        out = Path(tmp) / "run"
        cmd = [sys.executable, "-m", "arraynn.train", "--preset", preset, "--seed", str(seed),
               "--out", str(out), "--no-plots", "--no-progress", "--no-download", "--backend", "numpy"]
        if data_dir:
            cmd += ["--data-dir", data_dir]
        cmd += list(extra or [])
        print("$ " + " ".join(cmd), flush=True)
        subprocess.run(cmd, check=True)
        summary = json.loads((out / "summary.json").read_text())
    import arraynn

    return {"name": f"arraynn --preset {preset}", "train_seconds": float(summary["train_seconds"]),
            "loop_seconds": float(summary["epoch_seconds_total"]),
            "test_accuracy": float(summary["test_accuracy"]),
            "epochs": summary.get("epochs", summary.get("config", {}).get("epochs")),
            "summary": summary, "version": f"arraynn {arraynn.__version__}"}


def check_preset(preset: str) -> None:
    """Stop with one line when arraynn has no preset ``preset``."""
    from arraynn.train.options import PRESETS

    if preset not in PRESETS:
        raise SystemExit(f"benchmarks.reference: arraynn has no preset {preset!r} (its presets: "
                         f"{', '.join(PRESETS)}); name one with --preset NAME and give the network and "
                         "epochs with --arraynn-args, e.g. --cnn --preset default --arraynn-args "
                         "\"--layers conv32k3same,relu,maxpool2,conv64k3same,relu,maxpool2,flatten,"
                         "dense128,relu,dropout0.3 --epochs 15 --val-size 0 --l2 0\"")


def _worker(args: argparse.Namespace) -> None:
    result = train_torch_reference(args.data_dir, args.seed, args.epochs, args.limit, cnn=args.cnn)
    Path(args.worker).write_text(json.dumps(result))


def _torch_in_subprocess(args: argparse.Namespace, seed: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="torch-reference-") as tmp:
        path = Path(tmp) / "result.json"
        cmd = [sys.executable, "-m", "benchmarks.reference", "--worker", str(path),
               "--seed", str(seed)]
        if args.cnn:
            cmd += ["--cnn"]
        if args.data_dir:
            cmd += ["--data-dir", args.data_dir]
        if args.epochs:
            cmd += ["--epochs", str(args.epochs)]
        if args.limit:
            cmd += ["--limit", str(args.limit)]
        print("$ " + " ".join(cmd), flush=True)
        subprocess.run(cmd, check=True)
        return json.loads(path.read_text())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.reference", description=__doc__.split("\n")[0])
    p.add_argument("--data-dir", default=None, help="Fashion-MNIST files (default: as arraynn finds them)")
    p.add_argument("--cnn", action="store_true",
                   help="PyTorch's usual small CNN (see REFERENCE_CNN) instead of the dropout MLP, "
                        "next to arraynn's --preset (default cnn)")
    p.add_argument("--preset", default=None,
                   help="arraynn's preset (default best; with --cnn, cnn)")
    p.add_argument("--only", choices=("torch", "arraynn"), default=None, help="run one side only")
    p.add_argument("--seeds", default="0", help="comma-separated seeds, each run on both sides")
    p.add_argument("--output", default=None, help="write the results as JSON here")
    p.add_argument("--train-args", "--arraynn-args", dest="train_args", default="", metavar="FLAGS",
                   help="more flags for arraynn's train command, e.g. \"--backend torch\" or "
                        "\"--layers SPEC --epochs 15\"")
    p.add_argument("--epochs", type=int, default=None, help=argparse.SUPPRESS)  # smoke runs
    p.add_argument("--limit", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        _worker(args)
        return 0
    if args.preset is None:
        args.preset = DEFAULT_PRESETS["cnn" if args.cnn else "mlp"]
    if args.only in (None, "arraynn"):
        check_preset(args.preset)
    seeds = [int(s) for s in args.seeds.split(",")]
    rows = []
    for seed in seeds:
        if args.only in (None, "arraynn"):
            extra = ["--epochs", str(args.epochs)] if args.epochs else []
            if args.limit:
                extra += ["--limit", str(args.limit)]
            extra += shlex.split(args.train_args)
            row = {**run_arraynn_preset(args.preset, args.data_dir, seed, extra), "seed": seed}
            if args.cnn:
                row["train_args"] = extra
            rows.append(row)
        if args.only in (None, "torch"):
            rows.append({**_torch_in_subprocess(args, seed), "seed": seed})
    cpus = os.cpu_count()
    print(f"\nCPU: {cpu_model()} ({cpus} logical CPUs); OPENBLAS_CORETYPE "
          f"{'set' if 'OPENBLAS_CORETYPE' in os.environ else 'unset'}")
    print(f"{'':32s} {'seed':>4s} {'test accuracy':>14s} {'training time':>14s} {'epoch loop':>11s}")
    for r in rows:
        print(f"{r['name']:32s} {r['seed']:4d} {100 * r['test_accuracy']:13.2f}% "
              f"{r['train_seconds']:13.1f}s {r['loop_seconds']:10.1f}s")
    if args.output:
        report: dict[str, Any] = {"cpu": cpu_model(), "cpus": cpus, "rows": rows}
        if args.cnn:
            report.update(mode="cnn", reference=REFERENCE_CNN)
        Path(args.output).write_text(json.dumps(report, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
