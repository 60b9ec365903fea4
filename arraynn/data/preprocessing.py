"""Feature scaling written against the Python Array API standard.

Every function takes floating arrays already on their device (NumPy, CuPy,
torch, JAX, array-api-strict, ...) and returns arrays of the same namespace,
dtype and device; nothing goes back to the host. Integer arrays (such as the
uint8 images of :func:`arraynn.datasets.load_fashion_mnist`) must be converted to
a floating dtype on the device first, e.g. ``xp.astype(X, xp.float32)``.

Means and variances are computed in the input's dtype with a pairwise
(cascade) summation over the samples and the corrected two-pass formula, so
float32 statistics of 60000 samples are accurate to a few float32 ulps whatever
the backend's own reduction order. NaNs are not skipped: they propagate.

Preprocessing schemes, by name (see :func:`make_preprocessor`):

``"standardize"``
    (default) fit a :class:`Standardizer` on the training set and apply it to
    both sets: the test set is scaled with the training mean and std.
``"per-set"``
    standardize each set with its own mean and std (:func:`scale`), as the
    original article does with ``sklearn.preprocessing.scale``.
``"unit"``
    divide by 255 (:func:`scale_unit`): pixels in [0, 1].
``"none"``
    leave the arrays as they are.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import array_api_compat

__all__ = [
    "PREPROCESSORS",
    "Preprocessor",
    "Standardizer",
    "make_preprocessor",
    "scale",
    "scale_unit",
]

#: The names :func:`make_preprocessor` accepts, the default first.
PREPROCESSORS: tuple[str, ...] = ("standardize", "per-set", "unit", "none")


def _check_float(X: Any, xp: Any, who: str) -> None:
    if not xp.isdtype(X.dtype, "real floating"):
        raise TypeError(
            f"{who} needs an array of a real floating dtype, got {X.dtype}. Convert "
            "it on its device first, e.g. X = xp.astype(X, xp.float32)"
        )


def _check_2d(X: Any, who: str) -> None:
    if X.ndim != 2:
        raise ValueError(f"{who} needs a 2-D array (n_samples, n_features), got shape {X.shape}")
    if X.shape[0] == 0:
        raise ValueError(f"{who} needs at least one sample, got shape {X.shape}")


def _sum_rows(A: Any, xp: Any) -> Any:
    """Sum a 2-D array over axis 0 with pairwise (O(log n) error) summation.

    Libraries differ in how they reduce over a non-contiguous axis (NumPy adds
    the rows one after the other, which loses ~n ulps); halving the array
    repeatedly gives the same accurate result on every backend.
    """
    leftovers = []
    while A.shape[0] > 8:
        n = A.shape[0]
        h = n // 2
        if n % 2:
            leftovers.append(A[h : h + 1, ...])
        A = A[:h, ...] + A[n - h :, ...]
    total = xp.sum(A, axis=0)
    if leftovers:
        # Add the odd rows smallest first (each holds fewer samples than the next).
        extra = leftovers[0]
        for row in leftovers[1:]:
            extra = extra + row
        total = total + extra[0, ...]
    return total


#: Rows per block are chosen so that a block holds about this many elements:
#: the temporaries of one block stay small (16 MiB in float32) and are reused.
_BLOCK_ELEMENTS = 1 << 22


def _row_blocks(X: Any) -> list[Any]:
    n, f = X.shape
    rows = max(1, _BLOCK_ELEMENTS // max(int(f), 1))
    return [X[i : min(i + rows, int(n)), ...] for i in range(0, int(n), rows)]


def _combine(partials: list[Any], xp: Any) -> Any:
    """Pairwise sum of per-block column sums."""
    if len(partials) == 1:
        return partials[0]
    return _sum_rows(xp.stack(partials, axis=0), xp)


def _mean_std(X: Any, xp: Any) -> tuple[Any, Any]:
    """Per-feature mean and population std of a 2-D float array, in its dtype.

    Two passes over blocks of rows, each summed pairwise: the first gives the
    mean, the second the sums of the deviations ``d`` and of ``d**2``, combined
    by the corrected two-pass formula ``(sum(d**2) - sum(d)**2 / n) / n``, whose
    second term cancels the rounding error of the mean.
    """
    dev = array_api_compat.device(X)
    n = xp.asarray(X.shape[0], dtype=X.dtype, device=dev)
    blocks = _row_blocks(X)
    mean = _combine([_sum_rows(B, xp) for B in blocks], xp) / n
    s1_parts, s2_parts = [], []
    for B in blocks:
        D = B - mean
        s1_parts.append(_sum_rows(D, xp))
        s2_parts.append(_sum_rows(D * D, xp))
    s1 = _combine(s1_parts, xp)
    s2 = _combine(s2_parts, xp)
    var = (s2 - s1 * s1 / n) / n
    zero = xp.asarray(0, dtype=X.dtype, device=dev)
    return mean, xp.sqrt(xp.where(var > zero, var, zero))


def _safe_scale(X: Any, std: Any, xp: Any) -> Any:
    """``std`` with 1 where a feature is constant (as scikit-learn does)."""
    dev = array_api_compat.device(X)
    constant = (xp.max(X, axis=0) == xp.min(X, axis=0)) | (std == 0)
    return xp.where(constant, xp.asarray(1, dtype=X.dtype, device=dev), std)


class Standardizer:
    """Remove the mean and scale to unit variance, per feature.

    Like scikit-learn's ``StandardScaler``: the std is the population std
    (``ddof=0``), and a constant feature gets scale 1, so it maps to 0. Fit it
    on the training set and apply it to both sets.

    Attributes
    ----------
    mean_ : array of shape (n_features,)
        Per-feature mean, in the namespace, dtype and device of the fitted data.
    scale_ : array of shape (n_features,)
        Per-feature std, 1 for constant features.
    n_features_in_ : int
    n_samples_seen_ : int

    Examples
    --------
    >>> import array_api_strict as xp
    >>> X = xp.asarray([[0.0, 5.0], [2.0, 5.0]])
    >>> st = Standardizer().fit(X)
    >>> st.mean_, st.scale_
    (Array([1., 5.], dtype=array_api_strict.float64), Array([1., 1.], dtype=array_api_strict.float64))
    >>> st.transform(X)
    Array([[-1.,  0.],
           [ 1.,  0.]], dtype=array_api_strict.float64)
    """

    mean_: Any
    scale_: Any
    n_features_in_: int
    n_samples_seen_: int

    def fit(self, X: Any) -> Standardizer:
        """Learn ``mean_`` and ``scale_`` from ``X``.

        Parameters
        ----------
        X : array of shape (n_samples, n_features), real floating dtype

        Returns
        -------
        Standardizer
            ``self``.

        Raises
        ------
        TypeError
            If ``X`` is not of a real floating dtype.
        ValueError
            If ``X`` is not 2-D or has no samples.
        """
        xp = array_api_compat.array_namespace(X)
        _check_float(X, xp, "Standardizer.fit")
        _check_2d(X, "Standardizer.fit")
        mean, std = _mean_std(X, xp)
        self.mean_ = mean
        self.scale_ = _safe_scale(X, std, xp)
        self.n_features_in_ = int(X.shape[1])
        self.n_samples_seen_ = int(X.shape[0])
        return self

    def transform(self, X: Any) -> Any:
        """Return ``(X - mean_) / scale_``.

        The learned statistics are cast to ``X``'s dtype and moved to its device
        if they differ (and converted if ``X`` comes from another array library,
        e.g. fitted on NumPy arrays and applied to torch tensors).

        Parameters
        ----------
        X : array of shape (n_samples, n_features), real floating dtype

        Returns
        -------
        array of shape (n_samples, n_features)
            A new array of ``X``'s namespace, dtype and device.

        Raises
        ------
        RuntimeError
            If the standardizer is not fitted.
        TypeError
            If ``X`` is not floating, or the statistics cannot be converted to
            ``X``'s array library and device.
        ValueError
            If ``X`` has a different number of features.
        """
        if not hasattr(self, "mean_"):
            raise RuntimeError("this Standardizer is not fitted yet: call fit(X_train) first")
        xp = array_api_compat.array_namespace(X)
        _check_float(X, xp, "Standardizer.transform")
        if X.ndim != 2 or X.shape[1] != self.n_features_in_:
            raise ValueError(
                f"Standardizer.transform: X has shape {X.shape}, but the "
                f"standardizer was fitted on {self.n_features_in_} features"
            )
        mean = self._like(self.mean_, X, xp)
        scale_ = self._like(self.scale_, X, xp)
        return (X - mean) / scale_

    def fit_transform(self, X: Any) -> Any:
        """Fit on ``X`` and return ``X`` standardized; see :meth:`fit`."""
        return self.fit(X).transform(X)

    def __call__(self, X: Any) -> Any:
        """Same as :meth:`transform`, so a fitted standardizer can be passed
        wherever a ``transform`` callable is expected (e.g. the data loader)."""
        return self.transform(X)

    @staticmethod
    def _like(p: Any, X: Any, xp: Any) -> Any:
        """``p`` in ``X``'s namespace, dtype and device."""
        dev = array_api_compat.device(X)
        try:
            array_api_compat.array_namespace(p, X)
        except TypeError:
            # Fitted with another library (e.g. NumPy on the host): convert.
            try:
                return xp.asarray(p, dtype=X.dtype, device=dev)
            except Exception as exc:
                raise TypeError(
                    f"Standardizer.transform: cannot move the statistics learned from "
                    f"{type(p).__module__} arrays to {type(X).__module__} arrays on "
                    f"{dev} ({type(exc).__name__}: {exc}); fit and transform arrays of "
                    "the same backend"
                ) from exc
        if p.dtype != X.dtype:
            p = xp.astype(p, X.dtype)
        if array_api_compat.device(p) != dev:
            p = array_api_compat.to_device(p, dev)
        return p

    def __repr__(self) -> str:
        return "Standardizer()"


def scale(X: Any) -> Any:
    """Standardize ``X`` with its own per-feature mean and population std.

    The semantics of ``sklearn.preprocessing.scale`` (``ddof=0``, constant
    features get scale 1), which the original article applies to the training
    and the test set separately.

    Parameters
    ----------
    X : array of shape (n_samples, n_features), real floating dtype

    Returns
    -------
    array of shape (n_samples, n_features)
        A new array of ``X``'s namespace, dtype and device.

    Raises
    ------
    TypeError
        If ``X`` is not of a real floating dtype.
    ValueError
        If ``X`` is not 2-D or has no samples.
    """
    xp = array_api_compat.array_namespace(X)
    _check_float(X, xp, "scale")
    _check_2d(X, "scale")
    mean, std = _mean_std(X, xp)
    return (X - mean) / _safe_scale(X, std, xp)


def scale_unit(X: Any, max_value: float = 255.0) -> Any:
    """Divide by ``max_value``: pixels 0-255 become values in [0, 1].

    Parameters
    ----------
    X : array, real floating dtype, any shape
    max_value : float, default 255.0
        The largest possible input value; must be positive.

    Returns
    -------
    array
        ``X / max_value``, a new array of ``X``'s namespace, dtype and device.

    Raises
    ------
    TypeError
        If ``X`` is not of a real floating dtype.
    ValueError
        If ``max_value`` is not positive.
    """
    xp = array_api_compat.array_namespace(X)
    _check_float(X, xp, "scale_unit")
    if not max_value > 0:
        raise ValueError(f"scale_unit: max_value must be positive, got {max_value!r}")
    dev = array_api_compat.device(X)
    return X / xp.asarray(max_value, dtype=X.dtype, device=dev)


class Preprocessor:
    """A named preprocessing scheme: ``X_train, X_test = prep(X_train, X_test)``.

    Made by :func:`make_preprocessor`. Calling it preprocesses the training set
    and (when given) the test set; for ``"standardize"`` it fits a new
    :class:`Standardizer` on the training set each call and keeps it in
    ``standardizer_`` (so its ``mean_`` and ``scale_`` can be saved with a
    model and applied to new data).

    Parameters
    ----------
    name : {"standardize", "per-set", "unit", "none"}

    Attributes
    ----------
    name : str
    standardizer_ : Standardizer or None
        The standardizer fitted by the last call (``"standardize"`` only).
    """

    def __init__(self, name: str) -> None:
        if name not in PREPROCESSORS:
            raise ValueError(
                f"unknown preprocessing {name!r}; choose one of {', '.join(repr(p) for p in PREPROCESSORS)}"
            )
        self.name = name
        self.standardizer_: Standardizer | None = None

    def __call__(self, X_train: Any, X_test: Any = None) -> tuple[Any, Any]:
        """Preprocess the training set and the test set.

        Parameters
        ----------
        X_train : array of shape (n_train, n_features), real floating dtype
        X_test : array of shape (n_test, n_features), optional

        Returns
        -------
        (X_train, X_test)
            The preprocessed arrays (``X_test`` is None if it was None).
        """
        fn: Callable[[Any], Any]
        if self.name == "none":
            return X_train, X_test
        if self.name == "standardize":
            st = Standardizer().fit(X_train)
            self.standardizer_ = st
            fn = st.transform
        elif self.name == "per-set":
            fn = scale
        else:
            fn = scale_unit
        return fn(X_train), (None if X_test is None else fn(X_test))

    def __repr__(self) -> str:
        return f"Preprocessor({self.name!r})"


def make_preprocessor(name: str = "standardize") -> Preprocessor:
    """Return the preprocessing scheme ``name`` as a callable.

    Parameters
    ----------
    name : {"standardize", "per-set", "unit", "none"}, default "standardize"
        ``"standardize"``: fit on the training set, apply to both sets.
        ``"per-set"``: standardize each set with its own statistics (the
        article). ``"unit"``: divide by 255. ``"none"``: no change.

    Returns
    -------
    Preprocessor
        Call it as ``X_train, X_test = prep(X_train, X_test)``.

    Raises
    ------
    ValueError
        For an unknown name; the message lists the valid ones.

    Examples
    --------
    >>> import array_api_strict as xp
    >>> prep = make_preprocessor("unit")
    >>> Xtr, Xte = prep(xp.asarray([[0.0, 255.0]]), xp.asarray([[51.0, 102.0]]))
    >>> Xte
    Array([[0.2, 0.4]], dtype=array_api_strict.float64)
    """
    return Preprocessor(name)
