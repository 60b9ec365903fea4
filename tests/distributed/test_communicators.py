"""The data-parallel pieces without MPI: shards, the loader's slices, the trainer over a
communicator of threads (every backend), the world without a launcher, the choice of
communicator, and NCCL through fakes of CuPy."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import types

import numpy as np
import pytest
from _mpi import ROOT

import arraynn
from arraynn import NNClassifier, distributed
from arraynn.backends.cupy import NcclCommunicator
from arraynn.backends.cupy import library as cupy_library
from arraynn.data.loader import DataLoader, shard_bounds
from arraynn.distributed import DistributedError, MPICommunicator, SingleProcess


# ---- shards ----------------------------------------------------------------------------
@pytest.mark.parametrize("n,size", [(10, 2), (11, 3), (2, 3), (1, 4), (0, 2), (128, 7)])
def test_shards_cover_the_batch_contiguously_without_padding(n, size):
    parts = [shard_bounds(5, 5 + n, r, size) for r in range(size)]
    assert parts[0][0] == 5 and parts[-1][1] == 5 + n
    assert all(a[1] == b[0] for a, b in zip(parts, parts[1:]))
    lengths = [e - s for s, e in parts]
    assert lengths == [len(p) for p in np.array_split(np.arange(n), size)]


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("shuffle", [False, True])
def test_sharded_loaders_together_give_the_global_batches(stream, shuffle):
    be = arraynn.get_backend("numpy")
    X = np.arange(22 * 2, dtype=np.float64).reshape(22, 2)
    y = np.arange(22) % 3
    kw = dict(backend=be, batch_size=5, shuffle=shuffle, seed=4, stream=stream, chunk_size=10)
    whole = list(DataLoader(X, y, **kw).epoch(2))
    shards = [list(DataLoader(X, y, shard=(r, 3), **kw).epoch(2)) for r in range(3)]
    assert all(len(s) == len(whole) for s in shards)  # every rank steps every batch
    for b, (Xb, yb) in enumerate(whole):
        np.testing.assert_array_equal(np.concatenate([s[b][0] for s in shards]), Xb)
        np.testing.assert_array_equal(np.concatenate([s[b][1] for s in shards]), yb)
    assert shards[2][-1][0].shape == (0, 2)  # the last batch of 2 rows leaves rank 2 none


def test_a_bad_shard_is_refused():
    with pytest.raises(ValueError, match="0 <= rank < size"):
        DataLoader(np.zeros((4, 2)), backend=arraynn.get_backend("numpy"), shard=(2, 2))


# ---- the trainer over a communicator of threads ----------------------------------------
class ThreadGroup:
    """``size`` communicators whose ranks are threads of this process (sums on the host)."""

    def __init__(self, size: int) -> None:
        self.size, self.slots = size, [None] * size
        self.barrier = threading.Barrier(size, timeout=60)

    def member(self, rank: int) -> distributed.Communicator:
        group = self

        class Member(distributed.Communicator):
            name = "threads"

            def _gather(self, obj):
                group.slots[rank] = obj
                group.barrier.wait()
                every = list(group.slots)
                group.barrier.wait()
                return every

            def allreduce(self, x, backend):
                mine = np.array(backend.to_numpy(x), copy=True)  # the buffer changes on return
                return backend.asarray(sum(self._gather(mine)))

            def allreduce_scalar(self, value):
                return float(sum(self._gather(float(value))))

            def bcast(self, obj, root=0):
                return self._gather(obj)[root]

            def allgather(self, obj):
                return self._gather(obj)

            def barrier(self):
                group.barrier.wait()

        m = Member()
        m.rank, m.size = rank, self.size
        return m


def _fit_on_ranks(size: int, params: dict, X, y) -> list[NNClassifier]:
    group, models, errors = ThreadGroup(size), [None] * size, []

    def work(rank):
        try:
            models[rank] = NNClassifier(**params).fit(X, y, comm=group.member(rank))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)
            group.barrier.abort()

    threads = [threading.Thread(target=work, args=(r,)) for r in range(size)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    if errors:
        raise errors[0]
    return models


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_ranks_of_threads_train_what_one_process_trains(backend64, optimizer):
    rng = np.random.default_rng(0)
    y = np.arange(19) % 3
    X = rng.normal(size=(19, 4)) + y[:, None]
    params = dict(n_hidden_units=5, epochs=2, batch_size=4, random_seed=2, optimizer=optimizer,
                  learning_rate=0.02, bias=True, l1=0.01, l2=0.1, backend=backend64,
                  dtype=backend64.dtype_name)
    ref = NNClassifier(**params).fit(X, y)
    want = ref.backend_.to_numpy(ref._state.params)
    for model in _fit_on_ranks(3, params, X, y):  # the last batch of 3 rows: one each
        np.testing.assert_allclose(model.backend_.to_numpy(model._state.params), want, rtol=1e-10, atol=1e-13)
        np.testing.assert_allclose(model.loss_curve_, ref.loss_curve_, rtol=1e-10)


def test_ranks_of_threads_train_a_network_of_layers_as_one_process(backend64):
    # dropout included: each rank draws its slice's rows of the whole batch's masks
    from arraynn import layers

    rng = np.random.default_rng(3)
    y = np.arange(38) % 3
    X = rng.normal(size=(38, 6)) + y[:, None]
    params = dict(layers=[layers.Dropout(0.1), layers.Dense(7), layers.ReLU(), layers.Dropout(0.2)],
                  epochs=2, batch_size=8, random_seed=2, optimizer="adam", learning_rate=0.02, bias=True,
                  l2=0.1, output="softmax", backend=backend64, dtype=backend64.dtype_name)
    ref = NNClassifier(**params).fit(X, y)
    want = ref.backend_.to_numpy(ref._state.params)
    for model in _fit_on_ranks(3, params, X, y):
        np.testing.assert_allclose(model.backend_.to_numpy(model._state.params), want, rtol=1e-10, atol=1e-13)


def test_the_seed_drawn_on_rank_0_is_every_rank_s():
    X, y = np.random.default_rng(1).normal(size=(8, 3)), np.arange(8) % 2
    a, b = _fit_on_ranks(2, dict(epochs=1, n_hidden_units=3, batch_size=4), X, y)
    assert a.random_seed_ == b.random_seed_
    np.testing.assert_array_equal(a._state.params, b._state.params)


def test_one_rank_is_one_process():
    X, y = np.random.default_rng(1).normal(size=(8, 3)), np.arange(8) % 2
    params = dict(epochs=2, n_hidden_units=3, batch_size=3, random_seed=0, dtype="float64")
    a = NNClassifier(**params).fit(X, y, comm=SingleProcess())
    b = NNClassifier(**params).fit(X, y)
    np.testing.assert_array_equal(a._state.params, b._state.params)


# ---- the world ---------------------------------------------------------------------------
def _clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in distributed._LAUNCHER_VARIABLES}
    env["PYTHONPATH"] = str(ROOT)
    return env


def test_without_a_launcher_the_world_is_one_process_and_mpi4py_stays_unimported():
    code = ("import sys, arraynn\nfrom arraynn import distributed\nw = distributed.world()\n"
            "print(type(w).__name__, w.rank, w.size, 'mpi4py' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], env=_clean_env(), capture_output=True,
                         text=True, timeout=60)
    assert out.stdout.split() == ["SingleProcess", "0", "1", "False"], out.stderr


def test_a_launcher_without_mpi4py_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("PMI_SIZE", "2")
    monkeypatch.setitem(sys.modules, "mpi4py", None)
    with pytest.raises(DistributedError, match=r'pip install "arraynn\[mpi\]"'):
        distributed.world()


def test_host_views_share_memory():
    a = np.zeros(3)
    assert arraynn.get_backend("numpy").library.host_view(a) is a
    assert arraynn.get_backend("array_api_strict").library.host_view(None) is None
    torch = pytest.importorskip("torch")
    t = torch.zeros(3, dtype=torch.float64)
    arraynn.get_backend("torch").library.host_view(t)[1] = 5.0  # MPI sums into the tensor itself
    assert t.tolist() == [0.0, 5.0, 0.0]


# ---- the choice of communicator, NCCL through fakes --------------------------------------
class FakeNccl(types.ModuleType):
    NCCL_FLOAT32, NCCL_FLOAT64, NCCL_SUM = 7, 8, 0

    def __init__(self):
        super().__init__("cupy.cuda.nccl")
        self.made, self.calls = [], []
        fake = self

        class NcclCommunicator:
            def __init__(self, size, uid, rank):
                fake.made.append((size, uid, rank))

            def allReduce(self, *args):
                fake.calls.append(args)

        self.NcclCommunicator = NcclCommunicator

    def get_unique_id(self):
        return "the-nccl-id"


class FakeDevice:
    def __init__(self, id):
        self.id = id

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


class FakeArray:
    def __init__(self, dtype="float32", size=6, contiguous=True):
        self.dtype, self.size = dtype, size
        self.data = types.SimpleNamespace(ptr=4096)
        self.flags = types.SimpleNamespace(c_contiguous=contiguous)


@pytest.fixture
def fake_cupy(monkeypatch):
    nccl = FakeNccl()
    cuda = types.ModuleType("cupy.cuda")
    cuda.nccl, cuda.Device = nccl, FakeDevice
    cuda.get_current_stream = lambda: types.SimpleNamespace(ptr=99)
    cupy = types.ModuleType("cupy")
    cupy.cuda = cuda
    for name, mod in (("cupy", cupy), ("cupy.cuda", cuda), ("cupy.cuda.nccl", nccl)):
        monkeypatch.setitem(sys.modules, name, mod)
    return nccl


def _fake_mpi(rank: int, size: int, local_rank: int = 0) -> MPICommunicator:
    base = MPICommunicator.__new__(MPICommunicator)
    base.rank, base.size, base.local_rank = rank, size, local_rank
    base.sent = []

    def bcast(obj, root=0):
        base.sent.append(obj)
        return "the-nccl-id"  # what rank 0 made

    base.bcast = bcast
    return base


def _fake_cupy_backend(device_id: int):
    return types.SimpleNamespace(name="cupy", library=cupy_library, device=FakeDevice(device_id))


@pytest.mark.parametrize("rank", [0, 1])
def test_nccl_gets_its_id_from_rank_0_through_mpi(fake_cupy, rank):
    base = _fake_mpi(rank, 2, local_rank=rank)
    comm = distributed.communicator("nccl", _fake_cupy_backend(rank), base)
    assert isinstance(comm, NcclCommunicator) and comm.name == "nccl"
    assert base.sent == ["the-nccl-id" if rank == 0 else None]
    assert fake_cupy.made == [(2, "the-nccl-id", rank)]
    assert (comm.rank, comm.size, comm.local_rank) == (rank, 2, rank)


def test_nccl_sums_the_buffer_in_place_on_the_current_stream(fake_cupy):
    comm = distributed.communicator("nccl", _fake_cupy_backend(0), _fake_mpi(0, 2))
    for dtype, code in (("float32", 7), ("float64", 8)):
        x = FakeArray(dtype)
        assert comm.allreduce(x, None) is x
        assert fake_cupy.calls[-1] == (4096, 4096, 6, code, FakeNccl.NCCL_SUM, 99)
    with pytest.raises(TypeError, match="float32 or float64"):
        comm.allreduce(FakeArray("float16"), None)
    with pytest.raises(ValueError, match="contiguous"):
        comm.allreduce(FakeArray(contiguous=False), None)


def test_auto_picks_nccl_for_cupy_ranks_and_mpi_otherwise(fake_cupy):
    base = _fake_mpi(0, 2)
    assert isinstance(distributed.communicator("auto", _fake_cupy_backend(0), base), NcclCommunicator)
    assert distributed.communicator("mpi", _fake_cupy_backend(0), base) is base
    assert distributed.communicator("auto", arraynn.get_backend("numpy"), base) is base
    one = SingleProcess()
    assert distributed.communicator("auto", _fake_cupy_backend(0), one) is one
    assert distributed.communicator("nccl", _fake_cupy_backend(0), one) is one


def test_nccl_on_another_backend_names_the_fix():
    with pytest.raises(DistributedError, match="--comm mpi"):
        distributed.communicator("nccl", arraynn.get_backend("numpy"), _fake_mpi(0, 2))
    with pytest.raises(DistributedError, match="unknown communicator"):
        distributed.communicator("gloo", None, SingleProcess())


def test_auto_without_nccl_in_cupy_falls_back_to_mpi(monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", None)
    base = _fake_mpi(0, 2)
    assert distributed.communicator("auto", _fake_cupy_backend(0), base) is base
    with pytest.raises(DistributedError, match="NCCL"):
        distributed.communicator("nccl", _fake_cupy_backend(0), base)


def test_each_gpu_rank_gets_its_own_device(monkeypatch):
    made = []
    monkeypatch.setattr(arraynn.backends, "get_backend", lambda *a: made.append(a) or "moved")
    gpu = types.SimpleNamespace(name="cupy", device_name="cuda:0", dtype_name="float64")
    rank3 = types.SimpleNamespace(size=4, local_rank=3)
    assert distributed.rank_backend(gpu, rank3, device_given=False) == "moved"
    assert made == [("cupy", "cuda:3", "float64")]
    assert distributed.rank_backend(gpu, rank3, device_given=True) is gpu
    assert distributed.rank_backend(gpu, SingleProcess(), device_given=False) is gpu
    cpu = arraynn.get_backend("numpy")
    assert distributed.rank_backend(cpu, rank3, device_given=False) is cpu


def test_ranks_of_threads_train_batchnorm_with_the_global_batch_statistics(backend64):
    # the sums of BatchNorm's statistics and of its input gradient go over the ranks, so
    # 3 ranks train what one process trains; the last batch of 2 rows leaves a rank none
    from arraynn import layers

    rng = np.random.default_rng(5)
    y = np.arange(34) % 3
    X = (rng.normal(size=(34, 16)) + y[:, None]).reshape(34, 1, 4, 4)
    body = [layers.Conv2D(3, 3, padding="same", bias=False), layers.BatchNorm(), layers.ReLU(),
            layers.Flatten(), layers.Dense(5, bias=False), layers.BatchNorm(0.8), layers.Tanh()]
    params = dict(layers=body, epochs=2, batch_size=8, random_seed=2, optimizer="adam", learning_rate=0.02,
                  output="softmax", backend=backend64, dtype=backend64.dtype_name)
    _three_ranks_train_as_one_process(params, X, y)


def _three_ranks_train_as_one_process(params: dict, X, y, between=lambda: None) -> None:
    """One process's fit, ``between()``, then 3 ranks' fits: the same weights and running
    statistics on every rank."""
    ref = NNClassifier(**params).fit(X, y)
    between()
    be = ref.backend_
    for model in _fit_on_ranks(3, params, X, y):
        pairs = [(model._state.params, ref._state.params),
                 (model._state.opt["stats"], ref._state.opt["stats"])]
        for mine, want in pairs:
            np.testing.assert_allclose(be.to_numpy(mine), be.to_numpy(want), rtol=1e-9, atol=1e-12)


def test_ranks_of_threads_train_batchnorm_fused_with_max_pooling_as_one_process(monkeypatch):
    # NumPy runs BatchNorm + MaxPool2D as one fused pass (for arrays of 4,096 numbers and
    # more): its sums go over the ranks too, so 3 ranks still train what one process trains
    from arraynn import layers
    from arraynn.ops import numba_kernels

    kernels = numba_kernels.kernels()
    if kernels is None:
        pytest.skip("the fused passes need Numba")
    calls = []
    monkeypatch.setattr(kernels, "bn_pool_input_grad",
                        lambda *a, f=kernels.bn_pool_input_grad: calls.append(1) or f(*a))
    rng = np.random.default_rng(6)
    y = np.arange(100) % 3
    X = (rng.normal(size=(100, 144)) + y[:, None]).reshape(100, 1, 12, 12)
    body = [layers.Conv2D(8, 3, padding="same", bias=False), layers.BatchNorm(), layers.MaxPool2D(2),
            layers.ReLU(), layers.Flatten(), layers.Dense(5)]
    params = dict(layers=body, epochs=2, batch_size=48, random_seed=2, optimizer="adam", learning_rate=0.02,
                  output="softmax", backend="numpy", dtype="float64")
    fused_alone = []

    def between():  # the one process fused
        fused_alone.append(bool(calls))
        calls.clear()

    _three_ranks_train_as_one_process(params, X, y, between)
    assert fused_alone == [True] and calls  # and so did the ranks
