"""``NNClassifier``: the article's estimator, on any Array API backend.

The article's call runs unchanged::

    from arraynn import NNClassifier
    nn = NNClassifier(n_classes=10, n_features=784, n_hidden_units=50, l2=0.5, l1=0.0,
                      epochs=300, learning_rate=0.001, n_batches=25, random_seed=RANDOM_SEED)
    nn.fit(X_train, y_train)
    nn.score(X_test, y_test), nn.error_

and so do scikit-learn's conventions: ``get_params``/``set_params`` (``clone`` works),
``fit`` returns ``self``, learned attributes end in ``_``.

This module is the estimator's API: its parameters and their checks, labels, the
inputs' library and device, and inference. The network and the training loop are in
:mod:`arraynn.nn`, the file format in :mod:`arraynn.model_io`.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from . import model_io
from ._params import Params
from ._validation import (
    check_array,
    check_blas_threads,
    check_feature_names,
    check_input_shape,
    check_params,
    check_sample_weight,
    encode_labels,
    encode_with,
    flatten_images,
    labels_to_host,
    unique_labels,
)
from .backends import Backend, backend_for, get_backend
from .data.loader import DataLoader
from .distributed import check_ranks
from .model_io import ModelFileError
from .nn import (
    INITIALIZERS,
    MLP,
    OPTIMIZERS,
    SCHEDULES,
    EpochRecord,
    Plateau,
    Sequential,
    Trainer,
    TrainingDivergedError,
    dropout_rates,
    learning_rate_at,
    make_optimizer,
    validation_split,
)
from .nn.layers import Dense
from .ops import ACTIVATIONS, OUTPUTS
from .ops.generic import log_softmax, softplus

if TYPE_CHECKING:
    from .data.preprocessing import Preprocessor

__all__ = ["ConvergenceWarning", "InputRangeWarning", "NNClassifier", "NotFittedError",
           "TrainingDivergedError", "ModelFileError"]

_PREDICT_CHUNK = 8192

#: The training rows (at most, evenly spread) whose accuracy tells whether a fit learned.
_LEARNED_ROWS = 2000
#: A fit whose training accuracy is no more than the most frequent class's share plus
#: this margin has learned nothing (:class:`ConvergenceWarning`).
_CHANCE_MARGIN = 0.02

#: The valid values of each choice parameter, read by validation, docs and the CLI.
CHOICES: dict[str, tuple[str, ...]] = {
    "activation": ACTIVATIONS,
    "output": OUTPUTS,
    "optimizer": tuple(OPTIMIZERS),
    "init": INITIALIZERS,
    "schedule": SCHEDULES,
    "dtype": ("float32", "float64"),
}

#: The preprocessing schemes the ``preprocessing`` parameter takes (None: none).
_PREPROCESSING = ("standardize", "per-set", "unit", "none")

#: The entropy added to the seed for the early-stopping split (apart from the
#: loader's per-epoch permutations, which use ``[seed, epoch]``).
_SPLIT_STREAM = (0x5EED, 1)


class NotFittedError(ValueError, AttributeError):
    """The estimator is used before ``fit``."""


class ConvergenceWarning(UserWarning):
    """A fit that learned nothing: its training accuracy is at chance level, or its
    loss did not fall. The message says which settings to try. When scikit-learn is
    imported, the warning is also a ``sklearn.exceptions.ConvergenceWarning``, so its
    filters apply to it; arraynn never imports scikit-learn itself."""


class InputRangeWarning(UserWarning):
    """Inputs clearly outside the range of the raw inputs a model that preprocesses its
    inputs itself was fitted on (e.g. standardized or scaled pixels given to a model
    that standardizes raw 0-255 pixels)."""


@functools.lru_cache(maxsize=4)
def _convergence_warning_for(sk_warning: type | None) -> type[ConvergenceWarning]:
    if sk_warning is None:
        return ConvergenceWarning
    namespace = {"__module__": __name__, "__doc__": ConvergenceWarning.__doc__}
    return type("ConvergenceWarning", (ConvergenceWarning, sk_warning), namespace)


def _convergence_warning() -> type[ConvergenceWarning]:
    """:class:`ConvergenceWarning`, also a subclass of scikit-learn's when scikit-learn is
    imported (one class per scikit-learn class, so warning filters and the once-per-place
    registry work)."""
    sk = sys.modules.get("sklearn.exceptions")
    return _convergence_warning_for(getattr(sk, "ConvergenceWarning", None))


def _pinned_blas(method: Callable[..., Any]) -> Callable[..., Any]:
    """Run ``method`` with the BLAS thread count of the estimator's ``blas_threads``."""
    @functools.wraps(method)
    def pinned(self: NNClassifier, *args: Any, **kwargs: Any) -> Any:
        with self._blas_limits():
            return method(self, *args, **kwargs)

    return pinned


def _not_fitted_error() -> type[NotFittedError]:
    """:class:`NotFittedError`, also a subclass of scikit-learn's when scikit-learn is
    imported (so its tools recognise it); arraynn never imports scikit-learn itself."""
    sk = sys.modules.get("sklearn.exceptions")
    if sk is None:
        return NotFittedError
    return type("NotFittedError", (NotFittedError, sk.NotFittedError), {"__module__": __name__})


class NNClassifier(Params):
    """A multilayer-perceptron classifier trained by backpropagation.

    The first nine parameters are the article's, with its meaning and defaults; the
    rest extend it. The article's defaults (sigmoid units, one full batch, SGD at 0.01)
    learn only on standardized inputs and over many epochs; a fit that learns nothing
    says so with a :class:`ConvergenceWarning` naming the settings to try.

    Examples
    --------
    Standardized inputs, Adam and minibatches of 128 learn in a few epochs:

    >>> import numpy as np
    >>> from arraynn import NNClassifier
    >>> rng = np.random.default_rng(0)
    >>> centers = rng.uniform(0, 255, size=(3, 64))
    >>> y = rng.integers(0, 3, size=1000)
    >>> X = np.clip(centers[y] + rng.normal(0, 60, size=(1000, 64)), 0, 255).astype(np.uint8)
    >>> clf = NNClassifier(preprocessing="standardize", optimizer="adam", batch_size=128,
    ...                    epochs=10, random_seed=0).fit(X[:800], y[:800])   # raw uint8 in
    >>> clf.score(X[800:], y[800:]) > 0.95
    True

    Parameters
    ----------
    n_classes : int, optional
        Number of classes; inferred from ``y`` at ``fit`` when omitted. When given,
        labels must be the integers ``0 .. n_classes-1``.
    n_features : int, optional
        Number of input features; inferred from ``X`` when omitted.
    n_hidden_units : int or sequence of int
        Units of the hidden layer, or one entry per hidden layer (or ``layers``).
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
    nesterovs_momentum : bool
        With ``optimizer="momentum"``: Nesterov's momentum (scikit-learn's default),
        ``w += momentum * v - learning_rate * g`` with the new velocity ``v``;
        ``False``: classical momentum, ``w += v``. Other optimizers ignore it.
    beta_1, beta_2, epsilon : float
        Adam's parameters.
    schedule : {"constant", "cosine", "adaptive"}
        Learning rate of epoch ``e`` (0-based): constant, or cosine decay
        ``learning_rate * (1 + cos(pi * e / epochs)) / 2`` (both depend only on the
        epoch number, so a resumed run follows the same schedule), or
        scikit-learn's ``"adaptive"``: constant until the monitored number (the
        validation score with ``early_stopping``, else the training loss) fails to
        improve by ``tol`` for more than ``n_iter_no_change`` epochs in a row, then
        divided by 5; such a plateau at a rate of 1e-6 or less stops training. Its
        state is saved with the model, so a resumed run divides at the same epochs.
        (scikit-learn's documentation says two epochs: its code, followed here, counts
        ``n_iter_no_change``; set ``n_iter_no_change=2`` for that.)
    early_stopping : bool
        Hold out ``validation_fraction`` of the training data (stratified, drawn from
        the seed), score it after every epoch (``validation_scores_``), stop when the
        score has not improved by ``tol`` for more than ``n_iter_no_change`` epochs,
        and end with the weights of the best epoch (kept on the device when a new
        best appears). ``fit(..., validation_data=(X_val, y_val))`` scores a
        validation set of your own instead. Not with ``partial_fit``.
    validation_fraction : float
        The share of the training data held out by ``early_stopping`` (0 < f < 1).
    n_iter_no_change : int
        Epochs without an improvement of ``tol`` that ``early_stopping`` and the
        ``"adaptive"`` schedule tolerate. Without either, training runs all
        ``epochs`` (unlike MLPClassifier, which also stops on the training loss:
        here the number of epochs is the user's, as in the article).
    tol : float
        The improvement that counts, in accuracy (early stopping) or in the loss.
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
        state until ``n_iter_`` reaches ``epochs`` (a checkpoint resumes this way:
        ``epochs`` is the total, not a number of further epochs). A model that has
        reached ``epochs``, or whose training was stopped by ``early_stopping`` or the
        ``"adaptive"`` schedule, is finished: ``fit`` returns it as it is, with a
        warning saying how to go on (``partial_fit``, a larger ``epochs``, or
        ``warm_start=False`` to train afresh). Without ``warm_start`` (the default,
        also of the models a run of ``python -m arraynn.train`` saves), ``fit``
        starts afresh, as scikit-learn's estimators do.
    verbose : bool
        Print one line per epoch.
    preprocessing : {"standardize", "per-set", "unit", "none"}, optional
        Preprocess the inputs inside the estimator (:class:`arraynn.Preprocessor`):
        ``fit`` learns the scheme on its ``X`` (the first call's, with
        ``partial_fit``) and every method then takes raw inputs, e.g. uint8 pixels.
        The fitted scheme is ``preprocessor_`` and is saved with the model.
        ``None`` (default): the inputs are used as given.
    class_names : sequence of str, optional
        A name for each class, in the order of ``classes_`` (``class_names_``);
        saved with the model and printed by ``python -m arraynn.predict``.
    dropout : float or sequence of float
        Inverted dropout after each hidden layer, during training only: a rate in
        ``[0, 1)`` for every hidden layer, or one per hidden layer. Kept units are
        scaled by ``1 / (1 - rate)``; ``predict`` uses the whole network unchanged.
        The masks are drawn on the device from ``random_seed`` and the step counter
        (:mod:`arraynn.nn.random`): the same on every backend. Default 0 (none).
    input_dropout : float
        Dropout of the input features during training, the same way (a rate in
        ``[0, 1)``; default 0).
    augment_shift : int
        On-device augmentation of image inputs: every training image is moved by a
        random offset of up to this many pixels vertically and horizontally (per
        image and step, blank pixels filling the border; labels unchanged). Images
        are square (``n_features`` a square number) and shifted in pixel space: with
        ``preprocessing`` (or ``fit``'s ``preprocessed_with``) the batch is mapped back
        to pixels, shifted, and preprocessed again. Default 0 (none).
    augment_flip : bool
        Also mirror each training image left to right with probability 1/2 (per image
        and step, on the device; for classes that do not depend on left and right, as
        Fashion-MNIST's). Default False.
    blas_threads : int, optional
        The number of threads of the BLAS library (OpenBLAS, MKL, ...) during ``fit``,
        ``partial_fit``, ``predict``, ``predict_proba``, ``predict_log_proba`` and
        ``score`` (with ``threadpoolctl``'s ``threadpool_limits``; the previous count is
        restored afterwards). Matrix products round differently with other thread
        counts, and joblib's worker processes (``n_jobs`` of scikit-learn's searches)
        run BLAS with fewer threads than the main process: ``blas_threads=1`` gives a
        worker exactly the results of the main process. ``None`` (default): the
        library's own count. Needs ``threadpoolctl`` (installed with scikit-learn).
    layers : list of arraynn.layers objects, optional
        The network's body as a list of layers (``[layers.Dense(64), layers.ReLU(),
        layers.Dropout(0.1), ...]``), instead of ``n_hidden_units``, ``activation``,
        ``dropout`` and ``input_dropout`` (giving one of those too is an error). The
        estimator adds the output layer, ``Dense(n_classes, bias=bias)``, for the classes
        it finds in ``y``, and ``output`` is its loss. A dense stack written as layers
        trains to the same weights as its ``n_hidden_units`` spelling. Convolutions and
        pooling (``layers.Conv2D``, ``layers.MaxPool2D``, ...) take images: ``X`` shaped
        ``(n, channels, height, width)`` or ``(n, height, width)``, or flat rows with
        ``input_shape``.
    input_shape : (channels, height, width) or (height, width), optional
        What one row of flat ``X`` is to a network of ``layers`` with convolutions or
        pooling (rows are read in C order, PyTorch's layout); its product must be the
        number of features. Not needed for images given as such.

    Attributes
    ----------
    classes_ : ndarray
        The class labels (host NumPy array).
    n_features_in_ : int
    coefs_, intercepts_ : list of arrays
        Weight matrices ``(n_in, n_out)`` and bias vectors (empty without biases), as
        arrays of the training backend.
    feature_names_in_ : ndarray of str
        The column names of a pandas DataFrame given to ``fit`` (only when they are
        all strings); ``predict`` and ``score`` then check the names they are given.
    input_shape_ : tuple of int
        One sample as the network takes it: ``(channels, height, width)`` for ``layers``
        with convolutions or pooling, else ``(n_features_in_,)``.
    image_shape_ : (int, int) or None
        ``(height, width)`` when ``fit`` was given images as ``(n, height, width)``: the
        shape ``augment_shift`` and ``augment_flip`` move them in (else rows are read as
        square images).
    loss_curve_ : list of float
        Per epoch: mean cross-entropy per sample plus the penalty per sample (the
        penalty at the epoch's final weights, counted once per minibatch); with
        ``sample_weight``, per unit of weight.
    validation_scores_ : list of float or None
        With ``early_stopping``: the validation accuracy after each epoch.
    best_validation_score_ : float or None
        With ``early_stopping``: the best of ``validation_scores_``, whose weights the
        model has after ``fit``.
    best_loss_ : float or None
        Without ``early_stopping``: the lowest training loss (``None`` with it).
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
    preprocessor_ : Preprocessor or None
        What ``predict``, ``predict_proba`` and ``score`` apply to their input before
        the network (None: nothing). Set by ``fit`` from ``preprocessing``, or loaded
        with the model (a run of ``python -m arraynn.train`` saves its own).
    class_names_ : list of str or None
        The classes' names, in the order of ``classes_``.
    input_range_ : (float, float) or None
        With ``preprocessor_``: the smallest and largest raw input value the model was
        fitted on (saved with the model). ``predict``, ``predict_proba`` and ``score``
        warn (:class:`InputRangeWarning`) when their input is clearly outside it:
        negative where the training inputs had no negative value, or all at most 1 (and
        not all 0) where they went above 10 (standardized or scaled inputs given to a model that
        preprocesses raw ones itself). One minimum and maximum over the input.

    Inputs may be images: ``X`` of shape ``(n, height, width)`` is taken as
    ``(n, height * width)``, and pandas DataFrames (``X``) and Series (``y``,
    ``sample_weight``); pandas is not needed otherwise.
    """

    _mlp: Any  # the network (MLP or Sequential) and its optimizer, set by fit
    _opt: Any

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

    _estimator_type = "classifier"

    # ------------------------------------------------------------------------------
    # Checks
    # ------------------------------------------------------------------------------
    def _check_params(self) -> None:
        """Every constructor parameter, checked before any work (see
        :func:`arraynn._validation.check_params`)."""
        check_params(self, CHOICES)
        if self.preprocessing is not None and self.preprocessing not in _PREPROCESSING:
            raise ValueError(f"preprocessing must be None or one of {list(_PREPROCESSING)}, "
                             f"got {self.preprocessing!r}")
        names = self.class_names
        if names is not None and (isinstance(names, str) or not isinstance(names, Sequence)
                                  or not all(isinstance(n, str) for n in names)):
            raise ValueError(f"class_names must be None or a sequence of strings, got {names!r:.80}")

    def _hidden_sizes(self) -> tuple[int, ...]:
        h = self.n_hidden_units
        if isinstance(h, (int, np.integer)) and not isinstance(h, bool):
            return (int(h),)
        if isinstance(h, Sequence) and not isinstance(h, str):
            return tuple(h)
        raise ValueError(f"n_hidden_units must be an int or a sequence of ints, got {h!r}")

    def _check_is_fitted(self) -> None:
        if not hasattr(self, "_params"):
            raise _not_fitted_error()(
                "this NNClassifier is not fitted yet; call fit(X, y) before using it "
                "(or NNClassifier.load(path) for a saved model)"
            )

    def _compute_backend(self, X: Any) -> Backend:
        if self.backend is None:
            return backend_for(X, dtype=self.dtype)
        return get_backend(self.backend, self.device, self.dtype)

    def _blas_limits(self) -> contextlib.AbstractContextManager[Any]:
        """The BLAS thread count of ``blas_threads`` for the duration of a ``with``
        block (nothing with ``None``)."""
        threads = getattr(self, "blas_threads", None)
        check_blas_threads(threads)
        if threads is None:
            return contextlib.nullcontext()
        try:
            from threadpoolctl import threadpool_limits
        except ImportError:
            raise ImportError(f"blas_threads={threads} needs threadpoolctl, which sets the BLAS "
                              "library's thread count: pip install threadpoolctl (scikit-learn "
                              "installs it), or leave blas_threads=None") from None
        limits: contextlib.AbstractContextManager[Any] = threadpool_limits(limits=int(threads),
                                                                            user_api="blas")
        return limits

    # ------------------------------------------------------------------------------
    # Training
    # ------------------------------------------------------------------------------
    @_pinned_blas
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
            The fitted :class:`arraynn.Preprocessor` that made ``X`` from images, when
            ``X`` comes preprocessed: ``augment_shift`` then shifts the images in pixel
            space through it (see :mod:`arraynn.data.augment`). Not needed with the
            ``preprocessing`` parameter.

        Returns
        -------
        self
        """
        self._check_params()
        names_from = X
        images, sample = _image_shape_of_input(X), _sample_shape_of_input(X)
        X = check_array(flatten_images(X))
        y_idx, classes = encode_labels(y, X.shape[0], self.n_classes)
        w = check_sample_weight(sample_weight, X.shape[0])
        comm = check_ranks(comm, X, classes, self)
        resume = self.warm_start and hasattr(self, "_params")
        if resume:
            if X.shape[1] != self.n_features_in_:
                raise ValueError(
                    f"X has {X.shape[1]} features but the model was trained with "
                    f"{self.n_features_in_}; warm_start needs the same features"
                )
            if not np.array_equal(classes, self.classes_):
                raise ValueError("warm_start needs the same classes as the first fit")
            check_feature_names(self, names_from, reset=False)
            if self._stopping_state().get("stopped") or self.n_iter_ >= int(self.epochs):
                self._warn_nothing_to_train()
                return self  # finished: stopped early (with its best weights) or all epochs run
        else:
            self._check_augmentation(X.shape[1], images)
            check_feature_names(self, names_from, reset=True)
            self._initialize(X.shape[1], classes, self._compute_backend(X), comm, images, sample)
        val = None
        if validation_data is not None and not self.early_stopping:
            warnings.warn("validation_data is scored only with early_stopping=True; it is ignored "
                          "here (set early_stopping=True to stop on it)", UserWarning, stacklevel=2)
        whole = (X, y_idx, w)
        if self.early_stopping:
            try:
                X, y_idx, w, val = self._hold_out(X, y_idx, w, validation_data)
            except (TypeError, ValueError):
                if not resume:
                    self._forget_fit()  # refused before any training
                raise
        if not resume:  # the training rows go to the device once, for this and for training
            X = self._fit_preprocessing(X)
        paused = self._train(X, y_idx, self.epochs, callback, comm, batch_callback, w, val,
                             preprocessed_with)
        if not paused and (comm is None or comm.rank == 0):
            self._warn_if_not_learned(*whole, preprocessed=preprocessed_with is not None)
        return self

    def _warn_nothing_to_train(self) -> None:
        """A warm-start ``fit`` of a finished model trains nothing: say so, and how to go on."""
        n = int(self.n_iter_)
        if self._stopping_state().get("stopped"):
            why = (f"its training was stopped after epoch {n} by "
                   + ("early_stopping" if self.early_stopping else "the adaptive schedule (its learning "
                      "rate fell to 1e-6 or less)")
                   + ", so it is finished")
        else:
            why = (f"it has trained {n} epochs and epochs={self.epochs} (the total a warm start "
                   "continues up to)")
        warnings.warn(
            f"fit did not train: warm_start=True and {why}. To train on, call partial_fit(X, y) for one "
            f"more epoch, or set_params(epochs=N) with N > {n} and fit again; to train afresh on these "
            "data, set_params(warm_start=False) first", UserWarning, stacklevel=4)

    def _warn_if_not_learned(self, X: Any, y_idx: np.ndarray, w: np.ndarray | None,
                             preprocessed: bool = False) -> None:
        """A :class:`ConvergenceWarning` when the fit learned nothing: the training accuracy
        (on at most :data:`_LEARNED_ROWS` rows, evenly spread) no better than always
        predicting the most frequent class (plus :data:`_CHANCE_MARGIN`), or, over more
        than one epoch, a last loss not below the first."""
        if not hasattr(self, "_params"):
            return
        n = X.shape[0]
        rows = np.unique(np.linspace(0, n - 1, min(n, _LEARNED_ROWS)).astype(np.int64))
        if len(rows) < n:
            X, y_idx, w = _take_rows(X, rows), y_idx[rows], None if w is None else w[rows]
        be = self.backend_
        with be.device_context():
            # from the logits' log-probabilities: finite where the probabilities underflow
            pred = be.to_numpy(be.xp.argmax(self._proba_on_model(X, log=True), axis=1))
        weight = np.ones(len(y_idx)) if w is None else w
        total = float(np.sum(weight))
        problems = []
        if total > 0:
            accuracy = float(np.sum(weight[pred == y_idx])) / total
            majority = float(np.max(np.bincount(y_idx, weights=weight, minlength=len(self.classes_)))) / total
            if accuracy <= majority + _CHANCE_MARGIN:
                problems.append(f"its training accuracy {accuracy:.3f} is no better than always predicting "
                                f"the most frequent class ({majority:.3f})")
        curve = self.loss_curve_
        if len(curve) > 1 and not curve[-1] < curve[0]:
            problems.append(f"its loss did not fall ({curve[0]:.4g} after epoch 1, {curve[-1]:.4g} after "
                            f"epoch {len(curve)})")
        if not problems:
            return
        preprocessed = preprocessed or self.preprocessing is not None
        prep = "" if preprocessed else 'standardized inputs (preprocessing="standardize"), '
        opt = "" if self.optimizer == "adam" else 'optimizer="adam", '
        batches = "" if self.batch_size is not None else "minibatches (batch_size=128), "
        warnings.warn(
            f"NNClassifier learned nothing: {' and '.join(problems)}. Try {prep}{opt}{batches}more epochs, "
            "or the settings of python -m arraynn.train's default preset: NNClassifier("
            "preprocessing=\"standardize\", n_hidden_units=(256, 128), activation=\"relu\", "
            "output=\"softmax\", init=\"he\", bias=True, optimizer=\"adam\", learning_rate=1e-3, "
            "schedule=\"cosine\", batch_size=128, l2=0.05, epochs=15)",
            _convergence_warning(), stacklevel=4)

    @_pinned_blas
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
        names_from = X
        images, sample = _image_shape_of_input(X), _sample_shape_of_input(X)
        X = check_array(flatten_images(X))
        w = check_sample_weight(sample_weight, X.shape[0])
        if not hasattr(self, "_params"):
            self._check_augmentation(X.shape[1], images)
            if classes is None and self.n_classes is None:
                _, classes = encode_labels(y, X.shape[0], self.n_classes)
            elif classes is not None:
                classes = unique_labels(labels_to_host(classes), "classes")
                if classes.size < 2:
                    raise ValueError("classes must hold at least two labels")
            else:
                assert self.n_classes is not None
                classes = np.arange(self.n_classes)
            comm = check_ranks(comm, X, classes, self)
            check_feature_names(self, names_from, reset=True)
            self._initialize(X.shape[1], classes, self._compute_backend(X), comm, images, sample)
            X = self._fit_preprocessing(X)
        elif X.shape[1] != self.n_features_in_:
            raise ValueError(f"X has {X.shape[1]} features, but NNClassifier is expecting "
                             f"{self.n_features_in_} features as input")
        else:
            check_feature_names(self, names_from, reset=False)
            comm = check_ranks(comm, X, self.classes_, self)
        y_idx = encode_with(y, self.classes_, len(X))
        self._train(X, y_idx, self.n_iter_ + 1, None, comm, None, w, None)
        return self

    def learning_rate_at(self, epoch: int) -> float:
        """The learning rate of epoch ``epoch`` (0-based) under ``schedule`` (for
        ``"adaptive"``: the current rate, whatever the epoch)."""
        divisions = self._stopping_state().get("divisions", 0)
        return learning_rate_at(self.schedule, self.learning_rate, epoch, self.epochs, divisions)

    # ---- early stopping and the adaptive rate -------------------------------------
    def _monitor_name(self) -> str:
        return "validation_score" if self.early_stopping else "loss"

    def _stopping_state(self) -> dict[str, Any]:
        """The saved :class:`~arraynn.nn.Plateau` state, when it watches what the
        current parameters say to watch (else a fresh start: ``{}``)."""
        state = getattr(self, "_stopping", None) or {}
        return state if state.get("monitor") == self._monitor_name() else {}

    def _plateau(self) -> Plateau:
        es = bool(self.early_stopping)
        plateau = Plateau(higher_is_better=es, tol=float(self.tol),
                          n_iter_no_change=int(self.n_iter_no_change),
                          adaptive=self.schedule == "adaptive", stop=es)
        return plateau.set_state(self._stopping_state())

    def _reset_stopping(self) -> None:
        """The learned attributes of early stopping, as before the first epoch
        (scikit-learn's: the validation's with early stopping, else the loss's)."""
        es = bool(self.early_stopping)
        self._stopping = {"monitor": self._monitor_name()}
        self._best_params = self._best_stats = None
        self.validation_scores_: list[float] | None = [] if es else None
        self.best_validation_score_ = -np.inf if es else None
        self.best_loss_ = None if es else np.inf

    def _hold_out(self, X: Any, y_idx: np.ndarray, w: np.ndarray | None,
                  validation_data: tuple[Any, ...] | None) -> tuple[Any, np.ndarray, Any, tuple[Any, ...]]:
        """The training part and the validation set ``(X, y_idx, w)`` of early
        stopping: ``validation_data`` when given, else ``validation_fraction`` of the
        data, stratified, drawn from the seed (the same rows on every backend and
        after a resume)."""
        if validation_data is not None:
            if not isinstance(validation_data, (tuple, list)) or len(validation_data) not in (2, 3):
                raise ValueError("validation_data must be (X_val, y_val) or (X_val, y_val, "
                                 "sample_weight_val)")
            Xv = check_array(flatten_images(validation_data[0]), "the validation X")
            if Xv.shape[1] != self.n_features_in_:
                raise ValueError(f"the validation X has {Xv.shape[1]} features, the training X "
                                 f"{self.n_features_in_}; they must match")
            yv = encode_with(validation_data[1], self.classes_, Xv.shape[0])
            wv = (check_sample_weight(validation_data[2], Xv.shape[0])
                  if len(validation_data) == 3 else None)
            return X, y_idx, w, (Xv, yv, wv)
        rng = np.random.default_rng([self.random_seed_, *_SPLIT_STREAM])
        train, val = validation_split(y_idx, float(self.validation_fraction), rng)
        w_train, w_val = (None, None) if w is None else (w[train], w[val])
        if w_train is not None and w_val is not None and not (np.sum(w_train) > 0 and np.sum(w_val) > 0):
            part = "training" if not np.sum(w_train) > 0 else "validation"
            raise ValueError(f"the sample weights of the {part} part of early stopping's split sum "
                             "to 0; give more rows a weight above 0, change validation_fraction "
                             "or pass validation_data=")
        return (_take_rows(X, train), y_idx[train], w_train,
                (_take_rows(X, val), y_idx[val], w_val))

    def _validation_on_model(self, val: tuple[Any, ...]) -> tuple[Any, ...]:
        """The validation set on the model's device, preprocessed once, with its total
        weight."""
        Xv, yv, wv = val
        be = self.backend_
        Xd = self._to_float_on_model(Xv)
        prep = getattr(self, "preprocessor_", None)
        if prep is not None:
            Xd = prep.apply_new(Xd)
        yd = be.asarray(yv, dtype=be.index_dtype)
        wd = None if wv is None else be.asarray(wv, dtype=be.dtype)
        total = float(len(yv)) if wv is None else float(np.sum(wv))
        return Xd, yd, wd, total

    def _validation_score(self, val: tuple[Any, ...]) -> float:
        """The (weighted) accuracy on the device's validation set: one copy to the host."""
        Xd, yd, wd, total = val
        be, xp = self.backend_, self.backend_.xp
        hits = None
        n = Xd.shape[0]
        for s in range(0, n, _PREDICT_CHUNK):
            e = min(s + _PREDICT_CHUNK, n)
            pred = xp.argmax(self._proba_of_prepared(Xd[s:e, ...]), axis=1)
            hit = xp.astype(pred == yd[s:e], be.dtype)
            if wd is not None:
                hit = hit * wd[s:e]
            part = xp.sum(hit)
            hits = part if hits is None else hits + part
        return float(be.to_float(hits) / total)

    # ---- the loop ------------------------------------------------------------------
    def _train(self, X: Any, y_idx: np.ndarray, end_epoch: int,
               callback: Callable[[NNClassifier, dict[str, Any]], Any] | None, comm: Any = None,
               batch_callback: Callable[[int, int], Any] | None = None,
               sample_weight: np.ndarray | None = None, val: tuple[Any, ...] | None = None,
               preprocessed_with: Any = None) -> bool:
        """Load ``(X, y_idx)`` (and ``sample_weight``) onto the device once and train
        until ``end_epoch`` (data-parallel over ``comm``'s ranks when it has more than
        one); with ``val``, the held-out ``(X, y_idx, w)`` of early stopping. Returns
        whether ``callback`` paused training (returned ``True``)."""
        be = self.backend_
        self.tf32_ = be.set_tf32(bool(self.tf32))
        # the rates may have changed since the network was built (set_params, then a
        # warm start): a new MLP, never one changed in place (compiled steps keep theirs)
        mlp = self._build_mlp(self._mlp.n_outputs)
        if mlp.spec != self._mlp.spec:
            self._mlp = mlp
        with be.device_context():
            augment = self._augmenter(preprocessed_with)
        trainer = Trainer(self._mlp, self._opt, be, l1=float(self.l1), l2=float(self.l2),
                          learning_rate_at=self.learning_rate_at, comm=comm, on_batch=batch_callback,
                          seed=self.random_seed_, augment=augment)
        verbose = self.verbose and (comm is None or comm.rank == 0)
        n = X.shape[0]
        if self.batch_size is not None:
            batches = f"batch_size={self.batch_size}"
        else:
            batches = (f"n_batches={self.n_batches} (about {-(-n // self.n_batches)} samples "
                       "per batch)")
        if not self._stopping_state():  # an older model file, or early_stopping was switched
            self._reset_stopping()
        plateau = self._plateau()
        monitor = self._monitor_name()
        restored = paused = False

        def on_epoch(record: EpochRecord) -> bool:
            nonlocal restored, paused
            self._params, self._opt_state = record.params, record.state
            self.n_iter_ = record.epoch
            self.loss_curve_.append(record.loss)
            score = None
            if val is not None:
                score = self._validation_score(val)
                assert self.validation_scores_ is not None  # early stopping's list
                self.validation_scores_.append(score)
            improved, event = plateau.update(score if score is not None else record.loss,
                                             record.learning_rate)
            if val is not None:
                self.best_validation_score_ = plateau.best
                if improved:  # a device copy of the flat buffer, only at a new best
                    self._best_params = be.xp.asarray(record.params, copy=True)
                    stats = record.state.get("stats")
                    self._best_stats = None if stats is None else be.xp.asarray(stats, copy=True)
            else:
                self.best_loss_ = plateau.best
            self._stopping = {"monitor": monitor, **plateau.state()}
            finished = event == "stop" or record.epoch >= end_epoch
            if finished and val is not None and self._best_params is not None:
                self._params = be.xp.asarray(self._best_params, copy=True)
                if getattr(self, "_best_stats", None) is not None:  # BatchNorm's, of the same epoch
                    self._opt_state["stats"] = be.xp.asarray(self._best_stats, copy=True)
                restored = True
            if verbose:
                extra = "" if score is None else f"  validation score {score:.6f}"
                print(f"epoch {record.epoch}/{end_epoch}  loss {record.loss:.6f}{extra}  "
                      f"{record.seconds:.2f}s")
                if event is not None:
                    what = ("Validation score" if val is not None else "Training loss")
                    then = ("stopping" if event == "stop" else
                            f"learning rate now {self.learning_rate_at(record.epoch):g}")
                    print(f"{what} did not improve more than tol={float(self.tol):g} for "
                          f"{int(self.n_iter_no_change)} consecutive epochs: {then}")
            info = {"epoch": record.epoch, "loss": record.loss, "seconds": record.seconds,
                    "learning_rate": record.learning_rate, "validation_score": score}
            user_stop = bool(callback is not None and callback(self, info))
            paused = user_stop and event != "stop" and record.epoch < end_epoch
            return event == "stop" or user_stop

        with be.device_context(), trainer.memory_errors(n, batches):
            prep = getattr(self, "preprocessor_", None)
            if prep is not None:
                X = prep.apply(self._to_float_on_model(X))
            if val is not None:
                val = self._validation_on_model(val)
            loader = self._make_loader(X, y_idx, comm, sample_weight)
            try:
                trainer.run(self._params, self._opt_state, loader, self.n_iter_, end_epoch, on_epoch)
            except TrainingDivergedError as exc:
                # The trainer is back at the start of the diverged epoch.
                if trainer.params is None or self.n_iter_ == 0:
                    self._forget_fit()
                    kept = "the estimator is left unfitted"
                else:
                    kept = f"the estimator keeps its weights after epoch {self.n_iter_}"
                raise TrainingDivergedError(f"{exc}; {kept}") from None
            finally:
                loader.close()
                if hasattr(self, "_params"):
                    # current even after an error or Ctrl-C inside an epoch (the best
                    # epoch's weights when early stopping has just restored them)
                    if not restored:
                        self._params = trainer.params
                    if trainer.state is not None:  # None only once _forget_fit has run
                        self._opt_state = trainer.state
                        if restored and getattr(self, "_best_stats", None) is not None:
                            self._opt_state["stats"] = self._best_stats
        return paused

    def _augmenter(self, preprocessed_with: Any = None) -> Any:
        """The training batches' :class:`RandomShift` (None without ``augment_shift`` or
        ``augment_flip``)."""
        shift = int(self.augment_shift)
        if not shift and not self.augment_flip:
            return None
        from .data.augment import RandomShift, image_shape_of, pixel_map

        prep = preprocessed_with if preprocessed_with is not None else getattr(self, "preprocessor_", None)
        pixels = pixel_map(prep)
        if pixels is not None:
            mean, scale = (v if isinstance(v, float) else self._to_float_on_model(v) for v in pixels)
            pixels = (mean, scale)
        return RandomShift(shift, image_shape_of(self.n_features_in_, getattr(self, "image_shape_", None)),
                           self.random_seed_, pixels, flip=bool(self.augment_flip))

    def _check_augmentation(self, n_features: int, image_shape: tuple[int, int] | None) -> None:
        """Refuse, before any work, shifts or flips of rows that are not images."""
        if int(self.augment_shift) or self.augment_flip:
            from .data.augment import image_shape_of

            image_shape_of(n_features, image_shape)

    def _forget_fit(self) -> None:
        """Back to unfitted: drop every learned attribute."""
        for name in ("_params", "_opt_state", "_opt", "_mlp", "classes_", "n_features_in_",
                     "loss_curve_", "n_iter_", "random_seed_", "backend_", "tf32_", "preprocessor_",
                     "class_names_", "feature_names_in_", "_stopping", "_best_params", "_best_stats",
                     "validation_scores_", "best_validation_score_", "best_loss_", "image_shape_",
                     "input_shape_",
                     "input_range_"):
            self.__dict__.pop(name, None)

    def _make_loader(self, X: Any, y_idx: np.ndarray, comm: Any = None,
                     sample_weight: np.ndarray | None = None) -> DataLoader:
        shuffle = self.shuffle if self.shuffle is not None else self.batch_size is not None
        if self.batch_size is not None:
            sizes = dict(batch_size=min(int(self.batch_size), X.shape[0]))
        else:
            sizes = dict(n_batches=min(int(self.n_batches), X.shape[0]))
        shard = (comm.rank, comm.size) if comm is not None and comm.size > 1 else None
        return DataLoader(X, y_idx, backend=self.backend_, shuffle=shuffle, seed=self.random_seed_,
                          shard=shard, sample_weight=sample_weight, **sizes)

    def _initialize(self, n_features: int, classes: np.ndarray, backend: Backend,
                    comm: Any = None, image_shape: tuple[int, int] | None = None,
                    sample_shape: tuple[int, ...] | None = None) -> None:
        if self.n_features is not None and n_features != self.n_features:
            raise ValueError(f"X has {n_features} features but n_features={self.n_features}")
        input_shape = self._network_input_shape(n_features, sample_shape)
        seed = self.random_seed
        if seed is None:
            seed = int(cast(int, np.random.SeedSequence().entropy) % (2**63))
            if comm is not None:  # the same initial weights on every rank
                seed = comm.bcast(seed, root=0)
        self.random_seed_ = int(seed)
        self.backend_ = backend
        self.classes_ = classes
        self.n_features_in_ = int(n_features)
        #: ``(height, width)`` of the images ``fit`` was given as ``(n, height, width)``.
        self.image_shape_ = image_shape
        #: The shape of one sample as the network takes it: ``(channels, height, width)``
        #: for a network with convolutions or pooling, else ``(n_features_in_,)``.
        self.input_shape_ = input_shape
        self._mlp = self._build_mlp(len(classes))
        with backend.device_context():
            self._params = self._mlp.init_params(backend, np.random.default_rng(self.random_seed_),
                                                 self.init)
            self._opt = self._make_optimizer()
            self._opt_state = self._opt.init(self._params)
            if self._mlp.has_state:  # BatchNorm's running statistics
                self._opt_state["stats"] = self._mlp.init_state(backend)
        self.loss_curve_: list[float] = []
        self.n_iter_ = 0
        self._reset_stopping()
        self.preprocessor_: Preprocessor | None = None
        self.input_range_: tuple[float, float] | None = None
        self.class_names_ = None
        if self.class_names is not None:
            if len(self.class_names) != len(classes):
                raise ValueError(f"class_names holds {len(self.class_names)} names for "
                                 f"{len(classes)} classes; give one name per class")
            self.class_names_ = [str(n) for n in self.class_names]

    def _to_float_on_model(self, X: Any) -> Any:
        """``X`` on the model's device, in its float dtype."""
        be = self.backend_
        X = be.asarray(X)
        return X if X.dtype == be.dtype else be.xp.astype(X, be.dtype)

    def _fit_preprocessing(self, X: Any) -> Any:
        """Fit ``preprocessing`` on the (raw) training inputs ``X``: ``preprocessor_``.
        Returns ``X`` on the model's device in its float dtype, which training then takes
        as it is (one copy of the training data to the device, not two); ``X`` itself
        without preprocessing."""
        if self.preprocessing is None:
            return X
        from .data.preprocessing import Preprocessor

        with self.backend_.device_context():
            Xd = self._to_float_on_model(X)
            self.preprocessor_ = Preprocessor(self.preprocessing).fit(Xd)
            self.input_range_ = _value_range(Xd)
        return Xd

    def _attach_preprocessor(self, preprocessor: Any, X_preprocessed: Any = None) -> None:
        """Make the fitted model take raw inputs: the fitted ``preprocessor`` (which made
        its training inputs ``X_preprocessed``) becomes ``preprocessor_``, and the range
        of the raw training inputs, recovered through the preprocessor's map back to raw
        values, ``input_range_`` (None without ``X_preprocessed`` or such a map)."""
        self._check_is_fitted()
        self.preprocessor_ = preprocessor
        self.input_range_ = None
        if X_preprocessed is not None:
            self.input_range_ = _raw_range(X_preprocessed, preprocessor)

    def _network_input_shape(self, n_features: int, sample_shape: tuple[int, ...] | None) -> tuple[int, ...]:
        """What one sample is to the network (see ``input_shape_``): ``input_shape``, or
        the images' ``(channels, height, width)`` where ``layers`` slide windows over
        images, else flat rows."""
        from .nn.layers import windowed

        given = self.input_shape
        if given is not None:
            shape = check_input_shape(given, n_features)
            if sample_shape is not None and sample_shape != shape and not (
                    len(shape) == 2 and sample_shape == (1, *shape)):
                raise ValueError(f"X holds images of shape {sample_shape} but input_shape={tuple(given)}; "
                                 "leave input_shape=None for images, or pass flat rows")
            return shape if len(shape) != 2 else (1, *shape)
        if self.layers is not None and windowed(self.layers):
            if sample_shape is None:
                raise ValueError(f"layers has convolutions or pooling, which take images, but X is flat rows "
                                 f"of {n_features} features; give images shaped (n, channels, height, "
                                 "width) or (n, height, width), or input_shape=(channels, height, width)")
            return sample_shape
        return (int(n_features),)

    def _build_mlp(self, n_outputs: int) -> Any:
        if self.layers is not None:  # the given body, then the output layer for the classes
            shape = getattr(self, "input_shape_", None) or (self.n_features_in_,)
            return Sequential([*self.layers, Dense(n_outputs, bias=bool(self.bias))], shape, self.output)
        hidden = self._hidden_sizes()
        return MLP((self.n_features_in_, *hidden, n_outputs), activation=self.activation,
                   output=self.output, bias=self.bias, dropout=dropout_rates(self.dropout, len(hidden)),
                   input_dropout=dropout_rates(self.input_dropout, 1)[0])

    def _make_optimizer(self) -> Any:
        return make_optimizer(self.optimizer, momentum=float(self.momentum),
                              nesterov=bool(self.nesterovs_momentum),
                              beta_1=float(self.beta_1), beta_2=float(self.beta_2),
                              epsilon=float(self.epsilon))

    # ------------------------------------------------------------------------------
    # Learned attributes
    # ------------------------------------------------------------------------------
    @property
    def coefs_(self) -> list[Any]:
        """Weight matrices, ``(n_in, n_out)`` each, on the model's backend.

        Views of the flat parameter buffer where the library has views (NumPy, CuPy,
        torch: they follow further training); copies on JAX, whose compiled step donates
        that buffer, so arrays taken from here stay valid after another ``partial_fit``.
        """
        self._check_is_fitted()
        return list(self._mlp.weights(self._params))

    @property
    def intercepts_(self) -> list[Any]:
        """Bias vectors (empty list when ``bias=False``)."""
        self._check_is_fitted()
        return list(self._mlp.biases(self._params))

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
        check_feature_names(self, X, reset=False)
        sample, network = _sample_shape_of_input(X), getattr(self, "input_shape_", None)
        if sample is not None and network is not None and len(network) == 3 and sample != network:
            raise ValueError(f"X holds images of shape {sample} but the network takes {network}")
        X = check_array(flatten_images(X))
        if X.shape[1] != self.n_features_in_:
            raise ValueError(
                f"X has {X.shape[1]} features, but NNClassifier is expecting {self.n_features_in_} "
                f"features as input (it was fitted with {self.n_features_in_} features)"
            )
        self._check_input_range(X)
        return X

    def _check_input_range(self, X: Any) -> None:
        """An :class:`InputRangeWarning` when a model that preprocesses its raw inputs is
        given inputs clearly outside the raw training range (see ``input_range_``)."""
        fitted = getattr(self, "input_range_", None)
        prep = getattr(self, "preprocessor_", None)
        if fitted is None or prep is None or prep.name == "none":
            return
        lo, hi = fitted
        tol = 1e-3 * max(abs(lo), abs(hi), 1e-30)
        x_lo, x_hi = _value_range(X)
        if lo >= -tol and x_lo < -tol:
            problem = (f"X holds negative values (down to {x_lo:.4g}), but the inputs the model was "
                       "fitted on had none")
        elif hi > 10 and 0 < x_hi <= 1:
            problem = (f"every value of X is at most {x_hi:.4g}, but the inputs the model was fitted on "
                       f"went up to {hi:g}")
        else:
            return
        does = "scales" if prep.name == "unit" else "standardizes"
        warnings.warn(
            f"{problem} (they ranged from {lo:g} to {hi:g}). The model {does} its inputs itself "
            f"(preprocessor_ {prep.name!r}): pass raw inputs in the range it was fitted on, e.g. raw "
            "pixels 0-255, not standardized or scaled ones", InputRangeWarning, stacklevel=5)

    def _proba_of_prepared(self, X: Any) -> Any:
        """Class probabilities of preprocessed inputs on the model's device."""
        p = self._mlp.predict_proba(self._params, X, self._opt_state.get("stats"))
        if self.output == "sigmoid":
            p = p / self.backend_.xp.sum(p, axis=1, keepdims=True)
        return p

    def _log_proba_of_prepared(self, X: Any) -> Any:
        """``log`` of :meth:`_proba_of_prepared`, from the logits: ``log_softmax(z)``
        for the softmax output; for the sigmoids, whose probabilities are
        ``sigmoid(z_k) / sum_j sigmoid(z_j)``, ``log_softmax(log_sigmoid(z))`` with
        ``log_sigmoid(z) = -softplus(-z)``. Finite where the probabilities underflow."""
        xp = self.backend_.xp
        z = self._mlp.forward(self._params, X, self._opt_state.get("stats"))
        if self.output == "sigmoid":
            z = -softplus(-z, xp)
        return log_softmax(z, xp)

    def _proba_on_model(self, X: Any, log: bool = False) -> Any:
        xp = self.backend_.xp
        prep = getattr(self, "preprocessor_", None)
        whole = prep is not None and prep.name == "per-set" and prep.standardizer_ is None
        if whole and prep is not None:  # statistics of the whole input (a 0.1.0 run's description)
            X = prep.apply_new(self._to_float_on_model(X))
        out = []
        n = X.shape[0]
        for s in range(0, n, _PREDICT_CHUNK):
            Xc = self._to_float_on_model(X[s:min(s + _PREDICT_CHUNK, n), ...])
            if prep is not None and not whole:
                Xc = prep.apply_new(Xc)
            out.append(self._log_proba_of_prepared(Xc) if log else self._proba_of_prepared(Xc))
        return out[0] if len(out) == 1 else xp.concat(out, axis=0)

    @_pinned_blas
    def predict_proba(self, X: Any) -> Any:
        """Class probabilities, rows summing to 1, in ``X``'s library and device.

        With the sigmoid output the per-class sigmoids are normalised to sum to 1.
        Columns follow ``classes_``.
        """
        X = self._check_predict_X(X)
        with self.backend_.device_context():
            return self._to_input_library(self._proba_on_model(X), X)

    @_pinned_blas
    def predict_log_proba(self, X: Any) -> Any:
        """The logarithm of :meth:`predict_proba`, computed from the logits (a
        log-softmax), so it stays finite where the probabilities underflow to 0."""
        X = self._check_predict_X(X)
        with self.backend_.device_context():
            return self._to_input_library(self._proba_on_model(X, log=True), X)

    @_pinned_blas
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
            return self._to_input_library(labels, X)

    @_pinned_blas
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

    def _to_input_library(self, result: Any, X: Any) -> Any:
        if isinstance(X, np.ndarray):
            return self.backend_.to_numpy(result)
        target = backend_for(X)
        if target.xp is self.backend_.xp and target.device == self.backend_.device:
            return result
        host = self.backend_.to_numpy(result)
        return target.asarray(host, dtype=None if _int_like(result) else target.dtype)

    # ------------------------------------------------------------------------------
    # Pickling: the estimator object (joblib, Dask and Ray ship it between processes)
    # ------------------------------------------------------------------------------
    def __getstate__(self) -> dict[str, Any]:
        """The estimator's state with its learned arrays as host NumPy arrays (model
        files are :meth:`save`'s .npz, never a pickle)."""
        state = self.__dict__.copy()
        if "_params" in state:
            be = self.backend_
            state["_params"] = be.to_numpy(self._params)
            state["_opt_state"] = {k: be.to_numpy(v) if hasattr(v, "shape") else v
                                   for k, v in self._opt_state.items() if not k.startswith("_")}
            for key in ("_best_params", "_best_stats"):
                if state.get(key) is not None:
                    state[key] = be.to_numpy(state[key])
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Restore a pickled estimator; its arrays go back to its backend's device."""
        state = {"blas_threads": None, "input_shape": None, **state}  # pickled before they existed
        self.__dict__.update(state)
        if "_params" in state:
            be = self.backend_
            self._params = be.asarray(state["_params"], dtype=be.dtype)
            self._opt_state = {k: be.asarray(v, dtype=be.dtype) if hasattr(v, "shape") else v
                               for k, v in state["_opt_state"].items()}
            for key in ("_best_params", "_best_stats"):
                if state.get(key) is not None:
                    setattr(self, key, be.asarray(state[key], dtype=be.dtype))

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


# ----------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------
def _sample_shape_of_input(X: Any) -> tuple[int, ...] | None:
    """``(channels, height, width)`` of images given as ``(n, channels, height, width)``
    or ``(n, height, width)`` (one channel), else None."""
    shape = getattr(X, "shape", None)
    if shape is None and isinstance(X, (list, tuple)):
        shape = np.shape(X)
    if shape is not None and len(shape) == 4:
        return int(shape[1]), int(shape[2]), int(shape[3])
    if shape is not None and len(shape) == 3:
        return 1, int(shape[1]), int(shape[2])
    return None


def _image_shape_of_input(X: Any) -> tuple[int, int] | None:
    """``(height, width)`` of one-channel images (``(n, height, width)`` or ``(n, 1,
    height, width)``), else None."""
    sample = _sample_shape_of_input(X)
    return (sample[1], sample[2]) if sample is not None and sample[0] == 1 else None


def _value_range(X: Any) -> tuple[float, float]:
    """The smallest and the largest value of the array ``X`` (any library) as floats."""
    if isinstance(X, np.ndarray):
        return float(X.min()), float(X.max())
    import array_api_compat as aac

    xp = aac.array_namespace(X)
    if xp.isdtype(X.dtype, "bool"):
        X = xp.astype(X, xp.int8)
    return float(xp.min(X)), float(xp.max(X))


def _raw_range(X: Any, preprocessor: Any) -> tuple[float, float] | None:
    """The range of the raw inputs that the fitted ``preprocessor`` made into ``X``,
    through its map back to raw values (None where it has none); values within 1e-4
    of a whole number are taken as that number (the map's rounding; pixels are whole)."""
    from .data.augment import pixel_map

    if preprocessor is None or preprocessor.name == "none":
        return _value_range(X)
    back = pixel_map(preprocessor)
    if back is None:
        return None
    be = backend_for(X)
    xp = be.xp
    with be.device_context():
        mean, scale = (v if isinstance(v, float) else be.asarray(v, dtype=X.dtype) for v in back)
        lo = xp.min(xp.min(X, axis=0) * scale + mean)
        hi = xp.max(xp.max(X, axis=0) * scale + mean)
        bounds = (float(lo), float(hi))

    def snapped(v: float) -> float:
        return float(round(v)) if abs(v - round(v)) <= 1e-4 * max(1.0, abs(v)) else v

    return snapped(bounds[0]), snapped(bounds[1])


def _take_rows(X: Any, idx: np.ndarray) -> Any:
    """The rows ``idx`` (host integers) of ``X``, in its own library and device."""
    if isinstance(X, np.ndarray):
        return X[idx]
    be = backend_for(X)
    with be.device_context():
        return be.xp.take(X, be.asarray(idx, dtype=be.index_dtype), axis=0)


def _int_like(a: Any) -> bool:
    return "int" in str(getattr(a, "dtype", ""))
