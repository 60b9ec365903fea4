"""The ``device=`` argument that puts an estimator on a test backend's device."""

from __future__ import annotations

from typing import Any

__all__ = ["device_arg"]


def device_arg(be: Any) -> str | None:
    """``be``'s device as ``NNClassifier(device=...)`` takes it (None: the default one)."""
    if be.name == "array_api_strict":
        return be.device_name if be.device_name != "CPU_DEVICE" else None
    return None if be.name == "numpy" else be.device_name
