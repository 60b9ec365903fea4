"""Model files: one ``.npz`` holding arrays plus a JSON document, never a pickle.

The file stores each parameter as its own array (``param_0``, ``param_1``, ...: the
weight matrices and bias vectors in layer order), each optimizer buffer the same way
(``opt_m_0``, ...), the classes, and a ``meta.json`` entry (a UTF-8 JSON document as
a uint8 array) with the estimator's constructor parameters, the layer sizes, the
epoch count, the loss curve, the seed and the optimizer's step; and, when the model
has them, the input preprocessing (``preprocessing``: ``Preprocessor.to_dict``) and
the class names (``class_names``), so that the one file predicts on raw inputs.
Training state beyond the optimizer's is saved too, so that a checkpoint resumes
exactly: the early-stopping and adaptive-rate record (``stopping``: the monitored
number's best, the no-improvement count, the rate's divisions, whether training
stopped), the validation scores, and the best epoch's parameters (``best_param_0``,
...) that early stopping restores at the end; and ``feature_names_in`` when the model
was fitted on a DataFrame, and ``image_shape`` when it was fitted on ``(n, height,
width)`` images; with the preprocessing, ``input_range`` (``[min, max]`` of the raw
training inputs, which ``predict`` checks its inputs against). Files without these
entries load as before (a model saved before ``nesterovs_momentum`` existed keeps
classical momentum; one without ``input_range`` checks no input range). Parameters added
later (``blas_threads``) are saved with the others when not at their defaults (so readers
of the same format version that predate them still read the file) and take their defaults
when absent.

A run's final model (``model.npz`` with the run's ``model.json`` beside it) loads with
``warm_start=False`` whatever it stored (runs before this rule stored ``True``, their
own resume setting; a run resumes from its ``checkpoint.npz``), so that its ``fit``
trains afresh as scikit-learn's estimators do.

Format versions: 1 (arraynn 0.1.0), 2 (the training features: their constructor
parameters and state) and 3 (a network given as ``layers``: the list of layer
descriptions, ``Layer.config()``, in ``params["layers"]``). Version 2 is written, 3 for a
model with ``layers``; all are read. A reader of version 1
refuses a version 2 file by its version number, before reading parameters it would
not know.
Files without the preprocessing and class names (arraynn 0.1.0) load as before; a ``model.json``
beside such a file (a run of ``python -m arraynn.train``) supplies them. It is read with
``allow_pickle=False`` and written atomically (a temporary file renamed into place),
so a crash never leaves a half-written model.

The file is the estimator's ``state_dict()`` (:mod:`arraynn._state`: its host arrays
as the file's arrays, its JSON values in ``meta.json``) plus its constructor's
parameters, and loads through ``load_state_dict``: this module reads and writes files
and touches nothing private of the estimator. The per-parameter arrays make the file
independent of the in-memory layout (one flat buffer, cut and packed by the state).
"""

from __future__ import annotations

import json
import os
import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from ._fileio import atomic_open

__all__ = ["FORMAT", "FORMAT_VERSION", "ModelFileError", "load_classifier", "model_path", "read_model",
           "save_classifier", "write_model"]

FORMAT = "arraynn.NNClassifier"
FORMAT_VERSION = 2
#: The version of files whose network is a list of layers (``NNClassifier(layers=...)``):
#: a reader of version 2 could not rebuild it, so it refuses the file by its version.
LAYERS_FORMAT_VERSION = 3
#: The format versions this arraynn reads.
READABLE_VERSIONS = (1, 2, 3)


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
        np.savez(f, allow_pickle=False, **payload)  # read back with allow_pickle=False
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
        _check_sizes(path)
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except MemoryError:
        raise MemoryError(f"{path}: its arrays do not fit in memory; free memory, or check that "
                          "the file is an arraynn model and not damaged") from None
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, KeyError, NotImplementedError,
            RuntimeError) as exc:
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
    if meta.get("format_version") not in READABLE_VERSIONS:
        raise ModelFileError(f"{path} has format version {meta.get('format_version')}; this "
                             f"arraynn reads versions {', '.join(map(str, READABLE_VERSIONS))}: "
                             "load it with the arraynn that wrote it")
    return arrays, meta


def _check_sizes(path: Path) -> None:
    """Each ``.npy`` entry's header against the size the zip declares for it, before
    any array is allocated: a damaged header declaring a huge array is an error, not an
    allocation. Raises ValueError (reported as a damaged file by :func:`read_model`)."""
    with zipfile.ZipFile(path) as z:
        for info in z.infolist():
            if not info.filename.endswith(".npy"):
                continue
            with z.open(info) as f:
                version = np.lib.format.read_magic(f)
                if version == (1, 0):
                    shape, _, dtype = np.lib.format.read_array_header_1_0(f)
                elif version == (2, 0):
                    shape, _, dtype = np.lib.format.read_array_header_2_0(f)
                else:
                    raise ValueError(f"{info.filename}: unsupported .npy version {version}")
            n = dtype.itemsize
            for d in shape:
                n *= d
            if n > info.file_size:
                raise ValueError(f"{info.filename} declares {n} bytes of data in {info.file_size}")


# ----------------------------------------------------------------------------------
# NNClassifier <-> file
# ----------------------------------------------------------------------------------
def save_classifier(clf: Any, path: str | os.PathLike) -> Path:
    """Write the fitted :class:`arraynn.NNClassifier` ``clf`` to ``path``: its
    ``state_dict()`` (the arrays as the file's arrays, the JSON values in ``meta.json``)
    with its constructor's parameters (see the module docstring for the layout)."""
    from .backends import Backend

    state = clf.state_dict()
    arrays = {k: v for k, v in state.items() if isinstance(v, np.ndarray)}
    params = clf.get_params()
    if params.get("blas_threads") is None:
        # at its default it is left out, so readers of format 2 that predate it read the file
        params.pop("blas_threads", None)
    if params.get("layers") is None:
        params.pop("layers", None)
    else:
        params["layers"] = [layer.config() for layer in params["layers"]]
    if isinstance(params["backend"], Backend):
        params["backend"] = params["backend"].name
    params["device"] = None if params["device"] is None else str(params["device"])
    if not isinstance(params["n_hidden_units"], (int, np.integer)):
        params["n_hidden_units"] = [int(h) for h in params["n_hidden_units"]]
    meta = {"params": _jsonable(params), **{k: v for k, v in state.items() if k not in arrays}}
    if "layers" in params:
        meta["format_version"] = LAYERS_FORMAT_VERSION
    return write_model(path, arrays, meta)


def model_path(path: str | os.PathLike) -> Path:
    """The model file of ``path``: the file itself, or a run directory's ``model.npz``.

    Raises
    ------
    FileNotFoundError
        Naming what is missing and what to give instead.
    """
    path = Path(path)
    if path.is_dir():
        model = path / "model.npz"
        if not model.is_file():
            hint = ("; the run has not finished: its checkpoint.npz loads too"
                    if (path / "checkpoint.npz").is_file() else "")
            raise FileNotFoundError(f"no model.npz in the directory {path}; give a model file or "
                                    f"a run directory holding one{hint}")
        return model
    if not path.exists():
        raise FileNotFoundError(f"no model file at {path}")
    return path


def _sidecar(path: Path) -> dict[str, Any]:
    """The preprocessing and class names of the ``model.json`` that a run of
    ``python -m arraynn.train`` writes beside its model (``{}`` when there is none)."""
    side = path.with_suffix(".json")
    if path.name != "model.npz" or not side.is_file():
        return {}
    try:
        doc = json.loads(side.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelFileError(f"cannot read {side}: {exc}; the file is corrupt") from None
    if not isinstance(doc, dict) or doc.get("format") != "arraynn.train.model":
        return {}
    out = {}
    if "preprocessing" in doc:
        out["preprocessing"] = doc["preprocessing"]
    if "classes" in doc:
        out["class_names"] = doc["classes"]
    return out


def _is_run_model(path: Path) -> bool:
    """Whether ``path`` is the final model of a run of ``python -m arraynn.train``: a
    ``model.npz`` with the run's ``model.json`` description beside it."""
    side = path.with_suffix(".json")
    if path.name != "model.npz" or not side.is_file():
        return False
    try:
        doc = json.loads(side.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False
    return isinstance(doc, dict) and doc.get("format") == "arraynn.train.model"


def load_classifier(cls: Any, path: str | os.PathLike, backend: Any = None, device: Any = None,
                    dtype: str | None = None) -> Any:
    """An estimator of class ``cls`` from the file at ``path``, on ``backend`` (default
    NumPy), ``device`` and ``dtype`` (default: the saved one), ready to predict or to
    continue training (``set_params(warm_start=True, epochs=N)``): the file's parameters
    make the estimator, its arrays and values its ``load_state_dict``."""
    from ._state import StateError, inference_extras

    path = model_path(path)
    arrays, meta = read_model(path)
    if "params" not in meta:
        raise _damaged(path, "its meta.json lacks the field 'params'")
    if not isinstance(meta["params"], dict):
        raise _damaged(path, f"its meta.json field 'params' must be an object of the estimator's "
                             f"parameters, got {meta['params']!r:.80}")
    state: dict[str, Any] = {**arrays, **{k: v for k, v in meta.items() if k not in ("params", "format",
                                                                                     "format_version")}}
    if "preprocessing" not in meta and "class_names" not in meta:
        extra = _sidecar(path)  # a 0.1.0 run's model.json holds them
        if extra:
            try:
                n_classes = len(arrays.get("classes", ()))
                inference_extras(extra, int(meta.get("n_features_in", 0)), n_classes, None)
            except StateError as exc:
                raise ModelFileError(f"{path.with_suffix('.json')}: {exc}; the file is damaged or was "
                                     "edited") from None
            state.update(extra)
    params = dict(meta["params"])
    params["backend"], params["device"] = backend, device
    params.setdefault("nesterovs_momentum", False)  # saved before Nesterov's was the default
    if _is_run_model(path):
        params["warm_start"] = False  # a run's own resume setting, saved before it was reset
    if isinstance(params.get("n_hidden_units"), list):
        params["n_hidden_units"] = tuple(params["n_hidden_units"])
    if params.get("layers") is not None:
        from .nn.layers import layer_from_config

        try:
            params["layers"] = [layer_from_config(c) for c in params["layers"]]
        except (TypeError, ValueError) as exc:
            raise ModelFileError(f"{path}: its layers cannot be read ({exc}); the file is damaged, edited "
                                 "or written by a newer arraynn") from None
    if dtype is not None:
        params["dtype"] = dtype
    try:
        clf = cls(**{k: v for k, v in params.items() if k in cls().get_params()})
    except TypeError as exc:
        raise _damaged(path, f"its saved parameters are invalid ({exc})") from None
    try:
        return clf.load_state_dict(state)
    except StateError as exc:
        raise _damaged(path, str(exc)) from None
    except (TypeError, ValueError) as exc:  # the parameters, checked before the state
        raise _damaged(path, f"its saved parameters are invalid ({exc})") from None


def _damaged(path: Path, problem: str) -> ModelFileError:
    return ModelFileError(f"{path}: {problem}; the file is damaged, incomplete or was edited (use another "
                          "checkpoint or train again)")


def _jsonable(d: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for k, v in d.items():
        if isinstance(v, np.integer):
            v = int(v)
        elif isinstance(v, np.floating):
            v = float(v)
        elif isinstance(v, np.ndarray):
            v = v.tolist()
        elif isinstance(v, (tuple, list)):
            v = [int(x) if isinstance(x, np.integer) else float(x) if isinstance(x, np.floating)
                 else x for x in v]
        out[k] = v
    return out
