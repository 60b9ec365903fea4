"""One training step of a convolutional network: arraynn on NumPy and torch next to ``torch.nn``.

    python -m benchmarks.conv_step                      # the candidate network, batch 128
    python -m benchmarks.conv_step --breakdown          # and where arraynn's NumPy step goes, per layer
    python -m benchmarks.conv_step --layers conv16k5,relu,maxpool2,flatten,dense64,relu --steps 50
    python -m benchmarks.conv_step --quick              # smoke test: a tiny network, a few seconds

The network is ``--layers`` (the layer spec syntax of :mod:`arraynn.nn.layer_spec`;
default the candidate ``conv32k3same,relu,maxpool2,conv64k3same,relu,maxpool2,flatten,
dropout0.3,dense128,relu,dropout0.3``) followed by the output layer ``Dense(10)``, as
:class:`arraynn.NNClassifier` adds it, on 1x28x28 float32 images, softmax cross-entropy
summed over the minibatch, He initial weights, Adam (lr 1e-3), dropout on wherever the
spec has it. One *step* is what the epoch loop runs per minibatch: the dropout masks,
forward, loss and error term, backward and the optimizer update, on a minibatch already
on the device (``--batch-size``, default 128; 4 fixed minibatches of N(0, 1) images, like
standardized pixels, and random labels, used in turn). The peers:

* ``numpy``: arraynn on NumPy with its fast paths (strided-view im2col and one matrix
  product per convolution over the whole batch, in-place ufuncs and, where Numba is
  installed, compiled col2im, max pooling, batch normalisation and Adam);
* ``numpy-generic``: arraynn on NumPy with every fast path off
  (:func:`arraynn.ops.set_fast_paths` ``(False)``, restored after each block): the plain
  Array API code (im2col from slices and ``stack``, col2im by dilation and padding);
* ``torch``: arraynn on torch (CPU), fast paths on (``unfold``/``fold``);
* ``pytorch``: the reference, the same network in ``torch.nn`` (``Conv2d``, ``MaxPool2d``,
  ``AvgPool2d``, ``AdaptiveAvgPool2d``, ``Flatten``, ``Linear``, ``ReLU``, ``Dropout``, ...)
  built from the same spec with the same initial weights, ``cross_entropy(...,
  reduction="sum")``, autograd, ``torch.optim.Adam`` (its default implementation) and
  ``zero_grad(set_to_none=True)``.

**Time.** All peers are built in one process; ``--repeats`` rounds each run every peer's
block in turn (the order rotated every round, so the host's drift hits all alike): a
block is ``--warmup`` untimed steps, then ``--steps`` steps timed one by one with
``time.perf_counter`` (every library here computes synchronously on the CPU). The table
gives the median and the minimum of all ``steps * repeats`` timed steps, and the median's
ratio to PyTorch's. ``--threads`` (default: all cores) sets ``torch.set_num_threads`` and,
through threadpoolctl where it is installed, the BLAS threads.

**Memory.** Each peer's memory is measured in a fresh process (``python -m
benchmarks.conv_step --memory-of PEER ...``, which the command starts itself), the same
way for every peer: after ``--warmup`` steps (at least 2, so PyTorch's Adam has made its
state), the kernel's peak resident set size of the process is reset just before one
training step (``5`` written to ``/proc/self/clear_refs``) and read just after it
(``VmHWM`` in ``/proc/self/status``); the step's peak is that high-water mark minus the
RSS just before the step: the memory the step needs beyond what persists between steps
(parameters, optimizer state, the minibatch, arraynn's flat gradient buffer, which its
epoch loop allocates once; PyTorch's ``.grad`` tensors are made inside the step). The
kernel keeps the mark at every page fault, so no peak is missed, however short. The
figure is the largest of 3 such steps. Where the kernel does not allow the reset (Linux
before 4.0, or no ``/proc``), a thread samples ``/proc/self/statm`` every 0.5 ms instead
(``sys.setswitchinterval(1e-4)`` so it gets the GIL), which gives a lower bound; each
peer's ``memory.method`` says which was used. Those processes run with glibc's
``MALLOC_MMAP_THRESHOLD_`` and ``MALLOC_TRIM_THRESHOLD_`` fixed at 128 KiB: otherwise
glibc raises its mmap threshold after the first large frees and keeps freed arrays in its
heap, and the RSS of a warm process no longer shows a step's temporaries. (The timed
process calls :func:`arraynn.reuse_freed_memory`, as ``python -m arraynn.train`` does, so
no peer's step pays for page faults there.)

``--breakdown [PEERS]`` (default ``numpy``) also times each layer's ``forward`` and
``backward`` (called directly, as :meth:`arraynn.nn.Sequential.loss_and_grad` calls
them, but one by one: a BatchNorm and the MaxPool2D after it show apart, where the
training step fuses them on NumPy), the masks, the loss head, the gradient packing and
the update, median over ``--steps`` steps.

Like the other benchmarks, this command drops ``OPENBLAS_CORETYPE`` and
``OPENBLAS_L2_SIZE`` for itself (re-executing once, before NumPy is imported). It prints
a Markdown table and writes everything (every step time, the machine, the CPU model,
library versions, thread pools, the spec, the methods) to ``--json PATH`` (default
``.benchmarks/conv_step.json``, ``.benchmarks/conv_step-quick.json`` with ``--quick``;
ignored by git).
"""

from __future__ import annotations

from . import cpu_model, drop_blas_pinning

if __name__ == "__main__":
    drop_blas_pinning("benchmarks.conv_step")

# ruff: noqa: E402  (the imports below must follow the re-execution)
import argparse
import datetime
import gc
import importlib.util
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
#: Where a run writes its JSON unless told otherwise (ignored by git).
SCRATCH = ROOT / ".benchmarks"

DEFAULT_LAYERS = ("conv32k3same,relu,maxpool2,conv64k3same,relu,maxpool2,flatten,dropout0.3,"
                  "dense128,relu,dropout0.3")
#: ``--quick``: every kind of layer of the candidate and a few more, small.
QUICK_LAYERS = "conv4k3same,relu,maxpool2,conv8k3,relu,avgpool2,flatten,dropout0.2,dense16,relu,dropout0.2"
QUICK = {"batch_size": 32, "steps": 3, "warmup": 1, "repeats": 2}
INPUT_SHAPE = (1, 28, 28)
N_CLASSES = 10
LEARNING_RATE = 1e-3
INIT = "he"
SEED = 0
N_BATCHES = 4

PEERS = ("numpy", "numpy-generic", "torch", "pytorch")
LABELS = {"numpy": "arraynn (numpy)", "numpy-generic": "arraynn (numpy, generic kernels)",
          "torch": "arraynn (torch)", "pytorch": "PyTorch"}
REFERENCE = "pytorch"
BUSY = 0.1  # other processes' share of the CPUs above which the times are flagged

#: The allocator settings of the memory processes (see the module docstring).
MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": str(128 * 1024), "MALLOC_TRIM_THRESHOLD_": str(128 * 1024)}
SAMPLE_INTERVAL_S = 0.0005
MEMORY_STEPS = 3

TIME_METHOD = ("all peers in one process; per round (order rotated every round) each peer runs {warmup} "
               "warm-up step(s), then {steps} steps timed one by one (time.perf_counter); median and min "
               "of the {n} timed steps")
MEMORY_METHOD = ("peak RSS growth during one training step after {warmup} warm-up steps, in a fresh process "
                 "per peer: the kernel's high-water mark (VmHWM) reset before the step "
                 "(/proc/self/clear_refs) and read after it, minus the RSS just before the step, the "
                 "largest of 3 steps; glibc MALLOC_MMAP_THRESHOLD_ and MALLOC_TRIM_THRESHOLD_ fixed at "
                 "128 KiB so freed arrays leave the RSS")


# --------------------------------------------------------------------------------------
# The network and the data
# --------------------------------------------------------------------------------------
def build_network(spec: str) -> Any:
    """``spec``'s layers and the output layer ``Dense(10)``, on 1x28x28 images."""
    from arraynn.layers import Dense
    from arraynn.nn import Sequential
    from arraynn.nn.layer_spec import parse_layers

    return Sequential([*parse_layers(spec), Dense(N_CLASSES)], INPUT_SHAPE, output="softmax")


def host_batches(batch_size: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """:data:`N_BATCHES` minibatches of N(0, 1) float32 images and random labels (int64)."""
    rng = np.random.default_rng([SEED, 1])
    X = [rng.standard_normal((batch_size, *INPUT_SHAPE), dtype=np.float32) for _ in range(N_BATCHES)]
    y = [rng.integers(0, N_CLASSES, size=batch_size, dtype=np.int64) for _ in range(N_BATCHES)]
    return X, y


def host_params(net: Any) -> np.ndarray:
    """The initial flat parameter buffer (float32, on the host), the same for every peer."""
    import arraynn

    return net.init_params(arraynn.get_backend("numpy", dtype="float32"), np.random.default_rng(SEED), INIT)


def torch_model(net: Any, flat: np.ndarray) -> Any:
    """``net`` as a ``torch.nn.Sequential`` with the parameters of the host buffer ``flat``."""
    import torch

    from arraynn import layers as L

    nn = torch.nn
    views = net.layout.views(flat)
    acts = {"relu": nn.ReLU, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh}
    modules: list[Any] = []

    def load(param: Any, value: np.ndarray) -> None:
        with torch.no_grad():
            param.copy_(torch.from_numpy(np.ascontiguousarray(value)))

    for layer, slots, shape in zip(net.layers, net.slots, net.input_shapes):
        own = [views[k] for k in slots]
        if isinstance(layer, L.Conv2D):
            t, b, l_, r = layer.window(shape).pad
            if (t, l_) != (b, r):  # asymmetric "same" padding: pad first, as arraynn does
                modules.append(nn.ZeroPad2d((l_, r, t, b)))
                t = l_ = 0
            conv = nn.Conv2d(shape[0], layer.filters, layer.kernel_size, stride=layer.stride,
                             padding=(t, l_), bias=layer.bias)
            load(conv.weight, own[0])
            if layer.bias:
                load(conv.bias, own[1])
            modules.append(conv)
        elif isinstance(layer, L.Dense):
            lin = nn.Linear(shape[0], layer.units, bias=layer.bias)
            load(lin.weight, own[0].T)  # arraynn's (in, units), torch's (units, in)
            if layer.bias:
                load(lin.bias, own[1])
            modules.append(lin)
        elif isinstance(layer, L.MaxPool2D):
            modules.append(nn.MaxPool2d(layer.pool_size, layer.stride))
        elif isinstance(layer, L.AvgPool2D):
            modules.append(nn.AvgPool2d(layer.pool_size, layer.stride))
        elif isinstance(layer, L.GlobalAvgPool2D):
            modules += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        elif isinstance(layer, L.Flatten):
            modules.append(nn.Flatten())
        elif isinstance(layer, L.Dropout):
            modules.append(nn.Dropout(layer.rate))
        elif isinstance(layer, L.BatchNorm):
            cls = nn.BatchNorm2d if len(shape) == 3 else nn.BatchNorm1d
            modules.append(cls(shape[0], eps=layer.epsilon, momentum=1.0 - layer.momentum))
        elif isinstance(layer, L.Activation) and layer.name in acts:
            modules.append(acts[layer.name]())
        else:
            raise ValueError(f"no torch.nn equivalent for {layer!r}")
    return nn.Sequential(*modules)


# --------------------------------------------------------------------------------------
# The peers: build once, then step
# --------------------------------------------------------------------------------------
class ArraynnPeer:
    """arraynn's eager training step (:meth:`Sequential.train_step`) on one backend."""

    def __init__(self, name: str, spec: str, batch_size: int) -> None:
        import arraynn
        from arraynn.nn import make_optimizer

        self.name = name
        self.fast = name != "numpy-generic"
        self.net = build_network(spec)
        be = self.backend = arraynn.get_backend("torch" if name == "torch" else "numpy", dtype="float32")
        self.params = be.asarray(host_params(self.net))
        self.opt = make_optimizer("adam")
        self.state = self.opt.init(self.params)
        if self.net.has_state:
            self.state["stats"] = self.net.init_state(be)
        Xh, yh = host_batches(batch_size)
        self.X = [be.asarray(x) for x in Xh]
        self.Y = [self.net.one_hot(be.asarray(y, dtype=be.index_dtype), be.dtype) for y in yh]
        self.grad_buffer = be.xp.empty_like(self.params)  # the epoch loop's, allocated once
        self.done = 0
        self.loss: Any = None

    def enter(self) -> None:
        from arraynn.ops import set_fast_paths

        set_fast_paths(self.fast)

    def leave(self) -> None:
        from arraynn.ops import set_fast_paths

        set_fast_paths(True)

    def batch(self) -> tuple[Any, Any]:
        k = self.done % N_BATCHES
        self.done += 1
        return self.X[k], self.Y[k]

    def step(self) -> None:
        X, Y = self.batch()
        self.params, self.state, self.loss = self.net.train_step(
            self.params, self.opt, self.state, X, Y, LEARNING_RATE, 0.0, 0.0, grad_buffer=self.grad_buffer,
            seed=SEED)

    def last_loss(self) -> float:
        return float(self.backend.to_numpy(self.loss))

    def describe(self) -> dict[str, Any]:
        from arraynn.ops import numba_kernels, ops_of

        self.enter()
        try:
            kernels = type(ops_of(self.params)).__name__
        finally:
            self.leave()
        compiled = (self.name == "numpy" and numba_kernels.available() and numba_kernels.enabled()
                    and self.net.layout.size >= numba_kernels.MIN_SIZE)
        return {"backend": self.backend.describe(), "kernels_class": kernels, "numba_adam": bool(compiled)}


class TorchPeer:
    """The reference: the same network in ``torch.nn``, autograd and ``torch.optim.Adam``."""

    name = REFERENCE

    def __init__(self, spec: str, batch_size: int) -> None:
        import torch

        self.net = build_network(spec)
        self.model = torch_model(self.net, host_params(self.net))
        self.model.train()
        self.opt = torch.optim.Adam(self.model.parameters(), lr=LEARNING_RATE)
        Xh, yh = host_batches(batch_size)
        self.X = [torch.from_numpy(x) for x in Xh]
        self.y = [torch.from_numpy(y) for y in yh]
        self.done = 0
        self.loss: Any = None
        self._ce = torch.nn.functional.cross_entropy

    def enter(self) -> None:
        pass

    def leave(self) -> None:
        pass

    def step(self) -> None:
        k = self.done % N_BATCHES
        self.done += 1
        self.opt.zero_grad(set_to_none=True)
        loss = self._ce(self.model(self.X[k]), self.y[k], reduction="sum")
        loss.backward()
        self.opt.step()
        self.loss = loss.detach()

    def last_loss(self) -> float:
        return float(self.loss)

    def describe(self) -> dict[str, Any]:
        import torch

        return {"backend": f"torch {torch.__version__} (torch.nn, autograd)",
                "model": repr(self.model).replace("\n", " "), "torch_threads": torch.get_num_threads()}


def make_peer(name: str, spec: str, batch_size: int) -> ArraynnPeer | TorchPeer:
    if name == REFERENCE:
        return TorchPeer(spec, batch_size)
    return ArraynnPeer(name, spec, batch_size)


#: threadpoolctl's limit on the BLAS threads, kept for the life of the process.
_BLAS_LIMIT: Any = None


def set_threads(threads: int, torch_too: bool) -> dict[str, Any]:
    """``torch.set_num_threads`` (when torch is used) and the BLAS threads (threadpoolctl)."""
    out: dict[str, Any] = {"threads": threads}
    if torch_too:
        import torch

        torch.set_num_threads(threads)
        out["torch_threads"] = torch.get_num_threads()
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        out["blas_threads"] = "threadpoolctl is not installed: the BLAS library's own count"
        return out
    global _BLAS_LIMIT
    _BLAS_LIMIT = threadpool_limits(limits=threads, user_api="blas")
    out["blas_threads"] = threads
    return out


def _needs_torch(peers: list[str]) -> bool:
    return any(p in ("torch", REFERENCE) for p in peers)


# --------------------------------------------------------------------------------------
# Timing
# --------------------------------------------------------------------------------------
def _cpu_snapshot() -> tuple[float, float] | None:
    from .run import _cpu_snapshot as snapshot

    return snapshot()


def time_peers(peers: list[Any], steps: int, warmup: int, repeats: int) -> dict[str, Any]:
    """Every peer's step times (seconds), per round; see the module docstring."""
    times: dict[str, list[list[float]]] = {p.name: [] for p in peers}
    before, wall = _cpu_snapshot(), time.perf_counter()
    for r in range(repeats):
        shift = r % len(peers)
        for peer in peers[shift:] + peers[:shift]:
            peer.enter()
            try:
                for _ in range(warmup):
                    peer.step()
                block = []
                for _ in range(steps):
                    t0 = time.perf_counter()
                    peer.step()
                    block.append(time.perf_counter() - t0)
            finally:
                peer.leave()
            times[peer.name].append(block)
    wall = time.perf_counter() - wall
    after = _cpu_snapshot()
    other = None
    if before and after:
        other = max(0.0, ((after[0] - before[0]) - (after[1] - before[1])) / (wall * (os.cpu_count() or 1)))
    return {"blocks": times, "other_load": other, "wall_seconds": wall}


# --------------------------------------------------------------------------------------
# Memory (in a fresh process per peer)
# --------------------------------------------------------------------------------------
class RssSampler(threading.Thread):
    """Where the kernel's peak cannot be reset: samples this process's resident set size
    every ``interval`` seconds; keeps the peak."""

    def __init__(self, interval: float = SAMPLE_INTERVAL_S) -> None:
        super().__init__(daemon=True)
        self.interval = interval
        self._fd = os.open("/proc/self/statm", os.O_RDONLY)
        self._page = os.sysconf("SC_PAGE_SIZE")
        self._halt = threading.Event()
        self.peak = self.read()
        self.samples = 0

    def read(self) -> int:
        """The RSS now, in bytes."""
        return int(os.pread(self._fd, 128, 0).split()[1]) * self._page

    method = "statm sampler"

    def reset(self) -> None:
        self.peak, self.samples = self.read(), 0

    def run(self) -> None:
        while not self._halt.is_set():
            value = self.read()
            if value > self.peak:
                self.peak = value
            self.samples += 1
            time.sleep(self.interval)

    def stop(self) -> None:
        self._halt.set()
        self.join()
        os.close(self._fd)


class KernelPeak:
    """The kernel's own peak RSS of this process (``VmHWM``), which it raises at every page
    fault; :meth:`reset` sets it back to the RSS now (Linux 4.0 and later)."""

    method = "VmHWM"

    def __init__(self) -> None:
        self.reset()  # raises OSError where the kernel has no reset

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass

    @staticmethod
    def _status(field: str) -> int:
        with open("/proc/self/status", "rb") as f:
            for line in f:
                if line.startswith(field.encode() + b":"):
                    return int(line.split()[1]) * 1024
        raise OSError(f"/proc/self/status has no {field}")

    def read(self) -> int:
        """The RSS now, in bytes."""
        return self._status("VmRSS")

    def reset(self) -> None:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")

    @property
    def peak(self) -> int:
        """The largest RSS since the last :meth:`reset`, in bytes."""
        return self._status("VmHWM")


def measure_memory(peer: Any, warmup: int, steps: int = MEMORY_STEPS) -> dict[str, Any]:
    """One step's peak RSS growth after ``warmup`` steps (the largest of ``steps`` steps):
    the kernel's high-water mark where it can be reset, else a sampling thread's peak."""
    probe: KernelPeak | RssSampler
    try:
        probe = KernelPeak()
    except OSError:
        sys.setswitchinterval(1e-4)
        probe = RssSampler()
    peer.enter()
    try:
        for _ in range(max(2, warmup)):
            peer.step()
        rows = []
        probe.start()
        try:
            for _ in range(steps):
                gc.collect()
                time.sleep(0.01)
                base = probe.read()
                probe.reset()
                t0 = time.perf_counter()
                peer.step()
                seconds = time.perf_counter() - t0
                end = probe.read()
                peak = max(probe.peak, end)
                row = {"rss_before": base, "rss_peak": peak, "rss_after": end, "growth": peak - base,
                       "seconds": seconds}
                if isinstance(probe, RssSampler):
                    row["samples"] = probe.samples
                rows.append(row)
        finally:
            probe.stop()
    finally:
        peer.leave()
    worst = max(rows, key=lambda r: r["growth"])
    return {"peak_growth_mib": worst["growth"] / 2**20, "rss_before_mib": worst["rss_before"] / 2**20,
            "method": probe.method, "steps": rows,
            "malloc_env": {k: os.environ.get(k) for k in MALLOC_ENV}}


def _memory_worker(args: argparse.Namespace) -> int:
    set_threads(args.threads, _needs_torch([args.memory_of]))
    peer = make_peer(args.memory_of, args.layers, args.batch_size)
    result = {"peer": args.memory_of, **measure_memory(peer, args.warmup)}
    text = json.dumps(result)
    if args.memory_out:
        Path(args.memory_out).write_text(text)
    else:
        print(text)
    return 0


def _fallback_note(rows: list[dict[str, Any]]) -> str:
    sampled = [r["peer"] for r in rows if (r.get("memory") or {}).get("method") == "statm sampler"]
    return (f" (for {', '.join(sampled)}: the kernel's mark could not be reset, a thread sampled "
            "/proc/self/statm every 0.5 ms instead, a lower bound)") if sampled else ""


def memory_in_subprocess(peer: str, args: argparse.Namespace) -> dict[str, Any]:
    """:func:`measure_memory` for ``peer`` in a fresh process (see the module docstring)."""
    with tempfile.TemporaryDirectory(prefix="arraynn-conv-step-") as tmp:
        out = Path(tmp) / "memory.json"
        cmd = [sys.executable, "-m", "benchmarks.conv_step", "--memory-of", peer, "--memory-out", str(out),
               "--layers", args.layers, "--batch-size", str(args.batch_size), "--threads", str(args.threads),
               "--warmup", str(args.warmup)]
        env = {**os.environ, **MALLOC_ENV}
        try:
            proc = subprocess.run(cmd, cwd=ROOT, env=env, timeout=args.timeout, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True)
        except subprocess.TimeoutExpired:
            return {"error": f"timed out after {args.timeout:.0f} s"}
        if proc.returncode != 0 or not out.exists():
            tail = "\n".join(proc.stdout.strip().splitlines()[-15:])
            return {"error": f"exited with {proc.returncode}:\n{tail}"}
        return json.loads(out.read_text())


# --------------------------------------------------------------------------------------
# Per-layer breakdown (arraynn)
# --------------------------------------------------------------------------------------
def layer_breakdown(peer: ArraynnPeer, steps: int, warmup: int) -> dict[str, Any]:
    """Median seconds of each layer's forward and backward and of the rest of a step,
    the step taken apart as :meth:`Sequential.loss_grad_and_state` and
    :meth:`Sequential.train_step` run it."""
    from arraynn.nn.layer_spec import format_layers
    from arraynn.ops import ops_of

    net, clock = peer.net, time.perf_counter
    n_layers = len(net.layers)
    fwd: list[list[float]] = [[] for _ in range(n_layers)]
    bwd: list[list[float]] = [[] for _ in range(n_layers)]
    rest: dict[str, list[float]] = {"dropout masks": [], "loss and error term": [],
                                    "gradients into one buffer (pack)": [], "Adam update": [], "step": []}
    peer.enter()
    try:
        for k in range(warmup + steps):
            keep = k >= warmup
            X, Y = peer.batch()
            start = clock()
            masks = net.dropout_masks(X, SEED, peer.state["t"])
            t_masks = clock() - start
            ops = ops_of(X)
            xp = ops.xp
            per_layer = net._layer_views(net.layout.views(peer.params, xp))
            stats = net._state_views(peer.state.get("stats"), xp) if net.has_state else None
            a, caches, f_times = X, [], []
            for i, layer in enumerate(net.layers):
                t0 = clock()
                a, cache = layer.forward(ops, per_layer[i], a, mask=None if masks is None else masks[i],
                                         training=True, reduce=None,
                                         stats=None if stats is None or not stats[i] else stats[i])
                f_times.append(clock() - t0)
                caches.append(cache)
            new_stats = None
            if stats is not None:
                updated = [s for i, layer in enumerate(net.layers) if stats[i]
                           for s in layer.updated_state(ops, stats[i], caches[i])]
                new_stats = xp.concat([xp.reshape(s, (-1,)) for s in updated])
            t0 = clock()
            _, delta = ops.loss_and_delta(net.output, a, Y)
            t_loss = clock() - t0
            out = net.layout.views(peer.grad_buffer, xp)
            grads: list[Any] = [None] * len(out)
            b_times: list[float | None] = [None] * n_layers
            for i in range(n_layers - 1, -1, -1):
                slots = net.slots[i]
                if not net._need_dx[i] and not slots:
                    break
                layer_grads = [out[s] for s in slots]
                t0 = clock()
                delta = net.layers[i].backward(ops, per_layer[i], caches[i], delta, layer_grads,
                                               need_dx=net._need_dx[i], l1=0.0, l2=0.0)
                b_times[i] = clock() - t0
                for s, g in zip(slots, layer_grads):
                    grads[s] = g
            t0 = clock()
            flat = ops.pack(grads, out, peer.grad_buffer)
            t_pack = clock() - t0
            t0 = clock()
            peer.params, peer.state = peer.opt.update(peer.params, flat, peer.state, LEARNING_RATE)
            t_update = clock() - t0
            if new_stats is not None:
                peer.state["stats"] = new_stats
            t_step = clock() - start
            if keep:
                for i in range(n_layers):
                    fwd[i].append(f_times[i])
                    bt = b_times[i]
                    if bt is not None:
                        bwd[i].append(bt)
                for key, value in zip(rest, (t_masks, t_loss, t_pack, t_update, t_step)):
                    rest[key].append(value)
    finally:
        peer.leave()
    rows = []
    for i, (layer, shape) in enumerate(zip(net.layers, net.input_shapes)):
        rows.append({"index": i, "layer": format_layers([layer]), "input": list(shape),
                     "output": list(layer.output_shape(shape)),
                     "forward_ms": 1e3 * statistics.median(fwd[i]),
                     "backward_ms": 1e3 * statistics.median(bwd[i]) if bwd[i] else None})
    return {"peer": peer.name, "label": LABELS[peer.name], "steps": steps, "warmup": warmup,
            "layers": rows, "other": {k: 1e3 * statistics.median(v) for k, v in rest.items()}}


# --------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------
def summarize(blocks: dict[str, list[list[float]]]) -> dict[str, dict[str, Any]]:
    out = {}
    for name, rounds in blocks.items():
        flat = [t for block in rounds for t in block]
        out[name] = {"median_ms": 1e3 * statistics.median(flat), "min_ms": 1e3 * min(flat),
                     "round_medians_ms": [1e3 * statistics.median(b) for b in rounds],
                     "step_ms": [[1e3 * t for t in b] for b in rounds]}
    ref = out.get(REFERENCE)
    for row in out.values():
        row["vs_pytorch"] = row["median_ms"] / ref["median_ms"] if ref else None
    return out


def _fmt(x: float | None, spec: str) -> str:
    return "-" if x is None else format(x, spec)


def table(report: dict[str, Any]) -> str:
    lines = [f"Network: {report['network']} on {'x'.join(map(str, INPUT_SHAPE))} images, "
             f"{report['n_params']:,} parameters; batch {report['batch_size']}, float32, Adam, "
             f"dropout on; {report['threads']} threads on {report['cpu']}.",
             f"Time: {report['time_method']}.",
             f"Memory: {report['memory_method']}." if report["memory"] else "Memory: not measured.",
             "",
             "| peer | ms/step (median) | min | peak MiB of one step | vs PyTorch |",
             "| --- | ---: | ---: | ---: | ---: |"]
    for row in report["peers"]:
        mem = row.get("memory") or {}
        peak = mem.get("peak_growth_mib")
        peak_text = "failed" if "error" in mem else _fmt(peak, ".1f")
        lines.append(f"| {row['label']} | {row['median_ms']:.2f} | {row['min_ms']:.2f} | {peak_text} | "
                     f"{_fmt(row['vs_pytorch'], '.2f')} |")
    numba = [row for row in report["peers"] if row["peer"] == "numpy"]
    if numba:
        lines += ["", "arraynn (numpy) runs Adam " + ("compiled with Numba." if numba[0]["numba_adam"] else
                                                      "as NumPy ufuncs (no Numba, or too few parameters).")]
    load = report.get("other_load")
    if load is not None and load > BUSY:
        lines += ["", f"**Warning**: other processes used {100 * load:.0f} % of the CPUs while the steps "
                  "were timed; the times are not reliable."]
    for row in report["peers"]:
        err = (row.get("memory") or {}).get("error")
        if err:
            lines.append(f"memory of {row['label']} failed: {err.strip().splitlines()[-1]}")
    for bd in report.get("breakdown", []):
        lines += ["", f"Per layer, {bd['label']}: median of {bd['steps']} steps after {bd['warmup']} warm-up "
                  "(each layer's forward and backward called directly)", "",
                  "| # | layer | output | forward ms | backward ms |", "| ---: | --- | --- | ---: | ---: |"]
        total_f = total_b = 0.0
        for r in bd["layers"]:
            total_f += r["forward_ms"]
            total_b += r["backward_ms"] or 0.0
            lines.append(f"| {r['index']} | {r['layer']} | {'x'.join(map(str, r['output']))} | "
                         f"{r['forward_ms']:.3f} | {_fmt(r['backward_ms'], '.3f')} |")
        lines.append(f"| | layers, total | | {total_f:.3f} | {total_b:.3f} |")
        for name, ms in bd["other"].items():
            if name != "step":
                lines.append(f"| | {name} | | {ms:.3f} | |")
        lines.append(f"| | whole step (these parts, timed together) | | {bd['other']['step']:.3f} | |")
    return "\n".join(lines)


def _available(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def _csv(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.conv_step", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--layers", default=None, metavar="SPEC",
                   help=f"the network's body, before the output Dense(10) (default {DEFAULT_LAYERS})")
    p.add_argument("--batch-size", type=int, default=None, help="minibatch size (default 128)")
    p.add_argument("--steps", type=int, default=None, help="timed steps per peer and round (default 20)")
    p.add_argument("--warmup", type=int, default=None, help="untimed steps before each block (default 3)")
    p.add_argument("--repeats", type=int, default=None,
                   help="rounds; each runs every peer's block in turn (default 3)")
    p.add_argument("--peers", type=_csv, default=None,
                   help=f"comma-separated, of {','.join(PEERS)} (default: all; torch's need torch)")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                   help="torch's threads and the BLAS threads (default: all cores)")
    p.add_argument("--breakdown", nargs="?", const=["numpy"], default=None, type=_csv, metavar="PEERS",
                   help="also time each layer's forward and backward, for these arraynn peers "
                        "(comma-separated; default numpy)")
    p.add_argument("--no-memory", dest="memory", action="store_false", help="skip the memory processes")
    p.add_argument("--quick", action="store_true",
                   help=f"smoke test: {QUICK_LAYERS}, batch {QUICK['batch_size']}, {QUICK['warmup']}+"
                        f"{QUICK['steps']} steps, {QUICK['repeats']} rounds")
    p.add_argument("--json", type=Path, default=None, metavar="PATH",
                   help="where to write the results (default .benchmarks/conv_step.json, or "
                        ".benchmarks/conv_step-quick.json with --quick; ignored by git)")
    p.add_argument("--timeout", type=float, default=600.0, help="seconds per memory process")
    p.add_argument("--memory-of", choices=PEERS, default=None, help=argparse.SUPPRESS)  # the worker
    p.add_argument("--memory-out", default=None, help=argparse.SUPPRESS)
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    defaults = {"batch_size": 128, "steps": 20, "warmup": 3, "repeats": 3}
    for key, value in (QUICK if args.quick else defaults).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.layers is None:
        args.layers = QUICK_LAYERS if args.quick else DEFAULT_LAYERS
    if args.memory_of:
        return _memory_worker(args)
    from arraynn import reuse_freed_memory

    reuse_freed_memory()
    if min(args.batch_size, args.steps, args.repeats, args.threads) < 1 or args.warmup < 0:
        raise SystemExit("--batch-size, --steps, --repeats and --threads must be positive, --warmup >= 0")
    names = list(args.peers) if args.peers is not None else list(PEERS)
    bad = [n for n in names if n not in PEERS]
    if bad:
        raise SystemExit(f"unknown peer(s) {bad}; choose from {list(PEERS)}")
    breakdown = list(args.breakdown or [])
    bad = [n for n in breakdown if n not in PEERS or n == REFERENCE]
    if bad:
        raise SystemExit(f"--breakdown takes arraynn peers {list(PEERS[:-1])}, got {bad}")
    if not _available("torch"):
        skipped = [n for n in names if _needs_torch([n])]
        if skipped:
            print(f"torch is not installed: leaving out {skipped}", flush=True)
        names = [n for n in names if n not in skipped]
        breakdown = [n for n in breakdown if n != "torch"]
    if not names:
        raise SystemExit("no peer to measure")
    if args.json is None:
        args.json = SCRATCH / ("conv_step-quick.json" if args.quick else "conv_step.json")

    from arraynn.nn.layer_spec import format_layers
    from arraynn.ops import set_fast_paths

    from .run import _threadpools, machine_info

    threads = set_threads(args.threads, _needs_torch(names + breakdown))
    net = build_network(args.layers)
    print(f"building {', '.join(LABELS[n] for n in names)} ...", flush=True)
    peers = [make_peer(n, args.layers, args.batch_size) for n in names]
    n_timed = args.steps * args.repeats
    print(f"timing: {args.repeats} rounds of {args.warmup} + {args.steps} steps per peer ...", flush=True)
    try:
        timing = time_peers(peers, args.steps, args.warmup, args.repeats)
        stats = summarize(timing["blocks"])
        rows = []
        for peer in peers:
            rows.append({"peer": peer.name, "label": LABELS[peer.name], **stats[peer.name],
                         "last_loss": peer.last_loss(), **peer.describe()})
        del peers
        gc.collect()
        details = []
        for name in breakdown:
            print(f"per-layer breakdown: {LABELS[name]} ...", flush=True)
            details.append(layer_breakdown(ArraynnPeer(name, args.layers, args.batch_size), args.steps,
                                           args.warmup))
    finally:
        set_fast_paths(True)
    if args.memory:
        for row in rows:
            print(f"memory: {row['label']} in a fresh process ...", flush=True)
            row["memory"] = memory_in_subprocess(row["peer"], args)
    report = {
        "benchmark": "conv_step",
        "command": "python -m benchmarks.conv_step" + ("" if not argv else " " + shlex.join(argv)),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "layers": args.layers, "network": format_layers(net.layers), "n_params": int(net.layout.size),
        "input_shape": list(INPUT_SHAPE), "classes": N_CLASSES, "batch_size": args.batch_size,
        "dtype": "float32", "init": INIT, "optimizer": f"adam, lr {LEARNING_RATE:g}", "loss": "softmax "
        "cross-entropy summed over the minibatch", "data": f"{N_BATCHES} fixed minibatches of N(0, 1) images",
        "steps": args.steps, "warmup": args.warmup, "repeats": args.repeats, **threads,
        "cpu": cpu_model(), "machine": machine_info(), "threadpools": _threadpools(),
        "other_load": timing["other_load"], "timing_wall_seconds": timing["wall_seconds"],
        "time_method": TIME_METHOD.format(warmup=args.warmup, steps=args.steps, n=n_timed),
        "memory": bool(args.memory),
        "memory_method": MEMORY_METHOD.format(warmup=max(2, args.warmup)) + _fallback_note(rows),
        "peers": rows,
    }
    if details:
        report["breakdown"] = details
    print()
    print(table(report))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=1) + "\n")
    print(f"\nwritten to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
