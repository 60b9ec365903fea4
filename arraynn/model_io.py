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

The per-parameter arrays make the file independent of the in-memory layout: the
estimator keeps its parameters in one flat buffer and cuts and packs them here.
"""

from __future__ import annotations

import json
import math
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


def _pack(path: Path, arrays: dict[str, np.ndarray], prefix: str, layout: Any) -> np.ndarray:
    """``arrays[prefix + "0"] ...``, one per parameter of ``layout``, checked against its
    shapes and concatenated into one flat host buffer."""
    parts = []
    for i, shape in enumerate(layout.shapes):
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
    return np.concatenate(parts)


# ----------------------------------------------------------------------------------
# NNClassifier <-> file
# ----------------------------------------------------------------------------------
def save_classifier(clf: Any, path: str | os.PathLike) -> Path:
    """Write the fitted :class:`arraynn.NNClassifier` ``clf`` to ``path`` (see the
    module docstring for the layout)."""
    from .backends import Backend

    be, layout = clf.backend_, clf._mlp.layout
    arrays: dict[str, np.ndarray] = {}
    for i, p in enumerate(layout.views(be.to_numpy(clf._params))):
        arrays[f"param_{i}"] = p
    for key in clf._opt.buffers:
        for i, a in enumerate(layout.views(be.to_numpy(clf._opt_state[key]))):
            arrays[f"opt_{key}_{i}"] = a
    best = getattr(clf, "_best_params", None)
    if best is not None:
        for i, a in enumerate(layout.views(be.to_numpy(best))):
            arrays[f"best_param_{i}"] = a
    if clf._mlp.has_state:  # BatchNorm's running statistics (and those of the best epoch)
        arrays["state_stats"] = be.to_numpy(clf._opt_state["stats"])
        best_stats = getattr(clf, "_best_stats", None)
        if best is not None and best_stats is not None:
            arrays["best_state_stats"] = be.to_numpy(best_stats)
    classes = clf.classes_
    arrays["classes"] = classes.astype(str) if classes.dtype.kind == "O" else classes
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
    meta = {
        "params": _jsonable(params),
        "layer_sizes": _layer_sizes(clf),
        "n_features_in": clf.n_features_in_,
        "n_iter": clf.n_iter_,
        "loss_curve": clf.loss_curve_,
        "random_seed": clf.random_seed_,
        "optimizer_step": int(clf._opt_state["t"]),
        "optimizer_buffers": sorted(clf._opt.buffers),
        "n_params": len(layout),
        "trained_on": {"backend": be.name, "device": be.device_name, "dtype": be.dtype_name},
    }
    prep = getattr(clf, "preprocessor_", None)
    if prep is not None:
        meta["preprocessing"] = prep.to_dict()
    names = getattr(clf, "class_names_", None)
    if names is not None:
        meta["class_names"] = [str(n) for n in names]
    stopping = getattr(clf, "_stopping", None)
    if stopping:
        meta["stopping"] = {k: _finite_or_none(v) for k, v in stopping.items()}
        meta["validation_scores"] = getattr(clf, "validation_scores_", None)
    features = getattr(clf, "feature_names_in_", None)
    if features is not None:
        meta["feature_names_in"] = [str(n) for n in features]
    images = getattr(clf, "image_shape_", None)
    if images is not None:
        meta["image_shape"] = [int(s) for s in images]
    sample = getattr(clf, "input_shape_", None)
    if sample is not None and len(sample) > 1:
        meta["input_shape"] = [int(s) for s in sample]
    bounds = getattr(clf, "input_range_", None)
    if bounds is not None and prep is not None:
        meta["input_range"] = [float(b) for b in bounds]
    if "layers" in params:
        meta["format_version"] = LAYERS_FORMAT_VERSION
    return write_model(path, arrays, meta)


def _finite_or_none(v: Any) -> Any:
    """JSON has no infinity: a non-finite float is saved as ``None``."""
    return None if isinstance(v, float) and not math.isfinite(v) else v


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
    continue training (``set_params(warm_start=True, epochs=N)``)."""
    from .backends import get_backend
    from .nn import MLP

    path = model_path(path)
    arrays, meta = read_model(path)
    _check_meta(path, arrays, meta)
    extra: dict[str, Any] = {k: meta[k] for k in ("preprocessing", "class_names") if k in meta}
    source = path
    if not extra:
        extra, source = _sidecar(path), path.with_suffix(".json")
    params = dict(meta["params"])
    params["backend"], params["device"] = None, None
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
        clf = cls(**{k: v for k, v in params.items() if k in cls._param_names()})
        clf._check_params()
    except (TypeError, ValueError) as exc:
        raise ModelFileError(f"{path}: its saved parameters are invalid ({exc}); the file is damaged "
                             "or was edited") from None
    if clf.layers is None and list(clf._hidden_sizes()) != list(meta["layer_sizes"][1:-1]):
        raise ModelFileError(f"{path}: its layer sizes {meta['layer_sizes']} do not match its "
                             f"n_hidden_units {params.get('n_hidden_units')!r}")
    clf.backend, clf.device = backend, device
    be = get_backend(backend or "numpy", device, clf.dtype)
    clf.backend_ = be
    clf.tf32_ = be.set_tf32(bool(clf.tf32))
    clf.classes_ = arrays["classes"]
    clf.n_features_in_ = int(meta["n_features_in"])
    sample = meta.get("input_shape")
    clf.input_shape_ = (clf.n_features_in_,)
    if sample is not None:
        if (not isinstance(sample, list) or len(sample) != 3 or not all(_is_int(s, 1) for s in sample)
                or int(np.prod(sample)) != clf.n_features_in_):
            raise ModelFileError(f"{path}: its input_shape must be [channels, height, width] of its "
                                 f"{clf.n_features_in_} features; the file is damaged or was edited")
        clf.input_shape_ = tuple(int(s) for s in sample)
    if clf.layers is not None:
        clf._mlp = clf._build_mlp(int(meta["layer_sizes"][-1]))
        if _layer_sizes(clf) != list(meta["layer_sizes"]):
            raise ModelFileError(f"{path}: its layer sizes {meta['layer_sizes']} do not match its layers")
    else:
        clf._mlp = MLP(meta["layer_sizes"], activation=clf.activation, output=clf.output, bias=clf.bias,
                       dropout=getattr(clf, "dropout", 0.0), input_dropout=getattr(clf, "input_dropout", 0.0))
    layout = clf._mlp.layout
    if meta["n_params"] != len(layout):
        raise ModelFileError(f"{path}: the file holds {meta['n_params']} parameter arrays, "
                             f"its network needs {len(layout)}")
    clf._params = be.asarray(_pack(path, arrays, "param_", layout), dtype=be.dtype)
    clf._opt = clf._make_optimizer()
    state = clf._opt.init(clf._params)
    for key in meta["optimizer_buffers"]:
        if key not in clf._opt.buffers:
            raise ModelFileError(f"{path}: the optimizer buffer {key!r} does not belong to "
                                 f"the {clf.optimizer!r} optimizer")
        state[key] = be.asarray(_pack(path, arrays, f"opt_{key}_", layout), dtype=be.dtype)
    missing = sorted(set(clf._opt.buffers) - set(meta["optimizer_buffers"]))
    if missing and meta["optimizer_step"] > 0:
        raise ModelFileError(f"{path}: the {clf.optimizer!r} optimizer's buffers {missing} are "
                             "missing; the file is incomplete")
    state["t"] = int(meta["optimizer_step"])
    clf._best_stats = None
    if clf._mlp.has_state:
        state["stats"] = _stats(path, arrays, "state_stats", clf._mlp.state_layout.size, be)
        if "best_state_stats" in arrays:
            clf._best_stats = _stats(path, arrays, "best_state_stats", clf._mlp.state_layout.size, be)
    clf._opt_state = state
    clf.n_iter_ = int(meta["n_iter"])
    clf.loss_curve_ = [float(v) for v in meta["loss_curve"]]
    clf.random_seed_ = int(meta["random_seed"])
    clf.preprocessor_, clf.class_names_ = _inference_extras(source, extra, clf, be)
    clf.input_range_ = _input_range(path, meta) if clf.preprocessor_ is not None else None
    _load_training_state(path, arrays, meta, clf, be, layout)
    return clf


def _stats(path: Path, arrays: dict[str, np.ndarray], key: str, size: int, be: Any) -> Any:
    """The saved state buffer ``key`` (BatchNorm's running statistics), checked."""
    a = arrays.get(key)
    if a is None or a.ndim != 1 or a.size != size or a.dtype.kind != "f" or not np.isfinite(a).all():
        raise ModelFileError(f"{path}: its network has BatchNorm layers, whose running statistics "
                             f"{key!r} ({size} finite numbers) are missing or damaged; the file is damaged, "
                             "incomplete or was edited")
    return be.asarray(a, dtype=be.dtype)


def _input_range(path: Path, meta: dict[str, Any]) -> tuple[float, float] | None:
    """The saved ``input_range``, checked (None when the file has none)."""
    bounds = meta.get("input_range")
    if bounds is None:
        return None
    if not (isinstance(bounds, list) and len(bounds) == 2
            and all(isinstance(b, (int, float)) and not isinstance(b, bool) and math.isfinite(b)
                    for b in bounds) and bounds[0] <= bounds[1]):
        raise ModelFileError(f"{path}: its input_range must be [min, max], two finite numbers, got "
                             f"{bounds!r:.80}; the file is damaged or was edited")
    return float(bounds[0]), float(bounds[1])


def _load_training_state(path: Path, arrays: dict[str, np.ndarray], meta: dict[str, Any], clf: Any,
                         be: Any, layout: Any) -> None:
    """The early-stopping / adaptive-rate record, the best epoch's parameters and the
    feature names, when the file has them (see the module docstring)."""
    def bad(problem: str) -> ModelFileError:
        return ModelFileError(f"{path}: {problem}; the file is damaged or was edited")

    features = meta.get("feature_names_in")
    if features is not None:
        if (not isinstance(features, list) or len(features) != clf.n_features_in_
                or not all(isinstance(n, str) for n in features)):
            raise bad(f"its feature_names_in must be {clf.n_features_in_} strings")
        clf.feature_names_in_ = np.asarray(features, dtype=object)
    images = meta.get("image_shape")
    clf.image_shape_ = None
    if images is not None:
        if (not isinstance(images, list) or len(images) != 2 or not all(_is_int(s, 1) for s in images)
                or images[0] * images[1] != clf.n_features_in_):
            raise bad(f"its image_shape must be [height, width] of its {clf.n_features_in_} features")
        clf.image_shape_ = (int(images[0]), int(images[1]))
    stopping = meta.get("stopping")
    if stopping is None:
        clf._reset_stopping()
        return
    if not isinstance(stopping, dict) or stopping.get("monitor") not in ("validation_score", "loss"):
        raise bad("its 'stopping' record is not an object naming what it monitors")
    for key, low in (("count", 0), ("divisions", 0)):
        if key in stopping and not _is_int(stopping[key], low):
            raise bad(f"its stopping {key} must be an integer >= 0, got {stopping[key]!r:.40}")
    best = stopping.get("best")
    if best is not None and (isinstance(best, bool) or not isinstance(best, (int, float))
                             or not math.isfinite(best)):
        raise bad(f"its stopping best must be a finite number, got {best!r:.40}")
    scores = meta.get("validation_scores")
    if scores is not None and not (isinstance(scores, list) and all(
            isinstance(x, (int, float)) and not isinstance(x, bool) for x in scores)):
        raise bad("its validation_scores must be a list of numbers")
    clf._stopping = dict(stopping)
    validation = stopping["monitor"] == "validation_score"
    clf.validation_scores_ = [float(x) for x in scores] if validation and scores is not None else (
        [] if validation else None)
    clf.best_validation_score_ = (-np.inf if best is None else float(best)) if validation else None
    clf.best_loss_ = None if validation else (np.inf if best is None else float(best))
    clf._best_params = None
    if "best_param_0" in arrays:
        clf._best_params = be.asarray(_pack(path, arrays, "best_param_", layout), dtype=be.dtype)


def _inference_extras(path: Path, extra: dict[str, Any], clf: Any, be: Any) -> tuple[Any, Any]:
    """The fitted preprocessing and the class names of ``extra`` (entries of the file
    ``path``), checked against the model ``clf``."""
    from .data.preprocessing import Preprocessor

    prep = names = None
    if "preprocessing" in extra:
        try:
            prep = Preprocessor.from_dict(extra["preprocessing"], backend=be)
        except ValueError as exc:
            raise ModelFileError(f"{path}: its preprocessing cannot be applied ({exc}); the file is "
                                 "damaged or was edited") from None
        n = prep.n_features_in_
        if n is not None and n != clf.n_features_in_:
            raise ModelFileError(f"{path}: its preprocessing has statistics of {n} features, the "
                                 f"network takes {clf.n_features_in_}; the file is damaged or was edited")
    if "class_names" in extra:
        names = extra["class_names"]
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise ModelFileError(f"{path}: its class names must be a list of strings, got "
                                 f"{names!r:.80}; the file is damaged or was edited")
        if len(names) != len(clf.classes_):
            raise ModelFileError(f"{path} names {len(names)} classes, the model has "
                                 f"{len(clf.classes_)}; the file is damaged or was edited")
    return prep, names


def _is_int(v: Any, low: int = 0) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= low


def _check_meta(path: Path, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
    """Every field :func:`load_classifier` reads, present and of the right type and range,
    and the classes against the outputs; else a :class:`ModelFileError` naming the field."""

    def bad(problem: str) -> ModelFileError:
        return ModelFileError(f"{path}: {problem}; the file is damaged or was edited (use another "
                              "checkpoint or train again)")

    fields = {
        "params": (lambda v: isinstance(v, dict), "an object of the estimator's parameters"),
        "layer_sizes": (lambda v: isinstance(v, list) and len(v) >= 2 and all(_is_int(s, 1) for s in v),
                        "a list of at least two positive integers"),
        "n_features_in": (lambda v: _is_int(v, 1), "a positive integer"),
        "n_iter": (lambda v: _is_int(v), "an integer >= 0"),
        "loss_curve": (lambda v: isinstance(v, list) and all(
            isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) for x in v),
            "a list of finite numbers"),
        "random_seed": (lambda v: _is_int(v), "an integer >= 0"),
        "optimizer_step": (lambda v: _is_int(v), "an integer >= 0"),
        "optimizer_buffers": (lambda v: isinstance(v, list) and all(isinstance(k, str) for k in v),
                              "a list of names"),
        "n_params": (lambda v: _is_int(v, 1), "a positive integer"),
    }
    for name, (ok, what) in fields.items():
        if name not in meta:
            raise bad(f"its meta.json lacks the field {name!r}")
        if not ok(meta[name]):
            raise bad(f"its meta.json field {name!r} must be {what}, got {meta[name]!r:.80}")
    sizes = meta["layer_sizes"]
    if sizes[0] != meta["n_features_in"]:
        raise bad(f"its network takes {sizes[0]} inputs but n_features_in is {meta['n_features_in']}")
    if "classes" not in arrays:
        raise bad("the array 'classes' is missing")
    classes = arrays["classes"]
    if classes.ndim != 1 or classes.dtype.kind not in "biufU":
        raise bad(f"'classes' must be a 1-D array of numbers or strings, got {classes.dtype} "
                  f"of shape {classes.shape}")
    if len(classes) != sizes[-1]:
        raise bad(f"it lists {len(classes)} classes but its network has {sizes[-1]} outputs")
    if len(classes) < 2 or len(np.unique(classes)) != len(classes):
        raise bad("its classes must be at least two distinct labels")
    if classes.dtype.kind == "f" and not np.isfinite(classes).all():
        raise bad("its classes hold NaN or infinity")
    for key, a in arrays.items():
        if (key.startswith(("param_", "opt_", "best_param_")) and a.dtype.kind == "f"
                and not np.isfinite(a).all()):
            raise bad(f"the array {key!r} holds NaN or infinity")


def _layer_sizes(clf: Any) -> list[int]:
    """``[n_features, units of each dense layer ...]`` of a fitted estimator's network."""
    net = clf._mlp
    if hasattr(net, "layer_sizes"):
        return [int(s) for s in net.layer_sizes]
    return [int(clf.n_features_in_), *(int(layer.units) for layer in net.layers if hasattr(layer, "units"))]


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
