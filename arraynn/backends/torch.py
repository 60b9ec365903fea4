"""PyTorch: CPU, CUDA and Apple's MPS devices, through ``array_api_compat.torch``."""

from __future__ import annotations

import contextlib
from typing import Any

import array_api_compat
import numpy as np

from .base import DeviceUnavailableError
from .hooks import Library

__all__ = ["TorchLibrary", "library"]


class TorchLibrary(Library):
    """PyTorch; devices are ``torch.device`` objects (``"cuda"`` means the current GPU)."""

    name = "torch"
    # On Linux PyPI's default torch is a CUDA build that pulls several GB of nvidia-* packages:
    # the hint gives the CPU build's command too.
    install_hint = ('pip install "arraynn[torch]" (on Linux that is the CUDA build of torch, several GB; '
                    'for the CPU build run first: pip install torch --index-url '
                    'https://download.pytorch.org/whl/cpu, then pip install "arraynn[torch]")')

    def load(self, device: Any) -> tuple[Any, Any]:
        torch = self.import_module("torch")
        xp = self.import_module("array_api_compat.torch")
        try:
            dev = torch.device(device if device is not None else "cpu")
        except (RuntimeError, TypeError, ValueError):
            raise DeviceUnavailableError(
                f"torch has no device {device!r}; give 'cpu', 'cuda', 'cuda:N' or 'mps'") from None
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

    def owns(self, xp: Any) -> bool:
        return array_api_compat.is_torch_namespace(xp)

    def is_array(self, x: Any) -> bool:
        return array_api_compat.is_torch_array(x)

    def candidate_devices(self) -> list[Any]:
        import torch

        devs: list[Any] = ["cpu"]
        if torch.cuda.is_available():
            devs += [f"cuda:{i}" for i in range(torch.cuda.device_count())]
        if hasattr(torch.backends, "mps") and torch.backends.mps.is_available():
            devs.append("mps")
        return devs

    def from_host(self, xp: Any, device: Any, host: np.ndarray) -> Any:
        import torch

        t = torch.from_numpy(host)
        return t.to(device) if device.type != "cpu" else t.clone()

    def to_host(self, x: Any) -> np.ndarray:
        return x.detach().cpu().numpy()

    def host_view(self, x: Any) -> np.ndarray | None:
        if x.device.type != "cpu" or not x.is_contiguous() or x.requires_grad:
            return None
        return x.numpy()  # shares the tensor's memory

    def memory_in_use(self, device: Any) -> int | None:
        if device.type != "cuda":
            return None
        import torch

        return int(torch.cuda.memory_reserved(device))

    def device_context(self, device: Any) -> Any:
        if getattr(device, "type", "cpu") != "cuda":
            return contextlib.nullcontext()
        import torch

        return torch.cuda.device(device)

    def set_tf32(self, device: Any, enabled: bool) -> bool:
        import torch

        matmul, cudnn = torch.backends.cuda.matmul, torch.backends.cudnn
        if hasattr(matmul, "fp32_precision"):  # torch 2.9+, which warns on the old flags
            precision = "tf32" if enabled else "ieee"
            matmul.fp32_precision = precision
            conv = getattr(cudnn, "conv", None)
            if conv is not None and hasattr(conv, "fp32_precision"):
                conv.fp32_precision = precision
        else:
            matmul.allow_tf32 = enabled
            cudnn.allow_tf32 = enabled
        return device.type == "cuda"

    def synchronize(self, device: Any) -> None:
        if getattr(device, "type", "cpu") == "cuda":
            import torch

            torch.cuda.synchronize(device)

    def ops(self, xp: Any) -> Any:
        from ..ops.torch import TorchOps

        return TorchOps(xp)


library = TorchLibrary()
