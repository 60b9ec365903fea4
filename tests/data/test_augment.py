"""On-device random shifts of image minibatches."""

from __future__ import annotations

import numpy as np
import pytest
from _devices import device_arg as _device_arg

import arraynn
from arraynn import NNClassifier
from arraynn.data.augment import RandomShift, image_shape_of, pixel_map
from arraynn.data.preprocessing import Preprocessor


def _images(n=16, h=6, w=5, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(1, 256, size=(n, h * w)).astype(np.float32)


def _shift_by_hand(img: np.ndarray, dy: int, dx: int) -> np.ndarray:
    out = np.zeros_like(img)
    h, w = img.shape
    for i in range(h):
        for j in range(w):
            si, sj = i - dy, j - dx
            if 0 <= si < h and 0 <= sj < w:
                out[i, j] = img[si, sj]
    return out


def test_shapes_kept_and_pixels_moved_as_drawn(backend):
    X = _images()
    shift = RandomShift(2, (6, 5), seed=3)
    out = backend.to_numpy(shift(backend.asarray(X), 11))
    assert out.shape == X.shape and out.dtype == np.dtype(backend.dtype_name)
    draws = backend.to_numpy(shift.offsets(backend.xp, len(X), 11, backend.device)).astype(int)
    assert draws.min() >= 0 and draws.max() <= 4
    moved = 0
    for k in range(len(X)):
        dy, dx = 2 - draws[k, 0], 2 - draws[k, 1]
        want = _shift_by_hand(X[k].reshape(6, 5), dy, dx)
        np.testing.assert_array_equal(out[k].reshape(6, 5), want)
        moved += (dy, dx) != (0, 0)
    assert moved > len(X) // 2


def test_shift_zero_is_the_identity(backend):
    X = backend.asarray(_images())
    assert RandomShift(0, (6, 5), seed=0)(X, 3) is X


def test_the_same_shifts_on_every_backend(backend):
    X = _images(n=40, h=28, w=28)
    ref = RandomShift(2, (28, 28), seed=9)(X, 77)
    got = RandomShift(2, (28, 28), seed=9)(backend.asarray(X), 77)
    np.testing.assert_array_equal(backend.to_numpy(got), ref)
    other_step = RandomShift(2, (28, 28), seed=9)(X, 78)
    assert not np.array_equal(other_step, ref)


def test_standardized_inputs_are_shifted_in_pixel_space(backend):
    X = _images(n=30, h=8, w=8)
    X[:, :8] = 0.0  # a blank first row, as images have
    xb = backend.asarray(X)
    prep = Preprocessor("standardize").fit(xb)
    Z = prep.apply(xb)
    mean, scale = pixel_map(prep)
    shifted = RandomShift(1, (8, 8), seed=1, pixels=(mean, scale))(Z, 4)
    raw_shifted = RandomShift(1, (8, 8), seed=1)(xb, 4)
    np.testing.assert_allclose(backend.to_numpy(shifted), backend.to_numpy(prep.apply(raw_shifted)),
                               rtol=1e-4, atol=1e-4)
    assert pixel_map(Preprocessor("unit")) == (0.0, 255.0)
    assert pixel_map(Preprocessor("none")) is None and pixel_map(None) is None


def test_image_shapes():
    assert image_shape_of(784) == (28, 28)
    assert image_shape_of(12, (3, 4)) == (3, 4)
    with pytest.raises(ValueError, match="square"):
        image_shape_of(10)
    with pytest.raises(ValueError, match="does not hold"):
        image_shape_of(12, (3, 5))
    with pytest.raises(ValueError, match="max_shift"):
        RandomShift(-1, (2, 2), 0)
    with pytest.raises(ValueError, match="rows of 4"):
        RandomShift(1, (2, 2), 0)(np.zeros((3, 5), np.float32), 0)


def test_classifier_trains_on_shifted_images_with_labels_unchanged(backend, monkeypatch):
    rng = np.random.default_rng(0)
    X = rng.integers(0, 256, size=(96, 7, 7)).astype(np.uint8)
    y = rng.integers(0, 3, size=96)
    seen = []
    real_call = RandomShift.__call__

    def spy(self, Xb, step):
        out = real_call(self, Xb, step)
        seen.append((tuple(Xb.shape), tuple(out.shape), step))
        return out

    monkeypatch.setattr(RandomShift, "__call__", spy)
    kw = dict(n_hidden_units=10, epochs=2, batch_size=32, random_seed=2, activation="relu",
              output="softmax", optimizer="adam", learning_rate=1e-3, bias=True, init="he",
              preprocessing="standardize", augment_shift=1, dropout=0.2)
    ref = NNClassifier(**kw).fit(X, y)
    assert [s for _, _, s in seen] == list(range(6)) and all(a == b for a, b, _ in seen)
    other = NNClassifier(**kw, backend=backend.name, device=_device_arg(backend)).fit(X, y)
    np.testing.assert_allclose(other.loss_curve_, ref.loss_curve_, rtol=1e-4)
    plain = NNClassifier(**{**kw, "augment_shift": 0}).fit(X, y)
    assert not np.allclose(plain.loss_curve_, ref.loss_curve_)
    assert isinstance(other.backend_, arraynn.Backend)


def test_flips_mirror_about_half_the_images(backend):
    X = _images(n=64)
    shift = RandomShift(0, (6, 5), seed=4, flip=True)
    out = backend.to_numpy(shift(backend.asarray(X), 2))
    flipped = backend.to_numpy(shift.flips(backend.xp, len(X), 2, backend.device))
    assert 16 < flipped.sum() < 48
    for k in range(len(X)):
        img = X[k].reshape(6, 5)
        np.testing.assert_array_equal(out[k].reshape(6, 5), img[:, ::-1] if flipped[k] else img)
    np.testing.assert_array_equal(out, RandomShift(0, (6, 5), seed=4, flip=True)(X, 2))
    assert "flip=True" in repr(shift)


def test_flips_and_shifts_together(backend):
    X = _images(n=24, h=7, w=7)
    shift = RandomShift(1, (7, 7), seed=8, flip=True)
    out = backend.to_numpy(shift(backend.asarray(X), 5))
    draws = backend.to_numpy(shift.offsets(backend.xp, len(X), 5, backend.device)).astype(int)
    flipped = backend.to_numpy(shift.flips(backend.xp, len(X), 5, backend.device))
    for k in range(len(X)):
        img = X[k].reshape(7, 7)
        want = _shift_by_hand(img[:, ::-1] if flipped[k] else img, 1 - draws[k, 0],
                              (draws[k, 1] - 1) if flipped[k] else 1 - draws[k, 1])
        np.testing.assert_array_equal(out[k].reshape(7, 7), want)


@pytest.mark.parametrize(("params", "fragment"), [
    (dict(augment_shift=-1), "augment_shift"),
    (dict(augment_shift=1.5), "augment_shift"),
    (dict(augment_shift=128), "0 .. 127"),
    (dict(augment_flip="yes"), "augment_flip"),
    (dict(dropout=1.0), "dropout"),
    (dict(dropout=[0.1, 0.2]), "hidden layers"),
    (dict(input_dropout=-0.5), "dropout"),
    (dict(input_dropout="0.1"), "input_dropout"),
])
def test_bad_augmentation_and_dropout_parameters_are_refused_before_any_work(params, fragment):
    X = np.zeros((10, 16), np.float32)
    with pytest.raises(ValueError, match=fragment):
        NNClassifier(n_hidden_units=4, epochs=1, **params).fit(X, np.arange(10) % 2)


def test_rows_that_are_not_images_are_refused_before_any_work():
    X, y = np.zeros((10, 24), np.float32), np.arange(10) % 2  # 24 pixels: not a square
    for params in (dict(augment_shift=1), dict(augment_flip=True)):
        clf = NNClassifier(n_hidden_units=4, epochs=1, **params)
        with pytest.raises(ValueError, match="square"):
            clf.fit(X, y)
        assert not hasattr(clf, "_params")
        with pytest.raises(ValueError, match="square"):
            clf.partial_fit(X, y)
        assert not hasattr(clf, "_params")


def test_images_of_any_shape_keep_it_through_pickle_and_model_files(tmp_path):
    import pickle

    rng = np.random.default_rng(1)
    X = rng.integers(0, 256, size=(40, 4, 6)).astype(np.uint8)  # 4x6 images
    y = rng.integers(0, 2, size=40)
    kw = dict(n_hidden_units=5, epochs=2, batch_size=8, random_seed=0, preprocessing="unit",
              augment_shift=1, augment_flip=True)
    clf = NNClassifier(**kw).fit(X, y)
    assert clf.image_shape_ == (4, 6)
    # a shift of a 4x6 image is not one of a 24-pixel row read as any other shape
    other = NNClassifier(**kw).fit(X.reshape(40, 6, 4), y)
    assert not np.allclose(other.loss_curve_, clf.loss_curve_)
    clf.save(tmp_path / "m.npz")
    for back in (NNClassifier.load(tmp_path / "m.npz"), pickle.loads(pickle.dumps(clf))):
        assert back.image_shape_ == (4, 6)
        back.set_params(warm_start=True, epochs=3)
        back.fit(X, y)
        whole = NNClassifier(**{**kw, "epochs": 3}).fit(X, y)
        np.testing.assert_allclose(back.coefs_[0], whole.coefs_[0], rtol=1e-6, atol=1e-7)


def test_augmentation_and_dropout_are_saved_with_the_model(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.integers(0, 256, size=(40, 25)).astype(np.uint8)
    y = rng.integers(0, 2, size=40)
    clf = NNClassifier(n_hidden_units=(6, 5), epochs=2, batch_size=8, random_seed=0,
                       preprocessing="unit", dropout=[0.1, 0.3], augment_shift=2,
                       augment_flip=True).fit(X, y)
    clf.save(tmp_path / "m.npz")
    back = NNClassifier.load(tmp_path / "m.npz")
    assert list(back.dropout) == [0.1, 0.3] and back.augment_shift == 2 and back.augment_flip is True
    np.testing.assert_array_equal(back.predict_proba(X), clf.predict_proba(X))
    # continuing the fit reproduces an uninterrupted one: the noise follows the step counter
    back.set_params(warm_start=True, epochs=3)
    back.fit(X, y)
    whole = NNClassifier(**{**clf.get_params(), "epochs": 3}).fit(X, y)
    np.testing.assert_allclose(back.coefs_[0], whole.coefs_[0], rtol=1e-6, atol=1e-7)
