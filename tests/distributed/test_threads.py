"""BLAS threads per rank: data-parallel ranks on one machine split its cores between them
(unless the user set a thread variable), checked by the rule, in-process and under mpiexec."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


def test_ranks_on_one_machine_split_its_cores():
    from arraynn.distributed import blas_threads_per_rank

    assert blas_threads_per_rank(16, 4, {}) == 4
    assert blas_threads_per_rank(2, 2, {}) == 1
    assert blas_threads_per_rank(2, 3, {}) == 1  # never zero
    assert blas_threads_per_rank(7, 2, {}) == 3
    assert blas_threads_per_rank(8, 1, {}) is None  # one rank: the library's default
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS"):
        assert blas_threads_per_rank(16, 4, {var: "2"}) is None  # the user's choice rules
    assert blas_threads_per_rank(16, 4, {"OMP_NUM_THREADS": ""}) == 4


def test_split_threads_limits_the_blas_pools_and_says_so():
    threadpoolctl = pytest.importorskip("threadpoolctl")
    from arraynn.distributed import split_threads

    before = threadpoolctl.threadpool_info()
    try:
        threads, note = split_threads(2, 4, environ={})
        assert threads == min(2, len(os.sched_getaffinity(0)))
        assert f"{threads} BLAS thread" in note and "2 ranks on 4 cores" in note
        blas = [p["num_threads"] for p in threadpoolctl.threadpool_info() if p["user_api"] == "blas"]
        assert blas and all(n == threads for n in blas)
        threads, note = split_threads(2, 4, environ={"OMP_NUM_THREADS": "3"})
        assert threads is None and "OMP_NUM_THREADS=3" in note
    finally:
        for p in before:
            threadpoolctl.threadpool_limits(limits=p["num_threads"], user_api=p["user_api"])


def _thread_report(n: int, env_extra: dict[str, str], drop: tuple[str, ...], out: Path) -> list[dict]:
    from _mpi import ROOT, mpiexec

    env = {k: v for k, v in os.environ.items() if k not in drop}
    env.update(env_extra)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    cmd = [mpiexec(), "-n", str(n), sys.executable, "-m", "mpi4py",
           str(Path(__file__).resolve().parent / "_mpi_threads.py"), str(out)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return [json.loads((out / f"rank-{r}.json").read_text()) for r in range(n)]


def test_two_ranks_without_thread_variables_share_the_cores(tmp_path):
    pytest.importorskip("threadpoolctl")
    from arraynn.distributed import THREAD_VARIABLES

    cores = len(os.sched_getaffinity(0))
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    rows = _thread_report(2, {}, THREAD_VARIABLES, tmp_path / "a")
    assert [r["rank"] for r in rows] == [0, 1]
    for r in rows:
        assert r["local_size"] == 2
        assert r["threads"] == max(1, cores // 2), r
        assert r["blas"] == [max(1, cores // 2)], r  # what OpenBLAS really runs with
    # a thread variable set by the user is left alone
    rows = _thread_report(2, {"OPENBLAS_NUM_THREADS": "2"}, THREAD_VARIABLES, tmp_path / "b")
    for r in rows:
        assert r["threads"] is None and "OPENBLAS_NUM_THREADS=2" in r["note"]
