"""How :class:`arraynn.NNClassifier` fits: its network, first state, loader and trainer.

``fit`` and ``partial_fit`` (the estimator's API, in :mod:`arraynn.classifier`) check
their inputs and call :func:`initialize` for a new model and :func:`train` for the
epochs; the per-epoch bookkeeping is :class:`arraynn._monitor.EpochMonitor`'s, the
learned state :class:`arraynn._state.TrainingState`'s.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any, cast

import numpy as np

from ._inputs import image_shape_of_input, sample_shape_of_input, take_rows, to_float_on, value_range
from ._monitor import EpochMonitor, validation_set
from ._state import TrainingState
from ._validation import (
    check_array,
    check_feature_names,
    check_input_shape,
    check_sample_weight,
    encode_labels,
    feature_names,
    flatten_images,
    hidden_sizes,
    labels_to_host,
    unique_labels,
)
from .backends import Backend
from .data.loader import DataLoader, on_device
from .data.pipeline import BatchPipeline
from .nn import (
    MLP,
    Plateau,
    Sequential,
    Trainer,
    TrainingDivergedError,
    dropout_rates,
    make_optimizer,
)
from .nn.layers import Dense

__all__ = ["build", "initialize", "train", "not_learned_message", "nothing_to_train_message"]

#: The training rows (at most, evenly spread) whose accuracy tells whether a fit learned.
LEARNED_ROWS = 2000
#: A fit whose training accuracy is no more than the most frequent class's share plus
#: this margin has learned nothing (:class:`ConvergenceWarning`).
CHANCE_MARGIN = 0.02


# ----------------------------------------------------------------------------------
# the network, the optimizer and the first state
# ----------------------------------------------------------------------------------
def network_input_shape(est: Any, n_features: int, sample_shape: tuple[int, ...] | None) -> tuple[int, ...]:
    """What one sample is to the network (see ``input_shape_``): ``input_shape``, or the
    images' ``(channels, height, width)`` where ``layers`` slide windows over images,
    else flat rows."""
    from .nn.layers import windowed

    given = est.input_shape
    if given is not None:
        shape = check_input_shape(given, n_features)
        if sample_shape is not None and sample_shape != shape and not (
                len(shape) == 2 and sample_shape == (1, *shape)):
            raise ValueError(f"X holds images of shape {sample_shape} but input_shape={tuple(given)}; "
                             "leave input_shape=None for images, or pass flat rows")
        return shape if len(shape) != 2 else (1, *shape)
    if est.layers is not None and windowed(est.layers):
        if sample_shape is None:
            raise ValueError(f"layers has convolutions or pooling, which take images, but X is flat rows "
                             f"of {n_features} features; give images shaped (n, channels, height, "
                             "width) or (n, height, width), or input_shape=(channels, height, width)")
        return sample_shape
    return (int(n_features),)


def build(est: Any, n_features: int, input_shape: tuple[int, ...], n_outputs: int) -> tuple[Any, Any]:
    """The network and the optimizer that ``est``'s parameters make for ``n_features``
    inputs (one sample shaped ``input_shape``) and ``n_outputs`` classes."""
    if est.layers is not None:  # the given body, then the output layer for the classes
        net: Any = Sequential([*est.layers, Dense(n_outputs, bias=bool(est.bias))], input_shape, est.output)
    else:
        hidden = hidden_sizes(est.n_hidden_units)
        net = MLP((n_features, *hidden, n_outputs), activation=est.activation, output=est.output,
                  bias=est.bias, dropout=dropout_rates(est.dropout, len(hidden)),
                  input_dropout=dropout_rates(est.input_dropout, 1)[0])
    optimizer = make_optimizer(est.optimizer, momentum=float(est.momentum),
                               nesterov=bool(est.nesterovs_momentum), beta_1=float(est.beta_1),
                               beta_2=float(est.beta_2), epsilon=float(est.epsilon))
    return net, optimizer


def rows_of(X: Any, sample_weight: Any) -> tuple[Any, np.ndarray | None]:
    """``fit``'s ``X`` as rows (images flattened, checked) and its sample weights."""
    X = check_array(flatten_images(X))
    return X, check_sample_weight(sample_weight, X.shape[0])


def finished(est: Any, X: Any, classes: np.ndarray, given: Any) -> bool:
    """Whether the fitted ``est``, warm-started on the rows ``X`` (made from ``given``)
    with ``classes``, has no epoch left to train; refuses other features or classes."""
    if X.shape[1] != est.n_features_in_:
        raise ValueError(f"X has {X.shape[1]} features but the model was trained with "
                         f"{est.n_features_in_}; warm_start needs the same features")
    if not np.array_equal(classes, est.classes_):
        raise ValueError("warm_start needs the same classes as the first fit")
    check_feature_names(est, given)
    return bool(est._stopping_state().get("stopped") or est.n_iter_ >= int(est.epochs))


def partial_fit_classes(est: Any, y: Any, classes: Any, n: int) -> np.ndarray:
    """The classes of a first ``partial_fit``: ``classes``, else ``0 .. n_classes-1``,
    else those of ``y``."""
    if classes is None and est.n_classes is None:
        return encode_labels(y, n, est.n_classes)[1]
    if classes is not None:
        classes = unique_labels(labels_to_host(classes), "classes")
        if classes.size < 2:
            raise ValueError("classes must hold at least two labels")
        return classes
    return np.arange(est.n_classes)


def initialize(est: Any, given: Any, X: Any, classes: np.ndarray, backend: Backend, comm: Any = None) -> None:
    """A new model for ``est`` fitted on the rows ``X`` (made from the input ``given``):
    its seed, network, initial weights and optimizer state (``est._state``), before any
    training. Refuses, before any work, what its inputs cannot do."""
    n_features, image_shape = X.shape[1], image_shape_of_input(given)
    check_augmentation(est, n_features, image_shape)
    sample_shape, names = sample_shape_of_input(given), feature_names(given)
    if est.n_features is not None and n_features != est.n_features:
        raise ValueError(f"X has {n_features} features but n_features={est.n_features}")
    input_shape = network_input_shape(est, n_features, sample_shape)
    class_names = None
    if est.class_names is not None:
        if len(est.class_names) != len(classes):
            raise ValueError(f"class_names holds {len(est.class_names)} names for {len(classes)} "
                             "classes; give one name per class")
        class_names = [str(n) for n in est.class_names]
    seed = est.random_seed
    if seed is None:
        seed = int(cast(int, np.random.SeedSequence().entropy) % (2**63))
        if comm is not None:  # the same initial weights on every rank
            seed = comm.bcast(seed, root=0)
    net, optimizer = build(est, int(n_features), input_shape, len(classes))
    with backend.device_context():
        params = net.init_params(backend, np.random.default_rng(int(seed)), est.init)
    state = TrainingState.new(backend, net, optimizer, params, classes=classes,
                              n_features_in=int(n_features), input_shape=input_shape,
                              random_seed=int(seed), image_shape=image_shape,
                              class_names=class_names, feature_names_in=names)
    state.reset_stopping(est._monitor_name())
    est._state = state


def fit_preprocessing(est: Any, X: Any) -> Any:
    """Fit ``preprocessing`` on the (raw) training inputs ``X`` into the state's
    ``preprocessor``. Returns ``X`` on the model's device as the loader keeps it (uint8
    pixels stay uint8, see :func:`arraynn.data.loader.on_device`), which training then
    takes as it is: one copy of the training data to the device, as without
    preprocessing. The statistics are computed on a float copy, freed afterwards;
    ``X`` itself without preprocessing."""
    if est.preprocessing is None:
        return X
    from .data.preprocessing import Preprocessor

    st = est._state
    be = st.backend
    Xd = on_device(X, be, keep_integers=True)
    with be.device_context():
        st.preprocessor = Preprocessor(est.preprocessing).fit(to_float_on(be, Xd))
        st.input_range = value_range(Xd)
    return Xd


def check_augmentation(est: Any, n_features: int, image_shape: tuple[int, int] | None) -> None:
    """Refuse, before any work, shifts or flips of rows that are not images."""
    if int(est.augment_shift) or est.augment_flip:
        from .data.augment import image_shape_of

        image_shape_of(n_features, image_shape)


def _pipeline(est: Any, X: Any, preprocessed_with: Any = None) -> BatchPipeline | None:
    """What each training minibatch of ``X`` (the device rows) goes through: conversion
    to the float dtype, the :class:`RandomShift` of ``augment_shift`` and
    ``augment_flip`` in pixel space, the preprocessing (None when nothing is to do)."""
    st = est._state
    be = st.backend
    shift, prep = None, st.preprocessor
    if int(est.augment_shift) or est.augment_flip:
        from .data.augment import RandomShift, image_shape_of, pixel_map

        pixels = None
        if preprocessed_with is not None:  # X comes preprocessed: map it back to pixels
            back = pixel_map(preprocessed_with)
            if back is not None:
                mean, scale = (v if isinstance(v, float) else to_float_on(be, v) for v in back)
                pixels = (mean, scale)
        shift = RandomShift(int(est.augment_shift), image_shape_of(st.n_features_in, st.image_shape),
                            st.random_seed, pixels, flip=bool(est.augment_flip))
    if shift is None and prep is None and X.dtype == be.dtype:
        return None
    return BatchPipeline(be.dtype, shift, prep)


def _loader(est: Any, X: Any, y_idx: np.ndarray, comm: Any = None,
            sample_weight: np.ndarray | None = None) -> DataLoader:
    shuffle = est.shuffle if est.shuffle is not None else est.batch_size is not None
    if est.batch_size is not None:
        sizes = dict(batch_size=min(int(est.batch_size), X.shape[0]))
    else:
        sizes = dict(n_batches=min(int(est.n_batches), X.shape[0]))
    shard = (comm.rank, comm.size) if comm is not None and comm.size > 1 else None
    st = est._state
    return DataLoader(X, y_idx, backend=st.backend, shuffle=shuffle, seed=st.random_seed,
                      shard=shard, sample_weight=sample_weight, keep_integers=True, **sizes)


def _plateau(est: Any) -> Plateau:
    es = bool(est.early_stopping)
    plateau = Plateau(higher_is_better=es, tol=float(est.tol), n_iter_no_change=int(est.n_iter_no_change),
                      adaptive=est.schedule == "adaptive", stop=es)
    return plateau.set_state(est._stopping_state())


# ----------------------------------------------------------------------------------
# the epochs
# ----------------------------------------------------------------------------------
def train(est: Any, X: Any, y_idx: np.ndarray, end_epoch: int,
          callback: Callable[[Any, dict[str, Any]], Any] | None, comm: Any = None,
          batch_callback: Callable[[int, int], Any] | None = None,
          sample_weight: np.ndarray | None = None, val: tuple[Any, ...] | None = None,
          preprocessed_with: Any = None) -> bool:
    """Load ``(X, y_idx)`` (and ``sample_weight``) onto the device once and train until
    ``end_epoch`` (data-parallel over ``comm``'s ranks when it has more than one); with
    ``val``, the held-out ``(X, y_idx, w)`` of early stopping. Returns whether
    ``callback`` paused training (returned ``True``)."""
    if preprocessed_with is not None:
        warnings.warn("fit(preprocessed_with=) is deprecated and will be removed: give the raw images "
                      "with preprocessing=... instead (each minibatch is then augmented on its pixels "
                      "and preprocessed, with no map back)", FutureWarning, stacklevel=4)
    st = est._state
    be = st.backend
    st.tf32 = be.set_tf32(bool(est.tf32))
    # the rates may have changed since the network was built (set_params, then a warm
    # start): a new network, never one changed in place (compiled steps keep theirs)
    net, optimizer = build(est, st.n_features_in, st.input_shape, len(st.classes))
    if net.spec != st.net.spec:
        st.net = net
    trainer = Trainer(st.net, st.optimizer, be, l1=float(est.l1), l2=float(est.l2),
                      learning_rate_at=est.learning_rate_at, comm=comm, on_batch=batch_callback,
                      seed=st.random_seed)
    n = X.shape[0]
    if est.batch_size is not None:
        batches = f"batch_size={est.batch_size}"
    else:
        batches = f"n_batches={est.n_batches} (about {-(-n // est.n_batches)} samples per batch)"
    if not est._stopping_state():  # an older model file, or early_stopping was switched
        st.reset_stopping(est._monitor_name())
    verbose = bool(est.verbose) and (comm is None or comm.rank == 0)
    with be.device_context(), trainer.memory_errors(n, batches):
        if val is not None:
            val = validation_set(est, val)
        monitor = EpochMonitor(est, _plateau(est), end_epoch, val, callback, verbose)
        loader = _loader(est, X, y_idx, comm, sample_weight)
        trainer.augment = _pipeline(est, loader.X, preprocessed_with)
        try:
            trainer.run(st.params, st.opt, loader, st.n_iter, end_epoch, monitor)
        except TrainingDivergedError as exc:
            # The trainer is back at the start of the diverged epoch.
            if trainer.params is None or st.n_iter == 0:
                est._forget_fit()
                kept = "the estimator is left unfitted"
            else:
                kept = f"the estimator keeps its weights after epoch {st.n_iter}"
            raise TrainingDivergedError(f"{exc}; {kept}") from None
        finally:
            loader.close()
            monitor.finish(trainer.params, trainer.state)
    return monitor.paused


# ----------------------------------------------------------------------------------
# what a fit says about itself
# ----------------------------------------------------------------------------------
def nothing_to_train_message(est: Any) -> str:
    """The warning of a warm-start ``fit`` of a finished model: what it did not do, and
    how to go on."""
    n = int(est.n_iter_)
    if est._stopping_state().get("stopped"):
        why = (f"its training was stopped after epoch {n} by "
               + ("early_stopping" if est.early_stopping else "the adaptive schedule (its learning "
                  "rate fell to 1e-6 or less)")
               + ", so it is finished")
    else:
        why = f"it has trained {n} epochs and epochs={est.epochs} (the total a warm start continues up to)"
    return (f"fit did not train: warm_start=True and {why}. To train on, call partial_fit(X, y) for one "
            f"more epoch, or set_params(epochs=N) with N > {n} and fit again; to train afresh on these "
            "data, set_params(warm_start=False) first")


def not_learned_message(est: Any, X: Any, y_idx: np.ndarray, w: np.ndarray | None,
                        preprocessed: bool = False) -> str | None:
    """The :class:`ConvergenceWarning`'s text when the fit learned nothing (else None):
    the training accuracy (on at most :data:`LEARNED_ROWS` rows, evenly spread) no better
    than always predicting the most frequent class (plus :data:`CHANCE_MARGIN`), or, over
    more than one epoch, a last loss not below the first."""
    st = est.__dict__.get("_state")
    if st is None:
        return None
    n = X.shape[0]
    rows = np.unique(np.linspace(0, n - 1, min(n, LEARNED_ROWS)).astype(np.int64))
    if len(rows) < n:
        X, y_idx, w = take_rows(X, rows), y_idx[rows], None if w is None else w[rows]
    be = st.backend
    with be.device_context():
        # from the logits' log-probabilities: finite where the probabilities underflow
        pred = be.to_numpy(be.xp.argmax(est._proba_on_model(X, log=True), axis=1))
    weight = np.ones(len(y_idx)) if w is None else w
    total = float(np.sum(weight))
    problems = []
    if total > 0:
        accuracy = float(np.sum(weight[pred == y_idx])) / total
        majority = float(np.max(np.bincount(y_idx, weights=weight, minlength=len(st.classes)))) / total
        if accuracy <= majority + CHANCE_MARGIN:
            problems.append(f"its training accuracy {accuracy:.3f} is no better than always predicting "
                            f"the most frequent class ({majority:.3f})")
    curve = st.loss_curve
    if len(curve) > 1 and not curve[-1] < curve[0]:
        problems.append(f"its loss did not fall ({curve[0]:.4g} after epoch 1, {curve[-1]:.4g} after "
                        f"epoch {len(curve)})")
    if not problems:
        return None
    preprocessed = preprocessed or est.preprocessing is not None
    prep = "" if preprocessed else 'standardized inputs (preprocessing="standardize"), '
    opt = "" if est.optimizer == "adam" else 'optimizer="adam", '
    batches = "" if est.batch_size is not None else "minibatches (batch_size=128), "
    return (f"NNClassifier learned nothing: {' and '.join(problems)}. Try {prep}{opt}{batches}more epochs, "
            "or the settings of python -m arraynn.train's default preset: NNClassifier("
            "preprocessing=\"standardize\", n_hidden_units=(256, 128), activation=\"relu\", "
            "output=\"softmax\", init=\"he\", bias=True, optimizer=\"adam\", learning_rate=1e-3, "
            "schedule=\"cosine\", batch_size=128, l2=0.05, epochs=15)")
