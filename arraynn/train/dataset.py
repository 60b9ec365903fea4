"""The data of a run: Fashion-MNIST on the host, its split, and the preprocessed sets on the device.

The images stay uint8 on the host; each set is uploaded once, converted to the
backend's float dtype and preprocessed there (:func:`device_sets`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

from .errors import UsageError

__all__ = ["TRAIN_EVAL_SIZE", "DeviceSets", "FashionMNIST", "Split", "class_names", "device_sets",
           "load_data", "split_data", "upload"]

#: Per-epoch train accuracy is measured on this many training images (a fixed,
#: seeded subset), to keep the per-epoch evaluation cheap.
TRAIN_EVAL_SIZE = 10_000


def class_names() -> list[str]:
    """The ten Fashion-MNIST class names, in label order."""
    from ..data.fashion_mnist import FASHION_MNIST_CLASSES

    return list(FASHION_MNIST_CLASSES)


@dataclass(frozen=True)
class FashionMNIST:
    """Fashion-MNIST on the host (uint8 images, labels) and where it came from."""

    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    info: dict[str, Any]

    @cached_property
    def fingerprint(self) -> str:
        """A short hash of the training set: a resumed run checks it trains on the same data."""
        h = hashlib.sha256()
        h.update(str(self.X_train.shape).encode())
        h.update(np.ascontiguousarray(self.X_train).data)
        h.update(np.ascontiguousarray(self.y_train, dtype=np.int64).data)
        return h.hexdigest()[:16]

    def describe_source(self) -> str:
        """Where the files came from, for the report's ``data:`` line."""
        info = self.info
        src = info.get("source")
        if src == "download":
            urls = sorted({u.rsplit("/", 1)[0] + "/" for u in info.get("downloaded", {}).values()})
            return f"downloaded into {info['directory']} from {', '.join(urls)}"
        if src == "cache":
            return f"the cache {info['directory']} (checksums verified)"
        return f"the user-supplied directory {info['directory']}"


def load_data(data_dir: str | None, *, download: bool, mirrors: list[str] | None) -> FashionMNIST:
    """Fashion-MNIST from ``data_dir`` (``None``: ``$ARRAYNN_DATA``, else the cache),
    downloaded from ``mirrors`` (``None``: the built-in ones) when missing and allowed."""
    from ..data.fashion_mnist import load_fashion_mnist

    kwargs: dict[str, Any] = {}
    if mirrors:
        kwargs["mirrors"] = [m if m.endswith("/") else m + "/" for m in mirrors]
    X_train, y_train, X_test, y_test, info = load_fashion_mnist(
        data_dir, download=download, return_info=True, **kwargs)
    return FashionMNIST(X_train, y_train, X_test, y_test, info)


@dataclass(frozen=True)
class Split:
    """Host indices (sorted) of the training images, of the validation images, and of
    the training images' subset the per-epoch train accuracy is measured on (indices
    into ``train``)."""

    train: np.ndarray
    val: np.ndarray
    train_eval: np.ndarray

    def describe(self, limit: int | None) -> str:
        """The report's ``split:`` line (without its indentation)."""
        return (f"split: {len(self.train):,} training images"
                + (f" (the first {limit:,})" if limit is not None else "")
                + (f", {len(self.val):,} held out for validation" if len(self.val)
                   else ", no validation split")
                + f"; per-epoch train accuracy on {len(self.train_eval):,} of them")


def split_data(cfg: dict[str, Any], n_total: int) -> Split:
    """Split ``n_total`` training images as the configuration says.

    ``val_size`` images drawn with ``numpy.random.default_rng(seed)`` are held out;
    the first ``limit`` of the rest are trained on; up to :data:`TRAIN_EVAL_SIZE` of
    those, drawn with ``default_rng([seed, 1])``, measure the per-epoch train accuracy.

    Raises
    ------
    UsageError
        No training images would be left, or ``n_batches`` exceeds them.
    """
    seed = int(cfg["seed"])
    val = int(cfg["val_size"])
    if val >= n_total:
        raise UsageError(f"--val-size {val} leaves no training images out of {n_total}")
    if val:
        perm = np.random.default_rng(seed).permutation(n_total)
        val_idx, train_idx = np.sort(perm[:val]), np.sort(perm[val:])
    else:
        val_idx, train_idx = np.arange(0), np.arange(n_total)
    if cfg["limit"] is not None:
        train_idx = train_idx[: int(cfg["limit"])]
    if cfg["n_batches"] is not None and cfg["n_batches"] > len(train_idx):
        raise UsageError(f"--n-batches {cfg['n_batches']} is more than the {len(train_idx)} training images")
    n_eval = min(TRAIN_EVAL_SIZE, len(train_idx))
    eval_idx = np.sort(np.random.default_rng([seed, 1]).choice(len(train_idx), n_eval, replace=False))
    return Split(train_idx, val_idx, eval_idx)


def upload(be: Any, X_u8: np.ndarray) -> Any:
    """Upload uint8 images once and convert them to the float dtype on the device."""
    return be.xp.astype(be.asarray(X_u8), be.dtype)


@dataclass(frozen=True)
class DeviceSets:
    """The preprocessed sets on the device, and the preprocessing (fitted).

    ``evals`` maps ``"train"`` (the fixed subset) and, with a validation split,
    ``"val"`` to ``(X on the device, y on the host)``.
    """

    X_train: Any
    y_train: np.ndarray
    evals: dict[str, tuple[Any, np.ndarray]]
    X_test: Any
    preprocessor: Any


def device_sets(be: Any, scheme: str, data: FashionMNIST, split: Split) -> DeviceSets:
    """Upload each set once and preprocess it on the device with ``scheme``
    (fitted on the training images)."""
    from ..data.preprocessing import Preprocessor

    X_tr = upload(be, data.X_train[split.train])
    prep = Preprocessor(scheme).fit(X_tr)
    X_tr = prep.apply(X_tr)
    y_tr = data.y_train[split.train]
    sub = be.asarray(split.train_eval, dtype=be.index_dtype)
    evals = {"train": (be.xp.take(X_tr, sub, axis=0), y_tr[split.train_eval])}
    if len(split.val):
        evals["val"] = (prep.apply(upload(be, data.X_train[split.val])), data.y_train[split.val])
    X_te = prep.apply(upload(be, data.X_test))
    return DeviceSets(X_tr, y_tr, evals, X_te, prep)
