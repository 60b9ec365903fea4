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
numbers, bit for bit, as the same rows of the whole preprocessed set. It runs through
the ``ops`` seam (``Ops.scale_batch``: ``(X - mean) / scale``); NumPy's writes into a
scratch buffer per batch shape, since a new array per minibatch costs more in page
faults than the arithmetic.
"""

from __future__ import annotations

from typing import Any

import array_api_compat

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
        #: ``(mean, scale)`` of the preprocessing's affine map (``mean`` None for
        #: ``"unit"``), made on the first batch; None: no preprocessing, or one without
        #: such a map (applied as the preprocessor applies it).
        self._affine: tuple[Any, Any] | None = None
        name = getattr(preprocessor, "name", None)
        self._kind = ("none" if preprocessor is None or name == "none" else
                      "unit" if name == "unit" else
                      "affine" if getattr(preprocessor, "standardizer_", None) is not None else "other")

    def __repr__(self) -> str:
        return f"BatchPipeline(augment={self.augment!r}, preprocessor={self.preprocessor!r})"

    def __call__(self, X: Any, step: int, **where: int) -> Any:
        ops = ops_of(X)
        n = X.shape[0]
        if self.augment is not None and n:
            X = self.augment(self._float(ops, X), step, **where)
        if self._kind in ("affine", "unit") and n:
            if self._affine is None:
                self._affine = self._map(ops.xp, X)
            return ops.scale_batch(X, self.dtype, *self._affine)
        X = self._float(ops, X)
        return self.preprocessor.apply_new(X) if self._kind == "other" and n else X

    def _float(self, ops: Any, X: Any) -> Any:
        return X if X.dtype == self.dtype else ops.xp.astype(X, self.dtype)

    def _map(self, xp: Any, X: Any) -> tuple[Any, Any]:
        """The preprocessing as ``(mean, scale)`` in the batches' dtype and on their
        device (``"unit"``: no mean, 255, as :func:`~arraynn.data.preprocessing.scale_unit`)."""
        like = self._float(ops_of(X), X[:1, ...])
        if self._kind == "unit":
            return None, xp.asarray(255.0, dtype=self.dtype, device=array_api_compat.device(like))
        st = self.preprocessor.standardizer_
        return st._like(st.mean_, like, xp), st._like(st.scale_, like, xp)
