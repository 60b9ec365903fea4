"""Feature scaling written against the Python Array API standard.

Every function takes floating arrays already on their device (NumPy, CuPy,
torch, JAX, array-api-strict, ...) and returns arrays of the same namespace,
dtype and device; nothing goes back to the host. Integer arrays (such as the
uint8 images of :func:`arraynn.data.fashion_mnist.load_fashion_mnist`) must be
converted to a floating dtype on the device first, e.g. ``xp.astype(X, xp.float32)``.

Means and variances are computed in the input's dtype, summed pairwise with the
corrected two-pass formula (see :mod:`arraynn.data._stats`): float32 statistics
of 60000 samples are accurate to a few float32 ulps on every backend. NaNs
propagate.

A :class:`Preprocessor` is a named scheme (``"standardize"``, ``"per-set"``,
``"unit"`` or ``"none"``) that is fitted on the training set, applied to any
set, and saved with a model as JSON.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import array_api_compat

from ..backends import Backend, backend_for, get_backend
from ._stats import mean_std, safe_scale

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
        mean, std = mean_std(X, xp)
        self.mean_ = mean
        self.scale_ = safe_scale(std, xp)
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

    def fit_transform(self, X: Any) -> Any:
        """Fit on ``X`` and return ``X`` standardized; see :meth:`fit`."""
        return self.fit(X).transform(X)

    def __call__(self, X: Any) -> Any:
        """Same as :meth:`transform`, so a fitted standardizer can be passed wherever a
        ``transform`` callable is expected (e.g. the data loader)."""
        return self.transform(X)

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
    mean, std = mean_std(X, xp)
    return (X - mean) / safe_scale(std, xp)


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
    """A preprocessing scheme by name: fit on the training set, apply on the device.

    The one description of a scheme used by the library and the command line:
    :meth:`fit` learns what the scheme needs (the training set's statistics for
    ``"standardize"``, nothing for the others), :meth:`apply` preprocesses any
    set, and :meth:`to_dict` / :meth:`from_dict` save and restore it as JSON
    (the ``"preprocessing"`` entry of a run's ``model.json``).

    Parameters
    ----------
    name : {"standardize", "per-set", "unit", "none"}
        ``"standardize"``: scale every set with the training set's mean and
        std. ``"per-set"``: standardize each set with its own statistics (the
        article). ``"unit"``: divide by 255. ``"none"``: no change.

    Attributes
    ----------
    name : str
    standardizer_ : Standardizer or None
        The training set's statistics: the scheme's standardizer for
        ``"standardize"``; for ``"per-set"`` the statistics :meth:`apply_new`
        scales new data with (None before fitting, and for the other schemes).

    Raises
    ------
    ValueError
        For an unknown name; the message lists the valid ones.

    Examples
    --------
    >>> import array_api_strict as xp
    >>> prep = Preprocessor("standardize").fit(xp.asarray([[0.0, 5.0], [2.0, 5.0]]))
    >>> prep.apply(xp.asarray([[4.0, 5.0]]))
    Array([[3., 0.]], dtype=array_api_strict.float64)
    >>> prep.to_dict()
    {'scheme': 'standardize', 'mean': [1.0, 5.0], 'scale': [1.0, 1.0]}
    """

    def __init__(self, name: str) -> None:
        if name not in PREPROCESSORS:
            raise ValueError(
                f"unknown preprocessing {name!r}; choose one of {', '.join(repr(p) for p in PREPROCESSORS)}"
            )
        self.name = name
        self.standardizer_: Standardizer | None = None

    def fit(self, X: Any) -> Preprocessor:
        """Learn the scheme's statistics from the training set ``X``.

        Parameters
        ----------
        X : array of shape (n_samples, n_features), real floating dtype
            On its device; for ``"standardize"`` and ``"per-set"`` a new
            :class:`Standardizer` is fitted on it and kept in ``standardizer_``
            (``"per-set"`` keeps it for :meth:`apply_new`). The other schemes
            have nothing to learn.

        Returns
        -------
        Preprocessor
            ``self``.
        """
        if self.name in ("standardize", "per-set"):
            self.standardizer_ = Standardizer().fit(X)
        return self

    def apply_new(self, X: Any) -> Any:
        """Preprocess new data (images to predict, of any number) as the training set was.

        Same as :meth:`apply`, except for ``"per-set"`` with known training
        statistics: new data are standardized with those, because a few images
        (one, say) have no statistics of their own. Without them (a description
        saved by arraynn 0.1.0) it is ``"per-set"`` on ``X`` itself, which is only
        meaningful for a whole test set.
        """
        if self.name == "per-set" and self.standardizer_ is not None:
            return self.standardizer_.transform(X)
        return self.apply(X)

    @property
    def n_features_in_(self) -> int | None:
        """The number of features of the training set, when the scheme knows it."""
        st = self.standardizer_
        return None if st is None else int(st.n_features_in_)

    def apply(self, X: Any) -> Any:
        """Preprocess ``X`` (a floating array on its device) by the scheme.

        Returns
        -------
        array
            A new array of ``X``'s namespace, dtype and device (``X`` itself for
            ``"none"``).

        Raises
        ------
        RuntimeError
            For ``"standardize"`` before :meth:`fit` (or :meth:`from_dict`).
        TypeError
            If ``X`` is not of a real floating dtype.
        """
        if self.name == "standardize":
            return self._fitted().transform(X)
        if self.name == "per-set":
            return scale(X)
        if self.name == "unit":
            return scale_unit(X)
        return X

    def __call__(self, X_train: Any, X_test: Any = None) -> tuple[Any, Any]:
        """Fit on the training set and apply to it and to the test set.

        Returns
        -------
        (X_train, X_test)
            The preprocessed arrays (``X_test`` is None if it was None).
        """
        self.fit(X_train)
        return self.apply(X_train), (None if X_test is None else self.apply(X_test))

    def to_dict(self) -> dict[str, Any]:
        """The scheme as JSON-ready data: ``{"scheme": name}``, plus for
        ``"standardize"`` (and a fitted ``"per-set"``) the training set's ``"mean"``
        and ``"scale"`` as lists of floats (one device-to-host copy each)."""
        out: dict[str, Any] = {"scheme": self.name}
        if self.name == "standardize" or self.standardizer_ is not None:
            st = self._fitted()
            for key, values in (("mean", st.mean_), ("scale", st.scale_)):
                out[key] = [float(v) for v in backend_for(values).to_numpy(values)]
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], backend: Backend | None = None) -> Preprocessor:
        """Rebuild a fitted scheme from :meth:`to_dict`'s data.

        Parameters
        ----------
        d : mapping
            ``{"scheme": name}``, with ``"mean"`` and ``"scale"`` (equally long
            lists of numbers) for ``"standardize"`` (optional for ``"per-set"``).
            Other keys are ignored.
        backend : Backend, optional
            Where to put the statistics, in its float dtype; default: NumPy
            float64 arrays on the host (:meth:`apply` moves them to the data).

        Raises
        ------
        ValueError
            If ``d`` has no known scheme, or a ``"standardize"`` scheme lacks
            valid statistics; the message names the problem.
        """
        if not isinstance(d, Mapping) or "scheme" not in d:
            raise ValueError(f"a preprocessing description needs a 'scheme' entry, got {d!r}")
        prep = cls(d["scheme"])
        if prep.name not in ("standardize", "per-set") or (
                prep.name == "per-set" and "mean" not in d and "scale" not in d):
            return prep
        stats = []
        for key in ("mean", "scale"):
            values = d.get(key)
            if not isinstance(values, (list, tuple)) or not values or not all(
                    isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
                raise ValueError(
                    f"preprocessing {prep.name!r} needs {key!r}: a non-empty list of numbers, got {values!r}"
                )
            stats.append([float(v) for v in values])
        if len(stats[0]) != len(stats[1]):
            raise ValueError(
                f"preprocessing {prep.name!r} has {len(stats[0])} means but {len(stats[1])} scales"
            )
        be = backend if backend is not None else get_backend("numpy", None, "float64")
        st = Standardizer()
        st.mean_, st.scale_ = (be.asarray(v, dtype=be.dtype) for v in stats)
        st.n_features_in_ = len(stats[0])
        st.n_samples_seen_ = 0  # not stored
        prep.standardizer_ = st
        return prep

    def _fitted(self) -> Standardizer:
        if self.standardizer_ is None:
            raise RuntimeError(
                f"{self!r} is not fitted: call fit(X_train) first, or rebuild it with Preprocessor.from_dict"
            )
        return self.standardizer_

    def __repr__(self) -> str:
        return f"Preprocessor({self.name!r})"


def make_preprocessor(name: str = "standardize") -> Preprocessor:
    """Return the preprocessing scheme ``name``: same as ``Preprocessor(name)``.

    Call it as ``X_train, X_test = prep(X_train, X_test)``; see
    :class:`Preprocessor` for the schemes.

    Examples
    --------
    >>> import array_api_strict as xp
    >>> prep = make_preprocessor("unit")
    >>> Xtr, Xte = prep(xp.asarray([[0.0, 255.0]]), xp.asarray([[51.0, 102.0]]))
    >>> Xte
    Array([[0.2, 0.4]], dtype=array_api_strict.float64)
    """
    return Preprocessor(name)
