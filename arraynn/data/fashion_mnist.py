"""Fashion-MNIST: find, download, verify and load the four IDX files.

Where the data lives
--------------------
The *data home* is, in order of precedence:

1. the ``data_home`` argument;
2. the ``ARRAYNN_DATA`` environment variable;
3. the cache, ``$XDG_CACHE_HOME/arraynn`` (when ``XDG_CACHE_HOME`` is set to an
   absolute path), else ``~/.cache/arraynn``.

A data home given by 1 or 2 is *user-supplied*; 3 is *the cache*. A user-supplied
data home must be an existing directory: one that is not (a mistyped path) is an
error at once, before anything is downloaded or created. Inside the data
home the four files (``train-images-idx3-ubyte.gz``, ``train-labels-idx1-ubyte.gz``,
``t10k-images-idx3-ubyte.gz``, ``t10k-labels-idx1-ubyte.gz``) are looked up in the
data home itself and then in its ``fashion-mnist/`` subfolder: the first of the
two that holds any of them is the *data set directory*. If neither does, the data
set directory is ``<data home>/fashion-mnist``, and that is where downloads go.
In a user-supplied directory each file may also be stored uncompressed, under its
name without ``.gz`` (gzip or raw is decided by the file's content).

Verification
------------
Every file is checked structurally when it is loaded (IDX headers, 28x28 uint8
images, uint8 labels 0-9, as many labels as images). Files in the cache and files
downloaded by this module are also checked against the published size and MD5
(``FASHION_MNIST_CHECKSUMS``); a cached file that fails that check is fetched
again, with a warning. Files in a user-supplied directory are *not* checked
against the published checksums: they may legitimately differ (a rebuilt copy,
another image order), so they only get the structural checks.

Downloading
-----------
Missing files are downloaded (when ``download=True``) into the data set directory,
also a user-supplied one, from the mirrors in ``FASHION_MNIST_MIRRORS`` in order,
by :func:`arraynn.data.download.download` (retries with exponential backoff, size
and MD5 checked before the file is renamed into place, so an interrupted or
failed download leaves nothing behind). The directories created to download into
are removed again when a download fails and leaves them empty; the files already
downloaded (and verified) stay, so the next call fetches only the rest.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, overload

import numpy as np

from .download import DownloadError, check_mirrors, download_options, verify_file
from .download import download as _fetch
from .idx import read_idx

__all__ = [
    "FASHION_MNIST_CHECKSUMS",
    "FASHION_MNIST_CLASSES",
    "FASHION_MNIST_FILES",
    "FASHION_MNIST_MIRRORS",
    "DatasetError",
    "DatasetNotFoundError",
    "DownloadError",
    "FashionMNISTDownloadError",
    "fashion_mnist_source",
    "get_data_home",
    "load_fashion_mnist",
]

#: Class names, indexed by label.
FASHION_MNIST_CLASSES: tuple[str, ...] = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)

#: Role -> file name of the four files, as published.
FASHION_MNIST_FILES: dict[str, str] = {
    "train_images": "train-images-idx3-ubyte.gz",
    "train_labels": "train-labels-idx1-ubyte.gz",
    "test_images": "t10k-images-idx3-ubyte.gz",
    "test_labels": "t10k-labels-idx1-ubyte.gz",
}

#: Base URLs tried in order; a file's URL is the base URL plus its name.
FASHION_MNIST_MIRRORS: tuple[str, ...] = (
    "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    "https://storage.googleapis.com/tensorflow/tf-keras-datasets/",
)

#: File name -> (size in bytes, MD5 hex digest) of the published gzip files.
FASHION_MNIST_CHECKSUMS: dict[str, tuple[int, str]] = {
    "train-images-idx3-ubyte.gz": (26421880, "8d4fb7e6c68d591d4c3dfef9ec88bf0d"),
    "train-labels-idx1-ubyte.gz": (29515, "25c81989df183df01b3e8a0aad5dffbe"),
    "t10k-images-idx3-ubyte.gz": (4422102, "bef4ecab320f06d8554ea6380940ec79"),
    "t10k-labels-idx1-ubyte.gz": (5148, "bb300cfdad3c16e7a12a480ee83cd310"),
}

_ENV_DATA = "ARRAYNN_DATA"
_SUBDIR = "fashion-mnist"

Source = Literal["user", "cache", "download"]
_Home = str | os.PathLike[str] | None
_Arrays = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


class DatasetError(ValueError):
    """A data file has the wrong structure or content; the message names it."""


class DatasetNotFoundError(FileNotFoundError):
    """The data files are missing and could not (or may not) be downloaded.

    The message lists the expected file names, the directory searched and the
    URLs to fetch them from; or it names the user-supplied data home that does not
    exist (or is not a directory).
    """


class FashionMNISTDownloadError(DownloadError, DatasetNotFoundError):
    """A Fashion-MNIST file could not be downloaded from any mirror.

    Both a :class:`~arraynn.data.download.DownloadError` (the message says how
    each mirror failed) and a :class:`DatasetNotFoundError` (it also says where
    to put the files instead).
    """


# --------------------------------------------------------------------------
# where the data lives


def _cache_home() -> Path:
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    if xdg and os.path.isabs(xdg):
        return Path(xdg) / "arraynn"
    return Path(os.path.expanduser("~")) / ".cache" / "arraynn"


def _resolve_home(data_home: _Home) -> tuple[Path, bool]:
    """Return the data home and whether the user supplied it."""
    if data_home is not None:
        return Path(os.path.expanduser(os.fspath(data_home))), True
    env = os.environ.get(_ENV_DATA, "")
    if env:
        return Path(os.path.expanduser(env)), True
    return _cache_home(), False


def _check_user_home(data_home: _Home, home: Path) -> None:
    """Refuse a user-supplied data home that is not an existing directory.

    A mistyped path would otherwise be created and downloaded into.
    """
    if home.is_dir():
        return
    given, fix = ((f"data_home {home}", "give the directory")
                  if data_home is not None else
                  (f"{_ENV_DATA} is {home}, which", f"set {_ENV_DATA} to the directory"))
    if home.exists():
        raise DatasetNotFoundError(f"{given} is a file, not a directory; {fix} that holds the four "
                                   "Fashion-MNIST files")
    raise DatasetNotFoundError(f"{given} does not exist; create it to download Fashion-MNIST into it, "
                               f"or {fix} that holds the four files")


def get_data_home(data_home: _Home = None) -> Path:
    """Return the data home: ``data_home``, else ``$ARRAYNN_DATA``, else the cache.

    The cache is ``$XDG_CACHE_HOME/arraynn`` when ``XDG_CACHE_HOME`` is an
    absolute path, else ``~/.cache/arraynn``. Nothing is created.

    Parameters
    ----------
    data_home : str or path-like, optional
        An explicit directory; ``~`` is expanded.

    Returns
    -------
    pathlib.Path
    """
    return _resolve_home(data_home)[0]


def _find(directory: Path, name: str, user: bool) -> Path | None:
    """The path of file ``name`` in ``directory`` (or its unzipped twin), or None."""
    candidates = [name, name.removesuffix(".gz")] if user else [name]
    for cand in candidates:
        p = directory / cand
        if p.is_file():
            return p
    return None


def _locate(home: Path, user: bool, names: Sequence[str]) -> tuple[Path, dict[str, Path | None]]:
    """Pick the data set directory and find each file in it."""
    for directory in (home, home / _SUBDIR):
        found = {n: _find(directory, n, user) for n in names}
        if any(p is not None for p in found.values()):
            return directory, found
    return home / _SUBDIR, dict.fromkeys(names)


def fashion_mnist_source(data_home: _Home = None) -> dict[str, Any]:
    """Say where Fashion-MNIST will be read from, without reading or downloading.

    Parameters
    ----------
    data_home : str or path-like, optional
        As for :func:`load_fashion_mnist`.

    Returns
    -------
    dict
        ``{"directory": str, "source": "user" | "cache", "files": {role: path},
        "missing": [file names]}``: the data set directory, whether it is
        user-supplied (``data_home`` or ``ARRAYNN_DATA``) or the cache, the path
        each role's file has or will have, and the files not there yet (which
        :func:`load_fashion_mnist` would download).
    """
    home, user = _resolve_home(data_home)
    directory, found = _locate(home, user, list(FASHION_MNIST_FILES.values()))
    return {
        "directory": str(directory),
        "source": "user" if user else "cache",
        "files": {role: str(found[name] or directory / name) for role, name in FASHION_MNIST_FILES.items()},
        "missing": [n for n, p in found.items() if p is None],
    }


# --------------------------------------------------------------------------
# download


def _remove_empty(created: Sequence[Path]) -> None:
    """Remove the directories ``created`` (deepest first) that are empty."""
    for d in created:
        try:
            d.rmdir()
        except OSError:  # not empty (a file already downloaded), or already gone
            pass


def _make_directory(directory: Path, name: str) -> list[Path]:
    """Create ``directory`` to download ``name`` into; return the directories this
    created, deepest first (for :func:`_remove_empty` should the download fail)."""
    created = []
    d = directory
    while not d.exists() and not d.is_symlink() and d.parent != d:
        created.append(d)
        d = d.parent
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        _remove_empty(created)
        raise DatasetNotFoundError(
            f"cannot create the directory {directory} to download {name} into: "
            f"{exc}; choose another directory with data_home= or ARRAYNN_DATA"
        ) from exc
    return created


def _download(name: str, directory: Path, mirrors: Sequence[str], expected: tuple[int, str],
              options: tuple[int, float, float], pending: Sequence[str]) -> str:
    """Fetch file ``name`` into ``directory`` (which exists); return the URL it came from.

    ``pending`` are the files still missing (``name`` included), listed in the
    error message if every mirror fails.
    """
    retries, backoff, timeout = options
    try:
        return _fetch(directory / name, mirrors, expected, retries=retries, backoff=backoff, timeout=timeout)
    except DownloadError as exc:
        raise FashionMNISTDownloadError(f"{exc}\n{_instructions(directory, pending, mirrors)}") from None
    except OSError as exc:  # network errors are DownloadErrors: this is local
        raise DatasetNotFoundError(
            f"cannot write {name} into {directory}: {exc}; choose a writable "
            "directory with data_home= or ARRAYNN_DATA"
        ) from exc


def _instructions(directory: Path, names: Sequence[str], mirrors: Sequence[str]) -> str:
    urls = "\n".join(f"  {base}{n}" for n in names for base in mirrors)
    return (
        f"Put the files {', '.join(names)} into {directory} (any one of these "
        f"URLs per file will do):\n{urls}\n"
        "or point data_home= or the ARRAYNN_DATA environment variable at a "
        "directory that holds all four Fashion-MNIST files."
    )


# --------------------------------------------------------------------------
# loading


def _check_images(images: np.ndarray, path: Path) -> None:
    if images.dtype != np.uint8:
        raise DatasetError(
            f"Fashion-MNIST image file '{path}' holds {images.dtype} values; "
            "images must be uint8 (IDX type code 0x08)"
        )
    if images.ndim != 3 or images.shape[1:] != (28, 28):
        raise DatasetError(
            f"Fashion-MNIST image file '{path}' holds an array of shape "
            f"{images.shape}; images must have shape (n, 28, 28)"
        )


def _check_labels(labels: np.ndarray, path: Path) -> None:
    if labels.dtype != np.uint8 or labels.ndim != 1:
        raise DatasetError(
            f"Fashion-MNIST label file '{path}' holds a {labels.ndim}-D array of "
            f"{labels.dtype}; labels must be a 1-D uint8 array (IDX type code 0x08)"
        )
    if labels.size and int(labels.max()) > 9:
        bad = int(np.count_nonzero(labels > 9))
        raise DatasetError(
            f"Fashion-MNIST label file '{path}' holds {bad} labels outside 0-9 "
            f"(the largest is {int(labels.max())}); labels must be 0-9"
        )


def _load_split(images_path: Path, labels_path: Path) -> tuple[np.ndarray, np.ndarray]:
    images = read_idx(images_path)
    labels = read_idx(labels_path)
    _check_images(images, images_path)
    _check_labels(labels, labels_path)
    if images.shape[0] != labels.shape[0]:
        raise DatasetError(
            f"Fashion-MNIST image file '{images_path}' holds {images.shape[0]} "
            f"images but label file '{labels_path}' holds {labels.shape[0]} "
            "labels; they must match (are the files from the same split?)"
        )
    return images.reshape(images.shape[0], 28 * 28), labels.astype(np.int64)


@overload
def load_fashion_mnist(
    data_home: _Home = ..., download: bool = ..., *, return_info: Literal[False] = ...,
    mirrors: Sequence[str] | None = ..., checksums: Mapping[str, tuple[int, str]] | None = ...,
    retries: int | None = ..., backoff: float | None = ..., timeout: float | None = ...,
) -> _Arrays: ...


@overload
def load_fashion_mnist(
    data_home: _Home = ..., download: bool = ..., *, return_info: Literal[True],
    mirrors: Sequence[str] | None = ..., checksums: Mapping[str, tuple[int, str]] | None = ...,
    retries: int | None = ..., backoff: float | None = ..., timeout: float | None = ...,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]: ...


def load_fashion_mnist(
    data_home: _Home = None, download: bool = True, *, return_info: bool = False,
    mirrors: Sequence[str] | None = None, checksums: Mapping[str, tuple[int, str]] | None = None,
    retries: int | None = None, backoff: float | None = None, timeout: float | None = None,
) -> _Arrays | tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
    """Load Fashion-MNIST, downloading missing files if allowed.

    See the module documentation for where the files are looked up (``data_home``
    > ``$ARRAYNN_DATA`` > the cache), how they are verified and where downloads go.

    Parameters
    ----------
    data_home : str or path-like, optional
        Directory holding the data (user-supplied). Default: ``$ARRAYNN_DATA``
        if set, else the cache.
    download : bool, default True
        Download missing files (and cached files that fail verification). With
        False, a missing file raises :class:`DatasetNotFoundError`.
    return_info : bool, default False
        Also return a dict saying where the data came from (see Returns).
    mirrors : sequence of str, optional
        Base URLs to try in order; default ``FASHION_MNIST_MIRRORS``.
    checksums : mapping, optional
        File name -> (size in bytes, MD5 hex) for downloads and cached files;
        default ``FASHION_MNIST_CHECKSUMS``.
    retries, backoff, timeout : optional
        Retries per mirror after a transient failure (connection error, HTTP
        5xx/408/429, broken transfer), seconds before the first retry (doubled
        for each further one) and the socket timeout; defaults
        ``DOWNLOAD_RETRIES``, ``DOWNLOAD_BACKOFF`` and ``DOWNLOAD_TIMEOUT`` of
        :mod:`arraynn.data.download`.

    Returns
    -------
    X_train : numpy.ndarray of uint8, shape (n_train, 784)
        Training images, flattened row by row (pixels 0-255).
    y_train : numpy.ndarray of int64, shape (n_train,)
        Training labels 0-9 (see ``FASHION_MNIST_CLASSES``).
    X_test : numpy.ndarray of uint8, shape (n_test, 784)
    y_test : numpy.ndarray of int64, shape (n_test,)
    info : dict, only with ``return_info=True``
        ``{"directory": str, "source": "user" | "cache" | "download",
        "files": {role: path}, "downloaded": {file name: url}}``. ``source`` is
        ``"download"`` if any file was downloaded by this call, else ``"user"``
        for a user-supplied directory or ``"cache"`` for the cache. The roles
        are the keys of ``FASHION_MNIST_FILES``.

    Raises
    ------
    DatasetNotFoundError
        A file is missing and ``download`` is False; the message lists the
        file names, the directory and the URLs to fetch them from. Or the
        user-supplied data home (``data_home`` or ``$ARRAYNN_DATA``) does not
        exist or is not a directory: raised before anything is downloaded.
    DownloadError
        A file could not be downloaded from any mirror (offline, HTTP errors,
        checksum mismatch): a :class:`FashionMNISTDownloadError`, which is
        also a :class:`DatasetNotFoundError`.
    DatasetError
        A file has the wrong structure (not 28x28 uint8 images, labels outside
        0-9, counts that differ), or, with ``download=False``, a cached file
        fails its checksum.
    arraynn.data.idx.IDXError
        A file is not a valid IDX file (bad header, truncated, corrupt gzip).
    """
    mirrors = check_mirrors(FASHION_MNIST_MIRRORS if mirrors is None else mirrors)
    checksums = FASHION_MNIST_CHECKSUMS if checksums is None else checksums
    options = download_options(retries, backoff, timeout)
    names = list(FASHION_MNIST_FILES.values())
    absent = [n for n in names if n not in checksums]
    if absent:
        raise ValueError(f"the checksum table has no (size, MD5) entry for {', '.join(absent)}")
    home, user = _resolve_home(data_home)
    if user:
        _check_user_home(data_home, home)
    directory, found = _locate(home, user, names)

    if not user:
        # The cache holds files this module downloaded: check them against the
        # published checksums; a damaged one is fetched again.
        for name, path in found.items():
            if path is None:
                continue
            problem = verify_file(path, checksums[name])
            if problem is None:
                continue
            if not download:
                raise DatasetError(
                    f"cached Fashion-MNIST file '{path}' is damaged: its {problem}. "
                    "Delete it and call again with download=True, or point "
                    "data_home= or ARRAYNN_DATA at a directory with good files"
                )
            warnings.warn(
                f"cached Fashion-MNIST file '{path}' is damaged (its {problem}); downloading it again",
                stacklevel=2,
            )
            found[name] = None

    missing = [n for n, p in found.items() if p is None]
    if missing and not download:
        kind = "user-supplied data directory" if user else "cache directory"
        raise DatasetNotFoundError(
            f"Fashion-MNIST files missing from the {kind} {directory} "
            f"(searched {home} and {home / _SUBDIR}): {', '.join(missing)}. "
            "Call with download=True to fetch them, or download them yourself.\n"
            + _instructions(directory, missing, mirrors)
        )
    downloaded: dict[str, str] = {}
    created = _make_directory(directory, missing[0]) if missing else []
    try:
        for i, name in enumerate(missing):
            downloaded[name] = _download(name, directory, mirrors, checksums[name], options, missing[i:])
            found[name] = directory / name
    except BaseException:
        _remove_empty(created)  # no empty directory is left behind
        raise

    paths: dict[str, Path] = {
        role: found[name] or directory / name for role, name in FASHION_MNIST_FILES.items()
    }
    X_train, y_train = _load_split(paths["train_images"], paths["train_labels"])
    X_test, y_test = _load_split(paths["test_images"], paths["test_labels"])
    if not return_info:
        return X_train, y_train, X_test, y_test
    source: Source = "download" if downloaded else ("user" if user else "cache")
    info = {"directory": str(directory), "source": source,
            "files": {role: str(p) for role, p in paths.items()}, "downloaded": downloaded}
    return X_train, y_train, X_test, y_test, info
