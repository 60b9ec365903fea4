"""How a fitted :class:`arraynn.NNClassifier` predicts: its inputs checked, preprocessed
on the model's device in chunks, fed forward, and the probabilities normalised.

``predict``, ``predict_proba``, ``predict_log_proba`` and ``score`` (the estimator's
API) call :func:`check_predict_X` and :func:`proba_on_model`; training's validation
scores call :func:`proba_of_prepared` on sets preprocessed once.
"""

from __future__ import annotations

import warnings
from typing import Any

from ._errors import InputRangeWarning
from ._inputs import sample_shape_of_input, to_float_on, value_range
from ._validation import check_array, check_feature_names, flatten_images
from .ops.generic import log_softmax, softplus

__all__ = ["CHUNK", "CHUNK_NUMBERS", "check_predict_X", "chunk_rows", "proba_of_prepared", "proba_on_model"]

#: The most rows fed forward at a time.
CHUNK = 8192
#: The most numbers a chunk's widest activation may hold (2 Mi: 8 MiB in float32).
CHUNK_NUMBERS = 1 << 21


def chunk_rows(est: Any) -> int:
    """The rows the fitted ``est`` feeds forward at a time: :data:`CHUNK`, fewer where a
    chunk's widest activation would pass :data:`CHUNK_NUMBERS` (a convolution's feature
    maps: their temporaries run slower the larger they are, not faster: 10,000 images
    through the network of ``--preset cnn`` took 11.4 s in chunks of 8,192 rows, 3.7 s in
    chunks of 2,048 or 512, and, in one run (median of 4), 4.0 s in chunks of 668 rows
    (16 Mi numbers), 2.7 s of 167 (4 Mi), 2.4 s of 83 (2 Mi) and of 41 (1 Mi), on 2 vCPUs
    of an AMD EPYC Zen 3; a 784-512-512 MLP's 10,000 rows take the same time, about
    0.13 s, in chunks of 2,674 or 8,192)."""
    widest = int(getattr(est._state.net, "widest_sample", 1))
    return max(1, min(CHUNK, CHUNK_NUMBERS // max(widest, 1)))


def check_predict_X(est: Any, X: Any) -> Any:
    """``X`` as rows of the fitted ``est``'s features (host or device, its own library),
    after the checks of its names, its image shape, its width and its range."""
    state = est._check_is_fitted()
    check_feature_names(est, X)
    sample, network = sample_shape_of_input(X), state.input_shape
    if sample is not None and len(network) == 3 and sample != network:
        raise ValueError(f"X holds images of shape {sample} but the network takes {network}")
    X = check_array(flatten_images(X))
    n = state.n_features_in
    if X.shape[1] != n:
        raise ValueError(f"X has {X.shape[1]} features, but NNClassifier is expecting {n} features as "
                         f"input (it was fitted with {n} features)")
    _check_input_range(state, X)
    return X


def _check_input_range(state: Any, X: Any) -> None:
    """An :class:`InputRangeWarning` when a model that preprocesses its raw inputs is
    given inputs clearly outside the raw training range (see ``input_range_``)."""
    fitted, prep = state.input_range, state.preprocessor
    if fitted is None or prep is None or prep.name == "none":
        return
    lo, hi = fitted
    tol = 1e-3 * max(abs(lo), abs(hi), 1e-30)
    x_lo, x_hi = value_range(X)
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
        "pixels 0-255, not standardized or scaled ones", InputRangeWarning, stacklevel=6)


def proba_of_prepared(est: Any, X: Any) -> Any:
    """Class probabilities of preprocessed inputs on the model's device (the sigmoid
    output's per-class sigmoids normalised to sum to 1)."""
    state = est._state
    p = state.net.predict_proba(state.params, X, state.opt.get("stats"))
    if est.output == "sigmoid":
        p = p / state.backend.xp.sum(p, axis=1, keepdims=True)
    return p


def _log_proba_of_prepared(est: Any, X: Any) -> Any:
    """``log`` of :func:`proba_of_prepared`, from the logits: ``log_softmax(z)`` for the
    softmax output; for the sigmoids, whose probabilities are ``sigmoid(z_k) / sum_j
    sigmoid(z_j)``, ``log_softmax(log_sigmoid(z))`` with ``log_sigmoid(z) =
    -softplus(-z)``. Finite where the probabilities underflow."""
    state = est._state
    xp = state.backend.xp
    z = state.net.forward(state.params, X, state.opt.get("stats"))
    if est.output == "sigmoid":
        z = -softplus(-z, xp)
    return log_softmax(z, xp)


def proba_on_model(est: Any, X: Any, log: bool = False) -> Any:
    """The (log) probabilities of the raw rows ``X`` on the model's device: each chunk of
    :func:`chunk_rows` rows moved there, preprocessed and fed forward."""
    state = est._state
    be, prep = state.backend, state.preprocessor
    whole = prep is not None and prep.name == "per-set" and prep.standardizer_ is None
    if whole and prep is not None:  # statistics of the whole input (a 0.1.0 run's description)
        X = prep.apply_new(to_float_on(be, X))
    out = []
    n, chunk = X.shape[0], chunk_rows(est)
    for s in range(0, n, chunk):
        Xc = to_float_on(be, X[s:min(s + chunk, n), ...])
        if prep is not None and not whole:
            Xc = prep.apply_new(Xc)
        out.append(_log_proba_of_prepared(est, Xc) if log else proba_of_prepared(est, Xc))
    return out[0] if len(out) == 1 else be.xp.concat(out, axis=0)
