"""Preprocessing and augmentation inside the step: the training set stays on the device
in its own dtype, and each minibatch is converted, augmented in pixel space, then
preprocessed."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from _devices import device_arg as _device_arg

from arraynn import NNClassifier, _fitting
from arraynn.data.augment import RandomShift
from arraynn.data.loader import DataLoader, on_device
from arraynn.data.pipeline import BatchPipeline
from arraynn.data.preprocessing import Preprocessor


def _images(n=64, side=6, seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=(n, side * side)).astype(np.uint8)


def test_small_integers_stay_in_their_dtype_on_the_device(backend):
    xp = backend.xp
    X = _images()
    kept = DataLoader(X, np.zeros(len(X), np.int64), backend=backend, batch_size=16, keep_integers=True)
    assert kept.X.dtype == xp.uint8
    assert all(Xb.dtype == xp.uint8 for Xb, _ in kept.epoch(0))
    assert DataLoader(X, None, backend=backend, batch_size=16).X.dtype == backend.dtype
    # wide integers are converted (as floats they take no more room)
    assert on_device(X.astype(np.int64), backend, keep_integers=True).dtype == backend.dtype
    with pytest.raises(ValueError, match="transform acts on float data"):
        DataLoader(X, None, backend=backend, batch_size=16, keep_integers=True, transform=lambda a: a)


@pytest.mark.parametrize("scheme", ["standardize", "per-set", "unit"])
def test_a_preprocessed_batch_is_bit_for_bit_the_rows_of_the_preprocessed_set(backend, scheme):
    xp = backend.xp
    X = _images(n=50)
    Xf = xp.astype(backend.asarray(X), backend.dtype)
    prep = Preprocessor(scheme).fit(Xf)
    whole = backend.to_numpy(prep.apply(Xf))
    pipe = BatchPipeline(backend.dtype, None, prep)
    rows = np.arange(7, 23)
    batch = pipe(xp.take(backend.asarray(X), backend.asarray(rows, dtype=backend.index_dtype), axis=0), 0)
    assert batch.dtype == backend.dtype
    np.testing.assert_array_equal(backend.to_numpy(batch), whole[rows])


def test_augmentation_happens_on_pixels_before_the_preprocessing(backend):
    xp = backend.xp
    X = _images(n=40)
    Xf = xp.astype(backend.asarray(X), backend.dtype)
    prep = Preprocessor("standardize").fit(Xf)
    shift = RandomShift(2, (6, 6), seed=3, flip=True)
    got = backend.to_numpy(BatchPipeline(backend.dtype, shift, prep)(backend.asarray(X), 5))
    # the raw images shifted (blank pixels 0), then standardized: exactly, no map back
    want = backend.to_numpy(prep.apply_new(shift(Xf, 5)))
    np.testing.assert_array_equal(got, want)
    # an empty slice (a rank's share of a small batch) is only converted
    empty = BatchPipeline(backend.dtype, shift, prep)(backend.asarray(X[:0]), 5)
    assert empty.shape == (0, 36) and empty.dtype == backend.dtype


def test_fit_keeps_uint8_images_on_the_device_and_trains_as_on_preprocessed_ones(backend, monkeypatch):
    rng = np.random.default_rng(1)
    X = _images(n=120, side=5, seed=2)
    y = rng.integers(0, 3, size=len(X))
    loaders = []
    real = _fitting._loader
    monkeypatch.setattr(_fitting, "_loader", lambda *a, **kw: loaders.append(real(*a, **kw)) or loaders[-1])
    kw = dict(n_hidden_units=7, epochs=3, batch_size=32, optimizer="adam", random_seed=0,
              backend=backend.name, device=_device_arg(backend), dtype=backend.dtype_name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        inside = NNClassifier(preprocessing="standardize", **kw).fit(X, y)
        assert loaders[-1].X.dtype == backend.xp.uint8  # a quarter of float32's device memory
        # the same set preprocessed beforehand, on the device, in the float dtype
        Xf = backend.xp.astype(backend.asarray(X), backend.dtype)
        before = NNClassifier(**kw).fit(Preprocessor("standardize").fit(Xf).apply(Xf), y)
    np.testing.assert_array_equal(backend.to_numpy(inside._state.params),
                                  backend.to_numpy(before._state.params))


def test_preprocessed_with_is_deprecated_and_still_shifts_on_pixels():
    rng = np.random.default_rng(3)
    X = _images(n=96, side=6, seed=4)
    y = rng.integers(0, 3, size=len(X))
    kw = dict(n_hidden_units=6, epochs=2, batch_size=32, optimizer="adam", random_seed=0, augment_shift=1)
    prep = Preprocessor("standardize").fit(X.astype(np.float32))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=UserWarning)
        with pytest.warns(FutureWarning, match=r"fit\(preprocessed_with=\) is deprecated"):
            old = NNClassifier(**kw).fit(prep.apply(X.astype(np.float32)), y, preprocessed_with=prep)
        new = NNClassifier(preprocessing="standardize", **kw).fit(X, y)
    # the same shifted pixels, up to the rounding of the map back
    np.testing.assert_allclose(old.coefs_[0], new.coefs_[0], rtol=1e-4, atol=1e-5)


def test_numpys_scratch_scaling_is_the_generic_one_bit_for_bit():
    from arraynn.ops import ops_of
    from arraynn.ops.generic import Ops

    rng = np.random.default_rng(5)
    mean = rng.normal(100, 30, size=36).astype(np.float32)
    scale = rng.uniform(20, 90, size=36).astype(np.float32)
    fast = ops_of(np.zeros(1))
    assert type(fast).scale_batch is not Ops.scale_batch  # a fast path of its own
    for X in (_images(n=33), rng.normal(size=(33, 36)).astype(np.float32)):
        before = X.copy()
        for m in (mean, None):
            got = fast.scale_batch(X, np.float32, m, scale)
            want = Ops(np).scale_batch(X, np.float32, m, scale)
            assert got.dtype == np.float32 and got.tobytes() == want.tobytes()
        np.testing.assert_array_equal(X, before)  # the batch itself is left as it is
