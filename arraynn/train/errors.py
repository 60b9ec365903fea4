"""The errors of ``python -m arraynn.train`` and their one-line messages.

Every failure prints one line, ``error: ...``, on stderr and exits with status 2 (bad
usage) or 1 (anything else), without a traceback (``--debug`` shows it):
:func:`error_line` turns an exception into that line and its exit status. The error
classes and the one-line formatting are those of :mod:`arraynn._cli`, which
``python -m arraynn.predict`` shares; this module adds the training run's own hints
(where to put the data, what ``--no-download`` and ``--limit`` do).
"""

from __future__ import annotations

import argparse
import os

from .._cli import CLIError, UsageError, one_line
from .._cli import error_line as _cli_error_line

__all__ = ["CLIError", "UsageError", "error_line", "one_line"]


def _expected_errors() -> tuple[type[BaseException], ...]:
    """The library's errors whose own message is the report."""
    from ..backends import BackendError
    from ..classifier import ModelFileError, TrainingDivergedError
    from ..data import DownloadError
    from ..data.fashion_mnist import DatasetError, DatasetNotFoundError
    from ..data.idx import IDXError

    return (BackendError, DatasetError, DatasetNotFoundError, DownloadError, IDXError, ModelFileError,
            TrainingDivergedError)


def _data_hint(exc: BaseException, args: argparse.Namespace) -> str:
    """What to do about missing Fashion-MNIST files, in the flags' terms: where to put
    them (the ``--data-dir`` given, else ``--data-dir DIR`` or ``ARRAYNN_DATA``) and
    what ``--no-download`` does."""
    from ..data import DownloadError
    from ..data.fashion_mnist import DatasetNotFoundError

    data_dir = args.data_dir
    no_download = bool(args.no_download)
    env = os.environ.get("ARRAYNN_DATA", "")
    if data_dir is not None:
        where = f"copy the four Fashion-MNIST files into {data_dir}"
    elif env:
        where = f"copy the four Fashion-MNIST files into $ARRAYNN_DATA ({env}), or pass --data-dir DIR"
    else:
        where = ("put the four Fashion-MNIST files in a directory DIR and pass --data-dir DIR (or set "
                 "ARRAYNN_DATA=DIR)")
    if isinstance(exc, DownloadError):
        return f" (offline? {where}; with --no-download a missing file fails at once, without the mirrors)"
    if isinstance(exc, DatasetNotFoundError):
        return f" ({where}" + (", or drop --no-download to fetch them)" if no_download else ")")
    return ""


def error_line(exc: Exception, args: argparse.Namespace) -> tuple[str, int]:
    """The one line to print (after ``error: ``) for ``exc``, and the exit status.

    Parameters
    ----------
    exc : Exception
        What a run or an evaluation raised.
    args : argparse.Namespace
        The parsed command line (for the hint about ``--data-dir`` and ``--no-download``).

    Returns
    -------
    (str, int)
        The message and the exit status: ``exc.code`` for a :class:`CLIError`, else 1.
    """
    if isinstance(exc, _expected_errors()):
        return f"{one_line(exc)}{_data_hint(exc, args)}", 1
    if isinstance(exc, MemoryError):
        what = one_line(exc) if str(exc).strip() else "a step needed more memory than is free"
        return f"out of memory: {what} (free memory, or use --limit for a smaller run)", 1
    if isinstance(exc, OSError):
        where = f" {exc.filename}" if getattr(exc, "filename", None) else ""
        return f"cannot read or write{where}: {exc.strerror or exc}", 1
    # a CLIError's own message and status; the last resort: still one line
    return _cli_error_line(exc)
