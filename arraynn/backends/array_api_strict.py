"""array-api-strict: the Array API standard to the letter, for testing.

It has several devices (``CPU_DEVICE``, ``device1``, ``no_float64``); the last one
lacks float64, which is how the tests reach the "dtype not supported" paths.
"""

from __future__ import annotations

from typing import Any

import array_api_compat
import numpy as np

from .base import DeviceUnavailableError
from .hooks import Library

__all__ = ["ArrayApiStrictLibrary", "library"]

_CPU = "CPU_DEVICE"


class ArrayApiStrictLibrary(Library):
    """array-api-strict; devices by name, ``"cpu"`` for ``CPU_DEVICE``."""

    name = "array_api_strict"
    install_hint = "pip install array-api-strict"

    def load(self, device: Any) -> tuple[Any, Any]:
        xp = self.import_module("array_api_strict")
        info = xp.__array_namespace_info__()
        if device is None:
            return xp, info.default_device()
        if isinstance(device, str):
            names = {self.device_name(d): d for d in info.devices()}
            key = _CPU if device.lower() == "cpu" else device
            if key not in names:
                raise DeviceUnavailableError(
                    f"array_api_strict has no device {device!r}; its devices are "
                    f"{sorted(names)} (use 'cpu' for CPU_DEVICE)"
                )
            return xp, names[key]
        return xp, device

    def owns(self, xp: Any) -> bool:
        return array_api_compat.is_array_api_strict_namespace(xp)

    def device_name(self, device: Any) -> str:
        return getattr(device, "_device", str(device))

    def device_argument(self, device: Any) -> Any:
        name = getattr(device, "_device", None)
        return "cpu" if name == _CPU else name

    def candidate_devices(self) -> list[Any]:
        import array_api_strict

        return [self.device_name(d) for d in array_api_strict.__array_namespace_info__().devices()]

    def to_host(self, x: Any) -> np.ndarray:
        import array_api_strict

        return np.asarray(x.to_device(array_api_strict.Device(_CPU)))


library = ArrayApiStrictLibrary()
