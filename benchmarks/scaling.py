"""Data-parallel scaling: measured on 1 and 2 ranks here, and a model for N GPUs.

    python -m benchmarks.scaling                       # the model's table
    python -m benchmarks.scaling --measure --data-dir DIR   # also 1 vs 2 ranks, measured

The model of one step of the ``modern`` workload (784-256-128-10, Adam) at global batch
``B`` on ``N`` data-parallel devices:

* compute: ``t_fixed + 6 * (B / N) * P / F``: the forward and backward matrix products
  (about 6 floating-point operations per parameter ``P`` and sample) at an effective
  throughput ``F``, plus a fixed cost per step (kernel launches; a GPU step of this small
  network is launch-bound at small batches);
* one ring allreduce of the flat gradient (``4 * P`` bytes in float32):
  ``2 (N - 1) / N * bytes / bandwidth + 2 (N - 1) * latency``.

The speedup is ``T(1) / T(N)``. The defaults (``--tflops``, ``--fixed-us`` and the
interconnects' bandwidth and latency) are assumptions stated in the output, not
measurements: change them to the figures of the machine at hand.

``--measure`` runs the main job (``arraynn.train --distributed``) under ``mpiexec`` on 1 and
2 ranks and reports their median epoch times (it needs mpi4py and ``mpiexec``:
``pip install "arraynn[mpi]"``).
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

#: Parameters of the modern workload's network (784-256-128-10 with biases).
MODERN_PARAMS = 784 * 256 + 256 + 256 * 128 + 128 + 128 * 10 + 10
#: Interconnects: name -> (bandwidth in bytes/s, latency per ring hop in seconds).
INTERCONNECTS = {
    "NVLink (one node)": (300e9, 5e-6),
    "400 Gb/s network": (50e9, 10e-6),
    "100 Gb/s network": (12.5e9, 10e-6),
}
RANKS = (1, 2, 4, 8, 16, 32, 64)
BATCHES = (128, 1024, 8192)


def step_seconds(batch: int, ranks: int, *, params: int = MODERN_PARAMS, tflops: float = 20.0,
                 fixed_us: float = 150.0, bandwidth: float = 300e9, latency: float = 5e-6) -> float:
    """The model's time of one step at global ``batch`` on ``ranks`` devices."""
    compute = fixed_us * 1e-6 + 6.0 * (batch / ranks) * params / (tflops * 1e12)
    if ranks == 1:
        return compute
    nbytes = 4.0 * params
    allreduce = 2.0 * (ranks - 1) / ranks * nbytes / bandwidth + 2.0 * (ranks - 1) * latency
    return compute + allreduce


def speedup(batch: int, ranks: int, **model: float) -> float:
    """``step_seconds(batch, 1) / step_seconds(batch, ranks)``."""
    return step_seconds(batch, 1, **model) / step_seconds(batch, ranks, **model)


def model_table(tflops: float, fixed_us: float) -> str:
    """The predicted speedups, one markdown table per interconnect."""
    out = [f"Model: modern workload ({MODERN_PARAMS:,} parameters, a {4 * MODERN_PARAMS / 1e6:.2f} MB "
           f"float32 gradient), {tflops:g} TFLOP/s effective per device, {fixed_us:g} us fixed "
           "per step; ring allreduce.", ""]
    for name, (bandwidth, latency) in INTERCONNECTS.items():
        out.append(f"**{name}** ({bandwidth / 1e9:g} GB/s, {latency * 1e6:g} us per hop): "
                   "speedup over one device")
        out.append("")
        out.append("| global batch | " + " | ".join(f"N={n}" for n in RANKS) + " |")
        out.append("| ---: | " + " | ".join("---:" for _ in RANKS) + " |")
        for b in BATCHES:
            model = dict(tflops=tflops, fixed_us=fixed_us, bandwidth=bandwidth, latency=latency)
            cells = [f"{speedup(b, n, **model):.2f}" for n in RANKS]
            out.append(f"| {b} | " + " | ".join(cells) + " |")
        out.append("")
    return "\n".join(out)


def measure(data_dir: str | None, epochs: int, limit: int | None) -> dict[int, float]:
    """Median epoch seconds of ``arraynn.train --distributed`` on 1 and 2 ranks."""
    mpiexec = shutil.which("mpiexec") or str(Path(sys.executable).with_name("mpiexec"))
    if not Path(mpiexec).exists():
        raise SystemExit("--measure needs mpiexec and mpi4py: pip install \"arraynn[mpi]\"")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    out = {}
    with tempfile.TemporaryDirectory(prefix="arraynn-scaling-") as tmp:
        for ranks in (1, 2):
            run = Path(tmp) / f"ranks-{ranks}"
            cmd = [mpiexec, "-n", str(ranks), sys.executable, "-m", "mpi4py", "-m", "arraynn.train",
                   "--distributed", "--epochs", str(epochs), "--no-plots", "--no-progress",
                   "--backend", "numpy", "--out", str(run)]
            if data_dir:
                cmd += ["--data-dir", data_dir]
            if limit:
                cmd += ["--limit", str(limit)]
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=1800)
            if proc.returncode:
                raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stderr[-2000:]}")
            with open(run / "metrics.csv", newline="") as f:
                seconds = [float(r["epoch_seconds"]) for r in csv.DictReader(f)]
            out[ranks] = statistics.median(seconds[1:] if len(seconds) > 1 else seconds)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.scaling", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tflops", type=float, default=20.0,
                   help="effective float32 throughput of one device for this network (default 20)")
    p.add_argument("--fixed-us", type=float, default=150.0,
                   help="fixed cost of one step in microseconds: launches, Python (default 150)")
    p.add_argument("--measure", action="store_true", help="also measure 1 and 2 ranks here")
    p.add_argument("--data-dir", default=None, metavar="DIR",
                   help="Fashion-MNIST for --measure (default: $ARRAYNN_DATA, else the cache)")
    p.add_argument("--epochs", type=int, default=3, help="epochs per measured run (default 3)")
    p.add_argument("--limit", type=int, default=None, help="train on the first N images only")
    args = p.parse_args(argv)
    print(model_table(args.tflops, args.fixed_us))
    if args.measure:
        times = measure(args.data_dir, args.epochs, args.limit)
        print(f"Measured here (default preset, OMP_NUM_THREADS=1, {os.cpu_count()} CPUs): "
              f"1 rank {times[1]:.3f} s per epoch, 2 ranks {times[2]:.3f} s "
              f"(speedup {times[1] / times[2]:.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
