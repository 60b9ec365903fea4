"""The backend selector: names, devices, dtypes, errors, transfers."""

from __future__ import annotations

import builtins
import subprocess
import sys

import numpy as np
import pytest
from conftest import assert_on_backend

import arraynn
from arraynn.backends import BACKEND_NAMES


def test_numpy_is_default_float32():
    be = arraynn.get_backend()
    assert be.name == "numpy"
    assert be.dtype_name == "float32"
    assert be.device_name == "cpu"
    assert "numpy" in be.describe() and "float32" in be.describe()


def test_round_trip_keeps_values_and_device(backend, rng):
    host = rng.normal(size=(5, 3))
    x = backend.asarray(host)
    assert_on_backend(x, backend)
    assert x.dtype == backend.dtype
    np.testing.assert_allclose(backend.to_numpy(x), host.astype(np.float32), rtol=1e-6)


def test_integer_data_travels_as_integers(backend):
    x = backend.asarray(np.arange(6, dtype=np.uint8))
    assert x.dtype == backend.xp.uint8
    assert_on_backend(x, backend)


def test_backend_for_reads_library_device_and_dtype(backend):
    x = backend.asarray(np.ones((2, 2)))
    be = arraynn.backend_for(x)
    assert (be.name, be.device, be.dtype) == (backend.name, backend.device, backend.dtype)


def test_unknown_name_lists_the_valid_ones():
    with pytest.raises(arraynn.UnknownBackendError) as info:
        arraynn.get_backend("tensorflow")
    msg = str(info.value)
    assert "tensorflow" in msg
    for name in ("auto", *BACKEND_NAMES):
        assert name in msg
    assert isinstance(info.value, ValueError)


def test_missing_library_names_the_pip_command(monkeypatch):
    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name == "cupy" or name.startswith("cupy."):
            raise ImportError("No module named 'cupy'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)
    monkeypatch.delitem(sys.modules, "cupy", raising=False)
    with pytest.raises(arraynn.BackendNotInstalledError) as info:
        arraynn.get_backend("cupy")
    assert 'pip install "arraynn[cuda12]"' in str(info.value)


def test_missing_torch_names_the_cpu_build_too(monkeypatch):
    import arraynn.backends

    monkeypatch.setattr(arraynn.backends, "_cache", {})
    monkeypatch.setitem(sys.modules, "torch", None)  # import torch fails
    monkeypatch.setitem(sys.modules, "array_api_compat.torch", None)
    with pytest.raises(arraynn.BackendNotInstalledError) as info:
        arraynn.get_backend("torch")
    msg = str(info.value)
    assert "\n" not in msg
    cpu = msg.index("pip install torch --index-url https://download.pytorch.org/whl/cpu")
    assert 'pip install "arraynn[torch]"' in msg[cpu:]  # the CPU build first, then the extra
    assert "CUDA build" in msg[:cpu]


def test_auto_falls_back_to_numpy_without_a_gpu():
    try:
        arraynn.get_backend("cupy")
    except arraynn.BackendError:
        assert arraynn.get_backend("auto").name == "numpy"
    else:  # pragma: no cover - on a GPU machine
        assert arraynn.get_backend("auto").name == "cupy"


def test_numpy_has_no_gpu_device():
    with pytest.raises(arraynn.DeviceUnavailableError, match="cpu"):
        arraynn.get_backend("numpy", "cuda")


def test_strict_unknown_device_lists_devices():
    pytest.importorskip("array_api_strict")
    with pytest.raises(arraynn.DeviceUnavailableError, match="device1"):
        arraynn.get_backend("array_api_strict", "gpu7")


def test_float64_on_a_device_without_it_is_a_clear_error():
    pytest.importorskip("array_api_strict")
    with pytest.raises(arraynn.DtypeNotSupportedError) as info:
        arraynn.get_backend("array_api_strict", "no_float64", "float64")
    msg = str(info.value)
    assert "float64" in msg and "no_float64" in msg and "float32" in msg


def test_unsupported_dtype_name():
    with pytest.raises(arraynn.DtypeNotSupportedError, match="float16"):
        arraynn.get_backend("numpy", dtype="float16")


def test_torch_without_cuda_says_so():
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA device")
    with pytest.raises(arraynn.DeviceUnavailableError, match="cuda"):
        arraynn.get_backend("torch", "cuda")


@pytest.mark.parametrize("device", ["bogus", "cuda:x", 3.5])
def test_torch_unknown_device_names_the_valid_ones(device):
    pytest.importorskip("torch")
    with pytest.raises(arraynn.DeviceUnavailableError, match="'cpu', 'cuda', 'cuda:N' or 'mps'"):
        arraynn.get_backend("torch", device=device)


def test_available_backends_lists_working_ones_with_devices():
    rows = arraynn.available_backends()
    by_name = {r.name: r for r in rows}
    assert by_name["numpy"].available and by_name["numpy"].devices == ("cpu",)
    assert all(r.available for r in rows)
    everything = arraynn.available_backends(include_unavailable=True)
    assert {r.name for r in everything} == set(BACKEND_NAMES)
    for r in everything:
        assert r.available or r.reason


def test_count_transfers_counts_uploads_and_downloads(backend):
    with arraynn.count_transfers() as c:
        x = backend.asarray(np.zeros((4, 2), dtype=np.uint8))
        backend.to_numpy(x)
    assert c.host_to_device == 1 and c.host_to_device_bytes == 8
    assert c.device_to_host == (0 if backend.name == "numpy" else 1)


def test_import_loads_no_optional_array_library():
    code = (
        "import sys, arraynn\n"
        "bad = [m for m in ('cupy', 'torch', 'jax', 'array_api_strict', 'matplotlib', 'tqdm',"
        " 'sklearn') if m in sys.modules]\n"
        "print(bad); sys.exit(1 if bad else 0)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_zero_dimensional_host_arrays_stay_zero_dimensional(backend):
    x = backend.asarray(np.asarray(3.5))
    assert tuple(x.shape) == ()
    assert backend.to_float(x) == 3.5
    i = backend.asarray(np.asarray(7, dtype=np.int32))
    assert tuple(i.shape) == () and int(backend.to_numpy(i)) == 7
