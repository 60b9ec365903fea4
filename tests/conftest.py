"""Backend selection for the test suite.

``ARRAYNN_TEST_BACKENDS`` (set by the nox sessions) is a comma-separated list of
backends: ``numpy``, ``array_api_strict`` (its default device, ``device1`` and
``no_float64``), ``torch`` (CPU, plus CUDA when available), ``cupy``, ``jax``, or
``all``. A backend named there must pass a real probe (a tiny computation on its
device): if it cannot run, every test that uses it errors with the reason, so a CI
session cannot silently test nothing. Without the variable, the suite runs on NumPy
and on every other backend whose probe succeeds; the header says which were left out
and why.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

import arraynn
from arraynn.backends import BACKEND_NAMES, BackendError

# (backend name, device) pairs each backend name expands to.
_EXPANSION = {
    "numpy": [("numpy", None)],
    "array_api_strict": [
        ("array_api_strict", None),
        ("array_api_strict", "device1"),
        ("array_api_strict", "no_float64"),
    ],
    "torch": [("torch", "cpu"), ("torch", "cuda")],
    "cupy": [("cupy", None)],
    "jax": [("jax", None)],
}
_OPTIONAL_DEVICES = {("torch", "cuda")}  # tried when torch is requested, used if it works

# The real Fashion-MNIST files for the checks that need them: $ARRAYNN_DATA (the package's
# own variable), else a copy beside the checkout.
SHARED_DATA = Path(
    os.environ.get("ARRAYNN_DATA")
    or Path(__file__).resolve().parents[2] / "shared" / "data" / "fashion-mnist"
)


def _requested() -> tuple[list[str], bool]:
    raw = os.environ.get("ARRAYNN_TEST_BACKENDS", "").strip()
    if not raw:
        return list(BACKEND_NAMES), False
    names = [n.strip() for n in raw.split(",") if n.strip()]
    if names == ["all"]:
        return list(BACKEND_NAMES), True
    unknown = [n for n in names if n not in _EXPANSION]
    if unknown:
        raise pytest.UsageError(
            f"ARRAYNN_TEST_BACKENDS names unknown backends {unknown}; valid: {list(_EXPANSION)}"
        )
    return names, True


def _spec_id(name: str, device: str | None) -> str:
    return name if device is None else f"{name}:{device}"


def _collect() -> tuple[list[tuple[str, str | None]], dict[str, str]]:
    names, explicit = _requested()
    usable, problems = [], {}
    for name in names:
        for name_, device in _EXPANSION[name]:
            try:
                arraynn.get_backend(name_, device)
            except BackendError as exc:
                if (name_, device) in _OPTIONAL_DEVICES:
                    continue
                problems[_spec_id(name_, device)] = str(exc)
                if explicit:  # keep it: the tests using it will error with the reason
                    usable.append((name_, device))
                continue
            usable.append((name_, device))
    return usable, problems


BACKEND_SPECS, BACKEND_PROBLEMS = _collect()


def pytest_report_header(config):
    lines = ["arraynn backends: " + ", ".join(_spec_id(*s) for s in BACKEND_SPECS)]
    for spec, why in BACKEND_PROBLEMS.items():
        lines.append(f"  not usable: {spec}: {why}")
    return lines


def _make(spec: tuple[str, str | None], dtype: str) -> arraynn.Backend:
    name, device = spec
    if _spec_id(name, device) in BACKEND_PROBLEMS:
        pytest.fail(
            f"backend {_spec_id(name, device)} was requested but cannot run: "
            f"{BACKEND_PROBLEMS[_spec_id(name, device)]}",
            pytrace=False,
        )
    return arraynn.get_backend(name, device, dtype)


@pytest.fixture(params=BACKEND_SPECS, ids=[_spec_id(*s) for s in BACKEND_SPECS])
def backend(request) -> arraynn.Backend:
    """Every requested backend and device, in float32."""
    return _make(request.param, "float32")


@pytest.fixture(params=BACKEND_SPECS, ids=[_spec_id(*s) for s in BACKEND_SPECS])
def backend64(request) -> arraynn.Backend:
    """Every requested backend and device in float64; skipped where the device lacks it."""
    be = _make(request.param, "float32")
    try:
        return be.with_dtype("float64")
    except arraynn.DtypeNotSupportedError as exc:
        pytest.skip(f"no float64 here: {exc}")


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(12345)


@pytest.fixture
def shared_fashion_mnist() -> Path:
    """The real Fashion-MNIST directory; skips where it is absent."""
    if not (SHARED_DATA / "train-images-idx3-ubyte.gz").exists():
        pytest.skip("real Fashion-MNIST files not found (set ARRAYNN_DATA)")
    return SHARED_DATA


def assert_on_backend(x, be: arraynn.Backend) -> None:
    """``x`` is an array of ``be``'s library on ``be``'s device (not NumPy by accident)."""
    import array_api_compat as aac

    got = arraynn.backend_for(x)
    assert got.name == be.name, f"expected a {be.name} array, got {type(x)}"
    assert aac.device(x) == be.device, f"expected device {be.device}, got {aac.device(x)}"


@pytest.fixture(autouse=True)
def _cli_tests_run_in_a_temporary_directory(request, tmp_path, monkeypatch):
    """The CLI's tests run in a temporary directory, so a run without --out (its default
    runs/<preset>-<time>/) never lands in the checkout."""
    if "train" in Path(str(request.node.path)).parent.parts:
        monkeypatch.chdir(tmp_path)
