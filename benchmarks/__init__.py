"""Benchmarks of arraynn against PyTorch and scikit-learn: ``python -m benchmarks.run``.

This package must not import NumPy at import time: the commands first drop
``OPENBLAS_CORETYPE`` and ``OPENBLAS_L2_SIZE`` from their environment
(:func:`drop_blas_pinning` re-executes the command) and only then import the array
libraries.
"""

from __future__ import annotations

import os
import platform
import sys
from pathlib import Path

#: Variables that pin OpenBLAS to old kernels on the project's machines.
BLAS_PINNING = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")


def drop_blas_pinning(module: str) -> None:
    """Re-execute ``python -m module`` without :data:`BLAS_PINNING`, if any is set.

    Call it before NumPy is imported. Prints that it did so.
    """
    found = [v for v in BLAS_PINNING if v in os.environ]
    if not found:
        return
    env = {k: v for k, v in os.environ.items() if k not in BLAS_PINNING}
    print(f"{module}: re-executing without {', '.join(found)} (native OpenBLAS kernels)",
          flush=True)
    os.execve(sys.executable, [sys.executable, "-m", module, *sys.argv[1:]], env)


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``), else what :mod:`platform` says."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
