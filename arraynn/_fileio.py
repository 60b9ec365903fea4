"""Atomic file writes: a temporary file beside the target, renamed into place."""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat
from collections.abc import Iterator
from typing import IO

__all__ = ["NotARegularFileError", "atomic_open", "atomic_write_bytes", "check_replaceable"]


class NotARegularFileError(FileExistsError):
    """Something other than a regular file is where a file is to be written."""


def check_replaceable(path: str | os.PathLike[str]) -> None:
    """Refuse to replace ``path`` when it exists and is not a regular file.

    Raises
    ------
    NotARegularFileError
        ``path`` is a directory, a device, a FIFO or a socket; the message names it.
    """
    try:
        mode = os.stat(path).st_mode
    except (FileNotFoundError, NotADirectoryError):
        return
    if stat.S_ISREG(mode):
        return
    kind = ("a directory" if stat.S_ISDIR(mode) else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
            else "a FIFO" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode) else "not a file")
    raise NotARegularFileError(errno.EEXIST, f"{os.fspath(path)} is {kind}, not a regular file; "
                               "arraynn replaces only regular files: choose another path", os.fspath(path))


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike[str]) -> Iterator[IO[bytes]]:
    """Open a temporary file next to ``path``; move it onto ``path`` on success.

    The temporary file lives in the same directory (so :func:`os.replace` is
    atomic) and is named ``.<name>.<random>.part``. If the body raises
    (including ``KeyboardInterrupt``) the temporary file is removed and
    ``path`` is left untouched. The file is created with mode 0o666 minus the
    umask, like any file written with :func:`open`.

    A symbolic link is written through: its target is replaced, the link stays.
    Anything at ``path`` that is not a regular file (a directory, a device, a
    FIFO, a socket) is refused with :class:`NotARegularFileError` before any
    writing.
    """
    path = os.path.realpath(os.fspath(path))  # through symbolic links, to their target
    check_replaceable(path)
    directory, name = os.path.split(path)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    while True:
        tmp = os.path.join(directory, f".{name}.{secrets.token_hex(6)}.part")
        try:
            fd = os.open(tmp, flags, 0o666)
            break
        except FileExistsError:  # pragma: no cover - 48 random bits collided
            continue
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_open`)."""
    with atomic_open(path) as f:
        f.write(data)
