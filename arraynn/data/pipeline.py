"""What a training minibatch goes through on the device before the forward pass.

The loader keeps the training set on the device in its own dtype (uint8 pixels stay
uint8: a quarter of float32's memory, see :class:`arraynn.data.loader.DataLoader`'s
``keep_integers``). Each minibatch is then converted to the float dtype, augmented in
pixel space (:class:`arraynn.data.augment.RandomShift`: shifts and flips of the raw
images, blank pixels 0), and preprocessed with the training set's statistics
(:meth:`arraynn.data.preprocessing.Preprocessor.apply_new`), in that order. No
inverse transform is needed: the preprocessing is applied after the augmentation,
once, to pixels.

Preprocessing is elementwise, so a minibatch preprocessed on its own holds the same
numbers, bit for bit, as the same rows of the whole preprocessed set.
"""

from __future__ import annotations

from typing import Any

from ..ops import ops_of

__all__ = ["BatchPipeline"]


class BatchPipeline:
    """Convert, augment and preprocess a minibatch on its device.

    Parameters
    ----------
    dtype : dtype
        The float dtype of the network (the backend's).
    augment : callable, optional
        ``augment(X, step)`` on float pixels (a :class:`RandomShift`), with the
        trainer's ``first_row`` where it gives one.
    preprocessor : Preprocessor, optional
        The fitted preprocessing, applied after the augmentation.

    Call it as ``pipeline(X, step)`` (``pipeline(X, step, first_row=r)`` for a rank's
    slice of the minibatch), the arguments of the trainer's ``augment`` hook
    (:class:`arraynn.nn.Trainer`); it returns the float batch to train on. An empty
    batch (a data-parallel rank's empty slice) is only converted.
    """

    def __init__(self, dtype: Any, augment: Any = None, preprocessor: Any = None) -> None:
        self.dtype, self.augment, self.preprocessor = dtype, augment, preprocessor

    def __repr__(self) -> str:
        return f"BatchPipeline(augment={self.augment!r}, preprocessor={self.preprocessor!r})"

    def __call__(self, X: Any, step: int, **where: int) -> Any:
        if X.dtype != self.dtype:
            X = ops_of(X).xp.astype(X, self.dtype)
        if X.shape[0] == 0:
            return X
        if self.augment is not None:
            X = self.augment(X, step, **where)  # with ranks: first_row=
        if self.preprocessor is not None:
            X = self.preprocessor.apply_new(X)
        return X
