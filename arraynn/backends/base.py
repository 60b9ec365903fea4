"""The backend selector: which array library, on which device, in which dtype.

A :class:`Backend` is a small frozen record ``(name, xp, device, dtype)``. ``xp`` is
an Array API namespace (through ``array-api-compat`` where the library needs it);
everything else in arraynn takes its arrays from ``xp`` and never imports a concrete
array library.

This module is the one place that knows the concrete libraries: it imports them
lazily, probes the device with a tiny computation, and turns every failure into a
:class:`BackendError` that says what is missing and how to fix it.

Examples
--------
>>> import arraynn
>>> be = arraynn.get_backend("numpy")
>>> be.name, be.dtype_name
('numpy', 'float32')
>>> x = be.asarray([[1, 2], [3, 4]])
>>> be.to_numpy(x * 2).tolist()
[[2.0, 4.0], [6.0, 8.0]]
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import threading
from collections.abc import Iterator
from typing import Any

import numpy as np

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
]

#: The backend names accepted by :func:`get_backend` (plus ``"auto"``).
BACKEND_NAMES = ("numpy", "cupy", "torch", "jax", "array_api_strict")

_INSTALL_HINTS = {
    "numpy": 'pip install numpy',
    "cupy": 'pip install "arraynn[cuda12]"   (or "arraynn[cuda13]" for CUDA 13 drivers)',
    "torch": 'pip install "arraynn[torch]"',
    "jax": 'pip install "arraynn[jax]"',
    "array_api_strict": 'pip install array-api-strict',
}

_FLOAT_DTYPES = ("float32", "float64")


class BackendError(RuntimeError):
    """A backend cannot run here; the message says what is missing and the fix."""


class UnknownBackendError(BackendError, ValueError):
    """The backend name is not one arraynn knows."""


class BackendNotInstalledError(BackendError, ImportError):
    """The array library behind the backend is not installed (or fails to import)."""


class DeviceUnavailableError(BackendError):
    """The library is installed but the requested device cannot run a computation."""


class DtypeNotSupportedError(BackendError, TypeError):
    """The requested floating dtype is not available on the device."""


class DeviceMemoryError(BackendError, MemoryError):
    """The device ran out of memory; the message names the batch size, the memory in use
    and the fix."""


# --------------------------------------------------------------------------------------
# Transfer accounting. Every host<->device copy that arraynn makes goes through
# Backend.asarray / Backend.to_numpy, which report here, so tests and benchmarks can
# prove that a training epoch copies only what it should.
# --------------------------------------------------------------------------------------


@dataclasses.dataclass
class TransferCounter:
    """Counts of host-to-device and device-to-host copies made through a Backend."""

    host_to_device: int = 0
    host_to_device_bytes: int = 0
    device_to_host: int = 0
    device_to_host_bytes: int = 0


_counters: list[TransferCounter] = []
_counters_lock = threading.Lock()


@contextlib.contextmanager
def count_transfers() -> Iterator[TransferCounter]:
    """Count the copies made through :class:`Backend` inside a ``with`` block.

    >>> import numpy as np, arraynn
    >>> be = arraynn.get_backend("numpy")
    >>> with arraynn.count_transfers() as c:
    ...     _ = be.asarray(np.zeros(4, dtype=np.uint8))
    >>> c.host_to_device, c.host_to_device_bytes
    (1, 4)
    """
    counter = TransferCounter()
    with _counters_lock:
        _counters.append(counter)
    try:
        yield counter
    finally:
        with _counters_lock:
            _counters.remove(counter)


def _record(direction: str, nbytes: int) -> None:
    if not _counters:
        return
    with _counters_lock:
        for c in _counters:
            setattr(c, direction, getattr(c, direction) + 1)
            setattr(c, direction + "_bytes", getattr(c, direction + "_bytes") + int(nbytes))


# --------------------------------------------------------------------------------------
# The Backend record
# --------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Backend:
    """An array library, a device of it, and the floating dtype to compute in.

    Build one with :func:`get_backend` (by name) or :func:`backend_for` (from an
    array). Attributes are read-only.

    Attributes
    ----------
    name : str
        One of :data:`BACKEND_NAMES`.
    xp : module
        The Array API namespace.
    device : object
        The library's device object; arrays are created on it.
    dtype : object
        The floating dtype of ``xp`` (``xp.float32`` by default).
    """

    name: str
    xp: Any = dataclasses.field(repr=False, compare=False)
    device: Any
    dtype: Any

    # ---- descriptions -----------------------------------------------------------
    @property
    def dtype_name(self) -> str:
        """``"float32"`` or ``"float64"``."""
        return _dtype_name(self.xp, self.dtype)

    @property
    def device_name(self) -> str:
        """A short printable name of the device (``"cpu"``, ``"cuda:0"``, ...)."""
        return _device_name(self.name, self.device)

    @property
    def version(self) -> str:
        """The version of the array library."""
        return _library_version(self.name)

    @property
    def index_dtype(self) -> Any:
        """The default integer dtype for indices on this device."""
        info = self.xp.__array_namespace_info__()
        return info.default_dtypes(device=self.device)["indexing"]

    def describe(self) -> str:
        """One line: library, version, device and dtype."""
        return f"{self.name} {self.version} on {self.device_name}, {self.dtype_name}"

    def with_dtype(self, dtype: Any) -> Backend:
        """The same library and device with another floating dtype (checked)."""
        return dataclasses.replace(self, dtype=_resolve_dtype(self.name, self.xp, self.device, dtype))

    # ---- moving data --------------------------------------------------------------
    def asarray(self, x: Any, dtype: Any = None) -> Any:
        """Put ``x`` on this backend's device.

        Host data (NumPy arrays, lists, scalars) is copied to the device once and the
        copy is counted (see :func:`count_transfers`). Arrays already in this
        namespace are moved to the device if needed. ``dtype`` may be a dtype of
        ``xp``, a name such as ``"uint8"``, or ``None`` to keep integer data as it is
        and make other data the backend's float dtype.
        """
        xp = self.xp
        if dtype is not None and isinstance(dtype, str):
            dtype = getattr(xp, dtype)
        if _is_host(x):
            host = np.asarray(x)
            if dtype is None and host.dtype.kind not in "iub":
                dtype = self.dtype
            if self.name == "numpy":
                out = host if dtype is None else host.astype(np.dtype(dtype), copy=False)
                _record("host_to_device", out.nbytes)
                return out
            if dtype is not None:
                # Convert on the host only when it does not grow the payload (float to
                # float, or integers to a narrower or equal integer type); uint8 images
                # travel as uint8 and become floats on the device.
                target = np.dtype(_dtype_name(xp, dtype))
                if host.dtype.kind == "f" or (
                        host.dtype.kind in "iu" and target.kind in "iu"
                        and target.itemsize <= host.dtype.itemsize):
                    host = host.astype(target, copy=False)
            host = np.ascontiguousarray(host)
            _record("host_to_device", host.nbytes)
            out = _to_device_from_host(self, host)
            if dtype is not None and out.dtype != dtype:
                out = xp.astype(out, dtype)
            return out
        # Already an array of some library.
        import array_api_compat

        if not _same_namespace(array_api_compat.array_namespace(x), xp):
            # Another library: go through the host (counted both ways).
            return self.asarray(_array_to_numpy(x), dtype=dtype)
        if array_api_compat.device(x) != self.device:
            x = array_api_compat.to_device(x, self.device)
        if dtype is not None and x.dtype != dtype:
            x = xp.astype(x, dtype)
        return x

    def to_numpy(self, x: Any) -> np.ndarray:
        """Copy an array of this backend to a host NumPy array (counted)."""
        return _array_to_numpy(x)

    def to_float(self, x: Any) -> float:
        """A 0-d array (or Python number) as a Python float (one device-to-host copy)."""
        if isinstance(x, (int, float)):
            return float(x)
        return float(self.to_numpy(x))

    def memory_in_use(self) -> int | None:
        """Bytes of device memory held by the library's allocator (``None`` if unknown)."""
        try:
            if self.name == "cupy":
                import cupy

                with self.device:
                    return int(cupy.get_default_memory_pool().total_bytes())
            if self.name == "torch" and self.device.type == "cuda":
                import torch

                return int(torch.cuda.memory_reserved(self.device))
            if self.name == "jax":
                stats = self.device.memory_stats() or {}
                return int(stats["bytes_in_use"]) if "bytes_in_use" in stats else None
        except Exception:  # pragma: no cover - informational only
            return None
        return None

    def set_tf32(self, enabled: bool) -> bool:
        """Allow (or forbid) TF32 tensor cores for float32 matmuls on this library.

        TF32 rounds matmul inputs to 10 mantissa bits: much faster on NVIDIA Ampere and
        newer, slightly less exact. It is off by default and changes a process-wide
        setting of the library. Returns whether TF32 is now in effect (always ``False``
        on CPUs and for float64).
        """
        enabled = bool(enabled)
        if self.name == "cupy":
            import cupy
            from cupy._core import _routines_linalg as linalg

            mode = linalg.COMPUTE_TYPE_TF32 if enabled else linalg.COMPUTE_TYPE_DEFAULT
            linalg.set_compute_type(cupy.float32, mode)
        elif self.name == "torch":
            import torch

            torch.backends.cuda.matmul.allow_tf32 = enabled
            torch.backends.cudnn.allow_tf32 = enabled
            if self.device.type != "cuda":
                return False
        elif self.name == "jax":
            import jax

            jax.config.update("jax_default_matmul_precision", "tensorfloat32" if enabled else "float32")
            if getattr(self.device, "platform", "cpu") != "gpu":
                return False
        else:
            return False
        return enabled and self.dtype_name == "float32"

    def synchronize(self) -> None:
        """Wait for queued device work to finish (for timing)."""
        if self.name == "cupy":
            import cupy

            cupy.cuda.Device().synchronize()
        elif self.name == "torch" and getattr(self.device, "type", "cpu") == "cuda":
            import torch

            torch.cuda.synchronize(self.device)
        elif self.name == "jax":
            import jax

            jax.effects_barrier()


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` is an out-of-memory error of any supported library."""
    if isinstance(exc, MemoryError):
        return True
    name = type(exc).__name__
    text = str(exc)
    return name in ("OutOfMemoryError", "XlaRuntimeError") and (
        name == "OutOfMemoryError" or "RESOURCE_EXHAUSTED" in text or "out of memory" in text.lower())


def _is_host(x: Any) -> bool:
    return isinstance(x, (np.ndarray, np.generic, list, tuple, int, float, bool))


def _same_namespace(a: Any, b: Any) -> bool:
    return a is b or getattr(a, "__name__", None) == getattr(b, "__name__", None)


def _dtype_name(xp: Any, dtype: Any) -> str:
    for name in ("float32", "float64", "float16", "int8", "int16", "int32", "int64",
                 "uint8", "uint16", "uint32", "uint64", "bool"):
        if getattr(xp, name, None) is not None and dtype == getattr(xp, name):
            return name
    return str(dtype)


def _library_version(name: str) -> str:
    module = {"array_api_strict": "array_api_strict"}.get(name, name)
    try:
        return importlib.import_module(module).__version__
    except Exception:  # pragma: no cover - version strings are informational
        return "unknown"


def _device_name(name: str, device: Any) -> str:
    if name == "numpy":
        return "cpu"
    if name == "cupy":
        return f"cuda:{getattr(device, 'id', device)}"
    if name == "torch":
        return str(device)
    if name == "jax":
        platform = getattr(device, "platform", "?")
        return f"{platform}:{getattr(device, 'id', 0)}"
    if name == "array_api_strict":
        return getattr(device, "_device", str(device))
    return str(device)


def _array_to_numpy(x: Any) -> np.ndarray:
    """Any supported library's array -> a NumPy array on the host (counted)."""
    if isinstance(x, np.ndarray):
        return x
    import array_api_compat as aac

    if aac.is_cupy_array(x):
        out = x.get()
    elif aac.is_torch_array(x):
        out = x.detach().cpu().numpy()
    elif aac.is_jax_array(x):
        out = np.asarray(x)
    elif aac.is_array_api_strict_namespace(aac.array_namespace(x)):
        import array_api_strict

        out = np.asarray(x.to_device(array_api_strict.Device("CPU_DEVICE")))
    else:
        out = np.asarray(x)
    _record("device_to_host", out.nbytes)
    return out


def _to_device_from_host(be: Backend, host: np.ndarray) -> Any:
    if be.name == "cupy":
        import cupy

        with be.device:
            return cupy.asarray(host)
    if be.name == "torch":
        import torch

        t = torch.from_numpy(host)
        return t.to(be.device) if be.device.type != "cpu" else t.clone()
    if be.name == "jax":
        import jax

        return jax.device_put(host, be.device)
    return be.xp.asarray(host, device=be.device, copy=True)


# --------------------------------------------------------------------------------------
# Building a Backend
# --------------------------------------------------------------------------------------


def _import(module: str, backend: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise BackendNotInstalledError(
            f"backend {backend!r} needs {module.split('.')[0]!r}, which is not installed "
            f"({exc}). Install it with: {_INSTALL_HINTS[backend]}"
        ) from exc
    except Exception as exc:  # a broken install (e.g. missing CUDA libraries)
        raise BackendNotInstalledError(
            f"backend {backend!r}: importing {module!r} failed ({type(exc).__name__}: {exc}). "
            f"Reinstall it with: {_INSTALL_HINTS[backend]}"
        ) from exc


def _namespace_and_device(name: str, device: Any) -> tuple[Any, Any]:
    """Import the library, resolve the device, and nothing else."""
    if name == "numpy":
        np_mod = _import("array_api_compat.numpy", "numpy")
        if device not in (None, "cpu"):
            raise DeviceUnavailableError(f"backend 'numpy' runs on 'cpu' only, not {device!r}")
        return np_mod, "cpu"

    if name == "array_api_strict":
        xp = _import("array_api_strict", "array_api_strict")
        info = xp.__array_namespace_info__()
        if device is None:
            return xp, info.default_device()
        if isinstance(device, str):
            names = {getattr(d, "_device", str(d)): d for d in info.devices()}
            key = "CPU_DEVICE" if device.lower() == "cpu" else device
            if key not in names:
                raise DeviceUnavailableError(
                    f"array_api_strict has no device {device!r}; its devices are "
                    f"{sorted(names)} (use 'cpu' for CPU_DEVICE)"
                )
            return xp, names[key]
        return xp, device

    if name == "torch":
        torch = _import("torch", "torch")
        xp = _import("array_api_compat.torch", "torch")
        dev = torch.device(device if device is not None else "cpu")
        if dev.type == "cuda":
            if not torch.cuda.is_available():
                raise DeviceUnavailableError(
                    f"torch {torch.__version__} cannot use {str(dev)!r}: "
                    + ("this torch build has no CUDA support; install a CUDA build of torch"
                       if torch.version.cuda is None
                       else "no CUDA device is visible (check the driver and CUDA_VISIBLE_DEVICES)")
                )
            if dev.index is None:
                dev = torch.device("cuda", torch.cuda.current_device())
        elif dev.type == "mps":
            if not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
                raise DeviceUnavailableError("torch cannot use 'mps': no Apple GPU is available")
        return xp, dev

    if name == "cupy":
        cupy = _import("cupy", "cupy")
        xp = _import("array_api_compat.cupy", "cupy")
        try:
            count = cupy.cuda.runtime.getDeviceCount()
        except Exception as exc:
            raise DeviceUnavailableError(
                f"CuPy {cupy.__version__} is installed but no CUDA device is usable "
                f"({type(exc).__name__}: {exc}). Check the NVIDIA driver and that the "
                f"cupy-cuda package matches it, or use --backend numpy"
            ) from exc
        if count == 0:
            raise DeviceUnavailableError(
                f"CuPy {cupy.__version__} is installed but no CUDA device is visible; "
                "use --backend numpy (or check CUDA_VISIBLE_DEVICES)"
            )
        if device is None or device in ("cuda", "gpu"):
            idx = 0
        elif isinstance(device, int):
            idx = device
        elif isinstance(device, str) and device.split(":")[0] in ("cuda", "gpu"):
            idx = int(device.split(":")[1]) if ":" in device else 0
        elif hasattr(device, "id"):
            idx = device.id
        else:
            raise DeviceUnavailableError(f"cupy: cannot read the device {device!r}; use 'cuda:N'")
        if not 0 <= idx < count:
            raise DeviceUnavailableError(f"cupy: no CUDA device {idx}; this machine has {count}")
        return xp, cupy.cuda.Device(idx)

    if name == "jax":
        jax = _import("jax", "jax")
        xp = _import("jax.numpy", "jax")
        if device is None:
            return xp, jax.devices()[0]
        if not isinstance(device, str):
            return xp, device
        platform, _, idx = device.partition(":")
        platform = {"cuda": "gpu"}.get(platform, platform)
        try:
            devs = jax.devices(platform)
        except RuntimeError as exc:
            raise DeviceUnavailableError(f"jax has no {platform!r} devices ({exc})") from exc
        i = int(idx) if idx else 0
        if not 0 <= i < len(devs):
            raise DeviceUnavailableError(f"jax: no {platform} device {i}; there are {len(devs)}")
        return xp, devs[i]

    raise UnknownBackendError(
        f"unknown backend {name!r}; choose one of: auto, {', '.join(BACKEND_NAMES)}"
    )


def _probe(name: str, xp: Any, device: Any) -> None:
    """A tiny computation on the device: proves it really runs."""
    try:
        a = xp.arange(4, device=device)
        b = xp.sum(a * a)
        if name == "cupy":
            value = int(b.get())
        elif name == "torch":
            value = int(b.cpu().item())
        else:
            value = int(_array_to_numpy(b)) if name == "array_api_strict" else int(b)
    except BackendError:
        raise
    except Exception as exc:
        raise DeviceUnavailableError(
            f"backend {name!r} is installed but a computation on {_device_name(name, device)} "
            f"failed ({type(exc).__name__}: {exc})"
        ) from exc
    if value != 14:  # pragma: no cover - would mean a broken library
        raise DeviceUnavailableError(f"backend {name!r} computed a wrong result on {device!r}")


def _resolve_dtype(name: str, xp: Any, device: Any, dtype: Any) -> Any:
    if dtype is None:
        dtype = "float32"
    key = dtype if isinstance(dtype, str) else _dtype_name(xp, dtype)
    if key not in _FLOAT_DTYPES:
        raise DtypeNotSupportedError(
            f"dtype {dtype!r} is not supported: arraynn computes in 'float32' (default) or 'float64'"
        )
    supported = xp.__array_namespace_info__().dtypes(device=device, kind="real floating")
    if key not in supported:
        hint = "use dtype='float32'"
        if name == "jax":
            hint = ("enable 64-bit floats with the environment variable JAX_ENABLE_X64=1 "
                    "(or jax.config.update('jax_enable_x64', True)) before using JAX, or "
                    "use dtype='float32'")
        raise DtypeNotSupportedError(
            f"{key} is not supported by backend {name!r} on device "
            f"{_device_name(name, device)!r} (it supports {sorted(supported)}); {hint}"
        )
    return supported[key]


_cache: dict[tuple, Backend] = {}


def get_backend(name: str = "numpy", device: Any = None, dtype: Any = "float32") -> Backend:
    """Select an array library, a device and a floating dtype.

    Parameters
    ----------
    name : {"auto", "numpy", "cupy", "torch", "jax", "array_api_strict"}
        ``"auto"`` takes CuPy when a CUDA device really works, else NumPy.
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
        if device is None and (dtype is None or _dtype_name(name.xp, dtype) == name.dtype_name
                               or dtype == name.dtype_name):
            return name
        return get_backend(name.name, device if device is not None else name.device,
                           dtype if dtype is not None else name.dtype)
    if not isinstance(name, str):
        raise UnknownBackendError(f"backend must be a name (str), not {type(name).__name__}")
    name = name.strip().lower().replace("-", "_")
    if name == "auto":
        try:
            return get_backend("cupy", device, dtype)
        except BackendError:
            return get_backend("numpy", None, dtype)
    if name not in BACKEND_NAMES:
        raise UnknownBackendError(
            f"unknown backend {name!r}; choose one of: auto, {', '.join(BACKEND_NAMES)}"
        )
    dev_key = device if isinstance(device, (str, int, type(None))) else repr(device)
    dt_key = dtype if isinstance(dtype, (str, type(None))) else repr(dtype)
    key = (name, dev_key, dt_key)
    if key in _cache:
        return _cache[key]
    xp, dev = _namespace_and_device(name, device)
    _probe(name, xp, dev)
    be = Backend(name=name, xp=xp, device=dev, dtype=_resolve_dtype(name, xp, dev, dtype))
    _cache[key] = be
    return be


def backend_for(x: Any, dtype: Any = None) -> Backend:
    """The backend of an existing array: its library, its device, and a float dtype.

    The dtype is ``x``'s own when it is floating, else ``dtype`` (default float32).
    """
    import array_api_compat as aac

    if _is_host(x):
        return get_backend("numpy", None, dtype or _host_float_name(np.asarray(x)))
    xp = aac.array_namespace(x)
    if aac.is_numpy_namespace(xp):
        name = "numpy"
    elif aac.is_cupy_namespace(xp):
        name = "cupy"
    elif aac.is_torch_namespace(xp):
        name = "torch"
    elif aac.is_jax_namespace(xp):
        name = "jax"
    elif aac.is_array_api_strict_namespace(xp):
        name = "array_api_strict"
    else:
        raise UnknownBackendError(f"arrays of type {type(x).__name__} are not supported")
    dev = aac.device(x)
    if dtype is None:
        dn = _dtype_name(xp, x.dtype)
        dtype = dn if dn in _FLOAT_DTYPES else "float32"
    if name in ("numpy", "array_api_strict") or name == "jax":
        device = dev if name != "numpy" else None
        if name == "array_api_strict":
            device = getattr(dev, "_device", None)
            device = "cpu" if device == "CPU_DEVICE" else device
        return get_backend(name, device, dtype)
    return get_backend(name, dev, dtype)


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


def _candidate_devices(name: str) -> list[Any]:
    if name == "numpy":
        return [None]
    if name == "array_api_strict":
        import array_api_strict

        return [getattr(d, "_device", str(d)) for d in
                array_api_strict.__array_namespace_info__().devices()]
    if name == "torch":
        import torch

        devs: list[Any] = ["cpu"]
        if torch.cuda.is_available():
            devs += [f"cuda:{i}" for i in range(torch.cuda.device_count())]
        if hasattr(torch.backends, "mps") and torch.backends.mps.is_available():
            devs.append("mps")
        return devs
    if name == "cupy":
        import cupy

        return [f"cuda:{i}" for i in range(cupy.cuda.runtime.getDeviceCount())]
    if name == "jax":
        import jax

        return [f"{d.platform}:{d.id}" for d in jax.devices()]
    return []


def available_backends(include_unavailable: bool = False) -> list[BackendInfo]:
    """The backends that work on this machine, with their devices.

    Each backend is imported and every device is probed with a tiny computation.

    Parameters
    ----------
    include_unavailable : bool
        Also list backends that cannot run, with the reason in ``reason``.
    """
    rows = []
    for name in BACKEND_NAMES:
        try:
            get_backend(name)
            devices = []
            f64 = False
            for d in _candidate_devices(name):
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
            rows.append(BackendInfo(name, True, _library_version(name), tuple(devices), f64))
        except BackendError as exc:
            if include_unavailable:
                rows.append(BackendInfo(name, False, None, (), False, str(exc)))
    return rows
