"""Preprocessing on every backend, checked against scikit-learn (or NumPy)."""

from __future__ import annotations

import ast
import inspect
import json

import array_api_compat
import numpy as np
import pytest
from conftest import assert_on_backend

import arraynn
from arraynn.backends import DtypeNotSupportedError
from arraynn.data import _stats, preprocessing
from arraynn.data.loader import DataLoader
from arraynn.data.preprocessing import (
    PREPROCESSORS,
    Preprocessor,
    Standardizer,
    make_preprocessor,
    scale,
    scale_unit,
)

try:
    import sklearn.preprocessing as skp
except ImportError:  # the NumPy reference below stands in
    skp = None


# --------------------------------------------------------------------------
# references, in float64 on the host


def np_standardize(fit_on: np.ndarray, apply_to: np.ndarray) -> np.ndarray:
    """NumPy reference: population std, constant features scaled by 1."""
    fit_on = fit_on.astype(np.float64)
    mean = fit_on.mean(axis=0)
    std = fit_on.std(axis=0)
    std[np.ptp(fit_on, axis=0) == 0] = 1.0
    return (apply_to.astype(np.float64) - mean) / std


def ref_standardize(fit_on: np.ndarray, apply_to: np.ndarray) -> np.ndarray:
    """scikit-learn's StandardScaler when installed, else the NumPy reference."""
    if skp is None:
        return np_standardize(fit_on, apply_to)
    return skp.StandardScaler().fit(fit_on.astype(np.float64)).transform(apply_to.astype(np.float64))


def ref_scale(X: np.ndarray) -> np.ndarray:
    """scikit-learn's ``scale`` when installed, else the NumPy reference."""
    if skp is None:
        return np_standardize(X, X)
    return skp.scale(X.astype(np.float64))


def pixels(rng: np.random.Generator, n: int, d: int = 784) -> np.ndarray:
    """Image-like float data: many zeros, a constant and a nearly empty feature."""
    X = rng.integers(0, 256, (n, d), dtype=np.uint8)
    X *= rng.integers(0, 2, (n, d), dtype=np.uint8)  # half of the pixels are 0
    X = X.astype(np.float64)
    X[:, 0] = 0  # constant
    X[:, 1] = 7  # constant, non-zero
    X[:, 2] = 0
    X[n // 2, 2] = 255  # one non-zero sample
    return X


def on(backend, X: np.ndarray):
    out = backend.asarray(X)
    assert out.dtype == backend.dtype
    return out


def host(backend, x, like) -> np.ndarray:
    """Check ``x`` is on ``like``'s library, device and dtype; return it on the host."""
    assert type(x) is type(like), f"expected {type(like)}, got {type(x)}"
    assert array_api_compat.device(x) == array_api_compat.device(like)
    assert x.dtype == like.dtype
    return backend.to_numpy(x)


def tol(backend) -> dict[str, float]:
    return {"rtol": 1e-5, "atol": 1e-5} if backend.dtype_name == "float32" else {"rtol": 1e-11, "atol": 1e-11}


def test_numpy_reference_agrees_with_sklearn(rng) -> None:
    if skp is None:
        pytest.skip("scikit-learn is not installed")
    X, Y = pixels(rng, 300, 20), pixels(rng, 50, 20)
    np.testing.assert_allclose(np_standardize(X, Y), skp.StandardScaler().fit(X).transform(Y), rtol=1e-12)
    np.testing.assert_allclose(np_standardize(X, X), skp.scale(X), rtol=1e-12, atol=1e-12)


# --------------------------------------------------------------------------
# Standardizer and scale


@pytest.fixture(params=["float32", "float64"])
def anybackend(request, backend):
    """Each backend in float32, and in float64 where the device has it."""
    if request.param == "float32":
        return backend
    try:
        return backend.with_dtype("float64")
    except DtypeNotSupportedError as exc:
        pytest.skip(f"no float64 here: {exc}")


def test_standardizer_fit_on_train_apply_to_test(anybackend, rng) -> None:
    be = anybackend
    Xtr_h = pixels(rng, 500, 40).astype(be.dtype_name)
    Xte_h = pixels(rng, 120, 40).astype(be.dtype_name)
    Xtr, Xte = on(be, Xtr_h), on(be, Xte_h)
    st = Standardizer()
    assert st.fit(Xtr) is st
    assert st.n_features_in_ == 40 and st.n_samples_seen_ == 500
    mean, scale_ = host(be, st.mean_, Xtr), host(be, st.scale_, Xtr)
    np.testing.assert_allclose(mean, Xtr_h.astype(np.float64).mean(axis=0), **tol(be))
    assert scale_[0] == 1 and scale_[1] == 1
    np.testing.assert_allclose(scale_[3:], Xtr_h.astype(np.float64).std(axis=0)[3:], **tol(be))

    out = host(be, st.transform(Xte), Xte)
    np.testing.assert_allclose(out, ref_standardize(Xtr_h, Xte_h), **tol(be))
    assert np.all(out[:, 0] == 0)  # a constant feature maps to 0 on the train mean
    out_tr = host(be, st.fit(Xtr).transform(Xtr), Xtr)
    np.testing.assert_allclose(out_tr, ref_standardize(Xtr_h, Xtr_h), **tol(be))


def test_scale_per_set(anybackend, rng) -> None:
    be = anybackend
    X_h = pixels(rng, 300, 30).astype(be.dtype_name)
    X = on(be, X_h)
    out = host(be, scale(X), X)
    np.testing.assert_allclose(out, ref_scale(X_h), **tol(be))
    assert np.all(out[:, :2] == 0)
    np.testing.assert_allclose(out[:, 3:].mean(axis=0), 0, atol=1e-5)
    np.testing.assert_allclose(out[:, 3:].std(axis=0), 1, rtol=1e-5)


@pytest.fixture(scope="module")
def full_size() -> dict[str, np.ndarray]:
    """Fashion-MNIST-sized float32 data and its float64 references, made once."""
    rng = np.random.default_rng(7)
    Xtr = pixels(rng, 60000).astype(np.float32)
    Xte = pixels(rng, 10000).astype(np.float32)
    Xtr64 = Xtr.astype(np.float64)
    return {
        "Xtr": Xtr,
        "Xte": Xte,
        "mean": Xtr64.mean(axis=0),
        "std": Xtr64.std(axis=0),
        "standardized": ref_standardize(Xtr, Xte),
        "per_set": ref_scale(Xte),
    }


@pytest.mark.slow
def test_float32_full_size_matches_reference(backend, full_size) -> None:
    """60000 x 784 in float32: within ~1e-5 relative of the float64 result."""
    Xtr, Xte = on(backend, full_size["Xtr"]), on(backend, full_size["Xte"])
    st = Standardizer().fit(Xtr)
    np.testing.assert_allclose(backend.to_numpy(st.mean_), full_size["mean"], rtol=1e-6)
    np.testing.assert_allclose(backend.to_numpy(st.scale_)[3:], full_size["std"][3:], rtol=1e-6)
    out = host(backend, st.transform(Xte), Xte)
    np.testing.assert_allclose(out, full_size["standardized"], rtol=1e-5, atol=1e-5)
    per_set = host(backend, scale(Xte), Xte)
    np.testing.assert_allclose(per_set, full_size["per_set"], rtol=1e-5, atol=1e-5)


def test_large_offset_needs_two_passes(backend) -> None:
    """Mean 1000, std 1 in float32: E[x^2] - E[x]^2 would lose every digit."""
    rng = np.random.default_rng(3)
    X_h = (1000 + rng.standard_normal((20001, 6))).astype(np.float32)
    X = on(backend, X_h)
    st = Standardizer().fit(X)
    np.testing.assert_allclose(backend.to_numpy(st.scale_), X_h.astype(np.float64).std(axis=0), rtol=1e-4)
    # The float32 mean itself is only good to half an ulp of 1000 (3e-5).
    np.testing.assert_allclose(host(backend, scale(X), X), ref_scale(X_h), atol=3e-4)


def test_results_identical_across_calls(backend, rng) -> None:
    X = on(backend, pixels(rng, 1000, 10))
    a = backend.to_numpy(scale(X))
    b = backend.to_numpy(Standardizer().fit(X).transform(X))
    np.testing.assert_array_equal(a, b)


def test_single_sample(backend) -> None:
    X = on(backend, np.array([[1.0, -2.0, 3.0]]))
    np.testing.assert_array_equal(backend.to_numpy(scale(X)), [[0.0, 0.0, 0.0]])


def test_transform_adapts_dtype(backend64, rng) -> None:
    """Fitted in float64, applied to float32 data: the result is float32."""
    X_h = pixels(rng, 200, 12)
    st = Standardizer().fit(on(backend64, X_h))
    X32 = backend64.asarray(X_h, dtype=backend64.xp.float32)
    out = st.transform(X32)
    assert out.dtype == backend64.xp.float32
    np.testing.assert_allclose(backend64.to_numpy(out), ref_standardize(X_h, X_h), rtol=1e-5, atol=1e-5)


def test_transform_errors(backend, rng) -> None:
    st = Standardizer()
    X = on(backend, pixels(rng, 10, 5))
    with pytest.raises(RuntimeError, match="not fitted"):
        st.transform(X)
    st.fit(X)
    with pytest.raises(ValueError, match="fitted on 5 features"):
        st.transform(on(backend, np.zeros((3, 4))))


def test_fitted_on_host_applied_on_device(backend, rng) -> None:
    """Statistics learned from NumPy arrays are moved to the backend's arrays."""
    X_h = pixels(rng, 300, 20).astype(np.float32)
    st = Standardizer().fit(X_h)
    X = on(backend, X_h)
    out = host(backend, st.transform(X), X)
    np.testing.assert_allclose(out, ref_standardize(X_h, X_h), rtol=1e-5, atol=1e-5)


def test_preprocessor_as_loader_transform(backend, rng) -> None:
    """A fitted scheme's ``apply`` is the loader's on-device transform."""
    X_h = pixels(rng, 50, 6).astype(np.uint8)
    prep = Preprocessor("standardize").fit(on(backend, X_h.astype(np.float64)))
    loader = DataLoader(X_h, backend=backend, batch_size=50, shuffle=False, transform=prep.apply)
    (Xb, _), = loader.epoch(0)
    assert_on_backend(Xb, backend)
    np.testing.assert_allclose(backend.to_numpy(Xb), ref_standardize(X_h, X_h), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    "call",
    [
        scale,
        scale_unit,
        lambda X: Standardizer().fit(X),
        make_preprocessor("standardize"),
        make_preprocessor("per-set"),
        make_preprocessor("unit"),
    ],
    ids=["scale", "scale_unit", "Standardizer.fit", "standardize", "per-set", "unit"],
)
def test_integer_input_refused(backend, call) -> None:
    X = backend.asarray(np.zeros((4, 3), dtype=np.uint8))
    assert not backend.xp.isdtype(X.dtype, "real floating")
    with pytest.raises(TypeError, match=r"real floating dtype.*xp\.astype\(X, xp\.float32\)"):
        call(X)


def test_shape_errors(backend) -> None:
    with pytest.raises(ValueError, match="2-D array"):
        scale(on(backend, np.zeros(5)))
    with pytest.raises(ValueError, match="at least one sample"):
        Standardizer().fit(on(backend, np.zeros((0, 5))))


# --------------------------------------------------------------------------
# scale_unit and make_preprocessor


def test_scale_unit(backend) -> None:
    X_h = np.array([[0.0, 51.0, 255.0], [255.0, 0.0, 127.5]])
    X = on(backend, X_h)
    np.testing.assert_allclose(host(backend, scale_unit(X), X), X_h / 255, rtol=1e-6)
    np.testing.assert_allclose(host(backend, scale_unit(X, max_value=51.0), X), X_h / 51, rtol=1e-6)
    with pytest.raises(ValueError, match="positive"):
        scale_unit(X, max_value=0)


def test_preprocessor_names() -> None:
    assert PREPROCESSORS == ("standardize", "per-set", "unit", "none")
    assert make_preprocessor().name == "standardize"
    with pytest.raises(ValueError, match="'standardize', 'per-set', 'unit', 'none'"):
        make_preprocessor("whiten")
    assert isinstance(make_preprocessor("unit"), Preprocessor)
    assert repr(make_preprocessor("unit")) == "Preprocessor('unit')"


def test_make_preprocessor(backend, rng) -> None:
    Xtr_h = pixels(rng, 400, 25).astype(np.float32)
    Xte_h = (pixels(rng, 100, 25) * 0.5 + 3).astype(np.float32)
    Xtr, Xte = on(backend, Xtr_h), on(backend, Xte_h)

    prep = make_preprocessor("standardize")
    a, b = prep(Xtr, Xte)
    np.testing.assert_allclose(host(backend, a, Xtr), ref_standardize(Xtr_h, Xtr_h), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(host(backend, b, Xte), ref_standardize(Xtr_h, Xte_h), rtol=1e-5, atol=1e-5)
    assert isinstance(prep.standardizer_, Standardizer)
    assert prep.standardizer_.n_samples_seen_ == 400

    a, b = make_preprocessor("per-set")(Xtr, Xte)
    np.testing.assert_allclose(host(backend, a, Xtr), ref_scale(Xtr_h), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(host(backend, b, Xte), ref_scale(Xte_h), rtol=1e-5, atol=1e-5)

    a, b = make_preprocessor("unit")(Xtr, Xte)
    np.testing.assert_allclose(host(backend, b, Xte), Xte_h / 255, rtol=1e-6)

    a, b = make_preprocessor("none")(Xtr, Xte)
    assert a is Xtr and b is Xte

    a, b = make_preprocessor("standardize")(Xtr)
    assert b is None


@pytest.mark.parametrize("module", [preprocessing, _stats], ids=["preprocessing", "_stats"])
def test_module_imports_no_array_library(module) -> None:
    tree = ast.parse(inspect.getsource(module))
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    assert not imported & {"numpy", "cupy", "torch", "jax", "array_api_strict"}, imported


# --------------------------------------------------------------------------
# the scheme object: fit, apply, to_dict, from_dict


@pytest.mark.parametrize("name", PREPROCESSORS)
def test_scheme_round_trip(backend, rng, name) -> None:
    """fit -> to_dict -> JSON -> from_dict(backend) applies exactly as the original."""
    Xtr_h = pixels(rng, 300, 12).astype(np.float32)
    Xte_h = (pixels(rng, 80, 12) * 0.5 + 3).astype(np.float32)
    Xtr, Xte = on(backend, Xtr_h), on(backend, Xte_h)
    prep = Preprocessor(name)
    assert prep.fit(Xtr) is prep
    expected = host(backend, prep.apply(Xte), Xte) if name != "none" else Xte_h
    if name == "none":
        assert prep.apply(Xte) is Xte

    saved = json.loads(json.dumps(prep.to_dict()))
    again = Preprocessor.from_dict(saved, backend)
    assert again.name == name
    out = again.apply(Xte)
    assert_on_backend(out, backend)
    np.testing.assert_array_equal(host(backend, out, Xte), expected)
    assert again.to_dict() == saved

    # Without a backend the statistics stay on the host, in float64.
    on_host = Preprocessor.from_dict(saved)
    if name == "standardize":
        assert isinstance(on_host.standardizer_.mean_, np.ndarray)
        assert on_host.standardizer_.scale_.dtype == np.float64
    np.testing.assert_allclose(host(backend, on_host.apply(Xte), Xte), expected, rtol=1e-6, atol=1e-6)


def test_scheme_apply_matches_references(backend, rng) -> None:
    Xtr_h = pixels(rng, 400, 25).astype(np.float32)
    Xte_h = (pixels(rng, 100, 25) * 0.5 + 3).astype(np.float32)
    Xtr, Xte = on(backend, Xtr_h), on(backend, Xte_h)
    st = Preprocessor("standardize").fit(Xtr)
    assert isinstance(st.standardizer_, Standardizer) and st.standardizer_.n_samples_seen_ == 400
    np.testing.assert_allclose(host(backend, st.apply(Xte), Xte), ref_standardize(Xtr_h, Xte_h),
                               rtol=1e-5, atol=1e-5)
    per_set = Preprocessor("per-set").fit(Xtr)
    np.testing.assert_allclose(host(backend, per_set.apply(Xte), Xte), ref_scale(Xte_h), rtol=1e-5, atol=1e-5)
    unit = Preprocessor("unit").fit(Xtr)
    np.testing.assert_allclose(host(backend, unit.apply(Xte), Xte), Xte_h / 255, rtol=1e-6)


def test_to_dict_format(backend) -> None:
    X = on(backend, np.array([[0.0, 5.0, 1.0], [2.0, 5.0, 4.0]]))
    prep = Preprocessor("standardize").fit(X)
    with arraynn.count_transfers() as moved:
        d = prep.to_dict()
    assert list(d) == ["scheme", "mean", "scale"]
    assert d == {"scheme": "standardize", "mean": [1.0, 5.0, 2.5], "scale": [1.0, 1.0, 1.5]}
    assert all(type(v) is float for v in d["mean"] + d["scale"])
    # The statistics come to the host through the Backend, where they are counted.
    assert moved.device_to_host == (0 if backend.name == "numpy" else 2)
    for name in ("per-set", "unit", "none"):
        assert Preprocessor(name).to_dict() == {"scheme": name}


def test_from_dict_of_stored_json(backend) -> None:
    """The exact "preprocessing" entry of a run directory's model.json."""
    stored = '{"scheme": "standardize", "mean": [1.0, 5.0], "scale": [2.0, 0.5]}'
    prep = Preprocessor.from_dict(json.loads(stored), backend=backend)
    st = prep.standardizer_
    assert_on_backend(st.mean_, backend)
    assert st.mean_.dtype == backend.dtype and st.scale_.dtype == backend.dtype
    assert st.n_features_in_ == 2
    X = on(backend, np.array([[3.0, 5.0], [1.0, 6.0]]))
    np.testing.assert_array_equal(host(backend, prep.apply(X), X), [[1.0, 0.0], [0.0, 2.0]])
    assert json.dumps(prep.to_dict()) == stored
    with pytest.raises(ValueError, match="fitted on 2 features"):
        prep.apply(on(backend, np.zeros((1, 3))))
    for name in ("per-set", "unit", "none"):
        assert Preprocessor.from_dict(json.loads(f'{{"scheme": "{name}"}}'), backend).name == name


def test_scheme_errors(backend) -> None:
    X = on(backend, np.ones((3, 2)))
    valid = "'standardize', 'per-set', 'unit', 'none'"
    with pytest.raises(ValueError, match=f"unknown preprocessing 'whiten'; choose one of {valid}"):
        Preprocessor("whiten")
    with pytest.raises(ValueError, match="unknown preprocessing 'whiten'"):
        Preprocessor.from_dict({"scheme": "whiten"})
    with pytest.raises(ValueError, match="'scheme'"):
        Preprocessor.from_dict({"mean": [0.0]})
    with pytest.raises(ValueError, match="'scheme'"):
        Preprocessor.from_dict(["standardize"])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="'standardize' needs 'mean'"):
        Preprocessor.from_dict({"scheme": "standardize", "scale": [1.0]})
    with pytest.raises(ValueError, match="'standardize' needs 'scale'"):
        Preprocessor.from_dict({"scheme": "standardize", "mean": [1.0]})
    with pytest.raises(ValueError, match="'standardize' needs 'mean'"):
        Preprocessor.from_dict({"scheme": "standardize", "mean": ["1"], "scale": [1.0]})
    with pytest.raises(ValueError, match="'standardize' needs 'scale'"):
        Preprocessor.from_dict({"scheme": "standardize", "mean": [1.0], "scale": []})
    with pytest.raises(ValueError, match="2 means but 1 scales"):
        Preprocessor.from_dict({"scheme": "standardize", "mean": [1.0, 2.0], "scale": [1.0]})

    unfitted = Preprocessor("standardize")
    with pytest.raises(RuntimeError, match=r"Preprocessor\('standardize'\) is not fitted: call fit"):
        unfitted.apply(X)
    with pytest.raises(RuntimeError, match="not fitted"):
        unfitted.to_dict()
    with pytest.raises(TypeError, match="real floating dtype"):
        Preprocessor("unit").apply(backend.asarray(np.zeros((2, 2), dtype=np.uint8)))


def test_standardizer_fit_transform_and_call_equal_fit_then_transform(backend):
    X = backend.asarray(np.random.default_rng(3).normal(size=(20, 4)))
    want = backend.to_numpy(Standardizer().fit(X).transform(X))
    np.testing.assert_array_equal(backend.to_numpy(Standardizer().fit_transform(X)), want)
    st = Standardizer().fit(X)
    np.testing.assert_array_equal(backend.to_numpy(st(X)), want)
