"""The entry point of ``python -m arraynn.train``: parse, run or evaluate, one-line errors."""

from __future__ import annotations

import shlex
from collections.abc import Sequence

from .. import _cli
from .errors import error_line
from .options import build_parser, check_distributed_args

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (the console script exits with it).

    0 success, 1 error, 2 bad usage, 130 interrupted; every error is one line on
    stderr (``--debug`` raises it instead, with its traceback).
    """
    args = _cli.parse_args(build_parser(), argv, check_distributed_args)
    if isinstance(args, int):
        return args
    try:
        return _main(args)
    except BaseException:
        # a rank that stops with an error ends the whole job: the others would wait forever
        world = getattr(args, "world", None)
        if world is not None and world.size > 1:
            world.abort(1)
        raise


def _main(args) -> int:
    code = _run_or_evaluate(args)
    world = getattr(args, "world", None)
    if code != 0 and world is not None and world.size > 1:
        world.abort(code)  # the other ranks may be waiting in a collective
    return code


def _run_or_evaluate(args) -> int:
    try:
        from .run import evaluate, run

        return evaluate(args) if args.evaluate is not None else run(args)
    except KeyboardInterrupt:
        run_dir = getattr(args, "run_dir", None)
        if args.evaluate is not None or run_dir is None:
            return _cli.interrupted()
        if getattr(args, "resumable", False):
            return _cli.interrupted("interrupted; continue from the last checkpoint with: python -m "
                                    f"arraynn.train --resume --out {shlex.quote(run_dir)}")
        return _cli.interrupted("interrupted before the first epoch finished; nothing was kept")
    except Exception as exc:
        if args.debug:
            raise
        message, code = error_line(exc, args)
        world = getattr(args, "world", None)
        rank = f"rank {world.rank}: " if world is not None and world.size > 1 else ""
        return _cli.report(rank + message, code)
