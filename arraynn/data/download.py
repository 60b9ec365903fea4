"""Download a file from a list of mirrors, with retries and size and MD5 checks.

A mirror is a base URL: the file's URL is the base URL plus the file's name. The
mirrors are tried in order. On each one a transient failure (no connection, HTTP
5xx, 408 or 429, a transfer that breaks off) is retried up to ``retries`` times,
waiting ``backoff`` seconds before the first retry and twice as long before each
further one; a failure that retrying will not cure (any other HTTP error, a size
or MD5 that is not the expected one, a malformed URL) moves on to the next mirror.

Only :mod:`urllib` is used, and every request carries the user agent
``arraynn/<version>``. The body is written to a temporary file beside the
destination and renamed into place once its size and MD5 are right, so a failed
or interrupted download leaves nothing behind.
"""

from __future__ import annotations

import hashlib
import http.client
import importlib.metadata
import logging
import math
import numbers
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from .._fileio import atomic_open as _atomic_open

__all__ = [
    "DOWNLOAD_BACKOFF",
    "DOWNLOAD_RETRIES",
    "DOWNLOAD_TIMEOUT",
    "DownloadError",
    "check_mirrors",
    "download",
    "download_options",
    "verify_file",
]

logger = logging.getLogger(__name__)

#: Retries per mirror after the first attempt, for transient failures.
DOWNLOAD_RETRIES: int = 2
#: Seconds to wait before the first retry; doubled before each further retry.
DOWNLOAD_BACKOFF: float = 1.0
#: Socket timeout in seconds for connecting and for each read.
DOWNLOAD_TIMEOUT: float = 60.0

_CHUNK = 1 << 20
_sleep = time.sleep  # replaced by tests


class DownloadError(FileNotFoundError):
    """Every mirror failed for a file; the message says how each one failed."""


def download_options(
    retries: int | None = None,
    backoff: float | None = None,
    timeout: float | None = None,
) -> tuple[int, float, float]:
    """Fill in and check the retry settings of :func:`download`.

    Parameters
    ----------
    retries, backoff, timeout : optional
        ``None`` stands for ``DOWNLOAD_RETRIES``, ``DOWNLOAD_BACKOFF`` and
        ``DOWNLOAD_TIMEOUT`` (read when called).

    Returns
    -------
    (retries, backoff, timeout) : (int, float, float)

    Raises
    ------
    ValueError
        Unless ``retries >= 0``, ``backoff >= 0`` and ``timeout > 0``.
    """
    retries = DOWNLOAD_RETRIES if retries is None else retries
    backoff = DOWNLOAD_BACKOFF if backoff is None else backoff
    timeout = DOWNLOAD_TIMEOUT if timeout is None else timeout
    bad = []
    if isinstance(retries, bool) or not isinstance(retries, numbers.Integral) or retries < 0:
        bad.append("retries")
    for name, value, positive in (("backoff", backoff, False), ("timeout", timeout, True)):
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value) \
                or not (value > 0 if positive else value >= 0):
            bad.append(name)
    if bad:
        raise ValueError(
            "need retries >= 0, backoff >= 0 and timeout > 0 (retries an integer, backoff and "
            f"timeout finite numbers of seconds); got retries={retries!r}, backoff={backoff!r}, "
            f"timeout={timeout!r}: fix {' and '.join(bad)}"
        )
    return int(retries), float(backoff), float(timeout)


def check_mirrors(mirrors: Sequence[str]) -> tuple[str, ...]:
    """The mirrors as a tuple of base URLs, each ending with ``/`` (added when missing).

    Raises
    ------
    ValueError
        ``mirrors`` is a single string instead of a list, is empty, or holds
        something that is not an http, https, ftp or file URL.
    """
    if isinstance(mirrors, (str, bytes)):
        raise ValueError(f"mirrors must be a list of base URLs, got the single string {mirrors!r}; "
                         f"write [{mirrors!r}]")
    try:
        out = tuple(mirrors)
    except TypeError:
        raise ValueError(f"mirrors must be a list of base URLs, got {type(mirrors).__name__}") from None
    if not out:
        raise ValueError("mirrors is empty; give at least one base URL")
    for m in out:
        if not isinstance(m, str) or urllib.parse.urlsplit(m).scheme not in ("http", "https", "ftp", "file"):
            raise ValueError(f"mirror {m!r} is not a URL; a mirror is a base URL such as "
                             "'https://example.org/fashion-mnist/'")
    return tuple(m if m.endswith("/") else m + "/" for m in out)


def _user_agent() -> str:
    version = getattr(sys.modules.get("arraynn"), "__version__", None)
    if not isinstance(version, str):
        try:
            version = importlib.metadata.version("arraynn")
        except importlib.metadata.PackageNotFoundError:
            version = "unknown"
    return f"arraynn/{version}"


def _file_digest(path: str | os.PathLike[str]) -> tuple[int, str]:
    md5 = hashlib.md5(usedforsecurity=False)
    size = 0
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            md5.update(chunk)
            size += len(chunk)
    return size, md5.hexdigest()


def _mismatch(size: int, md5: str, expected: tuple[int, str]) -> str | None:
    """Describe how (size, md5) differs from the expected pair, or None."""
    exp_size, exp_md5 = expected
    if size != exp_size:
        return f"size is {size} bytes, the published size is {exp_size} bytes"
    if md5.lower() != exp_md5.lower():
        return f"MD5 is {md5}, the published MD5 is {exp_md5}"
    return None


def verify_file(path: str | os.PathLike[str], expected: tuple[int, str]) -> str | None:
    """Say how a file differs from its expected size and MD5, or return None.

    Parameters
    ----------
    path : str or path-like
    expected : (int, str)
        The size in bytes and the MD5 hex digest (any case).

    Returns
    -------
    str or None
        ``None`` if both match, else e.g. ``"size is 10 bytes, the published
        size is 12 bytes"`` or ``"MD5 is ..., the published MD5 is ..."``.
    """
    return _mismatch(*_file_digest(path), expected)


class _Retry(Exception):
    """A transient failure: try the same mirror again after a pause."""


class _NextMirror(Exception):
    """A failure that retrying the same mirror will not cure."""


def _fetch_once(url: str, dest: Path, expected: tuple[int, str], timeout: float) -> None:
    """Download ``url`` to ``dest`` atomically if its size and MD5 are right."""
    request = urllib.request.Request(url, headers={"User-Agent": _user_agent()})
    exp_size = expected[0]
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        exc.close()
        msg = f"HTTP {exc.code} {exc.reason}"
        if exc.code >= 500 or exc.code in (408, 429):
            raise _Retry(msg) from exc
        raise _NextMirror(msg) from exc
    except (OSError, http.client.HTTPException) as exc:
        raise _Retry(f"cannot connect: {getattr(exc, 'reason', exc)}") from exc
    except ValueError as exc:  # a malformed URL
        raise _NextMirror(f"invalid URL: {exc}") from exc
    announced = response.headers.get("Content-Length", "")
    if announced.isdigit() and int(announced) != exp_size:
        response.close()
        raise _NextMirror(f"the server announces {announced} bytes, the published size is {exp_size} bytes")
    with response, _atomic_open(dest) as out:
        md5 = hashlib.md5(usedforsecurity=False)
        size = 0
        while True:
            try:
                chunk = response.read(_CHUNK)
            except (OSError, http.client.HTTPException) as exc:
                raise _Retry(f"transfer broke off after {size} bytes: {type(exc).__name__}: {exc}") from exc
            if not chunk:
                break
            size += len(chunk)
            if size > exp_size:
                raise _NextMirror(f"the server sent more than the published {exp_size} bytes")
            md5.update(chunk)
            out.write(chunk)
        if size < exp_size:
            raise _Retry(f"transfer broke off: got {size} of the published {exp_size} bytes")
        problem = _mismatch(size, md5.hexdigest(), expected)
        if problem is not None:
            raise _NextMirror(f"checksum mismatch: {problem}")


def download(
    dest: str | os.PathLike[str],
    mirrors: Sequence[str],
    expected: tuple[int, str],
    *,
    retries: int | None = None,
    backoff: float | None = None,
    timeout: float | None = None,
) -> str:
    """Fetch the file ``dest`` from the first mirror that serves it intact.

    Parameters
    ----------
    dest : str or path-like
        Where the file goes; its directory must exist. The file's URL on a
        mirror is the mirror plus ``dest``'s name.
    mirrors : sequence of str
        Base URLs, tried in order (each ends with ``/``).
    expected : (int, str)
        The file's size in bytes and MD5 hex digest.
    retries, backoff, timeout : optional
        Retries per mirror after a transient failure, seconds before the first
        retry (doubled for each further one), and the socket timeout in
        seconds; see :func:`download_options` for the defaults.

    Returns
    -------
    str
        The URL the file came from.

    Raises
    ------
    DownloadError
        Every mirror failed; the message gives each mirror's URL, how it
        failed and after how many attempts. ``dest`` is not created.
    OSError
        Any other :class:`OSError` comes from writing ``dest`` (a local
        problem: permissions, a full disk); network errors never escape.
    ValueError
        For bad ``retries``, ``backoff`` or ``timeout``.
    """
    retries, backoff, timeout = download_options(retries, backoff, timeout)
    mirrors = check_mirrors(mirrors)
    dest = Path(dest)
    failures: list[str] = []
    for base in mirrors:
        url = base + dest.name
        for attempt in range(retries + 1):
            if attempt:
                _sleep(backoff * 2 ** (attempt - 1))
            logger.info("downloading %s (attempt %d)", url, attempt + 1)
            try:
                _fetch_once(url, dest, expected, timeout)
            except _Retry as exc:
                reason = str(exc)
                logger.info("download of %s failed: %s", url, reason)
                continue
            except _NextMirror as exc:
                reason = str(exc)
                logger.info("download of %s failed: %s", url, reason)
                break
            return url
        tries = "1 attempt" if attempt == 0 else f"{attempt + 1} attempts"
        failures.append(f"  {url}: {reason} ({tries})")
    raise DownloadError(
        f"could not download {dest.name} into {dest.parent}; every mirror failed:\n" + "\n".join(failures)
    )
