"""On-device augmentation of image minibatches: random translations, in Array API code.

:class:`RandomShift` moves every image of a minibatch by its own random offset of up
to ``max_shift`` pixels in each direction, filling the uncovered border with blank
pixels, and optionally mirrors it left to right with probability 1/2 (``flip``: for
pictures whose class does not depend on left and right, as Fashion-MNIST's clothes);
labels are unchanged. The offsets come from the counter-based generator of
:mod:`arraynn.nn.random`, keyed by the seed and the optimizer's step counter, so they
are made on the device, copy nothing to the host, and are the same on every backend.

How it is computed: the minibatch (rows of ``height * width`` features) is padded by
``max_shift`` blank pixels on every side (two ``concat``), and one ``take`` gathers
each output pixel from the padded images at an index ``base[pixel] + offset[image]``
(the base index of every pixel is made once per shape and device, and once mirrored).
That is a few passes over the minibatch, whatever the shift.

**Shifting happens in pixel space.** Inputs are usually preprocessed (standardized per
pixel with the training set's mean and std): a standardized value moved to another
position would be scaled with the wrong pixel's statistics, and a blank pixel is not 0
there. An estimator with ``preprocessing`` therefore shifts each minibatch of raw
images and preprocesses it afterwards (:class:`arraynn.data.pipeline.BatchPipeline`).
For inputs preprocessed beforehand, the preprocessing's affine map (``pixels = X *
scale + mean``, see :func:`pixel_map`) maps the batch back to pixels, which are shifted
with zero fill and preprocessed again (up to rounding what preprocessing the shifted
raw images gives). Without a map the inputs are shifted as they are and the fill is 0.
"""

from __future__ import annotations

import math
import threading
from typing import Any

import array_api_compat

from ..nn import random
from ..ops import ops_of

__all__ = ["RandomShift", "image_shape_of", "pixel_map"]


def image_shape_of(n_features: int, image_shape: Any = None) -> tuple[int, int]:
    """``(height, width)`` of images of ``n_features`` pixels: ``image_shape`` when
    given (checked), else the square side.

    Raises
    ------
    ValueError
        When the features are not a square image and no shape is given, or the shape
        does not match.
    """
    if image_shape is not None:
        h, w = (int(s) for s in image_shape)
        if h * w != n_features or h < 1 or w < 1:
            raise ValueError(f"image_shape {tuple(image_shape)} does not hold the {n_features} "
                             "features of a sample")
        return h, w
    side = math.isqrt(int(n_features))
    if side * side != n_features:
        raise ValueError(f"shift augmentation needs images: {n_features} features are not a "
                         "square image; pass the images as (n, height, width)")
    return side, side


def pixel_map(preprocessor: Any) -> tuple[Any, Any] | None:
    """``(mean, scale)`` such that ``pixels = X * scale + mean`` for inputs ``X``
    made by the fitted :class:`arraynn.data.preprocessing.Preprocessor`; None for no
    preprocessing (or ``"none"``)."""
    if preprocessor is None or preprocessor.name == "none":
        return None
    if preprocessor.name == "unit":
        return 0.0, 255.0
    st = preprocessor.standardizer_
    if st is None:
        return None
    return st.mean_, st.scale_


class RandomShift:
    """Translate each image of a minibatch by a random whole number of pixels.

    Parameters
    ----------
    max_shift : int
        Largest shift in each direction: offsets are uniform in
        ``-max_shift .. max_shift`` vertically and horizontally, drawn per image
        (``0``: the identity).
    image_shape : (int, int)
        ``(height, width)`` of the images (rows of the minibatch hold ``height *
        width`` features, row-major).
    seed : int
        Seed of the offsets; with the step counter it keys the generator.
    pixels : (mean, scale), optional
        The inputs' affine map back to pixels (:func:`pixel_map`): scalars or arrays
        of ``height * width`` entries on the data's device. None: shift the inputs as
        they are, filling with 0.
    flip : bool
        Also mirror each image left to right with probability 1/2 (its own draw).

    Call it as ``shift(X, step)`` with ``X`` a floating ``(n, height * width)`` array
    on its device and ``step`` the optimizer's step counter (a Python int); it returns
    a new array of the same shape, dtype and device. ``shift(X, step, first_row)``: ``X``
    is the rows ``first_row ..`` of the step's minibatch and gets their draws (a
    data-parallel rank's slice moves as in the whole batch).
    """

    def __init__(self, max_shift: int, image_shape: tuple[int, int], seed: int,
                 pixels: tuple[Any, Any] | None = None, flip: bool = False) -> None:
        self.max_shift = int(max_shift)
        if self.max_shift < 0:
            raise ValueError(f"max_shift must be >= 0, got {max_shift}")
        self.image_shape = (int(image_shape[0]), int(image_shape[1]))
        self.seed = int(seed)
        self.pixels = pixels
        self.flip = bool(flip)
        self._bases: dict[tuple, Any] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return (f"RandomShift(max_shift={self.max_shift}, image_shape={self.image_shape}, "
                f"seed={self.seed}{', flip=True' if self.flip else ''})")

    def _base(self, xp: Any, dtype: Any, device: Any, mirrored: bool = False) -> Any:
        """The padded-image index of every output pixel at offset 0, or of its mirror
        image (cached)."""
        key = (id(xp), str(dtype), str(device), mirrored)
        base = self._bases.get(key)
        if base is None:
            h, w = self.image_shape
            pw = w + 2 * self.max_shift
            rows = xp.arange(h, dtype=dtype, device=device)
            cols = xp.arange(w, dtype=dtype, device=device)
            if mirrored:
                cols = (w - 1) - cols
            base = xp.reshape(rows[:, None] * pw + cols[None, :], (1, h * w))
            with self._lock:
                self._bases[key] = base
        return base

    def flips(self, xp: Any, n: int, step: int, device: Any = None, first_row: int = 0) -> Any:
        """Whether each of ``n`` images is mirrored at ``step`` (a boolean ``(n,)`` array);
        the images are the rows ``first_row ..`` of the step's minibatch."""
        bits = random.random_below(xp, (n,), 2, self.seed, step, random.STREAMS["augment"] + 1,
                                   device, first_row)
        return bits == 1

    def offsets(self, xp: Any, n: int, step: int, device: Any = None, first_row: int = 0) -> Any:
        """The ``(n, 2)`` draws in ``0 .. 2 * max_shift`` (row, column) of ``n`` images,
        the rows ``first_row ..`` of the minibatch at ``step``; the shift is ``max_shift``
        minus the draw."""
        return random.random_below(xp, (n, 2), 2 * self.max_shift + 1, self.seed, step,
                                   random.STREAMS["augment"], device, 2 * first_row)

    def __call__(self, X: Any, step: int, first_row: int = 0) -> Any:
        s = self.max_shift
        if (s == 0 and not self.flip) or X.shape[0] == 0:
            return X
        xp = ops_of(X).xp  # cached per array type: no namespace lookup per step
        device = array_api_compat.device(X)
        h, w = self.image_shape
        n = X.shape[0]
        if X.ndim != 2 or X.shape[1] != h * w:
            raise ValueError(f"RandomShift of {h}x{w} images needs rows of {h * w} features, got "
                             f"shape {X.shape}")
        if self.pixels is not None:
            mean, scale = self.pixels
            X = X * scale + mean
        ph, pw = h + 2 * s, w + 2 * s
        if s:
            images = xp.reshape(X, (n, h, w))
            side = xp.zeros((n, h, s), dtype=X.dtype, device=device)
            images = xp.concat([side, images, side], axis=2)
            band = xp.zeros((n, s, pw), dtype=X.dtype, device=device)
            padded = xp.reshape(xp.concat([band, images, band], axis=1), (n * ph * pw,))
        else:
            padded = xp.reshape(X, (n * h * w,))
        r = self.offsets(xp, n, step, device, first_row)
        itype = r.dtype
        # output pixel (i, j) of image k reads padded[k, i + r_row, j + r_col] (mirrored:
        # padded[k, i + r_row, w - 1 - j + r_col]): a shift by (max_shift - r_row,
        # max_shift - r_col)
        start = xp.arange(n, dtype=itype, device=device) * (ph * pw) + r[:, 0] * pw + r[:, 1]
        base = self._base(xp, itype, device)
        if self.flip:
            base = xp.where(self.flips(xp, n, step, device, first_row)[:, None],
                            self._base(xp, itype, device, mirrored=True), base)
        index = start[:, None] + base
        out = xp.reshape(xp.take(padded, xp.reshape(index, (n * h * w,)), axis=0), (n, h * w))
        if self.pixels is not None:
            out = (out - mean) / scale
        return out
