"""Helpers of the MPI tests: find mpiexec, run a command on N ranks with a timeout."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
#: No MPI job of the tests may run longer than this (a hang fails the test).
TIMEOUT = 120


def _missing(reason: str) -> None:
    """Skip; fail instead where ARRAYNN_REQUIRE_MPI is set (the nox session installs MPI)."""
    if os.environ.get("ARRAYNN_REQUIRE_MPI"):
        pytest.fail(reason)
    pytest.skip(reason)


def mpiexec() -> str:
    """The mpiexec beside this Python (the mpich wheel's), else on PATH; skips without
    mpi4py or mpiexec."""
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        _missing('MPI tests need mpi4py: pip install "arraynn[mpi]"')
    here = Path(sys.executable).parent / "mpiexec"
    found = str(here) if here.exists() else shutil.which("mpiexec")
    if found is None:
        _missing('MPI tests need mpiexec: pip install "arraynn[mpi]" (the mpich wheel)')
    return found


def run_ranks(n: int, args: list[str], cwd: Path | None = None, timeout: float = TIMEOUT
              ) -> subprocess.CompletedProcess:
    """``mpiexec -n n python -m mpi4py ARGS`` with this checkout first on the path."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1"}
    cmd = [mpiexec(), "-n", str(n), sys.executable, "-m", "mpi4py", *args]
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
