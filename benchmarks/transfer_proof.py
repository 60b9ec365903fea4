"""Prove that a training epoch copies nothing between host and device but what it must.

One epoch of the ``modern`` network (784-256-128-10 ReLU, softmax, Adam, batch 128) is
run the way :class:`arraynn.NNClassifier` runs it (the device-resident loader, the
generic MLP step, the optimizer), on synthetic Fashion-MNIST-shaped data, and every
copy is counted three ways where the backend allows:

* arraynn's own counter (:func:`arraynn.count_transfers`), on every backend;
* on CuPy, the step loop runs under ``cupyx.allow_synchronize(False)``: any
  device-to-host copy (which synchronizes) would raise;
* on torch CUDA, the torch profiler counts the ``Memcpy HtoD`` / ``Memcpy DtoH``
  operations the GPU executed.

Expected per epoch: one host-to-device copy (the permutation) and one device-to-host
copy (the epoch's loss). The script prints a JSON report and exits 1 if more happened.

    python -m benchmarks.transfer_proof --backend cupy
    python -m benchmarks.transfer_proof --backend torch --device cuda
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys

import numpy as np

import arraynn
from arraynn.data.loader import DataLoader
from arraynn.nn import MLP, Adam


def run_epoch(be, loader, mlp, opt, params, state, epoch):
    total, grad_buffer = None, be.xp.empty_like(params)
    for Xb, yb in loader.epoch(epoch):
        Yb = mlp.one_hot(yb, be.dtype)
        params, state, loss = mlp.train_step(params, opt, state, Xb, Yb, 1e-3,
                                             grad_buffer=grad_buffer)
        total = loss if total is None else total + loss
    return params, state, total


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backend", default="numpy")
    ap.add_argument("--device", default=None)
    ap.add_argument("--samples", type=int, default=60000)
    ap.add_argument("--batch-size", type=int, default=128)
    args = ap.parse_args(argv)

    be = arraynn.get_backend(args.backend, args.device)
    rng = np.random.default_rng(0)
    X = rng.integers(0, 256, size=(args.samples, 784), dtype=np.uint8)
    y = rng.integers(0, 10, size=args.samples)
    loader = DataLoader(X, y, backend=be, batch_size=args.batch_size, shuffle=True, seed=0,
                        transform=lambda a: (a - 127.5) / 73.0)
    mlp = MLP((784, 256, 128, 10), activation="relu", output="softmax", bias=True)
    params = mlp.init_params(be, np.random.default_rng(1), "he")
    opt = Adam()
    state = opt.init(params)

    # Warm-up epoch: compiles kernels, fills allocator pools.
    params, state, total = run_epoch(be, loader, mlp, opt, params, state, 0)
    be.to_float(total)
    be.synchronize()

    guard = contextlib.nullcontext()
    if be.name == "cupy":
        import cupyx

        guard = cupyx.allow_synchronize(False)
    profiler = None
    if be.name == "torch" and be.device.type == "cuda":
        import torch

        profiler = torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA])
        profiler.start()

    with arraynn.count_transfers() as counted:
        with guard:
            params, state, total = run_epoch(be, loader, mlp, opt, params, state, 1)
        loss = be.to_float(total) / args.samples  # the epoch's one read-back
    be.synchronize()

    report = {
        "backend": be.describe(),
        "steps": len(loader),
        "counted": {"host_to_device": counted.host_to_device,
                    "host_to_device_bytes": counted.host_to_device_bytes,
                    "device_to_host": counted.device_to_host},
        "loss": loss,
        "synchronize_guard": be.name == "cupy",
    }
    ok = counted.host_to_device == 1 and counted.device_to_host <= 1
    if profiler is not None:
        profiler.stop()
        names = [e.name for e in profiler.events()]
        htod = sum("HtoD" in n for n in names)
        dtoh = sum("DtoH" in n for n in names)
        report["torch_profiler"] = {"memcpy_htod": htod, "memcpy_dtoh": dtoh}
        ok = ok and htod <= 1 and dtoh <= 1
    report["ok"] = bool(ok)
    print(json.dumps(report, indent=2))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
