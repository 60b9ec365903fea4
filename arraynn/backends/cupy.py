"""CuPy: NVIDIA GPUs, through ``array_api_compat.cupy``.

Devices are ``cupy.cuda.Device`` objects; ``"cuda"``, ``"gpu"``, ``"cuda:N"``, ``N``
or a device object select one.
"""

from __future__ import annotations

import contextlib
import threading
from typing import Any

import array_api_compat
import numpy as np

from ..distributed import Communicator, DistributedError
from .base import DeviceUnavailableError
from .hooks import Library

__all__ = ["CupyLibrary", "NcclCommunicator", "library"]


class CupyLibrary(Library):
    """CuPy on a CUDA device; its fast path is the fused kernels of ``arraynn.ops.cupy``."""

    name = "cupy"
    install_hint = 'pip install "arraynn[cuda12]" (or "arraynn[cuda13]" for CUDA 13 drivers)'

    def load(self, device: Any) -> tuple[Any, Any]:
        cupy = self.import_module("cupy")
        xp = self.import_module("array_api_compat.cupy")
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

    def owns(self, xp: Any) -> bool:
        return array_api_compat.is_cupy_namespace(xp)

    def is_array(self, x: Any) -> bool:
        return array_api_compat.is_cupy_array(x)

    def device_name(self, device: Any) -> str:
        return f"cuda:{getattr(device, 'id', device)}"

    def candidate_devices(self) -> list[Any]:
        import cupy

        return [f"cuda:{i}" for i in range(cupy.cuda.runtime.getDeviceCount())]

    def probe(self, xp: Any, device: Any) -> None:
        super().probe(xp, device)
        # A matrix product too: it loads cuBLAS, which cupy-cuda*x 14 brings only with its
        # [ctk] extra (as it does NVRTC and the runtime).
        try:
            with device:
                import cupy

                a = cupy.ones((2, 2), dtype=cupy.float32)
                value = float((a @ a)[0, 0].get())
        except Exception as exc:
            raise DeviceUnavailableError(
                f"backend 'cupy' is installed but a matrix product on {self.device_name(device)} "
                f"failed ({type(exc).__name__}: {exc}); install the CUDA libraries with "
                f"{self.install_hint}") from exc
        if value != 2.0:  # pragma: no cover - would mean a broken library
            raise DeviceUnavailableError("backend 'cupy' computed a wrong matrix product")

    def device_context(self, device: Any) -> Any:
        # a cupy.cuda.Device is a context manager that makes it the thread's current
        # device; a new one each time, so no state is shared between threads or nestings
        import cupy

        return cupy.cuda.Device(device.id)

    @contextlib.contextmanager
    def background_context(self, device: Any) -> Any:
        with self.device_context(device):
            _thread.staged = True
            try:
                yield
            finally:
                _thread.staged = False

    def from_host(self, xp: Any, device: Any, host: np.ndarray) -> Any:
        import cupy

        with self.device_context(device):
            if not getattr(_thread, "staged", False):
                return cupy.asarray(host)
            # In a background thread: copy from pinned memory on a non-blocking stream of
            # the thread's, which overlaps the training on the default stream (a copy
            # from pageable memory on the default stream would not). The device buffer
            # comes from the current stream's pool, so the copy first waits for the work
            # queued there (the buffer's earlier users); this thread then waits for its
            # copy, so the array is complete when handed over and the pinned buffer free.
            import cupyx

            streams = _thread.__dict__.setdefault("copy_streams", {})
            stream = streams.get(device.id)
            if stream is None:
                stream = streams[device.id] = cupy.cuda.Stream(non_blocking=True)
            out = cupy.empty(host.shape, dtype=host.dtype)
            pinned = cupyx.empty_pinned(host.shape, dtype=host.dtype)
            pinned[...] = host
            stream.wait_event(cupy.cuda.get_current_stream().record())
            out.set(pinned, stream=stream)
            stream.synchronize()
            return out

    def to_host(self, x: Any) -> np.ndarray:
        return x.get()

    def memory_in_use(self, device: Any) -> int | None:
        import cupy

        with device:
            return int(cupy.get_default_memory_pool().total_bytes())

    def set_tf32(self, device: Any, enabled: bool) -> bool:
        import cupy
        from cupy._core import _routines_linalg as linalg

        mode = linalg.COMPUTE_TYPE_TF32 if enabled else linalg.COMPUTE_TYPE_DEFAULT
        linalg.set_compute_type(cupy.float32, mode)
        return True

    def synchronize(self, device: Any) -> None:
        device.synchronize()  # this device, whichever is current

    def ops(self, xp: Any) -> Any:
        from ..ops.cupy import CupyOps

        return CupyOps(xp)

    def device_communicator(self, base: Any, device: Any, required: bool) -> Any:
        try:
            from cupy.cuda import nccl
        except Exception as exc:
            if not required:
                return None
            raise DistributedError(
                f"CuPy's NCCL is not available ({type(exc).__name__}: {exc}); install NCCL for "
                "CuPy (pip install nvidia-nccl-cu12, or the cu13 one) or use --comm mpi") from exc
        if not getattr(nccl, "available", True):
            if not required:
                return None
            raise DistributedError("this CuPy was built without NCCL; install NCCL for CuPy "
                                   "(pip install nvidia-nccl-cu12, or the cu13 one) or use --comm mpi")
        return NcclCommunicator(base, device)


class NcclCommunicator(Communicator):
    """NCCL through CuPy: sums CuPy arrays on the GPUs, one rank per GPU.

    Rank 0 makes the NCCL id and MPI (``base``, an
    :class:`arraynn.distributed.MPICommunicator`) hands it to every rank, which joins
    the NCCL communicator on its own device. :meth:`allreduce` sums in place on the
    current stream, with no host copy; the host-side collectives (the per-epoch loss,
    barriers, broadcasts of Python objects) stay MPI's.
    """

    name = "nccl"

    def __init__(self, base: Any, device: Any) -> None:
        from cupy.cuda import nccl

        self.base, self.device = base, device
        self.rank, self.size, self.local_rank = base.rank, base.size, base.local_rank
        self.local_size = base.local_size
        self.threads, self.threads_note = base.threads, base.threads_note
        uid = nccl.get_unique_id() if base.rank == 0 else None
        uid = base.bcast(uid, root=0)
        with library.device_context(device):
            self.comm = nccl.NcclCommunicator(base.size, uid, base.rank)
        self._types = {"float32": nccl.NCCL_FLOAT32, "float64": nccl.NCCL_FLOAT64}
        self._sum = nccl.NCCL_SUM

    def allreduce(self, x: Any, backend: Any) -> Any:
        import cupy

        kind = self._types.get(str(x.dtype))
        if kind is None:
            raise TypeError(f"NCCL sums float32 or float64 arrays here, not {x.dtype}")
        if not x.flags.c_contiguous:
            raise ValueError("NCCL sums a contiguous buffer; pass the flat gradient buffer")
        with library.device_context(self.device):
            stream = cupy.cuda.get_current_stream()
            self.comm.allReduce(x.data.ptr, x.data.ptr, x.size, kind, self._sum, stream.ptr)
        return x

    def allreduce_scalar(self, value: float) -> float:
        return self.base.allreduce_scalar(value)

    def bcast(self, obj: Any, root: int = 0) -> Any:
        return self.base.bcast(obj, root)

    def allgather(self, obj: Any) -> list[Any]:
        return self.base.allgather(obj)

    def barrier(self) -> None:
        self.base.barrier()

    def abort(self, code: int = 1) -> None:
        self.base.abort(code)


# Per thread: whether uploads are staged (inside background_context), and the copy streams.
_thread = threading.local()

library = CupyLibrary()
