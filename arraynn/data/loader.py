"""The device-aware minibatch loader.

Resident mode (the default) copies the data set to the backend's device **once**:
images travel as they are (uint8 for Fashion-MNIST, a quarter of the bytes of
float32) and are converted to the backend's float dtype there, then an optional
``transform`` (e.g. ``Preprocessor.apply`` of a fitted
:class:`arraynn.data.preprocessing.Preprocessor`) runs on the device. With
``keep_integers=True`` small integers (8 and 16 bits: pixels) stay in their dtype on
the device, a quarter of float32's memory for uint8, and the batches come out so: the
consumer converts them (an estimator's :class:`~arraynn.data.pipeline.BatchPipeline`
converts, augments and preprocesses each one). Each epoch
then costs one host-to-device copy: the epoch's permutation, drawn on the host
with NumPy (the standard has no RNG) and uploaded as one index array. Minibatches
are cut on the device with ``take``; unshuffled batches are plain slices.

Streaming mode (``stream=True``) is for data larger than device memory: the data
stays on the host, and each epoch is sent in chunks of whole minibatches. A
background thread gathers and uploads the next chunk while the current one trains
(on CPU backends the overlap is the gather and conversion; on GPU backends also the
copy: on CuPy from pinned memory on a copy stream of the thread's, see the backend's
``background_context``). Batches are identical to resident mode for the same seed.

Sample weights (``sample_weight``) travel like the labels: uploaded once (resident)
or with each chunk (streaming) in the float dtype, and cut into the same minibatches;
each batch is then ``(X, y, w)`` instead of ``(X, y)``.

Batching follows either ``batch_size`` (the last batch may be smaller, unless
``drop_last``) or ``n_batches`` (NumPy's ``array_split`` sizes: the article's fixed
minibatches). The permutation of epoch ``e`` is
``numpy.random.default_rng([seed, e]).permutation(n)``: it depends only on the seed
and the epoch number, so a run resumed at epoch ``e`` sees the same batches, and the
same seed gives the same batches on every backend.
"""

from __future__ import annotations

import concurrent.futures
import math
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from ..backends import Backend

__all__ = ["DataLoader", "batch_bounds", "on_device", "shard_bounds"]


def on_device(X: Any, backend: Backend, keep_integers: bool = False) -> Any:
    """``X`` on the backend's device as a resident loader stores it: in the float dtype,
    or, with ``keep_integers``, small integers (8 and 16 bits) in their own dtype. One
    host-to-device copy (integers travel as they are and are converted there)."""
    be, xp = backend, backend.xp
    with be.device_context():
        Xd = be.asarray(X, dtype=None if _is_integer(X) else be.dtype)
        if Xd.dtype != be.dtype and not (keep_integers and _small_integer(Xd, xp)):
            Xd = xp.astype(Xd, be.dtype)
    return Xd


def _small_integer(X: Any, xp: Any) -> bool:
    return any(X.dtype == getattr(xp, name, None) for name in ("uint8", "int8", "uint16", "int16"))


def batch_bounds(n: int, batch_size: int | None = None, n_batches: int | None = None,
                 drop_last: bool = False) -> list[tuple[int, int]]:
    """``(start, stop)`` of each minibatch of ``n`` samples.

    Exactly one of ``batch_size`` and ``n_batches`` is given. ``n_batches`` follows
    ``numpy.array_split``: the first ``n % n_batches`` batches hold one extra sample.
    """
    if (batch_size is None) == (n_batches is None):
        raise ValueError("give exactly one of batch_size and n_batches")
    if batch_size is not None:
        if int(batch_size) < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        bs = int(batch_size)
        bounds = [(i * bs, min((i + 1) * bs, n)) for i in range(math.ceil(n / bs))]
        if drop_last and bounds and bounds[-1][1] - bounds[-1][0] < bs:
            bounds.pop()
        return bounds
    assert n_batches is not None  # exactly one of the two is given
    k = int(n_batches)
    if k < 1:
        raise ValueError(f"n_batches must be >= 1, got {n_batches}")
    if k > n:
        raise ValueError(f"n_batches={k} is more than the {n} samples; lower n_batches")
    base, extra = divmod(n, k)
    bounds, start = [], 0
    for i in range(k):
        stop = start + base + (1 if i < extra else 0)
        bounds.append((start, stop))
        start = stop
    return bounds


def shard_bounds(start: int, stop: int, rank: int, size: int) -> tuple[int, int]:
    """Rank ``rank``'s contiguous part of the minibatch ``start:stop`` split among
    ``size`` ranks, as ``numpy.array_split`` splits it: the first ``(stop - start) %
    size`` ranks hold one row more, and ranks past the batch's length hold none
    (``start == stop``; nothing is padded)."""
    n = stop - start
    base, extra = divmod(n, size)
    lo = start + rank * base + min(rank, extra)
    return lo, lo + base + (1 if rank < extra else 0)


class DataLoader:
    """Minibatches of ``(X, y)`` on a backend's device.

    Parameters
    ----------
    X : array of shape (n_samples, n_features)
        Host NumPy data (any dtype; uint8 images travel as uint8), or an array that
        is already on the backend (then it is used as it is).
    y : array of shape (n_samples,), optional
        Integer labels (class indices). Uploaded once as the device's index dtype.
    sample_weight : array of shape (n_samples,), optional
        A weight per sample (host NumPy, or already on the backend). Uploaded once
        in the backend's float dtype; every batch then carries its rows' weights as
        a third entry. ``total_weight`` is their sum (``n_samples`` without weights).
    backend : Backend
        Where the batches live, and their float dtype.
    batch_size, n_batches : int
        Give one (``n_batches`` is the article's ``array_split`` batching).
    shuffle : bool
        Draw a new permutation every epoch (default True).
    drop_last : bool
        With ``batch_size``, skip a last, smaller batch.
    seed : int
        Seed of the permutations (see the module docstring). Default 0.
    transform : callable, optional
        Applied on the device to the float data: once to the whole set in resident
        mode, to each chunk in streaming mode (so it must act row by row). Not with
        ``keep_integers``.
    keep_integers : bool
        Resident mode: keep 8- and 16-bit integer data (uint8 pixels) in its dtype on
        the device; its batches come out in it (see the module docstring).
    stream : bool
        Keep the data on the host and stream it in chunks.
    chunk_size : int, optional
        Rows per chunk in streaming mode (rounded to whole batches); default about
        64 MiB of float data.
    shard : (rank, size), optional
        Data-parallel training: every minibatch is this rank's contiguous part of the
        global minibatch (:func:`shard_bounds`; possibly empty), cut from the same
        permutation on every rank. ``len(loader)`` and ``n_samples`` stay global.
    """

    def __init__(self, X: Any, y: Any = None, *, backend: Backend, batch_size: int | None = None,
                 n_batches: int | None = None, shuffle: bool = True, drop_last: bool = False,
                 seed: int | None = 0, transform: Callable[[Any], Any] | None = None,
                 stream: bool = False, chunk_size: int | None = None,
                 shard: tuple[int, int] | None = None, sample_weight: Any = None,
                 keep_integers: bool = False) -> None:
        if transform is not None and keep_integers:
            raise ValueError("transform acts on float data; with keep_integers=True the batches keep "
                             "their integer dtype: convert and transform each batch instead")
        if stream and keep_integers:
            raise ValueError("keep_integers applies to resident data; streaming converts each chunk")
        if batch_size is None and n_batches is None:
            batch_size = 32
        n = int(X.shape[0])
        if y is not None and int(y.shape[0]) != n:
            raise ValueError(f"X has {n} samples but y has {y.shape[0]}; they must match")
        if sample_weight is not None and tuple(sample_weight.shape) != (n,):
            raise ValueError(f"X has {n} samples but sample_weight has shape "
                             f"{tuple(sample_weight.shape)}; give one weight per sample")
        self.backend = backend
        self.n_samples = n
        self.weighted = sample_weight is not None
        #: The sum of the weights (the loss is normalised by it), or ``n_samples``.
        self.total_weight = float(n)
        if self.weighted:
            self.total_weight = (float(np.sum(sample_weight, dtype=np.float64))
                                 if isinstance(sample_weight, np.ndarray)
                                 else backend.to_float(backend.xp.sum(sample_weight)))
        self.shuffle = bool(shuffle)
        self.seed = 0 if seed is None else int(seed)
        self.transform = transform
        self.stream = bool(stream)
        self.bounds = batch_bounds(n, batch_size, n_batches, drop_last)
        if not self.bounds:
            raise ValueError(f"no batch of size {batch_size} fits in {n} samples with drop_last")
        #: Each minibatch's rows read by this rank (all of them without ``shard``).
        self.local_bounds = self.bounds
        if shard is not None:
            rank, size = (int(v) for v in shard)
            if not 0 <= rank < size:
                raise ValueError(f"shard must be (rank, size) with 0 <= rank < size, got {shard!r}")
            self.local_bounds = [shard_bounds(s, e, rank, size) for s, e in self.bounds]
        be = backend
        if self.stream:
            if not isinstance(X, np.ndarray):
                raise TypeError("stream=True reads the data from the host: pass NumPy arrays")
            self._X_host = X
            self._y_host = None if y is None else np.asarray(y)
            self._w_host = None if sample_weight is None else np.asarray(sample_weight)
            row_bytes = max(1, int(np.prod(X.shape[1:])) * 4)
            rows = int(chunk_size) if chunk_size else max(1, (64 << 20) // row_bytes)
            self.chunks = _group_bounds(self.bounds, rows)
            # the device arrays of the eager mode
            self.X: Any = None
            self.y: Any = None
            self.w: Any = None
        else:
            Xd = on_device(X, be, keep_integers)
            with be.device_context():
                self.X = transform(Xd) if transform is not None else Xd
                if y is None:
                    self.y = None
                elif isinstance(y, np.ndarray):
                    self.y = be.asarray(_labels_host(y), dtype=be.index_dtype)
                else:
                    self.y = be.asarray(y, dtype=be.index_dtype)
                self.w = None if sample_weight is None else be.asarray(sample_weight, dtype=be.dtype)
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None

    def __len__(self) -> int:
        return len(self.bounds)

    def permutation(self, epoch: int) -> np.ndarray | None:
        """The host permutation of ``epoch`` (``None`` without shuffling)."""
        if not self.shuffle:
            return None
        return np.random.default_rng([self.seed, int(epoch)]).permutation(self.n_samples)

    def epoch(self, epoch: int = 0) -> Iterator[tuple[Any, ...]]:
        """The minibatches ``(X_batch, y_batch)`` of one epoch (``y_batch`` may be None),
        ``(X_batch, y_batch, w_batch)`` with sample weights."""
        if self.stream:
            yield from self._stream_epoch(epoch)
            return
        xp, be = self.backend.xp, self.backend
        perm = self.permutation(epoch)
        if perm is None:
            for s, e in self.local_bounds:
                batch: tuple[Any, ...] = self.X[s:e, ...], (None if self.y is None else self.y[s:e])
                yield batch if self.w is None else (*batch, self.w[s:e])
            return
        # The device is entered around each piece of work, not across a yield: the
        # consumer's code between batches keeps its own current device.
        with be.device_context():
            idx = be.asarray(perm, dtype=be.index_dtype)  # the epoch's one upload
        for s, e in self.local_bounds:
            with be.device_context():
                sel = idx[s:e]
                batch = (xp.take(self.X, sel, axis=0),
                         None if self.y is None else xp.take(self.y, sel, axis=0))
                if self.w is not None:
                    batch = (*batch, xp.take(self.w, sel, axis=0))
            yield batch

    __iter__ = epoch  # iterating a loader gives epoch 0's batches

    # ---- streaming -------------------------------------------------------------
    def _load_chunk(self, order: np.ndarray | None, s: int, e: int) -> tuple[Any, ...]:
        """One chunk on the device; runs in the prefetch thread, whose current device and
        copy machinery are set by the backend's ``background_context``."""
        with self.backend.background_context():
            return self._load_chunk_here(order, s, e)

    def _load_chunk_here(self, order: np.ndarray | None, s: int, e: int) -> tuple[Any, ...]:
        be, xp = self.backend, self.backend.xp
        rows = slice(s, e) if order is None else order[s:e]
        Xh = self._X_host[rows]
        Xd = be.asarray(Xh, dtype=None if _is_integer(Xh) else be.dtype)
        if Xd.dtype != be.dtype:
            Xd = xp.astype(Xd, be.dtype)
        if self.transform is not None:
            Xd = self.transform(Xd)
        yd = None
        if self._y_host is not None:
            yd = be.asarray(_labels_host(self._y_host[rows]), dtype=be.index_dtype)
        if self._w_host is None:
            return Xd, yd
        return Xd, yd, be.asarray(self._w_host[rows], dtype=be.dtype)

    def _stream_epoch(self, epoch: int) -> Iterator[tuple[Any, ...]]:
        order = self.permutation(epoch)
        if self._pool is None:
            self._pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="arraynn-prefetch")
        pending = self._pool.submit(self._load_chunk, order, *self.chunks[0][0])
        local = iter(self.local_bounds)
        for c, (span, batches) in enumerate(self.chunks):
            Xc, yc, *wc = pending.result()
            if c + 1 < len(self.chunks):
                pending = self._pool.submit(self._load_chunk, order, *self.chunks[c + 1][0])
            base = span[0]
            for _ in batches:
                s, e = next(local)
                batch = Xc[s - base:e - base, ...], (None if yc is None else yc[s - base:e - base])
                yield batch if not wc else (*batch, wc[0][s - base:e - base])

    def close(self) -> None:
        """Stop the prefetch thread (streaming mode)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    def __del__(self) -> None:  # pragma: no cover - best effort
        try:
            self.close()
        except Exception:
            pass


def _is_integer(X: Any) -> bool:
    dt = getattr(X, "dtype", None)
    if isinstance(X, np.ndarray):
        return X.dtype.kind in "iub"
    name = str(dt)
    return any(k in name for k in ("int", "bool"))


def _labels_host(y: Any) -> np.ndarray:
    labels = np.asarray(y)
    if labels.dtype.kind not in "iu":
        raise TypeError(f"labels must be integer class indices, got dtype {labels.dtype}")
    return labels.astype(np.int64, copy=False)


def _group_bounds(bounds: list[tuple[int, int]],
                  rows: int) -> list[tuple[tuple[int, int], list[tuple[int, int]]]]:
    """Group consecutive batches into chunks of about ``rows`` rows (whole batches)."""
    chunks: list[tuple[tuple[int, int], list[tuple[int, int]]]] = []
    cur: list[tuple[int, int]] = []
    for b in bounds:
        if cur and b[1] - cur[0][0] > rows:
            chunks.append(((cur[0][0], cur[-1][1]), cur))
            cur = []
        cur.append(b)
    if cur:
        chunks.append(((cur[0][0], cur[-1][1]), cur))
    return chunks
