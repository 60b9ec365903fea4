"""The GPU path's device handling, tested without a GPU: a fake current device, a fake
CuPy module, and the libraries' own hooks on the CPU."""

from __future__ import annotations

import contextlib
import sys
import threading
import types
import warnings

import numpy as np
import pytest

import arraynn
import arraynn.backends as backends
from arraynn.backends import cupy as cupy_backend
from arraynn.data import DataLoader
from arraynn.ops import Ops

# ---- the backend's device is the current device wherever arraynn makes arrays ----------


class _CurrentDevice:
    """A per-thread current device, as CuPy, torch CUDA and JAX have one."""

    def __init__(self):
        self.local = threading.local()
        self.seen: list[tuple[str, str, object]] = []

    def get(self):
        return getattr(self.local, "device", "default")

    @contextlib.contextmanager
    def enter(self, device):
        before = self.get()
        self.local.device = device
        try:
            yield
        finally:
            self.local.device = before

    def record(self, what):
        self.seen.append((what, threading.current_thread().name, self.get()))


@pytest.fixture
def strict_device1(monkeypatch):
    pytest.importorskip("array_api_strict")
    be = arraynn.get_backend("array_api_strict", "device1")
    library = be.library
    current = _CurrentDevice()
    real_from_host = library.from_host

    def from_host(xp, device, host):
        current.record("upload")
        return real_from_host(xp, device, host)

    class RecordingOps(Ops):
        def one_hot(self, labels, n_classes, dtype):
            current.record("one_hot")
            return super().one_hot(labels, n_classes, dtype)

        def adam(self, *args, **kwargs):
            current.record("adam")
            return super().adam(*args, **kwargs)

    monkeypatch.setattr(library, "device_context", current.enter, raising=False)
    monkeypatch.setattr(library, "from_host", from_host)
    monkeypatch.setattr(library, "ops", lambda xp: RecordingOps(xp))
    from arraynn import ops as ops_module

    ops_module.set_fast_paths(True)  # clear the cached ops
    yield be, current
    ops_module.set_fast_paths(True)


def test_fit_and_predict_run_with_the_backends_device_current(strict_device1):
    be, current = strict_device1
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(40, 5)).astype(np.float32), rng.integers(0, 3, size=40)
    clf = arraynn.NNClassifier(n_hidden_units=4, epochs=2, batch_size=16, optimizer="adam",
                               backend="array_api_strict", device="device1", random_seed=0)
    clf.fit(X, y)
    clf.predict(X)
    clf.predict_proba(X)
    clf.score(X, y)
    assert {w for w, _, _ in current.seen} >= {"upload", "one_hot", "adam"}
    assert all(d == be.device for _, _, d in current.seen), current.seen
    assert current.get() == "default"  # left as it was
    assert all(str(w.device) == str(be.device) for w in clf.coefs_)


def test_the_prefetch_thread_enters_the_device(strict_device1):
    be, current = strict_device1
    X = np.arange(60, dtype=np.uint8).reshape(20, 3)
    loader = DataLoader(X, np.arange(20) % 2, backend=be, batch_size=4, stream=True, chunk_size=8)
    try:
        batches = list(loader.epoch(0))
    finally:
        loader.close()
    assert len(batches) == 5
    threads = {t for _, t, _ in current.seen}
    assert any(t.startswith("arraynn-prefetch") for t in threads), threads
    assert all(d == be.device for _, _, d in current.seen), current.seen


def test_the_resident_loader_enters_the_device_but_not_across_a_yield(strict_device1):
    be, current = strict_device1
    loader = DataLoader(np.ones((10, 2), np.float32), np.arange(10) % 2, backend=be, batch_size=5)
    for _ in loader.epoch(1):
        assert current.get() == "default"  # the consumer's own device between batches
    assert current.seen and all(d == be.device for _, _, d in current.seen)


# ---- CuPy, faked --------------------------------------------------------------------------


class _FakeCupy:
    """Just what arraynn.backends.cupy uses of CuPy, recording the calls."""

    def __init__(self):
        self.calls: list = []
        fake = self

        class Stream:
            def __init__(self, non_blocking=False):
                self.non_blocking = non_blocking

            def record(self):
                fake.calls.append(("record", self))
                return "event"

            def wait_event(self, event):
                fake.calls.append(("wait_event", self, event))

            def synchronize(self):
                fake.calls.append(("stream_synchronize", self))

        class Device:
            def __init__(self, id):
                self.id = id

            def __enter__(self):
                fake.calls.append(("enter", self.id))

            def __exit__(self, *exc):
                fake.calls.append(("exit", self.id))

            def synchronize(self):
                fake.calls.append(("device_synchronize", self.id))

        class Array:
            def __init__(self, shape, dtype):
                self.shape, self.dtype, self.data = shape, dtype, None

            def set(self, host, stream=None):
                fake.calls.append(("set", type(host).__name__, stream))
                self.data = np.array(host)

        self.null = Stream()
        self.cuda = types.SimpleNamespace(Stream=Stream, Device=Device,
                                          get_current_stream=lambda: self.null)
        self.Array = Array

    def empty(self, shape, dtype):
        return self.Array(shape, dtype)

    def asarray(self, host):
        self.calls.append(("asarray_pageable",))
        return np.array(host)

    def empty_pinned(self, shape, dtype):
        self.calls.append(("empty_pinned",))
        return np.empty(shape, dtype)


@pytest.fixture
def fake_cupy(monkeypatch):
    fake = _FakeCupy()
    monkeypatch.setitem(sys.modules, "cupy", fake)
    monkeypatch.setitem(sys.modules, "cupyx", types.SimpleNamespace(empty_pinned=fake.empty_pinned))
    monkeypatch.setattr(cupy_backend, "_thread", threading.local())
    return fake


def test_cupy_synchronize_waits_on_the_backends_device_not_the_current_one(fake_cupy):
    cupy_backend.library.synchronize(fake_cupy.cuda.Device(1))
    assert fake_cupy.calls == [("device_synchronize", 1)]


def test_cupy_device_context_enters_the_device(fake_cupy):
    with cupy_backend.library.device_context(fake_cupy.cuda.Device(1)):
        pass
    assert fake_cupy.calls == [("enter", 1), ("exit", 1)]


def test_cupy_uploads_in_the_foreground_are_plain_copies(fake_cupy):
    out = cupy_backend.library.from_host(None, fake_cupy.cuda.Device(0), np.arange(3))
    assert fake_cupy.calls == [("enter", 0), ("asarray_pageable",), ("exit", 0)]
    assert out.tolist() == [0, 1, 2]


def test_cupy_background_uploads_copy_pinned_memory_on_a_stream_of_their_own(fake_cupy):
    lib, dev = cupy_backend.library, fake_cupy.cuda.Device(1)
    host = np.arange(6, dtype=np.uint8).reshape(2, 3)
    with lib.background_context(dev):
        out = lib.from_host(None, dev, host)
        lib.from_host(None, dev, host)
    np.testing.assert_array_equal(out.data, host)
    kinds = [c[0] for c in fake_cupy.calls]
    assert kinds[:2] == ["enter", "enter"] and kinds[-1] == "exit"
    assert "asarray_pageable" not in kinds and kinds.count("empty_pinned") == 2
    (first_set, second_set) = [c for c in fake_cupy.calls if c[0] == "set"]
    assert first_set[1] == "ndarray" and first_set[2].non_blocking
    assert first_set[2] is second_set[2], "one copy stream per thread and device"
    assert first_set[2] is not fake_cupy.null
    i_set = fake_cupy.calls.index(first_set)
    # the copy waits for the default stream's work (the buffer's earlier users) and is
    # waited for by this (background) thread before the array is handed over
    assert ("wait_event", first_set[2], "event") in fake_cupy.calls[:i_set]
    assert fake_cupy.calls[i_set + 1] == ("stream_synchronize", first_set[2])
    # outside the context: plain copies again
    lib.from_host(None, dev, host)
    assert fake_cupy.calls[-2] == ("asarray_pageable",)


# ---- auto, JAX, torch ------------------------------------------------------------------------


def test_auto_says_why_it_falls_back_when_cupy_is_installed_but_cannot_run(monkeypatch):
    def broken(device):
        raise arraynn.DeviceUnavailableError("no CUDA device is usable (cudaErrorNoDevice)")

    monkeypatch.setattr(backends._library("cupy"), "load", broken)
    monkeypatch.setattr(backends.importlib.util, "find_spec", lambda name: object())
    with pytest.warns(RuntimeWarning, match="uses numpy: no CUDA device is usable"):
        be = arraynn.get_backend("auto")
    assert be.name == "numpy"


def test_auto_is_quiet_when_cupy_is_not_installed(monkeypatch):
    def missing(device):
        raise arraynn.BackendNotInstalledError("no cupy")

    monkeypatch.setattr(backends._library("cupy"), "load", missing)
    monkeypatch.setattr(backends.importlib.util, "find_spec", lambda name: None)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert arraynn.get_backend("auto").name == "numpy"


def test_jax_synchronize_blocks_on_a_result_on_the_device(monkeypatch):
    jax = pytest.importorskip("jax")
    be = arraynn.get_backend("jax")
    waited = []
    real = jax.block_until_ready

    def spy(x):
        waited.append(x)
        return real(x)

    monkeypatch.setattr(jax, "block_until_ready", spy)
    be.synchronize()
    assert len(waited) == 1 and be.device in waited[0].devices()


def test_torch_tf32_uses_fp32_precision_where_it_exists(monkeypatch):
    torch = pytest.importorskip("torch")

    class Flags:
        fp32_precision = "none"

        def __setattr__(self, name, value):
            if name.startswith("allow_"):
                raise AssertionError(f"the old flag {name} was set")
            object.__setattr__(self, name, value)

    matmul, conv = Flags(), Flags()
    monkeypatch.setattr(torch.backends.cuda, "matmul", matmul)
    monkeypatch.setattr(torch.backends.cudnn, "conv", conv)
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", True, raising=False)
    be = arraynn.get_backend("torch", "cpu")
    assert be.set_tf32(True) is False  # no TF32 on a CPU, but the setting is made
    assert matmul.fp32_precision == conv.fp32_precision == "tf32"
    be.set_tf32(False)
    assert matmul.fp32_precision == conv.fp32_precision == "ieee"


def test_jax_weights_taken_from_coefs_survive_the_next_partial_fit():
    """The compiled JAX step donates the flat parameter buffer; ``coefs_`` and
    ``intercepts_`` are slices of it, which JAX copies, so arrays a user took stay valid
    (and keep their values) after more training."""
    pytest.importorskip("jax")
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(40, 5)).astype(np.float32), rng.integers(0, 3, size=40)
    clf = arraynn.NNClassifier(n_hidden_units=4, epochs=1, batch_size=16, optimizer="adam",
                               backend="jax", bias=True, random_seed=0)
    clf.partial_fit(X, y, classes=[0, 1, 2])
    taken = clf.coefs_ + clf.intercepts_
    before = [np.array(a) for a in taken]
    flat = clf._state.params
    clf.partial_fit(X, y)
    assert flat.is_deleted()  # the step did donate the buffer the slices came from
    for a, want in zip(taken, before):
        assert not a.is_deleted()
        np.testing.assert_array_equal(np.asarray(a), want)
    assert not np.array_equal(np.asarray(clf.coefs_[0]), before[0])


def test_auto_refuses_a_gpu_device_it_cannot_serve(monkeypatch):
    def missing(device):
        raise arraynn.BackendNotInstalledError("no cupy")

    monkeypatch.setattr(backends._library("cupy"), "load", missing)
    for device in ("cuda", "cuda:1", "gpu"):
        with pytest.raises(arraynn.DeviceUnavailableError, match=f"cannot use device '{device}'.*CPU only"):
            arraynn.get_backend("auto", device)
    assert arraynn.get_backend("auto", "cpu").name == "numpy"  # the CPU is the host's


def test_choose_auto_says_why(monkeypatch):
    def missing(device):
        raise arraynn.BackendNotInstalledError("no cupy")

    monkeypatch.setattr(backends._library("cupy"), "load", missing)
    monkeypatch.setattr(backends.importlib.util, "find_spec", lambda name: None)
    be, reason = backends.choose_auto()
    assert be.name == "numpy" and reason == "cupy is not installed, so numpy on the CPU"
