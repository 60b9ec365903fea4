"""Backends: which array library, on which device, in which dtype.

The package is laid out as one module per array library and the generic parts:

``base``
    The :class:`Backend` record and its generic logic, the errors, the transfer
    counter, :func:`to_host`, :func:`library_of`, :func:`is_out_of_memory`.
``hooks``
    :class:`Library`, the hooks every library fills in, with their defaults.
``numpy``, ``cupy``, ``torch``, ``jax``, ``array_api_strict``
    One per library: importing it (lazily), its devices, its host<->device copies,
    its probe, its device services and its training fast path.
this module
    The registry of library modules, :func:`get_backend`, :func:`backend_for` and
    :func:`available_backends`.

Adding a library is adding its module (a :class:`Library` subclass and ``library =``
an instance of it) and its name in :data:`BACKEND_NAMES`.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import warnings
from typing import Any

import numpy as np

from .base import (
    _FLOAT_DTYPES,
    _LIBRARIES,
    Backend,
    BackendError,
    BackendNotInstalledError,
    DeviceMemoryError,
    DeviceUnavailableError,
    DtypeNotSupportedError,
    TransferCounter,
    UnknownBackendError,
    _is_host,
    _library,
    _register,
    _unknown_backend,
    count_transfers,
    dtype_name,
    is_out_of_memory,
    library_of,
    to_host,
)
from .hooks import Library

__all__ = [
    "BACKEND_NAMES",
    "Backend",
    "BackendError",
    "BackendInfo",
    "BackendNotInstalledError",
    "DeviceUnavailableError",
    "DeviceMemoryError",
    "DtypeNotSupportedError",
    "UnknownBackendError",
    "TransferCounter",
    "available_backends",
    "backend_for",
    "count_transfers",
    "get_backend",
    "choose_auto",
    "Library",
    "dtype_name",
    "is_out_of_memory",
    "library_of",
    "to_host",
]

# --------------------------------------------------------------------------------------
# The registry: one module of this package per array library, named as its backend.
# --------------------------------------------------------------------------------------

#: The backend names accepted by :func:`get_backend` (plus ``"auto"``).
BACKEND_NAMES = ("numpy", "cupy", "torch", "jax", "array_api_strict")

for _module_name in BACKEND_NAMES:
    _library_object = importlib.import_module(f"{__name__}.{_module_name}").library
    if _library_object.name != _module_name:  # pragma: no cover - a mistake in a new module
        raise ImportError(f"{__name__}.{_module_name} defines library {_library_object.name!r}")
    _register(_library_object)
del _module_name, _library_object

# The library of host data (lists, NumPy arrays), and "auto"'s first choice: the GPU
# library, used when a CUDA device really works.
_HOST = "numpy"
_AUTO_GPU = "cupy"

# --------------------------------------------------------------------------------------
# Building a Backend
# --------------------------------------------------------------------------------------

_cache: dict[tuple[str, Any, Any], Backend] = {}


def get_backend(name: str | Backend = "numpy", device: Any = None, dtype: Any = "float32") -> Backend:
    """Select an array library, a device and a floating dtype.

    Parameters
    ----------
    name : {"auto", "numpy", "cupy", "torch", "jax", "array_api_strict"} or Backend
        ``"auto"`` takes CuPy when a CUDA device really works, else NumPy (with a
        ``RuntimeWarning`` saying why when CuPy is installed but cannot run). A
        ``Backend`` is returned as it is when ``device`` and ``dtype`` ask for nothing
        else, and otherwise gives its library with them.
    device : str or device object, optional
        ``"cpu"``, ``"cuda"``, ``"cuda:1"``; array-api-strict's ``"device1"`` or
        ``"no_float64"``; or the library's own device object. Default: the library's
        default device.
    dtype : {"float32", "float64"} or a dtype of the library
        The dtype of the weights and of every computation (default ``"float32"``).

    Returns
    -------
    Backend

    Raises
    ------
    UnknownBackendError
        ``name`` is not a backend arraynn knows (the message lists them).
    BackendNotInstalledError
        The library is missing; the message gives the ``pip install`` command.
    DeviceUnavailableError
        The library is installed but the device cannot run a tiny computation.
    DtypeNotSupportedError
        The device lacks the dtype (e.g. float64 on array-api-strict's ``no_float64``).
    """
    if isinstance(name, Backend):  # an existing Backend, possibly with another device or dtype
        if device is None and (dtype is None or dtype_name(name.xp, dtype) == name.dtype_name
                               or dtype == name.dtype_name):
            return name
        return get_backend(name.name, device if device is not None else name.device,
                           dtype if dtype is not None else name.dtype)
    if not isinstance(name, str):
        raise UnknownBackendError(f"backend must be a name (str), not {type(name).__name__}")
    name = name.strip().lower().replace("-", "_")
    if name == "auto":
        return choose_auto(device, dtype)[0]
    if name not in _LIBRARIES:
        raise _unknown_backend(name)
    dev_key = device if isinstance(device, (str, int, type(None))) else repr(device)
    dt_key = dtype if isinstance(dtype, (str, type(None))) else repr(dtype)
    key = (name, dev_key, dt_key)
    if key in _cache:
        return _cache[key]
    library = _library(name)
    xp, dev = library.load(device)
    library.probe(xp, dev)
    be = Backend(name=name, xp=xp, device=dev, dtype=library.resolve_dtype(xp, dev, dtype))
    _cache[key] = be
    return be


def choose_auto(device: Any = None, dtype: Any = "float32") -> tuple[Backend, str]:
    """What ``get_backend("auto", device, dtype)`` picks, and why, in words.

    CuPy when it runs on a CUDA device; else NumPy on the CPU. A ``device`` other than
    the CPU that CuPy cannot serve is an error (NumPy would silently run on the CPU).
    When CuPy is installed but cannot run, a ``RuntimeWarning`` says why as well.

    Raises
    ------
    DeviceUnavailableError
        ``device`` names a GPU and CuPy cannot use it.
    """
    try:
        be = get_backend(_AUTO_GPU, device, dtype)
        return be, f"{_AUTO_GPU} runs on {be.device_name}"
    except BackendError as exc:
        if device is not None and str(device).lower() != "cpu":
            raise DeviceUnavailableError(
                f"backend 'auto' cannot use device {str(device)!r}: {_AUTO_GPU} cannot run "
                f"there ({exc}), and {_HOST} runs on the CPU only. Fix {_AUTO_GPU}, name a "
                "backend that has that device (e.g. --backend torch --device cuda), or drop "
                "the device") from exc
        be = get_backend(_HOST, None, dtype)
        if importlib.util.find_spec(_AUTO_GPU) is not None:
            # installed but not working (no device, no driver, CUDA libraries missing):
            # say so rather than quietly run on the CPU
            warnings.warn(f"backend 'auto' uses {_HOST}: {exc}", RuntimeWarning, stacklevel=3)
            return be, f"{_AUTO_GPU} cannot run: {exc}"
        return be, f"{_AUTO_GPU} is not installed, so {_HOST} on the CPU"


def backend_for(x: Any, dtype: Any = None) -> Backend:
    """The backend of an existing array: its library, its device, and a float dtype.

    The dtype is ``x``'s own when it is floating, else ``dtype`` (default float32).
    """
    import array_api_compat as aac

    if _is_host(x):
        return get_backend(_HOST, None, dtype or _host_float_name(np.asarray(x)))
    xp = aac.array_namespace(x)
    library = library_of(xp)
    if library is None:
        raise UnknownBackendError(f"arrays of type {type(x).__name__} are not supported")
    if dtype is None:
        dn = dtype_name(xp, x.dtype)
        dtype = dn if dn in _FLOAT_DTYPES else "float32"
    return get_backend(library.name, library.device_argument(aac.device(x)), dtype)


def _host_float_name(a: np.ndarray) -> str:
    return "float64" if a.dtype == np.float64 else "float32"


# --------------------------------------------------------------------------------------
# What runs here
# --------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class BackendInfo:
    """One row of :func:`available_backends`."""

    name: str
    available: bool
    version: str | None
    devices: tuple[str, ...]
    float64: bool
    reason: str | None = None


def available_backends(include_unavailable: bool = False) -> list[BackendInfo]:
    """The backends that work on this machine, with their devices.

    Each backend is imported and every device is probed with a tiny computation.

    Parameters
    ----------
    include_unavailable : bool
        Also list backends that cannot run, with the reason in ``reason``.
    """
    rows = []
    for name, library in _LIBRARIES.items():
        try:
            get_backend(name)
            devices = []
            f64 = False
            for d in library.candidate_devices():
                try:
                    be = get_backend(name, d)
                except BackendError:
                    continue
                devices.append(be.device_name)
                try:
                    be.with_dtype("float64")
                    f64 = True
                except BackendError:
                    pass
            rows.append(BackendInfo(name, True, library.version(), tuple(devices), f64))
        except BackendError as exc:
            if include_unavailable:
                rows.append(BackendInfo(name, False, None, (), False, str(exc)))
    return rows
