"""The backend record, the errors, the transfer counter, and the dispatch to libraries.

A :class:`Backend` is a small frozen record ``(name, xp, device, dtype)``. ``xp`` is
an Array API namespace (through ``array-api-compat`` where the library needs it);
everything else in arraynn takes its arrays from ``xp`` and never imports a concrete
array library.

Design: one adapter object per array library. Everything that differs between the
libraries is a method of :class:`arraynn.backends.hooks.Library` (the hooks every
library fills in, with the defaults that suit a library following the standard to the
letter). Each library module of this package (``numpy.py``, ``cupy.py``, ``torch.py``,
``jax.py``, ``array_api_strict.py``) defines a subclass that overrides what its
library does differently, and one instance of it named ``library``. The registry in
:mod:`arraynn.backends` lists those modules and hands each instance to
:func:`_register`. A :class:`Backend` stays one plain record, so its constructor,
equality, hashing and ``dataclasses.replace`` are those of the record alone; it
reaches its library through :attr:`Backend.library`, a lookup by name in the
registered table, and delegates every library-specific method to it.
:func:`library_of` finds the library that owns a namespace, :func:`to_host` the one
that owns an array. Adapters rather than ``Backend`` subclasses keep the record free
of per-library types and let code that has only a namespace (``library_of(xp).ops(xp)``)
reach the same hooks. Nothing in this package compares a backend's name with a
string: adding a library is adding one module and its name in the registry.

A library module imports its array library lazily, inside the methods: importing
arraynn imports none of CuPy, PyTorch, JAX or array-api-strict. The library's
methods turn every failure into a :class:`BackendError` that says what is missing
and how to fix it.

Examples
--------
>>> import arraynn
>>> be = arraynn.get_backend("numpy")
>>> be.name, be.dtype_name
('numpy', 'float32')
>>> x = be.asarray([[1.0, 2.0], [3.0, 4.0]])
>>> be.to_numpy(x * 2).tolist()
[[2.0, 4.0], [6.0, 8.0]]
"""

from __future__ import annotations

import contextlib
import dataclasses
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import array_api_compat
import numpy as np

__all__ = [
    "Backend",
    "BackendError",
    "BackendNotInstalledError",
    "DeviceMemoryError",
    "DeviceUnavailableError",
    "DtypeNotSupportedError",
    "TransferCounter",
    "UnknownBackendError",
    "count_transfers",
    "dtype_name",
    "is_out_of_memory",
    "library_of",
    "to_host",
]

if TYPE_CHECKING:
    from .hooks import Library

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
# Backend.asarray / Backend.to_numpy (that is, to_host), which report here, so tests
# and benchmarks can prove that a training epoch copies only what it should.
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
# Small generic helpers
# --------------------------------------------------------------------------------------


#: What the libraries' out-of-memory errors say, whatever their class: XLA's
#: ``RESOURCE_EXHAUSTED`` (jaxlib's ``XlaRuntimeError`` or, newer, ``JaxRuntimeError``),
#: CUDA's ``out of memory`` (CuPy's ``CUDARuntimeError``, torch), and the CUDA libraries'
#: ``..._STATUS_ALLOC_FAILED`` (CuPy's ``CUBLASError``, cuSOLVER, cuSPARSE).
_OUT_OF_MEMORY_TEXTS = ("resource_exhausted", "out of memory", "_status_alloc_failed",
                        "cudaerrormemoryallocation", "cuda_error_out_of_memory")


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` is an out-of-memory error of any supported library.

    Recognised by class (``MemoryError``, torch's and CuPy's ``OutOfMemoryError``) or, for
    any ``RuntimeError`` (every library's runtime errors are), by what it says, whatever
    the class is called (see ``_OUT_OF_MEMORY_TEXTS``).
    """
    if isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError":
        return True
    if not isinstance(exc, RuntimeError):
        return False
    text = str(exc).lower()
    return any(t in text for t in _OUT_OF_MEMORY_TEXTS)


def dtype_name(xp: Any, dtype: Any) -> str:
    """The standard name of a dtype of namespace ``xp`` (``"float32"``, ``"uint8"``, ...).

    Dtypes outside the Array API's real and boolean ones are returned as ``str(dtype)``.
    """
    for name in ("float32", "float64", "float16", "int8", "int16", "int32", "int64",
                 "uint8", "uint16", "uint32", "uint64", "bool"):
        if getattr(xp, name, None) is not None and dtype == getattr(xp, name):
            return name
    return str(dtype)


def _is_host(x: Any) -> bool:
    return isinstance(x, (np.ndarray, np.generic, list, tuple, int, float, bool))


def _same_namespace(a: Any, b: Any) -> bool:
    return a is b or getattr(a, "__name__", None) == getattr(b, "__name__", None)


# --------------------------------------------------------------------------------------
# The table of registered libraries (instances of hooks.Library, filled by the
# registry in arraynn.backends), and the functions that dispatch on it.
# --------------------------------------------------------------------------------------

_LIBRARIES: dict[str, Library] = {}


def _register(library: Library) -> None:
    """Add a library to the table; called by the registry in :mod:`arraynn.backends`."""
    _LIBRARIES[library.name] = library


def _unknown_backend(name: Any) -> UnknownBackendError:
    return UnknownBackendError(
        f"unknown backend {name!r}; choose one of: auto, {', '.join(_LIBRARIES)}"
    )


def _library(name: str) -> Library:
    """The registered library called ``name``; :class:`UnknownBackendError` if none."""
    try:
        return _LIBRARIES[name]
    except KeyError:
        raise _unknown_backend(name) from None


def library_of(xp: Any) -> Library | None:
    """The registered :class:`Library` that owns Array API namespace ``xp``, else ``None``.

    >>> import numpy as np
    >>> library_of(np).name
    'numpy'
    """
    for library in _LIBRARIES.values():
        if library.owns(xp):
            return library
    return None


def to_host(x: Any) -> np.ndarray:
    """Any supported library's array -> a NumPy array on the host (counted).

    A NumPy array is returned as it is, uncounted; anything else is one device-to-host
    copy for :func:`count_transfers`.
    """
    if isinstance(x, np.ndarray):
        return x
    for library in _LIBRARIES.values():
        if library.is_array(x):
            out = library.to_host(x)
            break
    else:
        out = np.asarray(x)
    _record("device_to_host", out.nbytes)
    return out


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

    def __reduce__(self) -> tuple[Any, tuple[str, str, str]]:
        """Pickled as its name, device and dtype; unpickling selects (and probes) it again
        with :func:`arraynn.get_backend`, so the namespace module is never pickled."""
        return _rebuild_backend, (self.name, self.device_name, self.dtype_name)

    # ---- the library behind it --------------------------------------------------
    @property
    def library(self) -> Library:
        """The :class:`Library` that does this backend's library-specific work."""
        return _library(self.name)

    @property
    def ops(self) -> Any:
        """The object that does a training step's elementwise work in ``xp``."""
        return self.library.ops(self.xp)

    def compiled_step(self, mlp: Any, optimizer: Any, l1: float, l2: float,
                      seed: int | None = None) -> Any:
        """The training step to run instead of the eager one, or ``None`` (the default);
        with ``seed``, one that draws the network's dropout masks from it."""
        return self.library.compiled_step(mlp, optimizer, l1, l2, seed)

    # ---- descriptions -----------------------------------------------------------
    @property
    def dtype_name(self) -> str:
        """``"float32"`` or ``"float64"``."""
        return dtype_name(self.xp, self.dtype)

    @property
    def device_name(self) -> str:
        """A short printable name of the device (``"cpu"``, ``"cuda:0"``, ...)."""
        return self.library.device_name(self.device)

    @property
    def version(self) -> str:
        """The version of the array library."""
        return self.library.version()

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
        return dataclasses.replace(self, dtype=self.library.resolve_dtype(self.xp, self.device, dtype))

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
            library = self.library
            host = library.stage_host(xp, host, dtype)
            _record("host_to_device", host.nbytes)
            out = library.from_host(xp, self.device, host)
            if dtype is not None and out.dtype != dtype:
                out = xp.astype(out, dtype)
            return out
        # Already an array of some library.
        if not _same_namespace(array_api_compat.array_namespace(x), xp):
            # Another library: go through the host (counted both ways).
            return self.asarray(to_host(x), dtype=dtype)
        if array_api_compat.device(x) != self.device:
            x = array_api_compat.to_device(x, self.device)
        if dtype is not None and x.dtype != dtype:
            x = xp.astype(x, dtype)
        return x

    def to_numpy(self, x: Any) -> np.ndarray:
        """Copy an array of this backend to a host NumPy array (counted)."""
        return to_host(x)

    def to_float(self, x: Any) -> float:
        """A 0-d array (or Python number) as a Python float (one device-to-host copy)."""
        if isinstance(x, (int, float)):
            return float(x)
        return float(self.to_numpy(x))

    def memory_in_use(self) -> int | None:
        """Bytes of device memory held by the library's allocator (``None`` if unknown)."""
        try:
            return self.library.memory_in_use(self.device)
        except Exception:  # pragma: no cover - informational only
            return None

    def set_tf32(self, enabled: bool) -> bool:
        """Allow (or forbid) TF32 tensor cores for float32 matmuls on this library.

        TF32 rounds matmul inputs to 10 mantissa bits: much faster on NVIDIA Ampere and
        newer, slightly less exact. It is off by default and changes a process-wide
        setting of the library. Returns whether TF32 is now in effect (always ``False``
        on CPUs and for float64).
        """
        enabled = bool(enabled)
        return self.library.set_tf32(self.device, enabled) and enabled and self.dtype_name == "float32"

    def synchronize(self) -> None:
        """Wait for queued work on this backend's device to finish (for timing)."""
        self.library.synchronize(self.device)

    def device_context(self) -> contextlib.AbstractContextManager[Any]:
        """``with backend.device_context():`` makes this backend's device the calling
        thread's current device, where libraries put what is made without a device
        (CuPy's kernel outputs, ``empty_like``). Fit, predict and the loader enter it."""
        return self.library.device_context(self.device)

    def background_context(self) -> contextlib.AbstractContextManager[Any]:
        """The context of a background thread's uploads to this device (the loader's
        prefetch thread): the device entered, and the library's own copy machinery."""
        return self.library.background_context(self.device)


def _rebuild_backend(name: str, device: str, dtype: str) -> Backend:
    """The backend a pickled :class:`Backend` names (see :meth:`Backend.__reduce__`)."""
    from . import get_backend

    return get_backend(name, device, dtype)
