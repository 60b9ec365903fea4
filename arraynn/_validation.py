"""Checks of what users pass in: feature arrays and labels, before any work starts.

Every error names what is wrong and the fix.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from .backends import to_host

__all__ = ["check_array", "check_blas_threads", "check_feature_names", "check_input_shape", "check_layers",
           "check_sample_weight", "encode_labels", "encode_with", "feature_names", "hidden_sizes",
           "labels_to_host", "unique_labels"]


class ComplexDataError(TypeError, ValueError):
    """Complex input where real numbers are needed."""


def _sklearn_class(name: str, fallback: type) -> type:
    """scikit-learn's exception or warning class ``name`` when scikit-learn is already
    imported (its tools then recognise what arraynn raises), else ``fallback``; arraynn
    never imports scikit-learn itself."""
    module = sys.modules.get("sklearn.exceptions")
    return getattr(module, name, fallback) if module is not None else fallback


def _is_sparse(X: Any) -> bool:
    scipy_sparse = sys.modules.get("scipy.sparse")
    return scipy_sparse is not None and bool(scipy_sparse.issparse(X))


def _host_array_like(x: Any) -> bool:
    """Whether ``x`` is converted with ``numpy.asarray``: lists, tuples and array-likes
    that are not arrays of a supported library (pandas DataFrame and Series, objects
    with ``__array__``)."""
    if isinstance(x, (list, tuple)):
        return True
    if isinstance(x, np.ndarray) or not hasattr(x, "__array__"):
        return False
    import array_api_compat as aac

    return not aac.is_array_api_obj(x)


def check_array(X: Any, what: str = "X") -> Any:
    """Shape, type and finiteness checks of a 2-D feature array; returns X (lists,
    array-likes, pandas DataFrames and numeric object arrays -> NumPy)."""
    if _is_sparse(X):
        raise TypeError(f"sparse input is not supported: {what} is a {type(X).__name__}; pass a "
                        f"dense array ({what}.toarray())")
    if _host_array_like(X):
        X = np.asarray(X)
    shape = getattr(X, "shape", None)
    if shape is None:
        raise TypeError(f"{what} must be an array, got {type(X).__name__}")
    if len(shape) != 2:
        raise ValueError(
            f"{what} must be 2-D (n_samples, n_features), got shape {tuple(shape)}. Reshape your "
            "data: X.reshape(1, -1) for a single sample, X.reshape(len(X), -1) for images"
        )
    if shape[0] == 0:
        raise ValueError(f"Found array with 0 sample(s) (shape={tuple(shape)}) while a minimum of 1 "
                         f"is required: {what} is empty; at least one sample is needed")
    if shape[1] == 0:
        raise ValueError(f"Found array with 0 feature(s) (shape={tuple(shape)}) while a minimum of 1 "
                         f"is required: {what} has 0 features")
    if isinstance(X, np.ndarray):
        if X.dtype.kind == "O":
            try:
                X = X.astype(np.float64)
            except (TypeError, ValueError) as exc:
                raise TypeError(f"{what} must be numeric; its object array holds other values "
                                f"({exc})") from None
        if X.dtype.kind == "c":
            raise ComplexDataError(f"Complex data not supported: {what} must be real-valued, got "
                                   f"dtype {X.dtype}; take X.real or abs(X) first if that is what "
                                   "you mean")
        if X.dtype.kind not in "biuf":
            raise TypeError(f"{what} must be numeric, got dtype {X.dtype}")
        if X.dtype.kind == "f" and not np.isfinite(X).all():
            raise ValueError(f"{what} contains NaN or infinity; remove or impute those values")
    else:
        import array_api_compat as aac

        xp = aac.array_namespace(X)
        if xp.isdtype(X.dtype, "complex floating"):
            raise ComplexDataError(f"Complex data not supported: {what} must be real-valued, got "
                                   f"dtype {X.dtype}; take X.real or abs(X) first if that is what "
                                   "you mean")
        if xp.isdtype(X.dtype, "real floating") and not bool(xp.all(xp.isfinite(X))):
            raise ValueError(f"{what} contains NaN or infinity; remove or impute those values")
    return X


def labels_to_host(y: Any) -> np.ndarray:
    """Labels of any library (or a list) as a host NumPy array."""
    if y is None:
        raise ValueError("this estimator requires y to be passed, but the target y is None")
    if isinstance(y, np.ndarray):
        return y
    if _host_array_like(y):
        return np.asarray(y)
    return to_host(y)


def feature_names(X: Any) -> np.ndarray | None:
    """The column names of a DataFrame-like ``X`` (an object with ``columns``) as an
    object array, when they are all strings; ``None`` for arrays and for columns that
    are not named by strings. Mixed names are an error, as in scikit-learn."""
    columns = getattr(X, "columns", None)
    if columns is None or isinstance(X, np.ndarray):
        return None
    names = np.asarray(list(columns), dtype=object)
    is_str = [isinstance(n, str) for n in names]
    if names.size and all(is_str):
        return names
    if any(is_str):
        kinds = sorted({type(n).__name__ for n in names})
        raise TypeError(
            "Feature names are only supported if all input features have string names, but your "
            f"input has {kinds} as feature name / column name types. If you want feature names to "
            "be stored and validated, you must convert them all to strings, by using "
            "X.columns = X.columns.astype(str) for example. Otherwise you can remove feature / "
            "column names from your input data, or convert them all to a non-string data type.")
    return None


def check_feature_names(est: Any, X: Any) -> None:
    """Check the column names of ``X`` against the fitted ``est.feature_names_in_``, with
    scikit-learn's warnings and errors: names at predict time that differ from those
    seen at fit are a ValueError, names on one side only a UserWarning. (``fit`` takes
    its names from :func:`feature_names`.)"""
    names = feature_names(X)
    fitted = getattr(est, "feature_names_in_", None)
    cls = type(est).__name__
    if fitted is None and names is None:
        return
    if fitted is None:
        warnings.warn(f"X has feature names, but {cls} was fitted without feature names",
                      UserWarning, stacklevel=3)
        return
    if names is None:
        warnings.warn(f"X does not have valid feature names, but {cls} was fitted with feature "
                      "names", UserWarning, stacklevel=3)
        return
    if len(fitted) == len(names) and np.all(fitted == names):
        return
    unseen = sorted(set(names) - set(fitted))
    missing = sorted(set(fitted) - set(names))

    def listed(items: list[str]) -> str:
        shown = [f"- {n}\n" for n in items[:5]]
        return "".join(shown) + ("- ...\n" if len(items) > 5 else "")

    message = "The feature names should match those that were passed during fit.\n"
    if unseen:
        message += "Feature names unseen at fit time:\n" + listed(unseen)
    if missing:
        message += "Feature names seen at fit time, yet now missing:\n" + listed(missing)
    if not unseen and not missing:
        message += "Feature names must be in the same order as they were in fit.\n"
    raise ValueError(message)


def check_sample_weight(sample_weight: Any, n_samples: int) -> np.ndarray | None:
    """``sample_weight`` as a new host float64 array of ``n_samples`` finite weights
    ``>= 0`` with a positive sum (a number: that weight for every sample; ``None``:
    ``None``). Any library's array, a list or a pandas Series is accepted."""
    if sample_weight is None:
        return None
    if isinstance(sample_weight, (int, float, np.integer, np.floating)) and not isinstance(
            sample_weight, (bool, np.bool_)):
        w = np.full(n_samples, float(sample_weight))
    else:
        if isinstance(sample_weight, (str, bytes, dict, set)):
            raise TypeError(f"sample_weight must be an array of numbers, got {type(sample_weight).__name__}")
        w = labels_to_host(sample_weight)
        if w.dtype.kind not in "biuf":
            try:
                w = w.astype(np.float64)
            except (TypeError, ValueError):
                raise TypeError(f"sample_weight must hold numbers, got dtype {w.dtype}") from None
        w = np.array(w, dtype=np.float64)  # a copy: the caller's array is never changed
    if w.shape != (n_samples,):
        raise ValueError(f"sample_weight.shape == {w.shape}, expected {(n_samples,)}: give one "
                         "weight per sample, a 1-D array as long as X")
    if not np.isfinite(w).all():
        raise ValueError("sample_weight contains NaN or infinity; every weight must be a finite "
                         "number >= 0")
    if (w < 0).any():
        raise ValueError(f"sample_weight holds negative weights (the smallest is {w.min():g}); "
                         "weights must be >= 0 (0 leaves a sample out)")
    if not w.sum() > 0:
        raise ValueError("every sample_weight is zero, so nothing would be learned; give at least "
                         "one sample a positive weight")
    return w


def encode_labels(y: Any, n_samples: int, n_classes: int | None) -> tuple[np.ndarray, np.ndarray]:
    """``(class indices, classes)`` of labels ``y`` for ``n_samples`` rows.

    The classes are the sorted distinct labels, or ``0 .. n_classes - 1`` when
    ``n_classes`` is given (the labels must then be those integers).
    """
    y_host = labels_to_host(y)
    if y_host.ndim != 1:
        if y_host.ndim == 2 and y_host.shape[1] == 1:
            warnings.warn("A column-vector y was passed when a 1d array was expected; it was "
                          "raveled to shape (n_samples,): pass y.ravel() to silence this",
                          _sklearn_class("DataConversionWarning", UserWarning), stacklevel=3)
            y_host = y_host.ravel()
        else:
            raise ValueError(f"y must be 1-D (n_samples,), got shape {y_host.shape}")
    if len(y_host) != n_samples:
        raise ValueError(f"X has {n_samples} samples but y has {len(y_host)}; they must match")
    if y_host.dtype.kind == "f" and not np.isfinite(y_host).all():
        raise ValueError("y contains NaN or infinity")
    if y_host.dtype.kind == "f" and not np.array_equal(y_host, np.round(y_host)):
        raise ValueError("Unknown label type: continuous. y holds non-integer numbers, but a "
                         "classifier needs class labels (integers, strings, ...); for a regression "
                         "target use a regressor, or bin the values first")
    present = unique_labels(y_host, "y")
    if present.size < 2:
        raise ValueError(f"y holds a single class ({present[0]!r}), one class only; a classifier "
                         "needs at least two")
    if n_classes is not None:
        if y_host.dtype.kind not in "iu" or present.min() < 0 or present.max() >= n_classes:
            raise ValueError(
                f"with n_classes={n_classes}, labels must be integers 0..{n_classes - 1}; "
                f"got values from {present.min()!r} to {present.max()!r} (omit n_classes to "
                "infer the classes from y)"
            )
        classes = np.arange(n_classes, dtype=y_host.dtype)
    else:
        classes = present
    return encode_with(y_host, classes, n_samples), classes


def unique_labels(y: np.ndarray, what: str) -> np.ndarray:
    """The sorted distinct labels of the host array ``y``; labels that cannot be sorted
    together (e.g. strings mixed with numbers) are a ValueError naming their types."""
    try:
        return np.unique(y)
    except TypeError:
        kinds = sorted({type(v).__name__ for v in y.ravel().tolist()})
        raise ValueError(f"{what} mixes labels of types {', '.join(kinds)}, which cannot be "
                         "ordered; make every label the same type, e.g. y.astype(str)") from None


def encode_with(y: Any, classes: np.ndarray, n: int) -> np.ndarray:
    """The index of each of the ``n`` labels ``y`` in ``classes`` (int64); labels not in
    ``classes`` are an error."""
    y_host = labels_to_host(y)
    if y_host.ndim != 1 or len(y_host) != n:
        raise ValueError(f"y must be 1-D with {n} entries, got shape {y_host.shape}")
    try:
        idx = np.searchsorted(classes, y_host)
    except TypeError:
        raise ValueError(f"y holds labels of another type than the classes {classes[:5]!r}; "
                         "use labels of the same type as in the first fit") from None
    idx = np.clip(idx, 0, len(classes) - 1)
    unknown = classes[idx] != y_host
    if unknown.any():
        raise ValueError(f"y holds labels not seen in the first fit: {np.unique(y_host[unknown])[:5]!r}")
    return idx.astype(np.int64)


def hidden_sizes(h: Any) -> tuple[int, ...]:
    """``n_hidden_units`` as a tuple of layer sizes (an int is one hidden layer)."""
    if isinstance(h, (int, np.integer)) and not isinstance(h, bool):
        return (int(h),)
    if isinstance(h, Sequence) and not isinstance(h, str):
        return tuple(h)
    raise ValueError(f"n_hidden_units must be an int or a sequence of ints, got {h!r}")


#: The choice parameters that also take None.
OPTIONAL_CHOICES = ("preprocessing",)


def check_params(est: Any, choices: dict[str, tuple[str, ...]]) -> None:
    """The constructor parameters of the estimator ``est``: every one checked before any
    work, with a ValueError that names the parameter, its valid values and what it got.
    ``choices`` maps each choice parameter to its valid values; the number parameters'
    and the flags' are :data:`arraynn._parameters.INTERVALS` and ``FLAGS``."""
    from ._parameters import FLAGS, INTERVALS

    for name, interval in INTERVALS.items():
        if name == "n_batches" and est.batch_size is not None:
            continue  # ignored with batch_size
        interval.check(name, getattr(est, name, 0))
    check_blas_threads(getattr(est, "blas_threads", None))
    check_layers(est)
    if getattr(est, "input_shape", None) is not None:
        check_input_shape(est.input_shape)
    for h in hidden_sizes(est.n_hidden_units):
        INTERVALS["epochs"].check("n_hidden_units", h)  # a positive integer each
    if est.shuffle is not None and not isinstance(est.shuffle, (bool, np.bool_)):
        raise ValueError(f"shuffle must be None, True or False, got {est.shuffle!r}")
    for name in FLAGS:
        if not isinstance(getattr(est, name), (bool, np.bool_)):
            raise ValueError(f"{name} must be True or False, got {getattr(est, name)!r}")
    from .nn.mlp import dropout_rates

    dropout_rates(getattr(est, "dropout", 0.0), len(hidden_sizes(est.n_hidden_units)))
    inp = getattr(est, "input_dropout", 0.0)
    if not isinstance(inp, (int, float, np.integer, np.floating)) or isinstance(inp, bool):
        raise ValueError(f"input_dropout must be a number in [0, 1), got {inp!r}")
    dropout_rates(float(inp), 1)
    for name, valid in choices.items():
        value = getattr(est, name)
        if value is None and name in OPTIONAL_CHOICES:
            continue
        if not isinstance(value, str) or value not in valid:
            none = "None or " if name in OPTIONAL_CHOICES else ""
            raise ValueError(f"{name} must be {none}one of {list(valid)}, got {value!r}")


#: The parameters ``layers`` replaces (giving one at other than its default is an error).
_LAYERS_REPLACE = ("n_hidden_units", "activation", "dropout", "input_dropout")


def check_layers(est: Any) -> None:
    """``layers``: ``None``, or a non-empty list of :mod:`arraynn.layers` objects, given
    without the parameters it replaces (:data:`_LAYERS_REPLACE` at the defaults of the
    estimator's constructor)."""
    layers = getattr(est, "layers", None)
    if layers is None:
        return
    from .nn.layers import Layer

    if isinstance(layers, (str, bytes, Layer)) or not hasattr(layers, "__iter__"):
        raise ValueError(f"layers must be a list of arraynn.layers objects, got {layers!r:.80}")
    layers = list(layers)
    bad = [x for x in layers if not isinstance(x, Layer)]
    if not layers or bad:
        raise ValueError("layers must be a non-empty list of arraynn.layers objects (Dense, ReLU, Dropout, "
                         f"...), got {(bad[0] if bad else layers)!r:.80}")
    import inspect

    defaults = {p.name: p.default for p in inspect.signature(type(est).__init__).parameters.values()}
    for name in _LAYERS_REPLACE:
        value, default = getattr(est, name), defaults[name]
        same = value == default if not hasattr(value, "__len__") or isinstance(value, str) else False
        if not same:
            raise ValueError(f"layers and {name}={value!r} were both given; layers describes the whole "
                             f"network body: put the {name.replace('_', ' ')} in the layers, or leave "
                             "layers=None")


def check_blas_threads(value: Any) -> None:
    """``blas_threads``: ``None`` (the BLAS library's own thread count) or a positive
    integer; else a ValueError naming the parameter and what it takes."""
    if value is not None and (isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer))
                              or value < 1):
        raise ValueError(f"blas_threads must be None (the BLAS library's default) or a positive integer "
                         f"(the BLAS threads of fit and predict, e.g. 1), got {value!r}")


def check_input_shape(value: Any, n_features: int | None = None) -> tuple[int, ...]:
    """``input_shape``: ``(channels, height, width)`` or ``(height, width)`` of positive
    integers, whose product is ``n_features`` when that is given."""
    items = None if isinstance(value, (str, bytes)) or not hasattr(value, "__len__") else list(value)
    if (items is None or len(items) not in (2, 3)
            or any(isinstance(d, bool) or not isinstance(d, (int, np.integer)) or d < 1 for d in items)):
        raise ValueError(f"input_shape must be (channels, height, width) or (height, width) of positive "
                         f"integers, got {value!r}")
    shape = tuple(int(d) for d in items)
    if n_features is not None and int(np.prod(shape)) != n_features:
        raise ValueError(f"input_shape={shape} holds {int(np.prod(shape))} values but X has {n_features} "
                         "features per row; they must match")
    return shape


def flatten_images(X: Any) -> Any:
    """``X`` of shape ``(n, h, w)`` or ``(n, c, h, w)`` as flat rows ``(n, c * h * w)`` (C
    order); anything else as it is."""
    if isinstance(X, (list, tuple)):
        X = np.asarray(X)
    shape = getattr(X, "shape", None)
    if shape is None or len(shape) not in (3, 4):
        return X
    n = int(shape[0])
    flat = int(np.prod([int(d) for d in shape[1:]]))
    if isinstance(X, np.ndarray):
        return X.reshape(n, flat)
    import array_api_compat as aac

    return aac.array_namespace(X).reshape(X, (n, flat))
