"""The errors of ``python -m arraynn.train`` and their one-line messages.

Every failure prints one line, ``error: ...``, on stderr and exits with status 2 (bad
usage) or 1 (anything else), without a traceback (``--debug`` shows it):
:func:`error_line` turns an exception into that line and its exit status.
"""

from __future__ import annotations

import argparse
import os

__all__ = ["CLIError", "UsageError", "error_line", "one_line"]


class CLIError(Exception):
    """An error to report in one line; ``code`` is the exit status."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


class UsageError(CLIError):
    """A bad command line: exit status 2."""

    def __init__(self, message: str) -> None:
        super().__init__(message, code=2)


def one_line(exc: BaseException) -> str:
    """A one-line message: the exception's first paragraph, lines joined.

    The instructions and URLs that follow a data error's first paragraph are
    dropped (:func:`error_line` replaces them by a hint about the flags).
    """
    text = str(exc).strip() or type(exc).__name__
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    keep = []
    for ln in lines:
        if ln.startswith(("Put the files", "or point data_home")) or ln.startswith(("http://", "https://")):
            break
        keep.append(ln.rstrip(":") if ln.endswith(":") else ln)
    return "; ".join(keep or lines[:1])


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

    data_dir = getattr(args, "data_dir", None)
    no_download = bool(getattr(args, "no_download", False))
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
    if isinstance(exc, CLIError):
        return one_line(exc), exc.code
    if isinstance(exc, _expected_errors()):
        return f"{one_line(exc)}{_data_hint(exc, args)}", 1
    if isinstance(exc, MemoryError):
        what = one_line(exc) if str(exc).strip() else "a step needed more memory than is free"
        return f"out of memory: {what} (free memory, or use --limit for a smaller run)", 1
    if isinstance(exc, OSError):
        where = f" {exc.filename}" if getattr(exc, "filename", None) else ""
        return f"cannot read or write{where}: {exc.strerror or exc}", 1
    # The last resort: still one line.
    return f"{type(exc).__name__}: {one_line(exc)} (rerun with --debug for the traceback)", 1
