"""The data of a run: Fashion-MNIST (or the user's own data) on the host, its split, and
the preprocessed sets on the device.

``--data-dir`` is a directory of four IDX files named as Fashion-MNIST's (Fashion-MNIST,
MNIST, Kuzushiji-MNIST, or a user's own), a directory of four ``.npy`` arrays
(:data:`ARRAY_NAMES`), or an ``.npz`` file holding them. Labels are the integers
``0 .. n_classes - 1``; the class names come from ``--class-names``, else a
``class_names.txt`` beside the data (one name a line), else an ``.npz``'s
``class_names`` array, else Fashion-MNIST's for ten classes in IDX files, else the
labels as text.

A ``--data-dir`` (or ``$ARRAYNN_DATA``) that does not exist is refused at once, before
anything is downloaded: a mistyped path is not created and downloaded into.

The images stay on the host as they are (uint8); each set is uploaded once
(:func:`device_sets`). The training images stay uint8 on the device: the estimator
fits the preprocessing on them and preprocesses each minibatch, after its augmentation;
the sets the run measures on are converted to the backend's float dtype and
preprocessed there once.
"""

from __future__ import annotations

import argparse
import hashlib
import os
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from .._cli import CLIError, UsageError

__all__ = ["ARRAY_NAMES", "CLASS_NAMES_FILE", "TRAIN_EVAL_SIZE", "DeviceSets", "FashionMNIST", "Split",
           "check_test_set", "class_names", "device_sets", "load_data", "load_run_data", "parse_class_names",
           "split_data", "upload"]

#: The arrays of a data set given as ``.npy`` files (``NAME.npy``) or as an ``.npz``.
ARRAY_NAMES = ("X_train", "y_train", "X_test", "y_test")

#: A file beside the data naming the classes, one a line, in label order.
CLASS_NAMES_FILE = "class_names.txt"

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
    #: The class names in label order.
    names: tuple[str, ...] = ()

    @property
    def n_features(self) -> int:
        return int(np.prod(self.X_train.shape[1:]))

    @property
    def n_classes(self) -> int:
        return len(self.names)

    @property
    def title(self) -> str:
        """``Fashion-MNIST``, or what the user's data is called in the report."""
        return "Fashion-MNIST" if self.info.get("source") in ("download", "cache") else "data"

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
        if src == "arrays":
            return f"the arrays in {info['directory']}"
        return f"the user-supplied directory {info['directory']}"


def parse_class_names(text: str) -> list[str]:
    """``--class-names``: a file with one name a line, else a comma-separated list."""
    path = Path(text)
    if path.is_file():
        try:
            names = [ln.strip() for ln in path.read_text(encoding="utf-8").splitlines()]
        except (OSError, UnicodeDecodeError) as exc:
            raise UsageError(f"cannot read the class names in {path}: {exc}") from None
    else:
        names = [n.strip() for n in text.split(",")]
    names = [n for n in names if n]
    if len(names) < 2 or len(set(names)) != len(names):
        raise UsageError(f"--class-names needs at least two distinct names (a comma-separated list or a "
                         f"file with one a line), got {text!r}")
    return names


def load_data(data_dir: str | None, *, download: bool, mirrors: list[str] | None,
              names: list[str] | None = None) -> FashionMNIST:
    """The data of ``data_dir``: IDX files (``None``: Fashion-MNIST from ``$ARRAYNN_DATA``,
    else the cache, downloaded from ``mirrors`` when missing and allowed), ``.npy`` files
    or an ``.npz`` (see the module docstring); ``names`` are ``--class-names``.

    Raises
    ------
    UsageError
        ``data_dir`` (or ``$ARRAYNN_DATA`` when ``data_dir`` is ``None``) does not exist,
        or is a file other than an ``.npz``.
    """
    from ..data.fashion_mnist import load_fashion_mnist

    path = None if data_dir is None else Path(os.path.expanduser(data_dir))
    _check_data_path(path)
    if path is not None and (path.suffix == ".npz" or (path / "X_train.npy").is_file()):
        data, stored = _load_arrays(path)
    else:
        kwargs: dict[str, Any] = {}
        if mirrors:
            kwargs["mirrors"] = [m if m.endswith("/") else m + "/" for m in mirrors]
        X_train, y_train, X_test, y_test, info = load_fashion_mnist(
            data_dir, download=download, return_info=True, **kwargs)
        data, stored = FashionMNIST(X_train, y_train, X_test, y_test, info), None
    return replace(data, names=tuple(_class_names(data, path, names, stored)))


def load_run_data(args: argparse.Namespace, saved: dict[str, Any] | None = None) -> FashionMNIST:
    """The data of the flags (``--data-dir``, ``--class-names``, ``--no-download``, ``--mirror``);
    a resumed run's (``saved``: its config.json) own directory and class names unless told otherwise."""
    data_dir = args.data_dir
    if data_dir is None and saved is not None and saved.get("data_dir"):
        data_dir = saved["data_dir"]
        if not Path(data_dir).exists():
            raise CLIError(f"the data this run was trained on, {data_dir}, no longer exist; pass "
                           "--data-dir with the same data")
    names = args.class_names
    if names is None and saved is not None and saved.get("class_names"):
        names = list(saved["class_names"])
    return load_data(data_dir, download=not args.no_download, mirrors=args.mirror, names=names)


def check_test_set(data: FashionMNIST) -> None:
    """A test set to measure on: found before any training."""
    if len(data.X_test) == 0:
        raise CLIError(f"the test set of {data.title} from {data.describe_source()} holds 0 images; "
                       "there is nothing to measure a model on: point --data-dir at complete files")


def _check_data_path(path: Path | None) -> None:
    """Refuse a ``--data-dir`` (``None``: a ``$ARRAYNN_DATA``) that does not exist or is a
    file other than an ``.npz``, before anything is downloaded."""
    if path is None:
        env = os.environ.get("ARRAYNN_DATA", "")
        home = Path(os.path.expanduser(env))
        if not env or home.is_dir():
            return
        given = f"$ARRAYNN_DATA is {home}, which"
        if home.exists():
            raise UsageError(f"{given} is a file, not a directory; set ARRAYNN_DATA (or pass --data-dir) "
                             "to the directory that holds the four Fashion-MNIST files")
        raise UsageError(f"{given} does not exist; create it to download Fashion-MNIST into it, or set "
                         "ARRAYNN_DATA (or pass --data-dir) to the directory that holds the four files")
    if path.is_dir() or (path.suffix == ".npz" and path.is_file()):
        return
    if path.suffix == ".npz":
        raise UsageError(f"--data-dir {path} does not exist; give the .npz file that holds "
                         f"{', '.join(ARRAY_NAMES)}")
    if path.exists():
        raise UsageError(f"--data-dir {path} is a file, not a directory; give the directory that holds "
                         "the four Fashion-MNIST files (or your .npy arrays), or an .npz file")
    raise UsageError(f"--data-dir {path} does not exist; create it to download Fashion-MNIST into it, "
                     "or give the directory that holds the four files")


def _class_names(data: FashionMNIST, path: Path | None, names: list[str] | None,
                 stored: list[str] | None) -> list[str]:
    top = max(int(data.y_train.max(initial=0)), int(data.y_test.max(initial=0)))
    if names is None and path is not None:
        side = (path.parent if path.is_file() else path) / CLASS_NAMES_FILE
        if side.is_file():
            names = parse_class_names(str(side))
    names = names or stored
    if names is None:
        fashion = top == 9 and data.info.get("source") != "arrays"
        names = class_names() if fashion else [str(k) for k in range(top + 1)]
    if top >= len(names):
        raise UsageError(f"the labels go up to {top} but {len(names)} class names are given; give one "
                         "name per label 0, 1, ... (--class-names)")
    return list(names)


def _load_arrays(path: Path) -> tuple[FashionMNIST, list[str] | None]:
    """X_train, y_train, X_test, y_test from an ``.npz`` or a directory of ``.npy`` files."""
    from ..data.fashion_mnist import DatasetError

    arrays: dict[str, np.ndarray] = {}
    try:
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as f:
                arrays = {k: f[k] for k in f.files}
        else:
            for name in ARRAY_NAMES:
                if (path / f"{name}.npy").is_file():
                    arrays[name] = np.load(path / f"{name}.npy", allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise DatasetError(f"cannot read the arrays in {path}: {exc}") from None
    missing = [n for n in ARRAY_NAMES if n not in arrays]
    if missing:
        how = "an .npz holding them" if path.suffix == ".npz" else "as .npy files"
        raise DatasetError(f"{path} lacks the arrays {', '.join(missing)}; it needs "
                           f"{', '.join(ARRAY_NAMES)} ({how})")
    X_tr, y_tr, X_te, y_te = (arrays[n] for n in ARRAY_NAMES)
    for X, y, which in ((X_tr, y_tr, "train"), (X_te, y_te, "test")):
        if X.ndim not in (2, 3) or X.dtype.kind not in "biuf":
            raise DatasetError(f"{path}: X_{which} must be numbers of shape (n, features) or (n, height, "
                               f"width), got {X.dtype} of shape {X.shape}")
        if y.ndim != 1 or len(y) != len(X):
            raise DatasetError(f"{path}: y_{which} must be 1-D with one label per row of X_{which}, got "
                               f"shape {y.shape} for {len(X)} rows")
        if y.dtype.kind not in "iu" or (len(y) and y.min() < 0):
            raise DatasetError(f"{path}: y_{which} must hold the integer labels 0, 1, ... (got {y.dtype}); "
                               "map other labels to integers and name them with --class-names")
    if X_tr.shape[1:] != X_te.shape[1:]:
        raise DatasetError(f"{path}: X_train has samples of shape {X_tr.shape[1:]}, X_test {X_te.shape[1:]}")
    stored = [str(n) for n in arrays["class_names"].tolist()] if "class_names" in arrays else None
    info = {"source": "arrays", "directory": str(path.resolve())}
    return FashionMNIST(X_tr, y_tr, X_te, y_te, info), stored


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

    ``val_size`` images drawn with ``numpy.random.default_rng(random_seed)`` are held out;
    the first ``limit`` of the rest are trained on; up to :data:`TRAIN_EVAL_SIZE` of
    those, drawn with ``default_rng([random_seed, 1])``, measure the per-epoch train accuracy.

    Raises
    ------
    UsageError
        No training images would be left, or ``n_batches`` exceeds them.
    """
    seed = int(cfg["random_seed"])
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
    X = np.asarray(X_u8)
    return be.xp.astype(be.asarray(X.reshape(len(X), -1)), be.dtype)


@dataclass(frozen=True)
class DeviceSets:
    """The sets on the device, and the preprocessing fitted on the training images.

    ``X_train`` is the raw training images (uint8 stays uint8), which the estimator
    preprocesses itself; ``X_val`` the raw validation images (early stopping's, scored
    by the estimator), None without a validation split. ``evals`` maps ``"train"`` (a
    fixed subset) and, with a validation split, ``"val"`` to ``(X preprocessed on the
    device, y on the host)``, and ``X_test`` is preprocessed: what the run measures.
    """

    X_train: Any
    y_train: np.ndarray
    evals: dict[str, tuple[Any, np.ndarray]]
    X_test: Any
    preprocessor: Any
    X_val: Any = None


def device_sets(be: Any, scheme: str, data: FashionMNIST, split: Split) -> DeviceSets:
    """Upload each set once: the training images as they are, the sets to measure on
    preprocessed on the device with ``scheme`` (fitted on the training images: the
    statistics the estimator fits too; ``"per-set"`` standardizes the validation and
    test sets with their own, as the article does)."""
    from ..data.loader import on_device
    from ..data.preprocessing import Preprocessor

    X_host = np.asarray(data.X_train[split.train])
    X_tr = on_device(X_host.reshape(len(X_host), -1), be, keep_integers=True)
    xp = be.xp
    prep = Preprocessor(scheme).fit(xp.astype(X_tr, be.dtype))
    y_tr = data.y_train[split.train]
    sub = be.asarray(split.train_eval, dtype=be.index_dtype)
    train_eval = prep.apply_new(xp.astype(xp.take(X_tr, sub, axis=0), be.dtype))
    evals = {"train": (train_eval, y_tr[split.train_eval])}
    X_val = None
    if len(split.val):
        X_val_host = np.asarray(data.X_train[split.val])
        X_val = on_device(X_val_host.reshape(len(X_val_host), -1), be, keep_integers=True)
        evals["val"] = (prep.apply(xp.astype(X_val, be.dtype)), data.y_train[split.val])
    X_te = prep.apply(upload(be, data.X_test))
    return DeviceSets(X_tr, y_tr, evals, X_te, prep, X_val)
