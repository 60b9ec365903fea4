"""The hooks every array library fills in: :class:`Library`.

Each library module of :mod:`arraynn.backends` subclasses :class:`Library`, sets
:attr:`Library.name` and :attr:`Library.install_hint`, implements :meth:`Library.load`
and :meth:`Library.owns`, overrides whichever other hooks its library does
differently, and ends with ``library = TheSubclass()``. The defaults suit a library
that follows the Array API standard to the letter (array-api-strict uses nearly all of
them). A library module imports its array library inside the methods, never at import
time.

The hooks are called by :class:`arraynn.backends.Backend` (which passes its ``xp`` and
``device``), by :func:`arraynn.backends.get_backend` and its neighbours, and, for
:meth:`Library.ops`, by :mod:`arraynn.ops` through :func:`arraynn.backends.library_of`.
"""

from __future__ import annotations

import contextlib
import importlib
from typing import Any

import array_api_compat
import numpy as np

from .base import (
    _FLOAT_DTYPES,
    BackendError,
    BackendNotInstalledError,
    DeviceUnavailableError,
    DtypeNotSupportedError,
    dtype_name,
)

__all__ = ["Library"]


class Library:
    """One array library: what arraynn needs to know about it, and nothing else.

    Instances are stateless; each library module holds one, ``library``.

    Attributes
    ----------
    name : str
        The backend name (the module's name in the registry, and the importable name of
        the library, whose ``__version__`` :meth:`version` reads).
    install_hint : str
        The command that installs the library, quoted in :class:`BackendNotInstalledError`.
    float64_hint : str
        The fix quoted when the device lacks float64.
    """

    name: str = ""
    install_hint: str = ""
    float64_hint: str = "use dtype='float32'"

    def __repr__(self) -> str:
        return f"<arraynn library {self.name!r}>"

    # ---- importing and devices ----------------------------------------------------
    def import_module(self, module: str) -> Any:
        """Import ``module`` for this backend; a :class:`BackendNotInstalledError` if it fails."""
        try:
            return importlib.import_module(module)
        except ImportError as exc:
            raise BackendNotInstalledError(
                f"backend {self.name!r} needs {module.split('.')[0]!r}, which is not installed "
                f"({exc}). Install it with: {self.install_hint}"
            ) from exc
        except Exception as exc:  # a broken install (e.g. missing CUDA libraries)
            raise BackendNotInstalledError(
                f"backend {self.name!r}: importing {module!r} failed ({type(exc).__name__}: {exc}). "
                f"Reinstall it with: {self.install_hint}"
            ) from exc

    def load(self, device: Any) -> tuple[Any, Any]:
        """Import the library and resolve ``device``, nothing else.

        Parameters
        ----------
        device : str, int, device object or None
            What the user passed to :func:`get_backend` (``None``: the default device).

        Returns
        -------
        (xp, device)
            The Array API namespace and the library's device object.

        Raises
        ------
        BackendNotInstalledError, DeviceUnavailableError
        """
        raise NotImplementedError

    def owns(self, xp: Any) -> bool:
        """Whether ``xp`` is this library's namespace (its own or array-api-compat's)."""
        raise NotImplementedError

    def is_array(self, x: Any) -> bool:
        """Whether ``x`` is an array of this library (cheap; imports nothing)."""
        try:
            return self.owns(array_api_compat.array_namespace(x))
        except TypeError:
            return False

    def device_name(self, device: Any) -> str:
        """A short printable name of ``device`` (``"cpu"``, ``"cuda:0"``, ...)."""
        return str(device)

    def device_argument(self, device: Any) -> Any:
        """The ``device`` argument of :func:`get_backend` that selects ``device``."""
        return device

    def candidate_devices(self) -> list[Any]:
        """The ``device`` arguments that :func:`available_backends` tries (``None``: default)."""
        return [None]

    def version(self) -> str:
        """The version of the library."""
        try:
            return importlib.import_module(self.name).__version__
        except Exception:  # pragma: no cover - version strings are informational
            return "unknown"

    # ---- checks -------------------------------------------------------------------
    def probe(self, xp: Any, device: Any) -> None:
        """A tiny computation on the device: proves it really runs."""
        try:
            with self.device_context(device):
                a = xp.arange(4, device=device)
                value = int(self.to_host(xp.sum(a * a)))
        except BackendError:
            raise
        except Exception as exc:
            raise DeviceUnavailableError(
                f"backend {self.name!r} is installed but a computation on {self.device_name(device)} "
                f"failed ({type(exc).__name__}: {exc})"
            ) from exc
        if value != 14:  # pragma: no cover - would mean a broken library
            raise DeviceUnavailableError(f"backend {self.name!r} computed a wrong result on {device!r}")

    def resolve_dtype(self, xp: Any, device: Any, dtype: Any) -> Any:
        """The floating dtype of ``xp`` that ``dtype`` names, checked against the device."""
        if dtype is None:
            dtype = "float32"
        key = dtype if isinstance(dtype, str) else dtype_name(xp, dtype)
        if key not in _FLOAT_DTYPES:
            raise DtypeNotSupportedError(
                f"dtype {dtype!r} is not supported: arraynn computes in 'float32' (default) or 'float64'"
            )
        supported = xp.__array_namespace_info__().dtypes(device=device, kind="real floating")
        if key not in supported:
            raise DtypeNotSupportedError(
                f"{key} is not supported by backend {self.name!r} on device "
                f"{self.device_name(device)!r} (it supports {sorted(supported)}); {self.float64_hint}"
            )
        return supported[key]

    # ---- host <-> device copies (counting is the caller's business) ----------------
    def stage_host(self, xp: Any, host: np.ndarray, dtype: Any) -> np.ndarray:
        """The host buffer that travels to the device for ``host`` wanted as ``dtype``.

        By default it converts on the host only when that does not grow the payload
        (float to float, or integers to a narrower or equal integer type), so uint8
        images travel as uint8 and become floats on the device; the result is
        C-contiguous.
        """
        if dtype is not None:
            target = np.dtype(dtype_name(xp, dtype))
            if host.dtype.kind == "f" or (
                    host.dtype.kind in "iu" and target.kind in "iu"
                    and target.itemsize <= host.dtype.itemsize):
                host = host.astype(target, copy=False)
        # (np.ascontiguousarray would turn a 0-d array into a 1-d one)
        return np.require(host, requirements="C")

    def from_host(self, xp: Any, device: Any, host: np.ndarray) -> Any:
        """Copy the staged NumPy array ``host`` to ``device``."""
        return xp.asarray(host, device=device, copy=True)

    def to_host(self, x: Any) -> np.ndarray:
        """Copy an array of this library to a NumPy array (uncounted; see
        :func:`arraynn.backends.to_host` for the counted one)."""
        return np.asarray(x)

    # ---- device services ------------------------------------------------------------
    def device_context(self, device: Any) -> contextlib.AbstractContextManager[Any]:
        """A context in which ``device`` is the calling thread's current device.

        Libraries with a current device (CuPy, torch CUDA, JAX's default device) allocate
        there whatever is made without an explicit device (``empty_like``, a kernel's
        outputs); the current device is per thread. The default does nothing.
        """
        return contextlib.nullcontext()

    def background_context(self, device: Any) -> contextlib.AbstractContextManager[Any]:
        """The context of work a background thread does for ``device`` (the loader's
        prefetch): :meth:`device_context`, and any copy machinery of the library's own
        (CuPy: pinned staging and a copy stream of the thread's)."""
        return self.device_context(device)

    def memory_in_use(self, device: Any) -> int | None:
        """Bytes of device memory held by the library's allocator (``None`` if unknown)."""
        return None

    def set_tf32(self, device: Any, enabled: bool) -> bool:
        """Set the library's TF32 matmul mode; whether ``device`` can use TF32 at all."""
        return False

    def synchronize(self, device: Any) -> None:
        """Wait for queued work on ``device`` to finish."""

    # ---- data-parallel training -----------------------------------------------------
    def host_view(self, x: Any) -> np.ndarray | None:
        """A writable NumPy array sharing ``x``'s memory (MPI then reduces it in place,
        without a copy), or ``None`` where the library has none (the default: the
        array is copied to the host and back)."""
        return None

    def device_communicator(self, base: Any, device: Any, required: bool) -> Any:
        """A communicator that sums this library's arrays on ``device`` without the host
        (NCCL for CuPy), set up through the MPI communicator ``base``; ``None`` where
        the library has none (the default), or a
        :class:`arraynn.distributed.DistributedError` naming the fix when ``required``."""
        if required:
            from ..distributed import DistributedError

            raise DistributedError(f"backend {self.name!r} has no NCCL communicator; NCCL sums "
                                   "CuPy arrays on CUDA GPUs (use --backend cupy), or use --comm mpi")
        return None

    # ---- training -------------------------------------------------------------------
    def ops(self, xp: Any) -> Any:
        """The object that does a training step's elementwise work in namespace ``xp``."""
        from ..ops.generic import Ops

        return Ops(xp)

    def compiled_step(self, mlp: Any, optimizer: Any, l1: float, l2: float,
                      seed: int | None = None) -> Any:
        """The training step to run instead of the eager one, or ``None`` (the default);
        called as ``step(params, optimizer, state, X, Y, learning_rate, l1, l2,
        sample_weight=None)``, drawing dropout masks from ``seed`` when given."""
        return None
