"""CuPy: NVIDIA GPUs, through ``array_api_compat.cupy``.

Devices are ``cupy.cuda.Device`` objects; ``"cuda"``, ``"gpu"``, ``"cuda:N"``, ``N``
or a device object select one.
"""

from __future__ import annotations

from typing import Any

import array_api_compat
import numpy as np

from .base import DeviceUnavailableError
from .hooks import Library

__all__ = ["CupyLibrary", "library"]


class CupyLibrary(Library):
    """CuPy on a CUDA device; its fast path is the fused kernels of ``arraynn.ops.cupy``."""

    name = "cupy"
    install_hint = 'pip install "arraynn[cuda12]"   (or "arraynn[cuda13]" for CUDA 13 drivers)'

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

    def from_host(self, xp: Any, device: Any, host: np.ndarray) -> Any:
        import cupy

        with device:
            return cupy.asarray(host)

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
        import cupy

        cupy.cuda.Device().synchronize()

    def ops(self, xp: Any) -> Any:
        from ..ops.cupy import CupyOps

        return CupyOps(xp)


library = CupyLibrary()
