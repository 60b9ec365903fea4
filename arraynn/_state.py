"""The training state of a fitted :class:`arraynn.NNClassifier`, in one object.

:class:`TrainingState` holds everything ``fit`` learns: the network and its optimizer
(both rebuilt from the estimator's parameters), the flat parameter buffer and the
optimizer's buffers on the device (with BatchNorm's running statistics), the
early-stopping record and the best epoch's copies, the counters and curves, and what
the estimator learned about its inputs (classes, shapes, preprocessing, names).

Its :meth:`~TrainingState.state_dict` maps names to host NumPy arrays and JSON values,
and :meth:`~TrainingState.from_state_dict` checks such a mapping and puts it back on a
device: pickling, model files (:mod:`arraynn.model_io`, whose ``.npz`` holds exactly
these arrays and values), checkpoints and forgetting a fit all go through this one
object. The array names are the model file's: ``param_0`` ... (each weight and bias
in layer order), ``opt_<buffer>_0`` ..., ``best_param_0`` ..., ``state_stats``,
``best_state_stats`` and ``classes``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["FittedAttribute", "StateError", "TrainingState", "inference_extras", "split_pickle"]


class StateError(ValueError):
    """A state dict that cannot be a fitted model's: names the entry and the problem."""


@dataclass(eq=False)
class TrainingState:
    """What a fit learned; see the module docstring."""

    backend: Any
    net: Any
    optimizer: Any
    params: Any
    opt: dict[str, Any]
    classes: np.ndarray
    n_features_in: int
    input_shape: tuple[int, ...]
    random_seed: int
    image_shape: tuple[int, int] | None = None
    tf32: bool = False
    loss_curve: list[float] = field(default_factory=list)
    n_iter: int = 0
    stopping: dict[str, Any] = field(default_factory=dict)
    validation_scores: list[float] | None = None
    best_validation_score: float | None = None
    best_loss: float | None = None
    best_params: Any = None
    best_stats: Any = None
    preprocessor: Any = None
    input_range: tuple[float, float] | None = None
    class_names: list[str] | None = None
    feature_names_in: np.ndarray | None = None

    @classmethod
    def new(cls, backend: Any, net: Any, optimizer: Any, params: Any, **fields: Any) -> TrainingState:
        """A fresh state: the optimizer's initial buffers for ``params`` and, for a
        network with BatchNorm, its initial running statistics."""
        with backend.device_context():
            opt = optimizer.init(params)
            if net.has_state:
                opt["stats"] = net.init_state(backend)
        return cls(backend, net, optimizer, params, opt, **fields)

    def reset_stopping(self, monitor: str) -> None:
        """The early-stopping record as before the first epoch, watching ``monitor``
        (scikit-learn's: the validation score's with early stopping, else the loss's)."""
        es = monitor == "validation_score"
        self.stopping = {"monitor": monitor}
        self.best_params = self.best_stats = None
        self.validation_scores = [] if es else None
        self.best_validation_score = -np.inf if es else None
        self.best_loss = None if es else np.inf

    @property
    def layer_sizes(self) -> list[int]:
        """``[n_features, units of each dense layer ...]``."""
        net = self.net
        if hasattr(net, "layer_sizes"):
            return [int(s) for s in net.layer_sizes]
        units = (int(layer.units) for layer in net.layers if hasattr(layer, "units"))
        return [int(self.n_features_in), *units]

    # ------------------------------------------------------------------------------
    # names to host arrays and JSON values
    # ------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Names to host NumPy arrays and JSON values (see the module docstring); the
        arrays are copies, which further training leaves as they are."""
        be, layout = self.backend, self.net.layout

        def host(a: Any) -> np.ndarray:
            return np.array(be.to_numpy(a), copy=True)

        out: dict[str, Any] = {}
        for i, p in enumerate(layout.views(host(self.params))):
            out[f"param_{i}"] = p
        for key in self.optimizer.buffers:
            for i, a in enumerate(layout.views(host(self.opt[key]))):
                out[f"opt_{key}_{i}"] = a
        if self.best_params is not None:
            for i, a in enumerate(layout.views(host(self.best_params))):
                out[f"best_param_{i}"] = a
        if self.net.has_state:
            out["state_stats"] = host(self.opt["stats"])
            if self.best_params is not None and self.best_stats is not None:
                out["best_state_stats"] = host(self.best_stats)
        classes = self.classes
        out["classes"] = classes.astype(str) if classes.dtype.kind == "O" else np.array(classes, copy=True)
        out.update({
            "layer_sizes": self.layer_sizes,
            "n_features_in": int(self.n_features_in),
            "n_iter": int(self.n_iter),
            "loss_curve": [float(v) for v in self.loss_curve],
            "random_seed": int(self.random_seed),
            "optimizer_step": int(self.opt["t"]),
            "optimizer_buffers": sorted(self.optimizer.buffers),
            "n_params": len(layout),
            "trained_on": {"backend": be.name, "device": be.device_name, "dtype": be.dtype_name},
        })
        if self.preprocessor is not None:
            out["preprocessing"] = self.preprocessor.to_dict()
        if self.class_names is not None:
            out["class_names"] = [str(n) for n in self.class_names]
        if self.stopping:
            out["stopping"] = {k: _finite_or_none(v) for k, v in self.stopping.items()}
            out["validation_scores"] = self.validation_scores
        if self.feature_names_in is not None:
            out["feature_names_in"] = [str(n) for n in self.feature_names_in]
        if self.image_shape is not None:
            out["image_shape"] = [int(s) for s in self.image_shape]
        if len(self.input_shape) > 1:
            out["input_shape"] = [int(s) for s in self.input_shape]
        if self.input_range is not None and self.preprocessor is not None:
            out["input_range"] = [float(b) for b in self.input_range]
        return out

    @classmethod
    def from_state_dict(cls, d: Mapping[str, Any], backend: Any,
                        build: Callable[[int, tuple[int, ...], int], tuple[Any, Any]]) -> TrainingState:
        """The state of :meth:`state_dict`'s mapping ``d`` on ``backend``.

        ``build(n_features, input_shape, n_outputs)`` returns the network and the
        optimizer the estimator's parameters make; ``d`` is checked against them. Raises
        :class:`StateError` naming the first entry that is missing or does not fit.
        """
        check_fields(d)
        n_features = int(d["n_features_in"])
        input_shape = _input_shape(d, n_features)
        classes = np.array(d["classes"], copy=True)
        net, optimizer = build(n_features, input_shape, len(classes))
        state = cls(backend, net, optimizer, None, {}, classes, n_features, input_shape,
                    int(d["random_seed"]))
        if state.layer_sizes != list(d["layer_sizes"]):
            raise StateError(f"its layer sizes {d['layer_sizes']} do not match its n_hidden_units or "
                             f"layers (which make {state.layer_sizes})")
        layout = net.layout
        if d["n_params"] != len(layout):
            raise StateError(f"it holds {d['n_params']} parameter arrays, its network needs {len(layout)}")

        def device(a: np.ndarray) -> Any:
            return backend.asarray(a, dtype=backend.dtype)

        with backend.device_context():
            state.params = device(_pack(d, "param_", layout))
            opt = optimizer.init(state.params)
            for key in d["optimizer_buffers"]:
                if key not in optimizer.buffers:
                    raise StateError(f"the optimizer buffer {key!r} does not belong to the "
                                     f"{optimizer.name!r} optimizer")
                opt[key] = device(_pack(d, f"opt_{key}_", layout))
            missing = sorted(set(optimizer.buffers) - set(d["optimizer_buffers"]))
            if missing and d["optimizer_step"] > 0:
                raise StateError(f"its optimizer's buffers {missing} are missing; it is incomplete")
            opt["t"] = int(d["optimizer_step"])
            if net.has_state:
                opt["stats"] = device(_stats(d, "state_stats", net.state_layout.size))
                if "best_state_stats" in d:
                    state.best_stats = device(_stats(d, "best_state_stats", net.state_layout.size))
            state.opt = opt
            if "best_param_0" in d:
                state.best_params = device(_pack(d, "best_param_", layout))
        state.n_iter = int(d["n_iter"])
        state.loss_curve = [float(v) for v in d["loss_curve"]]
        state.preprocessor, state.class_names = inference_extras(d, n_features, len(classes), backend)
        state.input_range = _input_range(d) if state.preprocessor is not None else None
        _inputs_learned(d, state)
        _stopping(d, state)
        return state


#: The learned attributes an estimator pickled by arraynn before the training state kept
#: in its ``__dict__``, by their names there (see :func:`split_pickle`).
_LEGACY = {"classes_": "classes", "n_features_in_": "n_features_in", "input_shape_": "input_shape",
           "random_seed_": "random_seed", "image_shape_": "image_shape", "tf32_": "tf32",
           "loss_curve_": "loss_curve", "n_iter_": "n_iter", "_stopping": "stopping",
           "validation_scores_": "validation_scores", "best_validation_score_": "best_validation_score",
           "best_loss_": "best_loss", "preprocessor_": "preprocessor", "input_range_": "input_range",
           "class_names_": "class_names", "feature_names_in_": "feature_names_in"}


def split_pickle(pickled: dict[str, Any], build: Callable[[int, tuple[int, ...], int], tuple[Any, Any]]
                 ) -> tuple[dict[str, Any], TrainingState | None]:
    """A pickled estimator's ``__dict__`` as its parameters and its training state (None
    when unfitted): ``_fitted`` holds the backend, the TF32 flag and the state dict; an
    estimator pickled by an earlier arraynn holds its learned attributes one by one."""
    pickled = dict(pickled)
    fitted = pickled.pop("_fitted", None)
    if fitted is not None:
        be, tf32, d = fitted
        state = TrainingState.from_state_dict(d, be, build)
        state.tf32 = tf32
        return pickled, state
    if "_params" not in pickled:
        return pickled, None
    old = {k: pickled.pop(k) for k in [*_LEGACY, "_params", "_opt_state", "_opt", "_mlp", "backend_",
                                       "_best_params", "_best_stats"] if k in pickled}
    be = old["backend_"]

    def device(a: Any) -> Any:
        return None if a is None else be.asarray(a, dtype=be.dtype)

    with be.device_context():
        opt = {k: device(v) if hasattr(v, "shape") else v for k, v in old["_opt_state"].items()}
        state = TrainingState(be, old["_mlp"], old["_opt"], device(old["_params"]), opt,
                              old["classes_"], int(old["n_features_in_"]),
                              tuple(old.get("input_shape_") or (int(old["n_features_in_"]),)),
                              int(old["random_seed_"]), best_params=device(old.get("_best_params")),
                              best_stats=device(old.get("_best_stats")))
    for name, field_name in _LEGACY.items():
        if name in old and field_name not in ("classes", "n_features_in", "input_shape", "random_seed"):
            setattr(state, field_name, old[name] if name != "_stopping" else dict(old[name] or {}))
    return pickled, state


class FittedAttribute:
    """An estimator attribute learned by ``fit``: read from its :class:`TrainingState`
    (``obj._state``), the not-fitted error before (an ``AttributeError``, so ``hasattr``
    says False). ``absent=True``: also absent while the state holds ``None`` (as
    scikit-learn's ``feature_names_in_``); ``settable=True``: may be assigned."""

    def __init__(self, name: str, not_fitted: Callable[[str], Exception], *, absent: bool = False,
                 settable: bool = False) -> None:
        self.name, self.not_fitted, self.absent, self.settable = name, not_fitted, absent, settable
        self.attr = name + "_"

    def __set_name__(self, owner: type, attr: str) -> None:
        self.attr = attr

    def __get__(self, obj: Any, owner: type | None = None) -> Any:
        if obj is None:
            return self
        state = obj.__dict__.get("_state")
        if state is None:
            raise self.not_fitted(self.attr)
        value = getattr(state, self.name)
        if value is None and self.absent:
            raise AttributeError(f"{type(obj).__name__} has no {self.attr}: it was not fitted on "
                                 "named columns")
        return value

    def __set__(self, obj: Any, value: Any) -> None:
        state = obj.__dict__.get("_state")
        if not self.settable or state is None:
            raise AttributeError(f"{self.attr} is learned by fit and cannot be set")
        setattr(state, self.name, value)


# ----------------------------------------------------------------------------------
# checks of a state dict's entries
# ----------------------------------------------------------------------------------
def _is_int(v: Any, low: int = 0) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= low


def _finite_or_none(v: Any) -> Any:
    """JSON has no infinity: a non-finite float is saved as ``None``."""
    return None if isinstance(v, float) and not math.isfinite(v) else v


_FIELDS: dict[str, tuple[Callable[[Any], bool], str]] = {
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


def check_fields(d: Mapping[str, Any]) -> None:
    """Every JSON field :meth:`TrainingState.from_state_dict` reads, present and of the
    right type and range, and the classes against the outputs."""
    for name, (ok, what) in _FIELDS.items():
        if name not in d:
            raise StateError(f"it lacks the field {name!r}")
        if not ok(d[name]):
            raise StateError(f"its field {name!r} must be {what}, got {d[name]!r:.80}")
    sizes = d["layer_sizes"]
    if sizes[0] != d["n_features_in"]:
        raise StateError(f"its network takes {sizes[0]} inputs but n_features_in is {d['n_features_in']}")
    classes = d.get("classes")
    if not isinstance(classes, np.ndarray):
        raise StateError("the array 'classes' is missing")
    if classes.ndim != 1 or classes.dtype.kind not in "biufU":
        raise StateError(f"'classes' must be a 1-D array of numbers or strings, got {classes.dtype} "
                         f"of shape {classes.shape}")
    if len(classes) != sizes[-1]:
        raise StateError(f"it lists {len(classes)} classes but its network has {sizes[-1]} outputs")
    if len(classes) < 2 or len(np.unique(classes)) != len(classes):
        raise StateError("its classes must be at least two distinct labels")
    if classes.dtype.kind == "f" and not np.isfinite(classes).all():
        raise StateError("its classes hold NaN or infinity")
    for key, a in d.items():
        if (key.startswith(("param_", "opt_", "best_param_")) and isinstance(a, np.ndarray)
                and a.dtype.kind == "f" and not np.isfinite(a).all()):
            raise StateError(f"the array {key!r} holds NaN or infinity")


def _pack(d: Mapping[str, Any], prefix: str, layout: Any) -> np.ndarray:
    """``d[prefix + "0"] ...``, one per parameter of ``layout``, checked against its
    shapes and concatenated into one flat host buffer."""
    parts = []
    for i, shape in enumerate(layout.shapes):
        key = f"{prefix}{i}"
        a = d.get(key)
        if not isinstance(a, np.ndarray):
            raise StateError(f"the array {key!r} is missing; it is incomplete or not an arraynn model")
        if tuple(a.shape) != shape:
            raise StateError(f"{key} has shape {tuple(a.shape)}, expected {shape}")
        if a.dtype.kind != "f":
            raise StateError(f"{key} has dtype {a.dtype}; model arrays are floating")
        parts.append(a.reshape(-1))
    return np.concatenate(parts)


def _stats(d: Mapping[str, Any], key: str, size: int) -> np.ndarray:
    """The state buffer ``key`` (BatchNorm's running statistics), checked."""
    a = d.get(key)
    if (not isinstance(a, np.ndarray) or a.ndim != 1 or a.size != size or a.dtype.kind != "f"
            or not np.isfinite(a).all()):
        raise StateError(f"its network has BatchNorm layers, whose running statistics {key!r} ({size} "
                         "finite numbers) are missing or damaged")
    return np.array(a, copy=True)


def _input_shape(d: Mapping[str, Any], n_features: int) -> tuple[int, ...]:
    sample = d.get("input_shape")
    if sample is None:
        return (n_features,)
    if (not isinstance(sample, list) or len(sample) != 3 or not all(_is_int(s, 1) for s in sample)
            or int(np.prod(sample)) != n_features):
        raise StateError(f"its input_shape must be [channels, height, width] of its {n_features} features")
    return tuple(int(s) for s in sample)


def _input_range(d: Mapping[str, Any]) -> tuple[float, float] | None:
    bounds = d.get("input_range")
    if bounds is None:
        return None
    if not (isinstance(bounds, list) and len(bounds) == 2
            and all(isinstance(b, (int, float)) and not isinstance(b, bool) and math.isfinite(b)
                    for b in bounds) and bounds[0] <= bounds[1]):
        raise StateError(f"its input_range must be [min, max], two finite numbers, got {bounds!r:.80}")
    return float(bounds[0]), float(bounds[1])


def inference_extras(d: Mapping[str, Any], n_features: int, n_classes: int, be: Any) -> tuple[Any, Any]:
    """The fitted preprocessing and the class names, checked against the model."""
    from .data.preprocessing import Preprocessor

    prep = names = None
    if "preprocessing" in d:
        try:
            prep = Preprocessor.from_dict(d["preprocessing"], backend=be)
        except (TypeError, ValueError) as exc:
            raise StateError(f"its preprocessing cannot be applied ({exc})") from None
        n = prep.n_features_in_
        if n is not None and n != n_features:
            raise StateError(f"its preprocessing has statistics of {n} features, the network takes "
                             f"{n_features}")
    if "class_names" in d:
        names = d["class_names"]
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise StateError(f"its class names must be a list of strings, got {names!r:.80}")
        if len(names) != n_classes:
            raise StateError(f"it names {len(names)} classes, the model has {n_classes}")
        names = list(names)
    return prep, names


def _inputs_learned(d: Mapping[str, Any], state: TrainingState) -> None:
    n = state.n_features_in
    features = d.get("feature_names_in")
    if features is not None:
        if (not isinstance(features, list) or len(features) != n
                or not all(isinstance(f, str) for f in features)):
            raise StateError(f"its feature_names_in must be {n} strings")
        state.feature_names_in = np.asarray(features, dtype=object)
    images = d.get("image_shape")
    if images is not None:
        if (not isinstance(images, list) or len(images) != 2 or not all(_is_int(s, 1) for s in images)
                or images[0] * images[1] != n):
            raise StateError(f"its image_shape must be [height, width] of its {n} features")
        state.image_shape = (int(images[0]), int(images[1]))


def _stopping(d: Mapping[str, Any], state: TrainingState) -> None:
    """The early-stopping / adaptive-rate record (a fresh one watching the loss when
    ``d`` has none: the estimator resets it to what its parameters watch)."""
    stopping = d.get("stopping")
    if stopping is None:
        state.reset_stopping("loss")
        state.stopping = {}
        return
    if not isinstance(stopping, dict) or stopping.get("monitor") not in ("validation_score", "loss"):
        raise StateError("its 'stopping' record is not an object naming what it monitors")
    for key in ("count", "divisions"):
        if key in stopping and not _is_int(stopping[key]):
            raise StateError(f"its stopping {key} must be an integer >= 0, got {stopping[key]!r:.40}")
    best = stopping.get("best")
    if best is not None and (isinstance(best, bool) or not isinstance(best, (int, float))
                             or not math.isfinite(best)):
        raise StateError(f"its stopping best must be a finite number, got {best!r:.40}")
    scores = d.get("validation_scores")
    if scores is not None and not (isinstance(scores, list) and all(
            isinstance(x, (int, float)) and not isinstance(x, bool) for x in scores)):
        raise StateError("its validation_scores must be a list of numbers")
    best_params, best_stats = state.best_params, state.best_stats
    validation = stopping["monitor"] == "validation_score"
    state.reset_stopping(stopping["monitor"])
    state.stopping = dict(stopping)
    state.best_params, state.best_stats = best_params, best_stats
    if validation and scores is not None:
        state.validation_scores = [float(x) for x in scores]
    if validation:
        state.best_validation_score = -np.inf if best is None else float(best)
    else:
        state.best_loss = np.inf if best is None else float(best)
