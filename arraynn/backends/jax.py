"""JAX: CPU, GPU and TPU devices; its training step is compiled with ``jax.jit``.

JAX computes in float32 unless 64-bit mode is on (``JAX_ENABLE_X64=1``), which the
float64 error message says.
"""

from __future__ import annotations

from typing import Any

import array_api_compat
import numpy as np

from .base import DeviceUnavailableError
from .hooks import Library

__all__ = ["JaxLibrary", "library"]


class JaxLibrary(Library):
    """JAX through ``jax.numpy``; devices by ``"platform:N"`` (``"cuda"`` means ``"gpu"``)."""

    name = "jax"
    install_hint = 'pip install "arraynn[jax]"'
    float64_hint = ("enable 64-bit floats with the environment variable JAX_ENABLE_X64=1 "
                    "(or jax.config.update('jax_enable_x64', True)) before using JAX, or "
                    "use dtype='float32'")

    def load(self, device: Any) -> tuple[Any, Any]:
        jax = self.import_module("jax")
        xp = self.import_module("jax.numpy")
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

    def owns(self, xp: Any) -> bool:
        return array_api_compat.is_jax_namespace(xp)

    def is_array(self, x: Any) -> bool:
        return array_api_compat.is_jax_array(x)

    def device_name(self, device: Any) -> str:
        return f"{getattr(device, 'platform', '?')}:{getattr(device, 'id', 0)}"

    def candidate_devices(self) -> list[Any]:
        import jax

        return [f"{d.platform}:{d.id}" for d in jax.devices()]

    def from_host(self, xp: Any, device: Any, host: np.ndarray) -> Any:
        import jax

        return jax.device_put(host, device)

    def memory_in_use(self, device: Any) -> int | None:
        stats = device.memory_stats() or {}
        return int(stats["bytes_in_use"]) if "bytes_in_use" in stats else None

    def device_context(self, device: Any) -> Any:
        import jax

        return jax.default_device(device)

    def set_tf32(self, device: Any, enabled: bool) -> bool:
        import jax

        jax.config.update("jax_default_matmul_precision", "tensorfloat32" if enabled else "float32")
        return getattr(device, "platform", "cpu") == "gpu"

    def synchronize(self, device: Any) -> None:
        # jax.effects_barrier() waits only for side effects, not for queued computations;
        # a computation on the device runs after those queued before it, so waiting for
        # its (tiny) result waits for them.
        import jax
        import jax.numpy as jnp

        jax.block_until_ready(jnp.zeros((), device=device) + 1)

    def compiled_step(self, mlp: Any, optimizer: Any, l1: float, l2: float,
                      seed: int | None = None) -> Any:
        from ..ops.jax import train_step_for

        return train_step_for(mlp, optimizer, l1, l2, seed)


library = JaxLibrary()
