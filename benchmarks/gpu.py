"""The GPU benchmark: arraynn on CuPy (fused and generic kernels) and JAX (jit and
eager) against PyTorch eager, on the two benchmark workloads, in one run.

==========  ==================================================  =========================
workload    network and training                                batches
==========  ==================================================  =========================
``seed``    784-50-10 sigmoid/sigmoid, no biases, U(-1, 1)      its 25 fixed minibatches,
            init, SGD lr 0.001 on summed gradients, L2 0.5      and --batches (shuffled)
``modern``  784-256-128-10 ReLU/softmax, biases, He init,       --batches (shuffled)
            Adam lr 1e-3
``cnn``     PyTorch's usual small CNN on 1x28x28 images (two    --batches (shuffled)
            3x3 convolutions of 32 and 64 filters with ReLU
            and 2x2 max pooling, dense 128, dropout 0.3), He
            init, Adam lr 1e-3; only with ``--workloads cnn``
==========  ==================================================  =========================

The workloads, the data, the initial weights and the minibatches are those of
:mod:`benchmarks.workloads` (shared with ``python -m benchmarks.run``); this module
only sets the batch sizes.

Every implementation trains the same network from the same initial weights on the same
batches (the permutation of epoch ``e`` is ``default_rng([0, e])``, as arraynn's
loader draws it), in float32 with TF32 off, with summed losses. PyTorch is eager
``torch.nn`` with autograd and ``torch.optim`` (its default Adam, ``foreach`` on
CUDA); arraynn is :class:`arraynn.NNClassifier`. An epoch's time covers the whole
epoch as a user sees it, from the device being idle to the epoch's loss on the host
(both read it once per epoch, which synchronizes); the first ``--warmup`` epochs
(kernel compilation, allocator warm-up) are not timed; the table gives the median of
``--repeats`` epochs.

The targets (the arraynn-cupy rows of the two dense workloads): at least 1.4x PyTorch
eager's throughput at batch 128 and at least 1.0x at batch 4096. The ``cnn`` rows have
no target: they report where arraynn's convolutions (CuPy's im2col/col2im kernels and
cuBLAS) stand against PyTorch's (cuDNN), whose network is built from the same layers
and initial weights (:func:`benchmarks.conv_step.torch_model`).

    python -m benchmarks.gpu --data-dir DIR --json gpu-bench.json      # on a GPU
    python -m benchmarks.gpu --backends numpy,torch --device cpu --quick   # smoke test

Without ``--data-dir`` the data are synthetic, Fashion-MNIST-shaped (60,000 samples
of 784 features, 10 classes; :func:`benchmarks.workloads.synthetic_data`): the timings
do not depend on the pixel values.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

# JAX would otherwise take 75 % of the GPU's memory at import, next to CuPy and torch.
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")

import numpy as np  # noqa: E402

from .workloads import WORKLOADS, Workload, batch_bounds, initial_weights, load_data, synthetic_data  # noqa: E402

SEED = 0
N_CLASSES = 10  # Fashion-MNIST's (and the synthetic data's)
TARGETS = {128: 1.4, 4096: 1.0}  # arraynn-cupy / torch-eager throughput, by batch size
TARGET_WORKLOADS = ("seed", "modern")  # the workloads the targets are for


@dataclasses.dataclass(frozen=True)
class Config:
    """A workload at one batching: ``batch_size`` shuffled, or its native fixed batches."""

    workload: Workload  # as in WORKLOADS
    batch_size: int | None

    @property
    def batched(self) -> Workload:
        """The workload trained at this batching (what the shared helpers take)."""
        return dataclasses.replace(self.workload, batch_size=self.batch_size,
                                   n_batches=None if self.batch_size is not None
                                   else self.workload.n_batches)

    @property
    def label(self) -> str:
        if self.batch_size is None:
            return f"{self.workload.n_batches} fixed"
        return str(self.batch_size)

    def bounds(self, n: int) -> list[tuple[int, int]]:
        return batch_bounds(self.batched, n)

    @property
    def shuffle(self) -> bool:
        return self.batch_size is not None


def workload_settings(wl: Workload) -> dict[str, Any]:
    """The network and training of ``wl`` as the report gives them."""
    facts = dataclasses.asdict(wl)
    for key in ("batch_size", "n_batches", "warmup", "repeats", "peers"):
        del facts[key]
    return {**facts, "native_batches": wl.n_batches}


# --------------------------------------------------------------------------------------
# data
# --------------------------------------------------------------------------------------
def training_data(data_dir: str | None, samples: int | None) -> tuple[np.ndarray, np.ndarray, str]:
    """Standardized float32 training images and int64 labels, and where they came from."""
    if data_dir:
        data = load_data(data_dir, limit=samples)
        source = "Fashion-MNIST"
    else:
        data = synthetic_data(n_train=samples or 60000, n_test=0, n_features=784,
                              n_classes=N_CLASSES, seed=SEED)
        source = "synthetic Fashion-MNIST-shaped data"
    X, y = data.X_train, data.y_train
    return X, y, f"{source}, {len(X):,} training samples"


# --------------------------------------------------------------------------------------
# trainers: each returns the wall time of every epoch and the last epoch's mean loss
# --------------------------------------------------------------------------------------
def train_arraynn(cfg: Config, X: np.ndarray, y: np.ndarray, epochs: int, backend: str,
                  device: str | None, fused: bool = True, jit: bool = True) -> dict[str, Any]:
    """:class:`arraynn.NNClassifier` on ``backend``; ``fused=False`` turns the fast paths
    (CuPy's fused kernels, NumPy's in-place ufuncs) off, ``jit=False`` JAX's jit."""
    import arraynn
    from arraynn import ops

    be = arraynn.get_backend(backend, device)
    ops.set_fast_paths(fused)
    _set_jit(jit)
    try:
        clf = arraynn.NNClassifier(**cfg.batched.classifier_params(), epochs=epochs,
                                   random_seed=SEED, backend=be, dtype="float32", tf32=False)
        times: list[float] = []
        be.synchronize()
        clf.fit(X, y, callback=lambda c, info: times.append(info["seconds"]))
        used = type(ops.ops_for(be.xp)).__name__
        return {"epoch_seconds": times, "final_loss": clf.loss_curve_[-1], "tf32": clf.tf32_,
                "device": be.device_name, "kernels": used,
                "jit": bool(jit and be.name == "jax")}
    finally:
        ops.set_fast_paths(True)
        _set_jit(True)


def _set_jit(enabled: bool) -> None:
    """JAX's jit on or off (a no-op where JAX is not installed)."""
    import importlib.util

    if importlib.util.find_spec("jax") is not None:
        from arraynn.ops import jax as jax_step

        jax_step.set_jit(enabled)


def train_torch(cfg: Config, X: np.ndarray, y: np.ndarray, epochs: int, device: str) -> dict[str, Any]:
    """The same network in eager PyTorch: ``torch.nn``, autograd, ``torch.optim``.

    Summed losses (``reduction="sum"``) so the gradients are summed over the minibatch;
    the seed workload's sigmoid output as binary cross-entropy on logits against one-hot
    targets (gradient ``sigmoid(z) - y``) and L2 as SGD's ``weight_decay`` (adds
    ``l2 * w`` to the summed gradient, as arraynn does). A workload of layers (``cnn``)
    is its ``torch.nn`` network from arraynn's initial weights
    (:func:`benchmarks.trainers.torch_network`), on images of its ``input_shape``, with
    cuDNN's convolutions on CUDA (TF32 off there too).
    """
    import torch
    import torch.nn.functional as F

    wl = cfg.workload
    dev = torch.device(device)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.set_float32_matmul_precision("highest")
    torch.manual_seed(SEED)
    if wl.layers:
        from .trainers import check_torch_network_workload, torch_network

        check_torch_network_workload(wl)
        model = torch_network(wl, N_CLASSES)
    else:
        model = _torch_mlp(wl, X.shape[1])
    model = model.to(dev)
    model.train()
    if wl.optimizer == "sgd":
        opt = torch.optim.SGD(model.parameters(), lr=wl.learning_rate, weight_decay=wl.l2)
    else:
        opt = torch.optim.Adam(model.parameters(), lr=wl.learning_rate)
    n = X.shape[0]
    Xd = torch.from_numpy(X).to(dev)
    if wl.layers:
        Xd = Xd.reshape(n, *tuple(wl.input_shape or ()))
    yd = torch.from_numpy(y).to(dev)
    bounds = cfg.bounds(n)
    times, value = [], float("nan")
    for epoch in range(epochs):
        _sync_torch(dev)
        start = time.perf_counter()
        perm = None
        if cfg.shuffle:  # the same permutation as arraynn's loader, uploaded once
            perm = torch.from_numpy(np.random.default_rng([SEED, epoch]).permutation(n)).to(dev)
        total = torch.zeros((), device=dev)
        for s, e in bounds:
            if perm is None:
                xb, yb = Xd[s:e], yd[s:e]
            else:
                idx = perm[s:e]
                xb, yb = Xd.index_select(0, idx), yd.index_select(0, idx)
            z = model(xb)
            if wl.output == "softmax":
                loss = F.cross_entropy(z, yb, reduction="sum")
            else:
                loss = F.binary_cross_entropy_with_logits(z, F.one_hot(yb, N_CLASSES).to(z.dtype),
                                                          reduction="sum")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.detach()
        if wl.l2:  # the loss arraynn reports: plus the penalty once per minibatch
            with torch.no_grad():
                total += len(bounds) * 0.5 * wl.l2 * sum(
                    (m.weight * m.weight).sum() for m in model if isinstance(m, torch.nn.Linear))
        value = total.item() / n  # the epoch's one device-to-host copy (synchronizes)
        times.append(time.perf_counter() - start)
    foreach = opt.defaults.get("foreach")
    out = {"epoch_seconds": times, "final_loss": value, "tf32": False, "device": str(dev),
           "optimizer": f"{type(opt).__name__}(foreach={foreach})"}
    if wl.layers:
        out["cudnn"] = bool(dev.type == "cuda" and torch.backends.cudnn.is_available())
    return out


def _torch_mlp(wl: Workload, n_features: int) -> Any:
    """The dense network of ``wl`` in ``torch.nn``, from arraynn's initial weights, biases 0."""
    import torch

    sizes = wl.layer_sizes(n_features, N_CLASSES)
    host = initial_weights(wl, sizes, SEED)
    layers: list[Any] = []
    step = 2 if wl.bias else 1
    for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        lin = torch.nn.Linear(fan_in, fan_out, bias=wl.bias)
        with torch.no_grad():
            lin.weight.copy_(torch.from_numpy(host[step * i].T.copy()))
            if wl.bias:
                lin.bias.zero_()
        layers.append(lin)
        if i < len(sizes) - 2:
            layers.append(torch.nn.ReLU() if wl.activation == "relu" else torch.nn.Sigmoid())
    return torch.nn.Sequential(*layers)


def _sync_torch(dev: Any) -> None:
    import torch

    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


# --------------------------------------------------------------------------------------
# the run
# --------------------------------------------------------------------------------------
def implementations(backends: list[str], device: str, generic: bool,
                    skipped: dict[str, str]) -> list[tuple[str, dict]]:
    """``(row name, how to run it)`` for the requested backends, the peer last.

    JAX is optional: without a JAX that sees the device its rows are left out, and
    ``skipped`` says why.
    """
    impls: list[tuple[str, dict]] = []
    on_gpu = device != "cpu"
    for b in backends:
        if b == "jax":
            import arraynn

            try:
                arraynn.get_backend("jax", "gpu" if on_gpu else "cpu")
            except arraynn.BackendError as exc:
                skipped["arraynn-jax"] = str(exc)
                continue
        if b in ("cupy", "numpy"):
            dev = None
            impls.append((f"arraynn-{b}", dict(kind="arraynn", backend=b, device=dev, fused=True)))
            if generic:
                impls.append((f"arraynn-{b}-generic",
                              dict(kind="arraynn", backend=b, device=dev, fused=False)))
        elif b == "jax":
            dev = "gpu" if on_gpu else "cpu"
            impls.append(("arraynn-jax-jit", dict(kind="arraynn", backend="jax", device=dev, jit=True)))
            impls.append(("arraynn-jax-eager", dict(kind="arraynn", backend="jax", device=dev, jit=False)))
        elif b == "torch":
            pass
        else:
            raise SystemExit(f"unknown backend {b!r}; choose from cupy, numpy, jax, torch")
    if "torch" in backends:
        impls.append(("torch-eager", dict(kind="torch", device="cuda" if on_gpu else "cpu")))
    return impls


def device_description(device: str) -> str:
    if device != "cpu":
        try:
            import cupy

            props = cupy.cuda.runtime.getDeviceProperties(0)
            name = props["name"]
            return name.decode() if isinstance(name, bytes) else str(name)
        except Exception:
            pass
        try:
            import torch

            return torch.cuda.get_device_name(0)
        except Exception:
            return "unknown GPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return f"{line.split(':', 1)[1].strip()} ({os.cpu_count()} CPUs)"
    except OSError:
        pass
    return platform.processor() or "CPU"


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for mod in ("numpy", "cupy", "torch", "jax"):
        if mod in sys.modules:
            out[mod] = getattr(sys.modules[mod], "__version__", "?")
    import arraynn

    out["arraynn"] = arraynn.__version__
    return out


def _emit_row(args: argparse.Namespace, row: dict[str, Any]) -> None:
    """Append a finished row to ``--rows`` (one JSON object a line): a run cut short keeps
    the rows it finished."""
    if getattr(args, "rows", None):
        with open(args.rows, "a") as f:
            f.write(json.dumps(row) + "\n")


def run(args: argparse.Namespace) -> dict[str, Any]:
    X, y, source = training_data(args.data_dir, args.samples)
    epochs = args.warmup + args.repeats
    configs = []
    for name in args.workloads:
        wl = WORKLOADS[name]
        if wl.n_batches is not None and not args.no_native:
            configs.append(Config(wl, None))
        configs += [Config(wl, b) for b in args.batches]
    skipped: dict[str, str] = {}
    impls = implementations(args.backends, args.device, not args.no_generic, skipped)
    for name, why in skipped.items():
        print(f"  {name} left out: {why}", file=sys.stderr)
    rows = []
    for cfg in configs:
        peer = None
        group = []
        for name, how in impls:
            row = {"workload": cfg.workload.name, "batch": cfg.label,
                   "batch_size": cfg.batch_size, "implementation": name}
            try:
                if how["kind"] == "torch":
                    res = train_torch(cfg, X, y, epochs, how["device"])
                else:
                    res = train_arraynn(cfg, X, y, epochs, how["backend"], how["device"],
                                        fused=how.get("fused", True), jit=how.get("jit", True))
            except Exception as exc:  # one failing implementation does not stop the run
                row["error"] = f"{type(exc).__name__}: {exc}"
                print(f"  {cfg.workload.name} batch {cfg.label} {name}: {row['error']}",
                      file=sys.stderr)
                rows.append(row)
                _emit_row(args, row)
                continue
            timed = res.pop("epoch_seconds")[args.warmup:]
            median = statistics.median(timed)
            row.update(res, epoch_seconds=timed, median_seconds=median,
                       samples_per_second=X.shape[0] / median)
            if name == "torch-eager":
                peer = row
            group.append(row)
            rows.append(row)
            _emit_row(args, row)
            print(f"  {cfg.workload.name:6s} batch {cfg.label:>8s}  {name:20s} "
                  f"{median * 1e3:9.1f} ms/epoch", file=sys.stderr, flush=True)
        by_name = {r["implementation"]: r for r in group}
        for fast, slow in (("arraynn-cupy", "arraynn-cupy-generic"),
                           ("arraynn-numpy", "arraynn-numpy-generic"),
                           ("arraynn-jax-jit", "arraynn-jax-eager")):
            if fast in by_name and slow in by_name:
                by_name[fast]["speedup_vs_" + slow] = (by_name[slow]["median_seconds"]
                                                       / by_name[fast]["median_seconds"])
        for row in group:
            if peer is not None and row is not peer:
                row["ratio_vs_torch"] = row["samples_per_second"] / peer["samples_per_second"]
                target = (TARGETS.get(cfg.batch_size) if row["implementation"] == "arraynn-cupy"
                          and cfg.workload.name in TARGET_WORKLOADS else None)
                if target is not None:
                    row["target"] = target
                    row["target_met"] = bool(row["ratio_vs_torch"] >= target)
    met = [r["target_met"] for r in rows if "target_met" in r]
    return {
        "command": "python -m benchmarks.gpu " + " ".join(sys.argv[1:]),
        "device": args.device,
        "hardware": device_description(args.device),
        "versions": versions(),
        "data": source,
        "settings": {"warmup_epochs": args.warmup, "timed_epochs": args.repeats, "dtype": "float32",
                     "tf32": False, "workloads": {k: workload_settings(WORKLOADS[k])
                                                  for k in args.workloads}},
        "targets": {f"batch {b}": f">= {t}x torch-eager (arraynn-cupy)" for b, t in TARGETS.items()},
        "rows": rows,
        "skipped": skipped,
        "all_targets_met": (all(met) if met else None),
    }


def table(report: dict[str, Any]) -> str:
    head = ("workload", "batch", "implementation", "epoch (ms)", "samples/s", "vs torch", "target",
            "met")
    lines = [f"{report['hardware']} ({report['device']}); {report['data']}; median of "
             f"{report['settings']['timed_epochs']} epochs after {report['settings']['warmup_epochs']} "
             "warm-up, float32, TF32 off", "",
             "| " + " | ".join(head) + " |", "|" + "|".join(" --- " for _ in head) + "|"]
    for r in report["rows"]:
        if "error" in r:
            cells = [r["workload"], r["batch"], r["implementation"], "failed: " + r["error"][:60],
                     "", "", "", ""]
        else:
            ratio = r.get("ratio_vs_torch")
            cells = [r["workload"], r["batch"], r["implementation"], f"{r['median_seconds'] * 1e3:.1f}",
                     f"{r['samples_per_second']:,.0f}", "-" if ratio is None else f"{ratio:.2f}x",
                     f">= {r['target']}x" if "target" in r else "-",
                     ("yes" if r["target_met"] else "NO") if "target_met" in r else "-"]
        lines.append("| " + " | ".join(cells) + " |")
    speedups = [f"{r['workload']} batch {r['batch']}: {r['implementation']} against "
                f"{k.removeprefix('speedup_vs_')}: {v:.2f}x the throughput"
                for r in report["rows"] for k, v in r.items() if k.startswith("speedup_vs_")]
    if speedups:
        lines += ["", *speedups]
    for name, why in report.get("skipped", {}).items():
        lines.append(f"{name} left out: {why}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.gpu",
                                 description=__doc__.split("\n\n")[0].replace("\n", " "))
    ap.add_argument("--backends", default="cupy,jax,torch",
                    help="comma-separated: cupy, jax, numpy (arraynn) and torch (the PyTorch eager "
                         "peer); default cupy,jax,torch")
    ap.add_argument("--device", default="cuda", choices=("cuda", "cpu"),
                    help="cuda (default) or cpu (for a smoke test with numpy/jax/torch)")
    ap.add_argument("--workloads", default="seed,modern",
                    help="comma-separated, of seed,modern,cnn (default seed,modern)")
    ap.add_argument("--batches", default="128,4096", help="batch sizes (default 128,4096)")
    ap.add_argument("--no-native", action="store_true",
                    help="skip the seed workload's 25 fixed minibatches")
    ap.add_argument("--no-generic", action="store_true", help="skip the unfused (generic) kernels")
    ap.add_argument("--data-dir", default=None,
                    help="Fashion-MNIST directory (never downloaded); default: synthetic data")
    ap.add_argument("--samples", type=int, default=None, help="training samples (default all)")
    ap.add_argument("--warmup", type=int, default=2, help="untimed epochs (default 2)")
    ap.add_argument("--repeats", type=int, default=5, help="timed epochs (default 5)")
    ap.add_argument("--quick", action="store_true",
                    help="smoke test: 1,024 samples, 1 warm-up and 2 timed epochs")
    ap.add_argument("--strict", action="store_true", help="exit 2 when a target is missed")
    ap.add_argument("--json", default=None, help="write the report as JSON to this path")
    ap.add_argument("--rows", default=None,
                    help="append each row, as it finishes, to this file (JSON lines)")
    args = ap.parse_args(argv)
    args.backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    args.workloads = [w.strip() for w in args.workloads.split(",") if w.strip()]
    unknown = [w for w in args.workloads if w not in WORKLOADS]
    if unknown:
        ap.error(f"unknown workloads {unknown}; choose from {sorted(WORKLOADS)}")
    args.batches = [int(b) for b in args.batches.split(",") if b.strip()]
    if args.quick:
        args.samples = args.samples or 1024
        args.warmup, args.repeats = 1, 2
    if args.warmup < 0 or args.repeats < 1:
        ap.error("--warmup must be >= 0 and --repeats >= 1")
    report = run(args)
    print(table(report))
    if args.json:
        path = Path(args.json)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(report, indent=2) + "\n")
        print(f"\nwrote {path}")
    failed = [r for r in report["rows"] if "error" in r]
    if failed:
        return 1
    if args.strict and report["all_targets_met"] is False:
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
