"""``NNClassifier``: the article's estimator, on any Array API backend.

The article's call runs unchanged::

    from arraynn import NNClassifier
    nn = NNClassifier(n_classes=10, n_features=784, n_hidden_units=50, l2=0.5, l1=0.0,
                      epochs=300, learning_rate=0.001, n_batches=25, random_seed=RANDOM_SEED)
    nn.fit(X_train, y_train)
    nn.score(X_test, y_test), nn.error_

and so do scikit-learn's conventions: ``get_params``/``set_params`` (``clone`` works),
``fit`` returns ``self``, learned attributes end in ``_``.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import math
import os
import time
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ._fileio import atomic_open
from .backends import Backend, DeviceMemoryError, backend_for, get_backend, is_out_of_memory
from .data.loader import DataLoader
from .losses import OUTPUTS
from .mlp import MLP, one_hot
from .optimizers import OPTIMIZERS, make_optimizer

__all__ = ["NNClassifier", "NotFittedError", "TrainingDivergedError", "ModelFileError"]

_FORMAT = "arraynn.NNClassifier"
_FORMAT_VERSION = 1
_PREDICT_CHUNK = 8192

#: Learning-rate schedules accepted by ``NNClassifier(schedule=...)``.
SCHEDULES = ("constant", "cosine")


class NotFittedError(ValueError, AttributeError):
    """The estimator is used before ``fit``."""


class TrainingDivergedError(FloatingPointError):
    """The training loss became NaN or infinite."""


class ModelFileError(ValueError):
    """A saved model or checkpoint cannot be read."""


class NNClassifier:
    """A multilayer-perceptron classifier trained by backpropagation.

    The first nine parameters are the article's, with its meaning and defaults; the
    rest extend it.

    Parameters
    ----------
    n_classes : int, optional
        Number of classes; inferred from ``y`` at ``fit`` when omitted. When given,
        labels must be the integers ``0 .. n_classes-1``.
    n_features : int, optional
        Number of input features; inferred from ``X`` when omitted.
    n_hidden_units : int or sequence of int
        Units of the hidden layer, or one entry per hidden layer.
    l1, l2 : float
        Penalties ``l1*sum|w| + l2/2*sum w**2`` on the weights; their gradients
        ``l1*sign(w) + l2*w`` are added to every minibatch's summed gradient.
    epochs : int
        Passes over the training set.
    learning_rate : float
        Step size. With ``"sgd"`` the update is ``w -= learning_rate * g`` where ``g``
        is the gradient summed over the minibatch (the article's).
    n_batches : int
        Number of minibatches per epoch, split as ``numpy.array_split`` (the article's
        fixed batches). Ignored when ``batch_size`` is set.
    random_seed : int, optional
        Seed of the initial weights and of the shuffling. ``None`` draws one (stored
        in ``random_seed_``).
    activation : {"sigmoid", "tanh", "relu"}
        Hidden-layer activation.
    output : {"sigmoid", "softmax"}
        Output layer: the article's independent sigmoids, or a softmax.
    optimizer : {"sgd", "momentum", "adam"}
    batch_size : int, optional
        Samples per minibatch, an alternative to ``n_batches``.
    shuffle : bool, optional
        Reshuffle every epoch. Default: ``False`` with ``n_batches`` (the article's
        fixed batches), ``True`` with ``batch_size``.
    bias : bool
        Give every layer a bias vector (the article's network has none).
    init : {"uniform", "glorot", "he"}
        Initial weights: ``"uniform"`` is the article's U(-1, 1).
    momentum : float
        Momentum of the ``"momentum"`` optimizer.
    beta_1, beta_2, epsilon : float
        Adam's parameters.
    schedule : {"constant", "cosine"}
        Learning rate of epoch ``e`` (0-based): constant, or cosine decay
        ``learning_rate * (1 + cos(pi * e / epochs)) / 2``. It depends only on the
        epoch number, so a resumed run follows the same schedule.
    backend : str or Backend, optional
        Where to compute. ``None`` computes where the input lives (NumPy in, NumPy
        out). A name (``"numpy"``, ``"cupy"``, ``"torch"``, ``"jax"``,
        ``"array_api_strict"``, ``"auto"``) moves inputs there.
    device : str, optional
        Device of ``backend`` (``"cuda:0"``, ``"device1"``, ...).
    dtype : {"float32", "float64"}
        Dtype of the weights and computations.
    tf32 : bool
        Let float32 matmuls use TF32 tensor cores on NVIDIA GPUs (faster, 10-bit
        mantissa inputs). Off by default; it sets the library's process-wide flag at
        ``fit`` (and turns it off when ``False``). ``tf32_`` says whether it is in effect.
    warm_start : bool
        When fitted already, ``fit`` continues from the learned weights and optimizer
        state until ``n_iter_`` reaches ``epochs`` (a checkpoint resumes this way).
    verbose : bool
        Print one line per epoch.

    Attributes
    ----------
    classes_ : ndarray
        The class labels (host NumPy array).
    n_features_in_ : int
    coefs_, intercepts_ : list of arrays
        Weight matrices ``(n_in, n_out)`` and bias vectors (empty without biases), as
        arrays of the training backend.
    loss_curve_ : list of float
        Per epoch: mean cross-entropy per sample plus the penalty per sample (the
        penalty at the epoch's final weights, counted once per minibatch).
    error_ : list of float
        The article's name for ``loss_curve_``.
    n_iter_ : int
        Epochs run.
    backend_ : Backend
        Where the model lives.
    tf32_ : bool
        Whether TF32 matmuls were in effect.
    random_seed_ : int
        The seed used.
    """

    def __init__(self, n_classes: int | None = None, n_features: int | None = None,
                 n_hidden_units: int | Sequence[int] = 30, l1: float = 0.0, l2: float = 0.0,
                 epochs: int = 500, learning_rate: float = 0.01, n_batches: int = 1,
                 random_seed: int | None = None, *, activation: str = "sigmoid",
                 output: str = "sigmoid", optimizer: str = "sgd", batch_size: int | None = None,
                 shuffle: bool | None = None, bias: bool = False, init: str = "uniform",
                 momentum: float = 0.9, beta_1: float = 0.9, beta_2: float = 0.999,
                 epsilon: float = 1e-8, schedule: str = "constant",
                 backend: str | Backend | None = None,
                 device: Any = None, dtype: str = "float32", tf32: bool = False,
                 warm_start: bool = False, verbose: bool = False) -> None:
        self.n_classes = n_classes
        self.n_features = n_features
        self.n_hidden_units = n_hidden_units
        self.l1 = l1
        self.l2 = l2
        self.epochs = epochs
        self.learning_rate = learning_rate
        self.n_batches = n_batches
        self.random_seed = random_seed
        self.activation = activation
        self.output = output
        self.optimizer = optimizer
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.bias = bias
        self.init = init
        self.momentum = momentum
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.schedule = schedule
        self.backend = backend
        self.device = device
        self.dtype = dtype
        self.tf32 = tf32
        self.warm_start = warm_start
        self.verbose = verbose

    # ------------------------------------------------------------------------------
    # scikit-learn's parameter protocol
    # ------------------------------------------------------------------------------
    @classmethod
    def _param_names(cls) -> list[str]:
        sig = inspect.signature(cls.__init__)
        return [p for p in sig.parameters if p != "self"]

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """The constructor's parameters, as given."""
        return {name: getattr(self, name) for name in self._param_names()}

    def set_params(self, **params: Any) -> NNClassifier:
        """Set constructor parameters; returns ``self``."""
        valid = set(self._param_names())
        for key, value in params.items():
            if key not in valid:
                raise ValueError(
                    f"invalid parameter {key!r} for NNClassifier; valid parameters are "
                    f"{sorted(valid)}"
                )
            setattr(self, key, value)
        return self

    def __repr__(self) -> str:
        defaults = {p.name: p.default for p in inspect.signature(type(self).__init__).parameters.values()}
        changed = [f"{k}={v!r}" for k, v in self.get_params().items()
                   if k in defaults and not _same(v, defaults[k])]
        return f"NNClassifier({', '.join(changed)})"

    def __sklearn_tags__(self):  # pragma: no cover - only used by scikit-learn
        from sklearn.utils import ClassifierTags, Tags, TargetTags

        return Tags(estimator_type="classifier", target_tags=TargetTags(required=True),
                    classifier_tags=ClassifierTags())

    _estimator_type = "classifier"

    # ------------------------------------------------------------------------------
    # Checks
    # ------------------------------------------------------------------------------
    def _check_params(self) -> None:
        def positive_int(name: str, value: Any, allow_none: bool = False) -> None:
            if value is None and allow_none:
                return
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")

        positive_int("epochs", self.epochs)
        positive_int("n_classes", self.n_classes, allow_none=True)
        positive_int("n_features", self.n_features, allow_none=True)
        positive_int("batch_size", self.batch_size, allow_none=True)
        if self.batch_size is None:
            positive_int("n_batches", self.n_batches)
        hidden = self._hidden_sizes()
        for h in hidden:
            positive_int("n_hidden_units", h)
        for name in ("learning_rate",):
            v = getattr(self, name)
            if not isinstance(v, (int, float, np.floating)) or not v > 0 or not math.isfinite(v):
                raise ValueError(f"{name} must be a positive number, got {v!r}")
        for name in ("l1", "l2"):
            v = getattr(self, name)
            if not isinstance(v, (int, float, np.floating)) or not v >= 0 or not math.isfinite(v):
                raise ValueError(f"{name} must be a number >= 0, got {v!r}")
        if self.output not in OUTPUTS:
            raise ValueError(f"output must be one of {list(OUTPUTS)}, got {self.output!r}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {sorted(OPTIMIZERS)}, got {self.optimizer!r}")
        if self.activation not in ("sigmoid", "tanh", "relu"):
            raise ValueError(f"activation must be 'sigmoid', 'tanh' or 'relu', got {self.activation!r}")
        if self.init not in ("uniform", "glorot", "he"):
            raise ValueError(f"init must be 'uniform', 'glorot' or 'he', got {self.init!r}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {list(SCHEDULES)}, got {self.schedule!r}")
        if self.dtype not in ("float32", "float64"):
            raise ValueError(f"dtype must be 'float32' or 'float64', got {self.dtype!r}")

    def _hidden_sizes(self) -> tuple[int, ...]:
        h = self.n_hidden_units
        if isinstance(h, (int, np.integer)) and not isinstance(h, bool):
            return (int(h),)
        if isinstance(h, Sequence) and not isinstance(h, str):
            if len(h) == 0:
                return ()
            return tuple(h)
        raise ValueError(f"n_hidden_units must be an int or a sequence of ints, got {h!r}")

    def _check_is_fitted(self) -> None:
        if not hasattr(self, "_params"):
            raise NotFittedError(
                "this NNClassifier is not fitted yet; call fit(X, y) before using it "
                "(or NNClassifier.load(path) for a saved model)"
            )

    def _compute_backend(self, X: Any) -> Backend:
        if self.backend is None:
            return backend_for(X, dtype=self.dtype)
        return get_backend(self.backend, self.device, self.dtype)

    def _check_X(self, X: Any, what: str = "X") -> Any:
        """Shape and finiteness checks, before any work; returns X (lists -> NumPy)."""
        if isinstance(X, (list, tuple)):
            X = np.asarray(X)
        shape = getattr(X, "shape", None)
        if shape is None:
            raise TypeError(f"{what} must be an array, got {type(X).__name__}")
        if len(shape) != 2:
            raise ValueError(
                f"{what} must be 2-D (n_samples, n_features), got shape {tuple(shape)}; "
                "reshape a single sample with X.reshape(1, -1) and images with X.reshape(len(X), -1)"
            )
        if shape[0] == 0:
            raise ValueError(f"{what} is empty (0 samples); at least one sample is needed")
        if shape[1] == 0:
            raise ValueError(f"{what} has 0 features")
        if isinstance(X, np.ndarray):
            if X.dtype.kind not in "biuf":
                raise TypeError(f"{what} must be numeric, got dtype {X.dtype}")
            if X.dtype.kind == "f" and not np.isfinite(X).all():
                raise ValueError(f"{what} contains NaN or infinity; remove or impute those values")
        else:
            import array_api_compat as aac

            xp = aac.array_namespace(X)
            if xp.isdtype(X.dtype, "real floating") and not bool(xp.all(xp.isfinite(X))):
                raise ValueError(f"{what} contains NaN or infinity; remove or impute those values")
        return X

    # ------------------------------------------------------------------------------
    # Training
    # ------------------------------------------------------------------------------
    def fit(self, X: Any, y: Any, *, callback: Callable[[NNClassifier, dict], Any] | None = None
            ) -> NNClassifier:
        """Train on ``X`` (n_samples, n_features) and labels ``y`` (n_samples,).

        Parameters
        ----------
        X : array
            NumPy, or an array of any supported library (training then happens on its
            device unless ``backend`` says otherwise). Integer data (e.g. uint8
            pixels) is converted to the float dtype on the device.
        y : array
            Labels of any values (integers, strings, ...).
        callback : callable, optional
            Called after every epoch as ``callback(self, info)`` with ``info`` a dict
            holding ``epoch`` (1-based), ``loss``, ``seconds`` and ``learning_rate``.
            Returning ``True`` stops training.

        Returns
        -------
        self
        """
        self._check_params()
        X = self._check_X(X)
        y_idx, classes = self._encode_labels(X, y)
        resume = self.warm_start and hasattr(self, "_params")
        if resume:
            if X.shape[1] != self.n_features_in_:
                raise ValueError(
                    f"X has {X.shape[1]} features but the model was trained with "
                    f"{self.n_features_in_}; warm_start needs the same features"
                )
            if not np.array_equal(classes, self.classes_):
                raise ValueError("warm_start needs the same classes as the first fit")
        else:
            self._initialize(X.shape[1], classes, self._compute_backend(X))
        self._train(X, y_idx, self.epochs, callback)
        return self

    def partial_fit(self, X: Any, y: Any, classes: Any = None) -> NNClassifier:
        """One epoch over ``(X, y)``, initialising the model on the first call.

        ``classes`` (all labels that will ever be seen) is needed on the first call
        unless ``n_classes`` is set or ``y`` already holds every class.
        """
        self._check_params()
        X = self._check_X(X)
        if not hasattr(self, "_params"):
            if classes is None and self.n_classes is None:
                _, classes = self._encode_labels(X, y)
            elif classes is not None:
                classes = np.unique(np.asarray(classes))
                if classes.size < 2:
                    raise ValueError("classes must hold at least two labels")
            else:
                classes = np.arange(self.n_classes)
            self._initialize(X.shape[1], classes, self._compute_backend(X))
        elif X.shape[1] != self.n_features_in_:
            raise ValueError(f"X has {X.shape[1]} features, but NNClassifier is expecting "
                             f"{self.n_features_in_} features as input")
        y_idx = self._encode_with(y, self.classes_, len(X))
        self._train(X, y_idx, self.n_iter_ + 1, None)
        return self

    def _train(self, X: Any, y_idx: np.ndarray, end_epoch: int,
               callback: Callable[[NNClassifier, dict], Any] | None) -> None:
        """Load ``(X, y_idx)`` onto the device once and train until ``end_epoch``."""
        with self._memory_errors(X.shape[0]):
            loader = self._make_loader(X, y_idx)
            try:
                self._run_epochs(loader, end_epoch, callback)
            finally:
                loader.close()

    @contextlib.contextmanager
    def _memory_errors(self, n_samples: int):
        """Turn any library's out-of-memory error into a DeviceMemoryError with the fix."""
        try:
            yield
        except DeviceMemoryError:
            raise
        except Exception as exc:
            if not is_out_of_memory(exc):
                raise
            be = self.backend_
            used = be.memory_in_use()
            used_text = "unknown" if used is None else f"{used / 2**20:.0f} MiB"
            batch = (f"batch_size={self.batch_size}" if self.batch_size is not None
                     else f"n_batches={self.n_batches} (about {-(-n_samples // self.n_batches)} "
                          "samples per batch)")
            raise DeviceMemoryError(
                f"{be.name} on {be.device_name} ran out of memory training with {batch} on "
                f"{n_samples} samples (device memory in use: {used_text}); use a smaller "
                "batch_size (or more n_batches), a smaller network, or stream the data "
                f"with arraynn.DataLoader(stream=True). [{type(exc).__name__}: {exc}]"
            ) from exc

    def _encode_labels(self, X: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
        y_host = _labels_to_host(y)
        if y_host.ndim != 1:
            if y_host.ndim == 2 and y_host.shape[1] == 1:
                raise ValueError("y must be 1-D (n_samples,), got a column vector; use y.ravel()")
            raise ValueError(f"y must be 1-D (n_samples,), got shape {y_host.shape}")
        if len(y_host) != X.shape[0]:
            raise ValueError(f"X has {X.shape[0]} samples but y has {len(y_host)}; they must match")
        if y_host.dtype.kind == "f" and not np.isfinite(y_host).all():
            raise ValueError("y contains NaN or infinity")
        present = np.unique(y_host)
        if present.size < 2:
            raise ValueError(
                f"y holds a single class ({present[0]!r}); a classifier needs at least two"
            )
        if self.n_classes is not None:
            if y_host.dtype.kind not in "iu" or present.min() < 0 or present.max() >= self.n_classes:
                raise ValueError(
                    f"with n_classes={self.n_classes}, labels must be integers 0..{self.n_classes - 1}; "
                    f"got values from {present.min()!r} to {present.max()!r} (omit n_classes to "
                    "infer the classes from y)"
                )
            classes = np.arange(self.n_classes, dtype=y_host.dtype)
        else:
            classes = present
        return self._encode_with(y_host, classes, X.shape[0]), classes

    @staticmethod
    def _encode_with(y: Any, classes: np.ndarray, n: int) -> np.ndarray:
        y_host = _labels_to_host(y)
        if y_host.ndim != 1 or len(y_host) != n:
            raise ValueError(f"y must be 1-D with {n} entries, got shape {y_host.shape}")
        idx = np.searchsorted(classes, y_host)
        idx = np.clip(idx, 0, len(classes) - 1)
        unknown = classes[idx] != y_host
        if unknown.any():
            raise ValueError(f"y holds labels not seen in the first fit: {np.unique(y_host[unknown])[:5]!r}")
        return idx.astype(np.int64)

    def _initialize(self, n_features: int, classes: np.ndarray, backend: Backend) -> None:
        if self.n_features is not None and n_features != self.n_features:
            raise ValueError(f"X has {n_features} features but n_features={self.n_features}")
        seed = self.random_seed
        if seed is None:
            seed = int(np.random.SeedSequence().entropy % (2**63))
        self.random_seed_ = int(seed)
        self.backend_ = backend
        self.classes_ = classes
        self.n_features_in_ = int(n_features)
        self._mlp = MLP((n_features, *self._hidden_sizes(), len(classes)),
                        activation=self.activation, output=self.output, bias=self.bias)
        rng = np.random.default_rng(self.random_seed_)
        self._params = self._mlp.init_params(backend, rng, self.init)
        self._opt = self._make_optimizer()
        self._opt_state = self._opt.init(self._params)
        self.loss_curve_: list[float] = []
        self.n_iter_ = 0

    def _make_optimizer(self):
        return make_optimizer(self.optimizer, float(self.learning_rate), momentum=float(self.momentum),
                              beta_1=float(self.beta_1), beta_2=float(self.beta_2),
                              epsilon=float(self.epsilon))

    def learning_rate_at(self, epoch: int) -> float:
        """The learning rate of epoch ``epoch`` (0-based) under ``schedule``."""
        lr = float(self.learning_rate)
        if self.schedule == "cosine":
            return lr * 0.5 * (1.0 + math.cos(math.pi * epoch / int(self.epochs)))
        return lr

    def _make_loader(self, X: Any, y_idx: np.ndarray) -> DataLoader:
        be = self.backend_
        shuffle = self.shuffle if self.shuffle is not None else self.batch_size is not None
        if self.batch_size is not None:
            sizes = dict(batch_size=min(int(self.batch_size), X.shape[0]))
        else:
            sizes = dict(n_batches=min(int(self.n_batches), X.shape[0]))
        return DataLoader(X, y_idx, backend=be, shuffle=shuffle, seed=self.random_seed_, **sizes)

    def _run_epochs(self, loader: DataLoader, end_epoch: int,
                    callback: Callable[[NNClassifier, dict], Any] | None) -> None:
        be, mlp, opt = self.backend_, self._mlp, self._opt
        l1, l2 = float(self.l1), float(self.l2)
        n_classes, dtype = len(self.classes_), be.dtype
        n, n_batches = loader.n_samples, len(loader)
        params, state = self._params, self._opt_state
        self.tf32_ = be.set_tf32(bool(self.tf32))
        step = mlp.train_step
        if be.name == "jax":  # the same step compiled with jax.jit (arraynn._jax)
            from ._jax import train_step_for

            step = train_step_for(mlp, opt, l1, l2)
        while self.n_iter_ < end_epoch:
            start = time.perf_counter()
            lr = opt.learning_rate = self.learning_rate_at(self.n_iter_)
            total = None
            for Xb, yb in loader.epoch(self.n_iter_):
                Yb = one_hot(yb, n_classes, dtype)
                params, state, loss = step(params, opt, state, Xb, Yb, l1, l2)
                total = loss if total is None else total + loss
            if l1 or l2:
                total = total + n_batches * mlp.penalty(params, l1, l2)
            value = be.to_float(total) / n  # the epoch's one device-to-host copy
            self._params, self._opt_state = params, state
            if not math.isfinite(value):
                raise TrainingDivergedError(
                    f"the training loss became {value} in epoch {self.n_iter_ + 1}; lower the "
                    f"learning rate (this epoch used {lr:g}) or standardize the inputs"
                )
            self.n_iter_ += 1
            self.loss_curve_.append(value)
            seconds = time.perf_counter() - start
            if self.verbose:
                print(f"epoch {self.n_iter_}/{end_epoch}  loss {value:.6f}  {seconds:.2f}s")
            info = {"epoch": self.n_iter_, "loss": value, "seconds": seconds, "learning_rate": lr}
            if callback is not None and callback(self, info):
                break

    # ------------------------------------------------------------------------------
    # Learned attributes
    # ------------------------------------------------------------------------------
    @property
    def coefs_(self) -> list[Any]:
        """Weight matrices, ``(n_in, n_out)`` each, on the model's backend."""
        self._check_is_fitted()
        return self._mlp.weights(self._params)

    @property
    def intercepts_(self) -> list[Any]:
        """Bias vectors (empty list when ``bias=False``)."""
        self._check_is_fitted()
        if not self._mlp.bias:
            return []
        return [self._params[2 * i + 1] for i in range(self._mlp.n_layers)]

    @property
    def error_(self) -> list[float]:
        """The article's name for :attr:`loss_curve_`."""
        self._check_is_fitted()
        return self.loss_curve_

    # ------------------------------------------------------------------------------
    # Inference
    # ------------------------------------------------------------------------------
    def _check_predict_X(self, X: Any) -> Any:
        self._check_is_fitted()
        X = self._check_X(X)
        if X.shape[1] != self.n_features_in_:
            raise ValueError(
                f"X has {X.shape[1]} features, but this NNClassifier was fitted with "
                f"{self.n_features_in_} features"
            )
        return X

    def _proba_on_model(self, X: Any) -> Any:
        be, xp = self.backend_, self.backend_.xp
        out = []
        n = X.shape[0]
        for s in range(0, n, _PREDICT_CHUNK):
            Xc = be.asarray(X[s:min(s + _PREDICT_CHUNK, n), ...])
            if Xc.dtype != be.dtype:
                Xc = xp.astype(Xc, be.dtype)
            p = self._mlp.predict_proba(self._params, Xc)
            if self.output == "sigmoid":
                p = p / xp.sum(p, axis=1, keepdims=True)
            out.append(p)
        return out[0] if len(out) == 1 else xp.concat(out, axis=0)

    def predict_proba(self, X: Any) -> Any:
        """Class probabilities, rows summing to 1, in ``X``'s library and device.

        With the sigmoid output the per-class sigmoids are normalised to sum to 1.
        Columns follow ``classes_``.
        """
        X = self._check_predict_X(X)
        return self._to_input_library(self._proba_on_model(X), X)

    def predict(self, X: Any) -> Any:
        """The most probable class of each row, in ``X``'s library and device.

        Labels that cannot live on a device (strings) come back as a NumPy array.
        """
        X = self._check_predict_X(X)
        be, xp = self.backend_, self.backend_.xp
        idx = xp.argmax(self._proba_on_model(X), axis=1)
        if isinstance(X, np.ndarray) or self.classes_.dtype.kind not in "biuf":
            return self.classes_[be.to_numpy(idx)]
        if np.array_equal(self.classes_, np.arange(len(self.classes_))):
            labels = idx
        else:
            labels = xp.take(be.asarray(self.classes_), idx, axis=0)
        return self._to_input_library(labels, X)

    def score(self, X: Any, y: Any) -> float:
        """Mean accuracy of ``predict(X)`` against ``y``."""
        X = self._check_predict_X(X)
        y_host = _labels_to_host(y)
        if y_host.shape != (X.shape[0],):
            raise ValueError(f"y must be 1-D with {X.shape[0]} entries, got shape {y_host.shape}")
        be, xp = self.backend_, self.backend_.xp
        idx = be.to_numpy(xp.argmax(self._proba_on_model(X), axis=1))
        return float(np.mean(self.classes_[idx] == y_host))

    def _to_input_library(self, result: Any, X: Any) -> Any:
        if isinstance(X, np.ndarray):
            return self.backend_.to_numpy(result)
        target = backend_for(X)
        if target.name == self.backend_.name and target.device == self.backend_.device:
            return result
        host = self.backend_.to_numpy(result)
        return target.asarray(host, dtype=None if _int_like(result) else target.dtype)

    # ------------------------------------------------------------------------------
    # Saving and loading: .npz holding arrays plus a JSON document, no pickle
    # ------------------------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> Path:
        """Write the model (and its optimizer state) to one ``.npz`` file, atomically.

        The file holds the parameters, the optimizer's buffers, the classes and a
        ``meta.json`` entry (the constructor's parameters, the epoch count, the loss
        curve, the seed). It is written to a temporary file in the same directory and
        renamed into place, so a crash never leaves a half-written model.
        """
        self._check_is_fitted()
        path = Path(path)
        be = self.backend_
        arrays: dict[str, np.ndarray] = {}
        for i, p in enumerate(self._params):
            arrays[f"param_{i}"] = be.to_numpy(p)
        for key, value in self._opt_state.items():
            if isinstance(value, list):
                for i, a in enumerate(value):
                    arrays[f"opt_{key}_{i}"] = be.to_numpy(a)
        classes = self.classes_
        if classes.dtype.kind == "O":
            classes = classes.astype(str)
        arrays["classes"] = classes
        params = self.get_params()
        if isinstance(params["backend"], Backend):
            params["backend"] = params["backend"].name
        params["device"] = None if params["device"] is None else str(params["device"])
        if not isinstance(params["n_hidden_units"], (int, np.integer)):
            params["n_hidden_units"] = [int(h) for h in params["n_hidden_units"]]
        meta = {
            "format": _FORMAT,
            "format_version": _FORMAT_VERSION,
            "params": _jsonable(params),
            "layer_sizes": list(self._mlp.layer_sizes),
            "n_features_in": self.n_features_in_,
            "n_iter": self.n_iter_,
            "loss_curve": self.loss_curve_,
            "random_seed": self.random_seed_,
            "optimizer_step": int(self._opt_state["t"]),
            "optimizer_buffers": sorted(k for k, v in self._opt_state.items() if isinstance(v, list)),
            "n_params": len(self._params),
            "trained_on": {"backend": be.name, "device": be.device_name, "dtype": be.dtype_name},
        }
        arrays["meta.json"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
        _atomic_savez(path, arrays)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike, backend: str | Backend | None = None,
             device: Any = None, dtype: str | None = None) -> NNClassifier:
        """Load a model saved by :meth:`save` onto any backend.

        Parameters
        ----------
        path : path
            The ``.npz`` file.
        backend, device, dtype : optional
            Where to put the model; default: NumPy on the CPU, in the saved dtype.
        """
        path = Path(path)
        arrays, meta = _read_model_file(path)
        params = dict(meta["params"])
        params["backend"], params["device"] = None, None
        if isinstance(params.get("n_hidden_units"), list):
            params["n_hidden_units"] = tuple(params["n_hidden_units"])
        if dtype is not None:
            params["dtype"] = dtype
        clf = cls(**{k: v for k, v in params.items() if k in cls._param_names()})
        clf.backend = backend
        clf.device = device
        be = get_backend(backend or "numpy", device, clf.dtype)
        clf._check_params()
        clf.backend_ = be
        clf.tf32_ = be.set_tf32(bool(clf.tf32))
        clf.classes_ = arrays["classes"]
        clf.n_features_in_ = int(meta["n_features_in"])
        clf._mlp = MLP(meta["layer_sizes"], activation=clf.activation, output=clf.output, bias=clf.bias)
        expected = len(clf._mlp.is_weight())
        if meta["n_params"] != expected:
            raise ModelFileError(f"{path}: the file holds {meta['n_params']} parameter arrays, "
                                 f"its network needs {expected}")
        try:
            clf._params = [be.asarray(arrays[f"param_{i}"], dtype=be.dtype) for i in range(expected)]
            clf._opt = clf._make_optimizer()
            state = clf._opt.init(clf._params)
            for key in meta["optimizer_buffers"]:
                state[key] = [be.asarray(arrays[f"opt_{key}_{i}"], dtype=be.dtype)
                              for i in range(expected)]
        except KeyError as exc:
            raise ModelFileError(f"{path}: the array {exc.args[0]!r} is missing; the file is "
                                 "incomplete or not an arraynn model") from None
        for i, (p, fan) in enumerate(zip(clf._params, _param_shapes(clf._mlp))):
            if tuple(p.shape) != fan:
                raise ModelFileError(f"{path}: param_{i} has shape {tuple(p.shape)}, expected {fan}")
        state["t"] = int(meta["optimizer_step"])
        clf._opt_state = state
        clf.n_iter_ = int(meta["n_iter"])
        clf.loss_curve_ = [float(v) for v in meta["loss_curve"]]
        clf.random_seed_ = int(meta["random_seed"])
        return clf


# ----------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------
def _same(a: Any, b: Any) -> bool:
    try:
        return bool(a == b) and type(a) is type(b)
    except Exception:
        return a is b


def _int_like(a: Any) -> bool:
    return "int" in str(getattr(a, "dtype", ""))


def _labels_to_host(y: Any) -> np.ndarray:
    if isinstance(y, np.ndarray):
        return y
    if isinstance(y, (list, tuple)):
        return np.asarray(y)
    from .backends import _array_to_numpy

    return _array_to_numpy(y)


def _jsonable(d: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for k, v in d.items():
        if isinstance(v, np.integer):
            v = int(v)
        elif isinstance(v, np.floating):
            v = float(v)
        elif isinstance(v, tuple):
            v = list(v)
        out[k] = v
    return out


def _param_shapes(mlp: MLP) -> list[tuple[int, ...]]:
    shapes = []
    for fan_in, fan_out in zip(mlp.layer_sizes[:-1], mlp.layer_sizes[1:]):
        shapes.append((fan_in, fan_out))
        if mlp.bias:
            shapes.append((fan_out,))
    return shapes


def _atomic_savez(path: Path, arrays: dict[str, np.ndarray]) -> None:
    directory = path.parent if str(path.parent) else Path(".")
    if not directory.is_dir():
        raise FileNotFoundError(f"cannot save to {path}: the directory {directory} does not exist")
    with atomic_open(path) as f:
        np.savez(f, **arrays)


def _read_model_file(path: Path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
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
    if not isinstance(meta, dict) or meta.get("format") != _FORMAT:
        raise ModelFileError(f"{path} is not an {_FORMAT} file")
    if meta.get("format_version") != _FORMAT_VERSION:
        raise ModelFileError(f"{path} has format version {meta.get('format_version')}; this "
                             f"arraynn reads version {_FORMAT_VERSION}")
    return arrays, meta

