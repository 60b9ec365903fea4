"""One invocation of ``python -m arraynn.train``: :class:`Run`, what its steps find out.

:func:`arraynn.train.cli.main` makes a :class:`Run` of the parsed command line and hands
it to :func:`~arraynn.train.run.run` or :func:`~arraynn.train.evaluate.evaluate`; each step
fills in what it learns (the ranks, the run directory, the configuration, the backend),
and ``main`` reads it back to report an error or an interruption. The parsed command
line itself is never written to.
"""

from __future__ import annotations

import argparse
import shlex
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .rundir import RunDir

__all__ = ["Run"]


@dataclass
class Run:
    """A training run (or an evaluation) of the command line, as its steps go.

    Attributes
    ----------
    args : argparse.Namespace
        The parsed command line, as given (read only).
    world : object or None
        The ranks of the job (:mod:`arraynn.distributed`); set when a training run starts.
    comm : object or None
        The communicator that sums the gradients (the world itself without ``--distributed``).
    run_dir : RunDir or None
        The run directory, once chosen (a new run's, or the one ``--resume`` continues).
    saved : dict or None
        A resumed run's config.json.
    extended : bool
        ``--resume --epochs N`` beyond the run's epochs: the saved configuration has the
        new epochs, to be written back.
    from_checkpoint : bool
        The run directory holds a checkpoint that the run continues from.
    resumable : bool
        Set when a training run ends, however it ends: a checkpoint is left that
        ``--resume`` continues from.
    config : dict or None
        The resolved configuration (the preset with the flags, or the saved one).
    backend : Backend or None
        The backend the run computes on (this rank's device, data-parallel).
    backend_reason : str or None
        Why ``--backend auto`` chose it (the header says), else None.
    """

    args: argparse.Namespace
    world: Any = None
    comm: Any = None
    run_dir: RunDir | None = None
    saved: dict[str, Any] | None = None
    extended: bool = False
    from_checkpoint: bool = False
    resumable: bool = False
    config: dict[str, Any] | None = None
    backend: Any = None
    backend_reason: str | None = None

    @property
    def evaluating(self) -> bool:
        """Whether this is ``--evaluate MODEL`` (no training)."""
        return self.args.evaluate is not None

    @property
    def is_root(self) -> bool:
        """Whether this process is rank 0 (the one that prints and writes)."""
        return self.world is None or self.world.is_root

    @property
    def n_ranks(self) -> int:
        """The number of processes of the job (1 until the world is known)."""
        return 1 if self.world is None else int(self.world.size)

    def rank_prefix(self) -> str:
        """``rank R: `` before an error of a data-parallel run (every rank reports its own)."""
        return f"rank {self.world.rank}: " if self.n_ranks > 1 else ""

    def abort_others(self, code: int) -> None:
        """End the whole job with ``code`` when other ranks would wait for this one forever."""
        if self.n_ranks > 1:
            self.world.abort(code)

    def interrupted_message(self) -> str:
        """What Ctrl-C left: how to continue, or that nothing was kept."""
        if self.evaluating or self.run_dir is None or not self.is_root:
            return "interrupted"
        if self.resumable:
            return ("interrupted; continue from the last checkpoint with: python -m arraynn.train "
                    f"--resume --out {shlex.quote(str(self.run_dir))}")
        return "interrupted before the first epoch finished; nothing was kept"
