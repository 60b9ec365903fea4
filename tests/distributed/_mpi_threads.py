"""Run under mpiexec by the tests: each rank prints its communicator's thread split and the
BLAS thread pools threadpoolctl sees, as one JSON line."""

from __future__ import annotations

import json

import numpy as np  # noqa: F401  (loads NumPy's BLAS before the split, as a user's script does)
from threadpoolctl import threadpool_info

from arraynn import distributed

comm = distributed.world()
blas = sorted({p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"})
print(json.dumps({"rank": comm.rank, "size": comm.size, "local_size": comm.local_size,
                  "threads": comm.threads, "note": comm.threads_note, "blas": blas}), flush=True)
