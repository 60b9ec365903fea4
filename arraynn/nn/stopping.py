"""When to stop, and when the ``"adaptive"`` learning rate is divided: scikit-learn's
MLPClassifier rules, as a small record that is saved with a checkpoint.

:class:`Plateau` watches one number per epoch: the validation score (higher is better)
with early stopping, else the training loss (lower is better). An epoch that does not
beat the best so far by ``tol`` counts towards a plateau; one that does resets the
count. When the count exceeds ``n_iter_no_change``: the ``"adaptive"`` schedule divides
the learning rate by 5 (stopping instead once the rate is at or below 1e-6), otherwise
early stopping ends the training. Its whole state is four numbers (:meth:`state`), so
a run resumed from a checkpoint takes the same decisions as an uninterrupted one.

:func:`validation_split` draws the held-out part of the training data on the host.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .optimizers import ADAPTIVE_MIN_RATE

__all__ = ["Plateau", "validation_split"]


class Plateau:
    """The no-improvement count of one monitored number per epoch.

    Parameters
    ----------
    higher_is_better : bool
        ``True`` for a score (validation accuracy), ``False`` for a loss.
    tol : float
        The improvement an epoch must make over the best so far not to count.
    n_iter_no_change : int
        The count that ends a plateau when exceeded.
    adaptive : bool
        A plateau divides the learning rate (``divisions += 1``) instead of stopping,
        until the rate is at or below 1e-6.
    stop : bool
        Whether a plateau (without ``adaptive``) stops training. ``False``: the number
        is only watched (``best`` is kept).
    """

    def __init__(self, *, higher_is_better: bool, tol: float, n_iter_no_change: int,
                 adaptive: bool = False, stop: bool = True) -> None:
        self.higher_is_better = bool(higher_is_better)
        self.tol = float(tol)
        self.n_iter_no_change = int(n_iter_no_change)
        self.adaptive = bool(adaptive)
        self.stop = bool(stop)
        #: The best value so far (-inf / inf before the first epoch).
        self.best = -math.inf if self.higher_is_better else math.inf
        #: Epochs in a row that did not improve on the best by ``tol``.
        self.count = 0
        #: How many times the adaptive rate was divided.
        self.divisions = 0
        #: Whether a plateau ended the training.
        self.stopped = False

    def update(self, value: float, learning_rate: float) -> tuple[bool, str | None]:
        """Take one epoch's ``value`` (trained at ``learning_rate``).

        Returns ``(improved, event)``: whether ``value`` is a new best (strictly), and
        ``None``, ``"divide"`` (the next epochs train at a fifth of the rate) or
        ``"stop"``.
        """
        value = float(value)
        if self.higher_is_better:
            self.count = self.count + 1 if value < self.best + self.tol else 0
            improved = value > self.best
        else:
            self.count = self.count + 1 if value > self.best - self.tol else 0
            improved = value < self.best
        if improved:
            self.best = value
        event = None
        if self.count > self.n_iter_no_change:
            if self.adaptive:
                if learning_rate <= ADAPTIVE_MIN_RATE:
                    event = "stop"
                else:
                    self.divisions += 1
                    self.count = 0
                    event = "divide"
            elif self.stop:
                event = "stop"
        if event == "stop":
            self.stopped = True
        return improved, event

    def state(self) -> dict[str, Any]:
        """The state as JSON-able numbers (``best`` is ``None`` before any epoch)."""
        return {"best": self.best if math.isfinite(self.best) else None, "count": self.count,
                "divisions": self.divisions, "stopped": self.stopped}

    def set_state(self, state: dict[str, Any]) -> Plateau:
        """Restore :meth:`state`; returns ``self``."""
        best = state.get("best")
        self.best = (-math.inf if self.higher_is_better else math.inf) if best is None else float(best)
        self.count = int(state.get("count", 0))
        self.divisions = int(state.get("divisions", 0))
        self.stopped = bool(state.get("stopped", False))
        return self


def validation_split(y: np.ndarray, fraction: float, rng: np.random.Generator
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Sorted row indices ``(train, validation)`` holding out ``ceil(fraction * n)`` of
    the ``n`` class indices ``y`` for validation.

    Stratified (each class keeps its share, the remainder going to the classes with
    the largest fractional shares) when every class present has at least two samples
    and both parts can hold one of each; otherwise a plain random draw.

    Raises
    ------
    ValueError
        When the validation part would hold fewer than 2 samples or the training
        part none (scikit-learn's message and fix).
    """
    y = np.asarray(y)
    n = len(y)
    n_val = math.ceil(float(fraction) * n)
    if n_val < 2 or n - n_val < 1:
        raise ValueError(f"The validation set is too small ({n_val} of {n} samples with "
                         f"validation_fraction={fraction:g}). Increase 'validation_fraction' or the "
                         "size of your dataset (the training part needs at least one sample).")
    classes, counts = np.unique(y, return_counts=True)
    k = len(classes)
    if counts.min() >= 2 and n_val >= k and n - n_val >= k:
        exact = counts * (n_val / n)
        take = np.floor(exact).astype(np.int64)
        extra = n_val - int(take.sum())
        order = rng.permutation(k)  # ties of the fractional parts broken at random
        by_fraction = order[np.argsort(-(exact - take)[order], kind="stable")]
        take[by_fraction[:extra]] += 1
        val = np.concatenate([rng.permutation(np.flatnonzero(y == c))[:t]
                              for c, t in zip(classes, take)])
    else:
        val = rng.permutation(n)[:n_val]
    mask = np.zeros(n, dtype=bool)
    mask[val] = True
    return np.flatnonzero(~mask), np.flatnonzero(mask)
