"""Data-parallel training over processes, GPUs and nodes: MPI through mpi4py, NCCL
through CuPy.

Launch the same script once per process with ``mpiexec`` (or a cluster's ``srun``);
each process is a *rank*. Every rank holds the whole data set, builds the same
permutation from ``(seed, epoch)`` and takes its contiguous slice of each global
minibatch; the ranks' summed gradients are added by **one allreduce of the flat
gradient buffer per step**, and every rank applies the same update. So N ranks train
the same network as one process (the same weights within floating-point rounding),
with the minibatch size unchanged::

    # mpiexec -n 4 python -m mpi4py fit.py
    from arraynn import NNClassifier, distributed

    comm = distributed.world()            # MPI when launched by mpiexec, else one process
    clf = NNClassifier(batch_size=256, random_seed=0, ...)
    clf.fit(X, y, comm=comm)              # every rank passes the same X and y
    if comm.rank == 0:
        clf.save("model.npz")

``python -m mpi4py`` makes a rank that raises abort the whole job instead of leaving
the others waiting in a collective.

Communicators
-------------
:class:`SingleProcess`
    World size 1: nothing to reduce (what :func:`world` gives without ``mpiexec``).
:class:`MPICommunicator`
    mpi4py's ``COMM_WORLD``. The gradient is reduced in place in host memory: NumPy
    arrays and torch CPU tensors are handed to MPI as they are (no copy); arrays of
    other libraries and devices are copied to the host and back once per step (the
    one per-step host copy of data-parallel training, which NCCL avoids on GPUs).
:class:`arraynn.backends.cupy.NcclCommunicator`
    NCCL through CuPy for CuPy ranks on GPUs: the reduction runs on the devices; MPI
    only hands out the NCCL id and does the host-side collectives. See
    :func:`communicator`.

BLAS threads
------------
Each rank's BLAS (OpenBLAS, MKL, BLIS) starts one thread per core of the machine, so N
ranks on one machine would run N times as many busy threads as it has cores, and the
threads of skinny matrix products then wait for each other (2 ranks on 2 cores: an epoch
4.6 s, against 1.0 s with one thread each). An :class:`MPICommunicator` therefore splits
the machine's cores between the ranks on it (:func:`split_threads`, with threadpoolctl,
which the ``mpi`` extra installs): ``cores // ranks on the machine`` threads each, at
least one. A thread variable set by the user (:data:`THREAD_VARIABLES`) is left to rule.
The communicator's ``threads`` says what each rank uses (the job's header prints it).

Importing arraynn never imports mpi4py: :func:`world` imports it only when the
process was started by an MPI launcher (or mpi4py is already loaded). Install it with
``pip install "arraynn[mpi]"`` (mpi4py and the MPICH wheel), or on a cluster
``pip install mpi4py`` built against the site's MPI.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

import numpy as np

__all__ = ["COMMUNICATORS", "THREAD_VARIABLES", "Communicator", "DistributedError", "MPICommunicator",
           "SingleProcess", "blas_threads_per_rank", "check_ranks", "communicator", "launched_by_mpi",
           "rank_backend", "split_threads", "world"]

#: The values of ``kind`` in :func:`communicator` (``--comm`` of ``arraynn.train``).
COMMUNICATORS: tuple[str, ...] = ("auto", "mpi", "nccl")

# Set by MPI launchers in every process they start: MPICH's and Intel MPI's Hydra (PMI_*),
# Open MPI (OMPI_*), PMIx launchers (Open MPI 5, srun --mpi=pmix), MVAPICH.
_LAUNCHER_VARIABLES = ("PMI_SIZE", "PMI_RANK", "OMPI_COMM_WORLD_SIZE", "PMIX_RANK",
                       "MV2_COMM_WORLD_SIZE")

_MPI_HINT = ('pip install "arraynn[mpi]" (mpi4py and the MPICH wheel), or on a cluster '
             "pip install mpi4py built against the site's MPI")


#: Variables that set the BLAS or OpenMP thread count; if any is set, the ranks keep it.
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS")


def blas_threads_per_rank(cores: int, ranks_here: int, environ: Any = None) -> int | None:
    """The BLAS threads each of ``ranks_here`` ranks on a machine of ``cores`` cores
    should use: ``max(1, cores // ranks_here)``; ``None`` (leave them) when a thread
    variable is set in ``environ`` (default ``os.environ``) or there is one rank."""
    environ = os.environ if environ is None else environ
    if any(str(environ.get(v, "")).strip() for v in THREAD_VARIABLES) or ranks_here <= 1:
        return None
    return max(1, int(cores) // int(ranks_here))


def _cores() -> set[int]:
    try:
        return set(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        return set(range(os.cpu_count() or 1))


def split_threads(ranks_here: int, node_cores: int, environ: Any = None) -> tuple[int | None, str]:
    """Limit this process's BLAS thread pools (and torch's, if it is imported) to
    :func:`blas_threads_per_rank` threads. Returns ``(threads or None, a description)``."""
    environ = os.environ if environ is None else environ
    threads = blas_threads_per_rank(node_cores, ranks_here, environ)
    if threads is None:
        given = [f"{v}={environ[v]}" for v in THREAD_VARIABLES if str(environ.get(v, "")).strip()]
        if given:
            return None, f"BLAS threads as set by {', '.join(given)}"
        return None, "BLAS threads: the library's default (one rank on this machine)"
    threads = min(threads, max(1, len(_cores())))
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return None, (f"BLAS threads: the library's default, {ranks_here} ranks on {node_cores} cores "
                      "may oversubscribe them; pip install threadpoolctl (in the mpi extra) or set "
                      f"OMP_NUM_THREADS={max(1, node_cores // ranks_here)}")
    threadpool_limits(limits=threads)  # kept for the life of the process
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(threads)
    return threads, (f"{threads} BLAS thread{'s' if threads != 1 else ''} per rank "
                     f"({ranks_here} ranks on {node_cores} cores here)")


_split_threads = split_threads  # MPICommunicator's argument of the same name hides it


class DistributedError(RuntimeError):
    """Data-parallel training cannot run as asked; the message says why and the fix."""


#: Seconds a failing rank waits before MPI_Abort, so its error line reaches the terminal.
_ABORT_GRACE_S = 0.5


class Communicator:
    """What data-parallel training needs from a group of processes.

    Attributes
    ----------
    name : str
        ``"single"``, ``"mpi"`` or ``"nccl"``.
    rank, size : int
        This process's number and the number of processes (world size).
    local_rank : int
        This process's number among those on the same machine (its GPU).
    """

    name = "single"
    rank = 0
    size = 1
    local_rank = 0
    local_size = 1
    #: The BLAS threads this rank was limited to (``None``: not changed) and how that
    #: was decided (see :func:`split_threads`).
    threads: int | None = None
    threads_note = ""

    def __repr__(self) -> str:
        return f"<arraynn {self.name} communicator: rank {self.rank} of {self.size}>"

    @property
    def is_root(self) -> bool:
        """Whether this is rank 0, the one that prints and writes."""
        return self.rank == 0

    def allreduce(self, x: Any, backend: Any) -> Any:
        """The elementwise sum of ``x`` over the ranks (``x`` is a flat array of
        ``backend``; summed in place where the library allows, so use the result)."""
        return x

    def allreduce_scalar(self, value: float) -> float:
        """The sum of a host number over the ranks."""
        return float(value)

    def bcast(self, obj: Any, root: int = 0) -> Any:
        """Rank ``root``'s ``obj`` (any picklable object) on every rank."""
        return obj

    def allgather(self, obj: Any) -> list[Any]:
        """Every rank's ``obj``, in rank order, on every rank."""
        return [obj]

    def barrier(self) -> None:
        """Wait until every rank is here."""

    def abort(self, code: int = 1) -> None:
        """End every rank of the job with exit status ``code`` (no return)."""
        sys.exit(code)


class SingleProcess(Communicator):
    """One process: world size 1, nothing to communicate."""


class MPICommunicator(Communicator):
    """An MPI communicator of mpi4py (default ``MPI.COMM_WORLD``).

    The gradient is summed with ``Allreduce(IN_PLACE, ..., SUM)`` on a host buffer:
    the array itself where the backend's library lends its memory to NumPy
    (:meth:`arraynn.backends.hooks.Library.host_view`: NumPy, torch on the CPU), else
    one copy to the host and one back per step.

    With ``split_threads`` (the default) it limits this rank's BLAS threads to its share
    of the machine's cores (:func:`split_threads`), unless a thread variable is set.
    """

    name = "mpi"

    def __init__(self, comm: Any = None, split_threads: bool = True) -> None:
        try:
            from mpi4py import MPI
        except ImportError as exc:
            raise DistributedError(f"MPI needs mpi4py, which is not installed ({exc}); install it "
                                   f"with {_MPI_HINT}") from exc
        self.MPI = MPI
        self.comm = MPI.COMM_WORLD if comm is None else comm
        self.rank = int(self.comm.Get_rank())
        self.size = int(self.comm.Get_size())
        node = self.comm.Split_type(MPI.COMM_TYPE_SHARED, key=self.rank)
        try:
            self.local_rank = int(node.Get_rank())
            self.local_size = int(node.Get_size())
            # the cores the ranks on this machine may run on, together
            node_cores = len(set().union(*node.allgather(_cores())))
        finally:
            node.Free()
        if split_threads:
            self.threads, self.threads_note = _split_threads(self.local_size, node_cores)

    def allreduce(self, x: Any, backend: Any) -> Any:
        view = backend.library.host_view(x)
        if view is not None:
            self.comm.Allreduce(self.MPI.IN_PLACE, view, op=self.MPI.SUM)
            return x
        host = np.ascontiguousarray(backend.to_numpy(x))  # a host copy of the device's array
        if not host.flags.writeable:
            host = host.copy()
        self.comm.Allreduce(self.MPI.IN_PLACE, host, op=self.MPI.SUM)
        return backend.asarray(host)

    def allreduce_scalar(self, value: float) -> float:
        return float(self.comm.allreduce(float(value), op=self.MPI.SUM))

    def bcast(self, obj: Any, root: int = 0) -> Any:
        return self.comm.bcast(obj, root=root)

    def allgather(self, obj: Any) -> list[Any]:
        return list(self.comm.allgather(obj))

    def barrier(self) -> None:
        self.comm.Barrier()

    def abort(self, code: int = 1) -> None:
        sys.stdout.flush()
        sys.stderr.flush()
        # The launcher forwards a rank's output through a pipe, and MPI_Abort kills the
        # job at once: give it a moment to pass on the error line just printed.
        time.sleep(_ABORT_GRACE_S)
        self.comm.Abort(int(code))


def launched_by_mpi() -> bool:
    """Whether this process was started by an MPI launcher (or has mpi4py's MPI loaded)."""
    return "mpi4py.MPI" in sys.modules or any(v in os.environ for v in _LAUNCHER_VARIABLES)


def world() -> Communicator:
    """All the processes of the job: an :class:`MPICommunicator` on ``COMM_WORLD`` when
    the process was started by ``mpiexec``/``srun`` (see :func:`launched_by_mpi`), else
    :class:`SingleProcess`. mpi4py is imported only in the first case.

    Raises
    ------
    DistributedError
        Started by an MPI launcher, but mpi4py is not installed.
    """
    if not launched_by_mpi():
        return SingleProcess()
    return MPICommunicator()


def communicator(kind: str = "auto", backend: Any = None, base: Communicator | None = None
                 ) -> Communicator:
    """The communicator that sums ``backend``'s gradients over the ranks of ``base``
    (default :func:`world`).

    ``kind``: ``"mpi"`` (``base`` itself); ``"nccl"`` (the backend library's device
    communicator: NCCL for CuPy on CUDA GPUs, set up through ``base``); ``"auto"``:
    NCCL where the backend has it and there is more than one rank, else ``base``.

    Raises
    ------
    DistributedError
        An unknown ``kind``, or ``"nccl"`` where the backend has no NCCL.
    """
    if kind not in COMMUNICATORS:
        raise DistributedError(f"unknown communicator {kind!r}; choose one of {list(COMMUNICATORS)}")
    base = world() if base is None else base
    if kind == "mpi":
        return base
    if kind == "auto" and (base.size == 1 or backend is None or not isinstance(base, MPICommunicator)):
        return base
    if backend is None:
        raise DistributedError("the nccl communicator needs the backend whose arrays it sums")
    if not isinstance(base, MPICommunicator):
        if base.size == 1:
            return base  # one process: nothing to sum, whatever the communicator
        raise DistributedError("the nccl communicator is set up through MPI; launch the job with "
                               "mpiexec -n N python -m mpi4py ...")
    made = backend.library.device_communicator(base, backend.device, required=(kind == "nccl"))
    return base if made is None else made


def rank_backend(backend: Any, comm: Communicator, device_given: bool) -> Any:
    """``backend`` moved to this rank's own GPU: ``cuda:<local rank>`` when it is on a
    CUDA device, there is more than one rank and no device was given explicitly
    (``device_given``); else ``backend`` itself."""
    if comm.size == 1 or device_given or not backend.device_name.startswith("cuda"):
        return backend
    from .backends import get_backend

    return get_backend(backend.name, f"cuda:{comm.local_rank}", backend.dtype_name)


def check_ranks(comm: Any, X: Any, classes: Any, clf: Any) -> Any:
    """``comm`` when it has more than one rank (``None`` otherwise), after checking,
    with one collective, that every rank fits the same problem: ranks that disagree
    would train different networks, or wait for each other forever."""
    if comm is None or comm.size == 1:
        return None
    params = {k: v for k, v in clf.get_params().items()
              if k not in ("backend", "device", "verbose", "random_seed")}
    mine = (tuple(int(d) for d in X.shape), [str(c) for c in classes], repr(sorted(params.items())),
            clf.random_seed, getattr(clf, "n_iter_", 0))
    every = comm.allgather(mine)
    what = ("the data shape", "the classes", "the parameters", "random_seed", "the epochs done")
    for i, name in enumerate(what):
        if any(r[i] != mine[i] for r in every):
            raise ValueError(f"the ranks fit different problems: {name} differ between ranks "
                             f"({[r[i] for r in every] if i in (0, 3, 4) else 'see each rank'}); "
                             "give every rank the same X, y and parameters")
    return comm
