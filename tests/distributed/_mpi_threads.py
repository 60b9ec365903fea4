"""Run under mpiexec by the tests: each rank writes its communicator's thread split and the
BLAS thread pools threadpoolctl sees to OUT_DIR/rank-<rank>.json (a file each: lines the
ranks print at the same time may interleave)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np  # noqa: F401  (loads NumPy's BLAS before the split, as a user's script does)
from threadpoolctl import threadpool_info

from arraynn import distributed

comm = distributed.world()
blas = sorted({p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"})
Path(sys.argv[1], f"rank-{comm.rank}.json").write_text(json.dumps(
    {"rank": comm.rank, "size": comm.size, "local_size": comm.local_size, "threads": comm.threads,
     "note": comm.threads_note, "blas": blas}))
