"""Helpers of the tests of ``python -m arraynn.train``: run it in a subprocess or in
this process, and check its one-line errors and its metrics.csv."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import arraynn.train

REPO = Path(__file__).resolve().parents[2]

# A small network that trains in a fraction of a second per epoch.
FAST = ["--hidden", "32", "--val-size", "100", "--no-progress"]


def cli_env() -> dict[str, str]:
    """The environment of a subprocess: this checkout's arraynn, one BLAS thread, no $ARRAYNN_DATA."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    # One BLAS thread: fast on a busy 2-core machine, and the same sums every time.
    env.setdefault("OPENBLAS_NUM_THREADS", "1")
    env.setdefault("OMP_NUM_THREADS", "1")
    env.pop("ARRAYNN_DATA", None)
    return env


def run_cli(*args: str, cwd: Path | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    """``python -m arraynn.train ARGS`` in a subprocess."""
    return subprocess.run([sys.executable, "-m", "arraynn.train", *args], capture_output=True,
                          text=True, env=cli_env(), cwd=cwd, timeout=timeout)


def assert_one_line_error(stderr: str, *fragments: str) -> None:
    """``stderr`` is one line, ``error: ...``, holding every fragment (case-insensitive)."""
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    assert "Traceback" not in stderr, stderr
    assert len(lines) == 1, f"expected one line on stderr, got:\n{stderr}"
    assert lines[0].startswith("error: "), lines[0]
    for f in fragments:
        assert f.lower() in lines[0].lower(), f"{f!r} not in {lines[0]!r}"


def main_in_process(capsys, *args: str) -> tuple[int, str, str]:
    """``arraynn.train.main(ARGS)`` in this process: exit status, stdout, stderr."""
    code = arraynn.train.main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def read_metrics(run: Path) -> list[dict[str, str]]:
    """The rows of a run directory's metrics.csv, as strings."""
    with open(run / "metrics.csv", newline="") as f:
        return list(csv.DictReader(f))
