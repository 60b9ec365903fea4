"""What the command lines (``python -m arraynn.train``, ``python -m arraynn.predict``)
share: their errors, a parser whose mistakes are one line, and the exit statuses.

Every failure prints one line on stderr, ``error: ...``, without a traceback (``--debug``
shows it): a bad command line as ``error: MESSAGE  (see --help)`` with status 2
(:data:`USAGE`), anything else with status 1 (:data:`ERROR`); Ctrl-C prints
``interrupted`` and exits with 130 (:data:`INTERRUPTED`).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import NoReturn

__all__ = ["ERROR", "INTERRUPTED", "OK", "USAGE", "CLIError", "Parser", "UsageError", "error_line",
           "interrupted", "last_resort", "one_line", "parse_args", "report"]

#: The exit statuses.
OK, ERROR, USAGE, INTERRUPTED = 0, 1, 2, 130


class CLIError(Exception):
    """An error to report in one line; ``code`` is the exit status."""

    def __init__(self, message: str, code: int = ERROR) -> None:
        super().__init__(message)
        self.code = code


class UsageError(CLIError):
    """A bad command line: exit status 2."""

    def __init__(self, message: str) -> None:
        super().__init__(message, code=USAGE)


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors raise :class:`UsageError` (reported in one line by
    :func:`parse_args`) instead of printing the usage and exiting."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def one_line(exc: BaseException) -> str:
    """A one-line message: the exception's first paragraph, its lines joined by ``; ``
    (the runs of spaces within a line made one space).

    The instructions and URLs that follow a data error's first paragraph are dropped
    (the training command line replaces them by a hint about its flags).
    """
    text = str(exc).strip() or type(exc).__name__
    lines = [" ".join(ln.split()) for ln in text.splitlines() if ln.strip()]
    keep = []
    for ln in lines:
        if ln.startswith(("Put the files", "or point data_home")) or ln.startswith(("http://", "https://")):
            break
        keep.append(ln.rstrip(":") if ln.endswith(":") else ln)
    return "; ".join(keep or lines[:1])


def last_resort(exc: BaseException) -> str:
    """The line of an error nobody expected: its type and message, and how to see more."""
    return f"{type(exc).__name__}: {one_line(exc)} (rerun with --debug for the traceback)"


def error_line(exc: BaseException, expected: tuple[type[BaseException], ...] = ()) -> tuple[str, int]:
    """The line to print (after ``error: ``) for ``exc`` and the exit status.

    A :class:`CLIError` is its own message and ``code``; an instance of one of the
    ``expected`` classes its message, status 1; anything else :func:`last_resort`'s
    line, status 1.
    """
    if isinstance(exc, CLIError):
        return one_line(exc), exc.code
    if isinstance(exc, expected):
        return one_line(exc), ERROR
    return last_resort(exc), ERROR


def report(message: str, code: int = ERROR) -> int:
    """Print ``error: MESSAGE`` on stderr; returns ``code``, the exit status."""
    print(f"error: {message}", file=sys.stderr)
    return code


def interrupted(message: str = "interrupted") -> int:
    """Print what Ctrl-C stopped (on a line of its own, after the ``^C``); returns 130."""
    print(f"\n{message}", file=sys.stderr)
    return INTERRUPTED


def parse_args(parser: argparse.ArgumentParser, argv: Sequence[str] | None,
               check: Callable[[argparse.Namespace], None] | None = None) -> argparse.Namespace | int:
    """The parsed command line, checked by ``check`` (which raises :class:`UsageError`);
    or the exit status when there is nothing to run: 2 after printing a usage error's
    line, ``--help``'s or ``--version``'s 0."""
    try:
        args = parser.parse_args(argv)
        if check is not None:
            check(args)
    except UsageError as exc:
        print(f"error: {exc}  (see --help)", file=sys.stderr)
        return USAGE
    except SystemExit as exc:  # --help, --version
        return int(exc.code or 0)
    return args
