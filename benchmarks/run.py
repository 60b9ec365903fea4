"""Benchmark arraynn against PyTorch and scikit-learn on the benchmark workloads.

    python -m benchmarks.run                      # seed and modern, every CPU backend
    python -m benchmarks.run --workloads modern --backends numpy
    python -m benchmarks.run --workloads cnn      # the small CNN (about half an hour)
    python -m benchmarks.run --quick              # a few seconds on synthetic data
    python -m benchmarks.run --quick --workloads cnn --limit 64   # the CNN on 64 synthetic samples

For each workload (see :mod:`benchmarks.workloads`) it times, each in a fresh
process so that no thread pool or cache of one run disturbs another (and each keeping
freed memory for reuse, :func:`arraynn.reuse_freed_memory`, as ``python -m arraynn.train``
does):

* arraynn on every requested backend, and on NumPy also with its fast paths off
  (the generic Array API kernels) and, where Numba is installed, without Numba's
  compiled optimizer updates (what a NumPy-only install runs);
* plain NumPy: the same math hand-written with NumPy (the reference for the cost of
  the Array API layer);
* PyTorch on the CPU, and scikit-learn's ``MLPClassifier`` (``modern`` only);
* the GEMM roofline: the epoch's matrix products alone, with NumPy and with torch.

``cnn`` (PyTorch's usual small CNN, see :mod:`benchmarks.workloads`) is not in the
default run; it runs on arraynn and PyTorch only (plain NumPy and scikit-learn have no
convolutional network), and its table also gives the im2col matrix products of one
batch-128 step, each one's throughput and its share of the library's peak (a large
square product).

Every implementation trains ``--warmup`` untimed epochs, then ``--repeats`` timed
ones; the table gives the median epoch time, samples per second, the ratios to the
peers, the share of the GEMM roofline and the test accuracy after all epochs. The
same numbers, the machine and the thread pools (threadpoolctl) go to
``benchmarks/results/latest.json``.

``OPENBLAS_CORETYPE`` and ``OPENBLAS_L2_SIZE`` pin OpenBLAS to old kernels on the
project's machines; this command drops them for itself (re-executing once, before
NumPy is imported) so that it measures the native kernels. Tests and CI keep them.
"""

from __future__ import annotations

from . import BLAS_PINNING, drop_blas_pinning

if __name__ == "__main__":
    drop_blas_pinning("benchmarks.run")

# ruff: noqa: E402  (the imports below must follow the re-execution)
import argparse
import datetime
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from .workloads import DEFAULT_WORKLOADS, WORKLOADS, Data, load_data, synthetic_data

#: Where a run writes its JSON unless told otherwise (ignored by git); a run is recorded in
#: the repository only on purpose: ``--output benchmarks/results/latest.json``.
SCRATCH = Path(__file__).resolve().parents[1] / ".benchmarks"
CPU_BACKENDS = ("numpy", "torch")
ALL_PEERS = ("numpy", "torch", "sklearn")
BUSY = 0.1  # other processes' share of the CPUs above which a measurement is redone
PEER_LABELS = {"torch": "PyTorch", "sklearn": "scikit-learn", "numpy": "plain NumPy"}


# --------------------------------------------------------------------------------------
# One measurement (run in a worker process, or in this one with --in-process)
# --------------------------------------------------------------------------------------
def _cpu_snapshot() -> tuple[float, float] | None:
    """(busy CPU seconds of the whole machine, CPU seconds of this process)."""
    try:
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
    except OSError:
        return None
    hz = os.sysconf("SC_CLK_TCK")
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    t = os.times()
    return (sum(fields) - idle) / hz, t.user + t.system


def _machine_busy(seconds: float = 1.0) -> float | None:
    """The share of the machine's CPU time used over ``seconds`` (None off Linux)."""
    a = _cpu_snapshot()
    time.sleep(seconds)
    b = _cpu_snapshot()
    if a is None or b is None:
        return None
    return ((b[0] - a[0]) - (b[1] - a[1])) / (seconds * (os.cpu_count() or 1))


def wait_for_quiet(limit: float, threshold: float = 0.1) -> float | None:
    """Wait (at most ``limit`` seconds) until other processes use < ``threshold`` of the CPUs."""
    deadline = time.monotonic() + limit
    busy = None
    while time.monotonic() < deadline:
        busy = _machine_busy()
        if busy is None or busy < threshold:
            break
    return busy


def _threadpools() -> list[dict[str, Any]]:
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return [{"error": "threadpoolctl is not installed"}]
    keep = ("user_api", "internal_api", "prefix", "version", "architecture", "num_threads",
            "threading_layer")
    return [{k: info[k] for k in keep if k in info} for info in threadpool_info()]


def measure(task: dict[str, Any], data: Data) -> dict[str, Any]:
    """Run one task: ``{"kind": "train"|"gemm", "workload", "impl", ...}``."""
    from . import roofline, trainers

    wl = WORKLOADS[task["workload"]]
    before = _cpu_snapshot()
    wall = time.perf_counter()
    if task["kind"] == "gemm":
        out = roofline.measure_gemm(wl, data, task["lib"], task["warmup"], task["repeats"],
                                    task.get("threads"))
    else:
        trainer = trainers.TRAINERS[task["impl"]]
        options = {k: task[k] for k in ("backend", "kernels", "threads") if k in task}
        out = trainer(wl, data, task["warmup"] + task["repeats"], **options)
        timed = out["epoch_seconds"][task["warmup"]:]
        out["timed_seconds"] = timed
        out["median_s"] = statistics.median(timed)
        out["samples_per_s"] = data.X_train.shape[0] / out["median_s"]
    wall = time.perf_counter() - wall
    after = _cpu_snapshot()
    if before and after:
        ncpu = os.cpu_count() or 1
        others = (after[0] - before[0]) - (after[1] - before[1])
        out["other_load"] = max(0.0, others / (wall * ncpu))
    out["threadpools"] = _threadpools()
    return {**task, **out}


def _worker(argv: list[str]) -> None:
    from arraynn import reuse_freed_memory

    reuse_freed_memory()  # as python -m arraynn.train does; every peer's worker alike
    task = json.loads(argv[0])
    data = Data.load(Path(argv[1]))
    result = measure(task, data)
    Path(argv[2]).write_text(json.dumps(result))


def _run_task(task: dict[str, Any], data: Data, data_dir: Path | None, in_process: bool,
              timeout: float) -> dict[str, Any]:
    if in_process:
        return measure(task, data)
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as f:
        out = Path(f.name)
    try:
        cmd = [sys.executable, "-m", "benchmarks.run", "--worker", json.dumps(task),
               str(data_dir), str(out)]
        proc = subprocess.run(cmd, cwd=Path(__file__).resolve().parents[1], timeout=timeout,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if proc.returncode != 0:
            tail = "\n".join(proc.stdout.strip().splitlines()[-15:])
            return {**task, "error": f"worker exited with {proc.returncode}:\n{tail}"}
        return json.loads(out.read_text())
    except subprocess.TimeoutExpired:
        return {**task, "error": f"timed out after {timeout:.0f} s"}
    finally:
        out.unlink(missing_ok=True)


# --------------------------------------------------------------------------------------
# Planning, ratios and the table
# --------------------------------------------------------------------------------------
def _available(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def _label(r: dict[str, Any]) -> str:
    if r["impl"] == "arraynn":
        extra = {"generic": ", generic kernels", "ufuncs": ", no Numba"}.get(r.get("kernels"), "")
        return f"arraynn ({r['backend']}{extra})"
    return PEER_LABELS[r["impl"]]


def plan(workloads: list[str], backends: list[str], peers: list[str], warmup: int | None,
         repeats: int | None, epochs: int | None, threads: int, generic: bool) -> list[dict[str, Any]]:
    """The tasks of one run, in order."""
    tasks = []
    for name in workloads:
        wl = WORKLOADS[name]
        w = wl.warmup if warmup is None else warmup
        r = wl.repeats if repeats is None else repeats
        if epochs is not None:
            r = epochs - w
            if r < 1:
                raise SystemExit(f"--epochs {epochs} leaves no timed epoch after {w} warm-up epochs")
        common = {"workload": name, "warmup": w, "repeats": r, "threads": threads}
        gemm_r = max(3, min(r, 5))
        tasks.append({"kind": "gemm", "impl": "gemm", "lib": "numpy", **common, "repeats": gemm_r})
        if "torch" in backends or "torch" in peers:
            tasks.append({"kind": "gemm", "impl": "gemm", "lib": "torch", **common, "repeats": gemm_r})
        for be in backends:
            tasks.append({"kind": "train", "impl": "arraynn", "backend": be, "kernels": "auto", **common})
            if be == "numpy" and _available("numba"):  # the fast path with NumPy's ufuncs only
                tasks.append({"kind": "train", "impl": "arraynn", "backend": be,
                              "kernels": "ufuncs", **common})
            if be == "numpy" and generic:
                tasks.append({"kind": "train", "impl": "arraynn", "backend": be,
                              "kernels": "generic", **common})
        for peer in peers:
            if peer in wl.all_peers:
                tasks.append({"kind": "train", "impl": peer, **common})
    return tasks


def summarize(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Group by workload; add ratios to the peers and roofline shares."""
    out: dict[str, Any] = {}
    for name in dict.fromkeys(r["workload"] for r in results):
        rows = [r for r in results if r["workload"] == name]
        gemm = {r["lib"]: r for r in rows if r["kind"] == "gemm" and "error" not in r}
        train = [r for r in rows if r["kind"] == "train"]
        peers = {r["impl"]: r for r in train if r["impl"] != "arraynn" and "error" not in r}
        for r in train:
            r["label"] = _label(r)
            if "error" in r:
                continue
            r["ratio"] = {p: r["median_s"] / peer["median_s"] for p, peer in peers.items()}
            lib = "torch" if (r["impl"] == "torch" or r.get("backend") == "torch") else "numpy"
            if lib in gemm:
                r["gemm_lib"] = lib
                r["roofline_share"] = gemm[lib]["median_s"] / r["median_s"]
        wl = WORKLOADS[name]
        out[name] = {"description": wl.describe(), "gemm": gemm, "results": train}
        if wl.not_compared:
            out[name]["not_compared"] = wl.not_compared
    return out


def _fmt(x: float | None, spec: str) -> str:
    return "-" if x is None else format(x, spec)


def table(summary: dict[str, Any], data_source: str) -> str:
    """The results as Markdown tables, one per workload."""
    lines = []
    for name, s in summary.items():
        first = next((r for r in s["results"] if "error" not in r), None)
        reps = f"median of {first['repeats']} epochs after {first['warmup']} warm-up" if first else ""
        lines.append(f"### `{name}`: {s['description']}")
        lines.append("")
        lines.append(f"{data_source}; {reps}.")
        lines.append("")
        lines.append("| implementation | epoch (s) | samples/s | vs PyTorch | vs scikit-learn "
                     "| vs plain NumPy | GEMM roofline | test accuracy |")
        lines.append("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
        for r in s["results"]:
            if "error" in r:
                msg = r["error"].strip().splitlines()[-1]
                lines.append(f"| {r['label']} | failed: {msg} | | | | | | |")
                continue
            ratio = r["ratio"]
            share = r.get("roofline_share")
            lines.append(
                f"| {r['label']} | {r['median_s']:.3f} | {r['samples_per_s']:,.0f} "
                f"| {_fmt(ratio.get('torch'), '.2f')} | {_fmt(ratio.get('sklearn'), '.2f')} "
                f"| {_fmt(ratio.get('numpy'), '.2f')} "
                f"| {_fmt(None if share is None else 100 * share, '.0f')}"
                f"{'' if share is None else ' % (' + r['gemm_lib'] + ')'} "
                f"| {100 * r['accuracy']:.2f} % |")
        lines.append("")
        if s.get("not_compared"):
            lines.append(f"Not compared: {s['not_compared']}.")
            lines.append("")
        for lib, g in s["gemm"].items():
            lines.append(f"GEMM roofline ({lib}): the epoch's matrix products alone take "
                         f"{g['median_s']:.3f} s, {g['flops'] / 1e9:.1f} GFLOP at "
                         f"{g['gflops']:.1f} GFLOP/s.")
        lines += _step_shapes_table(s["gemm"])
        busy = [r for r in s["results"] + list(s["gemm"].values()) if r.get("other_load", 0) > BUSY]
        if busy:
            worst = max(r["other_load"] for r in busy)
            lines.append(f"**Warning**: other processes used up to {100 * worst:.0f} % of the "
                         "machine during this workload; its times are not reliable.")
        lines.append("")
    return "\n".join(lines)


def _step_shapes_table(gemm: dict[str, Any]) -> list[str]:
    """For a network of layers: each matrix product of one step, its throughput per library
    and its share of that library's peak (see :func:`benchmarks.roofline.peak_gflops`)."""
    libs = [lib for lib, g in gemm.items() if "peak" in g]
    if not libs:
        return []
    first = gemm[libs[0]]
    peaks = ", ".join(f"{lib} {gemm[lib]['peak']['gflops']:.1f} GFLOP/s" for lib in libs)
    side = first["peak"]["m"]
    lines = ["", f"The im2col matrix products of one batch-{first['step_batch']} step (as arraynn makes "
             f"them: a convolution's per sample, `batch` of them in one matmul call), and their share "
             f"of the peak, the float32 {side}x{side} @ {side}x{side} product ({peaks}):", "",
             "| layer | product | batch x (m, k) @ (k, n) | GFLOP per step | "
             + " | ".join(f"{lib} GFLOP/s | {lib} share of peak" for lib in libs) + " |",
             "| --- | --- | --- | ---: | " + " | ".join("---: | ---:" for _ in libs) + " |"]
    for i, g in enumerate(first["per_shape"]):
        cells = []
        for lib in libs:
            row = gemm[lib]["per_shape"][i]
            cells.append(f"{row['gflops']:.1f} | {100 * row['share_of_peak']:.0f} %")
        lines.append(f"| {g['layer']} | {g['kind']} | {g['batch']} x ({g['m']}, {g['k']}) @ "
                     f"({g['k']}, {g['n']}) | {2 * g['batch'] * g['m'] * g['k'] * g['n'] / 1e9:.3f} | "
                     + " | ".join(cells) + " |")
    return lines + [""]


def machine_info() -> dict[str, Any]:
    info: dict[str, Any] = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "cpu_model": platform.processor() or None,
        "env": {k: os.environ.get(k) for k in (*BLAS_PINNING, "OMP_NUM_THREADS",
                                                "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")},
    }
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    info["cpu_model"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    versions = {}
    for mod in ("numpy", "array_api_compat", "torch", "sklearn", "threadpoolctl", "numba"):
        try:
            versions[mod] = __import__(mod).__version__
        except ImportError:
            versions[mod] = None
    import arraynn

    versions["arraynn"] = arraynn.__version__
    info["versions"] = versions
    return info


# --------------------------------------------------------------------------------------
# The command
# --------------------------------------------------------------------------------------
def _csv(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.run",
                                description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workloads", type=_csv, default=list(DEFAULT_WORKLOADS),
                   help=f"comma-separated, of {','.join(WORKLOADS)} (default "
                        f"{','.join(DEFAULT_WORKLOADS)}; cnn, a small convolutional network, takes "
                        "1-3 minutes per epoch and implementation on all 60,000 images on two cores, "
                        "about half an hour in all)")
    p.add_argument("--backends", type=_csv, default=None,
                   help="arraynn backends, comma-separated (default: those of numpy,torch "
                        "installed; array_api_strict and jax are allowed but slow)")
    p.add_argument("--peers", type=_csv, default=None,
                   help="comma-separated: numpy (plain NumPy), torch, sklearn (default: all installed)")
    p.add_argument("--no-generic", dest="generic", action="store_false",
                   help="skip arraynn on NumPy with the fast paths off")
    p.add_argument("--warmup", type=int, default=None, help="untimed epochs (default per workload)")
    p.add_argument("--repeats", type=int, default=None,
                   help="timed epochs; the table gives their median (default per workload)")
    p.add_argument("--epochs", type=int, default=None,
                   help="total epochs per implementation: --warmup plus the timed ones")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                   help="torch's intra-op threads (default: the CPU count)")
    p.add_argument("--data-dir", "--data-home", dest="data_dir", default=None, metavar="DIR",
                   help="directory of the Fashion-MNIST files (default: $ARRAYNN_DATA, else the "
                        "cache ~/.cache/arraynn; never downloaded)")
    p.add_argument("--limit", type=int, default=None,
                   help="use only the first N training images (with --quick: N synthetic training "
                        "samples and at most N test samples instead of 768 and 256)")
    p.add_argument("--quick", action="store_true",
                   help="a smoke test: small synthetic data, 1 warm-up and 2 timed epochs, in-process")
    p.add_argument("--in-process", action="store_true",
                   help="run every measurement in this process (faster to start, less isolated)")
    p.add_argument("--output", type=Path, default=None,
                   help="where to write the JSON (default .benchmarks/latest.json, or "
                        ".benchmarks/quick.json with --quick, both ignored by git; record a run "
                        "with --output benchmarks/results/latest.json)")
    p.add_argument("--timeout", type=float, default=None,
                   help="seconds per measurement (default per workload: "
                        + ", ".join(f"{n} {wl.timeout:.0f}" for n, wl in WORKLOADS.items()) + ")")
    p.add_argument("--retries", type=int, default=2,
                   help="measure again (up to N times) when other processes used more than "
                        f"{100 * BUSY:.0f} %% of the CPUs meanwhile; the quietest attempt is kept")
    p.add_argument("--wait-quiet", type=float, default=30.0,
                   help="before each measurement, wait up to this many seconds for the other "
                        "processes to go quiet (0: do not wait)")
    return p


def main(argv: list[str] | None = None) -> dict[str, Any]:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["--worker"]:
        _worker(argv[1:])
        return {}
    args = build_parser().parse_args(argv)
    unknown = [w for w in args.workloads if w not in WORKLOADS]
    if unknown:
        raise SystemExit(f"unknown workload(s) {unknown}; choose from {list(WORKLOADS)}")
    backends = args.backends or [b for b in CPU_BACKENDS if _available(b)]
    peers = args.peers if args.peers is not None else [p for p in ALL_PEERS if _available(p)]
    bad = [p for p in peers if p not in ALL_PEERS]
    if bad:
        raise SystemExit(f"unknown peer(s) {bad}; choose from {list(ALL_PEERS)}")
    warmup, repeats, epochs = args.warmup, args.repeats, args.epochs
    if args.quick:
        warmup = 1 if warmup is None else warmup
        repeats = 2 if repeats is None else repeats
    in_process = args.in_process or args.quick
    if args.quick:
        args.retries, args.wait_quiet = 0, 0.0
    if args.output is None:
        args.output = SCRATCH / ("quick.json" if args.quick else "latest.json")

    if args.quick:
        data = synthetic_data() if not args.limit else synthetic_data(args.limit, min(256, args.limit))
    else:
        data = load_data(args.data_dir, limit=args.limit)

    tasks = plan(args.workloads, backends, peers, warmup, repeats, epochs, args.threads, args.generic)
    results = []
    with tempfile.TemporaryDirectory(prefix="arraynn-bench-") as tmp:
        data_dir = None
        if not in_process:
            data_dir = Path(tmp)
            data.save(data_dir)
        for task in tasks:
            what = task["lib"] if task["kind"] == "gemm" else _label(task)
            best = None
            for attempt in range(1 + args.retries):
                if args.wait_quiet:
                    wait_for_quiet(args.wait_quiet)
                print(f"[{task['workload']}] {task['kind']}: {what} ...", end=" ", flush=True)
                timeout = args.timeout or WORKLOADS[task["workload"]].timeout
                r = _run_task(task, data, data_dir, in_process, timeout)
                load = r.get("other_load", 0.0)
                print("failed" if "error" in r else
                      f"{r['median_s']:.3f} s (other processes: {100 * load:.0f} % of the CPUs)",
                      flush=True)
                if best is None or ("error" not in r and load < best.get("other_load", 1.0)):
                    best = r
                if "error" in r or load <= BUSY or attempt == args.retries:
                    break
                print(f"    the machine was busy; measuring again ({attempt + 1}/{args.retries})")
            r = best
            r["attempts"] = attempt + 1
            results.append(r)

    summary = summarize(results)
    machine = machine_info()
    machine["threadpools"] = {f"{r['lib']} GEMM worker": r["threadpools"]
                              for r in results if r["kind"] == "gemm" and "threadpools" in r}
    command = "python -m benchmarks.run" + ("" if not argv else " " + shlex.join(argv))
    report = {
        "command": command,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "data": data.source,
        "machine": machine,
        "workloads": summary,
    }
    text = table(summary, data.source)
    print()
    print(text)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=1) + "\n")
    print(f"written to {args.output}")
    return report


if __name__ == "__main__":
    main()
