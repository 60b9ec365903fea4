"""NumPy: the host itself, the default backend.

Arrays of this backend are NumPy arrays in host memory, so a "copy to the device" is
no copy at all: data that already has the wanted dtype is used as it is.
"""

from __future__ import annotations

from typing import Any

import array_api_compat
import numpy as np

from .base import DeviceUnavailableError
from .hooks import Library

__all__ = ["NumpyLibrary", "library"]


class NumpyLibrary(Library):
    """NumPy, through ``array_api_compat.numpy``; the CPU only."""

    name = "numpy"
    install_hint = "pip install numpy"

    def load(self, device: Any) -> tuple[Any, Any]:
        xp = self.import_module("array_api_compat.numpy")
        if device not in (None, "cpu"):
            raise DeviceUnavailableError(f"backend {self.name!r} runs on 'cpu' only, not {device!r}")
        return xp, "cpu"

    def owns(self, xp: Any) -> bool:
        return array_api_compat.is_numpy_namespace(xp)

    def is_array(self, x: Any) -> bool:
        return isinstance(x, (np.ndarray, np.generic))

    def device_name(self, device: Any) -> str:
        return "cpu"

    def device_argument(self, device: Any) -> Any:
        return None

    def stage_host(self, xp: Any, host: np.ndarray, dtype: Any) -> np.ndarray:
        # No copy when the dtype already fits, views and all.
        return host if dtype is None else host.astype(np.dtype(dtype), copy=False)

    def from_host(self, xp: Any, device: Any, host: np.ndarray) -> Any:
        return host

    def host_view(self, x: Any) -> np.ndarray | None:
        return x if x.flags.writeable and x.flags.c_contiguous else None

    def ops(self, xp: Any) -> Any:
        from ..ops.numpy import NumpyOps

        return NumpyOps(xp)


library = NumpyLibrary()
