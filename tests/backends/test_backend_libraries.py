"""The library modules of arraynn.backends: registry, dispatch, hooks, laziness."""

from __future__ import annotations

import ast
import dataclasses
import importlib
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest
from conftest import assert_on_backend

import arraynn
import arraynn.backends
from arraynn.backends import (
    BACKEND_NAMES,
    Backend,
    Library,
    count_transfers,
    dtype_name,
    get_backend,
    is_out_of_memory,
    library_of,
    to_host,
)

PACKAGE = Path(arraynn.backends.__file__).parent
GENERIC_MODULES = {"__init__", "base", "hooks"}


def _library_module(name: str):
    return importlib.import_module(f"arraynn.backends.{name}")


# ---- the registry ----------------------------------------------------------------------


def test_one_module_per_registered_library():
    modules = {p.stem for p in PACKAGE.glob("*.py")} - GENERIC_MODULES
    assert modules == set(BACKEND_NAMES)
    for name in BACKEND_NAMES:
        library = _library_module(name).library
        assert isinstance(library, Library)
        assert library.name == name
        assert "pip install" in library.install_hint
        assert type(library).load is not Library.load
        assert type(library).owns is not Library.owns


def test_library_modules_import_only_the_generic_ones():
    for name in BACKEND_NAMES:
        tree = ast.parse((PACKAGE / f"{name}.py").read_text())
        relative = {node.module for node in ast.walk(tree)
                    if isinstance(node, ast.ImportFrom) and node.level == 1}
        assert relative <= {"base", "hooks"}, (name, relative)


# ---- no backend name compared with a string literal --------------------------------------


def _name_literals_in_branches(source: str) -> list[int]:
    """Lines that compare with, match on, or key a table by a backend-name literal."""
    names = set(BACKEND_NAMES)
    hits = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Compare):
            parts = [node.left, *node.comparators]
        elif isinstance(node, ast.MatchValue):
            parts = [node.value]
        elif isinstance(node, ast.Dict):
            parts = [k for k in node.keys if k is not None]
        else:
            continue
        if any(isinstance(sub, ast.Constant) and sub.value in names
               for part in parts for sub in ast.walk(part)):
            hits.append(node.lineno)
    return hits


def test_the_checker_finds_name_branches():
    assert _name_literals_in_branches('if be.name == "cupy":\n    pass\n') == [1]
    assert _name_literals_in_branches('ok = name in ("numpy", "jax")\n') == [1]
    assert _name_literals_in_branches('hint = {"jax": "x64"}.get(name)\n') == [1]
    assert _name_literals_in_branches('match name:\n    case "torch":\n        pass\n') == [2]
    assert _name_literals_in_branches('m = import_module("torch")\nname = "jax"\n') == []


@pytest.mark.parametrize("path", sorted(PACKAGE.glob("*.py")), ids=lambda p: p.name)
def test_no_module_branches_on_a_backend_name(path):
    assert _name_literals_in_branches(path.read_text()) == [], path.name


# ---- dispatch: library_of, to_host -----------------------------------------------------


@pytest.mark.parametrize("module, name", [
    ("numpy", "numpy"),
    ("array_api_compat.numpy", "numpy"),
    ("cupy", "cupy"),
    ("array_api_compat.cupy", "cupy"),
    ("torch", "torch"),
    ("array_api_compat.torch", "torch"),
    ("jax.numpy", "jax"),
    ("array_api_strict", "array_api_strict"),
])
def test_library_of_names_the_owner_of_a_namespace(module, name):
    xp = pytest.importorskip(module)
    assert library_of(xp) is _library_module(name).library


def test_library_of_an_unknown_namespace_is_none():
    assert library_of(types.ModuleType("not_an_array_library")) is None


def test_a_backend_and_its_namespace_share_the_library(backend):
    assert library_of(backend.xp) is backend.library
    assert backend.library.name == backend.name


def test_to_host_copies_and_counts(backend):
    x = backend.asarray(np.arange(6, dtype=np.float32).reshape(2, 3))
    with count_transfers() as c:
        host = to_host(x)
    assert isinstance(host, np.ndarray)
    np.testing.assert_array_equal(host, np.arange(6, dtype=np.float32).reshape(2, 3))
    assert c.host_to_device == 0
    if isinstance(x, np.ndarray):  # NumPy: already on the host, no copy
        assert host is x and (c.device_to_host, c.device_to_host_bytes) == (0, 0)
    else:
        assert (c.device_to_host, c.device_to_host_bytes) == (1, 24)


def test_another_librarys_array_goes_through_the_host(backend):
    torch = pytest.importorskip("torch")
    if backend.name == "torch":
        pytest.skip("the same library")
    t = torch.arange(4, dtype=torch.float32)
    with count_transfers() as c:
        x = backend.asarray(t)
    assert_on_backend(x, backend)
    np.testing.assert_array_equal(backend.to_numpy(x), [0, 1, 2, 3])
    assert (c.device_to_host, c.host_to_device) == (1, 1)


def test_dtype_name_reads_standard_names():
    assert dtype_name(np, np.float32) == "float32"
    assert dtype_name(np, np.dtype("uint8")) == "uint8"
    assert dtype_name(np, np.complex64) == str(np.complex64)


def test_out_of_memory_errors_are_recognised():
    class OutOfMemoryError(RuntimeError):
        pass

    class XlaRuntimeError(RuntimeError):
        pass

    assert is_out_of_memory(MemoryError())
    assert is_out_of_memory(OutOfMemoryError("CUDA out of memory"))
    assert is_out_of_memory(XlaRuntimeError("RESOURCE_EXHAUSTED: while allocating"))
    assert not is_out_of_memory(XlaRuntimeError("INVALID_ARGUMENT"))
    assert not is_out_of_memory(ValueError("out of memory"))


@pytest.mark.parametrize("name, text", [
    ("JaxRuntimeError", "RESOURCE_EXHAUSTED: Out of memory while trying to allocate 4.00GiB"),
    ("XlaRuntimeError", "RESOURCE_EXHAUSTED: failed to allocate"),
    ("CUDARuntimeError", "cudaErrorMemoryAllocation: out of memory"),
    ("CUBLASError", "CUBLAS_STATUS_ALLOC_FAILED"),
    ("CUDADriverError", "CUDA_ERROR_OUT_OF_MEMORY: out of memory"),
])
def test_out_of_memory_is_recognised_whatever_the_class_is_called(name, text):
    error = type(name, (RuntimeError,), {})
    assert is_out_of_memory(error(text))
    assert not is_out_of_memory(error("CUBLAS_STATUS_NOT_INITIALIZED"))


# ---- the record ------------------------------------------------------------------------


def test_backend_equality_is_by_name_device_and_dtype(backend):
    twin = Backend(name=backend.name, xp=backend.xp, device=backend.device, dtype=backend.dtype)
    assert twin == backend and hash(twin) == hash(backend)
    assert dataclasses.replace(backend, xp=None) == backend
    assert twin.library is backend.library
    assert twin.device_name == backend.device_name
    try:
        other = backend.with_dtype("float64")
    except arraynn.DtypeNotSupportedError:
        return
    assert other != backend and other.dtype_name == "float64"


def test_a_record_with_an_unknown_name_says_so():
    be = Backend(name="tensorflow", xp=np, device="cpu", dtype=np.float32)
    with pytest.raises(arraynn.UnknownBackendError, match="tensorflow"):
        be.describe()


# ---- the hooks the training code calls (through stand-in ops modules) -------------------


@pytest.fixture
def fake_ops(monkeypatch):
    def install(name: str, **attrs) -> None:
        module = types.ModuleType(name)
        module.__dict__.update(attrs)
        monkeypatch.setitem(sys.modules, name, module)

    install("arraynn.ops.generic", Ops=lambda xp: ("generic", xp))
    install("arraynn.ops.numpy", NumpyOps=lambda xp: ("numpy", xp))
    install("arraynn.ops.cupy", CupyOps=lambda xp: ("cupy", xp))
    install("arraynn.ops.torch", TorchOps=lambda xp: ("torch", xp))
    install("arraynn.ops.jax", train_step_for=lambda *args: ("jax step", args))


def test_ops_and_compiled_step_hooks(fake_ops):
    be = get_backend("numpy")
    assert be.ops == ("numpy", be.xp)
    assert library_of(be.xp).ops(be.xp) == ("numpy", be.xp)
    assert be.compiled_step("mlp", "optimizer", 0.1, 0.2) is None
    expected_ops = {"numpy": "numpy", "cupy": "cupy", "torch": "torch", "jax": "generic",
                    "array_api_strict": "generic"}
    for name in BACKEND_NAMES:
        library = _library_module(name).library
        assert library.ops("xp") == (expected_ops[name], "xp")
        step = library.compiled_step("mlp", "optimizer", 0.1, 0.2)
        if name == "jax":
            assert step == ("jax step", ("mlp", "optimizer", 0.1, 0.2, None))
        else:
            assert step is None


# ---- laziness --------------------------------------------------------------------------


def test_using_the_numpy_backend_imports_no_other_library():
    code = (
        "import sys, numpy as np\n"
        "from arraynn.backends import available_backends, backend_for, get_backend, library_of, to_host\n"
        "be = get_backend('numpy')\n"
        "x = be.asarray([[1, 2], [3, 4]])\n"
        "to_host(x * 2); to_host(np.float32(1)); library_of(np); backend_for(x)\n"
        "be.describe(); be.memory_in_use(); be.set_tf32(False); be.synchronize()\n"
        "bad = [m for m in ('cupy', 'torch', 'jax', 'array_api_strict') if m in sys.modules]\n"
        "print(bad); sys.exit(1 if bad else 0)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
