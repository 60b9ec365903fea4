"""The entry point of ``python -m arraynn.train``: parse, run or evaluate, one-line errors."""

from __future__ import annotations

from collections.abc import Sequence

from .. import _cli
from .._memory import reuse_freed_memory
from .errors import error_line
from .job import Run
from .options import build_parser, check_distributed_args

__all__ = ["main", "process_main"]


def process_main() -> int:
    """The command as a process runs it (``python -m arraynn.train``, the ``arraynn-train``
    script): :func:`arraynn.reuse_freed_memory` first, so that a training step's arrays
    reuse the last step's memory, then :func:`main`. (``main`` itself leaves the calling
    process's allocator alone.)"""
    reuse_freed_memory()
    return main()


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (the console script exits with it).

    0 success, 1 error, 2 bad usage, 130 interrupted; every error is one line on
    stderr (``--debug`` raises it instead, with its traceback).
    """
    args = _cli.parse_args(build_parser(), argv, check_distributed_args)
    if isinstance(args, int):
        return args
    job = Run(args)
    try:
        code = _run_or_evaluate(job)
    except BaseException:
        # a rank that stops with an error ends the whole job: the others would wait forever
        job.abort_others(1)
        raise
    if code != 0:
        job.abort_others(code)  # the other ranks may be waiting in a collective
    return code


def _run_or_evaluate(job: Run) -> int:
    """The run or the evaluation, its errors and its interruption reported in one line."""
    try:
        from .run import evaluate, run

        return evaluate(job) if job.evaluating else run(job)
    except KeyboardInterrupt:
        return _cli.interrupted(job.interrupted_message())
    except Exception as exc:
        if job.args.debug:
            raise
        message, code = error_line(exc, job.args)
        return _cli.report(job.rank_prefix() + message, code)
