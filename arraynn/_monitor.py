"""What happens after every epoch of a fit: the per-epoch monitor.

:class:`EpochMonitor` is the :class:`~arraynn.nn.Trainer`'s ``on_epoch``: it records the
epoch in the estimator's :class:`~arraynn._state.TrainingState` (parameters, optimizer
state, counters, loss curve), scores the validation set of early stopping, feeds the
:class:`~arraynn.nn.Plateau` rule (early stopping and the ``"adaptive"`` rate), keeps a
device copy of the best epoch's weights and restores them at the end, prints the
verbose line and calls the user's callback. :func:`hold_out` and :func:`validation_set`
make the validation set it scores.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ._inference import chunk_rows, proba_of_prepared
from ._inputs import take_rows, to_float_on
from ._validation import check_array, check_sample_weight, encode_with, flatten_images
from .nn import EpochRecord, Plateau, validation_split

__all__ = ["EpochMonitor", "hold_out", "validation_set"]

#: The entropy added to the seed for the early-stopping split (apart from the
#: loader's per-epoch permutations, which use ``[seed, epoch]``).
SPLIT_STREAM = (0x5EED, 1)


class EpochMonitor:
    """The estimator's ``on_epoch`` for one call of ``fit`` / ``partial_fit``.

    Parameters
    ----------
    est : NNClassifier
        The estimator being fitted (its parameters, ``_state`` and callback).
    plateau : Plateau
        The stopping rule, carrying on from the state's record.
    end_epoch : int
        The epoch training runs up to.
    val : tuple, optional
        The device validation set of :func:`validation_set` (early stopping).
    callback : callable, optional
        ``callback(est, info)``; returning True pauses training.
    verbose : bool
        Print one line per epoch (and the plateau's events).
    """

    def __init__(self, est: Any, plateau: Plateau, end_epoch: int, val: tuple[Any, ...] | None,
                 callback: Callable[[Any, dict[str, Any]], Any] | None, verbose: bool) -> None:
        self.est, self.plateau, self.end_epoch = est, plateau, end_epoch
        self.val, self.callback, self.verbose = val, callback, verbose
        #: Whether the best epoch's weights replaced the last epoch's.
        self.restored = False
        #: Whether the callback paused training before its end.
        self.paused = False

    def __call__(self, record: EpochRecord) -> bool:
        """Record ``record``; True stops training."""
        st, est, val = self.est._state, self.est, self.val
        xp = st.backend.xp
        st.params, st.opt = record.params, record.state
        st.n_iter = record.epoch
        st.loss_curve.append(record.loss)
        score = None
        if val is not None:
            score = validation_score(est, val)
            st.validation_scores.append(score)
        improved, event = self.plateau.update(score if score is not None else record.loss,
                                              record.learning_rate)
        if val is not None:
            st.best_validation_score = self.plateau.best
            if improved:  # a device copy of the flat buffer, only at a new best
                st.best_params = xp.asarray(record.params, copy=True)
                stats = record.state.get("stats")
                st.best_stats = None if stats is None else xp.asarray(stats, copy=True)
        else:
            st.best_loss = self.plateau.best
        st.stopping = {"monitor": est._monitor_name(), **self.plateau.state()}
        finished = event == "stop" or record.epoch >= self.end_epoch
        if finished and val is not None and st.best_params is not None:
            self.restore()
        if self.verbose:
            self._print(record, score, event)
        info = {"epoch": record.epoch, "loss": record.loss, "seconds": record.seconds,
                "learning_rate": record.learning_rate, "validation_score": score}
        user_stop = bool(self.callback is not None and self.callback(est, info))
        self.paused = user_stop and event != "stop" and record.epoch < self.end_epoch
        return event == "stop" or user_stop

    def restore(self) -> None:
        """The best epoch's weights (and BatchNorm statistics) become the state's."""
        st = self.est._state
        xp = st.backend.xp
        st.params = xp.asarray(st.best_params, copy=True)
        if st.best_stats is not None:
            st.opt["stats"] = xp.asarray(st.best_stats, copy=True)
        self.restored = True

    def finish(self, params: Any, opt: dict[str, Any] | None) -> None:
        """Keep the trainer's current ``params`` and ``opt`` in the state after the run
        ended, normally or not (an error or Ctrl-C inside an epoch), unless the best
        epoch's weights were just restored."""
        st = self.est.__dict__.get("_state")
        if st is None:  # forgotten: training diverged in its first epoch
            return
        if not self.restored:
            st.params = params
        if opt is not None:
            st.opt = opt
            if self.restored and st.best_stats is not None:
                st.opt["stats"] = st.best_stats

    def _print(self, record: EpochRecord, score: float | None, event: str | None) -> None:
        est = self.est
        extra = "" if score is None else f"  validation score {score:.6f}"
        print(f"epoch {record.epoch}/{self.end_epoch}  loss {record.loss:.6f}{extra}  "
              f"{record.seconds:.2f}s")
        if event is not None:
            what = "Validation score" if self.val is not None else "Training loss"
            rate = est.learning_rate_at(record.epoch)
            then = "stopping" if event == "stop" else f"learning rate now {rate:g}"
            print(f"{what} did not improve more than tol={float(est.tol):g} for "
                  f"{int(est.n_iter_no_change)} consecutive epochs: {then}")


def hold_out(est: Any, X: Any, y_idx: np.ndarray, w: np.ndarray | None,
             validation_data: tuple[Any, ...] | None) -> tuple[Any, np.ndarray, Any, tuple[Any, ...]]:
    """The training part and the validation set ``(X, y_idx, w)`` of early stopping:
    ``validation_data`` when given, else ``validation_fraction`` of the data,
    stratified, drawn from the seed (the same rows on every backend and after a resume)."""
    if validation_data is not None:
        if not isinstance(validation_data, (tuple, list)) or len(validation_data) not in (2, 3):
            raise ValueError("validation_data must be (X_val, y_val) or (X_val, y_val, sample_weight_val)")
        Xv = check_array(flatten_images(validation_data[0]), "the validation X")
        if Xv.shape[1] != est.n_features_in_:
            raise ValueError(f"the validation X has {Xv.shape[1]} features, the training X "
                             f"{est.n_features_in_}; they must match")
        yv = encode_with(validation_data[1], est.classes_, Xv.shape[0])
        wv = check_sample_weight(validation_data[2], Xv.shape[0]) if len(validation_data) == 3 else None
        return X, y_idx, w, (Xv, yv, wv)
    rng = np.random.default_rng([est.random_seed_, *SPLIT_STREAM])
    train, val = validation_split(y_idx, float(est.validation_fraction), rng)
    w_train, w_val = (None, None) if w is None else (w[train], w[val])
    if w_train is not None and w_val is not None and not (np.sum(w_train) > 0 and np.sum(w_val) > 0):
        part = "training" if not np.sum(w_train) > 0 else "validation"
        raise ValueError(f"the sample weights of the {part} part of early stopping's split sum to 0; "
                         "give more rows a weight above 0, change validation_fraction or pass "
                         "validation_data=")
    return take_rows(X, train), y_idx[train], w_train, (take_rows(X, val), y_idx[val], w_val)


def validation_set(est: Any, val: tuple[Any, ...]) -> tuple[Any, ...]:
    """The validation set on the model's device, preprocessed once, with its total weight."""
    Xv, yv, wv = val
    st = est._state
    be = st.backend
    Xd = to_float_on(be, Xv)
    if st.preprocessor is not None:
        Xd = st.preprocessor.apply_new(Xd)
    yd = be.asarray(yv, dtype=be.index_dtype)
    wd = None if wv is None else be.asarray(wv, dtype=be.dtype)
    total = float(len(yv)) if wv is None else float(np.sum(wv))
    return Xd, yd, wd, total


def validation_score(est: Any, val: tuple[Any, ...]) -> float:
    """The (weighted) accuracy on the device's validation set: one copy to the host."""
    Xd, yd, wd, total = val
    be = est._state.backend
    xp = be.xp
    hits = None
    n, chunk = Xd.shape[0], chunk_rows(est)
    for s in range(0, n, chunk):
        e = min(s + chunk, n)
        pred = xp.argmax(proba_of_prepared(est, Xd[s:e, ...]), axis=1)
        hit = xp.astype(pred == yd[s:e], be.dtype)
        if wd is not None:
            hit = hit * wd[s:e]
        part = xp.sum(hit)
        hits = part if hits is None else hits + part
    return float(be.to_float(hits) / total)
