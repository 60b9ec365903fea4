"""Read and write IDX files, the format of MNIST and Fashion-MNIST.

An IDX file is a 4-byte magic number followed by the size of each dimension
and the array's elements, all big-endian::

    byte 0-1   two zero bytes
    byte 2     type code (see ``IDX_TYPES``)
    byte 3     number of dimensions ``d``
    then       ``d`` unsigned 32-bit big-endian sizes
    then       the elements in C (row-major) order, big-endian

Files may be gzip-compressed. :func:`read_idx` tells a gzip file from a raw
one by its content (the gzip magic bytes ``1f 8b``), not by its name, and
checks the header and the payload size before it builds the array. Every
problem with a file is reported as an :class:`IDXError` that names the file
and says what is wrong with it.
"""

from __future__ import annotations

import gzip
import os
import struct
import zlib
from typing import Any

import numpy as np

from .._fileio import atomic_open as _atomic_open

__all__ = ["IDX_TYPES", "IDXError", "read_idx", "write_idx"]

#: IDX type code -> NumPy dtype of the elements as stored on disk (big-endian).
IDX_TYPES: dict[int, np.dtype[Any]] = {
    0x08: np.dtype("u1"),
    0x09: np.dtype("i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

_TYPE_NAMES = {
    0x08: "uint8",
    0x09: "int8",
    0x0B: "int16",
    0x0C: "int32",
    0x0D: "float32",
    0x0E: "float64",
}

# (kind, itemsize) of a NumPy dtype -> IDX type code, whatever the byte order.
_CODE_OF: dict[tuple[str, int], int] = {(dt.kind, dt.itemsize): code for code, dt in IDX_TYPES.items()}

_GZIP_MAGIC = b"\x1f\x8b"
_MAX_DIM = 2**32 - 1


def _numpy_max_ndim() -> int:
    """The most dimensions a NumPy array may have (64 in NumPy 2, 32 before)."""
    try:
        np.empty((1,) * 64, dtype=np.uint8)
    except ValueError:  # pragma: no cover - NumPy 1
        return 32
    return 64


_MAX_NDIM = _numpy_max_ndim()


class IDXError(ValueError):
    """An IDX file is malformed: bad magic, type code, header, payload or gzip.

    The message names the file and the problem. ``path`` holds the file's path.
    """

    def __init__(self, message: str, path: str | os.PathLike[str] | None = None):
        super().__init__(message)
        self.path = None if path is None else os.fspath(path)


def _supported() -> str:
    return ", ".join(f"0x{c:02X} ({n})" for c, n in _TYPE_NAMES.items())


def _fail(path: str | os.PathLike[str], problem: str) -> IDXError:
    return IDXError(f"IDX file '{os.fspath(path)}': {problem}", path)


_CHUNK = 1 << 20  # bytes read or inflated at a time
_GARBAGE_COUNT_LIMIT = 1 << 26  # trailing bytes counted (then "more than"), discarded as read


class _Stream:
    """The bytes of an IDX file, raw or gzip-decompressed, read in bounded pieces.

    ``read(n)`` returns at most ``n`` bytes (fewer only at the end); a gzip file
    is inflated only as far as it is read, so a small file that inflates to
    gigabytes costs no more memory than the bytes asked for. Several gzip members
    and zero padding after the last one are accepted, as gzip itself does.
    """

    def __init__(self, f: Any, path: str | os.PathLike[str]) -> None:
        self.f, self.path = f, path
        head = f.read(2)
        self.gzip = head == _GZIP_MAGIC
        self.compressed = len(head)  # compressed bytes read so far (for messages)
        self.pending = b"" if self.gzip else head  # raw: the two bytes already read
        self.decomp = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS) if self.gzip else None
        self.input = head if self.gzip else b""  # compressed bytes not yet fed to zlib
        self.done = False

    def _more_input(self) -> bytes:
        chunk: bytes = self.f.read(_CHUNK)
        self.compressed += len(chunk)
        return chunk

    def _next_member(self) -> None:
        """After a gzip member: the next member, or the end (zero padding allowed)."""
        assert self.decomp is not None  # gzip files only
        rest, self.input = self.decomp.unused_data + self.input, b""
        padding = 0
        while not rest.strip(b"\x00"):  # nothing, or zeros so far
            padding += len(rest)
            rest = self._more_input()
            if not rest:
                self.done = True
                return
        if not padding and len(rest) < 2:
            rest += self._more_input()
        if padding or not rest.startswith(_GZIP_MAGIC):
            extra = padding + len(rest) + sum(len(c) for c in iter(self._more_input, b""))
            raise _fail(self.path, f"trailing garbage: {extra} bytes after the end of the gzip stream")
        self.decomp, self.input = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS), rest

    def _inflate(self, limit: int) -> bytes:
        """Up to ``limit`` (> 0) decompressed bytes; ``b""`` only at the end of the data."""
        while not self.done:
            assert self.decomp is not None  # gzip files only
            if self.decomp.eof:
                self._next_member()
                if self.done:
                    return b""
            if not self.input:
                self.input = self._more_input()
                if not self.input:
                    raise _fail(
                        self.path,
                        f"truncated gzip stream: the {self.compressed} bytes of compressed data "
                        "end before the gzip end-of-stream marker (was the file cut short, "
                        "e.g. by an interrupted download?); delete it and fetch it again",
                    )
            try:
                out = self.decomp.decompress(self.input, limit)
            except zlib.error as exc:
                raise _fail(
                    self.path,
                    f"corrupt gzip data ({exc}); the file is damaged: delete it and fetch or "
                    "write it again",
                ) from exc
            # At the end of a member the rest of the input is in unused_data (which
            # _next_member reads); unconsumed_tail may repeat it.
            self.input = b"" if self.decomp.eof else self.decomp.unconsumed_tail
            if out:
                return out
        return b""

    def read(self, n: int) -> bytes:
        """Up to ``n`` bytes: fewer only when the data end."""
        buf = bytearray()
        while len(buf) < n:
            want = min(n - len(buf), _CHUNK)
            if self.gzip:
                piece = self._inflate(want)
            else:
                piece, self.pending = self.pending[:want], self.pending[want:]
                if not piece:
                    piece = self.f.read(want)
            if not piece:
                break
            buf += piece
        return bytes(buf)

    def read_payload(self, n: int) -> bytearray:
        """Up to ``n`` bytes, gathered piece by piece (a damaged header declaring a huge
        size costs only the bytes really there)."""
        if not self.gzip:  # its size was checked against the header
            buf = bytearray(n)
            return buf[:self.f.readinto(memoryview(buf))] if n else buf
        buf = bytearray()
        while len(buf) < n:
            piece = self.read(min(n - len(buf), _CHUNK))
            if not piece:
                break
            buf += piece
        return buf

    def count_rest(self, limit: int) -> int:
        """How many bytes are left, counting (and discarding) at most ``limit + 1``."""
        count = 0
        while count <= limit:
            piece = self.read(min(_CHUNK, limit + 1 - count))
            if not piece:
                break
            count += len(piece)
        return count


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an IDX file, raw or gzip-compressed, into a NumPy array.

    Parameters
    ----------
    path : str or path-like
        The file. Whether it is gzip-compressed is decided from its first
        bytes (the gzip magic ``1f 8b``), not from its name.

    Returns
    -------
    numpy.ndarray
        A new C-contiguous, writable array in native byte order, with the
        shape stored in the header and the dtype of the type code (uint8,
        int8, int16, int32, float32 or float64).

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    IDXError
        If the file is not a valid IDX file: bad magic number, unsupported
        type code, truncated header, payload shorter or longer (trailing
        garbage) than the header's sizes, or a truncated or corrupt gzip
        stream. The message names the file and the problem.
    MemoryError
        If the array the header declares does not fit in memory (the message
        names the file and the size).

    Notes
    -----
    The file is read in pieces and a gzip stream is inflated only as far as the
    header's sizes reach (plus a bounded count of any excess), so memory stays
    bounded by the declared array, whatever the file inflates to.

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> d = tempfile.mkdtemp()
    >>> write_idx(os.path.join(d, "a.idx.gz"), np.arange(6, dtype=np.uint8).reshape(2, 3))
    >>> read_idx(os.path.join(d, "a.idx.gz"))
    array([[0, 1, 2],
           [3, 4, 5]], dtype=uint8)
    """
    with open(path, "rb") as f:
        return _read_stream(_Stream(f, path), path)


def _read_stream(src: _Stream, path: str | os.PathLike[str]) -> np.ndarray:
    magic = src.read(4)
    n = len(magic)
    if n == 0:
        raise _fail(path, "the file is empty (no IDX header)")
    if n < 4:
        raise _fail(
            path,
            f"truncated header: an IDX file starts with a 4-byte magic number, found only {n} bytes",
        )
    zero, code, ndim = struct.unpack(">HBB", magic)
    if zero != 0:
        raise _fail(
            path,
            f"bad magic number 0x{magic.hex().upper()}: the first two bytes of "
            "an IDX file must be zero (is this an IDX file?)",
        )
    if code not in IDX_TYPES:
        raise _fail(
            path,
            f"unsupported IDX type code 0x{code:02X}; supported codes are {_supported()}",
        )
    if ndim == 0:
        raise _fail(path, "the header declares 0 dimensions; at least 1 is needed")
    if ndim > _MAX_NDIM:
        raise _fail(path, f"the header declares {ndim} dimensions; NumPy arrays have at most "
                          f"{_MAX_NDIM} (is the header damaged?)")
    header = 4 + 4 * ndim
    sizes = src.read(4 * ndim)
    if len(sizes) < 4 * ndim:
        raise _fail(
            path,
            f"truncated header: {ndim} dimensions need {header} header bytes, found only "
            f"{4 + len(sizes)}",
        )
    shape = struct.unpack(f">{ndim}I", sizes)
    disk_dtype = IDX_TYPES[code]
    expected = disk_dtype.itemsize
    for s in shape:
        expected *= s
    what = f"shape {shape} of {_TYPE_NAMES[code]}"
    if not src.gzip:
        # A raw file: compare its size with the header before reading anything.
        found = os.fstat(src.f.fileno()).st_size - header
        _check_size(path, what, expected, found)
    spanned = disk_dtype.itemsize  # NumPy refuses shapes whose nonzero sizes overflow, even empty ones
    for s in shape:
        spanned *= max(s, 1)
    if spanned > np.iinfo(np.intp).max:
        raise _fail(path, f"the header declares {what}: {expected} bytes, more than any array can "
                          "hold; the header is damaged")
    try:
        buf = src.read_payload(expected)
    except MemoryError:
        raise MemoryError(
            f"IDX file '{os.fspath(path)}': its header declares {what}, {expected:,} bytes, "
            "which do not fit in memory; free memory or check that the file is not damaged"
        ) from None
    found = len(buf)
    if found == expected:
        found += src.count_rest(_GARBAGE_COUNT_LIMIT)
    _check_size(path, what, expected, found, at_least=found - expected > _GARBAGE_COUNT_LIMIT)
    arr = np.frombuffer(buf, dtype=disk_dtype).reshape(shape)
    # Native byte order: the result owns its memory and is writable.
    return arr if arr.dtype.isnative else arr.astype(disk_dtype.newbyteorder("="))


def _check_size(path: str | os.PathLike[str], what: str, expected: int, found: int,
                at_least: bool = False) -> None:
    """The payload size ``found`` against the header's ``expected``."""
    if found < expected:
        raise _fail(
            path,
            f"truncated payload: the header declares {what}, which needs "
            f"{expected} bytes of data, but only {found} bytes follow the header",
        )
    if found > expected:
        more = "more than " if at_least else ""
        raise _fail(
            path,
            f"trailing garbage: the header declares {what} ({expected} bytes of "
            f"data), but {more}{found} bytes follow the header ({more}{found - expected} "
            "bytes too many)",
        )


def write_idx(path: str | os.PathLike[str], array: Any, *, compresslevel: int = 6) -> None:
    """Write an array to an IDX file, gzip-compressed if the name ends in ``.gz``.

    The file is written to a temporary file in the same directory and then
    renamed onto ``path`` (:func:`os.replace`), so readers never see a
    half-written file and a failed write leaves nothing behind.

    Parameters
    ----------
    path : str or path-like
        Destination. A name ending in ``.gz`` gives a gzip file (with a zero
        timestamp, so equal arrays give byte-identical files); any other name
        gives a raw IDX file.
    array : array_like
        Anything :func:`numpy.asarray` accepts, with at least one dimension,
        each of size < 2**32, and dtype uint8, int8, int16, int32, float32 or
        float64.
    compresslevel : int, default 6
        gzip compression level (0-9) for ``.gz`` files.

    Raises
    ------
    TypeError
        If the dtype has no IDX type code (e.g. int64, bool, float16).
    ValueError
        If the array is 0-dimensional or a dimension is too large, or
        ``compresslevel`` is not an integer from 0 to 9.
    """
    if isinstance(compresslevel, bool) or not isinstance(compresslevel, (int, np.integer)) \
            or not 0 <= compresslevel <= 9:
        raise ValueError(f"write_idx: compresslevel must be an integer from 0 (none) to 9 (best), "
                         f"got {compresslevel!r}")
    arr = np.asarray(array)
    code = _CODE_OF.get((arr.dtype.kind, arr.dtype.itemsize))
    if code is None or arr.dtype.kind not in "uif":
        raise TypeError(
            f"write_idx cannot store dtype {arr.dtype}: IDX supports "
            f"{', '.join(_TYPE_NAMES.values())}; convert the array first, "
            "e.g. array.astype(numpy.int32)"
        )
    if arr.ndim == 0:
        raise ValueError("write_idx needs an array with at least one dimension")
    if any(s > _MAX_DIM for s in arr.shape):
        raise ValueError(
            f"write_idx: shape {arr.shape} has a dimension larger than {_MAX_DIM}, which IDX cannot store"
        )
    header = struct.pack(f">HBB{arr.ndim}I", 0, code, arr.ndim, *arr.shape)
    payload = np.ascontiguousarray(arr, dtype=IDX_TYPES[code])
    with _atomic_open(path) as f:
        if os.fspath(path).endswith(".gz"):
            # filename="" and mtime=0: no name or timestamp in the gzip header.
            with gzip.GzipFile(
                filename="",
                mode="wb",
                fileobj=f,
                compresslevel=compresslevel,
                mtime=0,
            ) as gz:
                gz.write(header)
                gz.write(payload.reshape(-1).view(np.uint8).data)
        else:
            f.write(header)
            f.write(payload.reshape(-1).view(np.uint8).data)
