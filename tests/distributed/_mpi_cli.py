"""Run under mpiexec by the tests: ``python -m arraynn.train`` with a failure injected.

    mpiexec -n 2 python -m mpi4py _mpi_cli.py [--fail-rank R --fail-epoch E] ARGS...

Rank R raises after epoch E: rank 0 once that epoch's checkpoint is written, another
rank at that epoch's barrier.
"""

from __future__ import annotations

import sys

from arraynn import distributed
from arraynn.train import main
from arraynn.train.rundir import RunDir


def inject(rank: int, epoch: int) -> None:
    if distributed.world().rank != rank:
        return
    if rank == 0:
        save = RunDir.save_epoch

        def save_epoch(self, clf, rows):
            save(self, clf, rows)
            if len(rows) == epoch:
                raise RuntimeError(f"rank 0 stops after epoch {epoch} on purpose")

        RunDir.save_epoch = save_epoch
        return
    barrier, calls = distributed.MPICommunicator.barrier, []

    def failing_barrier(self):
        calls.append(1)
        if len(calls) == 1 + epoch:  # the data's barrier, then one per epoch
            raise RuntimeError(f"rank {rank} fails in epoch {epoch} on purpose")
        barrier(self)

    distributed.MPICommunicator.barrier = failing_barrier


if __name__ == "__main__":
    argv = sys.argv[1:]
    if argv[:1] == ["--fail-rank"]:
        inject(int(argv[1]), int(argv[3]))
        argv = argv[4:]
    sys.exit(main(argv))
