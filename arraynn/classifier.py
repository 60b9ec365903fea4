"""``NNClassifier``: the article's estimator, on any Array API backend.

The article's call runs unchanged::

    from arraynn import NNClassifier
    nn = NNClassifier(n_classes=10, n_features=784, n_hidden_units=50, l2=0.5, l1=0.0,
                      epochs=300, learning_rate=0.001, n_batches=25, random_seed=RANDOM_SEED)
    nn.fit(X_train, y_train)
    nn.score(X_test, y_test), nn.error_

and so do scikit-learn's conventions: ``get_params``/``set_params`` (``clone`` works),
``fit`` returns ``self``, learned attributes end in ``_``.

This module is the estimator's API. Its parameters are declared in
:mod:`arraynn._parameters`; what a fit learns is one :class:`~arraynn._state.TrainingState`;
fitting is :mod:`arraynn._fitting` (the per-epoch monitor :mod:`arraynn._monitor`),
predicting :mod:`arraynn._inference`, the inputs' libraries :mod:`arraynn._inputs`.
"""

from __future__ import annotations

import functools
import os
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from . import _errors, _fitting, _inference, model_io
from ._errors import ConvergenceWarning, InputRangeWarning, NotFittedError, not_fitted_error
from ._inputs import to_input_library
from ._monitor import hold_out
from ._parameters import CHOICES, CLASS_DOC
from ._params import Params
from ._state import FittedAttribute, TrainingState, split_pickle
from ._threads import pinned_blas
from ._validation import (
    check_feature_names,
    check_params,
    check_sample_weight,
    encode_labels,
    encode_with,
    labels_to_host,
)
from .backends import Backend, backend_for, get_backend
from .distributed import check_ranks
from .model_io import ModelFileError
from .nn import TrainingDivergedError, learning_rate_at

__all__ = ["CHOICES", "ConvergenceWarning", "InputRangeWarning", "NNClassifier", "NotFittedError",
           "TrainingDivergedError", "ModelFileError"]


def _not_fitted(attr: str = "") -> Exception:
    return not_fitted_error()("this NNClassifier is not fitted yet; call fit(X, y) before using it "
                              "(or NNClassifier.load(path) for a saved model)")


class NNClassifier(Params):
    __doc__ = CLASS_DOC

    #: What ``fit`` learned (absent before): see :class:`arraynn._state.TrainingState`.
    _state: TrainingState

    def __init__(self, n_classes: int | None = None, n_features: int | None = None,
                 n_hidden_units: int | Sequence[int] = 30, l1: float = 0.0, l2: float = 0.0,
                 epochs: int = 500, learning_rate: float = 0.01, n_batches: int = 1,
                 random_seed: int | None = None, *, activation: str = "sigmoid",
                 output: str = "sigmoid", optimizer: str = "sgd", batch_size: int | None = None,
                 shuffle: bool | None = None, bias: bool = False, init: str = "uniform",
                 momentum: float = 0.9, nesterovs_momentum: bool = True, beta_1: float = 0.9,
                 beta_2: float = 0.999, epsilon: float = 1e-8, schedule: str = "constant",
                 early_stopping: bool = False, validation_fraction: float = 0.1,
                 n_iter_no_change: int = 10, tol: float = 1e-4,
                 backend: str | Backend | None = None,
                 device: Any = None, dtype: str = "float32", tf32: bool = False,
                 warm_start: bool = False, verbose: bool = False,
                 preprocessing: str | None = None, class_names: Sequence[str] | None = None,
                 dropout: float | Sequence[float] = 0.0, input_dropout: float = 0.0,
                 augment_shift: int = 0, augment_flip: bool = False,
                 blas_threads: int | None = None, layers: Sequence[Any] | None = None,
                 input_shape: Sequence[int] | None = None) -> None:
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
        self.nesterovs_momentum = nesterovs_momentum
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.schedule = schedule
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.tol = tol
        self.backend = backend
        self.device = device
        self.dtype = dtype
        self.tf32 = tf32
        self.warm_start = warm_start
        self.verbose = verbose
        self.preprocessing = preprocessing
        self.class_names = class_names
        self.dropout = dropout
        self.input_dropout = input_dropout
        self.augment_shift = augment_shift
        self.augment_flip = augment_flip
        self.blas_threads = blas_threads
        self.layers = layers
        self.input_shape = input_shape

    # ------------------------------------------------------------------------------
    # scikit-learn's estimator tags (the parameter protocol is Params')
    # ------------------------------------------------------------------------------
    def __sklearn_tags__(self) -> Any:  # pragma: no cover - only used by scikit-learn
        from sklearn.utils import ClassifierTags, Tags, TargetTags

        return Tags(estimator_type="classifier", target_tags=TargetTags(required=True),
                    classifier_tags=ClassifierTags())

    def __sklearn_is_fitted__(self) -> bool:
        return self.__dict__.get("_state") is not None

    _estimator_type = "classifier"

    # ------------------------------------------------------------------------------
    # Checks
    # ------------------------------------------------------------------------------
    def _check_params(self) -> None:
        """Every constructor parameter, checked before any work (see
        :func:`arraynn._validation.check_params`)."""
        check_params(self, CHOICES)
        names = self.class_names
        if names is not None and (isinstance(names, str) or not isinstance(names, Sequence)
                                  or not all(isinstance(n, str) for n in names)):
            raise ValueError(f"class_names must be None or a sequence of strings, got {names!r:.80}")

    def _check_is_fitted(self) -> TrainingState:
        state: TrainingState | None = self.__dict__.get("_state")
        if state is None:
            raise _not_fitted()
        return state

    def _compute_backend(self, X: Any) -> Backend:
        if self.backend is None:
            return backend_for(X, dtype=self.dtype)
        return get_backend(self.backend, self.device, self.dtype)

    # ------------------------------------------------------------------------------
    # Training
    # ------------------------------------------------------------------------------
    @pinned_blas
    def fit(self, X: Any, y: Any, sample_weight: Any = None, *,
            callback: Callable[[NNClassifier, dict[str, Any]], Any] | None = None,
            comm: Any = None, batch_callback: Callable[[int, int], Any] | None = None,
            validation_data: tuple[Any, ...] | None = None, preprocessed_with: Any = None) -> NNClassifier:
        """Train on ``X`` (n_samples, n_features) and labels ``y`` (n_samples,).

        Parameters
        ----------
        X : array
            NumPy, or an array of any supported library (training then happens on its
            device unless ``backend`` says otherwise), or a pandas DataFrame (its
            string column names become ``feature_names_in_``). Integer data (e.g.
            uint8 pixels) is converted to the float dtype on the device.
        y : array
            Labels of any values (integers, strings, ...).
        sample_weight : array of shape (n_samples,), optional
            A weight ``>= 0`` per sample: each row's loss and error term is multiplied
            by it (gradients are summed over a minibatch, so a weight of 2 trains as
            the row repeated). Uploaded once and cut into minibatches with the labels.
        callback : callable, optional
            Called after every epoch as ``callback(self, info)`` with ``info`` a dict
            holding ``epoch`` (1-based), ``loss``, ``seconds``, ``learning_rate`` and
            ``validation_score`` (``None`` without ``early_stopping``).
            Returning ``True`` stops training (a pause: the weights stay those of the
            last epoch, and a warm-start ``fit`` continues from there).
        comm : Communicator, optional
            Train data-parallel over the ranks of an MPI job
            (:func:`arraynn.distributed.world`, launched by ``mpiexec``): every rank
            calls ``fit`` with the same ``X``, ``y`` and parameters, takes its slice of
            each minibatch, and the gradients are summed with one allreduce per step;
            the result is the network one process would train (``batch_size`` and
            ``n_batches`` are global). Without ``random_seed``, rank 0's drawn seed is
            used everywhere. ``verbose`` prints on rank 0 only; ``callback`` runs on
            every rank.
        batch_callback : callable, optional
            Called after every minibatch step as ``batch_callback(done, n_batches)``
            (progress within an epoch; it sees no device values, so it costs no copy).
        validation_data : (X_val, y_val) or (X_val, y_val, sample_weight_val), optional
            With ``early_stopping``: the validation set to score instead of holding
            out ``validation_fraction`` of ``X`` (inputs as ``score`` takes them).
        preprocessed_with : Preprocessor, optional
            Deprecated (a ``FutureWarning``; it will be removed): give raw ``X`` with the
            ``preprocessing`` parameter instead. The fitted :class:`arraynn.Preprocessor`
            that made ``X`` from images, through which augmentation maps it back to pixels.

        Returns
        -------
        self
        """
        self._check_params()
        given, (X, w) = X, _fitting.rows_of(X, sample_weight)
        y_idx, classes = encode_labels(y, X.shape[0], self.n_classes)
        comm = check_ranks(comm, X, classes, self)
        resume = self.warm_start and self.__sklearn_is_fitted__()
        if resume:
            if _fitting.finished(self, X, classes, given):
                # stopped early (with its best weights) or all epochs run
                warnings.warn(_fitting.nothing_to_train_message(self), UserWarning, stacklevel=3)
                return self
        else:
            _fitting.initialize(self, given, X, classes, self._compute_backend(X), comm)
        val = None
        if validation_data is not None and not self.early_stopping:
            warnings.warn("validation_data is scored only with early_stopping=True; it is ignored "
                          "here (set early_stopping=True to stop on it)", UserWarning, stacklevel=3)
        whole = (X, y_idx, w)
        if self.early_stopping:
            try:
                X, y_idx, w, val = hold_out(self, X, y_idx, w, validation_data)
            except (TypeError, ValueError):
                if not resume:
                    self._forget_fit()  # refused before any training
                raise
        if not resume:  # the training rows go to the device once, for this and for training
            X = _fitting.fit_preprocessing(self, X)
        paused = _fitting.train(self, X, y_idx, self.epochs, callback, comm, batch_callback, w, val,
                                preprocessed_with)
        if not paused and (comm is None or comm.rank == 0):
            message = _fitting.not_learned_message(self, *whole, preprocessed=preprocessed_with is not None)
            if message is not None:
                warnings.warn(message, _errors.convergence_warning(), stacklevel=3)
        return self

    @pinned_blas
    def partial_fit(self, X: Any, y: Any, classes: Any = None, sample_weight: Any = None, *,
                    comm: Any = None) -> NNClassifier:
        """One epoch over ``(X, y)``, initialising the model on the first call.

        ``classes`` (all labels that will ever be seen) is needed on the first call
        unless ``n_classes`` is set or ``y`` already holds every class.
        ``sample_weight`` and ``comm``: as in :meth:`fit`. ``early_stopping`` needs a
        whole training run and is refused here (as by scikit-learn).
        """
        self._check_params()
        if self.early_stopping:
            raise ValueError("partial_fit does not support early_stopping=True: early stopping "
                             "watches a whole run; use fit, or set early_stopping=False")
        given, (X, w) = X, _fitting.rows_of(X, sample_weight)
        if not self.__sklearn_is_fitted__():
            classes = _fitting.partial_fit_classes(self, y, classes, X.shape[0])
            comm = check_ranks(comm, X, classes, self)
            _fitting.initialize(self, given, X, classes, self._compute_backend(X), comm)
            X = _fitting.fit_preprocessing(self, X)
        elif X.shape[1] != self.n_features_in_:
            raise ValueError(f"X has {X.shape[1]} features, but NNClassifier is expecting "
                             f"{self.n_features_in_} features as input")
        else:
            check_feature_names(self, given)
            comm = check_ranks(comm, X, self.classes_, self)
        y_idx = encode_with(y, self.classes_, len(X))
        _fitting.train(self, X, y_idx, self.n_iter_ + 1, None, comm, None, w, None)
        return self

    def learning_rate_at(self, epoch: int) -> float:
        """The learning rate of epoch ``epoch`` (0-based) under ``schedule`` (for
        ``"adaptive"``: the current rate, whatever the epoch)."""
        divisions = self._stopping_state().get("divisions", 0)
        return learning_rate_at(self.schedule, self.learning_rate, epoch, self.epochs, divisions)

    def _monitor_name(self) -> str:
        return "validation_score" if self.early_stopping else "loss"

    def _stopping_state(self) -> dict[str, Any]:
        """The saved :class:`~arraynn.nn.Plateau` state, when it watches what the current
        parameters say to watch (else a fresh start: ``{}``)."""
        state = self.__dict__.get("_state")
        record = state.stopping if state is not None else {}
        return record if record.get("monitor") == self._monitor_name() else {}

    def _forget_fit(self) -> None:
        """Back to unfitted: drop what was learned."""
        self.__dict__.pop("_state", None)

    def _attach_preprocessor(self, preprocessor: Any, X_raw: Any = None) -> None:
        """Make a model fitted on inputs preprocessed beforehand preprocess its own: the
        ``preprocessor`` (fitted on the raw training inputs ``X_raw``) becomes
        ``preprocessor_``, and the range of ``X_raw`` ``input_range_``."""
        from ._inputs import value_range

        state = self._check_is_fitted()
        state.preprocessor = preprocessor
        state.input_range = None if X_raw is None else value_range(X_raw)

    # ------------------------------------------------------------------------------
    # Learned attributes (read from the training state)
    # ------------------------------------------------------------------------------
    classes_ = FittedAttribute("classes", _not_fitted)
    n_features_in_ = FittedAttribute("n_features_in", _not_fitted)
    feature_names_in_ = FittedAttribute("feature_names_in", _not_fitted, absent=True)
    input_shape_ = FittedAttribute("input_shape", _not_fitted)
    image_shape_ = FittedAttribute("image_shape", _not_fitted)
    loss_curve_ = FittedAttribute("loss_curve", _not_fitted)
    validation_scores_ = FittedAttribute("validation_scores", _not_fitted)
    best_validation_score_ = FittedAttribute("best_validation_score", _not_fitted)
    best_loss_ = FittedAttribute("best_loss", _not_fitted)
    n_iter_ = FittedAttribute("n_iter", _not_fitted)
    backend_ = FittedAttribute("backend", _not_fitted)
    tf32_ = FittedAttribute("tf32", _not_fitted)
    random_seed_ = FittedAttribute("random_seed", _not_fitted)
    preprocessor_ = FittedAttribute("preprocessor", _not_fitted)
    class_names_ = FittedAttribute("class_names", _not_fitted, settable=True)
    input_range_ = FittedAttribute("input_range", _not_fitted)

    @property
    def coefs_(self) -> list[Any]:
        """Weight matrices, ``(n_in, n_out)`` each, on the model's backend.

        Views of the flat parameter buffer where the library has views (NumPy, CuPy,
        torch: they follow further training); copies on JAX, whose compiled step donates
        that buffer, so arrays taken from here stay valid after another ``partial_fit``.
        """
        state = self._check_is_fitted()
        return list(state.net.weights(state.params))

    @property
    def intercepts_(self) -> list[Any]:
        """Bias vectors (empty list when ``bias=False``)."""
        state = self._check_is_fitted()
        return list(state.net.biases(state.params))

    @property
    def error_(self) -> list[float]:
        """The article's name for :attr:`loss_curve_`."""
        return self._check_is_fitted().loss_curve

    # ------------------------------------------------------------------------------
    # Inference
    # ------------------------------------------------------------------------------
    def _check_predict_X(self, X: Any) -> Any:
        return _inference.check_predict_X(self, X)

    def _proba_on_model(self, X: Any, log: bool = False) -> Any:
        return _inference.proba_on_model(self, X, log)

    @pinned_blas
    def predict_proba(self, X: Any) -> Any:
        """Class probabilities, rows summing to 1, in ``X``'s library and device.

        With the sigmoid output the per-class sigmoids are normalised to sum to 1.
        Columns follow ``classes_``.
        """
        X = self._check_predict_X(X)
        with self.backend_.device_context():
            return to_input_library(self.backend_, self._proba_on_model(X), X)

    @pinned_blas
    def predict_log_proba(self, X: Any) -> Any:
        """The logarithm of :meth:`predict_proba`, computed from the logits (a
        log-softmax), so it stays finite where the probabilities underflow to 0."""
        X = self._check_predict_X(X)
        with self.backend_.device_context():
            return to_input_library(self.backend_, self._proba_on_model(X, log=True), X)

    @pinned_blas
    def predict(self, X: Any) -> Any:
        """The most probable class of each row, in ``X``'s library and device.

        Labels that cannot live on a device (strings) come back as a NumPy array.
        """
        X = self._check_predict_X(X)
        be, xp = self.backend_, self.backend_.xp
        with be.device_context():
            idx = xp.argmax(self._proba_on_model(X), axis=1)
            if isinstance(X, np.ndarray) or self.classes_.dtype.kind not in "biuf":
                return self.classes_[be.to_numpy(idx)]
            if np.array_equal(self.classes_, np.arange(len(self.classes_))):
                labels = idx
            else:
                labels = xp.take(be.asarray(self.classes_), idx, axis=0)
            return to_input_library(self.backend_, labels, X)

    @pinned_blas
    def score(self, X: Any, y: Any, sample_weight: Any = None) -> float:
        """Mean accuracy of ``predict(X)`` against ``y``; with ``sample_weight``, the
        weighted mean (the weights of the correct rows over the sum of the weights)."""
        X = self._check_predict_X(X)
        y_host = labels_to_host(y)
        if y_host.shape != (X.shape[0],):
            raise ValueError(f"y must be 1-D with {X.shape[0]} entries, got shape {y_host.shape}")
        w = check_sample_weight(sample_weight, X.shape[0])
        be, xp = self.backend_, self.backend_.xp
        with be.device_context():
            idx = be.to_numpy(xp.argmax(self._proba_on_model(X), axis=1))
        correct = self.classes_[idx] == y_host
        return float(np.mean(correct) if w is None else np.sum(w[correct]) / np.sum(w))

    # ------------------------------------------------------------------------------
    # The training state: pickling (joblib, Dask and Ray ship estimators between
    # processes), model files and checkpoints all go through it
    # ------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """What the fit learned, as names to host NumPy arrays and JSON values: each
        parameter (``param_0`` ...: every weight and bias in layer order), each optimizer
        buffer, the classes, the counters and curves, the early-stopping record, the
        preprocessing (see :mod:`arraynn._state`). :meth:`load_state_dict` takes it back;
        a model file (:meth:`save`) holds exactly these arrays and values."""
        return self._check_is_fitted().state_dict()

    def load_state_dict(self, state: Mapping[str, Any]) -> NNClassifier:
        """Become the model of ``state`` (:meth:`state_dict`'s mapping), on ``backend``,
        ``device`` and ``dtype`` (default: NumPy); the network and optimizer are the
        current parameters'. Raises ``ValueError`` naming an entry that does not fit
        them. Returns ``self``."""
        self._check_params()
        be = get_backend(self.backend or "numpy", self.device, self.dtype)
        new = TrainingState.from_state_dict(state, be, functools.partial(_fitting.build, self))
        if not new.stopping:  # a model saved without the record: a fresh one
            new.reset_stopping(self._monitor_name())
        new.tf32 = be.set_tf32(bool(self.tf32))
        self._state = new
        return self

    def __getstate__(self) -> dict[str, Any]:
        """The parameters and :meth:`state_dict` (host NumPy arrays), with the backend
        (model files are :meth:`save`'s .npz, never a pickle)."""
        out = self.__dict__.copy()
        state = out.pop("_state", None)
        if state is not None:
            out["_fitted"] = (state.backend, state.tf32, state.state_dict())
        return out

    def __setstate__(self, pickled: dict[str, Any]) -> None:
        """Restore a pickled estimator (also one pickled by an earlier arraynn); its arrays
        go back to its backend's device."""
        self.__dict__.update({"blas_threads": None, "input_shape": None, **pickled})  # older: without them
        params, state = split_pickle(self.__dict__, functools.partial(_fitting.build, self))
        self.__dict__.clear()
        self.__dict__.update(params)
        if state is not None:
            self._state = state

    # ------------------------------------------------------------------------------
    # Saving and loading (arraynn.model_io: .npz holding arrays plus JSON, no pickle)
    # ------------------------------------------------------------------------------
    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the model (and its optimizer state) to one ``.npz`` file, atomically.

        The file holds the parameters, the optimizer's buffers, the classes and a
        ``meta.json`` entry (the constructor's parameters, the epoch count, the loss
        curve, the seed). It is written to a temporary file in the same directory and
        renamed into place, so a crash never leaves a half-written model. See
        :mod:`arraynn.model_io`.
        """
        self._check_is_fitted()
        return model_io.save_classifier(self, path)

    @classmethod
    def load(cls, path: str | os.PathLike[str], backend: str | Backend | None = None,
             device: Any = None, dtype: str | None = None) -> NNClassifier:
        """Load a model saved by :meth:`save`, or a run of ``python -m arraynn.train``,
        onto any backend.

        The model comes with its preprocessing (``preprocessor_``) and class names
        (``class_names_``) when the file holds them; ``predict`` then takes raw inputs
        such as uint8 images, ``(n, 28, 28)`` or ``(n, 784)``, and warns when given
        inputs outside the raw training range (``input_range_``). ``fit`` trains afresh
        unless ``warm_start`` is set (a run's model is saved without it); to continue
        training, ``set_params(warm_start=True, epochs=N)`` with ``N`` the new total,
        or ``partial_fit`` for one epoch.

        Parameters
        ----------
        path : path
            The ``.npz`` file, or a run directory (its ``model.npz``).
        backend, device, dtype : optional
            Where to put the model; default: NumPy on the CPU, in the saved dtype.
        """
        loaded: NNClassifier = model_io.load_classifier(cls, path, backend, device, dtype)
        return loaded
