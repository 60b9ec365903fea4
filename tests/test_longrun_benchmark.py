"""The long-run benchmark's smoke test: ``python -m benchmarks.longrun --quick``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def test_subnormal_share_counts_only_the_subnormal_values():
    from benchmarks.longrun import subnormal_share

    tiny = np.finfo(np.float32).smallest_normal
    x = np.array([0.0, -0.0, tiny, -tiny, tiny / 2, -tiny / 3, 1.0, np.nan], dtype=np.float32)
    assert subnormal_share(x) == (2, 8)


def test_quick_long_run_reports_epoch_times_and_a_state_without_subnormals(tmp_path):
    out = tmp_path / "longrun.json"
    proc = subprocess.run([sys.executable, "-m", "benchmarks.longrun", "--quick", "--json", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    res = json.loads(out.read_text())
    assert res["epochs"] == 3 and len(res["rows"]) == 3
    assert res["late_over_early"] > 0 and res["first_epoch_seconds"] > 0
    # the best preset's three weight matrices, the parameters, Adam's two moments
    assert len(res["final_subnormal_share"]) == 6
    assert res["final_subnormal_values"] == 0
    assert "mean of the last 5 / mean of epochs 2-6" in proc.stdout
