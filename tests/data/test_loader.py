"""The device-aware loader: every sample once per epoch, one upload per epoch."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import assert_on_backend

import arraynn
from arraynn.data.loader import DataLoader, batch_bounds


def _data(n=103, d=4):
    X = (np.arange(n * d).reshape(n, d) % 251).astype(np.uint8)
    X[:, 0] = np.arange(n) % 256  # row id (n < 256)
    y = np.arange(n) % 7
    return X, y


def _epoch_rows(loader, be, epoch):
    rows, labels, sizes = [], [], []
    for Xb, yb in loader.epoch(epoch):
        assert_on_backend(Xb, be)
        assert Xb.dtype == be.dtype
        rows.append(be.to_numpy(Xb)[:, 0].astype(int))
        labels.append(be.to_numpy(yb))
        sizes.append(Xb.shape[0])
    return np.concatenate(rows), np.concatenate(labels), sizes


@pytest.mark.parametrize("stream", [False, True], ids=["resident", "stream"])
@pytest.mark.parametrize(("sizes", "shuffle"), [
    ({"batch_size": 10}, True), ({"batch_size": 10}, False), ({"n_batches": 7}, False),
    ({"n_batches": 7}, True)])
def test_every_sample_once_per_epoch(backend, sizes, shuffle, stream):
    X, y = _data()
    loader = DataLoader(X, y, backend=backend, shuffle=shuffle, seed=3, stream=stream,
                        chunk_size=25, **sizes)
    seen_orders = []
    for epoch in range(3):
        rows, labels, _ = _epoch_rows(loader, backend, epoch)
        assert sorted(rows.tolist()) == list(range(len(X)))
        np.testing.assert_array_equal(labels, y[rows])
        seen_orders.append(rows.tolist())
    if shuffle:
        assert seen_orders[0] != seen_orders[1]
    else:
        assert seen_orders[0] == list(range(len(X)))
    loader.close()


def test_n_batches_follows_array_split():
    for n, k in [(60000, 25), (103, 7), (10, 10), (11, 3)]:
        got = [e - s for s, e in batch_bounds(n, n_batches=k)]
        assert got == [len(a) for a in np.array_split(np.arange(n), k)]


def test_batch_size_and_drop_last():
    assert [e - s for s, e in batch_bounds(25, batch_size=10)] == [10, 10, 5]
    assert [e - s for s, e in batch_bounds(25, batch_size=10, drop_last=True)] == [10, 10]
    with pytest.raises(ValueError, match="exactly one"):
        batch_bounds(10, batch_size=2, n_batches=2)
    with pytest.raises(ValueError, match="more than"):
        batch_bounds(3, n_batches=5)


def test_same_seed_same_batches_on_every_backend(backend):
    X, y = _data()
    ref = DataLoader(X, y, backend=arraynn.get_backend("numpy"), batch_size=16, seed=11)
    other = DataLoader(X, y, backend=backend, batch_size=16, seed=11)
    for epoch in range(2):
        np.testing.assert_array_equal(_epoch_rows(ref, ref.backend, epoch)[0],
                                      _epoch_rows(other, backend, epoch)[0])


def test_stream_gives_the_resident_batches(backend):
    X, y = _data()
    resident = DataLoader(X, y, backend=backend, batch_size=8, seed=5)
    streamed = DataLoader(X, y, backend=backend, batch_size=8, seed=5, stream=True, chunk_size=30)
    assert len(streamed.chunks) > 1
    for epoch in range(2):
        a, b = _epoch_rows(resident, backend, epoch), _epoch_rows(streamed, backend, epoch)
        np.testing.assert_array_equal(a[0], b[0])
        assert a[2] == b[2]
    streamed.close()


@pytest.mark.parametrize("shuffle", [True, False])
def test_resident_epoch_uploads_only_the_permutation(backend, shuffle):
    X, y = _data(200, 8)
    with arraynn.count_transfers() as setup:
        loader = DataLoader(X, y, backend=backend, batch_size=16, shuffle=shuffle, seed=1)
    # the images once (as uint8) and the labels once
    assert setup.host_to_device == 2
    assert setup.host_to_device_bytes == X.nbytes + y.size * np.dtype(
        "int64" if backend.index_dtype == backend.xp.int64 else "int32").itemsize
    with arraynn.count_transfers() as epoch:
        n = sum(int(Xb.shape[0]) for Xb, _ in loader.epoch(0))
    assert n == 200
    assert epoch.host_to_device == (1 if shuffle else 0)
    assert epoch.device_to_host == 0


def test_transform_runs_once_on_the_device(backend):
    X, y = _data()
    calls = []

    def transform(a):
        calls.append(a.shape)
        return a * 2.0

    loader = DataLoader(X, y, backend=backend, batch_size=50, transform=transform, shuffle=False)
    first, _ = next(iter(loader.epoch(0)))
    np.testing.assert_allclose(backend.to_numpy(first), X[:50].astype(np.float32) * 2)
    assert calls == [X.shape]


def test_mismatched_lengths_are_refused(backend):
    X, y = _data()
    with pytest.raises(ValueError, match="103 samples but y has 5"):
        DataLoader(X, y[:5], backend=backend, batch_size=4)


def test_iterating_a_loader_gives_epoch_0(backend):
    X = np.arange(40, dtype=np.uint8).reshape(10, 4)
    loader = DataLoader(X, np.arange(10), backend=backend, batch_size=3, shuffle=True, seed=5)
    got = [backend.to_numpy(xb).tolist() for xb, _ in loader]
    assert got == [backend.to_numpy(xb).tolist() for xb, _ in loader.epoch(0)]
    assert len(got) == 4


@pytest.mark.parametrize("stream", [False, True], ids=["resident", "stream"])
@pytest.mark.parametrize("shuffle", [False, True])
def test_sample_weights_are_cut_like_the_labels(backend, shuffle, stream):
    X, y = _data()
    w = np.arange(len(X), dtype=np.float64) / 10.0  # weight = row id / 10
    loader = DataLoader(X, y, backend=backend, batch_size=10, shuffle=shuffle, seed=2,
                        sample_weight=w, stream=stream, chunk_size=25)
    assert loader.weighted and loader.total_weight == pytest.approx(w.sum())
    for epoch in range(2):
        rows, weights = [], []
        for Xb, yb, wb in loader.epoch(epoch):
            assert_on_backend(wb, backend)
            assert wb.dtype == backend.dtype and wb.shape == (Xb.shape[0],)
            rows.append(backend.to_numpy(Xb)[:, 0].astype(int))
            np.testing.assert_array_equal(backend.to_numpy(yb), y[rows[-1]])
            weights.append(backend.to_numpy(wb))
        rows = np.concatenate(rows)
        np.testing.assert_allclose(np.concatenate(weights), w[rows].astype(backend.dtype_name))
    loader.close()
    plain = DataLoader(X, y, backend=backend, batch_size=10)
    assert not plain.weighted and plain.total_weight == len(X)
    assert all(len(batch) == 2 for batch in plain.epoch(0))
    with pytest.raises(ValueError, match="one weight per sample"):
        DataLoader(X, y, backend=backend, batch_size=10, sample_weight=w[:5])
