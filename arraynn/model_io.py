"""Model files: one ``.npz`` holding arrays plus a JSON document, never a pickle.

The file stores each parameter as its own array (``param_0``, ``param_1``, ...: the
weight matrices and bias vectors in layer order), each optimizer buffer the same way
(``opt_m_0``, ...), the classes, and a ``meta.json`` entry (a UTF-8 JSON document as
a uint8 array) with the estimator's constructor parameters, the layer sizes, the
epoch count, the loss curve, the seed and the optimizer's step. It is read with
``allow_pickle=False`` and written atomically (a temporary file renamed into place),
so a crash never leaves a half-written model.

The per-parameter arrays make the file independent of the in-memory layout: the
estimator keeps its parameters in one flat buffer and cuts and packs them here.
"""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from ._fileio import atomic_open

__all__ = ["FORMAT", "FORMAT_VERSION", "ModelFileError", "read_model", "write_model"]

FORMAT = "arraynn.NNClassifier"
FORMAT_VERSION = 1


class ModelFileError(ValueError):
    """A saved model or checkpoint cannot be read."""


def write_model(path: str | os.PathLike, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> Path:
    """Write host ``arrays`` and the JSON document ``meta`` to ``path`` atomically."""
    path = Path(path)
    directory = path.parent if str(path.parent) else Path(".")
    if not directory.is_dir():
        raise FileNotFoundError(f"cannot save to {path}: the directory {directory} does not exist")
    doc = {"format": FORMAT, "format_version": FORMAT_VERSION, **meta}
    payload = dict(arrays)
    payload["meta.json"] = np.frombuffer(json.dumps(doc).encode(), dtype=np.uint8)
    with atomic_open(path) as f:
        np.savez(f, **payload)
    return path


def read_model(path: str | os.PathLike) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The arrays and the ``meta.json`` document of a model file, checked.

    Raises
    ------
    FileNotFoundError
        Nothing is at ``path``.
    ModelFileError
        The file is not a readable arraynn model: truncated, corrupt, another format,
        or another format version; the message says which and the fix.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no model file at {path}")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except (zipfile.BadZipFile, EOFError, OSError, ValueError) as exc:
        raise ModelFileError(
            f"{path} is not a readable arraynn model ({type(exc).__name__}: {exc}); the file "
            "is truncated or corrupt. Use another checkpoint or train again"
        ) from None
    if "meta.json" not in arrays:
        raise ModelFileError(f"{path} has no 'meta.json' entry: it is not an arraynn model")
    try:
        meta = json.loads(arrays.pop("meta.json").tobytes().decode())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelFileError(f"{path}: its meta.json entry is corrupt ({exc})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ModelFileError(f"{path} is not an {FORMAT} file")
    if meta.get("format_version") != FORMAT_VERSION:
        raise ModelFileError(f"{path} has format version {meta.get('format_version')}; this "
                             f"arraynn reads version {FORMAT_VERSION}")
    return arrays, meta


def pack_arrays(path: Path, arrays: dict[str, np.ndarray], prefix: str, n: int,
                shapes: list[tuple[int, ...]]) -> np.ndarray:
    """``arrays[prefix + "0"] ... [prefix + str(n - 1)]`` checked against ``shapes`` and
    concatenated into one flat host buffer."""
    parts = []
    for i, shape in enumerate(shapes[:n]):
        key = f"{prefix}{i}"
        if key not in arrays:
            raise ModelFileError(f"{path}: the array {key!r} is missing; the file is "
                                 "incomplete or not an arraynn model")
        a = arrays[key]
        if tuple(a.shape) != shape:
            raise ModelFileError(f"{path}: {key} has shape {tuple(a.shape)}, expected {shape}")
        if a.dtype.kind != "f":
            raise ModelFileError(f"{path}: {key} has dtype {a.dtype}; model arrays are floating")
        parts.append(a.reshape(-1))
    return np.concatenate(parts) if parts else np.zeros(0)
